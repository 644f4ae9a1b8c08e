//! The daemon around the dataplane: configuration, control API, metrics.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod runtime;

#[cfg(feature = "dpdk")]
pub mod daemon;
