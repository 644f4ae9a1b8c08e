//! What the validator needs to know about the machine: online CPUs and PCI
//! devices. Tests build a [`Host`] by hand instead of reading sysfs.

use std::collections::BTreeSet;
use std::path::Path;

/// The machine the configuration is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Online lcores; `None` when they could not be read (check skipped).
    pub online_lcores: Option<BTreeSet<u32>>,
    /// PCI addresses in `DDDD:BB:DD.F` form, lower case; `None` when
    /// /sys/bus/pci is not readable (check skipped).
    pub pci_devices: Option<BTreeSet<String>>,
}

impl Host {
    /// Reads /sys/devices/system/cpu/online and /sys/bus/pci/devices.
    pub fn probe() -> Host {
        Host::probe_at(Path::new("/sys"))
    }

    /// Like [`Host::probe`] with another sysfs root.
    pub fn probe_at(sys: &Path) -> Host {
        let online_lcores = std::fs::read_to_string(sys.join("devices/system/cpu/online"))
            .ok()
            .and_then(|s| parse_cpu_list(&s));
        let pci_devices = std::fs::read_dir(sys.join("bus/pci/devices")).ok().map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .map(|n| n.to_ascii_lowercase())
                .collect()
        });
        Host { online_lcores, pci_devices }
    }

    /// A host with exactly these lcores and PCI devices.
    pub fn with(lcores: impl IntoIterator<Item = u32>, pci: &[&str]) -> Host {
        Host {
            online_lcores: Some(lcores.into_iter().collect()),
            pci_devices: Some(pci.iter().map(|p| p.to_ascii_lowercase()).collect()),
        }
    }
}

/// Parses the kernel's CPU list format (`0-3,8,10-11`).
pub fn parse_cpu_list(s: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b): (u32, u32) = match part.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let n = part.parse().ok()?;
                (n, n)
            }
        };
        if a > b || b - a > 65536 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n").unwrap().into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list("0").unwrap().len(), 1);
        assert!(parse_cpu_list("3-1").is_none());
        assert!(parse_cpu_list("x").is_none());
    }

    #[test]
    fn probe_reads_a_fake_sysfs() {
        let root = std::env::temp_dir().join(format!("nat64-host-{}", std::process::id()));
        std::fs::create_dir_all(root.join("devices/system/cpu")).unwrap();
        std::fs::create_dir_all(root.join("bus/pci/devices/0000:03:00.0")).unwrap();
        std::fs::write(root.join("devices/system/cpu/online"), "0-1,4\n").unwrap();
        let h = Host::probe_at(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(h, Host::with([0, 1, 4], &["0000:03:00.0"]));
        // Nothing readable: both checks are skipped rather than failing.
        assert_eq!(Host::probe_at(&root), Host::default());
    }
}
