//! Replays the 124 stateless (SIIT) cases of the Jool graybox corpus
//! against the translation core. See docs/conformance.md.

mod common;

use common::{compare, Corpus, Side};
use dataplane::buf::{PacketBuf, VecAlloc, VecBuf};
use dataplane::xlate::{
    translate_4to6, translate_6to4, Config, Eam, Eamt, IcmpRateLimit, Prefix4, Prefix6, Runtime, SiitMapper,
    UdpZeroChecksum, Verdict,
};
use serde_json::Value;

/// Cases skipped, with the reason (reference-system quirks the RFCs allow
/// another answer for; each is documented in docs/conformance.md).
const SKIPS: &[(&str, &str)] = &[];

fn str_field<'a>(c: &'a Value, k: &str) -> Option<&'a str> {
    c.get(k).and_then(Value::as_str)
}

fn addr_of(s: &str) -> &str {
    s.split('/').next().unwrap_or(s)
}

/// Case configuration -> translator configuration.
fn config(c: &Value) -> Result<Config, String> {
    let mut cfg = Config::default();
    if let Some(p) = str_field(c, "pool6") {
        cfg.pool6 = Some(p.parse::<Prefix6>().map_err(|e| format!("pool6 {p}: {e}"))?);
    }
    let mut eams = Vec::new();
    for e in c.get("eamt").and_then(Value::as_array).into_iter().flatten() {
        let v4 = str_field(e, "ipv4").ok_or("eam without ipv4")?;
        let v6 = str_field(e, "ipv6").ok_or("eam without ipv6")?;
        eams.push(Eam {
            v4: v4.parse().map_err(|e| format!("eam {v4}: {e}"))?,
            v6: v6.parse().map_err(|e| format!("eam {v6}: {e}"))?,
        });
    }
    cfg.eamt = Eamt::new(eams).map_err(|e| e.to_string())?;
    if let Some(p) = str_field(c, "rfc6791v4_prefix") {
        cfg.rfc6791_v4 = Some(p.parse::<Prefix4>().map_err(|e| format!("{p}: {e}"))?);
    }
    if let Some(p) = str_field(c, "rfc6791v6_prefix") {
        cfg.rfc6791_v6 = Some(p.parse::<Prefix6>().map_err(|e| format!("{p}: {e}"))?);
    }
    let num = |k: &str, d: u16| c.get(k).and_then(Value::as_u64).map_or(d, |v| v as u16);
    cfg.lowest_ipv6_mtu = num("lowest_ipv6_mtu", 1280);
    cfg.mtu_ipv6 = num("mtu_ipv6_side", 1500);
    cfg.mtu_ipv4 = num("mtu_ipv4_side", 1500);
    if c.get("amend_udp_checksum_zero").and_then(Value::as_bool) == Some(true) {
        cfg.udp_zero_checksum = UdpZeroChecksum::Compute;
    }
    let v4 = str_field(c, "translator_ipv4").ok_or("no translator_ipv4")?;
    cfg.own_v4 = addr_of(v4).parse().map_err(|e| format!("{v4}: {e}"))?;
    let v6 = str_field(c, "translator_ipv6").ok_or("no translator_ipv6")?;
    cfg.own_v6 = addr_of(v6).parse().map_err(|e| format!("{v6}: {e}"))?;
    cfg.icmp_rate = IcmpRateLimit { per_sec: 1_000_000, burst: 1_000_000 };
    Ok(cfg)
}

/// Run one case; `Ok` when every expected packet came out where expected.
fn run_case(corpus: &Corpus, case: &common::Case) -> Result<(), String> {
    let cfg = config(&case.config)?;
    let mut rt = Runtime::new(0);
    let mut alloc = VecAlloc::default();
    let mut got: Vec<(Side, Vec<u8>)> = Vec::new();
    for s in &case.send {
        let bytes = corpus.packet(&s.file)?;
        let mut buf = VecBuf::from_slice(&bytes);
        let mut extra: Vec<VecBuf> = Vec::new();
        let mut mapper = SiitMapper::new(&cfg);
        let mut sink = |b: VecBuf| extra.push(b);
        let v = match s.side {
            Side::Ipv6 => translate_6to4(&cfg, &mut rt, &mut mapper, &mut buf, &mut alloc, &mut sink),
            Side::Ipv4 => translate_4to6(&cfg, &mut rt, &mut mapper, &mut buf, &mut alloc, &mut sink),
        };
        let other = if s.side == Side::Ipv6 { Side::Ipv4 } else { Side::Ipv6 };
        match v {
            Verdict::Forward => got.push((other, buf.to_vec())),
            Verdict::Hairpin | Verdict::Reply(_) => got.push((s.side, buf.to_vec())),
            Verdict::Drop(r) => {
                if case.expect.is_empty() {
                    continue;
                }
                return Err(format!("{}: dropped ({})", s.file, r.name()));
            }
        }
        for b in extra {
            got.push((other, b.data().to_vec()));
        }
    }
    if got.len() != case.expect.len() {
        return Err(format!("expected {} packets, got {}", case.expect.len(), got.len()));
    }
    for (i, (e, (side, g))) in case.expect.iter().zip(&got).enumerate() {
        if *side != case.expect_side {
            return Err(format!("packet {i} left on {side:?}, expected {:?}", case.expect_side));
        }
        let want = corpus.packet(e)?;
        compare(&want, g, &case.ignore_offsets).map_err(|d| format!("packet {i} ({e}):\n{d}"))?;
    }
    Ok(())
}

#[test]
fn graybox_siit() {
    let Some(dir) = common::locate() else {
        println!("graybox: corpus not found (set NAT64_CONFORMANCE_DIR); nothing to run");
        return;
    };
    let corpus = Corpus::load(&dir).expect("manifest");
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    let mut failures = Vec::new();
    for case in corpus.cases.iter().filter(|c| c.suite == "siit") {
        if let Some((_, why)) = SKIPS.iter().find(|(id, _)| *id == case.id) {
            println!("skip {}: {why}", case.id);
            skip += 1;
            continue;
        }
        match run_case(&corpus, case) {
            Ok(()) => pass += 1,
            Err(e) => {
                fail += 1;
                failures.push(format!("FAIL {}: {e}", case.id));
            }
        }
    }
    for f in &failures {
        println!("{f}");
    }
    println!("graybox: {pass} passed, {fail} failed, {skip} skipped");
    assert_eq!(pass + fail + skip, 124, "the corpus should hold 124 siit cases");
    assert_eq!(fail, 0, "graybox SIIT failures");
}

/// Robustness: every corpus packet, mutated (bytes flipped, cut short) a
/// few hundred times, through both entry points. Nothing may panic, and a
/// forwarded packet must still have a sane IP header.
#[test]
fn graybox_mutations_never_panic() {
    let Some(dir) = common::locate() else {
        println!("graybox: corpus not found; no mutation run");
        return;
    };
    let corpus = Corpus::load(&dir).expect("manifest");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut runs, mut forwarded) = (0u32, 0u32);
    for case in corpus.cases.iter().filter(|c| c.suite == "siit") {
        let cfg = config(&case.config).expect("config");
        let mut rt = Runtime::new(1);
        let mut alloc = VecAlloc::default();
        for s in &case.send {
            let orig = corpus.packet(&s.file).expect("packet");
            for _ in 0..200 {
                let mut p = orig.clone();
                for _ in 0..1 + rnd() % 4 {
                    let i = (rnd() % p.len() as u64) as usize;
                    p[i] ^= 1 << (rnd() % 8);
                }
                if rnd() % 4 == 0 {
                    p.truncate((rnd() % p.len() as u64) as usize);
                }
                let mut buf = VecBuf::from_slice(&p);
                let mut mapper = SiitMapper::new(&cfg);
                let mut sink = |_b: VecBuf| {};
                let v = match s.side {
                    Side::Ipv6 => translate_6to4(&cfg, &mut rt, &mut mapper, &mut buf, &mut alloc, &mut sink),
                    Side::Ipv4 => translate_4to6(&cfg, &mut rt, &mut mapper, &mut buf, &mut alloc, &mut sink),
                };
                runs += 1;
                if !matches!(v, Verdict::Drop(_)) {
                    forwarded += 1;
                    let d = buf.data();
                    let ok = match d.first().map(|b| b >> 4) {
                        Some(4) => d.len() >= 20 && usize::from(u16::from_be_bytes([d[2], d[3]])) == d.len(),
                        Some(6) => {
                            d.len() >= 40 && usize::from(u16::from_be_bytes([d[4], d[5]])) + 40 == d.len()
                        }
                        _ => false,
                    };
                    assert!(ok, "{}: bad output {:02x?}", case.id, &d[..d.len().min(48)]);
                }
            }
        }
    }
    println!("graybox mutations: {runs} runs, {forwarded} not dropped");
}
