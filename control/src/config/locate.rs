//! Finding the line and column of a document path after parsing.
//!
//! Validation runs on typed values that no longer know where they came from.
//! [`locate_all`] reads the text once more with yaml-rust2's event parser,
//! whose events carry their position, and records where each wanted path
//! (and each of its ancestors) starts: one pass, however many errors.
//!
//! Should yaml-rust2 ever reject a text that serde_yaml_ng accepted, each
//! path is found instead by re-reading the text with serde_yaml_ng and a
//! `DeserializeSeed` that walks down the path and fails on purpose at the
//! target: serde_yaml_ng stamps custom errors with the position of the event
//! being read. That costs one parse per path, hence only a fallback (and for
//! the second occurrence of a duplicate key, which the index does not keep).

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

impl From<&str> for Seg {
    fn from(k: &str) -> Self {
        Seg::Key(k.to_string())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// A document path, e.g. `instances[0].nat64.pool4[1].prefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DocPath(pub(crate) Vec<Seg>);

impl DocPath {
    /// This path extended by one step.
    pub(crate) fn at(&self, seg: impl Into<Seg>) -> DocPath {
        let mut v = self.0.clone();
        v.push(seg.into());
        DocPath(v)
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Builds a [`DocPath`] from keys and indices: `path!["a", 0, "b"]`.
macro_rules! doc_path {
    ($($seg:expr),* $(,)?) => {
        $crate::config::locate::DocPath(vec![$($crate::config::locate::Seg::from($seg)),*])
    };
}
pub(crate) use doc_path as path;

const SENTINEL: &str = "\u{1e}nat64-config-locate\u{1e}";

/// 1-based (line, column) of every path in `paths`, in one pass over
/// `text`; see [`locate`] for what is reported for a missing path.
pub(crate) fn locate_all(text: &str, paths: &[DocPath]) -> Vec<(usize, usize)> {
    if paths.is_empty() {
        return Vec::new();
    }
    let mut wanted: HashSet<&[Seg]> = HashSet::new();
    for p in paths {
        for len in 0..=p.0.len() {
            wanted.insert(&p.0[..len]);
        }
    }
    let mut w = Walker {
        wanted: &wanted,
        path: Vec::new(),
        frames: Vec::new(),
        skip: 0,
        pending: None,
        found: HashMap::new(),
    };
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    if parser.load(&mut w, false).is_err() {
        return paths.iter().map(|p| locate(text, p)).collect();
    }
    paths
        .iter()
        .map(|p| (0..=p.0.len()).rev().find_map(|len| w.found.get(&p.0[..len]).copied()).unwrap_or((1, 1)))
        .collect()
}

/// What the walker is inside of.
enum Frame {
    /// A mapping; `key` is `None` while a key is expected, then the key just
    /// read (`Some(None)` for a non-scalar key, whose value is not indexed).
    Map { key: Option<Option<String>>, pushed: bool },
    /// A sequence and the index of its next element.
    Seq { next: usize, pushed: bool },
}

/// Records the start of every wanted node: mapping keys at the key, list
/// elements at the element.
struct Walker<'w> {
    wanted: &'w HashSet<&'w [Seg]>,
    path: Vec<Seg>,
    frames: Vec<Frame>,
    /// Depth of a subtree being skipped (complex keys and their values).
    skip: usize,
    /// A mapping node waiting for its first key's position.
    pending: Option<(Option<Seg>, yaml_rust2::scanner::Marker)>,
    found: HashMap<Vec<Seg>, (usize, usize)>,
}

impl Walker<'_> {
    fn record(&mut self, seg: Option<Seg>, mark: yaml_rust2::scanner::Marker) {
        let mut p = self.path.clone();
        p.extend(seg);
        if self.wanted.contains(p.as_slice()) {
            // yaml-rust2 lines are 1-based, columns 0-based.
            let pos = (mark.line().max(1), mark.col() + 1);
            self.found.entry(p).or_insert(pos);
        }
    }

    /// A mapping node is reported at its first key (yaml-rust2 marks a
    /// block mapping's start after that key); an empty one at its start.
    fn record_node(&mut self, seg: Option<Seg>, mark: yaml_rust2::scanner::Marker, map: bool) {
        if map {
            self.pending = Some((seg, mark));
        } else {
            self.record(seg, mark);
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for Walker<'_> {
    fn on_event(&mut self, ev: yaml_rust2::Event, mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::Event as E;
        let opens = matches!(ev, E::SequenceStart(..) | E::MappingStart(..));
        if let Some((seg, start)) = self.pending.take() {
            // The mapping's own path is the current path without its last
            // segment (already pushed) plus `seg`.
            let pushed = seg.is_some();
            if pushed {
                self.path.pop();
            }
            let at = if matches!(ev, E::MappingEnd) { start } else { mark };
            self.record(seg.clone(), at);
            if let Some(seg) = seg {
                self.path.push(seg);
            }
        }
        if self.skip > 0 {
            match ev {
                E::SequenceStart(..) | E::MappingStart(..) => self.skip += 1,
                E::SequenceEnd | E::MappingEnd => self.skip -= 1,
                _ => {}
            }
            return;
        }
        match ev {
            E::Scalar(..) | E::Alias(_) | E::SequenceStart(..) | E::MappingStart(..) => {}
            E::SequenceEnd | E::MappingEnd => {
                let pushed = match self.frames.pop() {
                    Some(Frame::Map { pushed, .. } | Frame::Seq { pushed, .. }) => pushed,
                    None => false,
                };
                if pushed {
                    self.path.pop();
                }
                return;
            }
            _ => return,
        }
        // The segment this node adds to the path, if it is a value.
        let seg = match self.frames.last_mut() {
            None => {
                // The document's root node.
                self.record_node(None, mark, matches!(ev, E::MappingStart(..)));
                None
            }
            Some(Frame::Map { key: key @ None, .. }) => {
                // A key: index it, remember it, and skip it if complex.
                if let E::Scalar(k, ..) = &ev {
                    *key = Some(Some(k.clone()));
                    let k = Seg::Key(k.clone());
                    self.record(Some(k), mark);
                } else {
                    *key = Some(None);
                    if opens {
                        self.skip = 1;
                    }
                }
                return;
            }
            Some(Frame::Map { key, .. }) => match key.take().flatten() {
                Some(k) => Some(Seg::Key(k)),
                None => {
                    if opens {
                        self.skip = 1;
                    }
                    return;
                }
            },
            Some(Frame::Seq { next, .. }) => {
                let i = *next;
                *next += 1;
                let map = matches!(ev, E::MappingStart(..));
                self.record_node(Some(Seg::Index(i)), mark, map);
                Some(Seg::Index(i))
            }
        };
        if opens {
            let pushed = seg.is_some();
            if let Some(seg) = seg {
                self.path.push(seg);
            }
            self.frames.push(match ev {
                E::MappingStart(..) => Frame::Map { key: None, pushed },
                _ => Frame::Seq { next: 0, pushed },
            });
        }
    }
}

/// 1-based (line, column) of `path` in `text`. When the path does not exist
/// (a defaulted key), the nearest ancestor that does exist is reported, and
/// the document start as a last resort, so the result is never line 0.
pub(crate) fn locate(text: &str, path: &DocPath) -> (usize, usize) {
    for len in (0..=path.0.len()).rev() {
        if let Some(pos) = locate_exact(text, &path.0[..len]) {
            return pos;
        }
    }
    (1, 1)
}

/// Position of the second occurrence of `key` in the mapping at `parent`
/// (serde reports duplicate keys at the mapping, not at the duplicate).
pub(crate) fn locate_duplicate(text: &str, parent: &DocPath, key: &str) -> Option<(usize, usize)> {
    let mut path = parent.0.clone();
    path.push(Seg::Key(key.to_string()));
    find(text, &path, 1)
}

/// Parses serde_yaml_ng's path notation (`.`, `a.b[2].c`).
pub(crate) fn parse_serde_path(s: &str) -> Option<DocPath> {
    let mut out = Vec::new();
    if s == "." || s.is_empty() {
        return Some(DocPath(out));
    }
    for part in s.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let (idx, tail) = r.split_once(']')?;
            out.push(Seg::Index(idx.parse().ok()?));
            rest = tail;
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(DocPath(out))
}

fn locate_exact(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    find(text, path, 0)
}

fn find(text: &str, path: &[Seg], skip: usize) -> Option<(usize, usize)> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match (Find { path, skip }).deserialize(de) {
        Ok(()) => None,
        Err(e) if e.to_string().contains(SENTINEL) => {
            e.location().map(|l| (l.line().max(1), l.column().max(1)))
        }
        Err(_) => None,
    }
}

/// Walks down `path`; fails with [`SENTINEL`] at the target, after
/// passing over `skip` earlier occurrences of the final key.
struct Find<'p> {
    path: &'p [Seg],
    skip: usize,
}

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            d.deserialize_any(Hit)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return Ok(());
        };
        let mut skip = if rest.is_empty() { self.skip } else { 0 };
        loop {
            let seed = KeyIs { want, last: rest.is_empty() && skip == 0 };
            let Some(hit) = map.next_key_seed(seed)? else {
                break;
            };
            if hit && skip > 0 {
                skip -= 1;
            } else if hit {
                return map.next_value_seed(Find { path: rest, skip: self.skip });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.path.split_first() else {
            return Ok(());
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Find { path: rest, skip: self.skip }).map(|_| ())
    }

    // A scalar where the path wants to go deeper: not found.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        // A YAML-tagged node (`!nat64 {...}`): report the node itself.
        Ok(())
    }
}

/// Deserializes a mapping key; errors with the sentinel when it is the last
/// step of the path, so that the reported position is the key's.
struct KeyIs<'a> {
    want: &'a str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, k: &str) -> Result<bool, E> {
        match (k == self.want, self.last) {
            (true, true) => Err(E::custom(SENTINEL)),
            (hit, _) => Ok(hit),
        }
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// Fails on whatever node it is given; serde's default `visit_*` methods
/// all return `invalid_type`, whose message includes `expecting`.
struct Hit;

impl Visitor<'_> for Hit {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SENTINEL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
top: 1
list:
  - name: a
    inner: {x: 1, y: 2}
  - name: b
    deep:
      - 10
      - 20
tail: end
";

    /// Both implementations must agree with the expectation.
    fn both(text: &str, p: DocPath, want: (usize, usize)) {
        assert_eq!(locate(text, &p), want, "serde seed, {p}");
        assert_eq!(locate_all(text, std::slice::from_ref(&p)), vec![want], "index, {p}");
    }

    #[test]
    fn finds_keys_elements_and_flow_values() {
        both(DOC, path!["top"], (1, 1));
        both(DOC, path!["tail"], (9, 1));
        both(DOC, path!["list", 1, "name"], (5, 5));
        both(DOC, path!["list", 0, "inner", "y"], (4, 19));
        both(DOC, path!["list", 1, "deep", 1], (8, 9));
        both(DOC, path!["list", 1], (5, 5));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        // `list[1].absent` does not exist: report list[1] itself.
        both(DOC, path!["list", 1, "absent"], (5, 5));
        // Index past the end: report the `list` key.
        both(DOC, path!["list", 7], (2, 1));
        both(DOC, path!["nothing"], (1, 1));
        both("", path!["a"], (1, 1));
    }

    #[test]
    fn index_handles_many_paths_and_odd_nodes() {
        let doc = "\
a: &anchor {x: 1}
? [complex, key]
: {ignored: 1}
b: *anchor
c:
- {k: [1, {deep: 2}]}
- plain
";
        let paths = [
            path!["a", "x"],
            path!["b"],
            path!["b", "x"],
            path!["c", 0, "k", 1, "deep"],
            path!["c", 1],
            path!["ignored"],
        ];
        let got = locate_all(doc, &paths);
        assert_eq!(got, vec![(1, 13), (4, 1), (4, 1), (6, 12), (7, 3), (1, 1)]);
        // The fallback agrees, except that it follows the alias `b` into
        // the anchored node where the index stops at the alias.
        assert_eq!(locate(doc, &paths[2]), (1, 13));
        for (p, want) in paths.iter().zip(got).filter(|(p, _)| **p != paths[2]) {
            assert_eq!(locate(doc, p), want, "{p}");
        }
    }

    #[test]
    fn duplicates_and_serde_paths() {
        let doc = "a:\n  b: 1\n  c: 2\n  b: 3\n";
        assert_eq!(locate_duplicate(doc, &path!["a"], "b"), Some((4, 3)));
        assert_eq!(locate_duplicate(doc, &path!["a"], "c"), None);
        assert_eq!(parse_serde_path("."), Some(DocPath::default()));
        assert_eq!(
            parse_serde_path("instances[0].nat64.pool4[12]"),
            Some(path!["instances", 0, "nat64", "pool4", 12])
        );
        assert_eq!(parse_serde_path("a[x]"), None);
    }

    #[test]
    fn path_display() {
        assert_eq!(path!["instances", 0, "nat64", "pool4", 2].to_string(), "instances[0].nat64.pool4[2]");
    }
}
