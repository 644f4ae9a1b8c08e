//! Shared set-up for tests that run a real EAL in this test process.
#![allow(dead_code)]

use std::sync::OnceLock;

use dataplane::dpdk::{Eal, Mempool};

/// EAL arguments for tests: no hugepages unless NAT64_TEST_HUGEPAGES=1, no
/// PCI scan, nothing shared with other processes (tests run in parallel).
pub fn eal_args(lcores: &str) -> Vec<String> {
    let mut a = vec!["nat64-test".to_string(), "-l".into(), lcores.into(), "--no-pci".into()];
    if std::env::var("NAT64_TEST_HUGEPAGES").as_deref() == Ok("1") {
        a.push("--in-memory".into());
    } else {
        // --no-huge implies legacy memory, which --in-memory refuses.
        a.extend(["--no-huge".into(), "-m".into(), "512".into(), "--no-shconf".into()]);
        a.push(format!("--file-prefix=nat64t{}", std::process::id()));
    }
    a.push("--log-level=*:error".into());
    a
}

/// The process-wide EAL, started on first use (EAL starts once per process).
pub fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    EAL.get_or_init(|| Eal::init(&eal_args("0")).expect("EAL init"))
}

/// A fresh mempool with a unique name.
pub fn pool(tag: &str, n: u32) -> Mempool {
    eal();
    Mempool::new(&format!("pool_{tag}"), n, 0, 2048 + 128, -1).expect("mempool")
}

/// A test frame: Ethernet + IPv6 + UDP with `seq` in the payload, `len` bytes.
pub fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(62)];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14] = 0x60;
    let plen = (f.len() - 54) as u16;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    f[20] = 17;
    f[21] = 64;
    f[22..24].copy_from_slice(&[0x20, 0x01]);
    f[24..26].copy_from_slice(&[0x0d, 0xb8]);
    f[38..40].copy_from_slice(&[0x20, 0x01]);
    f[40..42].copy_from_slice(&[0x0d, 0xb8]);
    f[58..62].copy_from_slice(&seq.to_be_bytes());
    f
}
