//! The NAT64 appliance's dataplane: everything that touches a packet.
//!
//! - [`buf`]: the buffer trait translation works on (mbufs in production).
//! - [`wire`]: zero-copy typed views over packet bytes.
//! - [`xlate`]: stateless RFC 7915 / 6052 / 7757 / 6791 translation.
//! - [`nat64`]: RFC 6146 stateful state (BIB, sessions, pool4), per worker.
//! - [`steer`]: NIC steering rules that send IPv4 return traffic to its owner.
//! - `dpdk` (feature `dpdk`): the safe layer over DPDK.
//! - [`hugemem`]: huge page advice for the session tables (its `unsafe`
//!   sits beside the DPDK layer's).
//! - [`prefetch`]: a safe cache prefetch hint (its `unsafe` sits beside the
//!   DPDK layer's).
// Safe Rust everywhere except the DPDK layer, which opts in module by module.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buf;
pub mod instance;
pub mod nat64;
pub mod ops;
pub mod pipeline;
pub mod steer;
pub mod wire;
pub mod xlate;

#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
pub mod dpdk;

/// Transparent huge pages for the session tables (with or without the
/// `dpdk` feature).
#[allow(unsafe_code)]
#[path = "dpdk/hugemem.rs"]
pub mod hugemem;
/// Cache prefetch hints (with or without the `dpdk` feature).
#[allow(unsafe_code)]
#[path = "dpdk/prefetch.rs"]
pub mod prefetch;
