//! nat64d: the NAT64 / SIIT appliance.
//!
//! `nat64d --config FILE [--check] [-- EAL ARGS...]`
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// A DPDK NAT64 / SIIT appliance.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The YAML configuration file.
    #[arg(short, long, default_value = "/etc/nat64d/nat64d.yaml")]
    config: PathBuf,
    /// Validate the configuration and exit (0: valid, 1: errors listed).
    #[arg(long)]
    check: bool,
    /// On exit, write the final counters to this file as JSON.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// Extra EAL arguments (after `--`), appended to the configuration's.
    #[arg(last = true)]
    eal: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Level and format from the configuration's `logging` section (when it
    // parses), NAT64D_LOG overriding the level; reloadable at run time.
    control::logging::init(&args.config);
    if args.check {
        return match control::config::check(&args.config) {
            Ok(summary) => {
                print!("{summary}");
                ExitCode::SUCCESS
            }
            Err(errs) => {
                for e in errs {
                    eprintln!("{e}");
                }
                ExitCode::FAILURE
            }
        };
    }
    run(args)
}

#[cfg(feature = "dpdk")]
fn run(args: Args) -> ExitCode {
    let opts =
        control::daemon::Options { config: args.config, eal_extra: args.eal, stats_file: args.stats_file };
    match control::daemon::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nat64d: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "dpdk"))]
fn run(_: Args) -> ExitCode {
    eprintln!("nat64d: built without the dpdk feature; only --check is available");
    ExitCode::FAILURE
}
