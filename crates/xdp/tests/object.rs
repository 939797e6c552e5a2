//! The embedded object parses and holds the expected programs and maps.
//! Needs no privileges; needs the `ebpf` feature (scripts/test.d/40-xdp.sh).
#![cfg(feature = "ebpf")]

use aya_obj::{
    generated::bpf_map_type, programs::XdpAttachType, EbpfSectionKind, Object, ProgramSection,
};
use rauta_xdp::XdpFilter;
use rauta_xdp_common as common;

fn object() -> Object {
    let bytes = XdpFilter::embedded_object().expect("built with the ebpf feature");
    Object::parse(bytes).expect("the embedded object parses")
}

#[test]
fn embedded_object_holds_both_xdp_programs() {
    let obj = object();
    let mut names: Vec<&str> = obj.programs.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, [common::PROGRAM_NAME, common::PASS_PROGRAM_NAME]);
    for p in obj.programs.values() {
        assert!(
            matches!(
                p.section,
                ProgramSection::Xdp {
                    frags: false,
                    attach_type: XdpAttachType::Interface
                }
            ),
            "{:?}",
            p.section
        );
    }
    // GPL-compatible, so every helper the program may call is allowed.
    assert_eq!(obj.license.to_str().unwrap(), "Dual MIT/GPL");
}

#[test]
fn embedded_object_maps_have_the_shared_layouts() {
    use std::mem::size_of;
    let obj = object();
    let expect: [(&str, u32, usize, usize, u32); 13] = [
        (
            common::MAP_DENY_V4,
            bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
            4,
            size_of::<common::V4Bucket>(),
            common::buckets_for(common::DEFAULT_DENY_V4_ENTRIES),
        ),
        (
            common::MAP_DENY_V4_SPILL,
            bpf_map_type::BPF_MAP_TYPE_HASH as u32,
            4,
            size_of::<common::V4HostBits>(),
            common::spill_for(common::DEFAULT_DENY_V4_ENTRIES),
        ),
        (
            common::MAP_DENY_V6,
            bpf_map_type::BPF_MAP_TYPE_LPM_TRIE as u32,
            4 + 16,
            1,
            common::DEFAULT_DENY_V6_ENTRIES,
        ),
        (
            common::MAP_DENY_V4_24,
            bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
            4,
            8,
            common::V4_MAP24_WORDS,
        ),
        (
            common::MAP_DENY_V6_32,
            bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
            4,
            size_of::<common::V6FilterEntry>(),
            2 * common::V6_FILTER_WORDS,
        ),
        (
            common::MAP_DENY_V6_LEAF,
            bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
            4,
            size_of::<common::V6Bucket>(),
            common::buckets_for(common::DEFAULT_DENY_V6_ENTRIES),
        ),
        (
            common::MAP_DENY_V6_SPILL,
            bpf_map_type::BPF_MAP_TYPE_HASH as u32,
            size_of::<common::V6SpillKey>(),
            size_of::<common::V6Leaf>(),
            common::spill_for(common::DEFAULT_DENY_V6_ENTRIES),
        ),
        (
            common::MAP_DENY_V6_RANGES,
            bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
            4,
            size_of::<common::V6Ranges>(),
            common::ranges_for(common::DEFAULT_DENY_V6_ENTRIES),
        ),
        (
            common::MAP_DENY_V6_16,
            bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
            4,
            size_of::<common::V6_16Entry>(),
            common::V6_16_ENTRIES,
        ),
        (
            common::MAP_DENY_PORTS,
            bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
            4,
            8,
            common::PORT_BITMAP_WORDS,
        ),
        (
            common::MAP_CONFIG,
            bpf_map_type::BPF_MAP_TYPE_ARRAY as u32,
            4,
            size_of::<common::Config>(),
            1,
        ),
        (
            common::MAP_SYN_STATE,
            bpf_map_type::BPF_MAP_TYPE_LRU_HASH as u32,
            size_of::<common::SourceKey>(),
            8,
            common::DEFAULT_SYN_STATE_ENTRIES,
        ),
        (
            common::MAP_COUNTERS,
            bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY as u32,
            4,
            size_of::<common::CounterTable>(),
            1,
        ),
    ];
    let mut names: Vec<&str> = obj.maps.keys().map(String::as_str).collect();
    names.sort_unstable();
    // Besides the maps, the read-only globals (the bucket masks) live in
    // a section of their own, which the loader makes a one-entry array.
    let mut want: Vec<&str> = expect
        .iter()
        .map(|e| e.0)
        .chain([common::MAP_RODATA])
        .collect();
    want.sort_unstable();
    assert_eq!(names, want, "exactly the documented maps");
    let rodata = &obj.maps[common::MAP_RODATA];
    assert_eq!(rodata.map_type(), bpf_map_type::BPF_MAP_TYPE_ARRAY as u32);
    assert_eq!(rodata.max_entries(), 1);
    assert_eq!(rodata.section_kind(), EbpfSectionKind::Rodata);
    // Each global is found by its name (as the loader sets it) and holds
    // the mask for the default capacity: patched with a sentinel of its
    // own, the section changes at that global's place only.
    let before = rodata.data().to_vec();
    for (name, default) in [
        (
            common::GLOBAL_V4_BUCKET_MASK,
            common::buckets_for(common::DEFAULT_DENY_V4_ENTRIES) - 1,
        ),
        (
            common::GLOBAL_V6_BUCKET_MASK,
            common::buckets_for(common::DEFAULT_DENY_V6_ENTRIES) - 1,
        ),
    ] {
        let mut patched = object();
        let sentinel = 0x5eu32 << 24 | default;
        let bytes = sentinel.to_le_bytes();
        let globals = std::collections::HashMap::from([(name, (&bytes[..], true))]);
        patched.patch_map_data(globals).expect("the global exists");
        let after = patched.maps[common::MAP_RODATA].data().to_vec();
        let changed: Vec<usize> = (0..after.len())
            .filter(|&i| after[i] != before[i])
            .collect();
        assert_eq!(changed.len(), 1, "{name}: {changed:?}");
        let at = changed[0] - 3;
        assert_eq!(before[at..at + 4], default.to_le_bytes(), "{name}");
        assert_eq!(after[at..at + 4], bytes, "{name}");
    }
    // An LPM trie must be created without preallocation.
    assert_ne!(
        obj.maps[common::MAP_DENY_V6].map_flags() & 1,
        0,
        "DENY_V6 has BPF_F_NO_PREALLOC"
    );
}
