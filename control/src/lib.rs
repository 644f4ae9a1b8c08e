//! The daemon around the dataplane: configuration, control API, metrics.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod http;
pub mod logging;
pub mod lookup;
pub mod metrics;
pub mod reload;
pub mod runtime;
pub mod services;
pub mod sessionlog;
pub mod sync;

#[cfg(feature = "dpdk")]
pub mod daemon;
#[cfg(feature = "dpdk")]
pub mod plane;
#[cfg(feature = "dpdk")]
pub mod steering;
