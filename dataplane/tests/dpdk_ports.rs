//! Real packets through real DPDK ports (virtual devices) in this process.
mod eal_util;

use std::time::{Duration, Instant};

use dataplane::buf::PacketBuf;
use dataplane::dpdk::{Port, PortConfig, RxBurst, TxBuffer};
use eal_util::{frame, pool};

fn one_queue() -> PortConfig {
    PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 512, tx_desc: 512, ..Default::default() }
}

/// Receive until `want` packets arrived or two seconds passed.
fn receive(port: &Port, want: usize) -> Vec<Vec<u8>> {
    let mut rx = port.rx_queue(0).unwrap();
    let mut burst = RxBurst::default();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < want && Instant::now() < deadline {
        burst.receive(&mut rx);
        got.extend(burst.by_ref().map(|m| m.data().to_vec()));
    }
    got
}

#[test]
fn ring_port_loops_packets_back_byte_for_byte() {
    let mp = pool("ring", 1023);
    let mut port = Port::attach_vdev("net_ring_t0", "").expect("net_ring vdev");
    port.configure(&one_queue(), &mp).unwrap();
    port.start().unwrap();
    let idle = mp.in_use();

    let sent: Vec<Vec<u8>> = (0..100).map(|i| frame(i, 60 + i as usize)).collect();
    let mut tx = port.tx_queue(0).unwrap();
    let mut txb = TxBuffer::default();
    for f in &sent {
        let mut m = mp.alloc().expect("mbuf");
        assert!(m.set_bytes(f));
        txb.push(m, &mut tx);
    }
    txb.flush(&mut tx);
    assert_eq!(txb.sent, 100);
    assert_eq!(txb.dropped, 0);

    let got = receive(&port, 100);
    assert_eq!(got, sent, "bytes and order survive the ring");
    let st = port.stats();
    assert_eq!((st.opackets, st.ipackets), (100, 100));
    // net_ring counts packets but not bytes; the pcap test checks bytes.
    assert_eq!(mp.in_use(), idle, "every mbuf went back to the pool");
}

#[test]
fn mbuf_prepend_and_adj_edit_in_place() {
    let mp = pool("edit", 63);
    let mut m = mp.alloc().unwrap();
    assert!(m.set_bytes(&[1, 2, 3, 4, 5, 6]));
    let head = m.headroom();
    assert!(m.adj(2));
    assert_eq!(m.data(), &[3, 4, 5, 6]);
    assert!(m.prepend(4));
    assert_eq!(m.headroom(), head - 2);
    m.data_mut()[..4].copy_from_slice(&[9, 9, 9, 9]);
    assert_eq!(m.data(), &[9, 9, 9, 9, 3, 4, 5, 6]);
    m.truncate(5);
    assert_eq!(m.len(), 5);
    assert!(!m.prepend(head + 1), "cannot prepend past the headroom");
    assert!(!m.adj(6), "cannot trim more than the packet");
    drop(m);
    assert_eq!(mp.in_use(), 0);
}

#[test]
fn pcap_port_reads_and_writes_files() {
    let mp = pool("pcap", 1023);
    let dir = std::env::temp_dir().join(format!("nat64-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (inp, out) = (dir.join("in.pcap"), dir.join("out.pcap"));
    let frames: Vec<Vec<u8>> = (0..50).map(|i| frame(i, 64 + 17 * i as usize)).collect();
    {
        let f = std::fs::File::create(&inp).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(f).unwrap();
        for fr in &frames {
            w.write_packet(&pcap_file::pcap::PcapPacket::new(Duration::ZERO, fr.len() as u32, fr)).unwrap();
        }
    }
    {
        let args = format!("rx_pcap={},tx_pcap={}", inp.display(), out.display());
        let mut port = Port::attach_vdev("net_pcap_t0", &args).expect("net_pcap vdev");
        port.configure(&one_queue(), &mp).unwrap();
        port.start().unwrap();
        let mut rx = port.rx_queue(0).unwrap();
        let mut tx = port.tx_queue(0).unwrap();
        let mut burst = RxBurst::default();
        let mut txb = TxBuffer::default();
        let deadline = Instant::now() + Duration::from_secs(2);
        while txb.sent + (txb.len() as u64) < 50 && Instant::now() < deadline {
            burst.receive(&mut rx);
            for m in burst.by_ref() {
                txb.push(m, &mut tx);
            }
        }
        txb.flush(&mut tx);
        assert_eq!(txb.sent, 50);
        // Dropping the port closes it, which completes the output file.
    }
    let f = std::fs::File::open(&out).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
    let mut written = Vec::new();
    while let Some(p) = r.next_packet() {
        written.push(p.unwrap().data.into_owned());
    }
    assert_eq!(written, frames);
    assert_eq!(mp.in_use(), 0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn null_port_sinks_and_sources() {
    let mp = pool("null", 1023);
    let mut port = Port::attach_vdev("net_null_t0", "size=96").expect("net_null vdev");
    port.configure(&one_queue(), &mp).unwrap();
    port.start().unwrap();
    assert!(port.link().up, "net_null reports its link up once started");
    let mut tx = port.tx_queue(0).unwrap();
    let mut txb = TxBuffer::default();
    for i in 0..64 {
        let mut m = mp.alloc().unwrap();
        assert!(m.set_bytes(&frame(i, 80)));
        txb.push(m, &mut tx);
    }
    txb.flush(&mut tx);
    assert_eq!(txb.sent, 64);
    assert_eq!(port.stats().opackets, 64);

    let got = receive(&port, 32);
    assert!(got.len() >= 32);
    assert!(got.iter().all(|p| p.len() == 96), "net_null makes packets of the asked size");
    drop(port);
    assert_eq!(mp.in_use(), 0, "no mbuf leaked through TX, RX or close");
}

#[test]
fn unknown_device_is_a_clear_error() {
    eal_util::eal();
    let e = Port::by_name("net_nonexistent9").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("rte_eth_dev_get_port_by_name") && msg.contains("net_nonexistent9"), "{msg}");
}
