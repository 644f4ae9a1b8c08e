//! flowgen: pcap files of N benchmark flows for nat64d and dpdk-testpmd.
//!
//! ```text
//! flowgen v6  --flows 4096 --proto udp --frame-size 84 --out in6.pcap
//! flowgen v4  --flows 4096 --proto udp --frame-size 84 --out in4.pcap   # SIIT returns
//! flowgen answer --input out4.pcap --out ret4.pcap                     # stateful returns
//! flowgen v4-static --flows 4096 --static-bib bib.yaml --out ret4.pcap  # returns to static BIB
//! ```
//! `v6`: one IPv6 packet per flow towards pool6. `v4`: the servers'
//! answers to the clients' SIIT (EAMT) addresses. `answer`: the answers to
//! what a stateful translator sent out (its pool4 address:port choice is
//! only known from its output). `v4-static`: the answers to a fixed pool4
//! binding per client endpoint, plus those bindings as nat64d `static_bib`
//! entries, so the return stream is known before the translator starts.
//! See perf/README.md for the address plan.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use perf::flows::{self, Macs, Plan, Proto, TcpFlags, MAX_FRAME, MIN_FRAME6};

#[derive(Parser)]
#[command(about = "Write pcap files of benchmark flows (IPv6 to pool6, IPv4 returns)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// IPv6 client packets towards pool6, one per flow.
    V6(Gen),
    /// IPv4 server answers to the clients' SIIT (EAMT) addresses.
    V4(Gen),
    /// Stateful return stream to fixed pool4 bindings, and those bindings
    /// as nat64d `static_bib` entries.
    V4Static {
        #[command(flatten)]
        gen: Gen,
        /// First pool4 address (the bench's `pool4` prefix).
        #[arg(long, default_value = "198.51.100.0")]
        pool4: Ipv4Addr,
        /// pool4 addresses to spread the bindings over.
        #[arg(long, default_value_t = 64)]
        pool4_addrs: u32,
        /// First pool4 port (the default pool4 range starts at 1024).
        #[arg(long, default_value_t = 1024)]
        first_port: u16,
        /// Where the `static_bib` entries go (one YAML list item a line).
        #[arg(long)]
        static_bib: PathBuf,
    },
    /// Answers to the IPv4 frames a translator sent (stateful return stream).
    Answer {
        /// Frames the translator wrote on its IPv4 side.
        #[arg(long)]
        input: PathBuf,
        /// Output pcap.
        #[arg(long)]
        out: PathBuf,
        /// Source MAC of the answers.
        #[arg(long, default_value = "02:00:00:00:04:02")]
        src_mac: String,
        /// Destination MAC (the appliance's IPv4 port).
        #[arg(long, default_value = "02:00:00:00:04:01")]
        dst_mac: String,
    },
}

#[derive(Args)]
struct Gen {
    /// Number of distinct flows (one packet each; replay loops over them).
    #[arg(long, default_value_t = 4096)]
    flows: u32,
    /// udp, tcp, icmp or mix (round robin).
    #[arg(long, default_value = "udp")]
    proto: String,
    /// IPv6 frame size incl. FCS (78..=1518); IPv4 frames are 20 bytes less.
    #[arg(long, default_value_t = 84)]
    frame_size: usize,
    /// TCP segments as SYN (open sessions) or ACK.
    #[arg(long, default_value = "syn")]
    tcp_flags: String,
    /// First IPv6 client address.
    #[arg(long, default_value = "2001:db8:1::")]
    client6: Ipv6Addr,
    /// Distinct client addresses (at most 65536 with the default EAMT).
    #[arg(long, default_value_t = 65536)]
    clients: u32,
    /// Source ports per client (flows share client endpoints and differ by
    /// server); 0: a random port for every flow.
    #[arg(long, default_value_t = 0)]
    client_ports: u32,
    /// SIIT IPv4 address of the first client (EAMT 2001:db8:1::/112 <-> 198.18.0.0/16).
    #[arg(long, default_value = "198.18.0.0")]
    client4: Ipv4Addr,
    /// RFC 6052 /96 prefix.
    #[arg(long, default_value = "2001:db8:64::")]
    pool6: Ipv6Addr,
    /// First IPv4 server.
    #[arg(long, default_value = "203.0.113.0")]
    server4: Ipv4Addr,
    /// Distinct servers.
    #[arg(long, default_value_t = 256)]
    servers: u32,
    /// Port generator seed.
    #[arg(long, default_value_t = 4814)]
    seed: u64,
    /// Source MAC (the tester).
    #[arg(long)]
    src_mac: Option<String>,
    /// Destination MAC (the appliance's port on that side).
    #[arg(long)]
    dst_mac: Option<String>,
    /// Output pcap.
    #[arg(long)]
    out: PathBuf,
}

fn mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> =
        s.split(':').map(|h| u8::from_str_radix(h, 16)).collect::<Result<_, _>>().context("MAC address")?;
    v.try_into().map_err(|_| anyhow::anyhow!("MAC address needs 6 octets: {s}"))
}

fn plan(g: &Gen) -> Result<Plan> {
    if !(MIN_FRAME6..=MAX_FRAME).contains(&g.frame_size) {
        bail!("--frame-size must be {MIN_FRAME6}..={MAX_FRAME}");
    }
    if g.proto == "tcp" && g.frame_size < 78 {
        bail!("TCP needs at least 78-byte frames");
    }
    Ok(Plan {
        flows: g.flows,
        protos: Proto::parse_list(&g.proto).context("--proto: udp, tcp, icmp or mix")?,
        tcp_flags: match g.tcp_flags.as_str() {
            "syn" => TcpFlags::Syn,
            "ack" => TcpFlags::Ack,
            _ => bail!("--tcp-flags: syn or ack"),
        },
        frame6: g.frame_size,
        client6: g.client6,
        clients: g.clients,
        client_ports: g.client_ports,
        client4: g.client4,
        pool6: g.pool6,
        server4: g.server4,
        servers: g.servers,
        seed: g.seed,
    })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let (frames, out) = match &cli.cmd {
        Cmd::V6(g) => {
            let p = plan(g)?;
            let macs = Macs {
                src: mac(g.src_mac.as_deref().unwrap_or("02:00:00:00:06:02"))?,
                dst: mac(g.dst_mac.as_deref().unwrap_or("02:00:00:00:06:01"))?,
            };
            let f: Vec<Vec<u8>> = p.flows().iter().map(|f| p.frame6(f, macs, 1)).collect();
            (f, &g.out)
        }
        Cmd::V4(g) => {
            let p = plan(g)?;
            let macs = Macs {
                src: mac(g.src_mac.as_deref().unwrap_or("02:00:00:00:04:02"))?,
                dst: mac(g.dst_mac.as_deref().unwrap_or("02:00:00:00:04:01"))?,
            };
            let f: Vec<Vec<u8>> = p.flows().iter().map(|f| p.frame4_siit(f, macs, 1)).collect();
            (f, &g.out)
        }
        Cmd::V4Static { gen: g, pool4, pool4_addrs, first_port, static_bib } => {
            let p = plan(g)?;
            let macs = Macs {
                src: mac(g.src_mac.as_deref().unwrap_or("02:00:00:00:04:02"))?,
                dst: mac(g.dst_mac.as_deref().unwrap_or("02:00:00:00:04:01"))?,
            };
            let bs = p
                .bindings(*pool4, *pool4_addrs, *first_port)
                .context("pool4 has too few ports for the flows")?;
            let mut yaml = String::new();
            for b in bs.iter().filter(|b| b.first) {
                yaml.push_str("- ");
                yaml.push_str(&b.static_bib_yaml(&p));
                yaml.push('\n');
            }
            std::fs::write(static_bib, yaml).with_context(|| format!("writing {}", static_bib.display()))?;
            (bs.iter().map(|b| p.frame4_to(&b.flow, b.ipv4, b.port, macs, 1)).collect(), &g.out)
        }
        Cmd::Answer { input, out, src_mac, dst_mac } => {
            let macs = Macs { src: mac(src_mac)?, dst: mac(dst_mac)? };
            let got = flows::read_pcap(input).with_context(|| format!("reading {}", input.display()))?;
            let f: Vec<Vec<u8>> = got.iter().filter_map(|fr| flows::answer4(fr, macs)).collect();
            if f.len() != got.len() {
                eprintln!("flowgen: {} of {} frames were not answerable", got.len() - f.len(), got.len());
            }
            (f, out)
        }
    };
    flows::write_pcap(out, &frames).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("flowgen: {} frames -> {}", frames.len(), out.display());
    Ok(())
}
