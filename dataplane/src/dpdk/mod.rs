//! The safe layer over DPDK: EAL, mempools, mbufs, ports, bursts, lcores.
//!
//! This is the only module of the crate that contains `unsafe`; every block
//! says why it is sound in a `// SAFETY:` line. Ownership rules:
//! - an [`Mbuf`] is freed exactly once: by its `Drop`, or by the NIC after a
//!   successful transmit (ownership passes to the driver);
//! - mempools and ports outlive the workers that use them, and the [`Eal`]
//!   outlives everything (drop order in `nat64d` follows that).

mod burst;
mod eal;
mod error;
mod flow;
mod mbuf;
mod mempool;
mod port;
mod ring;
mod worker;

pub use burst::{RxBurst, TxBuffer, MAX_BURST};
pub use eal::{lcore_id, tsc, tsc_hz, Eal};
pub use error::DpdkError;
pub use flow::FlowError;
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{Link, Port, PortConfig, PortStats, RxQueue, TxQueue};
pub use ring::{mbuf_ring, RingRx, RingTx};
pub use worker::{Worker, WorkerShared, DRAIN_US};
