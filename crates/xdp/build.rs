//! Builds the XDP program (`ebpf/xdp-ebpf`) when the `ebpf` feature is on.
//!
//! The program is compiled for `bpfel-unknown-none` by the nightly toolchain
//! (`-Z build-std=core`) and linked by `bpf-linker`; the object lands in
//! `$OUT_DIR/rauta-xdp-ebpf` and the library embeds it. Without the feature
//! nothing is built, so a plain `cargo build` needs neither nightly nor
//! bpf-linker.
//!
//! Environment:
//! - `RAUTA_XDP_TOOLCHAIN`: the rustup toolchain to build with (default
//!   `nightly`).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RAUTA_XDP_TOOLCHAIN");
    if env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let root = manifest_dir.join("../..");
    let ebpf_dir = root.join("ebpf/xdp-ebpf");
    let common_dir = root.join("crates/xdp-common");
    for p in [
        ebpf_dir.join("Cargo.toml"),
        ebpf_dir.join("Cargo.lock"),
        ebpf_dir.join("src"),
        common_dir.join("Cargo.toml"),
        common_dir.join("src"),
    ] {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    let toolchain = env::var("RAUTA_XDP_TOOLCHAIN").unwrap_or_else(|_| "nightly".to_owned());
    // aya-ebpf picks its per-architecture definitions (pt_regs and the like)
    // from this cfg: the architecture the program will run on.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
    let arch_cfg = format!("--cfg=bpf_target_arch=\"{arch}\"");
    let target_dir = out_dir.join("ebpf-target");
    let mut cmd = Command::new("rustup");
    cmd.args(["run", &toolchain, "cargo", "build", "--release"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--manifest-path")
        .arg(ebpf_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                arch_cfg.as_str(),
                "-Cdebuginfo=2",
                "-Clink-arg=--btf",
                // Let loads of packet fields be single instructions instead of
                // one byte at a time: the verifier allows misaligned packet
                // and map access on architectures that handle it (x86-64,
                // arm64), and the JIT emits plain loads. rustc hands the
                // feature on to bpf-linker, which generates the code.
                "-Ctarget-feature=+allows-misaligned-mem-access",
            ]
            .join("\x1f"),
        );
    // The host build's compiler settings must not leak into the nested build.
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
    ] {
        cmd.env_remove(key);
    }
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("DEP_")
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "rauta-xdp (feature `ebpf`): cannot run `rustup run {toolchain} cargo`: {e}; \
             run scripts/setup.d/xdp.sh"
        )
    });
    if !status.success() {
        panic!(
            "rauta-xdp (feature `ebpf`): building ebpf/xdp-ebpf failed ({status}); it needs the \
             `{toolchain}` toolchain with rust-src and bpf-linker (scripts/setup.d/xdp.sh)"
        );
    }
    let built = target_dir.join("bpfel-unknown-none/release/rauta-xdp-ebpf");
    copy(&built, &out_dir.join("rauta-xdp-ebpf.o"));
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| {
        panic!(
            "rauta-xdp: cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        )
    });
}
