//! The loaded program and its maps.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use aya::{
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode},
    Ebpf, EbpfError, EbpfLoader,
};
use rauta_xdp_common::{
    buckets_for, port_bit, ranges_for, spill_for, v4_24_slot, v4_bucket, v6_bits_stored, v6_bucket,
    v6_chunk_bits, v6_chunk_leaf_code, v6_chunk_part_code, v6_filter_slot, v6_fine_slot_of,
    v6_leaf_code, v6_leaf_key, v6_level, v6_sub_leaf_code, Config, CounterTable, SourceKey,
    V4Bucket, V4HostBits, V6Bucket, V6FilterEntry, V6Leaf, V6Prefix, V6Ranges, V6SpillKey,
    V6_16Entry, DEFAULT_DENY_V4_ENTRIES, DEFAULT_DENY_V6_ENTRIES, DEFAULT_SYN_STATE_ENTRIES,
    GLOBAL_V4_BUCKET_MASK, GLOBAL_V6_BUCKET_MASK, MAP_CONFIG, MAP_COUNTERS, MAP_DENY_PORTS,
    MAP_DENY_V4, MAP_DENY_V4_24, MAP_DENY_V4_SPILL, MAP_DENY_V6, MAP_DENY_V6_16, MAP_DENY_V6_32,
    MAP_DENY_V6_LEAF, MAP_DENY_V6_RANGES, MAP_DENY_V6_SPILL, MAP_SYN_STATE, PASS_PROGRAM_NAME,
    PROGRAM_NAME, V4_24_DENIED, V4_24_HOSTS, V4_MAP24_WORDS, V6_16_DENIED, V6_16_ENTRIES,
    V6_16_LEAVES, V6_FILTER_SHORT, V6_FILTER_WORDS, V6_LEAF_PREFIXES, V6_MAX_PARTS, V6_OVERFLOW,
    V6_RANGES, V6_SPLIT,
};

use crate::buckets::Table;
use crate::ranges::{merged_ranges, RangeSlots, V6Leaves};
use crate::wait::Waiter;

use crate::{errno, Counters, Error, ErrorKind, IpPrefix};

/// The embedded object, when the crate was built with the `ebpf` feature.
#[cfg(feature = "ebpf")]
pub(crate) static EMBEDDED: Option<&[u8]> = Some(include_bytes_aligned::bytes());
/// The embedded object, when the crate was built with the `ebpf` feature.
#[cfg(not(feature = "ebpf"))]
pub(crate) static EMBEDDED: Option<&[u8]> = None;

#[cfg(feature = "ebpf")]
mod include_bytes_aligned {
    #[repr(C, align(8))]
    struct Aligned<B: ?Sized>(B);
    static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
        env!("OUT_DIR"),
        "/rauta-xdp-ebpf.o"
    )));
    pub(super) const fn bytes() -> &'static [u8] {
        &OBJECT.0
    }
}

/// The transport protocol of a denied destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// How the program runs on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttachMode {
    /// In the driver, before any socket buffer is allocated (fastest).
    Native,
    /// In the generic path, after the socket buffer is allocated (works on
    /// every interface; slower).
    Skb,
}

/// Which attach modes to try.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttachPolicy {
    /// Native, and generic (skb) mode if the driver has no native support.
    #[default]
    NativeOrSkb,
    /// Native only.
    Native,
    /// Generic (skb) only.
    Skb,
}

/// A per-source rate limit on TCP SYNs (generic cell rate algorithm).
///
/// A source may send `burst` SYNs at once, then one per `interval`. The
/// state is one `u64` per source in an LRU map, so a flood of distinct
/// sources evicts the least recently seen ones instead of filling up.
///
/// ```
/// use rauta_xdp::SynLimit;
///
/// let limit = SynLimit::per_second(100, 20)?;
/// assert_eq!(limit.interval(), std::time::Duration::from_millis(10));
/// assert!(SynLimit::per_second(0, 1).is_err());
/// # Ok::<(), rauta_xdp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynLimit {
    interval: Duration,
    burst: u32,
}

impl SynLimit {
    /// `rate` SYNs per second per source, with bursts of up to `burst`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidSetting`] if `rate` or `burst` is 0, or `rate`
    /// exceeds 1,000,000,000.
    pub fn per_second(rate: u32, burst: u32) -> Result<Self, Error> {
        if rate == 0 || rate > 1_000_000_000 {
            return Err(invalid(format!(
                "SYN rate must be 1..=1000000000 per second, got {rate}"
            )));
        }
        Self::every(Duration::from_nanos(1_000_000_000 / u64::from(rate)), burst)
    }

    /// One SYN per `interval` per source, with bursts of up to `burst`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidSetting`] if `burst` is 0, or `interval` is
    /// shorter than a nanosecond or longer than a year.
    pub fn every(interval: Duration, burst: u32) -> Result<Self, Error> {
        if burst == 0 {
            return Err(invalid("SYN burst must be at least 1".to_owned()));
        }
        let year = Duration::from_secs(366 * 24 * 3600);
        if interval.as_nanos() == 0 || interval > year {
            return Err(invalid(format!(
                "SYN interval must be 1ns..=1 year, got {interval:?}"
            )));
        }
        Ok(Self { interval, burst })
    }

    /// Time between SYNs once the burst is spent.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// SYNs a fresh source may send at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// (interval, tolerance) in nanoseconds.
    fn to_config(self) -> (u64, u64) {
        // Both fit in u64: interval <= 1 year (< 2^55 ns), burst < 2^32.
        let interval = self.interval.as_nanos() as u64;
        (interval, interval.saturating_mul(u64::from(self.burst - 1)))
    }
}

fn invalid(reason: String) -> Error {
    Error::new(ErrorKind::InvalidSetting { reason })
}

/// The outcome of one [`XdpFilter::test_run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestRunOutcome {
    /// What the program returned.
    pub verdict: Verdict,
    /// Mean time of one run, as measured by the kernel.
    pub per_run: Duration,
}

/// An XDP return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// `XDP_PASS`: handed to the kernel stack.
    Pass,
    /// `XDP_DROP`: dropped.
    Drop,
    /// Any other code (`XDP_ABORTED`, `XDP_TX`, `XDP_REDIRECT`, ...).
    Other(u32),
}

impl Verdict {
    fn from_code(code: u32) -> Self {
        match code {
            1 => Self::Drop,
            2 => Self::Pass,
            c => Self::Other(c),
        }
    }
}

/// Map capacities, fixed when the program is loaded.
///
/// Build one with [`XdpFilter::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct Builder {
    deny_v4: u32,
    deny_v6: u32,
    /// `None`: [`ranges_for`] the IPv6 capacity.
    v6_range_slots: Option<u32>,
    syn_state: u32,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            deny_v4: DEFAULT_DENY_V4_ENTRIES,
            deny_v6: DEFAULT_DENY_V6_ENTRIES,
            v6_range_slots: None,
            syn_state: DEFAULT_SYN_STATE_ENTRIES,
        }
    }
}

impl Builder {
    /// Capacity of the IPv4 source deny list (default 65,536 prefixes). The
    /// kernel preallocates about 84 bytes of buckets per prefix of capacity
    /// (docs/xdp.md, "Maps").
    pub fn deny_v4_capacity(mut self, n: u32) -> Self {
        self.deny_v4 = n;
        self
    }

    /// Capacity of the IPv6 source deny list (default 16,384 prefixes). The
    /// kernel preallocates about 292 bytes of buckets per prefix of
    /// capacity, and by default 128 bytes of range slots
    /// ([`Builder::deny_v6_range_slots`]).
    pub fn deny_v6_capacity(mut self, n: u32) -> Self {
        self.deny_v6 = n;
        self
    }

    /// Number of address-range slots for crowded IPv6 blocks (default
    /// `deny_v6_capacity` / 8, at least 64: 2,048, 2 MiB, with the default
    /// capacity; 1 KiB each, preallocated).
    ///
    /// A block, or a 64th of one, that more than 8 denied prefixes reach is
    /// held as up to 64 address ranges in a slot, which a source reads in
    /// one more lookup (docs/xdp.md, "Maps"). Without a free slot it falls
    /// back to continuation leaves (a lookup more per 8 prefixes) or to the
    /// LPM trie (several times slower). The default, a slot per 8 prefixes
    /// of capacity, runs out only where many prefixes each reach several
    /// crowded 64ths (a /49 and some /56s beside it); fewer slots save
    /// memory where denied prefixes are known to be sparse.
    /// [`XdpFilter::v6_range_slots_in_use`] tells how many are taken.
    pub fn deny_v6_range_slots(mut self, n: u32) -> Self {
        self.v6_range_slots = Some(n);
        self
    }

    fn range_slots(&self) -> u32 {
        self.v6_range_slots
            .unwrap_or_else(|| ranges_for(self.deny_v6))
    }

    /// Number of sources the SYN rate limit tracks (default 65,536; the least
    /// recently seen are evicted beyond it).
    pub fn syn_sources_capacity(mut self, n: u32) -> Self {
        self.syn_state = n;
        self
    }

    /// Loads the embedded program into the kernel.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NoEmbeddedObject`] without the `ebpf` feature;
    /// [`ErrorKind::NotRoot`] without privileges;
    /// [`ErrorKind::VerifierRejected`] with the verifier's log;
    /// [`ErrorKind::InvalidSetting`] for a zero capacity.
    pub fn load(&self) -> Result<XdpFilter, Error> {
        let object = EMBEDDED.ok_or_else(|| Error::new(ErrorKind::NoEmbeddedObject))?;
        self.load_from(object)
    }

    /// Loads a program object built elsewhere (the same source, built by
    /// `ebpf/xdp-ebpf`).
    ///
    /// # Errors
    ///
    /// As [`Builder::load`], and [`ErrorKind::InvalidObject`] if the object
    /// cannot be parsed or lacks a program or map.
    pub fn load_from(&self, object: &[u8]) -> Result<XdpFilter, Error> {
        for (name, n) in [
            ("deny_v4_capacity", self.deny_v4),
            ("deny_v6_capacity", self.deny_v6),
            ("deny_v6_range_slots", self.range_slots()),
            ("syn_sources_capacity", self.syn_state),
        ] {
            if n == 0 {
                return Err(invalid(format!("{name} must be at least 1")));
            }
        }
        let v4_mask = buckets_for(self.deny_v4) - 1;
        let v6_mask = buckets_for(self.deny_v6) - 1;
        let mut ebpf = EbpfLoader::new()
            .override_global(GLOBAL_V4_BUCKET_MASK, &v4_mask, true)
            .override_global(GLOBAL_V6_BUCKET_MASK, &v6_mask, true)
            .map_max_entries(MAP_DENY_V4, buckets_for(self.deny_v4))
            .map_max_entries(MAP_DENY_V4_SPILL, spill_for(self.deny_v4))
            .map_max_entries(MAP_DENY_V6, self.deny_v6)
            .map_max_entries(MAP_DENY_V6_LEAF, buckets_for(self.deny_v6))
            .map_max_entries(MAP_DENY_V6_SPILL, spill_for(self.deny_v6))
            .map_max_entries(MAP_DENY_V6_RANGES, self.range_slots())
            .map_max_entries(MAP_SYN_STATE, self.syn_state)
            .load(object)
            .map_err(load_error)?;
        for name in [PROGRAM_NAME, PASS_PROGRAM_NAME] {
            let program: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| missing("program", name))?
                .try_into()
                .map_err(|e| Error::with_source(object_error(format!("{name} is not XDP")), e))?;
            program.load().map_err(|e| program_load_error(name, e))?;
        }
        let deny_v4 = Table::new(
            take(&mut ebpf, MAP_DENY_V4, Array::try_from)?,
            take(&mut ebpf, MAP_DENY_V4_SPILL, HashMap::try_from)?,
            MAP_DENY_V4_SPILL,
            spill_for(self.deny_v4),
        );
        let deny_v4_24 = take(&mut ebpf, MAP_DENY_V4_24, Array::try_from)?;
        let deny_v6 = take(&mut ebpf, MAP_DENY_V6, LpmTrie::try_from)?;
        let deny_v6_32 = take(&mut ebpf, MAP_DENY_V6_32, Array::try_from)?;
        let mut deny_v6_leaf = V6Leaves::new(
            Table::new(
                take(&mut ebpf, MAP_DENY_V6_LEAF, Array::try_from)?,
                take(&mut ebpf, MAP_DENY_V6_SPILL, HashMap::try_from)?,
                MAP_DENY_V6_SPILL,
                spill_for(self.deny_v6),
            ),
            RangeSlots::new(take(&mut ebpf, MAP_DENY_V6_RANGES, Array::try_from)?),
            Waiter::new(),
        );
        deny_v6_leaf.write_every_bucket()?;
        let deny_v6_16 = take(&mut ebpf, MAP_DENY_V6_16, Array::try_from)?;
        let deny_ports = take(&mut ebpf, MAP_DENY_PORTS, Array::try_from)?;
        let config = take(&mut ebpf, MAP_CONFIG, Array::try_from)?;
        let syn_state = take(&mut ebpf, MAP_SYN_STATE, HashMap::try_from)?;
        let counters = take(&mut ebpf, MAP_COUNTERS, PerCpuArray::try_from)?;
        let mut filter = XdpFilter {
            capacities: self.clone(),
            deny_v4,
            deny_v4_24,
            v4_set: BTreeSet::new(),
            v4_words: vec![0; V4_MAP24_WORDS as usize],
            deny_v6,
            deny_v6_32,
            deny_v6_leaf,
            deny_v6_16,
            v6_16_entries: vec![[0; 2]; V6_16_ENTRIES as usize],
            v6_set: BTreeSet::new(),
            v6_words: vec![[0; 8]; 2 * V6_FILTER_WORDS as usize],
            v6_bit_users: ahash::AHashMap::new(),
            v6_fine_users: ahash::AHashMap::new(),
            v6_short: 0,
            cfg: Config {
                v4_bucket_mask: v4_mask,
                v6_bucket_mask: v6_mask,
                ..Config::default()
            },
            deny_ports,
            config,
            syn_state,
            counters,
            attached: None,
            ebpf,
        };
        // The bucket counts the program hashes with.
        filter.store_config(filter.cfg)?;
        Ok(filter)
    }
}

fn object_error(reason: String) -> ErrorKind {
    ErrorKind::InvalidObject { reason }
}

fn missing(what: &str, name: &str) -> Error {
    Error::new(object_error(format!("no {what} named {name}")))
}

fn take<M>(
    ebpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<M, MapError>,
) -> Result<M, Error> {
    let map = ebpf.take_map(name).ok_or_else(|| missing("map", name))?;
    convert(map)
        .map_err(|e| Error::with_source(object_error(format!("map {name} has the wrong type")), e))
}

fn load_error(e: EbpfError) -> Error {
    match e {
        EbpfError::ProgramError(p) => program_load_error(PROGRAM_NAME, p),
        EbpfError::ParseError(_)
        | EbpfError::BtfRelocationError(_)
        | EbpfError::RelocationError(_)
        | EbpfError::UnexpectedPinningType { .. }
        | EbpfError::NoBTF => {
            let reason = e.to_string();
            Error::with_source(ErrorKind::InvalidObject { reason }, e)
        }
        other => Error::kernel("creating the maps", other),
    }
}

fn program_load_error(name: &str, e: ProgramError) -> Error {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            if io_error.raw_os_error() == Some(libc::EPERM) {
                Error::with_source(ErrorKind::NotRoot, io_error)
            } else {
                Error::with_source(
                    ErrorKind::VerifierRejected {
                        program: name.to_owned(),
                        log: verifier_log.to_string(),
                    },
                    io_error,
                )
            }
        }
        other => Error::kernel("loading the program", other),
    }
}

#[derive(Debug)]
struct Attachment {
    interface: String,
    mode: AttachMode,
    link: aya::programs::xdp::XdpLinkId,
}

/// The loaded XDP classifier: its maps, and its attachment to at most one
/// interface.
///
/// Dropping the filter detaches the program and frees every kernel object
/// it created.
///
/// See the [crate docs](crate) for an example.
pub struct XdpFilter {
    capacities: Builder,
    /// Address bitmaps of the /24s holding prefixes longer than /24.
    deny_v4: Table<V4Bucket, [u8; 4]>,
    /// Two bits per /24 (see `rauta_xdp_common::MAP_DENY_V4_24`).
    deny_v4_24: Array<MapData, u64>,
    /// Every denied IPv4 prefix as (network address, length): the truth the
    /// two IPv4 maps are derived from.
    v4_set: BTreeSet<(u32, u8)>,
    /// The kernel's `deny_v4_24` words, mirrored.
    v4_words: Vec<u64>,
    deny_v6: LpmTrie<MapData, [u8; 16], u8>,
    /// Hashed /32, /48 and /64 filter entries in front of `deny_v6_leaf`
    /// (block bits, the short-prefix bit, and the 64ths of each level).
    deny_v6_32: Array<MapData, V6FilterEntry>,
    /// The prefixes of each /16, /32, /48 and /64 holding any (see
    /// `rauta_xdp_common::MAP_DENY_V6_LEAF`).
    deny_v6_leaf: V6Leaves,
    /// A state and the /22s reached per /16, for the prefixes shorter than
    /// /32 (see `rauta_xdp_common::MAP_DENY_V6_16`).
    deny_v6_16: Array<MapData, V6_16Entry>,
    /// The kernel's `deny_v6_16` entries, mirrored.
    v6_16_entries: Vec<V6_16Entry>,
    /// Every denied IPv6 prefix as (network address, length).
    v6_set: BTreeSet<(u128, u8)>,
    /// The kernel's `deny_v6_32` entries, mirrored.
    v6_words: Vec<V6FilterEntry>,
    /// How many prefixes of the set set each (entry, bit) of the block
    /// bits of `deny_v6_32`.
    v6_bit_users: ahash::AHashMap<(u32, u64), u32>,
    /// How many 64ths reached by prefixes of the set hash to each bit of
    /// the 64th words of `deny_v6_32`, per (entry, [`fine_index`]) of the
    /// bits set only (one [u32; 64] per word in use took twice the memory:
    /// 47 MB against 22 MB for 65,536 random prefixes of /40-/64).
    v6_fine_users: ahash::AHashMap<(u32, u16), u32>,
    /// How many prefixes of the set are shorter than /32.
    v6_short: usize,
    /// The kernel's `CONFIG` value, mirrored.
    cfg: Config,
    deny_ports: Array<MapData, u64>,
    config: Array<MapData, Config>,
    syn_state: HashMap<MapData, SourceKey, u64>,
    counters: PerCpuArray<MapData, CounterTable>,
    attached: Option<Attachment>,
    // Declared last: dropped after the maps above (the program holds its own
    // references to them either way).
    ebpf: Ebpf,
}

impl std::fmt::Debug for XdpFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpFilter")
            .field("capacities", &self.capacities)
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

impl XdpFilter {
    /// Loads the embedded program with the default map capacities.
    ///
    /// # Errors
    ///
    /// See [`Builder::load`].
    pub fn load() -> Result<Self, Error> {
        Builder::default().load()
    }

    /// Map capacities and loading options.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Whether this build embeds the XDP object (the `ebpf` feature).
    pub fn has_embedded_object() -> bool {
        EMBEDDED.is_some()
    }

    /// The embedded object's bytes, if any.
    pub fn embedded_object() -> Option<&'static [u8]> {
        EMBEDDED
    }

    fn program(&self, name: &str) -> Result<&Xdp, Error> {
        self.ebpf
            .program(name)
            .ok_or_else(|| missing("program", name))?
            .try_into()
            .map_err(|e| Error::with_source(object_error(format!("{name} is not XDP")), e))
    }

    fn program_mut(&mut self) -> Result<&mut Xdp, Error> {
        self.ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| missing("program", PROGRAM_NAME))?
            .try_into()
            .map_err(|e| Error::with_source(object_error(format!("{PROGRAM_NAME} is not XDP")), e))
    }

    /// Attaches to `interface`, natively if its driver supports XDP and in
    /// generic (skb) mode otherwise; returns the mode used.
    ///
    /// The interface is looked up in the calling thread's network namespace.
    ///
    /// # Errors
    ///
    /// See [`XdpFilter::attach_with`].
    pub fn attach(&mut self, interface: &str) -> Result<AttachMode, Error> {
        self.attach_with(interface, AttachPolicy::NativeOrSkb)
    }

    /// Attaches to `interface` in the modes `policy` allows; returns the mode
    /// used.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyAttached`] if this filter is attached, or the
    /// interface already runs an XDP program; [`ErrorKind::NoSuchInterface`];
    /// [`ErrorKind::NotRoot`]; [`ErrorKind::Kernel`] if no allowed mode
    /// works.
    pub fn attach_with(
        &mut self,
        interface: &str,
        policy: AttachPolicy,
    ) -> Result<AttachMode, Error> {
        if let Some(a) = &self.attached {
            return Err(Error::new(ErrorKind::AlreadyAttached {
                interface: a.interface.clone(),
            }));
        }
        let modes: &[AttachMode] = match policy {
            AttachPolicy::NativeOrSkb => &[AttachMode::Native, AttachMode::Skb],
            AttachPolicy::Native => &[AttachMode::Native],
            AttachPolicy::Skb => &[AttachMode::Skb],
        };
        let program = self.program_mut()?;
        let mut last = None;
        for &mode in modes {
            let xdp_mode = match mode {
                AttachMode::Native => XdpMode::Driver,
                AttachMode::Skb => XdpMode::Skb,
            };
            match program.attach(interface, xdp_mode) {
                Ok(link) => {
                    self.attached = Some(Attachment {
                        interface: interface.to_owned(),
                        mode,
                        link,
                    });
                    return Ok(mode);
                }
                Err(ProgramError::UnknownInterface { name }) => {
                    return Err(Error::new(ErrorKind::NoSuchInterface { name }));
                }
                Err(e) => match errno(&e) {
                    Some(libc::EPERM) => return Err(Error::with_source(ErrorKind::NotRoot, e)),
                    Some(libc::EBUSY | libc::EEXIST) => {
                        return Err(Error::with_source(
                            ErrorKind::AlreadyAttached {
                                interface: interface.to_owned(),
                            },
                            e,
                        ))
                    }
                    _ => last = Some(e),
                },
            }
        }
        Err(match last {
            Some(e) => Error::kernel("attaching the program", e),
            None => Error::new(ErrorKind::Kernel {
                operation: "attaching the program",
            }),
        })
    }

    /// The interface and mode the program is attached to, if any.
    pub fn attachment(&self) -> Option<(&str, AttachMode)> {
        self.attached
            .as_ref()
            .map(|a| (a.interface.as_str(), a.mode))
    }

    /// Detaches the program from its interface. Maps and counters stay.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotAttached`], or [`ErrorKind::Kernel`].
    pub fn detach(&mut self) -> Result<(), Error> {
        let a = self
            .attached
            .take()
            .ok_or_else(|| Error::new(ErrorKind::NotAttached))?;
        self.program_mut()?
            .detach(a.link)
            .map_err(|e| Error::kernel("detaching the program", e))
    }

    /// Drops traffic from every source inside `prefix`. Adding a prefix that
    /// is already there is not an error.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MapFull`] at capacity; [`ErrorKind::Kernel`].
    pub fn deny_source(&mut self, prefix: IpPrefix) -> Result<(), Error> {
        let len = prefix.len();
        let a = match prefix.addr() {
            IpAddr::V4(a) => a,
            IpAddr::V6(a) => return self.deny_v6_prefix(u128::from(a), len),
        };
        let key = (u32::from(a), len);
        if self.v4_set.contains(&key) {
            return Ok(());
        }
        if self.v4_set.len() >= self.capacities.deny_v4 as usize {
            return Err(Error::new(ErrorKind::MapFull {
                map: MAP_DENY_V4,
                capacity: self.capacities.deny_v4,
            }));
        }
        self.v4_set.insert(key);
        if let Err(e) = self.apply_v4(key, true) {
            // Back to the maps of the set without it (best effort: the
            // error is the one to report).
            self.v4_set.remove(&key);
            let _ = self.apply_v4(key, false);
            return Err(e);
        }
        Ok(())
    }

    /// Removes `prefix` (exactly this prefix, not the ones inside it) from
    /// the deny list; returns whether it was there.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Kernel`]; the prefix is then still denied.
    pub fn allow_source(&mut self, prefix: IpPrefix) -> Result<bool, Error> {
        let len = prefix.len();
        let a = match prefix.addr() {
            IpAddr::V4(a) => a,
            IpAddr::V6(a) => return self.allow_v6(u128::from(a), len),
        };
        let key = (u32::from(a), len);
        if !self.v4_set.remove(&key) {
            return Ok(false);
        }
        if let Err(e) = self.apply_v4(key, false) {
            self.v4_set.insert(key);
            let _ = self.apply_v4(key, true);
            return Err(e);
        }
        Ok(true)
    }

    /// Denies every prefix of `prefixes` in one change: an IPv6 block that
    /// several of them fall in is written once, with all of them (a list
    /// of crowded blocks loads several times faster than prefix by prefix).
    /// Prefixes already denied are left as they are.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MapFull`] when the list would exceed a capacity (found
    /// before any write), or when an IPv4 address bitmap finds its bucket
    /// and the spill map full; [`ErrorKind::Kernel`]. After an error the
    /// deny list is as it was before the call, and the maps are written
    /// from it again (best effort: a second failure leaves them as the
    /// next change of those blocks finds them).
    pub fn deny_sources<I>(&mut self, prefixes: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = IpPrefix>,
    {
        self.change_sources(prefixes.into_iter().collect(), Vec::new())
            .map(|_| ())
    }

    /// Removes every prefix of `prefixes` (exactly these, not the ones
    /// inside them) from the deny list in one change, as
    /// [`XdpFilter::deny_sources`] adds them: an IPv6 block is written
    /// once, and one that empties is removed without waiting for the
    /// program's runs. Returns how many were denied.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Kernel`], the deny list then being as it was before the
    /// call (as for [`XdpFilter::deny_sources`]).
    pub fn allow_sources<I>(&mut self, prefixes: I) -> Result<usize, Error>
    where
        I: IntoIterator<Item = IpPrefix>,
    {
        self.change_sources(Vec::new(), prefixes.into_iter().collect())
    }

    /// Makes the deny list exactly `prefixes`: denies those not denied yet
    /// and allows those denied but not in it, in one change (as
    /// [`XdpFilter::deny_sources`]). Prefixes in both lists keep being
    /// dropped throughout; a source of an added prefix is dropped, and one
    /// of a removed prefix passes, from some moment during the call on. For
    /// a deny list fed from elsewhere: calling it with the whole list
    /// again changes only what changed.
    ///
    /// # Errors
    ///
    /// As [`XdpFilter::deny_sources`].
    pub fn replace_denied_sources<I>(&mut self, prefixes: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = IpPrefix>,
    {
        let want: ahash::AHashSet<IpPrefix> = prefixes.into_iter().collect();
        let have = self.denied_sources()?;
        let allow = have.iter().filter(|p| !want.contains(p)).copied().collect();
        let have: ahash::AHashSet<IpPrefix> = have.into_iter().collect();
        let deny = want.into_iter().filter(|p| !have.contains(p)).collect();
        self.change_sources(deny, allow).map(|_| ())
    }

    /// Denies `deny` and allows `allow` (prefixes in neither state already
    /// are left out); how many were allowed. IPv4 prefix by prefix, IPv6 in
    /// one pass over the blocks they fall in. On a kernel error the sets
    /// go back to what they were and the maps are derived from them again.
    fn change_sources(
        &mut self,
        deny: Vec<IpPrefix>,
        allow: Vec<IpPrefix>,
    ) -> Result<usize, Error> {
        let mut v4: Vec<((u32, u8), bool)> = Vec::new();
        let mut v6_add: BTreeSet<(u128, u8)> = BTreeSet::new();
        let mut v6_del: BTreeSet<(u128, u8)> = BTreeSet::new();
        let mut v4_seen = BTreeSet::new();
        for (p, add) in deny
            .iter()
            .map(|p| (p, true))
            .chain(allow.iter().map(|p| (p, false)))
        {
            match p.addr() {
                IpAddr::V4(a) => {
                    let key = (u32::from(a), p.len());
                    if self.v4_set.contains(&key) != add && v4_seen.insert(key) {
                        v4.push((key, add));
                    }
                }
                IpAddr::V6(a) => {
                    let key = (u128::from(a), p.len());
                    if self.v6_set.contains(&key) != add {
                        if add {
                            v6_add.insert(key);
                        } else {
                            v6_del.insert(key);
                        }
                    }
                }
            }
        }
        // Removals first (as for IPv6: the spill map never holds more
        // than it will).
        v4.sort_by_key(|&(_, add)| add);
        let v4_added = v4.iter().filter(|(_, add)| *add).count();
        let v4_after = self.v4_set.len() + v4_added - (v4.len() - v4_added);
        if v4_after > self.capacities.deny_v4 as usize {
            return Err(Error::new(ErrorKind::MapFull {
                map: MAP_DENY_V4,
                capacity: self.capacities.deny_v4,
            }));
        }
        if self.v6_set.len() + v6_add.len() - v6_del.len() > self.capacities.deny_v6 as usize {
            return Err(Error::new(ErrorKind::MapFull {
                map: MAP_DENY_V6,
                capacity: self.capacities.deny_v6,
            }));
        }
        // IPv4, undone prefix by prefix on an error.
        let undo_v4 = |f: &mut XdpFilter, done: &[((u32, u8), bool)]| {
            for &(key, add) in done.iter().rev() {
                if add {
                    f.v4_set.remove(&key);
                } else {
                    f.v4_set.insert(key);
                }
                let _ = f.apply_v4(key, !add);
            }
        };
        for (i, &(key, add)) in v4.iter().enumerate() {
            if add {
                self.v4_set.insert(key);
            } else {
                self.v4_set.remove(&key);
            }
            if let Err(e) = self.apply_v4(key, add) {
                undo_v4(self, &v4[..=i]);
                return Err(e);
            }
        }
        // IPv6 in two passes, the removals first: a leaf slot a removed
        // prefix frees is never given to an added one in the same write (a
        // run reading the slot as it changes could pair one's address with
        // the other's mask), and the trie never holds more than the
        // capacity.
        let none = BTreeSet::new();
        for &(a, len) in &v6_del {
            self.v6_set_remove(a, len);
        }
        // The flag that has the program read the /16 states stays on
        // through removals that take the last prefixes shorter than /32
        // when additions bring others (rather than 32,768 writes to clear
        // it and as many to set it again).
        let short_after = v6_add.iter().any(|&(_, len)| len < 32);
        let removed = self.apply_v6_batch(&none, &v6_del, short_after);
        let added = removed.and_then(|()| {
            for &(a, len) in &v6_add {
                self.v6_set_add(a, len);
            }
            self.apply_v6_batch(&v6_add, &none, false).inspect_err(|_| {
                for &(a, len) in &v6_add {
                    self.v6_set_remove(a, len);
                }
                let _ = self.apply_v6_batch(&none, &v6_add, false);
            })
        });
        if let Err(e) = added {
            for &(a, len) in &v6_del {
                self.v6_set_add(a, len);
            }
            let _ = self.apply_v6_batch(&v6_del, &none, false);
            undo_v4(self, &v4);
            return Err(e);
        }
        Ok(v4.len() - v4_added + v6_del.len())
    }

    /// Brings the IPv4 maps that `key` touches in line with the set, which
    /// already holds (`added`) or lacks it. An added prefix's bitmap is
    /// written before the /24 state that sends the program there; a removed
    /// one's state first.
    fn apply_v4(&mut self, key: (u32, u8), added: bool) -> Result<(), Error> {
        let (lo, _, _) = v4_span(key);
        let long = key.1 > 24;
        if added && long {
            self.store_v4_hosts(lo)?;
        }
        self.refresh_v4_words(key)?;
        if !added && long {
            self.store_v4_hosts(lo)?;
        }
        Ok(())
    }

    /// Recomputes the /24 states of the span of `key` from the set.
    fn refresh_v4_words(&mut self, key: (u32, u8)) -> Result<(), Error> {
        let (addr, len) = key;
        let (lo, n, _) = v4_span(key);
        let mut words = self.v4_words_of(lo, n);
        for net in lo..lo + n {
            set_bits(&mut words.1, words.0, net, 0);
        }
        let end = u64::from(lo) + u64::from(n);
        // Prefixes inside the span (same or longer).
        let first = lo << 8;
        let inside: Vec<(u32, u8)> = self
            .v4_set
            .range((first, 0)..)
            .take_while(|(addr, _)| u64::from(*addr >> 8) < end)
            .copied()
            .collect();
        // Shorter prefixes around it.
        let around: Vec<(u32, u8)> = (0..len.min(25))
            .map(|l| (addr & v4_mask(l), l))
            .filter(|k| self.v4_set.contains(k))
            .collect();
        for q in inside.into_iter().chain(around) {
            let (qlo, qn, state) = v4_span(q);
            let s = qlo.max(lo);
            let e = (u64::from(qlo) + u64::from(qn)).min(end) as u32;
            for net in s..e {
                let old = get_bits(&words.1, words.0, net);
                set_bits(&mut words.1, words.0, net, merge(old, state));
            }
        }
        self.store_v4_words(words)
    }

    /// Writes the address bitmap of /24 `net24` from the prefixes longer
    /// than /24 in it, or removes it when there are none.
    fn store_v4_hosts(&mut self, net24: u32) -> Result<(), Error> {
        let base = net24 << 8;
        let mut bits = V4HostBits::default();
        for &(addr, len) in self.v4_set.range((base, 25)..=(base | 255, 32)) {
            if len <= 24 {
                continue;
            }
            let first = addr & 255;
            for host in first..first + (1u32 << (32 - len)) {
                bits.words[(host / 64) as usize] |= 1u64 << (host % 64);
            }
        }
        let value = (bits != V4HostBits::default()).then_some(bits);
        let b = v4_bucket(net24, self.cfg.v4_bucket_mask);
        self.deny_v4.put(b, net24, base.to_be_bytes(), value)
    }

    /// A copy of the mirrored words holding /24s `lo .. lo + n`, with the
    /// index of the first.
    fn v4_words_of(&self, lo: u32, n: u32) -> (u32, Vec<u64>) {
        let w0 = v4_24_slot(lo).0;
        let w1 = v4_24_slot(lo + (n - 1)).0;
        (w0, self.v4_words[w0 as usize..=w1 as usize].to_vec())
    }

    fn store_v4_words(&mut self, (w0, words): (u32, Vec<u64>)) -> Result<(), Error> {
        let what = "updating the IPv4 deny bitmap";
        store_words(&mut self.deny_v4_24, &mut self.v4_words, w0, words, what)
    }

    fn deny_v6_prefix(&mut self, addr: u128, len: u8) -> Result<(), Error> {
        if self.v6_set.contains(&(addr, len)) {
            return Ok(());
        }
        if self.v6_set.len() >= self.capacities.deny_v6 as usize {
            return Err(Error::new(ErrorKind::MapFull {
                map: MAP_DENY_V6,
                capacity: self.capacities.deny_v6,
            }));
        }
        self.v6_set_add(addr, len);
        if let Err(e) = self.apply_v6(addr, len, true) {
            self.v6_set_remove(addr, len);
            let _ = self.apply_v6(addr, len, false);
            return Err(e);
        }
        Ok(())
    }

    fn allow_v6(&mut self, addr: u128, len: u8) -> Result<bool, Error> {
        if !self.v6_set_remove(addr, len) {
            return Ok(false);
        }
        if let Err(e) = self.apply_v6(addr, len, false) {
            self.v6_set_add(addr, len);
            let _ = self.apply_v6(addr, len, true);
            return Err(e);
        }
        Ok(true)
    }

    /// Adds a prefix to the IPv6 set and to the counts kept beside it.
    fn v6_set_add(&mut self, addr: u128, len: u8) {
        if self.v6_set.insert((addr, len)) {
            self.v6_count(addr, len, true);
        }
    }

    /// Removes a prefix from the IPv6 set and from the counts; whether it
    /// was there.
    fn v6_set_remove(&mut self, addr: u128, len: u8) -> bool {
        let removed = self.v6_set.remove(&(addr, len));
        if removed {
            self.v6_count(addr, len, false);
        }
        removed
    }

    /// Counts a prefix in (`add`) or out: how many prefixes shorter than
    /// /32 there are, how many set each block bit of the filter and how
    /// many each 64th bit, so that neither question scans the set.
    fn v6_count(&mut self, addr: u128, len: u8, add: bool) {
        let Some(level @ 32..=64) = v6_level(len) else {
            if add {
                self.v6_short += 1;
            } else {
                self.v6_short -= 1;
            }
            return;
        };
        let slot = v6_filter_slot((addr >> 64) as u64, level);
        let n = self.v6_bit_users.entry(slot).or_insert(0);
        if add {
            *n += 1;
        } else {
            *n -= 1;
            if *n == 0 {
                self.v6_bit_users.remove(&slot);
            }
        }
        for (i, bit) in v6_fine_bits(addr, len, level) {
            let fine = (slot.0, fine_index(i, bit));
            let n = self.v6_fine_users.entry(fine).or_insert(0);
            if add {
                *n += 1;
            } else {
                *n -= 1;
                if *n == 0 {
                    self.v6_fine_users.remove(&fine);
                }
            }
        }
    }

    /// Brings the IPv6 maps that `(addr, len)` touches in line with the set,
    /// which already holds (`added`) or lacks it. An added prefix goes into
    /// the trie and its leaf before the filter entry's bits or the /16 state
    /// send the program there; a removed one leaves in the opposite order.
    fn apply_v6(&mut self, addr: u128, len: u8, added: bool) -> Result<(), Error> {
        let trie_key = Key::new(u32::from(len), addr.to_be_bytes());
        if added {
            self.deny_v6
                .insert(&trie_key, 1, 0)
                .map_err(|e| Error::kernel("adding a deny-list entry", e))?;
        }
        let net16 = (addr >> 112) as u32;
        match v6_level(len) {
            Some(16) => {
                if added {
                    self.store_v6_leaf_now(addr, 16)?;
                    self.store_v6_16(net16, 1)?;
                } else {
                    self.store_v6_16(net16, 1)?;
                    self.store_v6_leaf_now(addr, 16)?;
                }
            }
            Some(level) => {
                // The entry from the counts (the set already holds or lacks
                // the prefix; what a failed write left behind is mended, see
                // `v6_entry`), in one map update. The update is a copy, not
                // atomic: a running program may read old and new words
                // mixed, but every bit of a prefix that stays is set in
                // both, so any mix sends it to that prefix's leaves.
                let (word, bit) = v6_filter_slot((addr >> 64) as u64, level);
                let mut mine = [bit, 0, 0, 0, 0, 0, 0, 0];
                for (i, b) in v6_fine_bits(addr, len, level) {
                    mine[i] |= b;
                }
                let entry = self.v6_entry(word, &mine);
                if added {
                    self.store_v6_leaf_now(addr, level)?;
                    self.store_v6_word(word, entry)?;
                } else {
                    self.store_v6_word(word, entry)?;
                    self.store_v6_leaf_now(addr, level)?;
                }
            }
            None => self.store_v6_16(net16, 1 << (16 - len))?,
        }
        if !added {
            match self.deny_v6.remove(&trie_key) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                Err(e) => return Err(Error::kernel("removing a deny-list entry", e)),
            }
        }
        Ok(())
    }

    /// [`XdpFilter::apply_v6`] for many prefixes at once (called with one
    /// of the two empty: removals and additions are separate passes), the
    /// set already holding `added` and lacking `removed`: the added ones go into the
    /// trie, then every block a change falls in is written once from the
    /// set, then the filter entries and /16 states, then the removed ones
    /// leave the trie. A source of a prefix that stays finds it at every
    /// step (its leaf, entry bits and state are in every version); an
    /// added one's leaf comes before the bits that send the program there,
    /// and a removed one may stop matching once its block is rewritten.
    /// `short_after`: the /16 states stay read (the filter's short-prefix
    /// flag stays on) even when no prefix shorter than /32 is left, for a
    /// pass to come that adds some.
    fn apply_v6_batch(
        &mut self,
        added: &BTreeSet<(u128, u8)>,
        removed: &BTreeSet<(u128, u8)>,
        short_after: bool,
    ) -> Result<(), Error> {
        for &(a, len) in added {
            self.deny_v6
                .insert(&Key::new(u32::from(len), a.to_be_bytes()), 1, 0)
                .map_err(|e| Error::kernel("adding a deny-list entry", e))?;
        }
        let changed = || added.iter().chain(removed);
        let mut blocks = BTreeSet::new();
        let mut words: BTreeMap<u32, V6FilterEntry> = BTreeMap::new();
        let mut states = BTreeSet::new();
        for &(a, len) in changed() {
            let net16 = (a >> 112) as u32;
            match v6_level(len) {
                Some(level) => {
                    blocks.insert((level, a & v6_mask(level as u8)));
                    if level == 16 {
                        states.insert((net16, 1));
                    } else {
                        let (word, bit) = v6_filter_slot((a >> 64) as u64, level);
                        let mine = words.entry(word).or_insert([0; 8]);
                        mine[0] |= bit;
                        for (i, b) in v6_fine_bits(a, len, level) {
                            mine[i] |= b;
                        }
                    }
                }
                None => {
                    states.insert((net16, 1u32 << (16 - len)));
                }
            }
        }
        // One wait, after every block is written, for whatever goes once
        // no program run can still follow what the leaves said before.
        let mut later = Later::default();
        let written = blocks
            .into_iter()
            .try_for_each(|(level, base)| self.store_v6_leaf(base, level, &mut later));
        let finished = later.finish(&mut self.deny_v6_leaf);
        written.and(finished)?;
        for (word, mine) in words {
            let entry = self.v6_entry(word, &mine);
            self.store_v6_word(word, entry)?;
        }
        if !states.is_empty() {
            let states: Vec<(u32, u32)> = states.into_iter().collect();
            self.store_v6_16s(&states, short_after)?;
        }
        for &(a, len) in removed {
            match self
                .deny_v6
                .remove(&Key::new(u32::from(len), a.to_be_bytes()))
            {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) if errno(&e) == Some(libc::ENOENT) => {}
                Err(e) => return Err(Error::kernel("removing a deny-list entry", e)),
            }
        }
        Ok(())
    }

    /// [`Self::store_v6_leaf`] with its own wait, if it needs one: every
    /// write made by the time it returns, even when it fails (the first
    /// error is the one returned).
    fn store_v6_leaf_now(&mut self, addr: u128, level: u32) -> Result<(), Error> {
        let mut later = Later::default();
        let written = self.store_v6_leaf(addr, level, &mut later);
        let finished = later.finish(&mut self.deny_v6_leaf);
        written.and(finished)
    }

    /// Writes the leaves of the block at `level` (16, 32, 48 or 64) holding
    /// `addr` from the prefixes of that level in it, or removes them when
    /// there are none.
    ///
    /// A block holding up to `V6_LEAF_PREFIXES` prefixes keeps them in part
    /// 0; one holding more is split by chunk ([`LeafBlock::write_split`];
    /// a crowded chunk is held as address ranges, keeps continuations or
    /// is split in turn) when that
    /// takes at most one chunk leaf a prefix; otherwise it is held as
    /// address ranges ([`LeafBlock::write_block_ranges`]: part 0 names a
    /// slot) when they fit one and a slot is free, else up to
    /// `BLOCK_SLOTS` are kept in parts (part 0 and continuations), and past
    /// that the trie answers for the block (overflow). No block of more
    /// than 8 takes more than 9 leaves for 8: the table is sized for two a
    /// prefix.
    ///
    /// A running program may read a leaf while it is being written, so the
    /// prefixes that stay keep their part and slot (a new one takes the
    /// first free slot, a removed one frees its slot), a continuation part is
    /// written before part 0 announces it, and a block goes into and out of
    /// overflow or the split (the trie or the chunk leaves answer while part
    /// 0 says so) in writes of its own; it goes into and out of the ranges
    /// through overflow (part 0's 64th bits, read under its parts and the
    /// split, make way for the slot's name under it). When the prefixes left fit in fewer
    /// parts than they occupy, they are first copied into the parts that
    /// stay and, once no program run can still hold the old part 0
    /// ([`wait_for_readers`]), the others go.
    ///
    /// What waits for the program's runs is held back in `later`, which
    /// the caller finishes (even when this fails) before the block is
    /// written again ([`Self::store_v6_leaf_now`] does both).
    fn store_v6_leaf(&mut self, addr: u128, level: u32, later: &mut Later) -> Result<(), Error> {
        let width = level as u8;
        let base = addr & v6_mask(width);
        let last = base | !v6_mask(width);
        let mut want = Vec::new();
        let mut reach = Vec::new();
        let mut chunks = 0;
        for &(a, len) in self.v6_set.range((base, 0)..=(last, 128)) {
            if v6_level(len) == Some(level) {
                want.push(leaf_prefix(a, len, level));
                let half = if level == 64 {
                    a as u64
                } else {
                    (a >> 64) as u64
                };
                let bits = v6_chunk_bits(half, u32::from(len), level);
                reach.push(bits);
                chunks |= bits;
            }
        }
        let block = LeafBlock::new((addr >> 64) as u64, level, self.cfg.v6_bucket_mask);
        let table = &mut self.deny_v6_leaf;
        let mut first = block.get(table, 0);
        if want.is_empty() {
            // Part 0 first: the block is clear as soon as it is gone.
            block.put(table, 0, None)?;
            block.remove_continuations(table)?;
            return block.remove_chunk_leaves(table, 0);
        }
        // Split by chunk when part 0 does not hold them and the split takes
        // at most one leaf a prefix besides part 0 (so the table, two slots
        // a prefix, never needs more than it was sized for; prefixes each in
        // a 64th of their own still split): a source then reads part 0 and
        // one chunk leaf (with its continuations only in a 64th reached by
        // more than a leaf holds). Otherwise address ranges (part 0 and a
        // slot), or without a slot parts, up to `BLOCK_SLOTS`; past that
        // the trie.
        let split_fits =
            want.len() > V6_LEAF_PREFIXES && chunks.count_ones() as usize <= want.len();
        if want.len() > V6_LEAF_PREFIXES
            && !split_fits
            && block.write_block_ranges(table, &want, first, later)?
        {
            return Ok(());
        }
        // Out of the ranges: its slot's name is no bits.
        first = block.out_of_ranges(table, first)?;
        let overflowed = first.is_some_and(|l| l.parts == V6_OVERFLOW);
        let split = first.is_some_and(|l| l.parts == V6_SPLIT);
        if split_fits {
            return block.write_split(table, &want, &reach, chunks, first, later);
        }
        if want.len() > BLOCK_SLOTS {
            if overflowed {
                return Ok(());
            }
            return block.send_to_trie(table, first, later);
        }
        if split {
            // Back to parts: written while the chunk leaves still answer;
            // without room for them, the block stays split (or goes to
            // overflow). Part 0's slots are still those it had before the
            // split: a program run that read them then may still be going.
            let mut slots = [V6Prefix::UNUSED; BLOCK_SLOTS];
            if let Some(l) = first {
                slots[..V6_LEAF_PREFIXES].copy_from_slice(&l.prefixes);
            }
            let slots = place_stably(slots, &want);
            let parts = used_slots(&slots).div_ceil(V6_LEAF_PREFIXES).max(1) as u32;
            return match block.write(table, &slots, parts, chunks, Some(V6_SPLIT)) {
                Ok(()) => {
                    later.chunk_leaves.push(block);
                    Ok(())
                }
                Err(e) if matches!(e.kind(), ErrorKind::MapFull { .. }) => {
                    let _ = block.remove_continuations(table);
                    block.write_split(table, &want, &reach, chunks, first, later)
                }
                Err(e) => Err(e),
            };
        }
        block.store_parts(table, &want, first, chunks, Some(later))?;
        // Chunk leaves of a split that failed half-way: nothing reads them.
        block.remove_chunk_leaves(table, 0)
    }

    /// Recomputes the states of /16s `lo .. lo + n` from the set and writes
    /// the words that changed; turns the program's reading of them on once
    /// a state is set and off before the last is cleared (the
    /// `V6_FILTER_SHORT` bit of every filter entry: 32,768 writes, made when
    /// the first prefix shorter than /32 comes and when the last goes).
    /// Until every entry has it, sources in some /32s are not yet (or no
    /// longer) checked against the short prefixes. Every call brings every
    /// entry in line (the mirror makes that 32,768 compares when nothing is
    /// to be written), so a write that failed half-way is finished by the
    /// next change.
    ///
    /// A /16 is denied when a prefix of length 16 or less covers it; it
    /// holds leaves when a prefix of length 17 to 31 lies in it (those
    /// leaves are written whatever the state, so a /16 that stops being
    /// covered has them ready).
    fn store_v6_16(&mut self, lo: u32, n: u32) -> Result<(), Error> {
        self.store_v6_16s(&[(lo, n)], false)
    }

    /// [`Self::store_v6_16`] for several spans of /16s (`(lo, n)` each),
    /// the flag in the filter entries turned off before them or on after
    /// them once (left on, or turned on, when `keep_flag` is set: prefixes
    /// shorter than /32 are about to come).
    fn store_v6_16s(&mut self, spans: &[(u32, u32)], keep_flag: bool) -> Result<(), Error> {
        let any = self.v6_short > 0 || keep_flag;
        if !any {
            self.store_v6_short_bits(false)?;
        }
        for &(lo, n) in spans {
            for net in lo..lo + n {
                let entry = self.v6_16_entry(net);
                if self.v6_16_entries[net as usize] != entry {
                    self.deny_v6_16
                        .set(net, entry, 0)
                        .map_err(|e| Error::kernel("updating the IPv6 /16 states", e))?;
                    self.v6_16_entries[net as usize] = entry;
                }
            }
        }
        if any {
            self.store_v6_short_bits(true)?;
        }
        Ok(())
    }

    /// Sets or clears `V6_FILTER_SHORT` in every IPv6 filter entry.
    fn store_v6_short_bits(&mut self, on: bool) -> Result<(), Error> {
        #[cfg(test)]
        if (self.v6_words[0][0] & V6_FILTER_SHORT != 0) != on {
            tests::JOURNAL.with(|j| j.borrow_mut().push(tests::Event::ShortFlag(on)));
        }
        for word in 0..2 * V6_FILTER_WORDS {
            let mut entry = self.v6_words[word as usize];
            if on {
                entry[0] |= V6_FILTER_SHORT;
            } else {
                entry[0] &= !V6_FILTER_SHORT;
            }
            self.store_v6_word(word, entry)?;
        }
        Ok(())
    }

    /// The state of /16 `net` by the set (see [`Self::store_v6_16`]) and
    /// the 64ths of it its prefixes of 17 to 31 reach.
    fn v6_16_entry(&self, net: u32) -> V6_16Entry {
        let base = u128::from(net) << 112;
        let last = base | !v6_mask(16);
        let chunks = self
            .v6_set
            .range((base, 0)..=(last, 128))
            .filter(|&&(_, len)| v6_level(len) == Some(16))
            .fold(0, |bits, &(a, len)| {
                bits | v6_chunk_bits((a >> 64) as u64, u32::from(len), 16)
            });
        if (0..=16).any(|len| self.v6_set.contains(&(base & v6_mask(len), len))) {
            [V6_16_DENIED, chunks]
        } else if chunks != 0 {
            [V6_16_LEAVES, chunks]
        } else {
            [0, 0]
        }
    }

    /// Filter entry `word` as the counts say, for a change of the prefix
    /// whose bits are `mine` (its block bit in word 0, its 64th bits in the
    /// others): of each word, the bits the mirror has set or `mine` holds
    /// are kept while a prefix of the set sets them (one set without a
    /// prefix is cleared; one missing after a failed write comes back with
    /// the next change of a prefix that sets it); the short bit as
    /// mirrored.
    fn v6_entry(&self, word: u32, mine: &V6FilterEntry) -> V6FilterEntry {
        let mirrored = self.v6_words[word as usize];
        let mut entry = [0; 8];
        entry[0] = mirrored[0] & V6_FILTER_SHORT;
        for i in 0..8 {
            let mut check = (mirrored[i] | mine[i]) & if i == 0 { !V6_FILTER_SHORT } else { !0 };
            while check != 0 {
                let b = check & check.wrapping_neg();
                check &= check - 1;
                let used = if i == 0 {
                    self.v6_bit_users.contains_key(&(word, b))
                } else {
                    self.v6_fine_users.contains_key(&(word, fine_index(i, b)))
                };
                if used {
                    entry[i] |= b;
                }
            }
        }
        entry
    }

    fn store_v6_word(&mut self, word: u32, value: V6FilterEntry) -> Result<(), Error> {
        if self.v6_words[word as usize] != value {
            self.deny_v6_32
                .set(word, value, 0)
                .map_err(|e| Error::kernel("updating the IPv6 deny filter", e))?;
            self.v6_words[word as usize] = value;
        }
        Ok(())
    }

    /// Writes `cfg` to the kernel, then to the mirror (which so never says
    /// what the program does not see).
    fn store_config(&mut self, cfg: Config) -> Result<(), Error> {
        self.config
            .set(0, cfg, 0)
            .map_err(|e| Error::kernel("updating the configuration", e))?;
        self.cfg = cfg;
        Ok(())
    }

    /// How many IPv4 /24 bitmaps and IPv6 leaves did not fit the bucket
    /// their hash picked and live in the spill hash maps instead (each costs
    /// the program a hash lookup more). Buckets are sized for twice the
    /// configured capacity, so this stays near zero unless the list is much
    /// larger than the capacity it was loaded with or oddly clustered.
    pub fn spilled_entries(&self) -> usize {
        self.deny_v4.spilled() + self.deny_v6_leaf.spilled()
    }

    /// How many of the IPv6 address-range slots
    /// ([`Builder::deny_v6_range_slots`]) hold a crowded block's or 64th's
    /// ranges. While all are taken, more crowded blocks fall back to slower
    /// paths; slots given back become free again after the next wait for
    /// the program's runs.
    pub fn v6_range_slots_in_use(&self) -> usize {
        self.deny_v6_leaf.ranges.in_use()
    }

    /// The denied source prefixes, IPv4 then IPv6.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Kernel`].
    pub fn denied_sources(&self) -> Result<Vec<IpPrefix>, Error> {
        let mut out = Vec::new();
        for &(addr, len) in &self.v4_set {
            out.push(IpPrefix::new(Ipv4Addr::from(addr).into(), len)?);
        }
        for &(addr, len) in &self.v6_set {
            out.push(IpPrefix::new(Ipv6Addr::from(addr).into(), len)?);
        }
        Ok(out)
    }

    /// Drops TCP or UDP traffic to destination `port`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Kernel`].
    pub fn deny_port(&mut self, protocol: Protocol, port: u16) -> Result<(), Error> {
        self.update_port(protocol, port, true).map(|_| ())
    }

    /// Lets traffic to `port` through again; returns whether it was denied.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Kernel`].
    pub fn allow_port(&mut self, protocol: Protocol, port: u16) -> Result<bool, Error> {
        self.update_port(protocol, port, false)
    }

    fn update_port(&mut self, protocol: Protocol, port: u16, deny: bool) -> Result<bool, Error> {
        let (word, bit) = port_bit(protocol == Protocol::Tcp, port);
        let old = self
            .deny_ports
            .get(&word, 0)
            .map_err(|e| Error::kernel("reading the port deny set", e))?;
        let new = if deny { old | bit } else { old & !bit };
        if new != old {
            self.deny_ports
                .set(word, new, 0)
                .map_err(|e| Error::kernel("updating the port deny set", e))?;
        }
        Ok(old & bit != 0)
    }

    /// Sets or (with `None`) removes the per-source SYN rate limit. Sources
    /// keep their state across changes; removing the limit clears it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Kernel`].
    pub fn set_syn_limit(&mut self, limit: Option<SynLimit>) -> Result<(), Error> {
        let (syn_interval_ns, syn_tolerance_ns) =
            limit.map(SynLimit::to_config).unwrap_or_default();
        self.store_config(Config {
            syn_interval_ns,
            syn_tolerance_ns,
            ..self.cfg
        })?;
        if limit.is_none() {
            let keys: Vec<SourceKey> = self.syn_state.keys().filter_map(Result::ok).collect();
            for k in keys {
                // A key evicted meanwhile is fine.
                let _ = self.syn_state.remove(&k);
            }
        }
        Ok(())
    }

    /// The SYN rate limit in force, if any.
    pub fn syn_limit(&self) -> Option<SynLimit> {
        // The mirror of what was last written; the program never writes it.
        let cfg = self.cfg;
        if cfg.syn_interval_ns == 0 {
            return None;
        }
        let burst = cfg.syn_tolerance_ns / cfg.syn_interval_ns + 1;
        Some(SynLimit {
            interval: Duration::from_nanos(cfg.syn_interval_ns),
            burst: u32::try_from(burst).unwrap_or(u32::MAX),
        })
    }

    /// The counters, summed over all CPUs.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Kernel`].
    pub fn counters(&self) -> Result<Counters, Error> {
        let per_cpu = self
            .counters
            .get(&0, 0)
            .map_err(|e| Error::kernel("reading the counters", e))?;
        let mut sum = CounterTable::default();
        for table in per_cpu.iter() {
            for (s, c) in sum.cells.iter_mut().zip(table.cells.iter()) {
                s.packets = s.packets.wrapping_add(c.packets);
                s.bytes = s.bytes.wrapping_add(c.bytes);
            }
        }
        Ok(Counters::from_table(&sum))
    }

    /// Runs the classifier once per `repeat` on `frame` in the kernel
    /// (`BPF_PROG_TEST_RUN`), without any interface. Maps and counters are
    /// the live ones: the run counts like a received frame.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidSetting`] for a frame shorter than an Ethernet
    /// header (14 bytes) or `repeat == 0`; [`ErrorKind::NotRoot`];
    /// [`ErrorKind::Kernel`].
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<TestRunOutcome, Error> {
        self.run(PROGRAM_NAME, frame, repeat)
    }

    /// As [`XdpFilter::test_run`], for the empty program that returns
    /// `XDP_PASS` at once: the floor of a run's cost on this kernel.
    ///
    /// # Errors
    ///
    /// As [`XdpFilter::test_run`].
    pub fn test_run_empty(&self, frame: &[u8], repeat: u32) -> Result<TestRunOutcome, Error> {
        self.run(PASS_PROGRAM_NAME, frame, repeat)
    }

    fn run(&self, name: &str, frame: &[u8], repeat: u32) -> Result<TestRunOutcome, Error> {
        if frame.len() < 14 {
            return Err(invalid(format!(
                "a test frame needs at least 14 bytes, got {}",
                frame.len()
            )));
        }
        if repeat == 0 {
            return Err(invalid("repeat must be at least 1".to_owned()));
        }
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = repeat;
        let r = self
            .program(name)?
            .test_run(opts)
            .map_err(|e| Error::kernel("BPF_PROG_TEST_RUN", e))?;
        Ok(TestRunOutcome {
            verdict: Verdict::from_code(r.return_value),
            per_run: r.duration,
        })
    }
}

/// Writes the words of `words` (the first at index `w0`) that differ from
/// the mirror to the kernel's `map`, then to the mirror.
fn store_words(
    map: &mut Array<MapData, u64>,
    mirror: &mut [u64],
    w0: u32,
    words: Vec<u64>,
    what: &'static str,
) -> Result<(), Error> {
    for (i, w) in words.into_iter().enumerate() {
        let idx = w0 as usize + i;
        if mirror[idx] != w {
            map.set(idx as u32, w, 0)
                .map_err(|e| Error::kernel(what, e))?;
            mirror[idx] = w;
        }
    }
    Ok(())
}

/// The slots of a leaf or a block holding `want` (at most
/// `N`), given its slots now: a prefix already there stays in its slot, a
/// gone one leaves its slot unused, a new one takes the first unused slot.
fn place_stably<const N: usize>(mut slots: [V6Prefix; N], want: &[V6Prefix]) -> [V6Prefix; N] {
    for p in slots.iter_mut() {
        if !want.contains(p) {
            *p = V6Prefix::UNUSED;
        }
    }
    for p in want {
        if !slots.contains(p) {
            if let Some(free) = slots.iter_mut().find(|q| **q == V6Prefix::UNUSED) {
                *free = *p;
            }
        }
    }
    slots
}

/// The index of the last used slot plus one.
fn used_slots(slots: &[V6Prefix]) -> usize {
    slots
        .iter()
        .rposition(|p| *p != V6Prefix::UNUSED)
        .map_or(0, |i| i + 1)
}

/// A leaf holding `slots` (`V6_LEAF_PREFIXES` of them).
fn leaf_of(slots: &[V6Prefix], parts: u32) -> V6Leaf {
    let mut leaf = V6Leaf {
        parts,
        used: used_slots(slots) as u32,
        ..V6Leaf::EMPTY
    };
    leaf.prefixes.copy_from_slice(slots);
    leaf
}

/// The prefix `(a, len)` as a leaf of `level` holds it: on the first 64
/// bits below /64, on the last 64 in a /64 leaf.
fn leaf_prefix(a: u128, len: u8, level: u32) -> V6Prefix {
    if level == 64 {
        V6Prefix::of(a as u64, u32::from(len) - 64)
    } else {
        V6Prefix::of((a >> 64) as u64, u32::from(len))
    }
}

/// Slots of one IPv6 block: its parts' slots one after another.
const BLOCK_SLOTS: usize = V6_LEAF_PREFIXES * V6_MAX_PARTS as usize;

/// Where the leaves of one IPv6 block live in the leaf table: the block's
/// own parts, or (`chunk`) those of one chunk of a split block, whose part
/// 0 is the chunk leaf, or (`chunk` and `sub`) the one leaf of a 64th of a
/// chunk split in turn.
#[derive(Clone, Copy)]
struct LeafBlock {
    key: u64,
    level: u32,
    mask: u32,
    chunk: Option<u32>,
    sub: Option<u32>,
}

impl LeafBlock {
    fn new(top64: u64, level: u32, mask: u32) -> LeafBlock {
        LeafBlock {
            key: v6_leaf_key(top64, level),
            level,
            mask,
            chunk: None,
            sub: None,
        }
    }

    /// The leaves of chunk `chunk` of this block, as parts of their own.
    fn chunk(&self, chunk: u32) -> LeafBlock {
        LeafBlock {
            chunk: Some(chunk),
            sub: None,
            ..*self
        }
    }

    /// The leaf of 64th `sub` of this chunk (split in turn), as a part 0
    /// with no continuations.
    fn sub(&self, sub: u32) -> LeafBlock {
        debug_assert!(self.chunk.is_some());
        LeafBlock {
            sub: Some(sub),
            ..*self
        }
    }

    /// Part `part`'s bucket, tag and spill key.
    fn at(&self, part: u32) -> (u32, (u64, u32), V6SpillKey) {
        let code = match (self.chunk, self.sub) {
            (None, _) => v6_leaf_code(self.level, part),
            (Some(c), Some(sub)) => {
                debug_assert_eq!(part, 0, "the leaf of a 64th has no parts");
                v6_sub_leaf_code(self.level, c, sub)
            }
            (Some(c), None) if part == 0 => v6_chunk_leaf_code(self.level, c),
            (Some(c), None) => v6_chunk_part_code(self.level, c, part),
        };
        let spill = V6SpillKey {
            key: self.key,
            code: u64::from(code),
        };
        (
            v6_bucket(self.key, code, self.mask),
            (self.key, code),
            spill,
        )
    }

    fn get(&self, table: &Table<V6Bucket, V6SpillKey>, part: u32) -> Option<V6Leaf> {
        let (b, tag, _) = self.at(part);
        table.get(b, tag)
    }

    /// Writes `leaf` at part `part` (removes it for `None`). A slot never
    /// goes from one prefix to another in one write: a run reading it as
    /// it is written could pair one's address with the other's mask (a
    /// removed /50's mask with a /56's address aligned to it matches the
    /// /50 there, which neither covers). Such slots (a prefix that goes,
    /// replaced by one the same write brings, as a compaction does) are
    /// first written unused, the rest of the leaf as it was.
    fn put(&self, table: &mut V6Leaves, part: u32, leaf: Option<V6Leaf>) -> Result<(), Error> {
        if let (Some(new), Some(old)) = (leaf, self.get(table, part)) {
            let mut step = old;
            for (i, (o, n)) in old.prefixes.iter().zip(&new.prefixes).enumerate() {
                if o != n && *o != V6Prefix::UNUSED && *n != V6Prefix::UNUSED {
                    // Prefixes that stay keep their slot ([`place_stably`]):
                    // a move could not be made safe this way.
                    debug_assert!(!new.prefixes.contains(o), "{o:?} moves within a leaf");
                    if !new.prefixes.contains(o) {
                        step.prefixes[i] = V6Prefix::UNUSED;
                    }
                }
            }
            if step != old {
                self.put_one(table, part, Some(step))?;
            }
        }
        self.put_one(table, part, leaf)
    }

    fn put_one(&self, table: &mut V6Leaves, part: u32, leaf: Option<V6Leaf>) -> Result<(), Error> {
        #[cfg(test)]
        if leaf.is_some() {
            if let Some((at, skip)) = tests::FAIL_PUT.with(|f| f.get()) {
                if at == (self.chunk, self.sub, part) {
                    if skip > 0 {
                        tests::FAIL_PUT.with(|f| f.set(Some((at, skip - 1))));
                    } else {
                        tests::FAIL_PUT.with(|f| f.set(None));
                        return Err(Error::new(ErrorKind::Kernel {
                            operation: "a write the test made fail",
                        }));
                    }
                }
            }
        }
        // A part 0 or chunk leaf that stops naming a range slot gives it
        // back.
        let named = match (self.sub, part) {
            (None, 0) => self
                .get(table, 0)
                .filter(|l| l.parts == V6_RANGES)
                .map(|l| l.chunks),
            _ => None,
        };
        let (b, tag, spill) = self.at(part);
        let chunk_leaf = self.chunk.is_some();
        let had = chunk_leaf && table.get(b, tag).is_some();
        let put = table.put(b, tag, spill, leaf);
        if chunk_leaf {
            // Counted as the mirror says, whether the write went through.
            let has = table.get(b, tag).is_some();
            if has != had {
                table.count_chunk_leaf(self.key, self.level, has);
            }
        }
        put?;
        if let Some(slot) = named {
            if !leaf.is_some_and(|l| l.parts == V6_RANGES && l.chunks == slot) {
                table.ranges.release(slot);
            }
        }
        #[cfg(test)]
        tests::JOURNAL.with(|j| {
            j.borrow_mut().push(tests::Event::Put {
                key: self.key,
                chunk: self.chunk,
                sub: self.sub,
                part,
                leaf,
            })
        });
        Ok(())
    }

    fn remove_continuations(&self, table: &mut V6Leaves) -> Result<(), Error> {
        for part in 1..V6_MAX_PARTS {
            if self.get(table, part).is_some() {
                self.put(table, part, None)?;
            }
        }
        Ok(())
    }

    /// Removes the chunk leaves (and their continuations, and the leaves of
    /// their 64ths) of the chunks whose bit in `keep` is clear: the leaves
    /// of its 64ths first (any there, also ones a failed write left behind
    /// that the chunk leaf does not mark), then the chunk leaf.
    fn remove_chunk_leaves(&self, table: &mut V6Leaves, keep: u64) -> Result<(), Error> {
        for chunk in 0..64 {
            if table.chunk_leaves(self.key, self.level) == 0 {
                break;
            }
            if (keep >> chunk) & 1 == 1 {
                continue;
            }
            let sub = self.chunk(chunk);
            if sub.get(table, 0).is_some() {
                sub.remove_sub_leaves(table, u64::MAX)?;
                sub.put(table, 0, None)?;
            }
            sub.remove_continuations(table)?;
        }
        Ok(())
    }

    /// Removes the leaves of the 64ths `which` of this chunk (split in
    /// turn).
    fn remove_sub_leaves(&self, table: &mut V6Leaves, which: u64) -> Result<(), Error> {
        for s in 0..64 {
            let leaf = self.sub(s);
            if (which >> s) & 1 == 1 && leaf.get(table, 0).is_some() {
                leaf.put(table, 0, None)?;
            }
        }
        Ok(())
    }

    /// Whether any continuation, chunk leaf or leaf of a chunk's 64th of
    /// the block is there.
    fn has_more_than_part_0(&self, table: &V6Leaves) -> bool {
        (1..V6_MAX_PARTS).any(|part| self.get(table, part).is_some())
            || table.chunk_leaves(self.key, self.level) > 0
    }

    /// Writes `want` (at most `BLOCK_SLOTS` prefixes) into part 0 and the
    /// continuations, from the slots they hold now (`first` is part 0):
    /// out of overflow (every part written while the trie still answers;
    /// without room, the trie keeps answering), compacted into fewer parts
    /// (the prefixes of the parts that go copied into the ones that stay,
    /// then, after a grace period, those parts removed: at once, or with
    /// `later`'s one wait for several), out of a chunk's own split (the
    /// parts written while the leaves of its 64ths answer, those leaves
    /// removed after `later`'s wait; a write that fails leaves the chunk
    /// split, its leaves as they were, and is for the caller to mend), out
    /// of a chunk's ranges (the parts written while its slot answers, the
    /// slot's name kept), or in place. `chunks` goes into part 0 (0 for a
    /// chunk's leaves, which leave their stale bits or name in place when
    /// they come out of the split or the ranges: parts do not read them).
    fn store_parts(
        &self,
        table: &mut V6Leaves,
        want: &[V6Prefix],
        first: Option<V6Leaf>,
        chunks: u64,
        later: Option<&mut Later>,
    ) -> Result<(), Error> {
        let overflowed = first.is_some_and(|l| l.parts == V6_OVERFLOW);
        let sub_split = self.chunk.is_some() && first.is_some_and(|l| l.parts == V6_SPLIT);
        let ranged = first.is_some_and(|l| l.parts == V6_RANGES);
        // The block's slots now, part after part.
        let mut slots = [V6Prefix::UNUSED; BLOCK_SLOTS];
        if let Some(l) = first {
            slots[..V6_LEAF_PREFIXES].copy_from_slice(&l.prefixes);
        }
        if !overflowed && !sub_split && !ranged {
            for part in 1..V6_MAX_PARTS {
                if let Some(l) = self.get(table, part) {
                    let i = part as usize * V6_LEAF_PREFIXES;
                    slots[i..i + V6_LEAF_PREFIXES].copy_from_slice(&l.prefixes);
                }
            }
        }
        let slots = place_stably(slots, want);
        let parts = used_slots(&slots).div_ceil(V6_LEAF_PREFIXES).max(1) as u32;
        let fewer = want.len().div_ceil(V6_LEAF_PREFIXES).max(1) as u32;
        if overflowed {
            // Out of overflow: every part is written while the trie still
            // answers. Without room for the continuations, the block stays
            // in overflow (the trie's answer is right) rather than fail.
            match self.write(table, &slots, parts, chunks, Some(V6_OVERFLOW)) {
                Err(e) if matches!(e.kind(), ErrorKind::MapFull { .. }) => {
                    let _ = self.remove_continuations(table);
                    Ok(())
                }
                other => other,
            }
        } else if let (true, Some(old)) = (ranged, first) {
            // Out of ranges: part 0's slots (not read while it says
            // ranges) and the continuations written first, its slot number
            // kept, then the mode; the slot waits out the program's runs
            // before it is used again. Without room for a continuation the
            // error goes to the caller, which writes the chunk again.
            self.write(table, &slots, parts, old.chunks, Some(V6_RANGES))
        } else if let (true, Some(old)) = (sub_split, first) {
            // Out of the chunk's own split: part 0's slots (not read while
            // it says split) and the continuations written first, then the
            // mode; the leaves of its 64ths go once no program run can
            // still follow the old chunk leaf to them. Its bits stay (a
            // chunk leaf in parts reads none): a run that read the split
            // before the last write finds them still there after it.
            self.write(table, &slots, parts, old.chunks, Some(V6_SPLIT))?;
            match later {
                Some(later) => later.subs.push((*self, u64::MAX)),
                None => {
                    wait_for_readers(&table.waiter);
                    self.remove_sub_leaves(table, u64::MAX)?;
                }
            }
            Ok(())
        } else if parts > fewer {
            // Compaction: the prefixes of the parts that go are copied into
            // free slots of the parts that stay (they match twice for a
            // while), then those parts go.
            let keep = fewer as usize * V6_LEAF_PREFIXES;
            let mut both = slots;
            let (low, high) = both.split_at_mut(keep);
            for p in high.iter().filter(|p| **p != V6Prefix::UNUSED) {
                if !low.contains(p) {
                    if let Some(free) = low.iter_mut().find(|q| **q == V6Prefix::UNUSED) {
                        *free = *p;
                    }
                }
            }
            self.write(table, &both, parts, chunks, None)?;
            both[keep..].fill(V6Prefix::UNUSED);
            match later {
                Some(later) => {
                    later.compact.push((*self, both, fewer, chunks));
                    Ok(())
                }
                None => {
                    wait_for_readers(&table.waiter);
                    self.write(table, &both, fewer, chunks, None)
                }
            }
        } else {
            self.write(table, &slots, parts, chunks, None)
        }
    }

    /// Writes the block split by chunk: every chunk a prefix reaches
    /// (`reach[i]` are the chunk bits of `want[i]`) gets a leaf holding the
    /// prefixes that reach it (its slots kept stable as a part's are). A
    /// chunk reached by more than a leaf holds, up to `BLOCK_SLOTS`, is held
    /// as address ranges ([`Self::write_ranges`]) or, without a free slot,
    /// keeps continuations as a block keeps its parts
    /// ([`Self::store_parts`]) while the block takes no more leaves than it
    /// has prefixes; past those the chunk is split in turn by its own 64ths
    /// ([`Self::write_sub_split`]) when that fits, or else held as ranges,
    /// and otherwise the chunk leaf says overflow (the trie answers for
    /// it). The chunk leaves are written
    /// first, then part 0 says split (its slots are left as they were:
    /// nothing reads them), then the continuations go once no program run
    /// can still follow the old part 0 to them, and the leaves of chunks no
    /// prefix reaches any more go.
    ///
    /// Without room for the chunk leaves the block goes to overflow (the
    /// trie holds every prefix) instead of failing.
    ///
    /// What waits for the program's runs goes into `later`, which also
    /// serves every chunk of the block: a single wait.
    fn write_split(
        &self,
        table: &mut V6Leaves,
        want: &[V6Prefix],
        reach: &[u64],
        chunks: u64,
        first: Option<V6Leaf>,
        later: &mut Later,
    ) -> Result<(), Error> {
        let continued = (1..V6_MAX_PARTS).any(|part| self.get(table, part).is_some());
        // Leaves the split may take besides part 0 and one per chunk: the
        // block's prefixes beyond its chunks, so that it never takes more
        // than one leaf a prefix (continuations of crowded chunks, and the
        // leaves of chunks split in turn, come out of that; ranges take a
        // slot, not leaves).
        let mut spare = want.len().saturating_sub(chunks.count_ones() as usize);
        let written: Result<(), Error> = (|| {
            for chunk in 0..64u32 {
                if (chunks >> chunk) & 1 == 0 {
                    continue;
                }
                let sub = self.chunk(chunk);
                let old = sub.get(table, 0);
                let here: Vec<V6Prefix> = want
                    .iter()
                    .zip(reach)
                    .filter(|(_, r)| (*r >> chunk) & 1 == 1)
                    .map(|(p, _)| *p)
                    .collect();
                // More than a leaf holds, up to what parts hold: address
                // ranges rather than continuations (a source reads the
                // chunk leaf and one slot, not up to four leaves); past
                // that, its own split first, then ranges.
                let crowded = here.len() > V6_LEAF_PREFIXES;
                if crowded
                    && here.len() <= BLOCK_SLOTS
                    && sub.write_chunk_ranges(table, &here, old, later)?
                {
                    continue;
                }
                let extra = here.len().div_ceil(V6_LEAF_PREFIXES).max(1) - 1;
                let mut fits = here.len() <= BLOCK_SLOTS && extra <= spare;
                if fits {
                    match sub.store_parts(table, &here, old, 0, Some(later)) {
                        Ok(()) => spare -= extra,
                        // No room for a continuation: the chunk leaf, written
                        // last, is as it was; this chunk is split in turn
                        // or goes to the trie.
                        Err(e) if matches!(e.kind(), ErrorKind::MapFull { .. }) => fits = false,
                        Err(e) => return Err(e),
                    }
                }
                if !fits {
                    // The chunk split in turn, by its own 64ths.
                    let old = sub.get(table, 0);
                    let mut sub_leaves = old.is_some_and(|l| l.parts == V6_SPLIT);
                    match sub.write_sub_split(table, &here, old, &mut spare, later) {
                        Ok(true) => continue,
                        Ok(false) => {}
                        // No room for the leaf of one of its 64ths: the
                        // trie (those written go with the others).
                        Err(e) if matches!(e.kind(), ErrorKind::MapFull { .. }) => {
                            sub_leaves = true;
                        }
                        Err(e) => return Err(e),
                    }
                    let old = sub.get(table, 0);
                    if sub_leaves {
                        later.subs.push((sub, u64::MAX));
                    }
                    if here.len() > BLOCK_SLOTS
                        && sub.write_chunk_ranges(table, &here, old, later)?
                    {
                        continue;
                    }
                    // The trie answers for the chunk (its slots kept as
                    // they were); then its continuations, and the leaves of
                    // its 64ths, go once no run can still follow the old
                    // chunk leaf to them (not if that write failed: the
                    // chunk leaf may still announce them).
                    let leaf = V6Leaf {
                        parts: V6_OVERFLOW,
                        ..old.unwrap_or(V6Leaf::EMPTY)
                    };
                    if old != Some(leaf) {
                        sub.put(table, 0, Some(leaf))?;
                    }
                    if (1..V6_MAX_PARTS).any(|part| sub.get(table, part).is_some()) {
                        later.continuations.push(sub);
                    }
                }
            }
            // 64th bits as stored: never a slot's name, whatever the mode
            // they are written under.
            let bits = v6_bits_stored(chunks);
            if let Some(l) = first {
                if l.parts != V6_SPLIT && l.chunks != bits {
                    // The bits first, under the mode part 0 has now (which
                    // they keep right), then the mode alone: a run never
                    // pairs the split with bits from before.
                    self.put(table, 0, Some(V6Leaf { chunks: bits, ..l }))?;
                }
            }
            let leaf = V6Leaf {
                parts: V6_SPLIT,
                chunks: bits,
                ..first.unwrap_or(V6Leaf::EMPTY)
            };
            if first != Some(leaf) {
                self.put(table, 0, Some(leaf))?;
            }
            Ok(())
        })();
        match written {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::MapFull { .. }) => {
                // What was held back is made first: the block's chunk
                // leaves, continuations included, may all go next.
                later.finish(table)?;
                return self.send_to_trie(table, self.get(table, 0).or(first), later);
            }
            // The caller still finishes `later` before anything can reuse
            // what was held back (an overflowed chunk's continuations,
            // rewritten in place when it comes out of overflow).
            Err(e) => return Err(e),
        }
        if continued {
            later.continuations.push(*self);
        }
        later.unreached.push((*self, chunks));
        Ok(())
    }

    /// Writes this chunk of a split block, reached by `here` (more prefixes
    /// than its parts hold, or whose continuations found no room in the
    /// table), split in turn by its own 64ths (a /28 of a /22, a /44 of a
    /// /38, a /60 of a /54, a /76 of a /70: [`v6_chunk`] at `level + 6`):
    /// a leaf for each 64th a prefix reaches, holding those that reach it
    /// (its slots kept stable as a part's are), written first, then the
    /// chunk leaf's bits for them (under its mode now, which does not read
    /// them as bits; a run that read the ranges before takes them for no
    /// name, as they are stored: [`v6_bits_stored`]), then its mode,
    /// [`V6_SPLIT`]. The leaves of 64ths no prefix
    /// reaches any more go after the chunk leaf stops marking them (their
    /// prefixes are gone); continuations it had go after `later`'s wait.
    ///
    /// `Ok(false)`, with nothing written, when it does not fit: a prefix
    /// covers the whole chunk, more than a leaf holds reach one of its
    /// 64ths, or it would take more leaves than `spare` (the block's
    /// budget; what it takes comes out of it) plus the chunk leaf's own
    /// (its slots go unused under the split).
    fn write_sub_split(
        &self,
        table: &mut V6Leaves,
        here: &[V6Prefix],
        old: Option<V6Leaf>,
        spare: &mut usize,
        later: &mut Later,
    ) -> Result<bool, Error> {
        let deeper = self.level + 6;
        let mut reach = Vec::with_capacity(here.len());
        let mut subs = 0u64;
        for p in here {
            let ones = p.mask.count_ones();
            let len = if self.level == 64 { 64 + ones } else { ones };
            if len <= deeper {
                return Ok(false);
            }
            let bits = v6_chunk_bits(p.addr, len, deeper);
            reach.push(bits);
            subs |= bits;
        }
        let n = subs.count_ones() as usize;
        // The chunk leaf's slots go unused under the split: its leaf counts
        // as one of the n.
        if n > *spare + 1 {
            return Ok(false);
        }
        let mut leaves = Vec::with_capacity(n);
        for s in (0..64u32).filter(|s| (subs >> s) & 1 == 1) {
            let mine: Vec<V6Prefix> = here
                .iter()
                .zip(&reach)
                .filter(|(_, r)| (*r >> s) & 1 == 1)
                .map(|(p, _)| *p)
                .collect();
            if mine.len() > V6_LEAF_PREFIXES {
                return Ok(false);
            }
            leaves.push((s, mine));
        }
        let was = old.unwrap_or(V6Leaf::EMPTY);
        let written = self.write_sub_leaves(table, &leaves, old, subs);
        if let Err(e) = written {
            // The chunk leaf reads as it did (at most its bits changed,
            // under a mode that does not read them as bits), or, out of ranges, it
            // may say overflow (the trie answers): the leaves written for
            // 64ths it does not mark go (nothing reads them).
            let marked = if was.parts == V6_SPLIT { was.chunks } else { 0 };
            let _ = self.remove_sub_leaves(table, subs & !marked);
            return Err(e);
        }
        *spare = *spare + 1 - n;
        if (1..V6_MAX_PARTS).any(|part| self.get(table, part).is_some()) {
            later.continuations.push(*self);
        }
        if was.parts == V6_SPLIT {
            self.remove_sub_leaves(table, !subs)?;
        }
        Ok(true)
    }

    /// [`Self::write_sub_split`]'s writes: the leaves of the 64ths
    /// (`leaves`: each 64th and its prefixes), then the chunk leaf's bits
    /// `subs` under its mode now (`old`), then the mode.
    fn write_sub_leaves(
        &self,
        table: &mut V6Leaves,
        leaves: &[(u32, Vec<V6Prefix>)],
        old: Option<V6Leaf>,
        subs: u64,
    ) -> Result<(), Error> {
        for (s, mine) in leaves {
            let leaf_block = self.sub(*s);
            let now = leaf_block.get(table, 0);
            let mut slots = [V6Prefix::UNUSED; V6_LEAF_PREFIXES];
            if let Some(l) = now {
                slots = l.prefixes;
            }
            let leaf = leaf_of(&place_stably(slots, mine), 1);
            if now != Some(leaf) {
                leaf_block.put(table, 0, Some(leaf))?;
            }
        }
        // Its slot's name is no bits.
        let old = self.out_of_ranges(table, old)?;
        let was = old.unwrap_or(V6Leaf::EMPTY);
        // As stored: never a slot's name, whatever the mode they are
        // written under.
        let subs = v6_bits_stored(subs);
        if old.is_some() && was.parts != V6_SPLIT && was.chunks != subs {
            self.put(
                table,
                0,
                Some(V6Leaf {
                    chunks: subs,
                    ..was
                }),
            )?;
        }
        let leaf = V6Leaf {
            parts: V6_SPLIT,
            chunks: subs,
            ..was
        };
        if old != Some(leaf) {
            self.put(table, 0, Some(leaf))?;
        }
        Ok(())
    }

    /// [`Self::write_ranges`] for a chunk of a split block, with what the
    /// ranges do not read held back in `later` (its continuations when
    /// written, the leaves of its 64ths when it stops being split by them,
    /// written or not).
    fn write_chunk_ranges(
        &self,
        table: &mut V6Leaves,
        here: &[V6Prefix],
        old: Option<V6Leaf>,
        later: &mut Later,
    ) -> Result<bool, Error> {
        let ranged = self.write_ranges(table, here, old, later);
        let now = self.get(table, 0);
        if old.is_some_and(|l| l.parts == V6_SPLIT) && now.is_none_or(|l| l.parts != V6_SPLIT) {
            later.subs.push((*self, u64::MAX));
        }
        if matches!(ranged, Ok(true))
            && (1..V6_MAX_PARTS).any(|part| self.get(table, part).is_some())
        {
            later.continuations.push(*self);
        }
        ranged
    }

    /// Writes this chunk or block (`old`: its chunk leaf or part 0 now),
    /// reached by `here`, as address ranges ([`V6_RANGES`]): a free slot of
    /// the ranges map written with them, then the slot's name in the leaf
    /// under its mode now when that mode does not read the field (a chunk
    /// leaf's parts, overflow), else through overflow first (a part 0's
    /// parts or split, a chunk's own split: their 64th bits; ranges: the
    /// old slot's name), then the mode. A run that read the old mode and
    /// reads the name is answered by the new slot (the program takes a name
    /// for one under any mode that reads bits). The old slot waits out the
    /// program's runs before it is used again.
    ///
    /// `Ok(false)`, with nothing written, when the prefixes make more than
    /// `V6_RANGE_SLOTS` ranges or no slot is free.
    ///
    /// When no slot is free while `later` holds back the removal of chunk
    /// leaves (which give their slots back), `later` is finished first
    /// (what it holds is for leaves written already) and a slot taken
    /// again.
    fn write_ranges(
        &self,
        table: &mut V6Leaves,
        here: &[V6Prefix],
        old: Option<V6Leaf>,
        later: &mut Later,
    ) -> Result<bool, Error> {
        #[cfg(test)]
        if crate::ranges::tests::NO_RANGES.with(|n| n.get()) {
            return Ok(false);
        }
        let Some(ranges) = V6Ranges::new(&merged_ranges(here)) else {
            return Ok(false);
        };
        if let Some(l) = old.filter(|l| l.parts == V6_RANGES) {
            if table.ranges.get(l.chunks) == Some(&ranges) {
                return Ok(true);
            }
        }
        let mut slot = table.ranges.take(&ranges, &table.waiter)?;
        if slot.is_none() && !(later.chunk_leaves.is_empty() && later.unreached.is_empty()) {
            later.finish(table)?;
            slot = table.ranges.take(&ranges, &table.waiter)?;
        }
        let Some(slot) = slot else {
            return Ok(false);
        };
        let named: Result<(), Error> = (|| {
            let mut now = old.unwrap_or(V6Leaf::EMPTY);
            // Its bits (a part 0's under its parts or split, a chunk
            // leaf's under its split), or the name of its slot now, are
            // read under its mode: through overflow (the trie answers
            // meanwhile).
            let read = match now.parts {
                V6_OVERFLOW => false,
                V6_SPLIT | V6_RANGES => true,
                _ => self.chunk.is_none(),
            };
            if old.is_some() && read {
                now.parts = V6_OVERFLOW;
                self.put(table, 0, Some(now))?;
            }
            if old.is_some() && now.chunks != slot {
                now.chunks = slot;
                self.put(table, 0, Some(now))?;
            }
            self.put(
                table,
                0,
                Some(V6Leaf {
                    parts: V6_RANGES,
                    chunks: slot,
                    ..now
                }),
            )
        })();
        if named.is_err() {
            let now = self.get(table, 0);
            if !now.is_some_and(|l| l.parts == V6_RANGES && l.chunks == slot) {
                table.ranges.release(slot);
            }
        }
        named.map(|()| true)
    }

    /// When `leaf` (this part 0 or chunk leaf now) says ranges: through
    /// overflow (the trie answers meanwhile), its slot's name kept and the
    /// slot given back. The leaf now.
    fn out_of_ranges(
        &self,
        table: &mut V6Leaves,
        leaf: Option<V6Leaf>,
    ) -> Result<Option<V6Leaf>, Error> {
        match leaf {
            Some(l) if l.parts == V6_RANGES => {
                let through = V6Leaf {
                    parts: V6_OVERFLOW,
                    ..l
                };
                self.put(table, 0, Some(through))?;
                Ok(Some(through))
            }
            other => Ok(other),
        }
    }

    /// Writes this block (`first`: its part 0 now), reached by `want`, as
    /// address ranges ([`Self::write_ranges`]: part 0 goes through
    /// overflow unless it says so already, names a fresh slot under it,
    /// then says ranges), then, once no program run can still follow the
    /// old part 0 to them, removes its continuations and chunk leaves
    /// (held back in `later` when the block is in the ranges; at once,
    /// after a wait of its own, when the caller may write the block
    /// further). `Ok(false)`, with nothing written, when the prefixes make
    /// more ranges than a slot holds or no slot is free.
    fn write_block_ranges(
        &self,
        table: &mut V6Leaves,
        want: &[V6Prefix],
        first: Option<V6Leaf>,
        later: &mut Later,
    ) -> Result<bool, Error> {
        let written = self.write_ranges(table, want, first, later);
        // Once part 0 announces them no more (it says ranges, or overflow
        // when a later write failed), they go, even when the call fails:
        // they may be rewritten in place later, out of overflow, and a
        // run that read the old part 0 could still be reading them.
        let gone = self
            .get(table, 0)
            .is_some_and(|l| l.parts == V6_RANGES || l.parts == V6_OVERFLOW);
        if gone && self.has_more_than_part_0(table) {
            if matches!(written, Ok(true)) {
                // Done with the block: after the caller's one wait.
                later.continuations.push(*self);
                later.chunk_leaves.push(*self);
            } else {
                // The caller may go on to write the block's parts (part 0
                // said overflow already and no slot was free) or stop on
                // the error: they go now, not after writes to come.
                wait_for_readers(&table.waiter);
                let removed = self
                    .remove_continuations(table)
                    .and_then(|()| self.remove_chunk_leaves(table, 0));
                // The first error is the one returned.
                if written.is_ok() {
                    removed?;
                }
            }
        }
        written
    }

    /// Sends the program to the trie for the whole block (part 0 says
    /// overflow, its slots and bits left as they were), then, once no
    /// program run can still follow the old part 0 to them, removes the
    /// continuation and chunk leaves (held back in `later`).
    fn send_to_trie(
        &self,
        table: &mut V6Leaves,
        first: Option<V6Leaf>,
        later: &mut Later,
    ) -> Result<(), Error> {
        let leaf = V6Leaf {
            parts: V6_OVERFLOW,
            ..first.unwrap_or(V6Leaf::EMPTY)
        };
        self.put(table, 0, Some(leaf))?;
        if self.has_more_than_part_0(table) {
            later.continuations.push(*self);
            later.chunk_leaves.push(*self);
        }
        Ok(())
    }

    /// Writes the block as `slots` in `parts` parts: the continuations first
    /// (those past `parts` removed), part 0 last, so part 0 never announces
    /// a part that is not there. `from`: part 0 says overflow, split or
    /// ranges now (this value); its slots are written under it before the
    /// write that changes it.
    fn write(
        &self,
        table: &mut V6Leaves,
        slots: &[V6Prefix; BLOCK_SLOTS],
        parts: u32,
        chunks: u64,
        from: Option<u32>,
    ) -> Result<(), Error> {
        for part in 1..V6_MAX_PARTS {
            let old = self.get(table, part);
            if part < parts {
                let i = part as usize * V6_LEAF_PREFIXES;
                let leaf = leaf_of(&slots[i..i + V6_LEAF_PREFIXES], 0);
                if old != Some(leaf) {
                    self.put(table, part, Some(leaf))?;
                }
            } else if old.is_some() {
                self.put(table, part, None)?;
            }
        }
        let mut leaf = leaf_of(&slots[..V6_LEAF_PREFIXES], parts);
        // A part 0's are 64th bits, stored as such (a part 0 leaves the
        // ranges through overflow, never here); a chunk leaf's (not read in
        // parts) are kept as they are, a slot's name among them.
        debug_assert!(self.chunk.is_some() || from != Some(V6_RANGES));
        leaf.chunks = if self.chunk.is_none() {
            v6_bits_stored(chunks)
        } else {
            chunks
        };
        if let Some(now) = from {
            let slots_only = V6Leaf { parts: now, ..leaf };
            self.put(table, 0, Some(slots_only))?;
        }
        if self.get(table, 0) != Some(leaf) {
            self.put(table, 0, Some(leaf))?;
        }
        Ok(())
    }
}

/// Writes of block changes held back until no program run can still
/// follow what the leaves said before them, so that one wait
/// ([`wait_for_readers`]) serves every chunk of a split block and, in a
/// list call, every block the call rewrites. Each block is written at most
/// once before [`Later::finish`]: what is held back for it stays right
/// until then.
#[derive(Default)]
struct Later {
    /// Compactions' second writes: the slots that stay, in the parts they
    /// fit.
    compact: Vec<(LeafBlock, [V6Prefix; BLOCK_SLOTS], u32, u64)>,
    /// Blocks or chunks whose continuation parts go.
    continuations: Vec<LeafBlock>,
    /// Chunks that stopped being split in turn, and the 64ths of them whose
    /// leaves go (all but those the chunk leaf marks when the wait is
    /// over).
    subs: Vec<(LeafBlock, u64)>,
    /// Blocks that stopped being split (into parts, ranges or the trie):
    /// all their chunk leaves go.
    chunk_leaves: Vec<LeafBlock>,
    /// Split blocks and the chunks they keep: the leaves of the others (no
    /// prefix reaches them) go. These need no wait of their own (a run
    /// that finds none there is right), but go after the others' wait
    /// when there is one.
    unreached: Vec<(LeafBlock, u64)>,
}

impl Later {
    /// Waits once if anything held back needs it, then makes the writes;
    /// empty afterwards, whatever the result.
    fn finish(&mut self, table: &mut V6Leaves) -> Result<(), Error> {
        let Later {
            compact,
            continuations,
            subs,
            chunk_leaves,
            unreached,
        } = std::mem::take(self);
        if !(compact.is_empty()
            && continuations.is_empty()
            && subs.is_empty()
            && chunk_leaves.is_empty())
        {
            wait_for_readers(&table.waiter);
        }
        // Each kind of write is made even when one before failed; the
        // first error is the one returned.
        let mut result = Ok(());
        for (block, slots, parts, chunks) in compact {
            result = result.and(block.write(table, &slots, parts, chunks, None));
        }
        for block in continuations {
            result = result.and(block.remove_continuations(table));
        }
        for (chunk, which) in subs {
            let keep = match chunk.get(table, 0) {
                Some(l) if l.parts == V6_SPLIT => l.chunks,
                _ => 0,
            };
            result = result.and(chunk.remove_sub_leaves(table, which & !keep));
        }
        for block in chunk_leaves {
            // Only if the block did not go back to the split meanwhile
            // (each block is written once per wait: it cannot).
            if block.get(table, 0).is_none_or(|l| l.parts != V6_SPLIT) {
                result = result.and(block.remove_chunk_leaves(table, 0));
            }
        }
        for (block, keep) in unreached {
            result = result.and(block.remove_chunk_leaves(table, keep));
        }
        result
    }
}

/// Returns once every run of the program that had started before the call
/// has ended ([`Waiter::wait`]), and numbers the wait ([`waits_begun`],
/// [`waits_ended`]).
pub(crate) fn wait_for_readers(waiter: &Waiter) {
    #[cfg(test)]
    tests::JOURNAL.with(|j| j.borrow_mut().push(tests::Event::Wait));
    let number = WAITS_BEGUN.fetch_add(1, Ordering::SeqCst) + 1;
    waiter.wait();
    WAITS_ENDED.fetch_max(number, Ordering::SeqCst);
}

/// How many [`wait_for_readers`] calls have begun, in this process (a wait
/// is for every program run on the machine, whichever filter began it).
static WAITS_BEGUN: AtomicU64 = AtomicU64::new(0);
/// The highest number (1 for the first begun) of a wait that has ended.
static WAITS_ENDED: AtomicU64 = AtomicU64::new(0);

/// How many waits for readers have begun: a wait numbered higher begins
/// after this call.
pub(crate) fn waits_begun() -> u64 {
    // A read-modify-write: the `fetch_add` of the next wait to begin, in any
    // thread, reads from it, so what this thread did before (the write
    // that released a slot) happens before that wait begins.
    WAITS_BEGUN.fetch_add(0, Ordering::SeqCst)
}

/// The highest number of a wait for readers that has ended: every program
/// run that had started before that wait began has ended.
pub(crate) fn waits_ended() -> u64 {
    WAITS_ENDED.load(Ordering::SeqCst)
}

/// The /24s a v4 prefix covers (first, count) and the state it gives them.
fn v4_span((addr, len): (u32, u8)) -> (u32, u32, u64) {
    match len {
        0..=24 => (addr >> 8, 1u32 << (24 - len), V4_24_DENIED),
        _ => (addr >> 8, 1, V4_24_HOSTS),
    }
}

/// The state of a /24 holding what both states describe: a covering prefix
/// wins over the address bitmap.
fn merge(a: u64, b: u64) -> u64 {
    let rank = |s: u64| match s {
        V4_24_DENIED => 2,
        V4_24_HOSTS => 1,
        _ => 0,
    };
    if rank(a) >= rank(b) {
        a
    } else {
        b
    }
}

/// The words and bits of its filter entry ([`v6_fine_slot_of`]) that the
/// prefix `(addr, len)` at `level` (32, 48 or 64) sets: one per 64th of its
/// block it reaches (two 64ths may share a bit).
fn v6_fine_bits(addr: u128, len: u8, level: u32) -> impl Iterator<Item = (usize, u64)> {
    let top = (addr >> 64) as u64;
    let key = v6_leaf_key(top, level);
    let half = if level == 64 { addr as u64 } else { top };
    let reach = v6_chunk_bits(half, u32::from(len), level);
    (0..64)
        .filter(move |c| reach >> c & 1 != 0)
        .map(move |c| v6_fine_slot_of(key, c, level))
}

/// The key of bit `bit` of word `i` of a filter entry in the 64th-bit
/// counts: `i * 64` plus the bit's number.
fn fine_index(i: usize, bit: u64) -> u16 {
    (i * 64) as u16 + bit.trailing_zeros() as u16
}

fn v6_mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

fn v4_mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn get_bits(words: &[u64], w0: u32, net: u32) -> u64 {
    let (w, shift) = v4_24_slot(net);
    (words[(w - w0) as usize] >> shift) & 3
}

fn set_bits(words: &mut [u64], w0: u32, net: u32, bits: u64) {
    let (w, shift) = v4_24_slot(net);
    let word = &mut words[(w - w0) as usize];
    *word = (*word & !(3 << shift)) | (bits << shift);
}

impl Drop for XdpFilter {
    fn drop(&mut self) {
        if self.attached.is_some() {
            // Errors cannot be reported from drop; the kernel releases the
            // link with its last file descriptor anyway.
            let _ = self.detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf of a block: its chunk, the 64th of that chunk, its part.
    pub(super) type LeafAt = (Option<u32>, Option<u32>, u32);

    thread_local! {
        /// A write of a leaf (not a removal) at this place fails, once:
        /// the first after as many writes there as the count.
        pub(super) static FAIL_PUT: std::cell::Cell<Option<(LeafAt, u32)>> =
            const { std::cell::Cell::new(None) };
        /// This thread's IPv6 leaf writes and waits, in order.
        pub(super) static JOURNAL: std::cell::RefCell<Vec<Event>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// An entry of [`JOURNAL`].
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub(super) enum Event {
        /// A wait for the program's runs.
        Wait,
        /// The short-prefix flag turned on or off in the filter entries
        /// (32,768 writes).
        ShortFlag(bool),
        /// A leaf of block `key` (chunk leaf or its continuation when
        /// `chunk` is set, the leaf of a 64th of the chunk when `sub` is
        /// too) written, or removed (`None`).
        Put {
            key: u64,
            chunk: Option<u32>,
            sub: Option<u32>,
            part: u32,
            leaf: Option<V6Leaf>,
        },
    }

    /// Writes `leaf` as the leaf of `block`'s part 0 (or chunk leaf) as
    /// it is, past the loader's rules: what a program run that read the
    /// leaf across a change of it may see.
    #[cfg(feature = "ebpf")]
    fn raw_put(f: &mut XdpFilter, block: &LeafBlock, leaf: V6Leaf) {
        let (b, tag, spill) = block.at(0);
        f.deny_v6_leaf
            .leaves
            .put(b, tag, spill, Some(leaf))
            .unwrap();
    }

    /// Allows every denied source: the leaf table is empty then.
    #[cfg(feature = "ebpf")]
    fn allow_all(f: &mut XdpFilter) {
        for p in f.denied_sources().unwrap() {
            assert!(f.allow_source(p).unwrap());
        }
        assert_eq!(f.deny_v6_leaf.len(), 0);
    }

    /// A block at each leaf level (16, 32, 48, 64), by its first address.
    #[cfg(feature = "ebpf")]
    const LEVEL_BLOCKS: [(u32, u128); 4] = [
        (16, 0x2402u128 << 112),
        (32, 0x2001_0db9u128 << 96),
        (48, 0x2001_0db8_0005u128 << 80),
        (64, 0x2001_0db8_0006_0007u128 << 64),
    ];

    /// Makes this thread's filter send the chunks that fit neither parts
    /// nor their own split to the trie, as when no range slot is free, for
    /// the tests of the trie's paths.
    #[cfg(feature = "ebpf")]
    fn ranges_off() {
        crate::ranges::tests::NO_RANGES.with(|n| n.set(true));
    }

    /// Where the journal's only wait is (it fails unless there is exactly one).
    #[cfg(feature = "ebpf")]
    fn the_one_wait(journal: &[Event]) -> usize {
        let waits: Vec<usize> = (0..journal.len())
            .filter(|&i| journal[i] == Event::Wait)
            .collect();
        assert_eq!(waits.len(), 1, "one wait: {journal:?}");
        waits[0]
    }

    /// The journal's writes (not removals) of the leaf of chunk `c`: where,
    /// and what.
    #[cfg(feature = "ebpf")]
    fn chunk_leaf_writes(journal: &[Event], c: u32) -> Vec<(usize, V6Leaf)> {
        journal
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match *e {
                Event::Put {
                    chunk: Some(x),
                    sub: None,
                    part: 0,
                    leaf: Some(l),
                    ..
                } if x == c => Some((i, l)),
                _ => None,
            })
            .collect()
    }

    /// Runs `f` and returns the journal of what it wrote and waited for.
    #[cfg(feature = "ebpf")]
    fn journal_of(f: impl FnOnce()) -> Vec<Event> {
        JOURNAL.with(|j| j.borrow_mut().clear());
        f();
        JOURNAL.with(|j| std::mem::take(&mut *j.borrow_mut()))
    }

    /// Which way the block of 2001:db8::/48 holds its prefixes: part 0's
    /// `parts`, and how many continuation and chunk leaves it has.
    #[cfg(feature = "ebpf")]
    fn block_shape(f: &XdpFilter) -> (Option<u32>, usize, usize) {
        block_shape_of(f, 0)
    }

    /// [`block_shape`] of the /48 number `n` of 2001:db8::/32.
    #[cfg(feature = "ebpf")]
    fn block_shape_of(f: &XdpFilter, n: u64) -> (Option<u32>, usize, usize) {
        let block = LeafBlock::new(0x2001_0db8_0000_0000 | n << 16, 48, f.cfg.v6_bucket_mask);
        let has = |part| block.get(&f.deny_v6_leaf, part).is_some();
        (
            block.get(&f.deny_v6_leaf, 0).map(|l| l.parts),
            (1..V6_MAX_PARTS).filter(|&p| has(p)).count(),
            (0..64)
                .filter(|&c| block.chunk(c).get(&f.deny_v6_leaf, 0).is_some())
                .count(),
        )
    }

    /// How many leaves the /48 number `n` of 2001:db8::/32 takes: part 0,
    /// continuations, chunk leaves and their continuations.
    #[cfg(feature = "ebpf")]
    fn leaves_of(f: &XdpFilter, n: u64) -> usize {
        let block = LeafBlock::new(0x2001_0db8_0000_0000 | n << 16, 48, f.cfg.v6_bucket_mask);
        let has = |b: &LeafBlock, part| b.get(&f.deny_v6_leaf, part).is_some();
        (0..V6_MAX_PARTS).filter(|&p| has(&block, p)).count()
            + (0..64)
                .map(|c| {
                    let sub = block.chunk(c);
                    (0..V6_MAX_PARTS).filter(|&p| has(&sub, p)).count()
                })
                .sum::<usize>()
    }

    /// The chunk leaf of chunk `c` of the /48 number `n` of 2001:db8::/32:
    /// its `parts`, and how many continuations it has.
    #[cfg(feature = "ebpf")]
    fn chunk_shape(f: &XdpFilter, n: u64, c: u32) -> (Option<u32>, usize) {
        let block = LeafBlock::new(0x2001_0db8_0000_0000 | n << 16, 48, f.cfg.v6_bucket_mask);
        let sub = block.chunk(c);
        (
            sub.get(&f.deny_v6_leaf, 0).map(|l| l.parts),
            (1..V6_MAX_PARTS)
                .filter(|&p| sub.get(&f.deny_v6_leaf, p).is_some())
                .count(),
        )
    }

    /// Prefix number `k` of length `len` in the /48 number `block` of
    /// 2001:db8::/32, counted in units of /56s: a 64th of a /48 (a /54)
    /// holds four /56s.
    #[cfg(feature = "ebpf")]
    fn p48(block: u128, k: u128, len: u8) -> IpPrefix {
        IpPrefix::new(std::net::Ipv6Addr::from(a48(block, k)).into(), len).unwrap()
    }

    /// The first address of [`p48`]'s prefix.
    #[cfg(feature = "ebpf")]
    fn a48(block: u128, k: u128) -> u128 {
        (0x2001_0db8u128 << 96) | (block << 80) | (k << 72)
    }

    /// Denies a /56 in /48s of 2001:db8::/32 (numbers 1 and up) whose first
    /// leaf lands in one of `buckets`, until the table says it is full (the
    /// buckets, then the spill map); returns those /48s' numbers.
    #[cfg(feature = "ebpf")]
    fn fill_buckets(f: &mut XdpFilter, buckets: &[u32]) -> Vec<u128> {
        let mask = f.cfg.v6_bucket_mask;
        let key = |block: u128| v6_leaf_key((a48(block, 0) >> 64) as u64, 48);
        let mut fillers = Vec::new();
        for block in (1..1u128 << 16)
            .filter(|&b| buckets.contains(&v6_bucket(key(b), v6_leaf_code(48, 0), mask)))
        {
            match f.deny_source(p48(block, 0, 56)) {
                Ok(()) => fillers.push(block),
                Err(e) => {
                    assert!(matches!(e.kind(), ErrorKind::MapFull { .. }), "{e}");
                    return fillers;
                }
            }
            assert!(fillers.len() < 200, "the spill map never filled");
        }
        panic!("ran out of /48s before the table filled")
    }

    /// The counts kept beside the IPv6 set agree with it, and the filter
    /// entries hold exactly the bits some prefix sets (besides the short
    /// bit, set while a prefix shorter than /32 is there), in the mirror
    /// and in the kernel.
    #[cfg(feature = "ebpf")]
    fn assert_v6_counts(f: &XdpFilter) {
        let mut users = ahash::AHashMap::new();
        let mut fine_users = ahash::AHashMap::new();
        let mut short = 0;
        let mut words = vec![[0u64; 8]; f.v6_words.len()];
        for &(a, len) in &f.v6_set {
            match v6_level(len) {
                Some(level @ 32..=64) => {
                    let (w, bit) = v6_filter_slot((a >> 64) as u64, level);
                    *users.entry((w, bit)).or_insert(0u32) += 1;
                    words[w as usize][0] |= bit;
                    for (i, b) in v6_fine_bits(a, len, level) {
                        *fine_users.entry((w, fine_index(i, b))).or_insert(0u32) += 1;
                        words[w as usize][i] |= b;
                    }
                }
                _ => short += 1,
            }
        }
        assert_eq!(f.v6_bit_users, users);
        assert_eq!(f.v6_fine_users, fine_users);
        assert_eq!(f.v6_short, short);
        let flag = if short > 0 { V6_FILTER_SHORT } else { 0 };
        for (w, (&have, mut want)) in f.v6_words.iter().zip(words).enumerate() {
            want[0] |= flag;
            assert_eq!(have, want, "entry {w}");
            if want != [0; 8] {
                assert_eq!(f.deny_v6_32.get(&(w as u32), 0).unwrap(), want, "entry {w}");
            }
        }
        // Every part 0 or chunk leaf in ranges names a slot of its own,
        // taken, whose ranges the kernel holds; no other slot is taken.
        let named: Vec<u64> = f
            .deny_v6_leaf
            .values()
            .iter()
            .filter(|l| l.parts == V6_RANGES)
            .map(|l| l.chunks)
            .collect();
        let distinct: BTreeSet<u64> = named.iter().copied().collect();
        assert_eq!(distinct.len(), named.len(), "{named:?}");
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), named.len());
        for slot in named {
            let taken = f.deny_v6_leaf.ranges.get(slot).expect("a taken slot");
            assert_eq!(f.deny_v6_leaf.ranges.kernel(slot), *taken);
        }
        // Each block's count of the leaves of its chunks is what the table
        // holds (codes past the block's own parts).
        let mut chunk_leaves = ahash::AHashMap::new();
        for (key, code) in f.deny_v6_leaf.tags() {
            if code >> 8 >= V6_MAX_PARTS {
                *chunk_leaves.entry((key, code & 0xff)).or_insert(0u32) += 1;
            }
        }
        assert_eq!(f.deny_v6_leaf.chunk_leaf_counts(), &chunk_leaves);
    }

    /// A kernel error in the middle of a split block's write still waits
    /// for the program's runs before the continuations a chunk held back
    /// can be written again (here by the undo of the failed call, which
    /// brings the 64th out of the trie and rewrites them in a new order).
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_a_failed_split_write_still_waits_before_reusing_continuations() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        // The trie where a chunk fits nothing else, not the ranges.
        ranges_off();
        let p60 = |j: u128| {
            IpPrefix::new(std::net::Ipv6Addr::from(a48(4, 0) | j << 68).into(), 60).unwrap()
        };
        // 32 /60s in 64th 0 of the /48 number 4, last first: its chunk leaf
        // and 3 continuations, the /60s out of address order.
        for j in (0..32).rev() {
            f.deny_source(p60(j)).unwrap();
        }
        assert_eq!(chunk_shape(&f, 4, 0), (Some(4), 3));
        // A /53 over 64ths 0-1: 64th 0 goes to the trie (33), and the write
        // of 64th 1's new leaf fails.
        FAIL_PUT.with(|x| x.set(Some(((Some(1), None, 0), 0))));
        let journal = journal_of(|| {
            let e = f.deny_source(p48(4, 0, 53)).unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Kernel { .. }), "{e}");
        });
        let chunk0 = |e: &Event, part: u32| matches!(*e, Event::Put { chunk: Some(0), part: p, leaf: Some(_), .. } if p == part);
        let marked = journal
            .iter()
            .position(|e| {
                matches!(*e, Event::Put { chunk: Some(0), part: 0, leaf: Some(l), .. }
                    if l.parts == V6_OVERFLOW)
            })
            .unwrap_or_else(|| panic!("64th 0 went to the trie: {journal:?}"));
        let rewritten = journal
            .iter()
            .position(|e| (1..V6_MAX_PARTS).any(|p| chunk0(e, p)))
            .unwrap_or_else(|| panic!("the undo rewrote 64th 0: {journal:?}"));
        assert!(
            journal[marked..rewritten].contains(&Event::Wait),
            "no wait between the trie mark and the rewrite: {journal:?}"
        );
        // The call failed and was undone: the /60s as before, no /53.
        assert_eq!(f.denied_sources().unwrap().len(), 32);
        assert_eq!(chunk_shape(&f, 4, 0), (Some(4), 3));
        for j in 0..32 {
            let frame = v6_frame((a48(4, 0) | j << 68 | 1).into(), UDP, &udp(1, 2, b""));
            assert_eq!(
                f.test_run(&frame, 1).unwrap().verdict,
                Verdict::Drop,
                "/60 {j}"
            );
        }
        let frame = v6_frame((a48(4, 4) | 1).into(), UDP, &udp(1, 2, b""));
        assert_eq!(f.test_run(&frame, 1).unwrap().verdict, Verdict::Pass);
        assert_v6_counts(&f);
    }

    /// A crowded 64th whose continuation finds no room (its bucket and the
    /// spill map full), nor the leaf of one of its own 64ths, goes to the
    /// trie alone (the leaves its own split wrote removed), the call
    /// succeeding and the block staying split; it takes its continuation
    /// once there is room and the block changes again. Every probe is
    /// answered right.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_chunk_continuation_without_room_sends_its_64th_to_the_trie() {
        use crate::test_frames::{udp, v6_frame, UDP};
        use rauta_xdp_common::{v6_chunk_part_code, v6_sub_leaf_code};

        let mut f = XdpFilter::builder()
            .deny_v6_capacity(128)
            .load()
            .expect("load the XDP program (as root)");
        // The trie where a chunk fits nothing else, not the ranges.
        ranges_off();
        let mask = f.cfg.v6_bucket_mask;
        let key = |block: u128| v6_leaf_key((a48(block, 0) >> 64) as u64, 48);
        // /60 number `j` of the first /56 of block 0 (its 64th number 0).
        let p60 = |j: u128| {
            IpPrefix::new(std::net::Ipv6Addr::from(a48(0, 0) | j << 68).into(), 60).unwrap()
        };
        let check = |f: &XdpFilter, drop: &[u128], pass: &[u128], step: &str| {
            for (&a, want) in drop
                .iter()
                .map(|a| (a, Verdict::Drop))
                .chain(pass.iter().map(|a| (a, Verdict::Pass)))
            {
                let frame = v6_frame((a | 1).into(), UDP, &udp(1, 2, b""));
                let got = f.test_run(&frame, 1).unwrap().verdict;
                assert_eq!(got, want, "{step}: {:?}", std::net::Ipv6Addr::from(a));
            }
        };
        let in60 = |j: u128| a48(0, 0) | j << 68;
        // Eight /60s in 64th 0 and a /56 in each of 64ths 1-8: 16 prefixes,
        // 9 64ths, split; 64th 0's leaf is full.
        for j in 0..8 {
            f.deny_source(p60(j)).unwrap();
        }
        for i in 1..=8 {
            f.deny_source(p48(0, 4 * i, 56)).unwrap();
        }
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 9));
        assert_eq!(chunk_shape(&f, 0, 0), (Some(1), 0));
        // Fill the bucket of 64th 0's first continuation and that of the
        // leaf of its ninth /60 (64th 8 of it), then the spill map, with
        // other blocks' first leaves.
        let cont = v6_bucket(key(0), v6_chunk_part_code(48, 0, 1), mask);
        let ninth = v6_bucket(key(0), v6_sub_leaf_code(48, 0, 8), mask);
        let fillers = fill_buckets(&mut f, &[cont, ninth]);
        // A ninth /60 there: no room for the continuation, nor for the
        // split of the 64th by its own 64ths, so the trie answers for that
        // 64th; the others keep their leaves.
        let leaves = f.deny_v6_leaf.len();
        f.deny_source(p60(8)).unwrap();
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 9));
        assert_eq!(chunk_shape(&f, 0, 0), (Some(V6_OVERFLOW), 0));
        assert_eq!(f.deny_v6_leaf.len(), leaves);
        let drop = [in60(0), in60(7), in60(8), a48(0, 4), a48(0, 32)];
        let pass = [in60(9), in60(15), a48(0, 1), a48(0, 5), a48(0, 36)];
        check(&f, &drop, &pass, "overflow");
        // Room again, and a change of the block: the continuation.
        for &b in &fillers {
            assert!(f.allow_source(p48(b, 0, 56)).unwrap());
        }
        assert!(f.allow_source(p60(8)).unwrap());
        assert_eq!(chunk_shape(&f, 0, 0), (Some(1), 0));
        check(&f, &drop[..2], &[in60(8), in60(9)], "eight again");
        f.deny_source(p60(8)).unwrap();
        assert_eq!(chunk_shape(&f, 0, 0), (Some(2), 1));
        check(&f, &drop, &pass, "continued");
        assert_v6_counts(&f);
        // With a slot free, a tenth /60: its ranges (the continuation goes).
        crate::ranges::tests::NO_RANGES.with(|n| n.set(false));
        f.deny_source(p60(9)).unwrap();
        assert_eq!(chunk_shape(&f, 0, 0), (Some(V6_RANGES), 0));
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 1);
        // Then no slot, and no room for a continuation nor for the leaves
        // of its 64ths: out of the ranges (the parts' write fails for want
        // of room, before the chunk leaf is written), the trie answers for
        // the 64th and its slot is given back.
        let fillers = fill_buckets(&mut f, &[cont, ninth]);
        ranges_off();
        f.deny_source(p60(10)).unwrap();
        assert_eq!(chunk_shape(&f, 0, 0), (Some(V6_OVERFLOW), 0));
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 0);
        assert_eq!(
            (0..64)
                .filter(|&s| LeafBlock::new(key(0), 48, mask)
                    .chunk(0)
                    .sub(s)
                    .get(&f.deny_v6_leaf, 0)
                    .is_some())
                .count(),
            0
        );
        let drop11 = [in60(0), in60(8), in60(9), in60(10), a48(0, 32)];
        let pass11 = [in60(11), in60(15), a48(0, 1), a48(0, 36)];
        check(&f, &drop11, &pass11, "out of the ranges, no room");
        assert_v6_counts(&f);
        // Room again: a change of the block gives it its continuation.
        for &b in &fillers {
            assert!(f.allow_source(p48(b, 0, 56)).unwrap());
        }
        assert!(f.allow_source(p60(10)).unwrap());
        assert_eq!(chunk_shape(&f, 0, 0), (Some(2), 1));
        check(&f, &drop11[..3], &[in60(10), in60(11)], "ten, continued");
        assert_v6_counts(&f);
        for p in f.denied_sources().unwrap() {
            assert!(f.allow_source(p).unwrap());
        }
        assert_eq!(block_shape(&f), (None, 0, 0));
        assert_eq!(leaves_of(&f, 0), 0);
        assert_eq!(f.spilled_entries(), 0);
    }

    /// A change that compacts the continuations of several chunks of a
    /// split block waits for the program's runs once, not once a chunk.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_chunks_compact_after_one_wait() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        // The trie where a chunk fits nothing else, not the ranges.
        ranges_off();
        // In the /48 number 3: a /52 over 64ths 0-3, then eight /60s in the
        // first /56 of each: nine prefixes reach each 64th, which so keeps
        // a continuation, the /52 in the first slot of its chunk leaf
        // (so that once it goes, the last /60 moves into the chunk leaf).
        let p60 = |c: u128, j: u128| {
            IpPrefix::new(std::net::Ipv6Addr::from(a48(3, 4 * c) | j << 68).into(), 60).unwrap()
        };
        f.deny_source(p48(3, 0, 52)).unwrap();
        for c in 0..4 {
            for j in 0..8 {
                f.deny_source(p60(c, j)).unwrap();
            }
        }
        assert_eq!(block_shape_of(&f, 3), (Some(V6_SPLIT), 0, 4));
        for c in 0..4 {
            assert_eq!(chunk_shape(&f, 3, c), (Some(2), 1), "64th {c}");
        }
        let verdict = |f: &XdpFilter, a: u128| {
            let frame = v6_frame(std::net::Ipv6Addr::from(a), UDP, &udp(1, 2, b""));
            f.test_run(&frame, 1).unwrap().verdict
        };
        let a60 = |c: u128, j: u128| a48(3, 4 * c) | j << 68 | 1;
        // Every /60 drops; the rest of the /52 drops while it is denied.
        let check = |f: &XdpFilter, n: u128, covered: bool, step: &str| {
            for c in 0..4 {
                for j in 0..16 {
                    let want = if j < n || covered {
                        Verdict::Drop
                    } else {
                        Verdict::Pass
                    };
                    assert_eq!(verdict(f, a60(c, j)), want, "{step}: 64th {c}, /60 {j}");
                }
                let other = a48(3, 4 * c + 1) | 1;
                let want = if covered {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                };
                assert_eq!(verdict(f, other), want, "{step}: 64th {c}");
            }
        };
        check(&f, 8, true, "with the /52");
        let key = v6_leaf_key((a48(3, 0) >> 64) as u64, 48);
        let journal = journal_of(|| assert!(f.allow_source(p48(3, 0, 52)).unwrap()));
        // One wait for four chunks.
        let wait = the_one_wait(&journal);
        // Before the wait, each chunk leaf still announces its continuation
        // and already holds all eight /60s (the one from the continuation
        // moved in); after it, the continuations go and the chunk leaves
        // say one part.
        for (i, e) in journal.iter().enumerate() {
            let Event::Put {
                key: k,
                chunk: Some(_),
                sub: None,
                part,
                leaf,
            } = *e
            else {
                continue;
            };
            assert_eq!(k, key);
            match (i < wait, part, leaf) {
                (true, 0, Some(l)) => {
                    assert_eq!((l.parts, l.used), (2, 8), "{e:?}");
                }
                (false, 0, Some(l)) => assert_eq!(l.parts, 1, "{e:?}"),
                (false, 1, None) => {}
                _ => panic!(
                    "{e:?} {} the wait",
                    if i < wait { "before" } else { "after" }
                ),
            }
        }
        for c in 0..4 {
            assert_eq!(chunk_shape(&f, 3, c), (Some(1), 0), "64th {c}");
        }
        check(&f, 8, false, "compacted");
        assert_eq!(leaves_of(&f, 3), 5);
        // A ninth /60 in each: a continuation each again (36 prefixes, 4
        // 64ths: leaves to spare). A /49 (64ths 0-31) then leaves 5 to
        // spare for the 4 continuations; a /52 over 64ths 32-35 leaves 2:
        // 64ths 2 and 3 go to the trie (marked before the one wait, their
        // continuations removed after it).
        for c in 0..4 {
            f.deny_source(p60(c, 8)).unwrap();
        }
        f.deny_source(p48(3, 0, 49)).unwrap();
        for c in 0..4 {
            assert_eq!(chunk_shape(&f, 3, c), (Some(2), 1), "64th {c}");
        }
        let journal = journal_of(|| f.deny_source(p48(3, 128, 52)).unwrap());
        let wait = the_one_wait(&journal);
        for (i, e) in journal.iter().enumerate() {
            if let Event::Put {
                chunk: Some(c @ 2..=3),
                part,
                leaf,
                ..
            } = *e
            {
                match (i < wait, part, leaf) {
                    (true, 0, Some(l)) => assert_eq!(l.parts, V6_OVERFLOW, "64th {c}"),
                    (false, 1, None) => {}
                    _ => panic!(
                        "{e:?} {} the wait",
                        if i < wait { "before" } else { "after" }
                    ),
                }
            }
        }
        for c in 0..4 {
            let want = if c < 2 {
                (Some(2), 1)
            } else {
                (Some(V6_OVERFLOW), 0)
            };
            assert_eq!(chunk_shape(&f, 3, c), want, "64th {c}");
        }
        check(&f, 16, true, "under the /49");
    }

    /// The program asks the 64th bits of the filter entry before the
    /// leaves: a source whose 64th no prefix reaches passes on them (with
    /// the bits cleared behind the loader's back, a denied source passes
    /// too, which shows they are read), and bits all set change no verdict
    /// (the leaves decide). The loader keeps them exactly the 64ths its
    /// prefixes reach, at each level, and clears them with the last.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_64th_bits_answer_before_the_leaves() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let verdict = |f: &XdpFilter, src: &str| {
            let frame = v6_frame(src.parse().unwrap(), UDP, &udp(1, 2, b""));
            f.test_run(&frame, 1).unwrap().verdict
        };
        // One prefix per level, each in one 64th of its block, a /49
        // reaching half of another /48, a /66 reaching 16 64ths of a /64,
        // and prefixes as long as their level (every 64th of the block); a
        // source inside each (in the last 64th the prefix reaches) and,
        // where the block has room, one in another 64th whose bit the
        // prefix does not set.
        let denied = [
            (
                "2001:db8:4000::/40",
                "2001:db8:40ff::1",
                Some("2001:db8:f000::1"),
            ),
            (
                "2001:db9:1:400::/56",
                "2001:db9:1:4ff::1",
                Some("2001:db9:1:8000::1"),
            ),
            (
                "2001:dba:2:3:400::/80",
                "2001:dba:2:3:400::1",
                Some("2001:dba:2:3:8000::1"),
            ),
            (
                "2001:dbb:5::/49",
                "2001:dbb:5:7fff::1",
                Some("2001:dbb:5:8000::1"),
            ),
            (
                "2001:dbc:1:2:4000::/66",
                "2001:dbc:1:2:7fff::1",
                Some("2001:dbc:1:2:c000::1"),
            ),
            ("2001:dbd::/32", "2001:dbd:ffff::1", None),
            ("2001:dbe:1::/48", "2001:dbe:1:ffff::1", None),
            ("2001:dbf:1:2::/64", "2001:dbf:1:2:ffff::1", None),
        ];
        for (p, _, _) in denied {
            f.deny_source(p.parse().unwrap()).unwrap();
        }
        assert_v6_counts(&f);
        let entry_of = |src: &str| {
            let a = u128::from(src.parse::<Ipv6Addr>().unwrap());
            v6_filter_slot((a >> 64) as u64, 32).0
        };
        for (p, inside, other) in denied {
            assert_eq!(verdict(&f, inside), Verdict::Drop, "{inside}");
            let Some(other) = other else { continue };
            assert_eq!(verdict(&f, other), Verdict::Pass, "{other}");
            // `other` is answered by its 64th's bit, clear.
            let level = v6_level(p.parse::<IpPrefix>().unwrap().len()).unwrap();
            let a = u128::from(other.parse::<Ipv6Addr>().unwrap());
            let (i, bit) = rauta_xdp_common::v6_fine_slot((a >> 64) as u64, a as u64, level);
            let e = f.v6_words[entry_of(other) as usize];
            assert_eq!(e[i] & bit, 0, "{other}");
            assert_ne!(
                e[0] & v6_filter_slot((a >> 64) as u64, level).1,
                0,
                "{other}"
            );
        }
        for fine in [0, u64::MAX] {
            for (_, inside, _) in denied {
                let w = entry_of(inside);
                let e = f.v6_words[w as usize];
                f.deny_v6_32
                    .set(w, [e[0], fine, fine, fine, fine, fine, fine, fine], 0)
                    .unwrap();
            }
            for (_, inside, other) in denied {
                let want = if fine == 0 {
                    Verdict::Pass
                } else {
                    Verdict::Drop
                };
                assert_eq!(verdict(&f, inside), want, "{inside}, 64th bits {fine:#x}");
                if let Some(other) = other {
                    assert_eq!(
                        verdict(&f, other),
                        Verdict::Pass,
                        "{other}, 64th bits {fine:#x}"
                    );
                }
            }
        }
        for (_, inside, _) in denied {
            let w = entry_of(inside);
            f.deny_v6_32.set(w, f.v6_words[w as usize], 0).unwrap();
        }
        assert_v6_counts(&f);
        for (p, _, _) in denied {
            assert!(f.allow_source(p.parse().unwrap()).unwrap());
        }
        assert_v6_counts(&f);
        assert!(f.v6_fine_users.is_empty());
    }

    /// A 64th of a block reached by more prefixes than its parts hold is
    /// split in turn, by its own 64ths, at every level (a /22 of a /16, a
    /// /38 of a /32, a /54 of a /48, a /70 of a /64), and the leaves of
    /// those 64ths answer without the trie; it comes back to parts, goes to
    /// the trie when a prefix covers it whole or more than a leaf holds
    /// reach one of its 64ths, and back again. Going in, the leaves of its
    /// 64ths are written before the chunk leaf says so and its
    /// continuations go after the one wait; coming out, those leaves go
    /// after it. A kernel error on the way in leaves the chunk as it was;
    /// the block going to the trie takes every leaf of the chunk with it.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_crowded_chunks_split_by_their_64ths() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        // Parts and the split, not the ranges (which come first), but
        // where said.
        let ranges = |on: bool| crate::ranges::tests::NO_RANGES.with(|n| n.set(!on));
        ranges(false);
        let mask = f.cfg.v6_bucket_mask;
        // The chunk crowded at each level.
        const C: u32 = 5;
        for (level, base) in LEVEL_BLOCKS {
            // Prefixes 14 bits longer than the block, four in each of the
            // first 64ths of its chunk `C`.
            let l = level as u8;
            let len = l + 14;
            let sub_bits = 128 - level - 12;
            let cbase = base | u128::from(C) << (sub_bits + 6);
            let addr = |sub: u128, j: u128| cbase | sub << sub_bits | j << (128 - u32::from(len));
            let pre =
                |a: u128, len: u8| IpPrefix::new(std::net::Ipv6Addr::from(a).into(), len).unwrap();
            let block = LeafBlock::new((base >> 64) as u64, level, mask);
            let chunk = block.chunk(C);
            let shape = |f: &XdpFilter| {
                let leaf = chunk.get(&f.deny_v6_leaf, 0);
                let parts = (1..V6_MAX_PARTS)
                    .filter(|&p| chunk.get(&f.deny_v6_leaf, p).is_some())
                    .count();
                let subs = (0..64)
                    .filter(|&s| chunk.sub(s).get(&f.deny_v6_leaf, 0).is_some())
                    .count();
                (leaf.map(|l| l.parts), parts, subs)
            };
            let verdict = |f: &XdpFilter, a: u128| {
                let frame = v6_frame(std::net::Ipv6Addr::from(a), UDP, &udp(1, 2, b""));
                f.test_run(&frame, 1).unwrap().verdict
            };
            // Every /len of the first 12 64ths (and one in the next chunk):
            // the first `denied` 64ths' dropped, the others passed.
            let check = |f: &XdpFilter, denied: u128, what: &str| {
                for sub in 0..12 {
                    for j in 0..4 {
                        let want = if sub < denied {
                            Verdict::Drop
                        } else {
                            Verdict::Pass
                        };
                        let a = addr(sub, j) | 1;
                        assert_eq!(verdict(f, a), want, "/{level}: {what}: 64th {sub}, {j}");
                    }
                }
                let next_chunk = cbase + (1u128 << (sub_bits + 6));
                assert_eq!(verdict(f, next_chunk), Verdict::Pass, "/{level}: {what}");
            };
            // 32 in the 64th: parts (a chunk leaf and 3 continuations).
            for sub in 0..8 {
                for j in 0..4 {
                    f.deny_source(pre(addr(sub, j), len)).unwrap();
                }
            }
            assert_eq!(shape(&f), (Some(4), 3, 0), "/{level}");
            check(&f, 8, "32 in parts");
            // A kernel error writing the leaf of one of its 64ths: the
            // call fails, the chunk stays in parts, no leaf is left over.
            let leaves = f.deny_v6_leaf.len();
            FAIL_PUT.with(|x| x.set(Some(((Some(C), Some(4), 0), 0))));
            assert!(f.deny_source(pre(addr(8, 0), len)).is_err());
            assert_eq!(shape(&f), (Some(4), 3, 0), "/{level}");
            assert_eq!(f.deny_v6_leaf.len(), leaves, "/{level}");
            check(&f, 8, "a failed write");
            // The same, writing the chunk leaf itself.
            FAIL_PUT.with(|x| x.set(Some(((Some(C), None, 0), 0))));
            assert!(f.deny_source(pre(addr(8, 0), len)).is_err());
            assert_eq!(shape(&f), (Some(4), 3, 0), "/{level}");
            assert_eq!(f.deny_v6_leaf.len(), leaves, "/{level}");
            check(&f, 8, "a failed chunk leaf write");
            // The same, the mode failing after the bits went in under the
            // chunk leaf's parts (which do not read them): the call fails,
            // the leaves of the 64ths go and the chunk leaf is as it was.
            let before = chunk.get(&f.deny_v6_leaf, 0);
            FAIL_PUT.with(|x| x.set(Some(((Some(C), None, 0), 1))));
            let journal = journal_of(|| assert!(f.deny_source(pre(addr(9, 0), len)).is_err()));
            assert_eq!(FAIL_PUT.with(|x| x.get()), None, "/{level}: not failed");
            let writes = chunk_leaf_writes(&journal, C);
            assert_eq!(
                writes.first().map(|(_, l)| (l.parts, l.chunks)),
                Some((4, 0x2ff)),
                "/{level}: the bits under the parts: {journal:?}"
            );
            assert!(
                writes.iter().all(|(_, l)| l.parts == 4),
                "/{level}: {journal:?}"
            );
            assert_eq!(shape(&f), (Some(4), 3, 0), "/{level}");
            assert_eq!(chunk.get(&f.deny_v6_leaf, 0), before, "/{level}");
            assert_eq!(f.deny_v6_leaf.len(), leaves, "/{level}");
            check(&f, 8, "a failed mode write");
            // A kernel error on the chunk leaf's write to overflow (a
            // prefix covering the chunk, the ranges off): its continuations,
            // which it still announces, stay.
            FAIL_PUT.with(|x| x.set(Some(((Some(C), None, 0), 0))));
            let journal = journal_of(|| assert!(f.deny_source(pre(cbase, l + 6)).is_err()));
            assert_eq!(FAIL_PUT.with(|x| x.get()), None, "/{level}: not failed");
            for e in &journal {
                if let Event::Put {
                    chunk: Some(C),
                    sub: None,
                    part: 1..,
                    leaf: None,
                    ..
                } = *e
                {
                    panic!("/{level}: a continuation removed: {journal:?}");
                }
            }
            assert_eq!(shape(&f), (Some(4), 3, 0), "/{level}");
            check(&f, 8, "a failed overflow write");
            // 33: split by its 64ths: their leaves first, the chunk leaf
            // then, the continuations after the one wait.
            let journal = journal_of(|| f.deny_source(pre(addr(8, 0), len)).unwrap());
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 9), "/{level}");
            let wait = the_one_wait(&journal);
            let split_at = journal
                .iter()
                .position(|e| {
                    matches!(*e, Event::Put { chunk: Some(C), sub: None, part: 0, leaf: Some(l), .. }
                        if l.parts == V6_SPLIT)
                })
                .expect("the chunk leaf says split");
            // Its writes: the new bits under its parts, then the split.
            let writes = chunk_leaf_writes(&journal, C);
            assert_eq!(writes.len(), 2, "/{level}: {journal:?}");
            let (bits_at, bits) = writes[0];
            assert_eq!((bits.parts, bits.chunks), (4, 0x1ff), "/{level}");
            assert_eq!(writes[1].0, split_at, "/{level}");
            assert_eq!(writes[1].1.chunks, 0x1ff, "/{level}");
            for (i, e) in journal.iter().enumerate() {
                match *e {
                    Event::Put {
                        chunk: Some(C),
                        sub: Some(_),
                        leaf,
                        ..
                    } => {
                        assert!(i < bits_at && leaf.is_some(), "/{level}: {e:?}")
                    }
                    Event::Put {
                        chunk: Some(C),
                        sub: None,
                        part: 1..,
                        leaf,
                        ..
                    } => {
                        assert!(i > wait && leaf.is_none(), "/{level}: {e:?}")
                    }
                    _ => {}
                }
            }
            assert!(split_at < wait, "/{level}");
            for j in 1..4 {
                f.deny_source(pre(addr(8, j), len)).unwrap();
            }
            check(&f, 9, "36, split by 64ths");
            // 40, a 64th more.
            for j in 0..4 {
                f.deny_source(pre(addr(9, j), len)).unwrap();
            }
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 10), "/{level}");
            check(&f, 10, "40, split by 64ths");
            // The leaves of the 64ths answer, not the trie: taken out of the
            // trie behind the loader's back, every prefix is still dropped.
            let keys: Vec<Key<[u8; 16]>> = (0..10)
                .flat_map(|sub| (0..4).map(move |j| (sub, j)))
                .map(|(sub, j)| Key::new(u32::from(len), addr(sub, j).to_be_bytes()))
                .collect();
            for k in &keys {
                f.deny_v6.remove(k).unwrap();
            }
            check(&f, 10, "40, none in the trie");
            for k in &keys {
                f.deny_v6.insert(k, 1, 0).unwrap();
            }
            // A prefix covering the chunk: ranges (it fits no split); the
            // chunk leaf goes through overflow (its bits are no slot
            // number), names the slot under it, then says ranges; the leaves
            // of its 64ths go after the one wait.
            let cover = pre(cbase, l + 6);
            ranges(true);
            let journal = journal_of(|| f.deny_source(cover).unwrap());
            assert_eq!(shape(&f), (Some(V6_RANGES), 0, 0), "/{level}");
            let wait = the_one_wait(&journal);
            for (i, e) in journal.iter().enumerate() {
                if let Event::Put {
                    chunk: Some(C),
                    sub: Some(_),
                    leaf,
                    ..
                } = *e
                {
                    assert!(i > wait && leaf.is_none(), "/{level}: {e:?}");
                }
            }
            let writes = chunk_leaf_writes(&journal, C);
            let modes: Vec<(u32, u64)> = writes.iter().map(|(_, l)| (l.parts, l.chunks)).collect();
            let slot = modes.last().unwrap().1;
            assert_eq!(
                modes,
                [(V6_OVERFLOW, 0x3ff), (V6_OVERFLOW, slot), (V6_RANGES, slot)],
                "/{level}"
            );
            assert!(writes[2].0 < wait, "/{level}");
            assert_eq!(f.deny_v6_leaf.ranges.in_use(), 1, "/{level}");
            check(&f, 12, "covered");
            // The ranges answer, not the trie.
            let cover_key = Key::new(u32::from(l) + 6, cbase.to_be_bytes());
            for k in keys.iter().chain([&cover_key]) {
                f.deny_v6.remove(k).unwrap();
            }
            check(&f, 12, "covered, none in the trie");
            for k in keys.iter().chain([&cover_key]) {
                f.deny_v6.insert(k, 1, 0).unwrap();
            }
            assert_v6_counts(&f);
            // Kernel errors out of the ranges into the split (ranges off),
            // after the chunk leaf went to overflow: on its bits' write
            // under overflow, then on the split's. The call fails, the
            // chunk leaf is left in overflow (the trie, which still holds
            // every prefix, answers for the chunk), no leaf of its 64ths is
            // left, the slot it named is given back, and every verdict
            // holds. Between the two, and after, the chunk goes into ranges
            // again (a fresh slot) through the split.
            let back_in_ranges = |f: &mut XdpFilter| {
                ranges(true);
                assert!(f.allow_source(cover).unwrap());
                assert_eq!(shape(f), (Some(V6_SPLIT), 0, 10), "/{level}");
                f.deny_source(cover).unwrap();
                assert_eq!(shape(f), (Some(V6_RANGES), 0, 0), "/{level}");
                chunk.get(&f.deny_v6_leaf, 0).unwrap().chunks
            };
            let mut slot = slot;
            for skip in [1, 2] {
                if skip > 1 {
                    slot = back_in_ranges(&mut f);
                }
                ranges(false);
                FAIL_PUT.with(|x| x.set(Some(((Some(C), None, 0), skip))));
                let journal = journal_of(|| assert!(f.allow_source(cover).is_err()));
                assert_eq!(FAIL_PUT.with(|x| x.get()), None, "/{level}: not failed");
                let writes: Vec<(u32, u64)> = chunk_leaf_writes(&journal, C)
                    .iter()
                    .map(|(_, l)| (l.parts, l.chunks))
                    .collect();
                assert_eq!(
                    writes,
                    [(V6_OVERFLOW, slot), (V6_OVERFLOW, 0x3ff)][..skip as usize],
                    "/{level}: {journal:?}"
                );
                assert_eq!(shape(&f), (Some(V6_OVERFLOW), 0, 0), "/{level}: {skip}");
                assert_eq!(f.deny_v6_leaf.ranges.in_use(), 0, "/{level}");
                check(&f, 12, "a failed write out of the ranges");
                assert_v6_counts(&f);
            }
            let slot = back_in_ranges(&mut f);
            // Back to the split (ranges off): the leaves of its 64ths, then
            // overflow (the slot number kept), the bits under it, then the
            // split; the slot waits in quarantine.
            ranges(false);
            let quarantined = f.deny_v6_leaf.ranges.quarantined();
            let journal = journal_of(|| assert!(f.allow_source(cover).unwrap()));
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 10), "/{level}");
            let writes = chunk_leaf_writes(&journal, C);
            let modes: Vec<(u32, u64)> = writes.iter().map(|(_, l)| (l.parts, l.chunks)).collect();
            assert_eq!(
                modes,
                [(V6_OVERFLOW, slot), (V6_OVERFLOW, 0x3ff), (V6_SPLIT, 0x3ff)],
                "/{level}"
            );
            for (i, e) in journal.iter().enumerate() {
                if let Event::Put { sub: Some(_), .. } = *e {
                    assert!(i < writes[0].0, "/{level}: {e:?}");
                }
            }
            assert_eq!(f.deny_v6_leaf.ranges.in_use(), 0, "/{level}");
            assert_eq!(
                f.deny_v6_leaf.ranges.quarantined(),
                quarantined + 1,
                "/{level}"
            );
            check(&f, 10, "uncovered");
            // Nine reaching one 64th (five more nested in it, of the
            // block's level: the 64th itself, its halves, the halves of its
            // first prefix): ranges, and back; with the ranges off, the
            // trie, and back.
            let nested = [
                pre(addr(0, 0), l + 12),
                pre(addr(0, 0), l + 13),
                pre(addr(0, 2), l + 13),
                pre(addr(0, 0), l + 15),
                pre(addr(0, 0) | 1 << (128 - u32::from(l) - 15), l + 15),
            ];
            ranges(true);
            for p in &nested {
                f.deny_source(*p).unwrap();
            }
            assert_eq!(shape(&f), (Some(V6_RANGES), 0, 0), "/{level}");
            check(&f, 10, "nine in a 64th");
            ranges(false);
            assert!(f.allow_source(nested[4]).unwrap());
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 10), "/{level}");
            f.deny_source(nested[4]).unwrap();
            assert_eq!(shape(&f), (Some(V6_OVERFLOW), 0, 0), "/{level}");
            check(&f, 10, "nine in a 64th, ranges off");
            for p in &nested {
                assert!(f.allow_source(*p).unwrap());
            }
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 10), "/{level}");
            // A prefix over four 64ths of the chunk (12 to 15).
            let wide = pre(addr(12, 0), l + 10);
            f.deny_source(wide).unwrap();
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 14), "/{level}");
            check(&f, 10, "a wide prefix");
            for sub in 12..17 {
                let want = if sub < 16 {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                };
                assert_eq!(verdict(&f, addr(sub, 3) | 1), want, "/{level}: 64th {sub}");
            }
            assert!(f.allow_source(wide).unwrap());
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 10), "/{level}");
            // The whole block to the trie (prefixes over chunks 16-63 make
            // it reach more 64ths than it has prefixes), every leaf but
            // part 0 gone; and back.
            let halves = [
                pre(base | 1 << (127 - level), l + 1),
                pre(base | 1 << (126 - level), l + 2),
            ];
            for p in halves {
                f.deny_source(p).unwrap();
            }
            assert_eq!(
                block.get(&f.deny_v6_leaf, 0).map(|l| l.parts),
                Some(V6_OVERFLOW)
            );
            assert_eq!(shape(&f), (None, 0, 0), "/{level}");
            assert_eq!(f.deny_v6_leaf.len(), 1, "/{level}");
            check(&f, 10, "the block in the trie");
            for p in halves {
                assert!(f.allow_source(p).unwrap());
            }
            assert_eq!(
                block.get(&f.deny_v6_leaf, 0).map(|l| l.parts),
                Some(V6_SPLIT)
            );
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 10), "/{level}");
            assert_eq!(f.deny_v6_leaf.len(), 12, "/{level}");
            // Back to 32: parts again, the leaves of the 64ths after the
            // one wait (the chunk leaf's slots written under the split
            // first).
            // A 64th emptied while the chunk stays split: its bit cleared,
            // then its leaf removed (no wait: no prefix reaches it).
            for j in 0..3 {
                assert!(f.allow_source(pre(addr(9, j), len)).unwrap());
            }
            let journal = journal_of(|| assert!(f.allow_source(pre(addr(9, 3), len)).unwrap()));
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 9), "/{level}");
            assert!(!journal.contains(&Event::Wait), "/{level}: {journal:?}");
            let cleared = journal.iter().position(|e| {
                matches!(*e, Event::Put { chunk: Some(C), sub: None, part: 0, leaf: Some(l), .. }
                    if l.parts == V6_SPLIT && (l.chunks >> 9) & 1 == 0)
            });
            let removed = journal.iter().position(|e| {
                matches!(
                    *e,
                    Event::Put {
                        chunk: Some(C),
                        sub: Some(9),
                        leaf: None,
                        ..
                    }
                )
            });
            assert!(cleared.unwrap() < removed.unwrap(), "/{level}: {journal:?}");
            for j in 0..3 {
                assert!(f.allow_source(pre(addr(8, j), len)).unwrap());
            }
            let journal = journal_of(|| assert!(f.allow_source(pre(addr(8, 3), len)).unwrap()));
            assert_eq!(shape(&f), (Some(4), 3, 0), "/{level}");
            let wait = the_one_wait(&journal);
            let mut saw_slots_under_split = false;
            for (i, e) in journal.iter().enumerate() {
                match *e {
                    Event::Put {
                        chunk: Some(C),
                        sub: Some(_),
                        leaf,
                        ..
                    } => {
                        assert!(i > wait && leaf.is_none(), "/{level}: {e:?}")
                    }
                    Event::Put {
                        chunk: Some(C),
                        sub: None,
                        part: 0,
                        leaf: Some(l),
                        ..
                    } => {
                        assert!(i < wait, "/{level}: {e:?}");
                        if l.parts == V6_SPLIT {
                            // The 64ths' bits kept until the mode changes.
                            assert_eq!(l.chunks.count_ones(), 9, "/{level}: {e:?}");
                            saw_slots_under_split = true;
                        } else {
                            // Its bits too: a run that read the split
                            // before this write still finds them.
                            assert!(saw_slots_under_split && l.parts == 4, "/{level}: {e:?}");
                            assert_eq!(l.chunks.count_ones(), 9, "/{level}: {e:?}");
                        }
                    }
                    _ => {}
                }
            }
            check(&f, 8, "back to parts");
            // Split again by the same 64ths: the chunk leaf kept their bits,
            // so the mode alone is written, after the leaves of the 64ths.
            let journal = journal_of(|| f.deny_source(pre(addr(8, 3), len)).unwrap());
            assert_eq!(shape(&f), (Some(V6_SPLIT), 0, 9), "/{level}");
            let writes = chunk_leaf_writes(&journal, C);
            assert_eq!(writes.len(), 1, "/{level}: {journal:?}");
            assert_eq!(
                (writes[0].1.parts, writes[0].1.chunks),
                (V6_SPLIT, 0x1ff),
                "/{level}"
            );
            let leaves_at: Vec<usize> = (0..journal.len())
                .filter(|&i| matches!(journal[i], Event::Put { sub: Some(_), .. }))
                .collect();
            assert_eq!(leaves_at.len(), 9, "/{level}: {journal:?}");
            assert!(leaves_at.iter().all(|&i| i < writes[0].0), "/{level}");
            assert_eq!(verdict(&f, addr(8, 3) | 1), Verdict::Drop, "/{level}");
            assert_eq!(verdict(&f, addr(8, 2) | 1), Verdict::Pass, "/{level}");
            assert_eq!(verdict(&f, addr(7, 2) | 1), Verdict::Drop, "/{level}");
            assert!(f.allow_source(pre(addr(8, 3), len)).unwrap());
            assert_eq!(shape(&f), (Some(4), 3, 0), "/{level}");
            check(&f, 8, "back to parts again");
            for sub in 0..8 {
                for j in 0..4 {
                    assert!(f.allow_source(pre(addr(sub, j), len)).unwrap());
                }
            }
            assert_eq!(shape(&f), (None, 0, 0), "/{level}");
            check(&f, 0, "all allowed");
            assert_v6_counts(&f);
        }
        assert!(f.denied_sources().unwrap().is_empty());
        assert_eq!(f.deny_v6_leaf.len(), 0);
    }

    /// A crowded 64th (hosts in one /76 of a /64: past 8 held as ranges
    /// first, past 32 because more than a leaf holds reach one 64th of it,
    /// so its own split cannot hold them) is held as address ranges,
    /// answered without the trie: a change names a new slot through
    /// overflow, the old one waiting in quarantine; adjacent hosts merge,
    /// so more than 64 prefixes may fit; past 64 ranges the trie answers,
    /// and the chunk comes back; a kernel error leaves the chunk leaf and
    /// the slots as they were; back to one leaf the slot's name stays in
    /// the writes. Slots run out and come back out of quarantine after a
    /// wait.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_crowded_chunks_fall_back_to_ranges() {
        use crate::test_frames::{udp, v6_frame, UDP};
        use rauta_xdp_common::v6_ranges_name;
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let base = 0x2001_0db8_000f_0001u128 << 64;
        // Host `k`: every third address of the /76, so none touch.
        let host = |k: u128| base | (3 * k + 1);
        let pre = |a: u128| IpPrefix::new(std::net::Ipv6Addr::from(a).into(), 128).unwrap();
        let block = LeafBlock::new((base >> 64) as u64, 64, f.cfg.v6_bucket_mask);
        let chunk = block.chunk(0);
        let leaf = |f: &XdpFilter| chunk.get(&f.deny_v6_leaf, 0).unwrap();
        let verdict = |f: &XdpFilter, a: u128| {
            let frame = v6_frame(std::net::Ipv6Addr::from(a), UDP, &udp(1, 2, b""));
            f.test_run(&frame, 1).unwrap().verdict
        };
        // The first `n` hosts dropped, the addresses after each passed, as
        // are the next host and an address in the next /76.
        let check = |f: &XdpFilter, n: u128, what: &str| {
            for k in 0..n {
                assert_eq!(verdict(f, host(k)), Verdict::Drop, "{what}: host {k}");
                assert_eq!(verdict(f, host(k) + 1), Verdict::Pass, "{what}: after {k}");
            }
            assert_eq!(verdict(f, host(n)), Verdict::Pass, "{what}: host {n}");
            assert_eq!(verdict(f, base | 1 << 52), Verdict::Pass, "{what}");
        };
        // A host in another 64th of the /64 keeps the block split.
        let far = base | 1 << 63 | 5;
        f.deny_source(pre(far)).unwrap();
        for k in 0..40 {
            f.deny_source(pre(host(k))).unwrap();
        }
        assert_eq!(block.get(&f.deny_v6_leaf, 0).unwrap().parts, V6_SPLIT);
        assert_eq!(leaf(&f).parts, V6_RANGES);
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 1);
        check(&f, 40, "forty");
        assert_v6_counts(&f);
        // The ranges answer, not the trie.
        let keys: Vec<Key<[u8; 16]>> = (0..40)
            .map(|k| Key::new(128, host(k).to_be_bytes()))
            .collect();
        for k in &keys {
            f.deny_v6.remove(k).unwrap();
        }
        check(&f, 40, "forty, none in the trie");
        for k in &keys {
            f.deny_v6.insert(k, 1, 0).unwrap();
        }
        // A run that read the chunk leaf's mode before it went from its own
        // split into the ranges and its `chunks` after: the name is
        // answered by the slot, not taken for the bits of its 64ths (with
        // the trie emptied, only the slot can drop them); 64th bits read
        // under the ranges (as it leaves them) by the trie.
        let now = leaf(&f);
        for k in &keys {
            f.deny_v6.remove(k).unwrap();
        }
        raw_put(
            &mut f,
            &chunk,
            V6Leaf {
                parts: V6_SPLIT,
                ..now
            },
        );
        check(&f, 40, "the name read under the split");
        for k in &keys {
            f.deny_v6.insert(k, 1, 0).unwrap();
        }
        raw_put(&mut f, &chunk, V6Leaf { chunks: 1, ..now });
        check(&f, 40, "64th bits read under the ranges");
        raw_put(&mut f, &chunk, now);
        // One more: a new slot, named under overflow (the old name is read
        // under the ranges); the old slot waits.
        let old = leaf(&f);
        let quarantined = f.deny_v6_leaf.ranges.quarantined();
        let journal = journal_of(|| f.deny_source(pre(host(40))).unwrap());
        let named: Vec<V6Leaf> = chunk_leaf_writes(&journal, 0)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        let new = leaf(&f);
        assert_ne!(new.chunks, old.chunks);
        let through = V6Leaf {
            parts: V6_OVERFLOW,
            ..old
        };
        assert_eq!(
            named,
            [
                through,
                V6Leaf {
                    chunks: new.chunks,
                    ..through
                },
                new
            ],
            "{journal:?}"
        );
        assert_eq!(
            new,
            V6Leaf {
                chunks: new.chunks,
                ..old
            }
        );
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 1);
        assert_eq!(f.deny_v6_leaf.ranges.quarantined(), quarantined + 1);
        check(&f, 41, "forty-one");
        // Kernel errors writing the slot, then naming it: the call fails,
        // the chunk leaf and the slots are as they were.
        let before = leaf(&f);
        crate::ranges::tests::FAIL_RANGES.with(|x| x.set(true));
        assert!(f.deny_source(pre(host(41))).is_err());
        assert_eq!(leaf(&f), before);
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 1);
        FAIL_PUT.with(|x| x.set(Some(((Some(0), None, 0), 0))));
        assert!(f.deny_source(pre(host(41))).is_err());
        assert_eq!(FAIL_PUT.with(|x| x.get()), None);
        assert_eq!(leaf(&f), before);
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 1);
        // The same on the second and third writes (the name under
        // overflow, the mode): the chunk went through overflow, so the
        // undo names the same ranges again, in a fresh slot.
        let held = *f.deny_v6_leaf.ranges.get(before.chunks).unwrap();
        for skip in [1, 2] {
            FAIL_PUT.with(|x| x.set(Some(((Some(0), None, 0), skip))));
            assert!(f.deny_source(pre(host(41))).is_err());
            assert_eq!(FAIL_PUT.with(|x| x.get()), None, "write {skip}");
            let now = leaf(&f);
            assert_eq!(now.parts, V6_RANGES, "write {skip}");
            assert_eq!(f.deny_v6_leaf.ranges.get(now.chunks), Some(&held));
            assert_eq!(f.deny_v6_leaf.ranges.in_use(), 1, "write {skip}");
            check(&f, 41, "after a failed write");
        }
        check(&f, 41, "after the errors");
        assert_v6_counts(&f);
        // 64 ranges fit; 65 go to the trie; 64 again come back.
        for k in 41..64 {
            f.deny_source(pre(host(k))).unwrap();
        }
        assert_eq!(leaf(&f).parts, V6_RANGES);
        f.deny_source(pre(host(64))).unwrap();
        assert_eq!(leaf(&f).parts, V6_OVERFLOW);
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 0);
        check(&f, 65, "65 ranges: the trie");
        let journal = journal_of(|| assert!(f.allow_source(pre(host(64))).unwrap()));
        let modes: Vec<u32> = chunk_leaf_writes(&journal, 0)
            .into_iter()
            .map(|(_, l)| l.parts)
            .collect();
        // The slot number under overflow, then the mode.
        assert_eq!(modes, [V6_OVERFLOW, V6_RANGES], "{journal:?}");
        check(&f, 64, "64 again");
        // The hosts between the first twenty-one: they merge with them, so
        // 104 prefixes make 44 ranges (hosts 0-20 one, 21-63 one each).
        for k in 0..20 {
            f.deny_source(pre(host(k) + 1)).unwrap();
            f.deny_source(pre(host(k) + 2)).unwrap();
        }
        assert_eq!(leaf(&f).parts, V6_RANGES);
        let r = *f.deny_v6_leaf.ranges.get(leaf(&f).chunks).unwrap();
        assert_eq!((r.lo[0], r.hi[0]), (host(0) as u64, host(20) as u64));
        assert_eq!(r.lo[42], host(62) as u64);
        assert_eq!(r.lo[43..], [host(63) as u64; 21]);
        for a in host(0)..=host(20) {
            assert_eq!(verdict(&f, a), Verdict::Drop, "{a:#x}");
        }
        assert_eq!(verdict(&f, host(20) + 1), Verdict::Pass);
        for k in 0..20 {
            assert!(f.allow_source(pre(host(k) + 1)).unwrap());
            assert!(f.allow_source(pre(host(k) + 2)).unwrap());
        }
        // Down to 8: one leaf, the slot number in every write of the chunk
        // leaf (slots under the ranges, then the mode), the slot freed.
        for k in (8..64).rev() {
            if k == 8 {
                let slot = leaf(&f).chunks;
                let journal = journal_of(|| assert!(f.allow_source(pre(host(k))).unwrap()));
                let writes: Vec<(u32, u64)> = chunk_leaf_writes(&journal, 0)
                    .into_iter()
                    .map(|(_, l)| (l.parts, l.chunks))
                    .collect();
                assert_eq!(writes, [(V6_RANGES, slot), (1, slot)], "{journal:?}");
            } else {
                assert!(f.allow_source(pre(host(k))).unwrap());
            }
        }
        assert_eq!(leaf(&f).parts, 1);
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 0);
        check(&f, 8, "8 in a leaf");
        assert_v6_counts(&f);
        for k in 0..8 {
            assert!(f.allow_source(pre(host(k))).unwrap());
        }
        assert!(f.allow_source(pre(far)).unwrap());
        assert_eq!(f.deny_v6_leaf.len(), 0);
        // Every slot taken: none. The slots in quarantine come back once
        // a wait of the loader's begun after their release has ended,
        // without one of `take`'s own; one released after the last wait
        // comes back only after `take` waits.
        let V6Leaves {
            ranges: slots,
            waiter,
            ..
        } = &mut f.deny_v6_leaf;
        let quarantined = slots.quarantined();
        assert!(quarantined > 0);
        wait_for_readers(waiter);
        let reuses = slots.reuses;
        let r = V6Ranges::new(&[(1, 2)]).unwrap();
        let journal = journal_of(|| {
            let mut n = 0;
            while slots.take(&r, waiter).unwrap().is_some() {
                n += 1;
            }
            assert_eq!(n as u32, ranges_for(DEFAULT_DENY_V6_ENTRIES));
        });
        assert!(journal.is_empty(), "{journal:?}");
        assert_eq!(slots.reuses, reuses + quarantined);
        slots.release(v6_ranges_name(7));
        let journal = journal_of(|| {
            assert_eq!(slots.take(&r, waiter).unwrap(), Some(v6_ranges_name(7)));
        });
        assert_eq!(journal, [Event::Wait]);
        assert_eq!(slots.reuses, reuses + quarantined + 1);
        let journal = journal_of(|| assert_eq!(slots.take(&r, waiter).unwrap(), None));
        assert!(journal.is_empty());
    }

    /// A block of more than a leaf holds whose prefixes reach more 64ths of
    /// it than there are of them (its split would take more leaves than its
    /// budget) is held as address ranges: part 0 names a slot. At every
    /// level: a prefix one bit longer than the block and eight 8 bits
    /// longer, in 64ths 32 to 39, answered by the ranges with the trie
    /// entries removed behind the loader's back. At /48, the writes: into
    /// the ranges from one leaf, from the ranges, from overflow and from
    /// the split (part 0 through overflow, its slot's name written under
    /// it, then the mode; the chunk leaves after the one wait); a changed
    /// set in a fresh slot; more than 32 (the trie before); kernel errors;
    /// out of the ranges to overflow (ranges off), the split and one leaf,
    /// each through overflow with the slot given back.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_blocks_fall_back_to_ranges() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let mask = f.cfg.v6_bucket_mask;
        let verdict = |f: &XdpFilter, a: u128| {
            let frame = v6_frame(std::net::Ipv6Addr::from(a | 1), UDP, &udp(1, 2, b""));
            f.test_run(&frame, 1).unwrap().verdict
        };
        let pre =
            |a: u128, len: u8| IpPrefix::new(std::net::Ipv6Addr::from(a).into(), len).unwrap();
        for (level, base) in LEVEL_BLOCKS {
            let l = level as u8;
            // The first address of 64th `c` of the block, and of its
            // 256ths' `j`th.
            let at = |c: u128, j: u128| base | c << (122 - level) | j << (120 - level);
            let half = pre(base, l + 1);
            let eight: Vec<IpPrefix> = (32..40).map(|c| pre(at(c, 0), l + 8)).collect();
            f.deny_source(half).unwrap();
            for p in &eight {
                f.deny_source(*p).unwrap();
            }
            let block = LeafBlock::new((base >> 64) as u64, level, mask);
            let part0 = block.get(&f.deny_v6_leaf, 0).unwrap();
            assert_eq!(part0.parts, V6_RANGES, "/{level}");
            let probes = [
                (at(0, 0), Verdict::Drop),
                (at(31, 3), Verdict::Drop),
                (at(32, 0), Verdict::Drop),
                (at(39, 0), Verdict::Drop),
                (at(32, 1), Verdict::Pass),
                (at(40, 0), Verdict::Pass),
                (at(63, 3), Verdict::Pass),
            ];
            let keys: Vec<Key<[u8; 16]>> = eight
                .iter()
                .chain([&half])
                .map(|p| match p.addr() {
                    IpAddr::V6(a) => Key::new(u32::from(p.len()), a.octets()),
                    IpAddr::V4(_) => unreachable!(),
                })
                .collect();
            for k in &keys {
                f.deny_v6.remove(k).unwrap();
            }
            for (a, want) in probes {
                assert_eq!(verdict(&f, a), want, "/{level}: {a:x}");
            }
            for k in &keys {
                f.deny_v6.insert(k, 1, 0).unwrap();
            }
            assert_v6_counts(&f);
            for p in eight.iter().chain([&half]) {
                assert!(f.allow_source(*p).unwrap());
            }
            assert_eq!(block.get(&f.deny_v6_leaf, 0), None, "/{level}");
        }
        assert_eq!(f.deny_v6_leaf.len(), 0);
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 0);

        // The /48 2001:db8::/48 (`p48`).
        let p = |k, len| p48(0, k, len);
        let block = LeafBlock::new(0x2001_0db8_0000_0000, 48, mask);
        let part0 = |f: &XdpFilter| block.get(&f.deny_v6_leaf, 0).unwrap();
        let writes = |journal: &[Event]| -> Vec<(u32, u64)> {
            journal
                .iter()
                .filter_map(|e| match *e {
                    Event::Put {
                        key,
                        chunk: None,
                        sub: None,
                        part: 0,
                        leaf: Some(l),
                    } if key == block.key => Some((l.parts, l.chunks)),
                    _ => None,
                })
                .collect()
        };
        // /56 number `k`'s verdicts, for the prefixes denied now.
        let check = |f: &XdpFilter, what: &str| {
            let set: Vec<(u128, u8)> = f.v6_set.iter().copied().collect();
            for k in (0..256).step_by(3).chain([128, 200, 255]) {
                let a = a48(0, k) | 0x77;
                let want = if set.iter().any(|&(p, len)| a & v6_mask(len) == p) {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                };
                assert_eq!(verdict(f, a), want, "{what}: /56 {k}");
            }
        };
        // The /49 and seven /56s: one leaf; an eighth /56, 40 64ths for 9:
        // into the ranges, through overflow (the bits kept), the name under
        // it, then the mode.
        f.deny_source(p(0, 49)).unwrap();
        for i in 0..7 {
            f.deny_source(p(128 + 4 * i, 56)).unwrap();
        }
        assert_eq!(block_shape(&f), (Some(1), 0, 0));
        let bits = part0(&f).chunks;
        let journal = journal_of(|| f.deny_source(p(156, 56)).unwrap());
        let name = part0(&f).chunks;
        assert_eq!(
            writes(&journal),
            [(V6_OVERFLOW, bits), (V6_OVERFLOW, name), (V6_RANGES, name)],
            "{journal:?}"
        );
        assert!(!journal.contains(&Event::Wait));
        assert_eq!(block_shape(&f), (Some(V6_RANGES), 0, 0));
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 1);
        check(&f, "nine");
        // A run that read part 0's mode before that change and its
        // `chunks` after: the name under one leaf or the split is answered
        // by the slot, not taken for 64th bits (the /49's 64ths are not
        // the name's bits); bits under the ranges (leaving them) by the
        // trie.
        let now = part0(&f);
        for parts in [1, V6_SPLIT] {
            raw_put(&mut f, &block, V6Leaf { parts, ..now });
            check(&f, "the name read under the old mode");
        }
        raw_put(
            &mut f,
            &block,
            V6Leaf {
                chunks: bits,
                ..now
            },
        );
        check(&f, "64th bits read under the ranges");
        raw_put(&mut f, &block, now);
        // Twelve more /56s: a fresh slot named under overflow; the old one
        // waits in quarantine.
        for k in 160..171 {
            f.deny_source(p(k, 56)).unwrap();
        }
        let old = part0(&f).chunks;
        let quarantined = f.deny_v6_leaf.ranges.quarantined();
        let journal = journal_of(|| f.deny_source(p(171, 56)).unwrap());
        let name = part0(&f).chunks;
        assert_ne!(name, old);
        assert_eq!(
            writes(&journal),
            [(V6_OVERFLOW, old), (V6_OVERFLOW, name), (V6_RANGES, name)]
        );
        assert_eq!(f.deny_v6_leaf.ranges.quarantined(), quarantined + 1);
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 1);
        check(&f, "21");
        // Past 32 (46 64ths for 33): still the ranges, not the trie.
        for k in 172..184 {
            f.deny_source(p(k, 56)).unwrap();
        }
        assert_eq!(block_shape(&f), (Some(V6_RANGES), 0, 0));
        assert_eq!(f.v6_set.len(), 33);
        let keys: Vec<Key<[u8; 16]>> = f
            .v6_set
            .iter()
            .map(|&(a, len)| Key::new(u32::from(len), a.to_be_bytes()))
            .collect();
        for k in &keys {
            f.deny_v6.remove(k).unwrap();
        }
        check(&f, "33, none in the trie");
        for k in &keys {
            f.deny_v6.insert(k, 1, 0).unwrap();
        }
        assert_v6_counts(&f);
        // Kernel errors: on the slot's write, on part 0's write to
        // overflow, then on its name's under it. The calls fail and every
        // verdict holds; the slots taken are those the leaves name.
        let before = part0(&f);
        crate::ranges::tests::FAIL_RANGES.with(|x| x.set(true));
        assert!(f.deny_source(p(200, 56)).is_err());
        assert_eq!(part0(&f), before);
        check(&f, "a failed slot write");
        assert_v6_counts(&f);
        let at0 = (None, None, 0);
        FAIL_PUT.with(|x| x.set(Some((at0, 0))));
        assert!(f.deny_source(p(200, 56)).is_err());
        assert_eq!(FAIL_PUT.with(|x| x.get()), None, "not failed");
        assert_eq!(part0(&f), before);
        check(&f, "a failed overflow write");
        assert_v6_counts(&f);
        FAIL_PUT.with(|x| x.set(Some((at0, 1))));
        assert!(f.deny_source(p(200, 56)).is_err());
        assert_eq!(FAIL_PUT.with(|x| x.get()), None, "not failed");
        check(&f, "a failed name write");
        assert_v6_counts(&f);
        FAIL_PUT.with(|x| x.set(Some((at0, 2))));
        assert!(f.deny_source(p(200, 56)).is_err());
        assert_eq!(FAIL_PUT.with(|x| x.get()), None, "not failed");
        check(&f, "a failed mode write");
        assert_v6_counts(&f);
        // Ranges off: out of the ranges to overflow (the slot's name kept),
        // the slot given back.
        ranges_off();
        f.deny_source(p(200, 56)).unwrap();
        assert_eq!(block_shape(&f), (Some(V6_OVERFLOW), 0, 0));
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 0);
        check(&f, "34, overflow");
        // On again: from overflow, the name under it, then the mode.
        crate::ranges::tests::NO_RANGES.with(|n| n.set(false));
        let journal = journal_of(|| assert!(f.allow_source(p(200, 56)).unwrap()));
        let name = part0(&f).chunks;
        assert_eq!(
            writes(&journal),
            [(V6_OVERFLOW, name), (V6_RANGES, name)],
            "{journal:?}"
        );
        check(&f, "33 again");
        // Without the /49, 14 64ths for 32: split. Through overflow (the
        // name kept), the chunk leaves, the bits under overflow, then the
        // split.
        let journal = journal_of(|| assert!(f.allow_source(p(0, 49)).unwrap()));
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 14));
        let bits = part0(&f).chunks;
        assert_eq!(
            writes(&journal),
            [(V6_OVERFLOW, name), (V6_OVERFLOW, bits), (V6_SPLIT, bits)],
            "{journal:?}"
        );
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 0);
        check(&f, "32, split");
        assert_v6_counts(&f);
        // The /49 again: from the split into the ranges, through overflow;
        // the chunk leaves go after the one wait.
        let journal = journal_of(|| f.deny_source(p(0, 49)).unwrap());
        let name = part0(&f).chunks;
        assert_eq!(
            writes(&journal),
            [(V6_OVERFLOW, bits), (V6_OVERFLOW, name), (V6_RANGES, name)]
        );
        let wait = the_one_wait(&journal);
        let ranged = journal
            .iter()
            .position(|e| {
                matches!(*e, Event::Put { chunk: None, part: 0, leaf: Some(l), .. }
                    if l.parts == V6_RANGES)
            })
            .unwrap();
        assert!(ranged < wait);
        for (i, e) in journal.iter().enumerate() {
            if let Event::Put {
                chunk: Some(_),
                leaf,
                ..
            } = *e
            {
                assert!(i > wait && leaf.is_none(), "{e:?}");
            }
        }
        assert_eq!(block_shape(&f), (Some(V6_RANGES), 0, 0));
        check(&f, "33, from the split");
        assert_v6_counts(&f);
        // Down to eight (the /49 and seven /56s): one leaf, through
        // overflow, the slot given back.
        let mut left: Vec<IpPrefix> = f
            .denied_sources()
            .unwrap()
            .into_iter()
            .filter(|q| q.len() == 56)
            .collect();
        while left.len() > 7 {
            let q = left.pop().unwrap();
            if left.len() == 7 {
                let name = part0(&f).chunks;
                let journal = journal_of(|| assert!(f.allow_source(q).unwrap()));
                let bits = part0(&f).chunks;
                assert_eq!(
                    writes(&journal),
                    [(V6_OVERFLOW, name), (V6_OVERFLOW, bits), (1, bits)],
                    "{journal:?}"
                );
            } else {
                assert!(f.allow_source(q).unwrap());
            }
        }
        assert!(f.allow_source(p(0, 49)).unwrap());
        assert_eq!(block_shape(&f), (Some(1), 0, 0));
        assert_eq!(f.deny_v6_leaf.ranges.in_use(), 0);
        check(&f, "eight /56s");
        assert_v6_counts(&f);
        for q in left {
            assert!(f.allow_source(q).unwrap());
        }
        assert_eq!(f.deny_v6_leaf.len(), 0);
    }

    /// A block in two parts going into the ranges, part 0's name write
    /// failing after its write to overflow: its continuation goes after a
    /// wait, before anything else is written (the call's undo rewrites the
    /// block out of overflow), so no run that read the old part 0 can read
    /// the continuation as it is rewritten.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_a_failed_write_into_the_ranges_still_waits_before_the_continuations_go() {
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let p = |k, len| p48(0, k, len);
        let block = LeafBlock::new(0x2001_0db8_0000_0000, 48, f.cfg.v6_bucket_mask);
        ranges_off();
        f.deny_source(p(0, 49)).unwrap();
        for i in 0..8 {
            f.deny_source(p(128 + 4 * i, 56)).unwrap();
        }
        assert_eq!(block_shape(&f), (Some(2), 1, 0));
        crate::ranges::tests::NO_RANGES.with(|n| n.set(false));
        FAIL_PUT.with(|x| x.set(Some(((None, None, 0), 1))));
        let journal = journal_of(|| assert!(f.deny_source(p(200, 56)).is_err()));
        assert_eq!(FAIL_PUT.with(|x| x.get()), None, "not failed");
        let at = |want: &dyn Fn(&Event) -> bool| {
            journal
                .iter()
                .position(want)
                .unwrap_or_else(|| panic!("{journal:?}"))
        };
        let overflow = at(&|e| {
            matches!(*e, Event::Put { key, chunk: None, part: 0, leaf: Some(l), .. }
                if key == block.key && l.parts == V6_OVERFLOW)
        });
        let wait = at(&|e| *e == Event::Wait);
        let removed = at(&|e| {
            matches!(*e, Event::Put { key, chunk: None, part: 1, leaf: None, .. }
                if key == block.key)
        });
        let next = journal[overflow + 1..]
            .iter()
            .position(|e| {
                matches!(*e, Event::Put { key, chunk: None, part: 0, leaf: Some(_), .. }
                    if key == block.key)
            })
            .map(|i| i + overflow + 1);
        assert!(overflow < wait && wait < removed, "{journal:?}");
        assert!(next.is_none_or(|n| removed < n), "{journal:?}");
        // The undo put the nine back, as ranges.
        assert_eq!(block_shape(&f), (Some(V6_RANGES), 0, 0));
        assert_v6_counts(&f);
        allow_all(&mut f);
    }

    /// 64th bits that carry the range slots' tag are stored with bit 31 set
    /// too, whatever the mode they are written under, so the program never
    /// takes them for the name of a slot a map has (slot 0 here, taken by
    /// another block): a /48 whose /56s reach its 64ths 32 + each bit of
    /// the tag, split, and coming out of the ranges into its split; a 64th
    /// of a /48 split in turn by /62s in its 64ths 32 + each bit of the
    /// tag, and coming out of the ranges into that split. Every verdict
    /// holds and no write carries the raw bits.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_64th_bits_never_name_a_range_slot() {
        use crate::test_frames::{udp, v6_frame, UDP};
        use rauta_xdp_common::{v6_ranges_name, V6_RANGES_TAG};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let raw = u64::from(V6_RANGES_TAG) << 32;
        let stored = raw | 1 << 31;
        // Slot 0: a /49 and eight /56s of block 1.
        f.deny_source(p48(1, 0, 49)).unwrap();
        for i in 0..8 {
            f.deny_source(p48(1, 128 + 4 * i, 56)).unwrap();
        }
        assert_eq!(block_shape_of(&f, 1).0, Some(V6_RANGES));
        assert_eq!(
            LeafBlock::new(0x2001_0db8_0001_0000, 48, f.cfg.v6_bucket_mask)
                .get(&f.deny_v6_leaf, 0)
                .unwrap()
                .chunks,
            v6_ranges_name(0)
        );
        let tag_bits: Vec<u128> = (0..32u128)
            .filter(|i| (V6_RANGES_TAG >> i) & 1 == 1)
            .collect();
        let verdicts =
            |f: &XdpFilter, addrs: &[u128], denied: &dyn Fn(u128) -> bool, what: &str| {
                for &a in addrs {
                    let frame = v6_frame((a | 1).into(), UDP, &udp(1, 2, b""));
                    let want = if denied(a) {
                        Verdict::Drop
                    } else {
                        Verdict::Pass
                    };
                    assert_eq!(
                        f.test_run(&frame, 1).unwrap().verdict,
                        want,
                        "{what}: {a:x}"
                    );
                }
            };
        let no_raw = |journal: &[Event], what: &str| {
            for e in journal {
                if let Event::Put { leaf: Some(l), .. } = *e {
                    assert_ne!(l.chunks, raw, "{what}: {journal:?}");
                }
            }
        };

        // Block 0: the /56s, and a /50 reaching 16 more 64ths: ranges
        // (slot 1); without the /50, split.
        let ks: Vec<u128> = tag_bits.iter().map(|i| 4 * (32 + i)).collect();
        let addrs: Vec<u128> = (0..256).map(|k| a48(0, k)).collect();
        for &k in &ks {
            f.deny_source(p48(0, k, 56)).unwrap();
        }
        f.deny_source(p48(0, 0, 50)).unwrap();
        assert_eq!(block_shape(&f).0, Some(V6_RANGES));
        let denied56 = |a: u128| ks.iter().any(|&k| a >> 72 == a48(0, k) >> 72);
        verdicts(
            &f,
            &addrs,
            &|a| denied56(a) || a >> 72 < a48(0, 64) >> 72,
            "ranges",
        );
        let journal = journal_of(|| assert!(f.allow_source(p48(0, 0, 50)).unwrap()));
        no_raw(&journal, "block 0 out of the ranges");
        assert_eq!(block_shape(&f).0, Some(V6_SPLIT));
        let block = LeafBlock::new(0x2001_0db8_0000_0000, 48, f.cfg.v6_bucket_mask);
        assert_eq!(block.get(&f.deny_v6_leaf, 0).unwrap().chunks, stored);
        verdicts(&f, &addrs, &denied56, "split");

        // Block 2, its 64th 0: 33 /62s in its 64ths 32 + each bit of the
        // tag (three in the first seven, two in the others): split in turn;
        // with the /54 itself denied, ranges; without it, split again.
        let sub = |s: u128, j: u128| a48(2, 0) | (32 + s) << 68 | j << 66;
        let mut p62 = Vec::new();
        for (n, &s) in tag_bits.iter().enumerate() {
            for j in 0..if n < 7 { 3 } else { 2 } {
                p62.push(sub(s, j));
            }
        }
        assert_eq!(p62.len(), 33);
        let pre =
            |a: u128, len: u8| IpPrefix::new(std::net::Ipv6Addr::from(a).into(), len).unwrap();
        for &a in &p62 {
            f.deny_source(pre(a, 62)).unwrap();
        }
        let chunk = LeafBlock::new(0x2001_0db8_0002_0000, 48, f.cfg.v6_bucket_mask).chunk(0);
        assert_eq!(chunk.get(&f.deny_v6_leaf, 0).unwrap().parts, V6_SPLIT);
        assert_eq!(chunk.get(&f.deny_v6_leaf, 0).unwrap().chunks, stored);
        let addrs: Vec<u128> = (0..256).map(|q| a48(2, 0) | q << 66).collect();
        let denied62 = |a: u128| p62.iter().any(|&p| a >> 66 == p >> 66);
        verdicts(&f, &addrs, &denied62, "split in turn");
        f.deny_source(pre(a48(2, 0), 54)).unwrap();
        assert_eq!(chunk.get(&f.deny_v6_leaf, 0).unwrap().parts, V6_RANGES);
        verdicts(&f, &addrs, &|_| true, "covered");
        let journal = journal_of(|| assert!(f.allow_source(pre(a48(2, 0), 54)).unwrap()));
        no_raw(&journal, "the 64th out of the ranges");
        assert_eq!(chunk.get(&f.deny_v6_leaf, 0).unwrap().parts, V6_SPLIT);
        assert_eq!(chunk.get(&f.deny_v6_leaf, 0).unwrap().chunks, stored);
        verdicts(&f, &addrs, &denied62, "split in turn again");

        // Block 3, ranges off: /53s and /54s making its 64ths 32 + each bit
        // of the tag (eleven prefixes, 13 64ths: no split): two parts.
        ranges_off();
        let mut p5x = Vec::new();
        let mut i = 0;
        while i < tag_bits.len() {
            let c = 32 + tag_bits[i];
            let pair = c.is_multiple_of(2) && tag_bits.get(i + 1) == Some(&(tag_bits[i] + 1));
            p5x.push(if pair { (c, 53) } else { (c, 54) });
            i += if pair { 2 } else { 1 };
        }
        assert_eq!(p5x.len(), 11);
        for &(c, len) in &p5x {
            f.deny_source(p48(3, 4 * c, len)).unwrap();
        }
        let block = LeafBlock::new(0x2001_0db8_0003_0000, 48, f.cfg.v6_bucket_mask);
        assert_eq!(block.get(&f.deny_v6_leaf, 0).unwrap().parts, 2);
        assert_eq!(block.get(&f.deny_v6_leaf, 0).unwrap().chunks, stored);
        let addrs: Vec<u128> = (0..256).map(|k| a48(3, k)).collect();
        let denied64th = |a: u128| tag_bits.iter().any(|&i| (a >> 74) & 63 == 32 + i);
        verdicts(&f, &addrs, &denied64th, "two parts");
        allow_all(&mut f);
    }

    /// A block whose prefixes all lie in one 64th, each in a 64th of that
    /// 64th of its own (forty /60s in one /54), splits that 64th in turn:
    /// its chunk leaf's slots go unused, so it counts as one of the leaves
    /// (the block takes its prefixes plus two).
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_a_64th_of_lone_prefixes_splits_in_turn() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let a60 = |j: u128| a48(9, 0) | j << 68;
        for j in 0..40 {
            let p = IpPrefix::new(std::net::Ipv6Addr::from(a60(j)).into(), 60).unwrap();
            f.deny_source(p).unwrap();
        }
        assert_eq!(block_shape_of(&f, 9), (Some(V6_SPLIT), 0, 1));
        assert_eq!(chunk_shape(&f, 9, 0), (Some(V6_SPLIT), 0));
        assert_eq!(f.deny_v6_leaf.len(), 42);
        for j in 0..64 {
            let frame = v6_frame(std::net::Ipv6Addr::from(a60(j) | 5), UDP, &udp(1, 2, b""));
            let want = if j < 40 { Verdict::Drop } else { Verdict::Pass };
            assert_eq!(f.test_run(&frame, 1).unwrap().verdict, want, "/60 {j}");
        }
        allow_all(&mut f);
    }

    /// Past `V6_LEAF_PREFIXES` prefixes a block is split by chunk (a leaf
    /// for each 64th a prefix reaches, no continuations) while it reaches
    /// no more 64ths than it has prefixes, and comes back to one leaf (the
    /// chunk leaves gone); otherwise it keeps parts, up to `BLOCK_SLOTS`,
    /// and past that the trie answers.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_blocks_split_by_chunk_and_come_back() {
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        // Parts and the trie where the split does not fit, not the ranges
        // (as when no slot is free).
        ranges_off();
        let p = |k, len| p48(0, k, len);
        for k in 0..V6_LEAF_PREFIXES as u128 {
            f.deny_source(p(k, 56)).unwrap();
        }
        assert_eq!(block_shape(&f), (Some(1), 0, 0));
        f.deny_source(p(8, 56)).unwrap();
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 3));
        f.deny_source(p(255, 56)).unwrap();
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 4));
        assert!(f.allow_source(p(255, 56)).unwrap());
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 3));
        assert!(f.allow_source(p(0, 56)).unwrap());
        assert_eq!(block_shape(&f), (Some(1), 0, 0));
        for k in 1..=8 {
            assert!(f.allow_source(p(k, 56)).unwrap());
        }
        assert_eq!(block_shape(&f), (None, 0, 0));
        // A /49 reaching 32 64ths and /56s in 8 more: 40 64ths for 9
        // prefixes, so parts; 12 more /56s in 3 more 64ths: 43 for 21, three
        // parts; 12 more in 3 more: 46 for 33, the trie; without the /49, 14
        // for 32: split.
        f.deny_source(p(0, 49)).unwrap();
        for i in 0..8 {
            f.deny_source(p(128 + 4 * i, 56)).unwrap();
        }
        assert_eq!(block_shape(&f), (Some(2), 1, 0));
        for k in 160..172 {
            f.deny_source(p(k, 56)).unwrap();
        }
        assert_eq!(block_shape(&f), (Some(3), 2, 0));
        for k in 172..184 {
            f.deny_source(p(k, 56)).unwrap();
        }
        assert_eq!(block_shape(&f), (Some(V6_OVERFLOW), 0, 0));
        // Out of overflow to parts: part 0's slots are written under
        // overflow with the bits it will have, those of a /56 denied during
        // the overflow too (64th 50), so a run that reads the new mode with
        // the bits of that write still finds it.
        f.deny_source(p(200, 56)).unwrap();
        assert!(f.allow_source(p(172, 56)).unwrap());
        assert_eq!(block_shape(&f).0, Some(V6_OVERFLOW));
        let journal = journal_of(|| assert!(f.allow_source(p(173, 56)).unwrap()));
        assert_eq!(block_shape(&f), (Some(4), 3, 0));
        let block = LeafBlock::new(0x2001_0db8_0000_0000, 48, f.cfg.v6_bucket_mask);
        let bits = block.get(&f.deny_v6_leaf, 0).unwrap().chunks;
        assert_eq!((bits >> 50) & 1, 1);
        for e in &journal {
            if let Event::Put {
                chunk: None,
                part: 0,
                leaf: Some(l),
                ..
            } = *e
            {
                assert_eq!(l.chunks, bits, "{e:?}");
            }
        }
        assert!(f.allow_source(p(0, 49)).unwrap());
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 15));
    }

    /// One BPF_PROG_TEST_RUN of `frame` through the program `fd`: its
    /// return code. (`XdpFilter::test_run` borrows the filter, which another
    /// thread is changing.)
    #[cfg(feature = "ebpf")]
    fn raw_test_run(fd: std::os::fd::BorrowedFd<'_>, frame: &[u8]) -> u32 {
        use std::os::fd::AsRawFd;
        /// `bpf_attr` for BPF_PROG_TEST_RUN, up to `batch_size`.
        #[repr(C)]
        #[derive(Default)]
        struct Attr {
            prog_fd: u32,
            retval: u32,
            data_size_in: u32,
            data_size_out: u32,
            data_in: u64,
            data_out: u64,
            repeat: u32,
            duration: u32,
            ctx_size_in: u32,
            ctx_size_out: u32,
            ctx_in: u64,
            ctx_out: u64,
            flags: u32,
            cpu: u32,
            batch_size: u32,
            pad: u32,
        }
        const BPF_PROG_TEST_RUN: libc::c_long = 10;
        let mut out = [0u8; 256];
        let mut attr = Attr {
            prog_fd: fd.as_raw_fd() as u32,
            data_size_in: frame.len() as u32,
            data_size_out: out.len() as u32,
            data_in: frame.as_ptr() as u64,
            data_out: out.as_mut_ptr() as u64,
            repeat: 1,
            ..Attr::default()
        };
        // SAFETY: `attr` has the kernel's layout for this command (unused
        // fields zero); its pointers refer to `frame` and `out`, which
        // outlive the call, with their lengths.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_TEST_RUN,
                &mut attr as *mut Attr,
                std::mem::size_of::<Attr>(),
            )
        };
        assert_eq!(
            r,
            0,
            "BPF_PROG_TEST_RUN: {}",
            std::io::Error::last_os_error()
        );
        attr.retval
    }

    /// Deny-list changes while the program runs on the other CPU: a source
    /// in a prefix that stays denied is dropped by every run, and a source
    /// no prefix ever covers is passed by every run, whatever the changes
    /// around them (IPv6 blocks going through one leaf, parts, the split,
    /// ranges, overflow and back, two crowded chunks through one leaf,
    /// continuations, their own split, ranges and overflow (ranges off for
    /// two thirds of the changes; 64 range slots, used up and taken again
    /// after waits);
    /// /16 blocks covered and uncovered; the short-prefix
    /// bit set and cleared in every filter entry; IPv4 /24 states and
    /// bitmaps). A fixed sequence of 3,000 changes, the second half without
    /// the denied /29 (so that drains of the pool leave no prefix shorter
    /// than /32 and the short-prefix bit goes); the runs go on until it ends
    /// (at most 20 million).
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_concurrent_changes_keep_the_verdicts() {
        use crate::test_frames::{udp, v4_frame, v6_frame, UDP};
        use std::os::fd::AsFd;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        // 4,096 prefixes of capacity and 64 range slots, so that changes of
        // chunks held as ranges use them up and reuse released ones.
        let mut f = XdpFilter::builder()
            .deny_v6_capacity(4_096)
            .deny_v6_range_slots(64)
            .load()
            .expect("load the XDP program (as root)");
        let fd = f
            .program(PROGRAM_NAME)
            .unwrap()
            .fd()
            .unwrap()
            .try_clone()
            .unwrap();
        let pre = |s: &str| s.parse::<IpPrefix>().unwrap();
        // Stay denied throughout.
        let mut permanent: Vec<IpPrefix> = [
            "2001:db8:1::/48",
            "2001:db8:c:f000::/56",
            "2001:db8:c:cbf0::/60",
            "2001:db8:c:d3fc::/62",
            "2401:8000::/29",
            "198.18.7.0/24",
            "198.18.8.8/32",
        ]
        .iter()
        .map(|s| pre(s))
        .collect();
        for &p in &permanent {
            f.deny_source(p).unwrap();
        }
        // Changed at random, with a drain of the pool now and then.
        let mut pool: Vec<IpPrefix> = [
            "2400::/12",
            "2401::/16",
            "2401:1000::/20",
            "2401:1800::/21",
            "2401:2000::/24",
            "2401:8000::/17",
            "2c00::/8",
            "2001:db8:c::/49",
            "2001:db8:c:8000::/50",
            "198.18.8.0/25",
            "198.18.8.128/26",
            "198.18.0.0/16",
        ]
        .iter()
        .map(|s| pre(s))
        .collect();
        for i in 0..24u32 {
            pool.push(pre(&format!("2401:{:x}::/29", i << 10)));
        }
        // More than a leaf holds in one 64th of the /16 block.
        for i in 0..12u32 {
            pool.push(pre(&format!("2401:{:x}::/31", 0x400 + 2 * i)));
        }
        // A /48 block through one leaf, the split, parts, ranges and
        // overflow.
        for i in 0..40u32 {
            pool.push(pre(&format!("2001:db8:c:{:x}00::/56", 4 * i + 1)));
        }
        for i in 0..10u32 {
            pool.push(pre(&format!("2001:db8:c:30{i:x}0::/60")));
        }
        // A 64th of that /48 outside the /49 and /50 (c:c800::/54) crowded
        // through one leaf, continuations, its own split (each /60 a 64th
        // of it), ranges and overflow (past 32 with the permanent /60 at
        // its top, as the block's budget allows), filled whole now and
        // then.
        let crowded = pool.len()..pool.len() + 40;
        for i in 0..40u32 {
            pool.push(pre(&format!("2001:db8:c:{:x}::/60", 0xc800 + 0x10 * i)));
        }
        // Another 64th (c:d000::/54) crowded through one leaf,
        // continuations, its own split (its /60s hold four /62s each:
        // past 32 with the permanent /62 in its last /60), ranges and
        // overflow, filled whole now and then.
        let split = pool.len()..pool.len() + 40;
        for i in 0..40u32 {
            pool.push(pre(&format!(
                "2001:db8:c:{:x}::/62",
                0xd000 + 0x10 * (i / 4) + 4 * (i % 4)
            )));
        }
        // The /29's probes come first: they are checked in the first half.
        let probes: Vec<(Vec<u8>, Verdict, &str)> = [
            ("2401:8000::1", Verdict::Drop),
            ("2401:8007:ffff::1", Verdict::Drop),
            ("2001:db8:1::5", Verdict::Drop),
            ("2001:db8:c:f0ff::1", Verdict::Drop),
            ("2001:db8:c:cbf5::1", Verdict::Drop),
            ("2001:db8:c:cbe5::1", Verdict::Pass),
            ("2001:db8:c:d3fd::1", Verdict::Drop),
            ("2001:db8:c:d3f5::1", Verdict::Pass),
            ("2001:db8:c:d205::1", Verdict::Pass),
            ("2410::1", Verdict::Pass),
            ("2001:db8:2::1", Verdict::Pass),
            ("2001:db8:c:ff00::1", Verdict::Pass),
            ("2a00::1", Verdict::Pass),
            ("23ff:ffff::1", Verdict::Pass),
        ]
        .iter()
        .map(|&(a, v)| (v6_frame(a.parse().unwrap(), UDP, &udp(1, 2, b"")), v, a))
        .chain(
            [
                ("198.18.7.9", Verdict::Drop),
                ("198.18.8.8", Verdict::Drop),
                ("198.19.8.8", Verdict::Pass),
                ("198.17.255.255", Verdict::Pass),
            ]
            .iter()
            .map(|&(a, v)| (v4_frame(a.parse().unwrap(), UDP, &udp(1, 2, b"")), v, a)),
        )
        .collect();
        let stop = AtomicBool::new(false);
        let with_29 = AtomicBool::new(true);
        // Set by the checker once a pass no longer checks the /29's probes
        // (or once it has stopped).
        let without_29_seen = AtomicBool::new(false);
        let runs = AtomicU64::new(0);
        let wrong = std::thread::scope(|scope| {
            let checker = scope.spawn(|| {
                let mut wrong = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 20_000_000 {
                    let skip = if with_29.load(Ordering::SeqCst) {
                        0
                    } else {
                        without_29_seen.store(true, Ordering::SeqCst);
                        2
                    };
                    for (frame, want, src) in &probes[skip..] {
                        let got = Verdict::from_code(raw_test_run(fd.as_fd(), frame));
                        n += 1;
                        if got != *want && wrong.len() < 10 {
                            wrong.push(format!("{src}: {got:?}, not {want:?}"));
                        }
                    }
                }
                runs.store(n, Ordering::Relaxed);
                without_29_seen.store(true, Ordering::SeqCst);
                wrong
            });
            let mut next = crate::test_frames::xorshift64(0x2545_f491_4f6c_dd1d);
            let mut on = vec![false; pool.len()];
            // The modes the chunk leaves of c:c800::/54 and c:d000::/54
            // went through (the fixed sequence takes each through all).
            let block = LeafBlock::new(0x2001_0db8_000c_0000, 48, f.cfg.v6_bucket_mask);
            let crowded_chunks = [block.chunk(50), block.chunk(52)];
            let mut modes = [(); 2].map(|_| std::collections::BTreeSet::new());
            // And those of the block's part 0.
            let mut block_modes = std::collections::BTreeSet::new();
            for step in 0..3_000 {
                // Two thirds of the steps without the ranges (continuations,
                // the split and the trie), then with them.
                if step == 0 || step == 2_000 {
                    crate::ranges::tests::NO_RANGES.with(|n| n.set(step == 0));
                }
                for (chunk, modes) in crowded_chunks.iter().zip(&mut modes) {
                    if let Some(l) = chunk.get(&f.deny_v6_leaf, 0) {
                        modes.insert(l.parts);
                    }
                }
                if let Some(l) = block.get(&f.deny_v6_leaf, 0) {
                    block_modes.insert(l.parts);
                }
                for i in split.clone().filter(|_| step % 500 == 100) {
                    if !on[i] {
                        f.deny_source(pool[i]).unwrap();
                        on[i] = true;
                    }
                }
                if step % 500 == 250 {
                    for i in crowded.clone() {
                        if !on[i] {
                            f.deny_source(pool[i]).unwrap();
                            on[i] = true;
                        }
                    }
                }
                if step == 1_500 {
                    // The /29 goes once the checker has stopped checking it.
                    with_29.store(false, Ordering::SeqCst);
                    while !without_29_seen.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    assert!(f.allow_source(pre("2401:8000::/29")).unwrap());
                    permanent.retain(|p| *p != pre("2401:8000::/29"));
                }
                let r = next();
                if r.is_multiple_of(64) {
                    // The drain: one by one, or in one batch.
                    if r.is_multiple_of(128) {
                        let denied: Vec<IpPrefix> = (0..pool.len())
                            .filter(|&i| on[i])
                            .map(|i| pool[i])
                            .collect();
                        assert_eq!(
                            f.allow_sources(denied.iter().copied()).unwrap(),
                            denied.len()
                        );
                        on.iter_mut().for_each(|o| *o = false);
                    }
                    for (p, on) in pool.iter().zip(on.iter_mut()) {
                        if *on {
                            assert!(f.allow_source(*p).unwrap());
                            *on = false;
                        }
                    }
                    continue;
                }
                if r % 16 == 1 {
                    // A batch: a random eighth of the pool toggled, or the
                    // whole list replaced (the permanent prefixes in it).
                    let pick: Vec<usize> = (0..pool.len())
                        .filter(|_| next().is_multiple_of(8))
                        .collect();
                    if r % 32 == 1 {
                        let (deny, allow): (Vec<usize>, Vec<usize>) =
                            pick.iter().partition(|&&i| !on[i]);
                        f.deny_sources(deny.iter().map(|&i| pool[i])).unwrap();
                        f.allow_sources(allow.iter().map(|&i| pool[i])).unwrap();
                        pick.iter().for_each(|&i| on[i] = !on[i]);
                    } else {
                        let keep = permanent.iter().copied();
                        f.replace_denied_sources(keep.chain(pick.iter().map(|&i| pool[i])))
                            .unwrap();
                        on.iter_mut().for_each(|o| *o = false);
                        pick.iter().for_each(|&i| on[i] = true);
                    }
                    continue;
                }
                let i = (r >> 8) as usize % pool.len();
                if on[i] {
                    assert!(f.allow_source(pool[i]).unwrap());
                } else {
                    f.deny_source(pool[i]).unwrap();
                }
                on[i] = !on[i];
            }
            stop.store(true, Ordering::Relaxed);
            // Released slots were taken again while the program ran.
            assert!(
                f.deny_v6_leaf.ranges.reuses >= 2,
                "{}",
                f.deny_v6_leaf.ranges.reuses
            );
            for mode in [2, V6_MAX_PARTS, V6_SPLIT, V6_RANGES, V6_OVERFLOW] {
                assert!(
                    modes.iter().all(|m| m.contains(&mode)),
                    "{mode} not in {modes:?}"
                );
            }
            for mode in [1, 2, V6_MAX_PARTS, V6_SPLIT, V6_RANGES, V6_OVERFLOW] {
                assert!(block_modes.contains(&mode), "{mode} not in {block_modes:?}");
            }
            checker.join().unwrap()
        });
        let runs = runs.load(Ordering::Relaxed);
        assert!(runs > 0);
        assert!(wrong.is_empty(), "after {runs} runs: {wrong:?}");
        assert_v6_counts(&f);
        for p in f.denied_sources().unwrap() {
            assert!(f.allow_source(p).unwrap());
        }
        assert_v6_counts(&f);
        assert!(f.v6_bit_users.is_empty() && f.v6_fine_users.is_empty());
        assert!(f.v6_words.iter().all(|&w| w == [0; 8]));
        assert_eq!(f.deny_v6_leaf.len(), 0);
    }

    /// Batches (`deny_sources`, `allow_sources`, `replace_denied_sources`)
    /// of random subsets of a pool that takes blocks through every shape
    /// in one step (empty to split, ranges to parts, overflow to one leaf,
    /// ...): after each, every probe (each pool prefix's first, middle and
    /// last address and the one past it) gets the verdict the set says,
    /// and the mirrors, counts and slots are in line. A third of the
    /// batches run with the range slots off. Emptying the blocks in one
    /// batch waits for no program run. A failed write leaves the set and
    /// the verdicts as before.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_batches_keep_the_maps_in_line_with_the_set() {
        use crate::test_frames::{udp, v4_frame, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let pre = |s: String| s.parse::<IpPrefix>().unwrap();
        let mut pool: Vec<IpPrefix> = [
            "2400::/12",
            "2401::/16",
            "2401:1000::/20",
            "2401:8000::/17",
            "2001:db8:c::/49",
            "2001:db8:c:8000::/50",
            "2001:db8:c::/48",
            "198.18.8.0/25",
            "198.18.8.128/26",
            "198.18.0.0/16",
            "198.18.9.7/32",
        ]
        .iter()
        .map(|s| pre(s.to_string()))
        .collect();
        for i in 0..24u32 {
            pool.push(pre(format!("2401:{:x}::/29", i << 10)));
        }
        for i in 0..40u32 {
            pool.push(pre(format!("2001:db8:c:{:x}00::/56", 4 * i + 1)));
            pool.push(pre(format!("2001:db8:c:{:x}::/60", 0xc800 + 0x10 * i)));
            pool.push(pre(format!(
                "2001:db8:c:{:x}::/62",
                0xd000 + 0x10 * (i / 4) + 4 * (i % 4)
            )));
            pool.push(pre(format!("2001:db8:f:1::{:x}/128", 3 * i + 1)));
        }
        for i in 0..70u32 {
            pool.push(pre(format!("2001:db8:e:2::{:x}/128", 3 * i + 1)));
        }
        let frame = |a: IpAddr| match a {
            IpAddr::V4(a) => v4_frame(a, UDP, &udp(1, 2, b"")),
            IpAddr::V6(a) => v6_frame(a, UDP, &udp(1, 2, b"")),
        };
        let mut probes: Vec<IpAddr> = Vec::new();
        for p in &pool {
            match p.addr() {
                IpAddr::V4(a) => {
                    let lo = u32::from(a);
                    let hi = lo | u32::MAX.checked_shr(u32::from(p.len())).unwrap_or(0);
                    for x in [lo, lo + (hi - lo) / 2, hi, hi.wrapping_add(1)] {
                        probes.push(Ipv4Addr::from(x).into());
                    }
                }
                IpAddr::V6(a) => {
                    let lo = u128::from(a);
                    let hi = lo | u128::MAX.checked_shr(u32::from(p.len())).unwrap_or(0);
                    for x in [lo, lo + (hi - lo) / 2, hi, hi.wrapping_add(1)] {
                        probes.push(Ipv6Addr::from(x).into());
                    }
                }
            }
        }
        let probes: Vec<(IpAddr, Vec<u8>)> = probes.into_iter().map(|a| (a, frame(a))).collect();
        let check = |f: &XdpFilter, label: &str| {
            let set = f.denied_sources().unwrap();
            for (a, frame) in &probes {
                let want = if set.iter().any(|p| p.contains(*a)) {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                };
                let got = f.test_run(frame, 1).unwrap().verdict;
                assert_eq!(got, want, "{label}: {a}");
            }
            assert_v6_counts(f);
        };
        let mut next = crate::test_frames::xorshift64(0x9e37_79b9_7f4a_7c15);
        let mut on = vec![false; pool.len()];
        // The modes (0: no leaf) the /48 block, its crowded 64ths and the
        // /16 block went through.
        let block = LeafBlock::new(0x2001_0db8_000c_0000, 48, f.cfg.v6_bucket_mask);
        let places = [
            block,
            block.chunk(50),
            block.chunk(52),
            LeafBlock::new(0x2401_0000_0000_0000, 16, f.cfg.v6_bucket_mask),
            LeafBlock::new(0x2001_0db8_000e_0002, 64, f.cfg.v6_bucket_mask),
        ];
        let mut shapes = [(); 5].map(|_| BTreeSet::new());
        for round in 0..45 {
            crate::ranges::tests::NO_RANGES.with(|n| n.set(round % 3 == 2));
            // From one in two of the pool to one in twelve.
            let odds = [2, 3, 6, 12][(round / 4) % 4];
            let pick: Vec<usize> = (0..pool.len())
                .filter(|_| next().is_multiple_of(odds))
                .collect();
            let label = format!("round {round}");
            match round % 4 {
                0 | 1 => {
                    f.deny_sources(pick.iter().map(|&i| pool[i])).unwrap();
                    pick.iter().for_each(|&i| on[i] = true);
                }
                2 => {
                    let was = pick.iter().filter(|&&i| on[i]).count();
                    let n = f.allow_sources(pick.iter().map(|&i| pool[i])).unwrap();
                    assert_eq!(n, was, "{label}");
                    pick.iter().for_each(|&i| on[i] = false);
                }
                _ => {
                    f.replace_denied_sources(pick.iter().map(|&i| pool[i]))
                        .unwrap();
                    on.iter_mut().for_each(|o| *o = false);
                    pick.iter().for_each(|&i| on[i] = true);
                }
            }
            let want: Vec<IpPrefix> = (0..pool.len())
                .filter(|&i| on[i])
                .map(|i| pool[i])
                .collect();
            let mut have = f.denied_sources().unwrap();
            have.sort_by_key(|p| (p.addr(), p.len()));
            let mut want = want;
            want.sort_by_key(|p| (p.addr(), p.len()));
            assert_eq!(have, want, "{label}");
            check(&f, &label);
            for (modes, leaf) in shapes
                .iter_mut()
                .zip(places.iter().map(|b| b.get(&f.deny_v6_leaf, 0)))
            {
                modes.insert(leaf.map_or(0, |l| l.parts));
            }
        }
        // (The seeded picks take them through all of these.)
        let went = |i: usize, modes: &[u32]| {
            for m in modes {
                assert!(shapes[i].contains(m), "{i}: {m} not in {:?}", shapes[i]);
            }
        };
        went(0, &[1, V6_MAX_PARTS, V6_SPLIT, V6_RANGES, V6_OVERFLOW]);
        for i in [1, 2] {
            went(
                i,
                &[0, 1, 2, V6_MAX_PARTS, V6_SPLIT, V6_RANGES, V6_OVERFLOW],
            );
        }
        went(3, &[1, 2, V6_SPLIT, V6_RANGES]);
        went(4, &[1, V6_SPLIT]);
        crate::ranges::tests::NO_RANGES.with(|n| n.set(false));
        // Every pool prefix denied at once, then allowed at once: each
        // block goes from its full shape to nothing with no wait.
        f.deny_sources(pool.iter().copied()).unwrap();
        check(&f, "all");
        let journal = journal_of(|| {
            assert_eq!(f.allow_sources(pool.iter().copied()).unwrap(), pool.len());
        });
        assert!(!journal.contains(&Event::Wait), "{journal:?}");
        check(&f, "none");
        assert_eq!(f.deny_v6_leaf.len(), 0);
        assert!(f.v6_bit_users.is_empty() && f.v6_fine_users.is_empty());
        // A write that fails half-way: the set and the verdicts as before.
        let half: Vec<IpPrefix> = pool.iter().copied().step_by(2).collect();
        f.deny_sources(half.iter().copied()).unwrap();
        // (The first write of the chunk leaf of c:c800::/54.)
        tests::FAIL_PUT.with(|x| x.set(Some(((Some(50), None, 0), 0))));
        let e = f.replace_denied_sources(pool.iter().copied()).unwrap_err();
        tests::FAIL_PUT.with(|x| x.set(None));
        assert!(matches!(e.kind(), ErrorKind::Kernel { .. }), "{e}");
        let mut have = f.denied_sources().unwrap();
        have.sort_by_key(|p| (p.addr(), p.len()));
        let mut want = half.clone();
        want.sort_by_key(|p| (p.addr(), p.len()));
        assert_eq!(have, want);
        check(&f, "after a failed batch");
        // Past the capacity: refused before any write.
        let mut small = XdpFilter::builder()
            .deny_v6_capacity(16)
            .load()
            .expect("load the XDP program (as root)");
        let many: Vec<IpPrefix> = (0..17u32)
            .map(|i| pre(format!("2001:db8:{i:x}::/48")))
            .collect();
        let e = small.deny_sources(many).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::MapFull { .. }), "{e}");
        assert!(small.denied_sources().unwrap().is_empty());
    }

    /// A batch that removes some prefixes of a block and adds others never
    /// gives a removed prefix's leaf slot to an added one in the same write
    /// (a run reading the slot as it is written could pair one's address
    /// with the other's mask and drop sources neither covers): every slot
    /// of every leaf write goes from a prefix to itself, from a prefix to
    /// unused or from unused to a prefix. For a block in one leaf and one
    /// in parts (ranges off), by `replace_denied_sources`. And a replace
    /// at the capacity, removing some and adding as many, fits (the
    /// removals go first, also out of the trie).
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_batches_never_swap_prefixes_in_one_slot() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::builder()
            .deny_v6_capacity(48)
            .load()
            .expect("load the XDP program (as root)");
        ranges_off();
        let pre = |s: String| s.parse::<IpPrefix>().unwrap();
        // One leaf: 8 /56s of 2001:db8:a::/48. Parts: a /49, a /50 and
        // 20 /56s of 2001:db8:b::/48 (they reach more 64ths than there are
        // of them: no split; no ranges).
        let one: Vec<IpPrefix> = (0..8)
            .map(|i| pre(format!("2001:db8:a:{:x}00::/56", 2 * i)))
            .collect();
        let mut parts = vec![
            pre("2001:db8:b::/49".into()),
            pre("2001:db8:b:8000::/50".into()),
        ];
        parts.extend((0..20).map(|i| pre(format!("2001:db8:b:{:x}00::/56", 0xc0 + i))));
        let mut before: Vec<IpPrefix> = one.iter().chain(&parts).copied().collect();
        f.deny_sources(before.iter().copied()).unwrap();
        let blocks = [0x2001_0db8_000a_0000u64, 0x2001_0db8_000b_0000]
            .map(|top| LeafBlock::new(top, 48, f.cfg.v6_bucket_mask));
        assert_eq!(blocks[0].get(&f.deny_v6_leaf, 0).unwrap().parts, 1);
        assert_eq!(blocks[1].get(&f.deny_v6_leaf, 0).unwrap().parts, 3);
        for round in 0..6u32 {
            // Half of each block's prefixes out, as many new ones in.
            let mut after: Vec<IpPrefix> = before
                .iter()
                .enumerate()
                .filter(|&(i, _)| (i as u32 + round).is_multiple_of(2))
                .map(|(_, p)| *p)
                .collect();
            let fresh = |block: &str, i: u32| {
                pre(format!(
                    "2001:db8:{block}:{:x}00::/56",
                    (0x40 * round + i + 1) & 0xff
                ))
            };
            after.extend((0..4).map(|i| fresh("a", 2 * i)));
            after.extend((0..10).map(|i| fresh("b", 0x80 + i)));
            // What every place of the two blocks holds before the change.
            let mut last: std::collections::HashMap<(u64, Option<u32>, Option<u32>, u32), V6Leaf> =
                std::collections::HashMap::new();
            for b in &blocks {
                for part in 0..V6_MAX_PARTS {
                    if let Some(l) = b.get(&f.deny_v6_leaf, part) {
                        last.insert((b.key, None, None, part), l);
                    }
                }
            }
            let journal = journal_of(|| f.replace_denied_sources(after.iter().copied()).unwrap());
            for e in &journal {
                let Event::Put {
                    key,
                    chunk,
                    sub,
                    part,
                    leaf,
                } = *e
                else {
                    continue;
                };
                let place = (key, chunk, sub, part);
                if let (Some(old), Some(new)) = (last.get(&place), leaf) {
                    for (o, n) in old.prefixes.iter().zip(&new.prefixes) {
                        assert!(
                            o == n || *o == V6Prefix::UNUSED || *n == V6Prefix::UNUSED,
                            "round {round}: {place:?} slot {o:?} -> {n:?}"
                        );
                    }
                }
                match leaf {
                    Some(l) => last.insert(place, l),
                    None => last.remove(&place),
                };
            }
            for p in &after {
                let IpAddr::V6(a) = p.addr() else {
                    unreachable!()
                };
                let frame = v6_frame(a, UDP, &udp(1, 2, b""));
                assert_eq!(
                    f.test_run(&frame, 1).unwrap().verdict,
                    Verdict::Drop,
                    "round {round}: {p}"
                );
            }
            assert_v6_counts(&f);
            before = after;
        }
        // At the capacity (48): all out but 8, 40 new in.
        let full: Vec<IpPrefix> = (0..48)
            .map(|i| pre(format!("2001:db8:{i:x}::/48")))
            .collect();
        f.replace_denied_sources(full.iter().copied()).unwrap();
        let next: Vec<IpPrefix> = full[..8]
            .iter()
            .copied()
            .chain((0..40).map(|i| pre(format!("2001:db9:{i:x}::/48"))))
            .collect();
        f.replace_denied_sources(next.iter().copied()).unwrap();
        assert_eq!(f.denied_sources().unwrap().len(), 48);
        assert_v6_counts(&f);
        crate::ranges::tests::NO_RANGES.with(|n| n.set(false));
    }

    /// A list call that shrinks many blocks waits for the program's runs
    /// once, after every block is written, however many blocks give up
    /// leaves: split blocks going back to one leaf or to address ranges
    /// (their chunk leaves and continuations go), and blocks in parts
    /// compacted into fewer (ranges off). No leaf goes before the wait, and
    /// the verdicts and counts agree with the set after it. One by one,
    /// each of those blocks waits on its own (the same changes, undone and
    /// made again prefix by prefix).
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_a_list_call_waits_once_for_all_its_blocks() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let pre = |s: String| s.parse::<IpPrefix>().unwrap();
        let bucket_mask = f.cfg.v6_bucket_mask;
        let block = |top: u32| {
            LeafBlock::new(
                0x2001_0db8_0000_0000 | u64::from(top) << 16,
                48,
                bucket_mask,
            )
        };
        // (prefixes that stay, prefixes that go, the block) of each shape.
        let mut shapes: Vec<(Vec<IpPrefix>, Vec<IpPrefix>, LeafBlock)> = Vec::new();
        // Split, to one leaf: 12 /56s in three 64ths, 4 go.
        for b in 0..6u32 {
            let top = 0x100 + b;
            let all: Vec<IpPrefix> = (0..12)
                .map(|i| pre(format!("2001:db8:{top:x}:{i:x}00::/56")))
                .collect();
            shapes.push((all[..8].to_vec(), all[8..].to_vec(), block(top)));
        }
        // Split, to ranges: a /50 (sixteen 64ths), 10 /56s in it and 10
        // after it (three 64ths more); those 10 go (11 prefixes reaching
        // 16 64ths: no split).
        for b in 0..6u32 {
            let top = 0x200 + b;
            let mut stay = vec![pre(format!("2001:db8:{top:x}::/50"))];
            stay.extend((0..10).map(|i| pre(format!("2001:db8:{top:x}:{i:x}00::/56"))));
            let gone = (0..10)
                .map(|i| pre(format!("2001:db8:{top:x}:{:x}00::/56", 0x40 + i)))
                .collect();
            shapes.push((stay, gone, block(top)));
        }
        let all = |shapes: &[(Vec<IpPrefix>, Vec<IpPrefix>, LeafBlock)]| -> Vec<IpPrefix> {
            shapes
                .iter()
                .flat_map(|(s, g, _)| s.iter().chain(g))
                .copied()
                .collect()
        };
        let going = |shapes: &[(Vec<IpPrefix>, Vec<IpPrefix>, LeafBlock)]| -> Vec<IpPrefix> {
            shapes.iter().flat_map(|(_, g, _)| g).copied().collect()
        };
        let mode = |f: &XdpFilter, b: &LeafBlock| b.get(&f.deny_v6_leaf, 0).map(|l| l.parts);
        let check =
            |f: &XdpFilter, shapes: &[(Vec<IpPrefix>, Vec<IpPrefix>, LeafBlock)], label: &str| {
                for (stay, gone, _) in shapes {
                    for (p, want) in stay
                        .iter()
                        .map(|p| (p, Verdict::Drop))
                        .chain(gone.iter().map(|p| (p, Verdict::Pass)))
                    {
                        let IpAddr::V6(a) = p.addr() else {
                            unreachable!()
                        };
                        // Its last address (a /56 at the start of the /50
                        // shares its first).
                        let last = Ipv6Addr::from(u128::from(a) | (u128::MAX >> p.len()));
                        let got = f
                            .test_run(&v6_frame(last, UDP, &udp(1, 2, b"")), 1)
                            .unwrap();
                        let want = if stay_covers(shapes, last) {
                            Verdict::Drop
                        } else {
                            want
                        };
                        assert_eq!(got.verdict, want, "{label}: {p}");
                    }
                }
                assert_v6_counts(f);
            };
        fn stay_covers(shapes: &[(Vec<IpPrefix>, Vec<IpPrefix>, LeafBlock)], a: Ipv6Addr) -> bool {
            shapes
                .iter()
                .flat_map(|(s, _, _)| s)
                .any(|p| p.contains(IpAddr::V6(a)))
        }
        f.deny_sources(all(&shapes)).unwrap();
        for (_, _, b) in &shapes {
            assert_eq!(mode(&f, b), Some(V6_SPLIT));
        }
        // The list call: one wait, every leaf removal after it.
        let allow = |f: &mut XdpFilter, shapes: &[(Vec<IpPrefix>, Vec<IpPrefix>, LeafBlock)]| {
            let journal = journal_of(|| {
                let n = f.allow_sources(going(shapes)).unwrap();
                assert_eq!(n, going(shapes).len());
            });
            let wait = the_one_wait(&journal);
            for (i, e) in journal.iter().enumerate() {
                if let Event::Put { leaf: None, .. } = e {
                    assert!(i > wait, "a leaf removed before the wait: {e:?}");
                }
            }
            // Every block's part 0 is written before the wait (none waits
            // on its own, then leaves the others' removals unguarded; a
            // compaction writes it again after).
            for (_, _, b) in shapes {
                let first = journal.iter().position(|e| {
                    matches!(e, Event::Put { key, chunk: None, sub: None, part: 0, leaf: Some(_) } if *key == b.key)
                });
                assert!(
                    first.is_some_and(|i| i < wait),
                    "block {:x} after the wait: {journal:?}",
                    b.key
                );
            }
            journal
        };
        allow(&mut f, &shapes);
        for (i, (_, _, b)) in shapes.iter().enumerate() {
            let want = if i < 6 { 1 } else { V6_RANGES };
            assert_eq!(mode(&f, b), Some(want), "block {i}");
            assert!(!b.has_more_than_part_0(&f.deny_v6_leaf), "block {i}");
        }
        check(&f, &shapes, "after the list call");
        // One by one: a wait for each block.
        f.deny_sources(going(&shapes)).unwrap();
        let journal = journal_of(|| {
            for p in going(&shapes) {
                assert!(f.allow_source(p).unwrap());
            }
        });
        let waits = journal.iter().filter(|e| **e == Event::Wait).count();
        assert!(waits >= shapes.len(), "{waits} waits one by one");
        check(&f, &shapes, "one by one");
        allow_all(&mut f);
        // Compactions, ranges off: a /49, a /50 and 20 /56s in 3 parts,
        // 12 /56s go (10 fit 2 parts).
        ranges_off();
        let mut parts = Vec::new();
        for b in 0..4u32 {
            let top = 0x300 + b;
            let mut stay = vec![
                pre(format!("2001:db8:{top:x}::/49")),
                pre(format!("2001:db8:{top:x}:8000::/50")),
            ];
            let all: Vec<IpPrefix> = (0..20)
                .map(|i| pre(format!("2001:db8:{top:x}:{:x}00::/56", 0xc0 + i)))
                .collect();
            // The first 12 go: the slots left are spread over the 3 parts.
            stay.extend_from_slice(&all[12..]);
            parts.push((stay, all[..12].to_vec(), block(top)));
        }
        f.deny_sources(all(&parts)).unwrap();
        for (_, _, b) in &parts {
            assert_eq!(mode(&f, b), Some(3));
        }
        allow(&mut f, &parts);
        for (_, _, b) in &parts {
            assert_eq!(mode(&f, b), Some(2));
            assert!(b.get(&f.deny_v6_leaf, 2).is_none());
        }
        check(&f, &parts, "compacted");
        crate::ranges::tests::NO_RANGES.with(|n| n.set(false));
        allow_all(&mut f);
    }

    /// A list call whose blocks give back range slots (their crowded 64ths'
    /// chunk leaves go after the call's one wait) and take others (the
    /// blocks go into ranges) does not run out: with no slot free, what it
    /// held back is made first. Four blocks, five slots: each block's
    /// crowded 64th holds one; the first block to go into ranges takes the
    /// fifth, the others the slots given back.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_a_list_call_gives_back_range_slots_before_it_runs_out() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::builder()
            .deny_v6_range_slots(5)
            .load()
            .expect("load the XDP program (as root)");
        let pre = |s: String| s.parse::<IpPrefix>().unwrap();
        let mut stay = Vec::new();
        let mut gone = Vec::new();
        let mut blocks = Vec::new();
        for b in 0..4u32 {
            let top = 0x400 + b;
            // A /50 (64ths 0-15), ten /60s in 64th 16 (crowded: a range
            // slot), ten /56s in 64ths 17-19, which go: 11 prefixes
            // reaching 17 64ths, held as ranges.
            stay.push(pre(format!("2001:db8:{top:x}::/50")));
            stay.extend((0..10).map(|i| pre(format!("2001:db8:{top:x}:40{i:x}0::/60"))));
            gone.extend((0..10).map(|i| pre(format!("2001:db8:{top:x}:{:x}00::/56", 0x44 + i))));
            blocks.push(LeafBlock::new(
                0x2001_0db8_0000_0000 | u64::from(top) << 16,
                48,
                f.cfg.v6_bucket_mask,
            ));
        }
        f.deny_sources(stay.iter().chain(&gone).copied()).unwrap();
        for b in &blocks {
            assert_eq!(b.get(&f.deny_v6_leaf, 0).unwrap().parts, V6_SPLIT);
            assert_eq!(
                b.chunk(16).get(&f.deny_v6_leaf, 0).unwrap().parts,
                V6_RANGES
            );
        }
        assert_eq!(f.v6_range_slots_in_use(), 4);
        assert_eq!(f.allow_sources(gone.iter().copied()).unwrap(), gone.len());
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(
                b.get(&f.deny_v6_leaf, 0).unwrap().parts,
                V6_RANGES,
                "block {i}"
            );
            assert!(!b.has_more_than_part_0(&f.deny_v6_leaf), "block {i}");
        }
        assert_eq!(f.v6_range_slots_in_use(), 4);
        for (p, want) in stay
            .iter()
            .map(|p| (p, Verdict::Drop))
            .chain(gone.iter().map(|p| (p, Verdict::Pass)))
        {
            let IpAddr::V6(a) = p.addr() else {
                unreachable!()
            };
            let frame = v6_frame(a, UDP, &udp(1, 2, b""));
            assert_eq!(f.test_run(&frame, 1).unwrap().verdict, want, "{p}");
        }
        assert_v6_counts(&f);
        allow_all(&mut f);
    }

    /// Replacing the last prefixes shorter than /32 with others leaves the
    /// filter's short-prefix flag on (no 32,768 writes to clear it and as
    /// many to set it again); allowing them turns it off.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_replacing_the_last_short_prefixes_keeps_the_flag_on() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let pre = |s: &str| s.parse::<IpPrefix>().unwrap();
        let verdict = |f: &XdpFilter, a: &str| {
            let a: Ipv6Addr = a.parse().unwrap();
            f.test_run(&v6_frame(a, UDP, &udp(1, 2, b"")), 1)
                .unwrap()
                .verdict
        };
        let journal = journal_of(|| {
            f.deny_sources([pre("2c00::/12"), pre("2001:db8::/48")])
                .unwrap()
        });
        assert_eq!(
            journal
                .iter()
                .filter(|e| matches!(e, Event::ShortFlag(_)))
                .collect::<Vec<_>>(),
            [&Event::ShortFlag(true)]
        );
        let journal = journal_of(|| {
            f.replace_denied_sources([pre("2400::/29"), pre("2001:db8::/48")])
                .unwrap()
        });
        assert!(
            !journal.iter().any(|e| matches!(e, Event::ShortFlag(_))),
            "{journal:?}"
        );
        assert_eq!(verdict(&f, "2c00::1"), Verdict::Pass);
        assert_eq!(verdict(&f, "2400::1"), Verdict::Drop);
        assert_eq!(verdict(&f, "2001:db8::1"), Verdict::Drop);
        assert_v6_counts(&f);
        // The last one goes: off.
        let journal = journal_of(|| f.replace_denied_sources([pre("2001:db8::/48")]).unwrap());
        assert_eq!(
            journal
                .iter()
                .filter(|e| matches!(e, Event::ShortFlag(_)))
                .collect::<Vec<_>>(),
            [&Event::ShortFlag(false)]
        );
        assert_eq!(verdict(&f, "2400::1"), Verdict::Pass);
        assert_v6_counts(&f);
        allow_all(&mut f);
    }

    /// The verifier walks the classifier's paths (the IPv6 levels, parts
    /// and prefixes are loops bounded by values from maps) within its limit
    /// of one million instructions with room to spare: a change that
    /// multiplies the paths fails here before it fails to load elsewhere.
    /// (About 458,000 on Linux 6.18 with four leaf levels, chunks split in
    /// turn and range slots; 447,000 without the slots, 375,000 without
    /// the split in turn, 296,000 with three levels.)
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_verifier_work_stays_well_within_its_limit() {
        let f = XdpFilter::load().expect("load the XDP program (as root)");
        let info = f.program(PROGRAM_NAME).unwrap().info().unwrap();
        let Some(n) = info.verified_instruction_count() else {
            eprintln!("this kernel does not report verified instructions");
            return;
        };
        eprintln!("verified instructions: {n}");
        assert!(n < 600_000, "{n} verified instructions");
    }

    /// The /16 states follow the prefixes shorter than /32, in the kernel
    /// as in the mirror: covered /16s are denied, those holding prefixes of
    /// 17 to 31 send the program to their leaves (written even under a
    /// covering prefix, ready when it goes), and the program reads the
    /// states only while such a prefix is denied.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_short_prefixes_set_16_states() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        let pre = |s: &str| s.parse::<IpPrefix>().unwrap();
        // (the states of 2400::/16 to 2410::/16, the flag, whether the
        // leaf of 2401::/16 exists), read back from the kernel.
        let look = |f: &XdpFilter| {
            let states: Vec<u64> = (0x2400..=0x2410)
                .map(|net| {
                    let entry = f.deny_v6_16.get(&net, 0).unwrap();
                    assert_eq!(entry, f.v6_16_entries[net as usize]);
                    entry[0]
                })
                .collect();
            // The short bit, in every filter entry or in none.
            let short: Vec<u64> = (0..2 * V6_FILTER_WORDS)
                .map(|w| {
                    let entry = f.deny_v6_32.get(&w, 0).unwrap();
                    assert_eq!(entry, f.v6_words[w as usize]);
                    entry[0] & V6_FILTER_SHORT
                })
                .collect();
            assert!(short.iter().all(|&b| b == short[0]), "short bits differ");
            let leaf = LeafBlock::new(0x2401 << 48, 16, f.cfg.v6_bucket_mask);
            (
                states,
                u32::from(short[0] != 0),
                leaf.get(&f.deny_v6_leaf, 0).is_some(),
            )
        };
        let d = V6_16_DENIED;
        let l = V6_16_LEAVES;
        assert_eq!(look(&f), (vec![0; 17], 0, false));
        f.deny_source(pre("2400::/12")).unwrap();
        let mut covered = vec![d; 16];
        covered.push(0);
        assert_eq!(look(&f), (covered.clone(), 1, false));
        f.deny_source(pre("2401:1000::/20")).unwrap();
        assert_eq!(look(&f), (covered, 1, true));
        // Under the cover, the /22 bits are kept but do not gate: a source
        // of the /16 outside the /20's /22s is dropped.
        assert_eq!(f.v6_16_entries[0x2401], [d, 0xf0]);
        let frame = v6_frame("2401:2000::1".parse().unwrap(), UDP, &udp(1, 2, b""));
        assert_eq!(f.test_run(&frame, 1).unwrap().verdict, Verdict::Drop);
        assert!(f.allow_source(pre("2400::/12")).unwrap());
        let mut leaves = vec![0; 17];
        leaves[1] = l;
        assert_eq!(look(&f), (leaves.clone(), 1, true));
        // The leaf written under the cover answers once it is gone.
        let verdict = |f: &XdpFilter, src: &str| {
            let frame = v6_frame(src.parse().unwrap(), UDP, &udp(1, 2, b""));
            f.test_run(&frame, 1).unwrap().verdict
        };
        assert_eq!(verdict(&f, "2401:1000::1"), Verdict::Drop);
        assert_eq!(verdict(&f, "2401:1fff:ffff::1"), Verdict::Drop);
        assert_eq!(verdict(&f, "2401:2000::1"), Verdict::Pass);
        assert_eq!(verdict(&f, "2400::1"), Verdict::Pass);
        // The /20 reaches the /16's 64ths 4 to 7 (its /22s); the program
        // reads the leaves for sources in those only: with the bits cleared
        // behind the loader's back, the /20's sources pass too.
        assert_eq!(f.v6_16_entries[0x2401], [l, 0xf0]);
        f.deny_v6_16.set(0x2401, [l, 0], 0).unwrap();
        assert_eq!(verdict(&f, "2401:1000::1"), Verdict::Pass);
        f.deny_v6_16.set(0x2401, [l, u64::MAX], 0).unwrap();
        assert_eq!(verdict(&f, "2401:1000::1"), Verdict::Drop);
        assert_eq!(verdict(&f, "2401:2000::1"), Verdict::Pass);
        f.deny_v6_16
            .set(0x2401, f.v6_16_entries[0x2401], 0)
            .unwrap();
        f.deny_source(pre("2410::/16")).unwrap();
        leaves[16] = d;
        assert_eq!(look(&f), (leaves, 1, true));
        assert!(f.allow_source(pre("2401:1000::/20")).unwrap());
        assert_eq!(f.v6_16_entries[0x2401], [0, 0]);
        let mut last = vec![0; 17];
        last[16] = d;
        assert_eq!(look(&f), (last, 1, false));
        assert!(f.allow_source(pre("2410::/16")).unwrap());
        assert_eq!(look(&f), (vec![0; 17], 0, false));
        // ::/0 covers every /16; /32 and longer prefixes leave the states
        // alone.
        f.deny_source(pre("2401:db8::/32")).unwrap();
        assert_eq!(look(&f), (vec![0; 17], 0, false));
        f.deny_source(pre("::/0")).unwrap();
        assert!(f.v6_16_entries.iter().all(|&e| e == [V6_16_DENIED, 0]));
        // A /32's filter bit goes and comes without touching the short bit.
        assert!(f.allow_source(pre("2401:db8::/32")).unwrap());
        assert_eq!(look(&f), (vec![d; 17], 1, false));
        f.deny_source(pre("2401:db8::/32")).unwrap();
        assert!(f.allow_source(pre("::/0")).unwrap());
        assert!(f.v6_16_entries.iter().all(|&e| e == [0, 0]));
        assert_eq!(look(&f), (vec![0; 17], 0, false));
    }

    /// A 64th of a split block reached by more prefixes than a leaf holds
    /// keeps them in its chunk leaf and continuations (as a block keeps its
    /// parts), up to `BLOCK_SLOTS`; past that the trie answers for it; and
    /// back. The verdicts follow at each step.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_crowded_chunks_take_continuations() {
        use crate::test_frames::{udp, v6_frame, UDP};
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        // The trie where a chunk fits nothing else, not the ranges.
        ranges_off();
        // Chunk 0 of 2001:db8::/48 (its first /54).
        let chunk0 = |f: &XdpFilter| chunk_shape(f, 0, 0);
        // /60 number `j` of the /56 number `k` of the /48.
        let p60 = |k: u128, j: u128| {
            IpPrefix::new(std::net::Ipv6Addr::from(a48(0, k) | j << 68).into(), 60).unwrap()
        };
        let verdict = |f: &XdpFilter, a: u128| {
            let frame = v6_frame(std::net::Ipv6Addr::from(a), UDP, &udp(1, 2, b""));
            f.test_run(&frame, 1).unwrap().verdict
        };
        let check = |f: &XdpFilter, denied: &[(u128, u128)]| {
            for k in 1..3 {
                for j in 0..16 {
                    let want = if denied.contains(&(k, j)) {
                        Verdict::Drop
                    } else {
                        Verdict::Pass
                    };
                    assert_eq!(
                        verdict(f, a48(0, k) | j << 68 | 1),
                        want,
                        "/56 {k}, /60 {j}"
                    );
                }
            }
        };
        // Nine /60s in the /56 number 1: one 64th, the block split.
        let mut denied = Vec::new();
        for j in 0..9 {
            f.deny_source(p60(1, j)).unwrap();
            denied.push((1, j));
        }
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 1));
        assert_eq!(chunk0(&f), (Some(2), 1));
        check(&f, &denied);
        // 32 in the 64th: four parts; 33: the trie.
        for j in 9..16 {
            f.deny_source(p60(1, j)).unwrap();
            denied.push((1, j));
        }
        for j in 0..16 {
            f.deny_source(p60(2, j)).unwrap();
            denied.push((2, j));
        }
        assert_eq!(chunk0(&f), (Some(4), 3));
        check(&f, &denied);
        f.deny_source(p48(0, 3, 56)).unwrap();
        assert_eq!(chunk0(&f), (Some(V6_OVERFLOW), 0));
        check(&f, &denied);
        // Back: parts, then one leaf (the continuations gone).
        assert!(f.allow_source(p48(0, 3, 56)).unwrap());
        assert_eq!(chunk0(&f), (Some(4), 3));
        check(&f, &denied);
        for j in 0..16 {
            assert!(f.allow_source(p60(2, j)).unwrap());
            denied.retain(|&d| d != (2, j));
        }
        assert_eq!(chunk0(&f), (Some(2), 1));
        check(&f, &denied);
        // Compaction from the chunk leaf's own first slots: 16 -> 9 (two
        // parts), the prefixes of the continuation moved into the freed
        // slots.
        for j in 0..7 {
            assert!(f.allow_source(p60(1, j)).unwrap());
            denied.retain(|&d| d != (1, j));
        }
        assert_eq!(chunk0(&f), (Some(2), 1));
        check(&f, &denied);
        assert!(f.allow_source(p60(1, 7)).unwrap());
        denied.retain(|&d| d != (1, 7));
        assert_eq!(block_shape(&f).0, Some(1), "8 left: one leaf");
        assert_eq!(chunk0(&f), (None, 0));
        assert_eq!(leaves_of(&f, 0), 1);
        check(&f, &denied);
    }

    /// Continuations of crowded chunks come out of a budget (the block's
    /// prefixes beyond its chunks): a chunk whose continuation no longer
    /// fits goes to the trie and comes back when it fits again, and a split
    /// block with a crowded chunk that outgrows the split goes to the trie
    /// whole, its chunk continuations gone. The block never takes more
    /// leaves than it has prefixes, plus one.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_chunk_continuations_keep_to_the_budget() {
        let mut f = XdpFilter::load().expect("load the XDP program (as root)");
        // The trie where a chunk fits nothing else, not the ranges.
        ranges_off();
        // In the /48 number 1: a /51 (64ths 0-7), nine /60s in the /56
        // number 80 (64th 20), six /56s in 64ths 30-35: 16 prefixes, 15
        // 64ths, one leaf to spare: 64th 20 takes a continuation.
        let p60 = |k: u128, j: u128| {
            IpPrefix::new(std::net::Ipv6Addr::from(a48(1, k) | j << 68).into(), 60).unwrap()
        };
        let mut n = 0;
        f.deny_source(p48(1, 0, 51)).unwrap();
        for j in 0..9 {
            f.deny_source(p60(80, j)).unwrap();
        }
        for i in 0..6 {
            f.deny_source(p48(1, 4 * (30 + i), 56)).unwrap();
        }
        n += 16;
        assert_eq!(block_shape_of(&f, 1), (Some(V6_SPLIT), 0, 15));
        assert_eq!(chunk_shape(&f, 1, 20), (Some(2), 1));
        assert!(leaves_of(&f, 1) <= n + 1);
        // A /53 (64ths 40-41): 17 prefixes, 17 64ths, nothing to spare.
        f.deny_source(p48(1, 160, 53)).unwrap();
        n += 1;
        assert_eq!(chunk_shape(&f, 1, 20), (Some(V6_OVERFLOW), 0));
        assert!(leaves_of(&f, 1) <= n + 1);
        assert!(f.allow_source(p48(1, 160, 53)).unwrap());
        n -= 1;
        assert_eq!(chunk_shape(&f, 1, 20), (Some(2), 1));
        assert!(leaves_of(&f, 1) <= n + 1);
        // In the /48 number 2: nine /60s in 64th 0 and 24 /56s in 64ths
        // 32-55 (33 prefixes, 25 64ths: split, 64th 0 in two parts); a /49
        // (64ths 0-31) makes 56 64ths for 34: the trie for the whole block.
        let p60 = |k: u128, j: u128| {
            IpPrefix::new(std::net::Ipv6Addr::from(a48(2, k) | j << 68).into(), 60).unwrap()
        };
        for j in 0..9 {
            f.deny_source(p60(1, j)).unwrap();
        }
        for i in 0..24 {
            f.deny_source(p48(2, 4 * (32 + i), 56)).unwrap();
        }
        assert_eq!(block_shape_of(&f, 2), (Some(V6_SPLIT), 0, 25));
        assert_eq!(chunk_shape(&f, 2, 0), (Some(2), 1));
        f.deny_source(p48(2, 0, 49)).unwrap();
        assert_eq!(block_shape_of(&f, 2), (Some(V6_OVERFLOW), 0, 0));
        assert_eq!(chunk_shape(&f, 2, 0), (None, 0));
        assert_eq!(leaves_of(&f, 2), 1);
        assert!(f.allow_source(p48(2, 0, 49)).unwrap());
        assert_eq!(block_shape_of(&f, 2), (Some(V6_SPLIT), 0, 25));
        assert_eq!(chunk_shape(&f, 2, 0), (Some(2), 1));
        assert!(leaves_of(&f, 2) <= 34);
    }

    /// A table filled to its capacity with blocks that would take the most
    /// leaves takes every prefix: the split never needs more leaves than
    /// the table was sized for. Even blocks hold 8 /53s (two 64ths each)
    /// and a /56 (18 leaves split: held as ranges, or, with the ranges
    /// off, kept in two parts), odd ones 9 /56s each in a 64th of its own
    /// (split: 10 leaves).
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_split_blocks_fill_the_capacity() {
        for ranges in [true, false] {
            split_blocks_fill_the_capacity(ranges);
        }
    }

    #[cfg(feature = "ebpf")]
    fn split_blocks_fill_the_capacity(ranges: bool) {
        use crate::test_frames::{udp, v6_frame, UDP};
        let cap = 1024u32;
        let mut f = XdpFilter::builder()
            .deny_v6_capacity(cap)
            .load()
            .expect("load the XDP program (as root)");
        crate::ranges::tests::NO_RANGES.with(|n| n.set(!ranges));
        let mut n = 0;
        'fill: for block in 0.. {
            let prefixes: Vec<(u128, u8)> = if block % 2 == 0 {
                (0..8).map(|i| (8 * i, 53)).chain([(252, 56)]).collect()
            } else {
                (0..9).map(|i| (4 * i, 56)).collect()
            };
            for (k, len) in prefixes {
                if n == cap {
                    break 'fill;
                }
                f.deny_source(p48(block, k, len))
                    .unwrap_or_else(|e| panic!("prefix {n} of {cap}: {e}"));
                n += 1;
            }
            match (block, ranges) {
                (0, true) => assert_eq!(block_shape(&f), (Some(V6_RANGES), 0, 0)),
                (0, false) => assert_eq!(block_shape(&f), (Some(2), 1, 0)),
                (1, _) => assert_eq!(block_shape_of(&f, 1), (Some(V6_SPLIT), 0, 9)),
                _ => {}
            }
        }
        assert_eq!(f.denied_sources().unwrap().len(), cap as usize);
        for block in [0, 1, 56, 57, 110, 111] {
            let probes = if block % 2 == 0 {
                [
                    (0, Verdict::Drop),
                    (63, Verdict::Drop),
                    (252, Verdict::Drop),
                    (100, Verdict::Pass),
                ]
            } else {
                [
                    (0, Verdict::Drop),
                    (4, Verdict::Drop),
                    (32, Verdict::Drop),
                    (2, Verdict::Pass),
                ]
            };
            for (k, want) in probes {
                let frame = v6_frame((a48(block, k) | 1).into(), UDP, &udp(1, 2, b""));
                assert_eq!(f.test_run(&frame, 1).unwrap().verdict, want, "{block}/{k}");
            }
        }
    }

    /// Leaving the split for parts needs room for a continuation, a split
    /// block room for its chunk leaves. Without room for the continuation
    /// the block stays split; without room for a chunk leaf it goes to
    /// overflow (the trie answers); with room again it comes back. The
    /// calls succeed and every probe is answered right all along.
    #[cfg(feature = "ebpf")]
    #[test]
    #[ignore = "needs root"]
    fn root_blocks_without_room_stay_split_or_overflow() {
        use crate::test_frames::{udp, v6_frame, UDP};
        use rauta_xdp_common::v6_chunk_leaf_code;

        let mut f = XdpFilter::builder()
            .deny_v6_capacity(128)
            .load()
            .expect("load the XDP program (as root)");
        // Parts where the split does not fit, not the ranges (as when no
        // slot is free).
        ranges_off();
        let mask = f.cfg.v6_bucket_mask;
        let key = |block: u128| v6_leaf_key((a48(block, 0) >> 64) as u64, 48);
        let check = |f: &XdpFilter, drop: &[u128], pass: &[u128], step: &str| {
            for (&k, want) in drop
                .iter()
                .map(|k| (k, Verdict::Drop))
                .chain(pass.iter().map(|k| (k, Verdict::Pass)))
            {
                let frame = v6_frame((a48(0, k) | 1).into(), UDP, &udp(1, 2, b""));
                assert_eq!(
                    f.test_run(&frame, 1).unwrap().verdict,
                    want,
                    "{step}: /56 {k}"
                );
            }
        };
        // A /53 (two 64ths) and 15 /56s in 15 more: 17 64ths for 16
        // prefixes, two parts; one more /56 in a 64th already reached: 17
        // for 17, split.
        f.deny_source(p48(0, 0, 53)).unwrap();
        for i in 2..17 {
            f.deny_source(p48(0, 4 * i, 56)).unwrap();
        }
        assert_eq!(block_shape(&f), (Some(2), 1, 0));
        f.deny_source(p48(0, 9, 56)).unwrap();
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 17));
        // Fill the buckets of block 0's part 1 and of the leaf of its 64th
        // number 17, then the spill map, with other blocks' first leaves.
        let part1 = v6_bucket(key(0), v6_leaf_code(48, 1), mask);
        let chunk17 = v6_bucket(key(0), v6_chunk_leaf_code(48, 17), mask);
        let fillers = fill_buckets(&mut f, &[part1, chunk17]);
        check(&f, &[0, 7, 8, 9, 64], &[10, 68, 255], "split");
        // 16 left: two parts do not fit, the block stays split.
        assert!(f.allow_source(p48(0, 9, 56)).unwrap());
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 17));
        check(&f, &[0, 7, 8, 64], &[9, 10, 68, 255], "still split");
        // A /56 in the 64th number 17: two parts do not fit, and its chunk
        // leaf finds no room either: overflow.
        f.deny_source(p48(0, 68, 56)).unwrap();
        assert_eq!(block_shape(&f), (Some(V6_OVERFLOW), 0, 0));
        check(&f, &[0, 7, 8, 64, 68], &[9, 10, 69, 255], "overflow");
        // With room again (the fillers gone): out of overflow to parts,
        // then split again.
        for &b in &fillers {
            assert!(f.allow_source(p48(b, 0, 56)).unwrap());
        }
        assert!(f.allow_source(p48(0, 68, 56)).unwrap());
        assert_eq!(block_shape(&f), (Some(2), 1, 0));
        check(&f, &[0, 7, 8, 64], &[9, 68, 255], "parts");
        f.deny_source(p48(0, 9, 56)).unwrap();
        assert_eq!(block_shape(&f), (Some(V6_SPLIT), 0, 17));
        check(&f, &[0, 8, 9, 64], &[10, 68, 255], "split again");
        for p in f.denied_sources().unwrap() {
            assert!(f.allow_source(p).unwrap());
        }
        assert_eq!(block_shape(&f), (None, 0, 0));
        check(&f, &[], &[0, 8, 9, 255], "drained");
        assert_eq!(f.spilled_entries(), 0);
    }

    fn p(n: u64) -> V6Prefix {
        V6Prefix::of(n << 16, 48)
    }

    /// Every address inside a prefix finds its 64th's bit among the bits
    /// the loader sets for the prefix: the filter entry's 64th bits for
    /// lengths 32 to 128 (the program computes them from the address, the
    /// loader from the block and its 64ths), and the /16 entry's /22 bits
    /// for 17 to 31.
    #[test]
    fn addresses_inside_a_prefix_find_its_64th_bits() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        };
        for len in 17..=128u8 {
            let level = v6_level(len).unwrap();
            for _ in 0..200 {
                let addr = (u128::from(next()) << 64 | u128::from(next())) & v6_mask(len);
                let host_bits = !v6_mask(len);
                let random = u128::from(next()) << 64 | u128::from(next());
                for host in [addr, addr | host_bits, addr | (random & host_bits)] {
                    let (top, low) = ((host >> 64) as u64, host as u64);
                    let half = if level == 64 { low } else { top };
                    let prefix_half = if level == 64 {
                        addr as u64
                    } else {
                        (addr >> 64) as u64
                    };
                    let chunks = v6_chunk_bits(prefix_half, u32::from(len), level);
                    assert_ne!(
                        chunks >> rauta_xdp_common::v6_chunk(half, level) & 1,
                        0,
                        "{host:#x} /{len}"
                    );
                    if level >= 32 {
                        let slot = rauta_xdp_common::v6_fine_slot(top, low, level);
                        assert!(
                            v6_fine_bits(addr, len, level).any(|s| s == slot),
                            "{host:#x} in {addr:#x}/{len}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn leaf_prefixes_keep_their_slots() {
        let u = V6Prefix::UNUSED;
        let slots = place_stably([u; 4], &[p(1), p(2), p(3)]);
        assert_eq!(slots, [p(1), p(2), p(3), u]);
        assert_eq!(used_slots(&slots), 3);
        // Adding one in front of the others (in sorted order) moves nothing.
        let slots = place_stably(slots, &[p(0), p(1), p(2), p(3)]);
        assert_eq!(slots, [p(1), p(2), p(3), p(0)]);
        // Removing one frees its slot only; the next one takes it.
        let slots = place_stably(slots, &[p(0), p(1), p(3)]);
        assert_eq!(slots, [p(1), u, p(3), p(0)]);
        assert_eq!(used_slots(&slots), 4);
        let slots = place_stably(slots, &[p(0), p(1), p(3), p(9)]);
        assert_eq!(slots, [p(1), p(9), p(3), p(0)]);
        assert_eq!(place_stably(slots, &[]), [u; 4]);
        assert_eq!(used_slots(&[u; 4]), 0);
    }

    #[test]
    fn leaves_hold_the_half_their_level_leaves_open() {
        let a: u128 = 0x2001_0db8_0001_0002_0003_0004_0005_0006;
        // A /40 in its /32 leaf: the first 64 bits.
        let q = leaf_prefix(a & !(u128::MAX >> 40), 40, 32);
        assert_eq!(q, V6Prefix::of(0x2001_0db8_0000_0000, 40));
        assert!(q.contains((a >> 64) as u64));
        // A /80 and a /64 in their /64 leaf: the last 64 bits.
        let q = leaf_prefix(a & !(u128::MAX >> 80), 80, 64);
        assert_eq!(q, V6Prefix::of(0x0003_0004_0000_0000, 16));
        assert!(q.contains(a as u64));
        assert!(q.contains(0x0003_ffff_0000_0000));
        assert!(!q.contains(0x0004_0004_0000_0000));
        assert!(leaf_prefix(a & !(u128::MAX >> 64), 64, 64).contains(u64::MAX));
        assert_eq!(
            leaf_prefix(a, 128, 64),
            V6Prefix {
                addr: a as u64,
                mask: u64::MAX
            }
        );
        let leaf = leaf_of(
            &[
                p(1),
                V6Prefix::UNUSED,
                p(2),
                V6Prefix::UNUSED,
                V6Prefix::UNUSED,
                V6Prefix::UNUSED,
                V6Prefix::UNUSED,
                V6Prefix::UNUSED,
            ],
            3,
        );
        assert_eq!((leaf.parts, leaf.used), (3, 3));
    }

    #[test]
    fn v4_spans_and_masks() {
        assert_eq!(v4_span((0xc612_0000, 16)), (0x00c6_1200, 256, V4_24_DENIED));
        assert_eq!(v4_span((0xc612_0480, 25)), (0x00c6_1204, 1, V4_24_HOSTS));
        assert_eq!(v4_mask(0), 0);
        assert_eq!(v4_mask(32), u32::MAX);
        assert_eq!(v6_mask(0), 0);
        assert_eq!(v6_mask(128), u128::MAX);
        assert_eq!(merge(V4_24_HOSTS, V4_24_DENIED), V4_24_DENIED);
        assert_eq!(merge(0, V4_24_HOSTS), V4_24_HOSTS);
    }
}
