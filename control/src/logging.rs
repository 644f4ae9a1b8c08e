//! Process logging with tracing: level and format (text or JSON lines)
//! from the configuration's `logging` section, to stderr (the journal
//! under systemd). Both can change on a hot reload. `NAT64D_LOG` (an
//! EnvFilter directive such as `debug` or `control=trace`) overrides the
//! configured level.

use std::path::Path;
use std::sync::OnceLock;

use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{Config, LogFormat, LogLevel, Logging};

/// The environment variable that overrides the configured level.
pub const ENV: &str = "NAT64D_LOG";

type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type Fmt = Box<dyn Layer<Filtered> + Send + Sync>;

struct Handles {
    filter: reload::Handle<EnvFilter, Registry>,
    fmt: reload::Handle<Fmt, Filtered>,
    env_override: bool,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// The EnvFilter directive of a level.
pub fn directive(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

fn fmt_layer(f: LogFormat) -> Fmt {
    match f {
        LogFormat::Text => Box::new(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)),
        LogFormat::Json => Box::new(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)),
    }
}

/// Install the global subscriber with the `logging` section of the file
/// at `config` (defaults when it does not parse: `--check` and start-up
/// report that error themselves). Call once, first thing in `main`.
pub fn init(config: &Path) {
    let l = Config::from_file(config).map(|c| c.logging).unwrap_or_default();
    let env = std::env::var(ENV).ok().and_then(|v| EnvFilter::try_new(v).ok());
    let env_override = env.is_some();
    let filter = env.unwrap_or_else(|| EnvFilter::new(directive(l.level)));
    let (filter, fh) = reload::Layer::new(filter);
    let (fmt, fmth) = reload::Layer::new(fmt_layer(l.format));
    if tracing_subscriber::registry().with(filter).with(fmt).try_init().is_ok() {
        let _ = HANDLES.set(Handles { filter: fh, fmt: fmth, env_override });
    }
}

/// Apply a reloaded `logging` section (level unless `NAT64D_LOG` is set,
/// and format).
pub fn apply(l: &Logging) -> Result<(), String> {
    let h = HANDLES.get().ok_or("logging was not set up by control::logging::init")?;
    if !h.env_override {
        h.filter.reload(EnvFilter::new(directive(l.level))).map_err(|e| e.to_string())?;
    }
    h.fmt.reload(fmt_layer(l.format)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_filter_directives() {
        for l in [LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug, LogLevel::Trace] {
            assert!(EnvFilter::try_new(directive(l)).is_ok());
        }
        assert_eq!(directive(LogLevel::Warn), "warn");
    }

    #[test]
    fn apply_without_init_says_so() {
        // Tests never install the global subscriber through init.
        let e = apply(&Logging::default()).unwrap_err();
        assert!(e.contains("not set up"), "{e}");
    }
}
