//! Configuration errors: every one names the file, line, column and rule.

use std::fmt;

/// A stable name for each check, printed in every error so that operators
/// (and scripts) can grep for it. Never rename a rule: add a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The file could not be read.
    Io,
    /// The text is not well-formed YAML.
    YamlSyntax,
    /// A key that the schema does not know (often a typo).
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// The same key appears twice in one mapping.
    DuplicateKey,
    /// An enumerated value (or instance kind) that does not exist.
    UnknownVariant,
    /// A value of the wrong YAML type (list where a string was expected...).
    InvalidType,
    /// A value the schema rejects for another reason.
    InvalidValue,
    /// An address, prefix, MAC or `addr#port` that does not parse.
    AddressSyntax,
    /// A port (or ICMP identifier) range outside its protocol's space.
    PortRange,
    /// `traffic_class` is not `copy`, `zero` or 0-255.
    TrafficClass,
    /// `session_log` is not `off`, `stdout` or an absolute file path.
    SessionLogTarget,
    /// An RFC 6052 prefix whose length is not 32/40/48/56/64/96.
    Rfc6052PrefixLength,
    /// An RFC 6052 /96 prefix with a non-zero u-octet (bits 64-71).
    Rfc6052UOctet,
    /// A prefix with bits set after its length.
    PrefixHostBits,
    /// The well-known prefix used together with non-global IPv4 addresses.
    WkpNonGlobal,
    /// Two pool4 entries share an address and a port range.
    Pool4Overlap,
    /// A stateful instance without any pool4 entry.
    Pool4Empty,
    /// Two EAMT entries overlap on their IPv6 or IPv4 side.
    EamtOverlap,
    /// An EAMT entry whose IPv4 and IPv6 suffixes differ in length.
    EamSuffixLength,
    /// A static BIB entry whose IPv4 transport address is not in pool4.
    BibOutsidePool4,
    /// Two static BIB entries claim the same transport address.
    BibDuplicate,
    /// Two interfaces with the same name.
    DuplicateInterface,
    /// Two interfaces on the same DPDK device and VLAN.
    DuplicateDevice,
    /// An instance names an interface that is not defined.
    InterfaceUndefined,
    /// An address family that no (or the wrong) interface carries.
    InterfaceRole,
    /// Two instances with the same name.
    DuplicateInstance,
    /// Two stateful instances that would both claim the same packets.
    InstanceOverlap,
    /// A stateless instance with neither pool6 nor EAMT entries.
    SiitEmpty,
    /// A worker lcore that this machine does not have.
    LcoreMissing,
    /// A worker lcore listed twice.
    LcoreDuplicate,
    /// A worker lcore outside EAL's `-l`/`-c` set, or EAL's main lcore.
    LcoreNotInEal,
    /// A PCI device that does not exist on this machine.
    PciDeviceMissing,
    /// A virtual device whose driver is not a known DPDK PMD.
    VdevUnknownDriver,
    /// A device string that is neither a PCI address nor a vdev.
    DeviceSyntax,
    /// An 802.1Q VLAN id outside 1-4094.
    VlanRange,
    /// An MTU the interface's families cannot use.
    MtuRange,
    /// `dpdk.steering: flow` where flow rules cannot work (an IPv4
    /// interface on a VLAN).
    SteeringFlow,
    /// `lowest_ipv6_mtu` below the IPv6 minimum link MTU.
    LowestIpv6Mtu,
    /// An address of the wrong family for where it is used.
    AddressFamily,
    /// A MAC address that cannot be a unicast station address.
    MacInvalid,
    /// A zero or oversized timeout.
    TimeoutRange,
    /// A timeout below the RFC 6146 minimum (a warning).
    TimeoutBelowRfc6146,
    /// A session limit or client prefix length out of range.
    LimitRange,
    /// A filesystem path that must be absolute.
    PathAbsolute,
    /// No interface is configured.
    NoInterfaces,
    /// No translation instance is configured.
    NoInstances,
    /// A name that is empty or has characters outside `[A-Za-z0-9_.-]`.
    NameSyntax,
    /// The host could not be inspected, so a check was skipped (a warning).
    HostProbe,
    /// Sync peers that cannot be used: none, mixed unicast and multicast,
    /// another family than `listen`, a multicast group without an
    /// interface, or a wildcard `listen` on the group's port.
    SyncPeers,
    /// The sync key file is missing, shorter than 32 bytes or readable by
    /// others than its owner.
    SyncKey,
    /// A sync setting out of range (flush deadline, queue, refresh period).
    SyncRange,
    /// An `allocation` key that the chosen mode does not use, or one the
    /// mode needs that is missing.
    AllocationKey,
    /// A port block size or block limit out of range.
    BlockSize,
    /// A deterministic client range that pool4 cannot give enough ports.
    DeterministicFit,
}

impl Rule {
    /// Every rule, in documentation order.
    pub const ALL: &'static [Rule] = &[
        Rule::Io,
        Rule::YamlSyntax,
        Rule::UnknownKey,
        Rule::MissingKey,
        Rule::DuplicateKey,
        Rule::UnknownVariant,
        Rule::InvalidType,
        Rule::InvalidValue,
        Rule::AddressSyntax,
        Rule::PortRange,
        Rule::TrafficClass,
        Rule::SessionLogTarget,
        Rule::Rfc6052PrefixLength,
        Rule::Rfc6052UOctet,
        Rule::PrefixHostBits,
        Rule::WkpNonGlobal,
        Rule::Pool4Overlap,
        Rule::Pool4Empty,
        Rule::EamtOverlap,
        Rule::EamSuffixLength,
        Rule::BibOutsidePool4,
        Rule::BibDuplicate,
        Rule::DuplicateInterface,
        Rule::DuplicateDevice,
        Rule::InterfaceUndefined,
        Rule::InterfaceRole,
        Rule::DuplicateInstance,
        Rule::InstanceOverlap,
        Rule::SiitEmpty,
        Rule::LcoreMissing,
        Rule::LcoreDuplicate,
        Rule::LcoreNotInEal,
        Rule::PciDeviceMissing,
        Rule::VdevUnknownDriver,
        Rule::DeviceSyntax,
        Rule::VlanRange,
        Rule::MtuRange,
        Rule::SteeringFlow,
        Rule::LowestIpv6Mtu,
        Rule::AddressFamily,
        Rule::MacInvalid,
        Rule::TimeoutRange,
        Rule::TimeoutBelowRfc6146,
        Rule::LimitRange,
        Rule::PathAbsolute,
        Rule::NoInterfaces,
        Rule::NoInstances,
        Rule::NameSyntax,
        Rule::HostProbe,
        Rule::SyncPeers,
        Rule::SyncKey,
        Rule::SyncRange,
        Rule::AllocationKey,
        Rule::BlockSize,
        Rule::DeterministicFit,
    ];

    /// The stable, kebab-case name printed in messages.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Io => "io",
            Rule::YamlSyntax => "yaml-syntax",
            Rule::UnknownKey => "unknown-key",
            Rule::MissingKey => "missing-key",
            Rule::DuplicateKey => "duplicate-key",
            Rule::UnknownVariant => "unknown-variant",
            Rule::InvalidType => "invalid-type",
            Rule::InvalidValue => "invalid-value",
            Rule::AddressSyntax => "address-syntax",
            Rule::PortRange => "port-range",
            Rule::TrafficClass => "traffic-class",
            Rule::SessionLogTarget => "session-log-target",
            Rule::Rfc6052PrefixLength => "rfc6052-prefix-length",
            Rule::Rfc6052UOctet => "rfc6052-u-octet",
            Rule::PrefixHostBits => "prefix-host-bits",
            Rule::WkpNonGlobal => "wkp-non-global",
            Rule::Pool4Overlap => "pool4-overlap",
            Rule::Pool4Empty => "pool4-empty",
            Rule::EamtOverlap => "eamt-overlap",
            Rule::EamSuffixLength => "eam-suffix-length",
            Rule::BibOutsidePool4 => "bib-outside-pool4",
            Rule::BibDuplicate => "bib-duplicate",
            Rule::DuplicateInterface => "duplicate-interface",
            Rule::DuplicateDevice => "duplicate-device",
            Rule::InterfaceUndefined => "interface-undefined",
            Rule::InterfaceRole => "interface-role",
            Rule::DuplicateInstance => "duplicate-instance",
            Rule::InstanceOverlap => "instance-overlap",
            Rule::SiitEmpty => "siit-empty",
            Rule::LcoreMissing => "lcore-missing",
            Rule::LcoreDuplicate => "lcore-duplicate",
            Rule::LcoreNotInEal => "lcore-not-in-eal",
            Rule::PciDeviceMissing => "pci-device-missing",
            Rule::VdevUnknownDriver => "vdev-unknown-driver",
            Rule::DeviceSyntax => "device-syntax",
            Rule::VlanRange => "vlan-range",
            Rule::MtuRange => "mtu-range",
            Rule::SteeringFlow => "steering-flow",
            Rule::LowestIpv6Mtu => "lowest-ipv6-mtu",
            Rule::AddressFamily => "address-family",
            Rule::MacInvalid => "mac-invalid",
            Rule::TimeoutRange => "timeout-range",
            Rule::TimeoutBelowRfc6146 => "timeout-below-rfc6146",
            Rule::LimitRange => "limit-range",
            Rule::PathAbsolute => "path-absolute",
            Rule::NoInterfaces => "no-interfaces",
            Rule::NoInstances => "no-instances",
            Rule::NameSyntax => "name-syntax",
            Rule::HostProbe => "host-probe",
            Rule::SyncPeers => "sync-peers",
            Rule::SyncKey => "sync-key",
            Rule::SyncRange => "sync-range",
            Rule::AllocationKey => "allocation-key",
            Rule::BlockSize => "block-size",
            Rule::DeterministicFit => "deterministic-fit",
        }
    }

    /// The rule whose [`Rule::name`] is `name`.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.name() == name)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem in a configuration file, with its position (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to the loader.
    pub file: String,
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// 1-based column of the offending key or value.
    pub column: usize,
    /// Which check failed.
    pub rule: Rule,
    /// What is wrong, for a human.
    pub message: String,
    /// Where in the document, e.g. `instances[0].nat64.pool4[1].prefix`
    /// (empty for the document itself).
    pub path: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.column, self.rule, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Separates a rule name smuggled through a serde custom error message from
/// the message text (serde errors are plain strings).
pub(crate) const RULE_MARK: char = '\u{1f}';

/// A serde custom error that carries its rule: `Deserialize` impls of the
/// config's own types use this so that parse errors get precise rule names.
pub(crate) fn tagged<E: serde::de::Error>(rule: Rule, message: impl fmt::Display) -> E {
    E::custom(format_args!("{RULE_MARK}{}{RULE_MARK}{message}", rule.name()))
}

/// Turns a serde_yaml_ng error into a [`ConfigError`].
pub(crate) fn from_yaml(file: &str, err: &serde_yaml_ng::Error) -> ConfigError {
    let (line, column) = err.location().map(|l| (l.line().max(1), l.column().max(1))).unwrap_or((1, 1));
    let mut text = err.to_string();
    // The position is reported in front; drop serde_yaml_ng's own copy.
    let suffix = format!(" at line {line} column {column}");
    if let Some(at) = text.find(&suffix) {
        text.replace_range(at..at + suffix.len(), "");
    }
    // serde_yaml_ng prefixes the document path ("a.b[1]: ") to messages.
    let (path, rest) = split_path(&text);
    let (rule, message) = classify(rest, err.location().is_some());
    ConfigError { file: file.to_string(), line, column, rule, message, path }
}

fn split_path(text: &str) -> (String, &str) {
    // A path never contains a space, a message always does.
    match text.split_once(": ") {
        Some((p, rest))
            if !p.is_empty() && !p.contains(' ') && !p.contains(RULE_MARK) && !p.contains('`') =>
        {
            (p.to_string(), rest)
        }
        _ => (String::new(), text),
    }
}

fn classify(text: &str, _located: bool) -> (Rule, String) {
    if let Some(start) = text.find(RULE_MARK) {
        let after = &text[start + RULE_MARK.len_utf8()..];
        if let Some((name, msg)) = after.split_once(RULE_MARK) {
            if let Some(rule) = Rule::from_name(name) {
                return (rule, msg.to_string());
            }
        }
    }
    let rule = if text.starts_with("unknown field") {
        Rule::UnknownKey
    } else if text.starts_with("missing field") {
        Rule::MissingKey
    } else if text.starts_with("duplicate field") || text.starts_with("duplicate entry") {
        Rule::DuplicateKey
    } else if text.starts_with("unknown variant") {
        Rule::UnknownVariant
    } else if text.starts_with("invalid type") {
        Rule::InvalidType
    } else if text.starts_with("invalid value")
        || text.starts_with("invalid length")
        || text.starts_with("EOF while parsing")
    {
        Rule::InvalidValue
    } else if text.contains("invalid IP address syntax") {
        Rule::AddressSyntax
    } else if is_libyaml_text(text) {
        Rule::YamlSyntax
    } else {
        Rule::InvalidValue
    };
    (rule, text.to_string())
}

/// libyaml's scanner/parser messages ("did not find expected key", "mapping
/// values are not allowed in this context", ...) all mention a YAML construct.
fn is_libyaml_text(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "did not find expected",
        "not allowed in this context",
        "found character that cannot start",
        "found unexpected",
        "could not find expected",
        "found undefined tag handle",
        "while scanning",
        "while parsing",
        "unknown anchor",
        "recursion limit",
        "more than one document",
        "invalid leading UTF-8",
        "control characters are not allowed",
        "found incompatible YAML document",
        "found duplicate",
    ];
    WORDS.iter().any(|w| text.contains(w))
}
