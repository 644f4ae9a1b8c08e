//! Graybox conformance harness shared by the SIIT and NAT64 runners:
//! corpus location, manifest loading, packet comparison with ignored
//! offsets and a readable hex diff.
#![allow(dead_code)]

use serde::Deserialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which translator port a packet enters or leaves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The IPv4-facing port.
    Ipv4,
    /// The IPv6-facing port.
    Ipv6,
}

/// One packet injected by a case.
#[derive(Debug, Clone, Deserialize)]
pub struct SendPkt {
    /// Port it enters on.
    pub side: Side,
    /// Path under `packets/`.
    pub file: String,
}

/// One conformance case from `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// Unique id.
    pub id: String,
    /// `siit` or `nat64`.
    pub suite: String,
    /// The reference suite's group name.
    pub group: String,
    /// Packets injected, in order.
    pub send: Vec<SendPkt>,
    /// Packets expected on `expect_side`, in order.
    pub expect: Vec<String>,
    /// Where the expected packets leave.
    pub expect_side: Side,
    /// Byte offsets (from the IP header) not compared.
    #[serde(default)]
    pub ignore_offsets: Vec<usize>,
    /// Seconds the reference suite waits before checking.
    #[serde(default)]
    pub wait_s: f64,
    /// Translator configuration for the case (suite-specific keys).
    pub config: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    cases: Vec<Case>,
}

/// The corpus: its directory and cases in run order.
pub struct Corpus {
    /// Corpus root (holds `manifest.json` and `packets/`).
    pub dir: PathBuf,
    /// All cases, in the order the reference suite runs them.
    pub cases: Vec<Case>,
}

/// `$NAT64_CONFORMANCE_DIR`, else the first `shared/conformance/jool-graybox`
/// beside the workspace or beside one of its ancestors (`../shared` of a
/// checkout, and also of a git worktree kept in a subdirectory).
pub fn locate() -> Option<PathBuf> {
    let has = |d: &Path| d.join("manifest.json").is_file();
    if let Some(d) = std::env::var_os("NAT64_CONFORMANCE_DIR") {
        let d = PathBuf::from(d);
        return has(&d).then_some(d);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    workspace.ancestors().skip(1).map(|a| a.join("shared/conformance/jool-graybox")).find(|d| has(d))
}

impl Corpus {
    /// Load the manifest under `dir`.
    pub fn load(dir: &Path) -> Result<Corpus, String> {
        let text = std::fs::read_to_string(dir.join("manifest.json"))
            .map_err(|e| format!("reading manifest: {e}"))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| format!("parsing manifest: {e}"))?;
        Ok(Corpus { dir: dir.to_path_buf(), cases: m.cases })
    }

    /// The bytes of a packet file (path relative to `packets/`).
    pub fn packet(&self, file: &str) -> Result<Vec<u8>, String> {
        std::fs::read(self.dir.join("packets").join(file)).map_err(|e| format!("{file}: {e}"))
    }
}

/// Compare one packet. `Ok` when equal outside `ignore`; otherwise a
/// readable report: lengths and a hex dump of every differing 16-byte row.
pub fn compare(expected: &[u8], actual: &[u8], ignore: &[usize]) -> Result<(), String> {
    let n = expected.len().max(actual.len());
    let differs = |i: usize| !ignore.contains(&i) && expected.get(i) != actual.get(i);
    if (0..n).all(|i| !differs(i)) {
        return Ok(());
    }
    let mut r = String::new();
    let _ = writeln!(r, "length expected {} actual {}", expected.len(), actual.len());
    let hex = |b: &[u8], row: usize, diff: &dyn Fn(usize) -> bool| {
        let mut s = String::new();
        for i in row..row + 16 {
            match b.get(i) {
                Some(x) if diff(i) => {
                    let _ = write!(s, "{x:02x}*");
                }
                Some(x) => {
                    let _ = write!(s, "{x:02x} ");
                }
                None => s.push_str("   "),
            }
        }
        s
    };
    let mut shown = 0;
    for row in (0..n).step_by(16) {
        if (row..row + 16).any(differs) {
            let _ = writeln!(r, "  {row:04x} exp {}", hex(expected, row, &differs));
            let _ = writeln!(r, "  {row:04x} got {}", hex(actual, row, &differs));
            shown += 1;
            if shown == 12 {
                let _ = writeln!(r, "  ...");
                break;
            }
        }
    }
    Err(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_respects_ignore() {
        assert!(compare(&[1, 2, 3], &[1, 9, 3], &[1]).is_ok());
        let e = compare(&[1, 2, 3], &[1, 9, 3], &[]).unwrap_err();
        assert!(e.contains("09*"), "{e}");
        assert!(compare(&[1, 2], &[1, 2, 0], &[]).is_err());
    }
}
