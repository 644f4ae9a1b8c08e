//! Replays the 42 stateful (NAT64, RFC 6146) cases of the Jool graybox
//! corpus, in order, against one in-process `instance::Nat64` configured
//! as the manifest says: the same instance type nat64d runs per worker, fed
//! plain buffers. Time is simulated (milliseconds), so the 6 s
//! simultaneous-open cases take no wall time. See docs/conformance.md.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use common::{compare, Case, Corpus, Side};
use dataplane::buf::{PacketBuf, VecAlloc, VecBuf};
use dataplane::instance::Nat64;
use dataplane::nat64::{self, Pool4, Pool4Entry, Proto, Shard};
use dataplane::pipeline::{Extra, Instance, Translated};
use dataplane::xlate::{Config, IcmpRateLimit, Prefix6, Verdict};
use serde_json::Value;

/// Cases skipped, with the reason: expectations that record what the
/// reference system happened to do where the RFCs allow another answer.
const SKIPS: &[(&str, &str)] = &[
    (
        "nat64/manual/issue132/test",
        "the expected ICMPv6 error was sent by the reference suite's IPv4 host (its kernel), which is not part of the translator",
    ),
    (
        "nat64/manual/issue132/test#2",
        "as issue132/test: the expected packet comes from the reference suite's IPv4 host",
    ),
    (
        "nat64/manual/so/success-sender4",
        "expects the reference's deterministic source port (2600); RFC 6056 asks for unpredictable ports: a secret-keyed hash, then random draws here",
    ),
];

fn s<'a>(c: &'a Value, k: &str) -> Result<&'a str, String> {
    c.get(k).and_then(Value::as_str).ok_or_else(|| format!("config without {k}"))
}

/// `addr#port` of the manifest's static BIB entries.
fn transport<A: std::str::FromStr>(t: &str) -> Result<(A, u16), String> {
    let (a, p) = t.split_once('#').ok_or_else(|| format!("{t}: no port"))?;
    Ok((
        a.parse().map_err(|_| format!("{t}: bad address"))?,
        p.parse().map_err(|_| format!("{t}: bad port"))?,
    ))
}

fn proto(p: &str) -> Result<Proto, String> {
    match p {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        "icmp" => Ok(Proto::Icmp),
        _ => Err(format!("protocol {p}")),
    }
}

/// One worker's instance, built like control/src/runtime.rs builds it.
fn instance(c: &Value, now: u64) -> Result<Nat64<VecBuf>, String> {
    let addr = |k: &str| s(c, k).map(|v| v.split('/').next().unwrap_or(v).to_string());
    let num = |k: &str, d: u16| c.get(k).and_then(Value::as_u64).map_or(d, |v| v as u16);
    let cfg = Config {
        pool6: Some(s(c, "pool6")?.parse::<Prefix6>().map_err(|e| format!("pool6: {e}"))?),
        own_v4: addr("translator_ipv4")?.parse().map_err(|_| "translator_ipv4")?,
        own_v6: addr("translator_ipv6")?.parse().map_err(|_| "translator_ipv6")?,
        mtu_ipv4: num("mtu_ipv4_side", 1500),
        mtu_ipv6: num("mtu_ipv6_side", 1500),
        lowest_ipv6_mtu: num("lowest_ipv6_mtu", 1280),
        // The suite pairs 64:ff9b::/96 with TEST-NET-1 (RFC 6052 §3.1).
        wkp_allow_non_global: true,
        icmp_rate: IcmpRateLimit { per_sec: 1_000_000, burst: 1_000_000 },
        ..Config::default()
    };
    let mut entries = Vec::new();
    for p in c.get("pool4").and_then(Value::as_array).into_iter().flatten() {
        let a: Ipv4Addr = s(p, "address")?.parse().map_err(|_| "pool4 address")?;
        let (lo, hi) = s(p, "ports").unwrap_or("1024-65535").split_once('-').ok_or("pool4 ports")?;
        let (lo, hi) = (lo.parse().map_err(|_| "port")?, hi.parse().map_err(|_| "port")?);
        for pr in p.get("protocols").and_then(Value::as_array).into_iter().flatten() {
            let mut e = Pool4Entry::new(proto(pr.as_str().unwrap_or(""))?, a, 32);
            (e.port_min, e.port_max) = (lo, hi);
            entries.push(e);
        }
    }
    let pool = Arc::new(Pool4::new(&entries, 1).map_err(|e| format!("pool4: {e:?}"))?);
    let sc = nat64::Config::default();
    let mut shard = Shard::new(&sc, pool.slice(0), now);
    for b in c.get("static_bib").and_then(Value::as_array).into_iter().flatten() {
        let v6 = transport::<Ipv6Addr>(s(b, "ipv6")?)?;
        let v4 = transport::<Ipv4Addr>(s(b, "ipv4")?)?;
        shard.add_static(proto(s(b, "protocol")?)?, v6, v4, now).map_err(|e| format!("static BIB: {e:?}"))?;
    }
    Ok(Nat64::new(cfg, shard, pool, None, sc.max_held_syn, sc.timeouts.tcp_incoming_syn, 1))
}

/// The family a buffer holds, as the side it leaves on.
fn side_of(b: &[u8]) -> Side {
    if b.first().is_some_and(|v| v >> 4 == 4) {
        Side::Ipv4
    } else {
        Side::Ipv6
    }
}

/// The instance plus a simulated clock.
struct Rig {
    nat: Nat64<VecBuf>,
    now: u64,
    alloc: VecAlloc,
}

impl Rig {
    fn push_extra(extra: &mut Extra<VecBuf>, got: &mut Vec<(Side, Vec<u8>)>) {
        while let Some(b) = extra.pop() {
            got.push((side_of(b.data()), b.data().to_vec()));
        }
    }

    /// Inject one packet; what leaves goes to `got` (side, bytes).
    fn send(&mut self, side: Side, bytes: &[u8], got: &mut Vec<(Side, Vec<u8>)>) -> Option<String> {
        let mut extra: Extra<VecBuf> = Extra::new();
        let buf = VecBuf::from_slice(bytes);
        let r = match side {
            Side::Ipv6 => self.nat.to_v4(self.now, buf, &mut self.alloc, &mut extra),
            Side::Ipv4 => self.nat.to_v6(self.now, buf, &mut self.alloc, &mut extra),
        };
        let mut dropped = None;
        if let Translated::Done(v, b) = r {
            match v {
                Verdict::Forward | Verdict::Hairpin | Verdict::Reply(_) => {
                    got.push((side_of(b.data()), b.data().to_vec()))
                }
                Verdict::Drop(r) => dropped = Some(r.name().to_string()),
            }
        }
        // Extras (fragments, answers) leave by their own family.
        extra.reverse();
        Self::push_extra(&mut extra, got);
        dropped
    }

    /// Let `ms` of simulated time pass, running housekeeping as the worker
    /// does between bursts.
    fn wait(&mut self, ms: u64, got: &mut Vec<(Side, Vec<u8>)>) {
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + 50).min(end);
            let mut extra: Extra<VecBuf> = Extra::new();
            self.nat.tick(self.now, &mut self.alloc, &mut extra);
            Self::push_extra(&mut extra, got);
        }
    }
}

fn run_case(corpus: &Corpus, case: &Case, rig: &mut Rig) -> Result<(), String> {
    let mut got = Vec::new();
    let mut drops = Vec::new();
    for p in &case.send {
        let bytes = corpus.packet(&p.file)?;
        if let Some(r) = rig.send(p.side, &bytes, &mut got) {
            drops.push(format!("{}: dropped ({r})", p.file));
        }
        rig.wait(1, &mut got);
    }
    rig.wait((case.wait_s * 1000.0) as u64, &mut got);
    let got: Vec<&Vec<u8>> =
        got.iter().filter(|(side, _)| *side == case.expect_side).map(|(_, b)| b).collect();
    if got.len() != case.expect.len() {
        return Err(format!(
            "expected {} packets on the {:?} side, got {} {drops:?}",
            case.expect.len(),
            case.expect_side,
            got.len()
        ));
    }
    for (i, e) in case.expect.iter().enumerate() {
        let want = corpus.packet(e)?;
        compare(&want, got[i], &case.ignore_offsets).map_err(|d| format!("packet {i} ({e}):\n{d}"))?;
    }
    Ok(())
}

#[test]
fn graybox_nat64() {
    let Some(dir) = common::locate() else {
        println!("graybox-nat64: corpus not found (set NAT64_CONFORMANCE_DIR); nothing to run");
        return;
    };
    let corpus = Corpus::load(&dir).expect("manifest");
    let cases: Vec<&Case> = corpus.cases.iter().filter(|c| c.suite == "nat64").collect();
    assert_eq!(cases.len(), 42, "the corpus should hold 42 nat64 cases");
    // Cases sharing the first configuration run in order on one instance
    // (later ones use earlier state); one with other MTUs gets its own.
    let start = 1_000;
    let mut shared = Rig {
        nat: instance(&cases[0].config, start).expect("config"),
        now: start,
        alloc: VecAlloc::default(),
    };
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    let mut lines = Vec::new();
    for case in &cases {
        let mut own;
        let rig = if case.config == cases[0].config {
            &mut shared
        } else {
            own = Rig {
                nat: instance(&case.config, start).expect("config"),
                now: start,
                alloc: VecAlloc::default(),
            };
            &mut own
        };
        let r = run_case(&corpus, case, rig);
        if let Some((_, why)) = SKIPS.iter().find(|(id, _)| *id == case.id) {
            lines.push(format!("skip {}: {why}{}", case.id, if r.is_ok() { " (passed anyway)" } else { "" }));
            skip += 1;
            continue;
        }
        match r {
            Ok(()) => pass += 1,
            Err(e) => {
                fail += 1;
                lines.push(format!("FAIL {}: {e}", case.id));
            }
        }
    }
    println!("graybox-nat64: {pass} passed, {fail} failed, {skip} skipped");
    for l in &lines {
        println!("{l}");
    }
    assert_eq!(fail, 0, "graybox NAT64 failures");
}
