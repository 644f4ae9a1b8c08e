//! The YAML configuration: schema, loading, validation.
//!
//! ```text
//! Config::from_file(path)          parse only: the first syntax/schema error
//! Document::from_file(path)        parse, keeping the text for positions
//!   .validate(&Host::probe())      every semantic error (and warnings)
//! check(path)                      both, for `nat64d --check`
//! ```
//!
//! Every error prints as `FILE:LINE:COL: RULE: message`; semantic errors are
//! positioned on the offending key by re-reading the text (see `locate`).

pub mod error;
pub mod host;
pub(crate) mod locate;
pub mod schema;
pub mod special;
pub mod types;
mod validate;

pub use error::{ConfigError, Rule};
pub use host::Host;
pub use schema::*;
pub use types::{MacAddr, PortRange, Prefix4, Prefix6, SessionLog, TrafficClass, Transport4, Transport6};
pub use validate::{eal_lcores, normalize_pci, KNOWN_VDEV_DRIVERS};

use std::fmt;
use std::path::Path;

impl Config {
    /// Parses `text`; `name` (usually the file name) prefixes every error.
    /// Stops at the first syntax or schema error; run
    /// [`Document::validate`] for the semantic checks.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, name: &str) -> Result<Config, ConfigError> {
        serde_yaml_ng::from_str(text).map_err(|e| error::from_yaml(name, &e))
    }

    /// Reads and parses a file (see [`Config::from_str`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Document::from_file(path).map(|d| d.config)
    }

    /// This configuration as YAML (every default written out).
    pub fn to_yaml(&self) -> String {
        // Plain data with string keys: serialisation cannot fail.
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }
}

/// A parsed configuration together with the text it came from, so that
/// validation can point at lines and columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The name errors are reported under (the path, for files).
    pub name: String,
    /// The YAML text.
    pub text: String,
    /// The parsed configuration.
    pub config: Config,
}

/// serde reports a duplicate key at its mapping; point at the duplicate.
fn refine(mut e: ConfigError, text: &str) -> ConfigError {
    if e.rule != Rule::DuplicateKey {
        return e;
    }
    let key = e.message.split('`').nth(1);
    let parent = locate::parse_serde_path(&e.path);
    if let (Some(key), Some(parent)) = (key, parent) {
        if let Some((line, column)) = locate::locate_duplicate(text, &parent, key) {
            e.line = line;
            e.column = column;
        }
    }
    e
}

/// The outcome of validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Problems that make the configuration unusable.
    pub errors: Vec<ConfigError>,
    /// Problems worth a look that do not stop the appliance.
    pub warnings: Vec<ConfigError>,
}

impl Document {
    /// Parses `text` (see [`Config::from_str`]).
    pub fn parse(text: impl Into<String>, name: impl Into<String>) -> Result<Document, ConfigError> {
        let (text, name) = (text.into(), name.into());
        let config = Config::from_str(&text, &name).map_err(|e| refine(e, &text))?;
        Ok(Document { name, text, config })
    }

    /// Reads and parses a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Document, ConfigError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: name.clone(),
            line: 1,
            column: 1,
            rule: Rule::Io,
            message: format!("cannot read the file: {e}"),
            path: String::new(),
        })?;
        Document::parse(text, name)
    }

    /// Runs every semantic check against `host` and positions each finding
    /// on the key it is about.
    pub fn validate(&self, host: &Host) -> Validation {
        let mut v = Validation::default();
        let findings = validate::validate(&self.config, host);
        let paths: Vec<locate::DocPath> = findings.iter().map(|f| f.path.clone()).collect();
        let positions = locate::locate_all(&self.text, &paths);
        for (f, (line, column)) in findings.into_iter().zip(positions) {
            let err = ConfigError {
                file: self.name.clone(),
                line,
                column,
                rule: f.rule,
                message: f.message,
                path: f.path.to_string(),
            };
            if f.warning {
                v.warnings.push(err);
            } else {
                v.errors.push(err);
            }
        }
        v
    }
}

/// What `nat64d --check` prints for a valid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The file checked.
    pub file: String,
    /// Interface names with their devices.
    pub interfaces: Vec<(String, String)>,
    /// Instance kinds and names (`nat64 plat`).
    pub instances: Vec<(String, String)>,
    /// Worker lcores (empty: EAL's lcores but the main one).
    pub workers: Vec<u32>,
    /// Warnings (the file is valid regardless).
    pub warnings: Vec<ConfigError>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.warnings {
            writeln!(f, "{w} (warning)")?;
        }
        writeln!(f, "{}: configuration is valid", self.file)?;
        for (name, dev) in &self.interfaces {
            writeln!(f, "  interface {name} on {dev}")?;
        }
        for (kind, name) in &self.instances {
            writeln!(f, "  {kind} instance {name}")?;
        }
        if self.workers.is_empty() {
            writeln!(f, "  workers: every EAL lcore but the main one")
        } else {
            let w: Vec<String> = self.workers.iter().map(u32::to_string).collect();
            writeln!(f, "  workers on lcores {}", w.join(","))
        }
    }
}

/// Parses and validates a file against this machine: what `nat64d --check`
/// runs. On failure, every error found (a parse error is reported alone).
pub fn check(path: impl AsRef<Path>) -> Result<Summary, Vec<ConfigError>> {
    check_with(path, &Host::probe())
}

/// [`check`] against a given host description.
pub fn check_with(path: impl AsRef<Path>, host: &Host) -> Result<Summary, Vec<ConfigError>> {
    let doc = Document::from_file(path).map_err(|e| vec![e])?;
    let v = doc.validate(host);
    if !v.errors.is_empty() {
        return Err(v.errors);
    }
    let c = &doc.config;
    Ok(Summary {
        file: doc.name.clone(),
        interfaces: c.interfaces.iter().map(|i| (i.name.clone(), i.device.clone())).collect(),
        instances: c.instances.iter().map(|i| (i.kind().to_string(), i.name().to_string())).collect(),
        workers: c.dpdk.workers.clone(),
        warnings: v.warnings,
    })
}
