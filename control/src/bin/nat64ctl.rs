//! nat64ctl: the operator's tool. Talks to a running `nat64d` over its
//! control socket (`management.control_socket`).
//!
//! ```text
//! nat64ctl session list [--protocol tcp] [--ipv6 2001:db8::/64] [--ipv4 203.0.113.5] [--format table|csv|json]
//! nat64ctl bib list|add|del ...      nat64ctl pool4 list      nat64ctl stats
//! nat64ctl config check [FILE]|reload|show                    nat64ctl health
//! nat64ctl lookup 2001:db8:a::5 | 192.0.2.7#40123 [--log FILE --at TIME]
//! ```
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use control::api::{call, BibRow, CallError, Command, Pool4Row, Query, SessionRow};
use control::config::{Config, Protocol, Transport4, Transport6};
use control::lookup;
use serde_json::{json, Value};

/// Operate a running nat64d through its control socket (see docs/control.md).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The daemon's control socket. Default: $NAT64CTL_SOCKET, else
    /// management.control_socket of --config, else /run/nat64d/control.sock.
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// The daemon's configuration file (to find its socket).
    #[arg(short, long, default_value = "/etc/nat64d/nat64d.yaml", global = true)]
    config: PathBuf,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 30, global = true)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Sessions of stateful instances.
    Session {
        #[command(subcommand)]
        op: SessionOp,
    },
    /// Binding information base (static and dynamic mappings).
    Bib {
        #[command(subcommand)]
        op: BibOp,
    },
    /// pool4 addresses and their use.
    Pool4 {
        #[command(subcommand)]
        op: Pool4Op,
    },
    /// Counters summed over workers, with drop reasons.
    Stats {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The configuration.
    Config {
        #[command(subcommand)]
        op: ConfigOp,
    },
    /// Liveness and readiness (exit 1 when not ready).
    Health,
    /// Who had an address (docs/abuse.md): an IPv6 client's IPv4 address
    /// and port range(s), or the client prefix behind an IPv4 address and
    /// port. Deterministic instances are computed from --config (no daemon
    /// needed); port-block instances come from the daemon's tables (now)
    /// or from the block log (--log, at --at). Exit 1 when nothing matches.
    Lookup {
        /// `2001:db8:a::5`, or `192.0.2.7#40123`.
        address: String,
        /// Instance (default: every stateful one).
        #[arg(long)]
        instance: Option<String>,
        /// Port blocks: answer from this session log (its block lines)
        /// instead of the running daemon.
        #[arg(long)]
        log: Option<PathBuf>,
        /// With --log: the time asked about, RFC 3339 in UTC
        /// (`2026-11-24T14:02:00Z`). Default: now.
        #[arg(long)]
        at: Option<String>,
        /// Ask the running daemon for every answer (deterministic ones from
        /// the configuration it runs) instead of reading --config.
        #[arg(long)]
        daemon: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
enum SessionOp {
    /// List sessions.
    List(ListArgs),
    /// End the sessions a filter matches (e.g. one client's, for an abuse
    /// case); `--ipv6 ::/0` matches all.
    Flush(ListArgs),
}

#[derive(Subcommand, Debug)]
enum BibOp {
    /// List BIB entries.
    List(ListArgs),
    /// Add a static entry (a port forward to an IPv6 server).
    Add {
        /// tcp, udp or icmp.
        #[arg(long, value_parser = protocol)]
        protocol: Protocol,
        /// The IPv6 server, ADDR#PORT.
        #[arg(long)]
        ipv6: Transport6,
        /// Its public IPv4 side, ADDR#PORT (inside pool4).
        #[arg(long)]
        ipv4: Transport4,
        /// Instance (default: the only stateful one).
        #[arg(long)]
        instance: Option<String>,
    },
    /// Remove a static entry.
    Del {
        /// tcp, udp or icmp.
        #[arg(long, value_parser = protocol)]
        protocol: Protocol,
        /// Its IPv4 side, ADDR#PORT.
        #[arg(long)]
        ipv4: Transport4,
        /// Instance (default: the only stateful one).
        #[arg(long)]
        instance: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum Pool4Op {
    /// Addresses with ports in use per protocol.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigOp {
    /// Validate a file and say what a reload of it would change.
    Check {
        /// The file (default: the one the daemon runs).
        file: Option<PathBuf>,
        /// Validate here only, without asking the daemon.
        #[arg(long)]
        local: bool,
    },
    /// Re-read the daemon's configuration file and apply it.
    Reload,
    /// Print the running configuration.
    Show,
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// tcp, udp or icmp.
    #[arg(long, value_parser = protocol)]
    protocol: Option<Protocol>,
    /// IPv6 client address or prefix.
    #[arg(long)]
    ipv6: Option<String>,
    /// IPv4 address (mapping, or remote for sessions).
    #[arg(long)]
    ipv4: Option<Ipv4Addr>,
    /// Instance (default: every stateful one).
    #[arg(long)]
    instance: Option<String>,
    /// Most rows.
    #[arg(long)]
    limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

impl ListArgs {
    fn query(&self) -> Query {
        Query {
            instance: self.instance.clone(),
            protocol: self.protocol,
            ipv6: self.ipv6.clone(),
            ipv4: self.ipv4,
            limit: self.limit,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Table,
    Csv,
    Json,
}

fn protocol(s: &str) -> Result<Protocol, String> {
    Protocol::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| format!("{s:?}: tcp, udp or icmp"))
}

/// The socket to use: --socket, else the configuration's, else the default.
fn socket(a: &Args) -> PathBuf {
    if let Some(s) = &a.socket {
        return s.clone();
    }
    if let Some(s) = std::env::var_os("NAT64CTL_SOCKET") {
        return PathBuf::from(s);
    }
    match Config::from_file(&a.config) {
        Ok(c) => c.management.control_socket,
        Err(_) => PathBuf::from("/run/nat64d/control.sock"),
    }
}

/// Rows as an aligned table, CSV or JSON.
fn print_rows(format: Format, header: &[&str], rows: &[Vec<String>], json: &Value) -> Result<(), String> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(json).map_err(|e| e.to_string())?),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record(header).map_err(|e| e.to_string())?;
            for r in rows {
                w.write_record(r).map_err(|e| e.to_string())?;
            }
            w.flush().map_err(|e| e.to_string())?;
        }
        Format::Table => print!("{}", table(header, rows)),
    }
    Ok(())
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let s: Vec<String> = cells.zip(&width).map(|(c, w)| format!("{c:<w$}")).collect();
        s.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for r in rows {
        out += &line(&mut r.iter().map(String::as_str));
    }
    out
}

fn session_rows(v: &[SessionRow]) -> Vec<Vec<String>> {
    v.iter()
        .map(|s| {
            vec![
                s.instance.clone(),
                s.protocol.clone(),
                s.state.clone().unwrap_or_else(|| "-".into()),
                format!("{}#{}", s.ipv6, s.ipv6_port),
                format!("{}#{}", s.ipv4, s.ipv4_port),
                format!("{}#{}", s.remote, s.remote_port),
                s.expires_in_s.to_string(),
                s.worker.to_string(),
            ]
        })
        .collect()
}

fn bib_rows(v: &[BibRow]) -> Vec<Vec<String>> {
    v.iter()
        .map(|b| {
            vec![
                b.instance.clone(),
                b.protocol.clone(),
                format!("{}#{}", b.ipv6, b.ipv6_port),
                format!("{}#{}", b.ipv4, b.ipv4_port),
                if b.is_static { "static" } else { "dynamic" }.into(),
                b.sessions.to_string(),
                b.worker.to_string(),
            ]
        })
        .collect()
}

fn pool4_rows(v: &[Pool4Row]) -> Vec<Vec<String>> {
    v.iter()
        .map(|p| {
            let pct = if p.total == 0 { 0.0 } else { 100.0 * f64::from(p.in_use) / f64::from(p.total) };
            vec![
                p.instance.clone(),
                p.address.to_string(),
                p.protocol.clone(),
                p.ports.clone(),
                p.in_use.to_string(),
                p.total.to_string(),
                format!("{pct:.1}%"),
            ]
        })
        .collect()
}

fn field<T: serde::de::DeserializeOwned>(v: &Value, k: &str) -> Result<T, String> {
    serde_json::from_value(v.get(k).cloned().unwrap_or(Value::Null)).map_err(|e| format!("bad answer: {e}"))
}

fn truncated(v: &Value) {
    if v["truncated"] == Value::Bool(true) {
        eprintln!("nat64ctl: listing cut at the limit; narrow it with filters or raise --limit");
    }
}

fn print_stats(v: &Value) {
    let u = |x: &Value| x.as_u64().unwrap_or(0);
    println!("generation {}  workers {}", u(&v["generation"]), u(&v["workers"]));
    println!("counters:");
    for (k, x) in v["counters"].as_object().into_iter().flatten() {
        println!("  {k:<24} {}", u(x));
    }
    println!("drops:");
    let mut any = false;
    for (stage, reasons) in v["drops"].as_object().into_iter().flatten() {
        for (r, x) in reasons.as_object().into_iter().flatten() {
            println!("  {:<40} {}", format!("{stage}/{r}"), u(x));
            any = true;
        }
    }
    if !any {
        println!("  (none)");
    }
    for i in v["nat64"].as_array().into_iter().flatten() {
        println!("nat64 instance {}:", i["instance"].as_str().unwrap_or("?"));
        for (k, x) in i.as_object().into_iter().flatten().filter(|(k, _)| *k != "instance") {
            println!("  {k:<24} {}", u(x));
        }
    }
    for p in v["ports"].as_array().into_iter().flatten() {
        println!(
            "port {}: link {}  rx {} pkts / {} B  tx {} pkts / {} B  missed {}  errors {}/{}",
            p["name"].as_str().unwrap_or("?"),
            if p["up"] == Value::Bool(true) { "up" } else { "DOWN" },
            u(&p["rx_packets"]),
            u(&p["rx_bytes"]),
            u(&p["tx_packets"]),
            u(&p["tx_bytes"]),
            u(&p["rx_missed"]),
            u(&p["rx_errors"]),
            u(&p["tx_errors"])
        );
        // IPv4 ports: how return traffic reaches its owner.
        match p["steering"].as_str() {
            Some("flow") => println!("  steering: flow ({} NIC rules)", u(&p["steering_rules"])),
            Some(m) if !m.is_empty() => match p["steering_reason"].as_str() {
                Some(why) => println!("  steering: {m} ({why})"),
                None => println!("  steering: {m}"),
            },
            _ => {}
        }
    }
    if v["mbufs"].is_object() {
        println!("mbufs: {} in use, {} free", u(&v["mbufs"]["in_use"]), u(&v["mbufs"]["available"]));
    }
}

const LOOKUP_HEADER: [&str; 8] = ["instance", "mode", "protocol", "ipv6", "ipv4", "ports", "from", "until"];

fn lookup_rows(v: &[lookup::Row]) -> Vec<Vec<String>> {
    v.iter()
        .map(|r| {
            vec![
                r.instance.clone(),
                r.mode.clone(),
                r.protocol.clone(),
                r.ipv6_prefix.clone(),
                r.ipv4.to_string(),
                format!("{}-{}", r.port_first, r.port_last),
                r.from.clone().unwrap_or_else(|| "-".into()),
                r.until.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect()
}

/// `nat64ctl lookup`: see [`Cmd::Lookup`].
fn lookup_cmd(
    a: &Args,
    address: &str,
    instance: Option<&str>,
    log: Option<&Path>,
    at: Option<&str>,
    daemon: bool,
) -> Result<Vec<lookup::Row>, String> {
    let target: lookup::Target = address.parse()?;
    let t = Duration::from_secs(a.timeout);
    let ask = || -> Result<Vec<lookup::Row>, String> {
        let cmd = Command::Lookup { address: address.to_string(), instance: instance.map(str::to_string) };
        let v = call(&socket(a), &cmd, t).map_err(|e| e.to_string())?;
        field(&v, "lookup")
    };
    if daemon {
        return ask();
    }
    let cfg = Config::from_file(&a.config).map_err(|e| format!("{e} (or use --daemon)"))?;
    let mut rows = lookup::from_config(&cfg, target, instance)?;
    if !lookup::has_blocks(&cfg, instance) {
        return Ok(rows);
    }
    match log {
        Some(file) => {
            let at = match at {
                Some(s) => humantime::parse_rfc3339_weak(s).map_err(|e| format!("--at {s:?}: {e}"))?,
                None => std::time::SystemTime::now(),
            };
            let open = || {
                std::fs::File::open(file)
                    .map(std::io::BufReader::new)
                    .map_err(|e| format!("{}: {e}", file.display()))
            };
            let (mut found, skipped) = lookup::from_log(open()?, target, at, instance, None)?;
            lookup::releases(open()?, &mut found, at);
            if skipped.lines > 0 {
                eprintln!(
                    "{}: {} unreadable block line(s), the first at line {}",
                    file.display(),
                    skipped.lines,
                    skipped.first
                );
            }
            rows.extend(found);
        }
        None => rows.extend(ask()?.into_iter().filter(|r| r.mode == "blocks")),
    }
    Ok(rows)
}

fn local_check(file: &Path) -> Result<(), String> {
    match control::config::check(file) {
        Ok(summary) => {
            print!("{summary}");
            Ok(())
        }
        Err(errs) => Err(errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")),
    }
}

fn print_reload(v: &Value, verb: &str) {
    let n = v["changes"]["changes"].as_array().map_or(0, Vec::len);
    println!(
        "{}: {verb}; generation {}, {n} changed key(s)",
        v["path"].as_str().unwrap_or("?"),
        v["generation"]
    );
    if v["applied"] == Value::Bool(true) {
        println!("  ended: {} session(s), {} BIB entry(ies)", v["ended_sessions"], v["ended_bib"]);
    }
    for c in v["changes"]["changes"].as_array().into_iter().flatten() {
        println!("  {} ({})", c["path"].as_str().unwrap_or("?"), c["class"].as_str().unwrap_or("?"));
    }
    for w in v["warnings"].as_array().into_iter().flatten() {
        println!("  warning: {}", w.as_str().unwrap_or("?"));
    }
}

fn run(a: &Args) -> Result<(), String> {
    let sock = socket(a);
    let t = Duration::from_secs(a.timeout.max(1));
    let ask = |c: Command| call(&sock, &c, t).map_err(|e| e.to_string());
    match &a.cmd {
        Cmd::Session { op: SessionOp::List(l) } => {
            let v = ask(Command::Sessions(l.query()))?;
            let rows: Vec<SessionRow> = field(&v, "sessions")?;
            let header = ["instance", "proto", "state", "ipv6", "ipv4", "remote", "expires_s", "worker"];
            print_rows(l.format, &header, &session_rows(&rows), &v["sessions"])?;
            truncated(&v);
        }
        Cmd::Session { op: SessionOp::Flush(l) } => {
            let v = ask(Command::Flush(l.query()))?;
            println!("{} session(s) ended", v["flushed"]);
        }
        Cmd::Bib { op: BibOp::List(l) } => {
            let v = ask(Command::Bib(l.query()))?;
            let rows: Vec<BibRow> = field(&v, "bib")?;
            let header = ["instance", "proto", "ipv6", "ipv4", "kind", "sessions", "worker"];
            print_rows(l.format, &header, &bib_rows(&rows), &v["bib"])?;
            truncated(&v);
        }
        Cmd::Bib { op: BibOp::Add { protocol, ipv6, ipv4, instance } } => {
            let v = ask(Command::BibAdd {
                instance: instance.clone(),
                protocol: *protocol,
                ipv6: *ipv6,
                ipv4: *ipv4,
            })?;
            println!("added {} {ipv6} <-> {ipv4} (worker {})", protocol.name(), v["worker"]);
        }
        Cmd::Bib { op: BibOp::Del { protocol, ipv4, instance } } => {
            let v = ask(Command::BibDel { instance: instance.clone(), protocol: *protocol, ipv4: *ipv4 })?;
            println!("removed {} {ipv4} (worker {})", protocol.name(), v["worker"]);
        }
        Cmd::Pool4 { op: Pool4Op::List { format } } => {
            let v = ask(Command::Pool4)?;
            let rows: Vec<Pool4Row> = field(&v, "pool4")?;
            let header = ["instance", "address", "proto", "ports", "in_use", "total", "use"];
            print_rows(*format, &header, &pool4_rows(&rows), &v["pool4"])?;
        }
        Cmd::Stats { format } => {
            let v = ask(Command::Stats)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?),
                _ => print_stats(&v),
            }
        }
        Cmd::Config { op: ConfigOp::Check { file, local } } => {
            if *local {
                return local_check(file.as_deref().unwrap_or(&a.config));
            }
            let path = file.as_ref().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()));
            match call(&sock, &Command::ConfigCheck { path }, t) {
                Ok(v) => print_reload(&v, "valid, a reload would apply it"),
                Err(CallError::NotRunning(_)) => {
                    eprintln!("nat64ctl: nat64d is not running; checking the file here");
                    return local_check(file.as_deref().unwrap_or(&a.config));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Cmd::Config { op: ConfigOp::Reload } => print_reload(&ask(Command::ConfigReload)?, "reloaded"),
        Cmd::Config { op: ConfigOp::Show } => {
            let v = ask(Command::ConfigShow)?;
            println!("# {} (generation {})", v["path"].as_str().unwrap_or("?"), v["generation"]);
            print!("{}", v["yaml"].as_str().unwrap_or(""));
        }
        Cmd::Lookup { address, instance, log, at, daemon, format } => {
            let rows = lookup_cmd(a, address, instance.as_deref(), log.as_deref(), at.as_deref(), *daemon)?;
            print_rows(*format, &LOOKUP_HEADER, &lookup_rows(&rows), &json!({ "lookup": rows }))?;
            if rows.is_empty() {
                return Err(format!("{address}: no client or mapping found"));
            }
        }
        Cmd::Health => {
            let v = ask(Command::Health)?;
            let ready = v["ready"] == Value::Bool(true);
            println!("alive: yes\nready: {}", if ready { "yes" } else { "no" });
            for p in v["problems"].as_array().into_iter().flatten() {
                println!("  {}", p.as_str().unwrap_or("?"));
            }
            for (w, age) in v["workers"].as_array().into_iter().flatten().enumerate() {
                match age.as_u64() {
                    Some(ms) => println!("worker {w}: last poll {ms} ms ago"),
                    None => println!("worker {w}: not started"),
                }
            }
            for p in v["ports"].as_array().into_iter().flatten() {
                let up = p[1] == Value::Bool(true);
                println!("port {}: {}", p[0].as_str().unwrap_or("?"), if up { "up" } else { "down" });
            }
            if !ready {
                return Err("not ready".into());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nat64ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(&["a", "bb"], &[vec!["xyz".into(), "1".into()], vec!["q".into(), "22".into()]]);
        assert_eq!(t, "a    bb\nxyz  1\nq    22\n");
    }

    #[test]
    fn arguments_parse_into_commands() {
        let a = Args::try_parse_from([
            "nat64ctl",
            "--socket",
            "/tmp/s",
            "session",
            "list",
            "--protocol",
            "tcp",
            "--ipv6",
            "2001:db8::/64",
            "--format",
            "csv",
        ])
        .unwrap();
        let Cmd::Session { op: SessionOp::List(l) } = &a.cmd else { panic!() };
        assert_eq!(l.query().protocol, Some(Protocol::Tcp));
        assert_eq!(l.format, Format::Csv);
        assert_eq!(socket(&a), PathBuf::from("/tmp/s"));
        let a = Args::try_parse_from([
            "nat64ctl",
            "bib",
            "add",
            "--protocol",
            "tcp",
            "--ipv6",
            "2001:db8::5#80",
            "--ipv4",
            "203.0.113.1#8080",
        ])
        .unwrap();
        let Cmd::Bib { op: BibOp::Add { ipv4, .. } } = a.cmd else { panic!() };
        assert_eq!(ipv4.port, 8080);
        assert!(Args::try_parse_from(["nat64ctl", "session", "list", "--protocol", "sctp"]).is_err());
        assert!(Args::try_parse_from(["nat64ctl", "bib", "add", "--protocol", "tcp", "--ipv6", "x"]).is_err());
    }

    #[test]
    fn pool4_rows_show_use() {
        let r = pool4_rows(&[Pool4Row {
            instance: "plat".into(),
            address: Ipv4Addr::new(203, 0, 113, 1),
            protocol: "tcp".into(),
            ports: "1024-1033".into(),
            total: 10,
            in_use: 4,
        }]);
        assert_eq!(r[0][6], "40.0%");
    }
}
