//! The compiled route index of one virtual host.
//!
//! Envoy scans a virtual host's routes in order and takes the first whose
//! conditions all hold. The index gives the same answer without looking at
//! every route: each path condition is filed in a structure keyed by the
//! path, and a lookup asks every structure which routes *may* match this
//! path. Those candidates are then tested in ascending route order with the
//! route's full conditions (method, gRPC, headers, query and the path itself),
//! and the first that passes wins, exactly as in the ordered scan. The path
//! is not compared again where the structure has decided it: exact paths,
//! prefixes, and templates of literals and whole-segment operators (the
//! template trie compares their literals and checks that each segment is
//! non-empty `pchar`s); regexes and templates with `**` or text after an
//! operator are. A template's variables are read again only when a
//! rewrite needs them.
//!
//! | path condition                    | filed in                                      |
//! |-----------------------------------|-----------------------------------------------|
//! | `path`                            | hash map (a case-folded one when `case_sensitive: false`) |
//! | `prefix`, `path_separated_prefix` | byte radix tree (a case-folded one likewise)  |
//! | `path_template`                   | byte radix tree whose edges are literal text or "one segment", with `**` tails listed where they start |
//! | `regex` with a literal prefix     | the byte radix tree, under each literal prefix |
//! | other `regex`                     | `RegexSet`s of [`SET_CHUNK`] patterns          |
//! | `connect_matcher`                 | a list consulted only for CONNECT requests    |
//!
//! Every structure returns sorted slices of route indices; the lookup merges
//! them lazily, smallest first, and stops at the first route that passes.
//! A lookup allocates nothing: the slices are kept in a `SmallVec` on the
//! stack, case-insensitive keys are hashed and compared folded, and the
//! path is never copied. Its cost depends on the path's length and on how
//! many routes share its path (each is tested in full), not on the number
//! of routes; the exceptions are regexes without a literal prefix (one
//! `RegexSet` test per [`SET_CHUNK`] of them) and large candidate sets
//! (more than 32 candidate lists spill the `SmallVec` to the heap).
//!
//! `RegexSet` can only tell whether one of its patterns matches without
//! allocating, so a hit makes the whole chunk candidates and each route
//! then tests its own regex. The regex engines keep per-thread scratch
//! space in the `regex` crate's pool: its first use on a thread allocates,
//! later uses do not.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use ahash::AHashMap;
use regex::bytes::RegexSetBuilder;

use crate::bytes::{find_byte, find_in_word};
use crate::local::SetMatcher;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use smallvec::SmallVec;

use crate::table::{PathSpec, RouteEntry};
use crate::template::{is_pchar, MatchTemplate, Segment};

/// Patterns per `RegexSet`. A set only says whether one of its patterns
/// matches (asking which ones would allocate), so a hit makes all of its
/// routes candidates; small sets keep that cheap.
pub(crate) const SET_CHUNK: usize = 16;

/// At most this many literal prefixes per regex before it goes to a set.
const MAX_REGEX_PREFIXES: usize = 16;

/// Candidate lists kept on the stack during one lookup.
type Lists<'i> = SmallVec<[&'i [u32]; 32]>;

/// The compiled index of one virtual host's routes.
#[derive(Clone)]
pub(crate) struct RouteIndex {
    exact: AHashMap<Box<[u8]>, Box<[u32]>>,
    exact_fold: FoldMap,
    prefix: ByteTrie,
    prefix_fold: ByteTrie,
    templates: SegTrie,
    templates_fold: SegTrie,
    sets: Box<[RegexChunk]>,
    connect: Box<[u32]>,
    routes: usize,
}

impl fmt::Debug for RouteIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteIndex")
            .field("routes", &self.routes)
            .field("exact", &(self.exact.len() + self.exact_fold.len()))
            .field(
                "prefix_nodes",
                &(self.prefix.nodes.len() + self.prefix_fold.nodes.len()),
            )
            .field(
                "template_nodes",
                &(self.templates.nodes.len() + self.templates_fold.nodes.len()),
            )
            .field("regex_sets", &self.sets.len())
            .field("connect", &self.connect.len())
            .finish()
    }
}

#[derive(Clone, Debug)]
struct RegexChunk {
    /// `None` when the set could not be compiled within its size limit: its
    /// routes are then always candidates (each still checks its own regex).
    set: Option<SetMatcher>,
    routes: Box<[u32]>,
}

impl RouteIndex {
    /// Files every route's path condition.
    pub(crate) fn build(routes: &[RouteEntry]) -> RouteIndex {
        let mut exact: AHashMap<Box<[u8]>, Vec<u32>> = AHashMap::new();
        let mut exact_fold = FoldMapBuilder::default();
        let mut prefix = TrieBuilder::new(false);
        let mut prefix_fold = TrieBuilder::new(true);
        let mut templates = SegTrieBuilder::new(false);
        let mut templates_fold = SegTrieBuilder::new(true);
        let mut set_patterns: Vec<(u32, String)> = Vec::new();
        let mut connect = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let i = i as u32;
            let cs = r.case_sensitive;
            match &r.path {
                PathSpec::Exact(p) if cs => exact.entry(p.as_bytes().into()).or_default().push(i),
                PathSpec::Exact(p) => exact_fold.add(p.as_bytes(), i),
                PathSpec::Prefix(p) if cs => prefix.add(p.as_bytes(), Hit::Any, i),
                PathSpec::Prefix(p) => prefix_fold.add(p.as_bytes(), Hit::Any, i),
                PathSpec::Separated(p) if cs => prefix.add(p.as_bytes(), Hit::Separated, i),
                PathSpec::Separated(p) => prefix_fold.add(p.as_bytes(), Hit::Separated, i),
                PathSpec::Template(t) if cs => templates.add(t, i),
                PathSpec::Template(t) => templates_fold.add(t, i),
                PathSpec::Regex(re) => match regex_prefixes(re.as_str()) {
                    // The regex ignores `case_sensitive` (as Envoy's does).
                    Some(lits) => lits.iter().for_each(|l| prefix.add(l, Hit::Any, i)),
                    None => set_patterns.push((i, re.as_str().to_owned())),
                },
                PathSpec::Connect => connect.push(i),
            }
        }
        let sets = set_patterns
            .chunks(SET_CHUNK)
            .map(|chunk| RegexChunk {
                // Unicode as the routes' own regexes have it (re.rs): a
                // set that read `.` as a byte, or folded ASCII only, would
                // skip routes the scan takes on non-ASCII paths.
                set: RegexSetBuilder::new(chunk.iter().map(|(_, p)| p.as_str()))
                    .unicode(true)
                    .size_limit(64 * (1 << 20))
                    .dfa_size_limit(4 * (1 << 20))
                    .nest_limit(100)
                    .build()
                    .ok()
                    .map(SetMatcher::new),
                routes: chunk.iter().map(|(i, _)| *i).collect(),
            })
            .collect();
        RouteIndex {
            exact: exact
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            exact_fold: exact_fold.finish(),
            prefix: prefix.finish(),
            prefix_fold: prefix_fold.finish(),
            templates: templates.finish(),
            templates_fold: templates_fold.finish(),
            sets,
            connect: connect.into(),
            routes: routes.len(),
        }
    }

    /// The smallest route index for which `test` holds, among the routes
    /// whose path condition may match `path` (the match path, query cut
    /// off; `None` when the request has no path). `test` must be the
    /// route's full condition, path included.
    #[inline]
    pub(crate) fn find(
        &self,
        path: Option<&str>,
        is_connect: bool,
        mut test: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut lists: Lists<'_> = SmallVec::new();
        if is_connect && !self.connect.is_empty() {
            lists.push(&self.connect);
        }
        if let Some(p) = path {
            self.candidates(p.as_bytes(), &mut lists);
        }
        match lists.len() {
            0 => None,
            1 => lists[0].iter().map(|&i| i as usize).find(|&i| test(i)),
            _ => merge_first(&mut lists, test),
        }
    }

    fn candidates<'i>(&'i self, p: &[u8], lists: &mut Lists<'i>) {
        if !self.exact.is_empty() {
            if let Some(v) = self.exact.get(p) {
                lists.push(v);
            }
        }
        if let Some(v) = self.exact_fold.get(p) {
            lists.push(v);
        }
        self.prefix.walk(p, lists);
        self.prefix_fold.walk(p, lists);
        self.templates.walk(p, lists);
        self.templates_fold.walk(p, lists);
        for c in self.sets.iter() {
            if c.set.as_ref().is_none_or(|s| s.is_match(p)) {
                lists.push(&c.routes);
            }
        }
    }
}

impl crate::table::VirtualHostEntry {
    /// The first route, in configuration order, whose *path* condition
    /// alone matches `path` (a path without query), found through the
    /// index. Method, header, query and gRPC conditions are not looked at,
    /// so this is not a routing decision (use
    /// [`RouteTable::route`](crate::RouteTable::route)); tools and the
    /// benchmarks use it to see the path index on its own.
    #[doc(hidden)]
    pub fn first_path_match(&self, path: &str) -> Option<&RouteEntry> {
        let mut caps: crate::template::Captures = [(0, 0); crate::template::MAX_VARIABLES];
        let routes = self.routes();
        self.route_index
            .find(Some(path), false, |i| {
                !matches!(routes[i].path, PathSpec::Connect)
                    && (routes[i].path_in_index || routes[i].path_matches(path, &mut caps))
            })
            .map(|i| &routes[i])
    }
}

/// Walks sorted lists in ascending order of their union (each index once)
/// and returns the first index that passes `test`.
fn merge_first(lists: &mut Lists<'_>, mut test: impl FnMut(usize) -> bool) -> Option<usize> {
    loop {
        // The list with the smallest head, and the smallest head of the rest.
        let (mut at, mut best, mut second) = (usize::MAX, u32::MAX, u32::MAX);
        for (i, l) in lists.iter().enumerate() {
            if let Some(&h) = l.first() {
                if h < best {
                    (at, best, second) = (i, h, best);
                } else if h < second {
                    second = h;
                }
            }
        }
        if at == usize::MAX {
            return None;
        }
        if second == best {
            // The same route in several lists: test it once.
            for l in lists.iter_mut() {
                if l.first() == Some(&best) {
                    *l = &l[1..];
                }
            }
            if test(best as usize) {
                return Some(best as usize);
            }
            continue;
        }
        // Everything in this list below `second` comes first.
        let l = lists[at];
        let run = l.partition_point(|&i| i < second);
        if let Some(&i) = l[..run].iter().find(|&&i| test(i as usize)) {
            return Some(i as usize);
        }
        lists[at] = &l[run..];
    }
}

/// The literal prefixes every full match of `pattern` starts with, or
/// `None` when there is no short, finite, non-empty set of them.
fn regex_prefixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    // Parsed as the route's regex is compiled (Unicode on), so that `(?i)`
    // prefixes hold every case of non-ASCII letters too.
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(true)
        .nest_limit(100)
        .build()
        .parse(pattern)
        .ok()?;
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.len() > MAX_REGEX_PREFIXES {
        return None;
    }
    if lits.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    let mut out: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
    out.sort();
    out.dedup();
    Some(out)
}

// ------------------------------------------------------------ folded exact map

/// Fixed keys: the hash only has to agree between build and lookup of one
/// table; the map of hashes itself is keyed randomly.
const FOLD_SEEDS: (u64, u64, u64, u64) = (
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
);

/// Hash of the ASCII-lower-cased bytes, computed through a stack buffer.
fn fold_hash(state: &ahash::RandomState, p: &[u8]) -> u64 {
    let mut h = state.build_hasher();
    let mut buf = [0u8; 64];
    for chunk in p.chunks(buf.len()) {
        let out = &mut buf[..chunk.len()];
        for (o, c) in out.iter_mut().zip(chunk) {
            *o = c.to_ascii_lowercase();
        }
        h.write(out);
    }
    h.write_usize(p.len());
    h.finish()
}

/// A lower-cased exact path and its routes.
type FoldEntry = (Box<[u8]>, Box<[u32]>);

/// Exact paths compared ASCII-case-insensitively: folded hash to the keys
/// that share it, each with its routes.
#[derive(Clone)]
struct FoldMap {
    state: ahash::RandomState,
    map: AHashMap<u64, Box<[FoldEntry]>>,
}

impl FoldMap {
    fn len(&self) -> usize {
        self.map.values().map(|b| b.len()).sum()
    }

    #[inline]
    fn get(&self, p: &[u8]) -> Option<&[u32]> {
        if self.map.is_empty() {
            return None;
        }
        let bucket = self.map.get(&fold_hash(&self.state, p))?;
        bucket
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(p))
            .map(|(_, v)| &**v)
    }
}

#[derive(Default)]
struct FoldMapBuilder {
    keys: Vec<(Box<[u8]>, Vec<u32>)>,
}

impl FoldMapBuilder {
    fn add(&mut self, key: &[u8], route: u32) {
        match self
            .keys
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            Some((_, v)) => v.push(route),
            None => self
                .keys
                .push((key.to_ascii_lowercase().into(), vec![route])),
        }
    }

    fn finish(self) -> FoldMap {
        let (a, b, c, d) = FOLD_SEEDS;
        let state = ahash::RandomState::with_seeds(a, b, c, d);
        let mut map: AHashMap<u64, Vec<FoldEntry>> = AHashMap::new();
        for (k, v) in self.keys {
            map.entry(fold_hash(&state, &k))
                .or_default()
                .push((k, v.into()));
        }
        FoldMap {
            state,
            map: map.into_iter().map(|(h, b)| (h, b.into())).collect(),
        }
    }
}

// ------------------------------------------------------------ byte radix tree

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hit {
    /// A prefix (or a regex's literal prefix): a candidate once reached.
    Any,
    /// A path-separated prefix: a candidate when the path ends there or
    /// continues with '/'.
    Separated,
}

/// A radix tree over bytes. Each node's label is the text of the edge that
/// leads to it (its first byte is the key its parent files it under).
/// Labels, edges and route lists live in shared arrays, as in [`SegTrie`].
#[derive(Clone, Debug, Default)]
struct ByteTrie {
    nodes: Box<[ByteNode]>,
    bytes: Box<[u8]>,
    edges: Edges,
    routes: Box<[u32]>,
    fold: bool,
}

#[derive(Clone, Debug, Default)]
struct ByteNode {
    label: Span,
    /// (first byte of the child's label, child), sorted by byte.
    edges: Span,
    any: Span,
    separated: Span,
}

impl ByteTrie {
    #[inline]
    fn walk<'i>(&'i self, p: &[u8], lists: &mut Lists<'i>) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        let mut pos = 0usize;
        loop {
            if node.any.len != 0 {
                lists.push(node.any.of(&self.routes));
            }
            if node.separated.len != 0 && (pos == p.len() || p[pos] == b'/') {
                lists.push(node.separated.of(&self.routes));
            }
            let Some(&b) = p.get(pos) else {
                return;
            };
            let b = if self.fold { b.to_ascii_lowercase() } else { b };
            let Some(c) = self.edges.find(node.edges, b) else {
                return;
            };
            let child = &self.nodes[c as usize];
            let label = child.label.of(&self.bytes);
            let Some(seg) = p.get(pos..pos + label.len()) else {
                return;
            };
            // The first byte was compared through the edge.
            if !seg_eq(&seg[1..], &label[1..], self.fold) {
                return;
            }
            pos += label.len();
            node = child;
        }
    }
}

/// One byte per edge while building; compressed into a [`ByteTrie`].
struct TrieBuilder {
    nodes: Vec<BuildNode>,
    fold: bool,
}

#[derive(Default)]
struct BuildNode {
    children: std::collections::BTreeMap<u8, usize>,
    any: Vec<u32>,
    separated: Vec<u32>,
}

impl TrieBuilder {
    fn new(fold: bool) -> Self {
        TrieBuilder {
            nodes: vec![BuildNode::default()],
            fold,
        }
    }

    fn add(&mut self, key: &[u8], hit: Hit, route: u32) {
        let mut n = 0usize;
        for &b in key {
            let b = if self.fold { b.to_ascii_lowercase() } else { b };
            n = match self.nodes[n].children.get(&b) {
                Some(&c) => c,
                None => {
                    let c = self.nodes.len();
                    self.nodes.push(BuildNode::default());
                    self.nodes[n].children.insert(b, c);
                    c
                }
            };
        }
        let node = &mut self.nodes[n];
        let list = match hit {
            Hit::Any => &mut node.any,
            Hit::Separated => &mut node.separated,
        };
        // A regex may file several literals that share a node.
        if list.last() != Some(&route) {
            list.push(route);
        }
    }

    fn finish(self) -> ByteTrie {
        if self.nodes.len() == 1
            && self.nodes[0].any.is_empty()
            && self.nodes[0].separated.is_empty()
        {
            return ByteTrie {
                fold: self.fold,
                ..ByteTrie::default()
            };
        }
        let (mut bytes, mut all_edges, mut routes) = (Vec::new(), Vec::new(), Vec::new());
        let mut out: Vec<ByteNode> = Vec::new();
        // Explicit stack: (build node, label, slot in `out` to fill).
        out.push(ByteNode::default());
        let mut stack: Vec<(usize, Vec<u8>, usize)> = vec![(0, Vec::new(), 0)];
        while let Some((mut n, mut label, slot)) = stack.pop() {
            // Compress chains of nodes with one child and no hits.
            while slot != 0 || !label.is_empty() {
                let b = &self.nodes[n];
                if b.children.len() != 1 || !b.any.is_empty() || !b.separated.is_empty() {
                    break;
                }
                let (&byte, &c) = b.children.iter().next().expect("one child");
                label.push(byte);
                n = c;
            }
            let b = &self.nodes[n];
            let mut edges = Vec::with_capacity(b.children.len());
            for (&byte, &c) in &b.children {
                let cslot = out.len();
                out.push(ByteNode::default());
                edges.push((byte, cslot as u32));
                stack.push((c, vec![byte], cslot));
            }
            out[slot] = ByteNode {
                label: Span::push(&mut bytes, &label),
                edges: Span::push(&mut all_edges, &edges),
                any: Span::push(&mut routes, &b.any),
                separated: Span::push(&mut routes, &b.separated),
            };
        }
        ByteTrie {
            nodes: out.into(),
            bytes: bytes.into(),
            edges: Edges::new(all_edges),
            routes: routes.into(),
            fold: self.fold,
        }
    }
}

// ------------------------------------------------------------ template trie

/// URI templates as a byte radix tree in which a template is literal text
/// (its '/' separators and literal segments) and operators: "one non-empty
/// segment" (`*`, `{v}`) is an edge of its own, and a final `**` (with an
/// optional suffix) lists the template at the node where it starts. Walking
/// a path compares one label per node; where both a literal edge and a
/// segment edge fit, both are followed.
///
/// Nodes are 32 bytes, two to a cache line, in one array; a node's
/// children sit next to each other (literal edges in key order, then the
/// segment edge), and up to eight edge keys are kept in the node itself, so
/// following an edge reads the node, the child (for its label's place) and
/// the label: three dependent loads where separate key and child arrays
/// made five.
#[derive(Clone, Debug, Default)]
struct SegTrie {
    nodes: Box<[SegNode]>,
    /// Every node's label but its first byte (the key of the edge into it).
    bytes: Box<[u8]>,
    /// Edge keys of nodes with more than [`INLINE_KEYS`] edges.
    keys: Box<[u8]>,
    /// Each node's route lists: `[end_len, rest_len, end.., rest..]`.
    routes: Box<[u32]>,
    fold: bool,
}

/// The edges of every node of a trie: each node's are a [`Span`] of both
/// arrays, sorted by their first byte. The bytes are apart from the child
/// numbers so that a node's fit in a word or two, searched a word at a
/// time ([`find_byte`]).
#[derive(Clone, Debug, Default)]
struct Edges {
    keys: Box<[u8]>,
    nodes: Box<[u32]>,
}

impl Edges {
    fn new(all: Vec<(u8, u32)>) -> Edges {
        Edges {
            keys: all.iter().map(|&(b, _)| b).collect(),
            nodes: all.iter().map(|&(_, n)| n).collect(),
        }
    }

    /// The child whose edge starts with `b`, among the node's edges `span`.
    #[inline]
    fn find(&self, span: Span, b: u8) -> Option<u32> {
        let i = find_byte(span.of(&self.keys), b)?;
        Some(self.nodes[span.start as usize + i])
    }
}

/// A range of one of [`SegTrie`]'s shared arrays.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    #[inline]
    fn of<T>(self, all: &[T]) -> &[T] {
        &all[self.start as usize..(self.start + self.len) as usize]
    }

    fn push<T: Clone>(all: &mut Vec<T>, items: &[T]) -> Span {
        let start = all.len() as u32;
        all.extend_from_slice(items);
        Span {
            start,
            len: items.len() as u32,
        }
    }
}

/// Edge keys a [`SegNode`] holds itself.
const INLINE_KEYS: usize = 8;

/// A node of [`SegTrie`].
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
struct SegNode {
    /// The keys (first bytes of the child labels) of the node's literal
    /// edges, sorted, when there are at most [`INLINE_KEYS`]; otherwise
    /// its first four bytes are where they are in [`SegTrie::keys`].
    inline_keys: [u8; INLINE_KEYS],
    /// Where the node's label is in [`SegTrie::bytes`]: for a node reached
    /// through a literal edge the label after its first byte (the edge's
    /// key); for the root and a segment edge's child, the whole label.
    label: u32,
    /// Length of that text.
    label_len: u32,
    /// Number of literal edges.
    nkeys: u16,
    /// The first child: literal edges' children in key order, then the
    /// segment edge's.
    first: u32,
    /// The child after one non-empty segment (`u32::MAX`: none).
    one: u32,
    /// Where the node's route lists are in [`SegTrie::routes`]
    /// (`u32::MAX`: no template ends or has its `**` tail here).
    lists: u32,
}

#[inline]
fn seg_eq(a: &[u8], b: &[u8], fold: bool) -> bool {
    a.len() == b.len()
        && if fold {
            a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
        } else {
            crate::template::bytes_eq(a, b)
        }
}

const _: () = assert!(std::mem::size_of::<SegNode>() == 32);

impl SegTrie {
    /// The position among `node`'s literal edges of the one keyed `b`.
    #[inline]
    fn edge(&self, node: &SegNode, b: u8) -> Option<u32> {
        let n = usize::from(node.nkeys);
        if n <= INLINE_KEYS {
            if n == 0 {
                return None;
            }
            find_in_word(u64::from_le_bytes(node.inline_keys), n, b).map(|i| i as u32)
        } else {
            let [a, b0, c, d, ..] = node.inline_keys;
            let at = u32::from_le_bytes([a, b0, c, d]) as usize;
            find_byte(&self.keys[at..at + n], b).map(|i| i as u32)
        }
    }

    /// Whether `rest` (at least `len` bytes) starts with the label
    /// continuation `len` bytes long at `at` in [`SegTrie::bytes`]. Most
    /// labels are short: one masked word compare where eight bytes of both
    /// can be read (`bytes` ends in eight spare bytes).
    #[inline(always)]
    fn label_eq(&self, rest: &[u8], at: usize, len: usize) -> bool {
        if !self.fold && len <= 8 && rest.len() >= 8 {
            let word = |s: &[u8]| u64::from_le_bytes(s[..8].try_into().unwrap());
            let mask = u64::MAX.checked_shr(64 - 8 * len as u32).unwrap_or(0);
            return (word(rest) ^ word(&self.bytes[at..])) & mask == 0;
        }
        seg_eq(&rest[..len], &self.bytes[at..at + len], self.fold)
    }

    /// A node's lists of the templates that end at it and of those whose
    /// `**` tail starts at it.
    #[inline]
    fn lists(&self, node: &SegNode) -> (&[u32], &[u32]) {
        let at = node.lists as usize;
        let (end, rest) = (self.routes[at] as usize, self.routes[at + 1] as usize);
        let ids = &self.routes[at + 2..at + 2 + end + rest];
        ids.split_at(end)
    }

    #[inline]
    fn walk<'i>(&'i self, p: &[u8], lists: &mut Lists<'i>) {
        if self.nodes.is_empty() {
            return;
        }
        // Alternatives (a literal and a segment edge both fit) wait on the
        // stack; a single path needs none. `pos` is just past the node's label.
        let mut stack: SmallVec<[(u32, usize); 8]> = SmallVec::new();
        let root = &self.nodes[0];
        let len = root.label_len as usize;
        if len > p.len() || !self.label_eq(p, root.label as usize, len) {
            return;
        }
        let mut next = Some((0u32, len));
        while let Some((n, pos)) = next.take().or_else(|| stack.pop()) {
            let node = &self.nodes[n as usize];
            if node.lists != u32::MAX {
                let (end, rest) = self.lists(node);
                if !rest.is_empty() {
                    lists.push(rest);
                }
                if pos == p.len() && !end.is_empty() {
                    lists.push(end);
                }
            }
            let Some(&b) = p.get(pos) else {
                continue;
            };
            if node.one != u32::MAX && b != b'/' {
                // A segment of pchars only, as every template operator
                // wants (templates the trie decides rely on it): it ends
                // at the first other byte, which must be the '/' (not a
                // pchar) or the path's end.
                let end = p[pos..]
                    .iter()
                    .position(|&c| !is_pchar(c))
                    .map_or(p.len(), |i| pos + i);
                if end == p.len() || p[end] == b'/' {
                    // The child's label (text after the segment, when the
                    // builder folded it in) starts at the '/'.
                    let child = &self.nodes[node.one as usize];
                    let len = child.label_len as usize;
                    if len == 0 {
                        next = Some((node.one, end));
                    } else if end + len <= p.len()
                        && self.label_eq(&p[end..], child.label as usize, len)
                    {
                        next = Some((node.one, end + len));
                    }
                }
            }
            let b = if self.fold { b.to_ascii_lowercase() } else { b };
            if let Some(i) = self.edge(node, b) {
                let c = node.first + i;
                let child = &self.nodes[c as usize];
                let (at, len) = (child.label as usize, child.label_len as usize);
                let after = pos + 1 + len;
                if after <= p.len() && self.label_eq(&p[pos + 1..], at, len) {
                    if let Some(other) = next.replace((c, after)) {
                        stack.push(other);
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct SegBuildNode {
    edges: std::collections::BTreeMap<u8, usize>,
    one: Option<usize>,
    end: Vec<u32>,
    rest: Vec<u32>,
}

impl SegBuildNode {
    fn is_plain(&self) -> bool {
        self.edges.len() == 1 && self.one.is_none() && self.end.is_empty() && self.rest.is_empty()
    }
}

struct SegTrieBuilder {
    nodes: Vec<SegBuildNode>,
    fold: bool,
}

impl SegTrieBuilder {
    fn new(fold: bool) -> Self {
        SegTrieBuilder {
            nodes: vec![SegBuildNode::default()],
            fold,
        }
    }

    fn byte(&mut self, n: usize, b: u8) -> usize {
        let b = if self.fold { b.to_ascii_lowercase() } else { b };
        if let Some(&c) = self.nodes[n].edges.get(&b) {
            return c;
        }
        let c = self.nodes.len();
        self.nodes.push(SegBuildNode::default());
        self.nodes[n].edges.insert(b, c);
        c
    }

    fn add(&mut self, t: &MatchTemplate, route: u32) {
        let mut n = 0usize;
        for seg in t.segments.iter() {
            n = self.byte(n, b'/');
            match seg {
                Segment::Literal(l) => {
                    for &b in l.as_bytes() {
                        n = self.byte(n, b);
                    }
                }
                Segment::One { .. } => {
                    n = match self.nodes[n].one {
                        Some(c) => c,
                        None => {
                            let c = self.nodes.len();
                            self.nodes.push(SegBuildNode::default());
                            self.nodes[n].one = Some(c);
                            c
                        }
                    };
                }
                Segment::Many { .. } => {
                    self.nodes[n].rest.push(route);
                    return;
                }
            }
        }
        self.nodes[n].end.push(route);
    }

    fn finish(self) -> SegTrie {
        if self.nodes.len() == 1 {
            return SegTrie {
                fold: self.fold,
                ..SegTrie::default()
            };
        }
        let mut out: Vec<SegNode> = vec![SegNode::default()];
        let (mut bytes, mut keys, mut routes) = (Vec::new(), Vec::new(), Vec::new());
        let narrow = |n: usize| u32::try_from(n).expect("template trie over 4 GiB");
        // Explicit stack: (build node, label so far, slot in `out`). The
        // label of a node reached through a literal edge starts with the
        // edge's key; the root's and a segment edge's child's start empty.
        let mut stack: Vec<(usize, Vec<u8>, usize)> = vec![(0, Vec::new(), 0)];
        while let Some((mut n, mut label, slot)) = stack.pop() {
            // Fold chains of single-edge nodes into the label of the last:
            // the root takes the literal text every template starts with,
            // and a segment edge the '/' (and text) after it when nothing
            // ends or branches between.
            let keyed = !label.is_empty();
            while self.nodes[n].is_plain() {
                let (&b, &c) = self.nodes[n].edges.iter().next().expect("one edge");
                label.push(b);
                n = c;
            }
            let b = &self.nodes[n];
            // The children, next to each other: literal edges in key order
            // (a BTreeMap's), then the segment edge.
            let first = out.len();
            for (&byte, &c) in &b.edges {
                let cslot = out.len();
                out.push(SegNode::default());
                stack.push((c, vec![byte], cslot));
            }
            let one = b.one.map_or(u32::MAX, |c| {
                let cslot = out.len();
                out.push(SegNode::default());
                stack.push((c, Vec::new(), cslot));
                narrow(cslot)
            });
            let mut inline_keys = [0u8; INLINE_KEYS];
            if b.edges.len() <= INLINE_KEYS {
                for (k, &byte) in inline_keys.iter_mut().zip(b.edges.keys()) {
                    *k = byte;
                }
            } else {
                inline_keys[..4].copy_from_slice(&narrow(keys.len()).to_le_bytes());
                keys.extend(b.edges.keys());
            }
            let lists = if b.end.is_empty() && b.rest.is_empty() {
                u32::MAX
            } else {
                let at = narrow(routes.len());
                routes.extend([narrow(b.end.len()), narrow(b.rest.len())]);
                routes.extend(b.end.iter().chain(&b.rest));
                at
            };
            // What the walk compares: all of it, or what follows the key.
            let cont = if keyed { &label[1..] } else { &label[..] };
            out[slot] = SegNode {
                inline_keys,
                label: narrow(bytes.len()),
                label_len: narrow(cont.len()),
                // At most 256 keys: one per byte value.
                nkeys: b.edges.len() as u16,
                first: narrow(first),
                one,
                lists,
            };
            bytes.extend_from_slice(cont);
        }
        // Room for `label_eq`'s word loads past the last label.
        bytes.extend_from_slice(&[0; 8]);
        SegTrie {
            nodes: out.into(),
            bytes: bytes.into(),
            keys: keys.into(),
            routes: routes.into(),
            fold: self.fold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(keys: &[(&str, Hit)], fold: bool) -> ByteTrie {
        let mut b = TrieBuilder::new(fold);
        for (i, (k, h)) in keys.iter().enumerate() {
            b.add(k.as_bytes(), *h, i as u32);
        }
        b.finish()
    }

    fn hits(t: &ByteTrie, p: &str) -> Vec<u32> {
        let mut lists = Lists::new();
        t.walk(p.as_bytes(), &mut lists);
        let mut v: Vec<u32> = lists.iter().flat_map(|l| l.iter().copied()).collect();
        v.sort();
        v
    }

    #[test]
    fn radix_prefixes() {
        let t = trie(
            &[
                ("/api", Hit::Any),
                ("/api/v1", Hit::Any),
                ("/apix", Hit::Any),
                ("", Hit::Any),
                ("/api", Hit::Separated),
            ],
            false,
        );
        assert_eq!(hits(&t, "/api/v1/x"), vec![0, 1, 3, 4]);
        assert_eq!(hits(&t, "/apixyz"), vec![0, 2, 3]);
        assert_eq!(hits(&t, "/api"), vec![0, 3, 4]);
        assert_eq!(hits(&t, "/ap"), vec![3]);
        assert_eq!(hits(&t, "/API"), vec![3]);
    }

    #[test]
    fn radix_folded() {
        let t = trie(&[("/Api", Hit::Any), ("/aPI/V1", Hit::Separated)], true);
        assert_eq!(hits(&t, "/API/v1"), vec![0, 1]);
        assert_eq!(hits(&t, "/api/v1x"), vec![0]);
    }

    /// Every route a template trie walk lists for `p`, sorted.
    fn seg_hits(t: &SegTrie, p: &str) -> Vec<u32> {
        let mut lists = Lists::new();
        t.walk(p.as_bytes(), &mut lists);
        let mut v: Vec<u32> = lists.iter().flat_map(|l| l.iter().copied()).collect();
        v.sort();
        v
    }

    #[test]
    fn template_trie_follows_literal_and_segment_edges() {
        let templates = [
            "/a/{x}",
            "/a/b",
            "/{x}/b",
            "/a/**",
            "/a",
            "/",
            "/a/{x}/{y=**}.m",
        ];
        let mut b = SegTrieBuilder::new(false);
        for (i, t) in templates.iter().enumerate() {
            b.add(&MatchTemplate::parse(t).unwrap(), i as u32);
        }
        let t = b.finish();
        let hits = |p: &str| seg_hits(&t, p);
        assert_eq!(hits("/a/b"), vec![0, 1, 2, 3]);
        assert_eq!(hits("/a/c"), vec![0, 3]);
        assert_eq!(hits("/a"), vec![4]);
        assert_eq!(hits("/ab"), Vec::<u32>::new());
        assert_eq!(hits("/"), vec![5]);
        assert_eq!(hits("/a/"), vec![3]);
        assert_eq!(hits("/a/x/y/z.m"), vec![3, 6]);
        assert_eq!(hits("/z/b"), vec![2]);
    }

    #[test]
    fn template_trie_folds_common_text_into_the_root_and_after_segments() {
        for fold in [false, true] {
            let mut b = SegTrieBuilder::new(fold);
            for (i, t) in [
                "/api/v1/{x}/items/{y}",
                "/api/v1/{x}/items/{y}/z",
                "/api/v1/k",
            ]
            .iter()
            .enumerate()
            {
                b.add(&MatchTemplate::parse(t).unwrap(), i as u32);
            }
            let t = b.finish();
            // The root holds "/api/v1/"; the segment edge after it holds
            // "/items/".
            assert_eq!(t.nodes[0].label_len, 8);
            let hits = |p: &str| seg_hits(&t, p);
            assert_eq!(hits("/api/v1/7/items/8"), vec![0]);
            assert_eq!(
                hits("/API/V1/7/ITEMS/8/Z"),
                if fold { vec![1] } else { vec![] }
            );
            assert_eq!(hits("/api/v1/7/items/8/z"), vec![1]);
            assert_eq!(hits("/api/v1/k"), vec![2]);
            for miss in [
                "",
                "/",
                "/api",
                "/api/v1",
                "/api/v1/",
                "/api/v2/7/items/8",
                "/api/v1/7",
                "/api/v1/7/",
                "/api/v1/7/item",
                "/api/v1/7/items",
                "/api/v1/7/items/",
                "/api/v1/7/itemz/8",
                "/api/v1/7/items/8/",
                "/api/v1/7/items/8/zz",
            ] {
                assert_eq!(hits(miss), Vec::<u32>::new(), "{miss}");
            }
        }
    }

    #[test]
    fn template_trie_nodes_with_many_edges() {
        // Nodes with 1 to 40 literal edges (keys in the node, then in the
        // shared array), each followed by a segment edge and a literal.
        for width in [1usize, 2, 7, 8, 9, 16, 40] {
            for fold in [false, true] {
                let names: Vec<String> = (0..width)
                    .map(|i| format!("{}{}x", (b'a' + (i % 26) as u8) as char, i / 26))
                    .collect();
                let mut b = SegTrieBuilder::new(fold);
                for (i, n) in names.iter().enumerate() {
                    let t = format!("/{n}/{{v}}/end");
                    b.add(&MatchTemplate::parse(&t).unwrap(), i as u32);
                }
                b.add(&MatchTemplate::parse("/{v}/{w}/end").unwrap(), width as u32);
                b.add(&MatchTemplate::parse("/{v}").unwrap(), width as u32 + 1);
                let t = b.finish();
                let hits = |p: &str| seg_hits(&t, p);
                for (i, n) in names.iter().enumerate() {
                    let p = if fold {
                        n.to_ascii_uppercase()
                    } else {
                        n.clone()
                    };
                    assert_eq!(hits(&format!("/{p}/7/end")), vec![i as u32, width as u32]);
                    assert_eq!(hits(&format!("/{p}/7/en")), Vec::<u32>::new());
                }
                // A key byte past the node's last key, and bytes below and
                // above every key.
                for p in ["/zz9/7/end", "/!/7/end", "/~/7/end", "/0a/7/end"] {
                    assert_eq!(hits(p), vec![width as u32], "{p} with {width}");
                }
                // NUL is the inline keys' padding: it must find no edge
                // (here the segment edge's child, which "/{v}" ends at).
                assert_eq!(hits("/\0x/7/end"), Vec::<u32>::new());
                assert_eq!(hits("/\0"), Vec::<u32>::new());
            }
        }
    }

    #[test]
    fn template_trie_long_literals() {
        // Long literals, alike up to lengths around a word's and a
        // node's size, then different.
        let long: String = (0..60).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let cuts = [0usize, 1, 11, 12, 13, 14, 24, 25, 26, 27, 40, 59];
        let lits: Vec<String> = cuts
            .iter()
            .map(|&c| {
                let mut l = long.clone().into_bytes();
                l[c] = b'_';
                String::from_utf8(l).unwrap()
            })
            .chain([long.clone(), long[..13].to_owned(), long[..26].to_owned()])
            .collect();
        for fold in [false, true] {
            let mut b = SegTrieBuilder::new(fold);
            for (i, l) in lits.iter().enumerate() {
                b.add(
                    &MatchTemplate::parse(&format!("/{l}/{{x}}")).unwrap(),
                    i as u32,
                );
            }
            let t = b.finish();
            let hits = |p: &str| seg_hits(&t, p);
            for (i, l) in lits.iter().enumerate() {
                let l = if fold {
                    l.to_ascii_uppercase()
                } else {
                    l.clone()
                };
                assert_eq!(hits(&format!("/{l}/v")), vec![i as u32], "{l}");
                assert_eq!(hits(&format!("/{l}x/v")), Vec::<u32>::new(), "{l}x");
                assert_eq!(
                    hits(&format!("/{}/v", &l[..l.len() - 1])),
                    Vec::<u32>::new()
                );
            }
        }
    }

    #[test]
    fn regex_literal_prefixes() {
        assert_eq!(
            regex_prefixes("^(?:/api/v[12]/x)$"),
            Some(vec![b"/api/v1/x".to_vec(), b"/api/v2/x".to_vec()])
        );
        assert_eq!(regex_prefixes("^(?:.*)$"), None);
        assert_eq!(regex_prefixes("^(?:/a|.*)$"), None);
        let p = regex_prefixes("^(?:/users/[0-9]+)$").unwrap();
        assert!(p.iter().all(|l| l.starts_with(b"/users/")));
    }

    #[test]
    fn fold_hash_ignores_case() {
        let mut b = FoldMapBuilder::default();
        b.add(b"/Foo/BAR", 3);
        b.add(b"/foo/bar", 5);
        let long = "/x".repeat(100);
        b.add(long.to_ascii_uppercase().as_bytes(), 7);
        let m = b.finish();
        assert_eq!(m.get(b"/FOO/bar"), Some(&[3u32, 5][..]));
        assert_eq!(m.get(long.as_bytes()), Some(&[7u32][..]));
        assert_eq!(m.get(b"/foo/baz"), None);
    }
}
