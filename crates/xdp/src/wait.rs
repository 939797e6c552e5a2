//! Waiting until every run of the program that had begun has ended.
//!
//! The classifier runs inside an RCU read-side section (XDP runs with
//! bottom halves off, `BPF_PROG_TEST_RUN` under `rcu_read_lock`), so an RCU
//! grace period is the wait. The kernel offers it to user space in two
//! ways:
//!
//! - an update of a map-in-map: after it, the kernel waits for every
//!   running non-sleepable BPF program to finish (`maybe_wait_bpf_programs`
//!   in kernel/bpf/syscall.c: `synchronize_rcu`, expedited on kernels that
//!   have made it so), whatever the CPUs' settings. [`Waiter`] keeps a
//!   one-slot `BPF_MAP_TYPE_ARRAY_OF_MAPS` and a one-entry array for that
//!   ([`MAP_WAIT`], [`MAP_WAIT_INNER`]), closed with the filter.
//! - `membarrier(MEMBARRIER_CMD_GLOBAL)`: `synchronize_rcu` too, but the
//!   kernel refuses it where CPUs run in `nohz_full` mode and returns at
//!   once on a machine with one CPU online (where a preempted run, under
//!   `PREEMPT_RT` or in a test run, could still be going). Used only when
//!   the maps cannot be made; a pause far longer than any program run
//!   stands in when it fails too.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use rauta_xdp_common::{MAP_WAIT, MAP_WAIT_INNER};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;

/// The head of `union bpf_attr` for `BPF_MAP_CREATE` (the kernel takes the
/// fields after these as zero).
#[repr(C)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` for `BPF_MAP_UPDATE_ELEM`.
#[repr(C)]
struct ElemUpdate {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// What [`Waiter::wait`] uses.
pub(crate) struct Waiter {
    /// The map-in-map and the map it holds; `None` when the kernel would
    /// not make them (membarrier then).
    maps: Option<(OwnedFd, OwnedFd)>,
}

impl Waiter {
    /// Makes the maps (needs the privileges loading the program needs).
    pub(crate) fn new() -> Waiter {
        let inner = create_map(BPF_MAP_TYPE_ARRAY, None, MAP_WAIT_INNER);
        let maps = inner.and_then(|inner| {
            let outer = create_map(BPF_MAP_TYPE_ARRAY_OF_MAPS, Some(&inner), MAP_WAIT)?;
            Some((outer, inner))
        });
        Waiter { maps }
    }

    /// A waiter without the maps (membarrier).
    #[cfg(test)]
    pub(crate) fn without_maps() -> Waiter {
        Waiter { maps: None }
    }

    /// Returns once every program run that had begun before the call has
    /// ended.
    pub(crate) fn wait(&self) {
        if self.wait_by_map() {
            return;
        }
        const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
        // SAFETY: membarrier takes no pointers and changes no memory of this
        // process; with this command and flags 0 it only blocks until a grace
        // period has passed (or fails with an errno).
        let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
        if r != 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Waiter {
    /// Waits through the map-in-map; whether the kernel took the update
    /// (false without the maps).
    pub(crate) fn wait_by_map(&self) -> bool {
        self.maps
            .as_ref()
            .is_some_and(|(outer, inner)| put_map(outer, inner))
    }
}

/// A map of 1 entry, 4-byte keys and values: an array, or an array of maps
/// holding maps like `inner`.
fn create_map(map_type: u32, inner: Option<&OwnedFd>, name: &str) -> Option<OwnedFd> {
    let mut map_name = [0u8; 16];
    map_name[..name.len()].copy_from_slice(name.as_bytes());
    let attr = MapCreate {
        map_type,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        map_flags: 0,
        inner_map_fd: inner.map_or(0, |fd| fd.as_raw_fd() as u32),
        numa_node: 0,
        map_name,
    };
    // SAFETY: `attr` is a live, initialized #[repr(C)] value of the size
    // passed; the kernel only reads it (fields past it are taken as zero)
    // and takes no other pointer for this command.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &attr as *const MapCreate,
            size_of::<MapCreate>() as u32,
        )
    };
    let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor to this call, and
    // nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Puts `inner` into slot 0 of `outer`: the kernel returns once every
/// running program has ended. Whether it succeeded.
fn put_map(outer: &OwnedFd, inner: &OwnedFd) -> bool {
    let key: u32 = 0;
    let value: u32 = inner.as_raw_fd() as u32;
    let attr = ElemUpdate {
        map_fd: outer.as_raw_fd() as u32,
        pad: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0,
    };
    // SAFETY: `attr` is a live, initialized #[repr(C)] value of the size
    // passed, and its `key` and `value` point to live 4-byte values (the
    // map's sizes) that outlive the call; the kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_ELEM,
            &attr as *const ElemUpdate,
            size_of::<ElemUpdate>() as u32,
        )
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the maps (no privileges, or a kernel without map-in-map), a
    /// wait falls back to membarrier and still returns.
    #[test]
    fn waits_without_the_maps_fall_back() {
        let w = Waiter::without_maps();
        assert!(!w.wait_by_map());
        w.wait();
    }

    /// As root the maps are made, and each wait is an update the kernel
    /// takes (it then waits for the running programs).
    #[test]
    #[ignore = "needs root"]
    fn root_waits_go_through_a_map_in_map() {
        let w = Waiter::new();
        for _ in 0..3 {
            assert!(w.wait_by_map(), "{}", std::io::Error::last_os_error());
        }
        w.wait();
    }
}
