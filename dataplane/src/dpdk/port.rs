use std::ffi::CString;

use dpdk_sys as sys;

use super::flow::RawFlow;
use super::{DpdkError, Mempool};

// RTE_ETH_RSS_* are function-like macros bindgen cannot evaluate (rte_ethdev.h).
const RSS_IPV4: u64 = 1 << 2;
const RSS_FRAG_IPV4: u64 = 1 << 3;
const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
const RSS_NONFRAG_IPV4_OTHER: u64 = 1 << 7;
const RSS_IPV6: u64 = 1 << 8;
const RSS_FRAG_IPV6: u64 = 1 << 9;
const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
const RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
const RSS_NONFRAG_IPV6_OTHER: u64 = 1 << 13;
/// Hash on addresses and ports of both families, where the NIC can.
const RSS_WANTED: u64 = RSS_IPV4
    | RSS_FRAG_IPV4
    | RSS_NONFRAG_IPV4_TCP
    | RSS_NONFRAG_IPV4_UDP
    | RSS_NONFRAG_IPV4_OTHER
    | RSS_IPV6
    | RSS_FRAG_IPV6
    | RSS_NONFRAG_IPV6_TCP
    | RSS_NONFRAG_IPV6_UDP
    | RSS_NONFRAG_IPV6_OTHER;

/// How to set a port up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// RX queues (one per worker).
    pub rx_queues: u16,
    /// TX queues (one per worker).
    pub tx_queues: u16,
    /// RX descriptors per queue.
    pub rx_desc: u16,
    /// TX descriptors per queue.
    pub tx_desc: u16,
    /// Spread RX over the queues by RSS on IP addresses and ports.
    pub rss: bool,
    /// Accept every destination MAC (needed for one-armed and vdev labs).
    pub promiscuous: bool,
    /// Set this MTU, if any.
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: true,
            promiscuous: true,
            mtu: None,
        }
    }
}

/// Link state of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Carrier up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Device counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the NIC dropped because RX queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// An Ethernet device. Stopped and closed on drop.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    started: bool,
    queues: (u16, u16),
    /// Steering rules created on the port (`flow.rs`).
    pub(super) flows: std::sync::Mutex<Vec<RawFlow>>,
}

impl Port {
    /// The port EAL created for `name`: a PCI address (`0000:03:00.0`) or a
    /// vdev name (`net_pcap0`), as given on the EAL command line.
    pub fn by_name(name: &str) -> Result<Port, DpdkError> {
        let cname =
            CString::new(name).map_err(|_| DpdkError::new("rte_eth_dev_get_port_by_name", 22, name))?;
        let mut id = 0u16;
        // SAFETY: cname is a valid C string; id is a valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(DpdkError::new("rte_eth_dev_get_port_by_name", ret, name));
        }
        Ok(Port { id, name: name.to_string(), started: false, queues: (0, 0), flows: Default::default() })
    }

    /// Create a virtual device at run time (`net_ring0`, `net_null1`,
    /// `net_pcap0` with `rx_pcap=...,tx_pcap=...`) and return its port.
    pub fn attach_vdev(name: &str, args: &str) -> Result<Port, DpdkError> {
        let devargs = if args.is_empty() { name.to_string() } else { format!("{name},{args}") };
        let c = CString::new(devargs.as_str()).map_err(|_| DpdkError::new("rte_dev_probe", 22, &*devargs))?;
        // SAFETY: c is a valid C string for the duration of the call; EAL's
        // hot-plug path finds the bus (vdev) from the name and copies it.
        let ret = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        if ret != 0 {
            return Err(DpdkError::new("rte_dev_probe", ret, devargs));
        }
        Self::by_name(name)
    }

    /// DPDK's port number.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The device name the port was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Configure queues (each RX queue filled from `pool`) and offloads.
    pub fn configure(&mut self, cfg: &PortConfig, pool: &Mempool) -> Result<(), DpdkError> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: the port id is valid; info is a valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) };
        if ret != 0 {
            return Err(DpdkError::new("rte_eth_dev_info_get", ret, &*self.name));
        }
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(DpdkError::new(
                "rte_eth_dev_configure",
                22,
                format!(
                    "{}: {} RX / {} TX queues asked, device has {} / {}",
                    self.name, cfg.rx_queues, cfg.tx_queues, info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        let mut conf = sys::rte_eth_conf::default();
        let rss_hf = RSS_WANTED & info.flow_type_rss_offloads;
        if cfg.rss && cfg.rx_queues > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: the port id is valid and stopped; conf is fully initialised.
        let ret = unsafe { sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf) };
        if ret != 0 {
            return Err(DpdkError::new("rte_eth_dev_configure", ret, &*self.name));
        }
        // SAFETY: valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..cfg.rx_queues {
            // SAFETY: valid port and queue ids; a null rx_conf selects the
            // driver's defaults; the pool outlives the port (layer rule).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(self.id, q, cfg.rx_desc, socket, std::ptr::null(), pool.as_ptr())
            };
            if ret != 0 {
                return Err(DpdkError::new(
                    "rte_eth_rx_queue_setup",
                    ret,
                    format!("{} queue {q}", self.name),
                ));
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: valid port and queue ids; null tx_conf = driver defaults.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(self.id, q, cfg.tx_desc, socket, std::ptr::null()) };
            if ret != 0 {
                return Err(DpdkError::new(
                    "rte_eth_tx_queue_setup",
                    ret,
                    format!("{} queue {q}", self.name),
                ));
            }
        }
        if let Some(mtu) = cfg.mtu {
            // SAFETY: valid port id.
            let ret = unsafe { sys::rte_eth_dev_set_mtu(self.id, mtu) };
            // Virtual devices without MTU support still forward: not fatal.
            if ret != 0 && ret != -95 {
                return Err(DpdkError::new("rte_eth_dev_set_mtu", ret, &*self.name));
            }
        }
        if cfg.promiscuous {
            // SAFETY: valid port id. Some vdevs cannot (ENOTSUP): harmless.
            unsafe { sys::rte_eth_promiscuous_enable(self.id) };
        }
        self.queues = (cfg.rx_queues, cfg.tx_queues);
        Ok(())
    }

    /// Start the device.
    pub fn start(&mut self) -> Result<(), DpdkError> {
        // SAFETY: valid, configured port id.
        let ret = unsafe { sys::rte_eth_dev_start(self.id) };
        if ret != 0 {
            return Err(DpdkError::new("rte_eth_dev_start", ret, &*self.name));
        }
        self.started = true;
        Ok(())
    }

    /// Stop the device (RX and TX stop; queued mbufs go back to the pool).
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        if !self.started {
            return Ok(());
        }
        // Rules go before the device stops, so no handle outlives it (the
        // daemon clears them itself first and reports failures).
        let _ = self.clear_steering();
        // SAFETY: valid, started port id.
        let ret = unsafe { sys::rte_eth_dev_stop(self.id) };
        self.started = false;
        if ret != 0 {
            return Err(DpdkError::new("rte_eth_dev_stop", ret, &*self.name));
        }
        Ok(())
    }

    /// The handle for RX queue `q`. Each queue must be polled by one thread
    /// at a time; the handle is `Send` but not `Clone` for that reason.
    pub fn rx_queue(&self, q: u16) -> Option<RxQueue> {
        (q < self.queues.0).then_some(RxQueue { port: self.id, queue: q })
    }

    /// The handle for TX queue `q` (one thread at a time, as for RX).
    pub fn tx_queue(&self, q: u16) -> Option<TxQueue> {
        (q < self.queues.1).then_some(TxQueue { port: self.id, queue: q })
    }

    /// Link state, without waiting.
    pub fn link(&self) -> Link {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: valid port id; l is a valid out-pointer.
        unsafe { sys::rte_eth_link_get_nowait(self.id, &mut l) };
        Link { up: l.link_status() != 0, speed_mbps: l.link_speed, full_duplex: l.link_duplex() != 0 }
    }

    /// Device counters.
    pub fn stats(&self) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port id; s is a valid out-pointer.
        unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: valid port id; a is a valid out-pointer.
        unsafe { sys::rte_eth_macaddr_get(self.id, &mut a) };
        a.addr_bytes
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: the port is stopped; closing releases its queues and the
        // mbufs they held. The fast-path ops of a closed port are DPDK's
        // dummies, so a stale queue handle can no longer touch freed memory.
        unsafe { sys::rte_eth_dev_close(self.id) };
    }
}

/// One RX queue of one port.
#[derive(Debug)]
pub struct RxQueue {
    pub(crate) port: u16,
    pub(crate) queue: u16,
}

/// One TX queue of one port.
#[derive(Debug)]
pub struct TxQueue {
    pub(crate) port: u16,
    pub(crate) queue: u16,
}

impl RxQueue {
    /// The port number this queue belongs to.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The queue number.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl TxQueue {
    /// The port number this queue belongs to.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The queue number.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}
