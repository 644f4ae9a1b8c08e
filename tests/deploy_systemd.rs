//! deploy/systemd without systemd: the command lines of nat64d.service do
//! what the unit promises when run the way systemd runs them (check before
//! start, start, check + SIGHUP on reload, a bad file refused before the
//! signal, SIGTERM stops cleanly within TimeoutStopSec); systemd-analyze
//! accepts the units (and deploy/bird's) where it is installed; the hugepage helper refuses bad
//! arguments and never shrinks a reservation.

#[path = "deploy_common.rs"]
mod common;

use common::{adapt, free_port, get, repo};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/local/sbin/nat64d";
const CONFIG: &str = "/etc/nat64d/nat64d.yaml";

fn unit(name: &str) -> String {
    std::fs::read_to_string(repo().join("deploy/systemd").join(name)).unwrap()
}

/// The values of `key=` lines of a unit, in order.
fn directives(text: &str, key: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_string).collect()
}

/// A command line of the unit as systemd would run it here: our binary and
/// configuration, `$MAINPID` expanded, `$NAT64D_EAL_EXTRA` unset (no
/// /etc/default/nat64d), so it expands to nothing.
fn command(line: &str, config: &Path, main_pid: u32) -> Command {
    let words: Vec<String> = line
        .split_whitespace()
        .filter(|w| *w != "$NAT64D_EAL_EXTRA")
        .map(|w| match w {
            BIN => env!("CARGO_BIN_EXE_nat64d").to_string(),
            CONFIG => config.display().to_string(),
            "$MAINPID" => main_pid.to_string(),
            w => w.to_string(),
        })
        .collect();
    let mut c = Command::new(&words[0]);
    c.args(&words[1..]);
    c
}

fn metric(http: SocketAddr, name: &str, label: &str) -> f64 {
    let (_, body) = get(http, "/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("nat64-deploy-systemd-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_units_command_lines_start_reload_and_stop_nat64d() {
    let service = unit("nat64d.service");
    let pre = directives(&service, "ExecStartPre");
    let start = directives(&service, "ExecStart");
    let reload = directives(&service, "ExecReload");
    assert_eq!((pre.len(), start.len(), reload.len()), (1, 1, 2), "{service}");
    assert!(pre[0].ends_with("--check") && reload[0].ends_with("--check"), "check before start and reload");
    assert_eq!(reload[1], "/bin/kill -HUP $MAINPID");
    for (k, v) in [("Restart", "on-failure"), ("KillSignal", "SIGTERM"), ("RuntimeDirectory", "nat64d")] {
        assert_eq!(directives(&service, k), [v], "{k}");
    }
    let stop_timeout: u64 = directives(&service, "TimeoutStopSec")[0].parse().unwrap();

    let d = dir();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let example = std::fs::read_to_string(repo().join("deploy/examples/border-nat44.yaml")).unwrap();
    let config = d.join("nat64d.yaml");
    let good = adapt(&example, &format!("sd{}", std::process::id()), &d, http);
    std::fs::write(&config, &good).unwrap();

    // ExecStartPre: the check passes, so systemd goes on to ExecStart.
    let st = command(&pre[0], &config, 0).stdout(Stdio::null()).status().unwrap();
    assert!(st.success());
    let log = std::fs::File::create(d.join("nat64d.log")).unwrap();
    let mut child = command(&start[0], &config, 0).stdout(Stdio::null()).stderr(log).spawn().unwrap();
    let t = Instant::now();
    while get(http, "/readyz").0 != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{}",
            std::fs::read_to_string(d.join("nat64d.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id();
    assert_eq!(metric(http, "nat64_config_generation", ""), 1.0);

    // systemctl reload with a changed file: check, then SIGHUP; applied.
    std::fs::write(&config, good.replace("session_log:", "level: debug\n  session_log:")).unwrap();
    for line in &reload {
        assert!(command(line, &config, pid).stdout(Stdio::null()).status().unwrap().success(), "{line}");
    }
    let t = Instant::now();
    while metric(http, "nat64_config_generation", "") < 2.0 {
        assert!(t.elapsed() < Duration::from_secs(5), "SIGHUP reload not applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(http, "nat64_config_reloads_total", "result=\"success\""), 1.0);

    // A broken file: the first ExecReload line fails, so systemd never
    // sends the signal and `systemctl reload` reports the failure.
    std::fs::write(&config, good.replace("2001:db8:64::/96", "2001:db8:64::/97")).unwrap();
    let o = command(&reload[0], &config, pid).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("rfc6052-prefix-length"), "{o:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(metric(http, "nat64_config_reloads_total", "result=\"invalid\""), 0.0, "nothing was sent");
    assert_eq!(metric(http, "nat64_config_generation", ""), 2.0);

    // systemctl stop: SIGTERM, and nat64d must be gone well within TimeoutStopSec.
    let t = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(stop_timeout), "still running after TimeoutStopSec");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(st.success(), "exit {st}: Restart=on-failure would restart a clean stop otherwise");
    eprintln!("stopped {:.2} s after SIGTERM", t.elapsed().as_secs_f64());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn systemd_analyze_accepts_the_units() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("skipped: systemd-analyze not installed");
        return;
    }
    // A private root with the files the units name, so verify can check
    // that every command exists.
    let root = dir().join("root");
    for d in ["usr/local/sbin", "usr/local/lib/nat64d", "etc/systemd/system", "bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(env!("CARGO_BIN_EXE_nat64d"), root.join("usr/local/sbin/nat64d")).unwrap();
    std::fs::copy(
        repo().join("deploy/systemd/nat64d-hugepages"),
        root.join("usr/local/lib/nat64d/hugepages"),
    )
    .unwrap();
    std::fs::copy("/bin/kill", root.join("bin/kill")).unwrap();
    std::fs::copy(
        repo().join("deploy/bird/nat64-bird-health"),
        root.join("usr/local/lib/nat64d/nat64-bird-health"),
    )
    .unwrap();
    std::fs::copy(
        repo().join("deploy/bird/nat64-bird-health.service"),
        root.join("etc/systemd/system/nat64-bird-health.service"),
    )
    .unwrap();
    for u in ["nat64d.service", "nat64d-hugepages.service"] {
        std::fs::copy(repo().join("deploy/systemd").join(u), root.join("etc/systemd/system").join(u))
            .unwrap();
    }
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args([
            "/etc/systemd/system/nat64d.service",
            "/etc/systemd/system/nat64d-hugepages.service",
            "/etc/systemd/system/nat64-bird-health.service",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    // Outside a booted system the dependency targets are missing; anything
    // else (unknown directive, bad value, missing command) is a finding.
    let findings: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Unit sysinit.target not found"))
        .collect();
    assert!(findings.is_empty(), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn the_hugepage_helper_checks_its_arguments_and_never_shrinks() {
    let script = repo().join("deploy/systemd/nat64d-hugepages");
    for (args, msg) in [(["2M", "3"], "needs a K, M or G suffix"), (["1G", "512M"], "less than one 1G page")]
    {
        let o = Command::new(&script).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(msg), "{o:?}");
    }
    // Asking for fewer pages than are reserved changes nothing.
    let nr = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
    let have: u64 = std::fs::read_to_string(nr).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let root = rustix::process::geteuid().is_root();
    if have < 2 || !root || Command::new("dpdk-hugepages.py").arg("--help").output().is_err() {
        eprintln!("part skipped: needs root, dpdk-hugepages.py and reserved 2 MB pages");
        return;
    }
    let o = Command::new(&script).args(["2M", "2M"]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let after: u64 = std::fs::read_to_string(nr).unwrap().trim().parse().unwrap();
    assert_eq!(after, have, "the reservation was not shrunk");
}
