//! nat64ctl: the operator's tool.
fn main() {
    eprintln!("nat64ctl: no commands yet");
    std::process::exit(2);
}
