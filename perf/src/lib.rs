//! Benchmarks and traffic generators for the NAT64 appliance.

pub mod flows;
