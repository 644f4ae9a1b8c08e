//! nat64d: the appliance.
fn main() {}
