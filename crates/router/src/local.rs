//! Regexes searched with no lock and, once warm, no allocation, on any
//! number of threads.
//!
//! The `regex` crate keeps a pool of search caches in every regex: the
//! first thread to search takes the pool's owner slot with no
//! synchronisation, and every other thread goes through a mutex (and makes a
//! fresh cache, an allocation, when that mutex is busy). A [`Local`] lets
//! the first thread that searches with it use the regex directly, as the
//! owner of its pool, and gives every other thread a clone of its own,
//! kept in a thread-local map: a clone shares the compiled program and has
//! a pool of its own, whose owner that thread becomes on first use. The
//! map's entries go when their matcher is gone, swept whenever a thread
//! adds one.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    fmt,
    hash::{BuildHasherDefault, Hasher},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Weak,
    },
    thread::LocalKey,
};

use regex::bytes::{Regex, RegexSet};

/// What a [`Local`] searches with: a regex or a set of them.
pub(crate) trait Search: Clone + 'static {
    /// Whether it matches `haystack`.
    fn search(&self, haystack: &[u8]) -> bool;
    /// The threads' clones of this kind.
    fn clones() -> &'static LocalKey<RefCell<Clones<Self>>>;
}

impl Search for Regex {
    #[inline(always)]
    fn search(&self, haystack: &[u8]) -> bool {
        self.is_match(haystack)
    }

    fn clones() -> &'static LocalKey<RefCell<Clones<Self>>> {
        &REGEX_CLONES
    }
}

impl Search for RegexSet {
    #[inline(always)]
    fn search(&self, haystack: &[u8]) -> bool {
        self.is_match(haystack)
    }

    fn clones() -> &'static LocalKey<RefCell<Clones<Self>>> {
        &SET_CLONES
    }
}

/// A regex (or a set of them) whose `is_match` takes no lock on any
/// thread.
pub(crate) struct Local<S> {
    searcher: S,
    /// The owning thread ([`thread_number`]; 0 until one has searched),
    /// and by its address the name of this matcher in the threads' maps of
    /// clones: it lives as long as a map still holds a clone, so no other
    /// matcher gets the address meanwhile.
    shared: Arc<AtomicU64>,
}

/// A regex searched with no lock (a full-match path or string condition).
pub(crate) type Matcher = Local<Regex>;

/// A set of regexes searched with no lock (the path index).
pub(crate) type SetMatcher = Local<RegexSet>;

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's number, 0 until [`thread_number`] gives it one (a
    /// constant-initialised cell: reading it is one load).
    static THREAD: Cell<u64> = const { Cell::new(0) };
    static REGEX_CLONES: RefCell<Clones<Regex>> = RefCell::new(Clones::default());
    static SET_CLONES: RefCell<Clones<RegexSet>> = RefCell::new(Clones::default());
}

/// This thread's number (never 0).
#[inline]
fn thread_number() -> u64 {
    let n = THREAD.get();
    if n != 0 {
        return n;
    }
    number_this_thread()
}

#[cold]
fn number_this_thread() -> u64 {
    let n = NEXT_THREAD.fetch_add(1, Relaxed);
    THREAD.set(n);
    n
}

/// One thread's clones of one kind, by the address of their matcher's
/// shared cell.
pub(crate) struct Clones<S> {
    map: HashMap<usize, (S, Weak<AtomicU64>), BuildHasherDefault<IdHasher>>,
}

impl<S> Default for Clones<S> {
    fn default() -> Self {
        Clones {
            map: HashMap::default(),
        }
    }
}

/// The keys are addresses: multiplied, they are their own hash.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0 << 8 | u64::from(b);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = n as u64;
    }
}

impl<S: Search> Local<S> {
    /// A matcher searching with `searcher`.
    pub(crate) fn new(searcher: S) -> Local<S> {
        Local {
            searcher,
            shared: Arc::new(AtomicU64::new(0)),
        }
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// Whether the regex (or one of the set) matches `haystack`.
    #[inline(always)]
    pub(crate) fn is_match(&self, haystack: &[u8]) -> bool {
        let me = thread_number();
        if self.shared.load(Relaxed) == me {
            return self.searcher.search(haystack);
        }
        self.is_match_elsewhere(me, haystack)
    }

    /// [`Local::is_match`] on a thread that does not own the searcher
    /// (yet): it takes ownership if nobody has, or searches with its clone.
    #[inline(never)]
    fn is_match_elsewhere(&self, me: u64, haystack: &[u8]) -> bool {
        if self
            .shared
            .compare_exchange(0, me, Relaxed, Relaxed)
            .is_ok()
        {
            return self.searcher.search(haystack);
        }
        // During a thread's teardown its map may be gone: it then searches
        // through the regex's own pool.
        S::clones()
            .try_with(|c| c.borrow_mut().get(self).search(haystack))
            .unwrap_or_else(|_| self.searcher.search(haystack))
    }

    /// Whether this thread searches with the matcher's own regex (`true`)
    /// or a clone of its own (`false`); `None` before it has searched.
    #[cfg(test)]
    fn searched_as_owner(&self) -> Option<bool> {
        if self.shared.load(Relaxed) == thread_number() {
            Some(true)
        } else if S::clones().with(|c| c.borrow().map.contains_key(&self.id())) {
            Some(false)
        } else {
            None
        }
    }
}

impl Matcher {
    /// The pattern.
    pub(crate) fn as_str(&self) -> &str {
        self.searcher.as_str()
    }
}

impl<S: Search> Clones<S> {
    /// This thread's clone of `m`'s searcher, made on first use.
    fn get(&mut self, m: &Local<S>) -> &S {
        let id = m.id();
        if !self.map.contains_key(&id) {
            // Rare (a thread's first search with a matcher): forget the
            // clones of matchers that are gone.
            self.map.retain(|_, (_, alive)| alive.strong_count() > 0);
            self.map
                .insert(id, (m.searcher.clone(), Arc::downgrade(&m.shared)));
        }
        &self.map[&id].0
    }
}

impl<S: Search> Clone for Local<S> {
    /// A matcher of its own (no owner yet).
    fn clone(&self) -> Local<S> {
        Local::new(self.searcher.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for Local<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Local").field(&self.searcher).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_but_the_first_searches_with_a_clone_of_its_own() {
        let m = Arc::new(Matcher::new(Regex::new("^a+$").unwrap()));
        assert_eq!(m.searched_as_owner(), None);
        assert!(m.is_match(b"aaa"));
        assert_eq!(m.searched_as_owner(), Some(true));
        let others: Vec<_> = (0..3)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    assert_eq!(m.searched_as_owner(), None);
                    let answers = (m.is_match(b"aa"), m.is_match(b"ab"));
                    (answers, m.searched_as_owner())
                })
            })
            .collect();
        for t in others {
            assert_eq!(t.join().unwrap(), ((true, false), Some(false)));
        }
        // The owner keeps its place.
        assert!(!m.is_match(b"b"));
        assert_eq!(m.searched_as_owner(), Some(true));
    }

    #[test]
    fn a_threads_clones_of_dropped_matchers_go_when_it_adds_one() {
        let first = Matcher::new(Regex::new("x").unwrap());
        // Make another thread the owner, so this one clones.
        std::thread::scope(|s| {
            s.spawn(|| first.is_match(b"x"));
        });
        assert!(first.is_match(b"x"));
        let id = first.id();
        assert!(REGEX_CLONES.with(|c| c.borrow().map.contains_key(&id)));
        drop(first);
        let second = Matcher::new(Regex::new("y|z").unwrap());
        std::thread::scope(|s| {
            s.spawn(|| second.is_match(b"y"));
        });
        assert!(second.is_match(b"z"));
        assert!(!second.is_match(b"w"));
        REGEX_CLONES.with(|c| {
            let c = c.borrow();
            assert!(!c.map.contains_key(&id));
            assert!(c.map.contains_key(&second.id()));
        });
    }

    #[test]
    fn sets_too() {
        let m = SetMatcher::new(RegexSet::new(["^/a", "^/b"]).unwrap());
        std::thread::scope(|s| {
            s.spawn(|| assert!(m.is_match(b"/a1")));
        });
        assert!(m.is_match(b"/b2"));
        assert!(!m.is_match(b"/c"));
        assert_eq!(m.searched_as_owner(), Some(false));
    }

    #[test]
    fn a_clone_is_a_matcher_of_its_own() {
        let m = Matcher::new(Regex::new("q").unwrap());
        assert!(m.is_match(b"q"));
        let c = m.clone();
        assert_ne!(c.id(), m.id());
        assert_eq!(c.searched_as_owner(), None);
        assert!(c.is_match(b"q"));
        assert_eq!(c.searched_as_owner(), Some(true));
        assert_eq!(c.as_str(), "q");
    }
}
