//! Failover of an active/standby pair (deploy/lab/ha.sh): long-lived TCP
//! (iperf3) and hundreds of UDP flows run through appliance A; A is killed
//! with SIGKILL; the router's health check moves pool6 and pool4 to B; the
//! flows must go on through B with the sessions B learned from A's session
//! sync.
//!
//! Needs root (namespaces, DPDK on af_packet), iperf3 and /usr/bin/python3.
//! The lab's names carry this process's pid, so it can run beside other
//! labs; it is torn down on drop, also when an assertion fails.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{is_root, session_rows, spawn_piped, stdout_ok, text, wait_for};

/// 192.0.2.10 in pool6 2001:db8:64::/96 (RFC 6052 §2.2).
const SERVER: &str = "2001:db8:64::c000:20a";
/// The same server in the pool6 of instance hb, active on B.
const SERVER_B: &str = "2001:db8:46::c000:20a";
/// UDP flows (one session each) and their pacing.
const FLOWS: usize = 400;
/// UDP flows through instance hb, active on B all along.
const FLOWS_B: usize = 100;
/// Idle UDP sessions made in one burst before the failure: `HA_BURST`,
/// default 2000 (at 5000 the failback's bulk resync overruns the restarted
/// appliance's socket buffer: docs/ha.md, "Failover lab").
fn burst_size() -> usize {
    std::env::var("HA_BURST").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}
/// Parallel iperf3 TCP streams (plus its control connection).
const STREAMS: usize = 4;
/// Seconds the flows run; A is killed a few seconds in.
const RUN_S: u64 = 40;

fn ha_sh() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/lab/ha.sh")
}

/// The failover lab of this test process, torn down on drop.
struct Ha {
    tag: String,
    dir: String,
}

impl Ha {
    fn up() -> Option<Ha> {
        if !is_root() {
            eprintln!("ha test skipped: needs root");
            return None;
        }
        let tag = format!("ha{}", std::process::id());
        let ha = Ha { dir: format!("/tmp/{tag}"), tag };
        let o = ha.sh(&["up"], 60);
        assert!(o.status.success(), "ha.sh up:\n{}", text(&o));
        Some(ha)
    }

    fn command(&self, args: &[&str], secs: u64) -> Command {
        let mut c = Command::new("timeout");
        c.args(["-k", "5", &secs.to_string()])
            .arg(ha_sh())
            .args(args)
            .env("HA_TAG", &self.tag)
            .env("HA_DIR", &self.dir)
            .env("NAT64D", env!("CARGO_BIN_EXE_nat64d"))
            .env("NAT64CTL", env!("CARGO_BIN_EXE_nat64ctl"))
            .env("HA_SYNC", "1")
            .stdin(Stdio::null());
        c
    }

    fn sh(&self, args: &[&str], secs: u64) -> Output {
        self.command(args, secs).output().expect("running ha.sh")
    }

    fn ok(&self, args: &[&str], secs: u64) -> String {
        stdout_ok(self.sh(args, secs), &format!("ha.sh {args:?}"))
    }

    /// Start a shell command on a lab host in the background.
    fn spawn(&self, host: &str, cmd: &str, secs: u64) -> Child {
        spawn_piped(self.command(&["x", host, "bash", "-c", cmd], secs))
    }

    /// Appliance `x`'s sessions (`nat64ctl session list --format json`).
    fn sessions(&self, x: &str) -> Vec<Value> {
        session_rows(&self.ok(&["ctl", x, "session", "list", "--format", "json"], 30))
    }

    /// UDP datagrams the kernel of lab host `host` dropped because a
    /// socket's receive buffer was full (`RcvbufErrors` of /proc/net/snmp).
    fn udp_rcvbuf_errors(&self, host: &str) -> u64 {
        let snmp = self.ok(&["x", host, "cat", "/proc/net/snmp"], 10);
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
        let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return 0 };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "RcvbufErrors")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }

    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(format!("{}/{name}", self.dir)).ok()
    }

    /// A time written by ha.sh (`date +%s.%N`).
    fn time(&self, name: &str) -> Option<f64> {
        self.file(name)?.trim().parse().ok()
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        let o = self.sh(&["down"], 60);
        if !o.status.success() {
            eprintln!("ha.sh down:\n{}", text(&o));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What identifies a session across appliances: the 5-tuples of both sides
/// and the mapping (RFC 6146 §3.5: the BIB entry and the session's remote).
fn key(s: &Value) -> String {
    format!(
        "{} {} [{}]#{} {}#{} {}#{}",
        s["instance"],
        s["protocol"],
        s["ipv6"],
        s["ipv6_port"],
        s["ipv4"],
        s["ipv4_port"],
        s["remote"],
        s["remote_port"]
    )
}

/// The sum of the samples of one metric family in a Prometheus scrape
/// whose labels contain `label` (e.g. `kind="received"`; "" for all).
fn metric_sum(scrape: &str, name: &str, label: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with([' ', '{'])) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Sessions of `instance` ("" for all) and protocol `proto`.
fn count(sessions: &[Value], instance: &str, proto: &str) -> usize {
    sessions
        .iter()
        .filter(|s| s["protocol"] == proto && (instance.is_empty() || s["instance"] == instance))
        .count()
}

#[test]
fn flows_survive_a_failover_and_a_failback() {
    let Some(ha) = Ha::up() else { return };
    ha.ok(&["start", "a"], 60);
    ha.ok(&["start", "b"], 60);

    // Hundreds of UDP flows (distinct source ports, one session each) and
    // iperf3 TCP streams through A (instance ha), and a hundred UDP flows
    // through B (instance hb), which the failure must leave alone.
    let flows = |server: &str, n: usize| {
        ha.spawn(
            "cli",
            &format!(
                "/usr/bin/python3 {} flows {server} 7 --count {n} --interval 0.5 --duration {RUN_S} \
                 --mark kill={dir}/kill.time --mark failback={dir}/route.time",
                ha_sh().with_file_name("ha_udp.py").display(),
                dir = ha.dir,
            ),
            RUN_S + 30,
        )
    };
    let udp = flows(SERVER, FLOWS);
    let udp_b = flows(SERVER_B, FLOWS_B);
    let tcp =
        ha.spawn("cli", &format!("iperf3 -c {SERVER} -t {} -P {STREAMS} -b 10M -J", RUN_S - 5), RUN_S + 40);
    wait_for("A and B to hold their flows' sessions", 20, || {
        let s = ha.sessions("a");
        count(&s, "ha", "udp") >= FLOWS
            && count(&s, "ha", "tcp") > STREAMS
            && count(&ha.sessions("b"), "hb", "udp") >= FLOWS_B
    });
    // Thousands more UDP sessions, one datagram each, idle afterwards: so
    // that 99.9 % is a threshold that lets a few sessions go, and the sync
    // carries a burst.
    let script = ha_sh().with_file_name("ha_udp.py").display().to_string();
    let burst = burst_size();
    let n = burst.to_string();
    ha.ok(
        &[
            "x",
            "cli",
            "/usr/bin/python3",
            &script,
            "burst",
            SERVER,
            "7",
            "--count",
            &n,
            "--first-port",
            "20000",
        ],
        60,
    );
    wait_for("A to hold the burst's sessions", 20, || count(&ha.sessions("a"), "ha", "udp") >= FLOWS + burst);

    // The router's health check, then the failure: the sessions A had a
    // second before it are what B must have.
    ha.ok(&["watch"], 10);
    std::thread::sleep(Duration::from_secs(2));
    let before = ha.sessions("a");
    std::thread::sleep(Duration::from_secs(1));
    // Listed while every packet still goes through A, so B cannot have
    // made these sessions itself: they came by sync. B keeps them when A
    // dies.
    let on_b = ha.sessions("b");
    ha.ok(&["kill", "a"], 10);
    let killed = ha.time("kill.time").expect("kill.time written");
    wait_for("the router to move the pools to B", 10, || ha.file("flip.time").is_some());
    let flipped = ha.time("flip.time").expect("flip.time written");
    assert!(flipped > killed, "the health check moved the pools before A failed (a false alarm under load)");
    let route = ha.ok(&["x", "rt", "ip", "-6", "route", "show", "2001:db8:64::/96"], 10);
    assert!(route.contains("via 2001:db8:1::b"), "pool6 route after the flip: {route}");

    // Failback: A restarts with empty tables, gets B's sessions by bulk
    // resync, and the pools go back to it while the flows run.
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    ha.ok(&["start", "a"], 60);
    let want: HashSet<String> = ha.sessions("b").iter().map(key).collect();
    // Bulk resync; one that lost datagrams (A's socket buffer overrun) is
    // detected by its end marker and asked again.
    let end = t0 + Duration::from_secs(25);
    let (mut have, mut complete) = (0, false);
    while !complete && Instant::now() < end {
        let on_a: HashSet<String> = ha.sessions("a").iter().map(key).collect();
        have = want.iter().filter(|k| on_a.contains(*k)).count();
        complete = have as f64 >= 0.999 * want.len() as f64;
        if !complete {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let resync = (have, want.len(), t0.elapsed().as_secs_f64());
    let dropped = ha.udp_rcvbuf_errors("a");
    assert!(
        complete,
        "A holds {have} of B's {} sessions 25 s after its restart ({dropped} datagrams lost in its socket buffer)",
        want.len()
    );
    ha.ok(&["route", "a"], 10);

    let udp = udp.wait_with_output().expect("UDP flows");
    assert!(udp.status.success(), "UDP flows:\n{}", text(&udp));
    let udp_b = udp_b.wait_with_output().expect("UDP flows through B");
    assert!(udp_b.status.success(), "UDP flows through B:\n{}", text(&udp_b));
    let flows_b: Value = serde_json::from_slice(&udp_b.stdout).expect("flows JSON");
    let tcp = tcp.wait_with_output().expect("iperf3");
    let flows: Value = serde_json::from_slice(&udp.stdout).expect("flows JSON");
    let iperf: Value = serde_json::from_slice(&tcp.stdout).unwrap_or(Value::Null);
    let (kill, back) = (&flows["marks"]["kill"], &flows["marks"]["failback"]);

    let b_keys: HashSet<String> = on_b.iter().map(key).collect();
    let present = before.iter().filter(|s| b_keys.contains(&key(s))).count();
    let fraction = present as f64 / before.len().max(1) as f64;
    let secs = |v: &Value| v.as_f64().map_or("-".to_string(), |v| format!("{v:.3}"));
    println!(
        "ha figures: A had {} sessions ({} udp, {} tcp) 1 s before the kill; \
         {present} on B ({:.2} %); kill -> route flip {:.3} s; kill -> first UDP reply through B {} s; \
         every flow answered again after {} s; flows answered after the kill {}/{FLOWS}, mapping kept {}/{FLOWS}; \
         iperf3 received {} bytes",
        before.len(),
        count(&before, "", "udp"),
        count(&before, "", "tcp"),
        fraction * 100.0,
        flipped - killed,
        secs(&kill["first_reply_after_s"]),
        secs(&kill["all_answered_after_s"]),
        kill["answered_after"],
        kill["port_kept"],
        iperf["end"]["sum_received"]["bytes"],
    );
    // Per second, what the TCP streams moved: shows the stalls.
    let rates: Vec<String> = iperf["intervals"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|i| format!("{:.0}", i["sum"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6))
                .collect()
        })
        .unwrap_or_default();
    println!("ha iperf3 Mbit/s per second: {}", rates.join(" "));
    let (have, want, t) = resync;
    println!(
        "ha failback: restarted A held {have} of B's {want} sessions {t:.2} s after its start began \
         (datagrams its kernel dropped for a full socket buffer: {dropped}); \
         flows answered after the failback {}/{FLOWS}, mapping kept {}/{FLOWS}",
        back["answered_after"], back["port_kept"]
    );
    let (bk, bb) = (&flows_b["marks"]["kill"], &flows_b["marks"]["failback"]);
    println!(
        "ha instance hb (active on B): flows answered after the kill {}/{FLOWS_B}, after the failback {}/{FLOWS_B}; \
         mapping kept {} and {}",
        bk["answered_after"], bb["answered_after"], bk["port_kept"], bb["port_kept"]
    );
    let missing: Vec<String> = before.iter().map(key).filter(|k| !b_keys.contains(k)).take(5).collect();

    // Every UDP flow is answered after the failure.
    assert_eq!(
        kill["answered_after"].as_u64(),
        Some(FLOWS as u64),
        "UDP flows answered after the kill: {flows}"
    );
    // ... through the same mapping (the server sees the same pool4 port),
    // through B and again through A after the failback.
    let events = ["kill", "failback"];
    // Instance hb's flows ran through B all along: neither A's death nor
    // its return (and bulk resync) may disturb them.
    for (via, f, n) in [("A", &flows, FLOWS), ("B", &flows_b, FLOWS_B)] {
        for what in events {
            let m = &f["marks"][what];
            assert_eq!(
                m["answered_after"].as_u64(),
                Some(n as u64),
                "flows via {via} answered after the {what}: {f}"
            );
            let kept = m["port_kept"].as_u64().unwrap_or(0) as f64;
            assert!(
                kept >= 0.999 * n as f64,
                "flows via {via} that kept their mapping after the {what}: {f}"
            );
        }
    }
    // The TCP streams finish without error.
    assert!(
        tcp.status.success() && iperf.get("error").is_none(),
        "iperf3 through the failover and the failback:\n{}",
        text(&tcp)
    );
    assert!(iperf["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0) > 0.0, "iperf3 moved nothing");
    // The sessions: >= 99.9 % of A's, same 5-tuples and mappings.
    assert!(before.len() > FLOWS + burst, "A had {} sessions", before.len());
    assert!(
        fraction >= 0.999,
        "{present} of {} sessions of A present on B ({:.2} %); first missing: {missing:#?}",
        before.len(),
        fraction * 100.0
    );
    // A clean run: B refused no datagram and no session of A's, and the
    // restarted A got a bulk resync.
    let m = ha.ok(&["x", "b", "curl", "-sS", "-m", "5", "http://127.0.0.1:9464/metrics"], 20);
    println!(
        "ha sync on B: {} datagrams and {} sessions received, {} imported",
        metric_sum(&m, "nat64_sync_batches_total", "direction=\"received\""),
        metric_sum(&m, "nat64_sync_sessions_total", "direction=\"received\""),
        metric_sum(&m, "nat64_sync_sessions_imported_total", ""),
    );
    assert!(metric_sum(&m, "nat64_sync_sessions_imported_total", "") >= present as f64, "imports counted");
    assert_eq!(metric_sum(&m, "nat64_sync_rejected_total", ""), 0.0, "datagrams refused by B");
    assert_eq!(metric_sum(&m, "nat64_sync_sessions_rejected_total", ""), 0.0, "sessions refused by B");
    let m = ha.ok(&["x", "a", "curl", "-sS", "-m", "5", "http://127.0.0.1:9464/metrics"], 20);
    let resyncs = metric_sum(&m, "nat64_sync_resyncs_total", "kind=\"received\"");
    println!(
        "ha resync on A: {} incomplete (asked again), {resyncs} complete",
        metric_sum(&m, "nat64_sync_resyncs_total", "kind=\"incomplete\"")
    );
    assert!(resyncs >= 1.0, "the restarted A completed no bulk resync");
}
