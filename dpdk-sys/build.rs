//! Generates bindings to the system DPDK and compiles the wrappers for its
//! static-inline functions.
use std::env;
use std::path::PathBuf;

const MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.c");

    let dpdk = pkg_config::Config::new().atleast_version(MIN_VERSION).probe("libdpdk").unwrap_or_else(|e| {
        panic!(
            "\n\ndpdk-sys: DPDK >= {MIN_VERSION} was not found through pkg-config ({e}).\n\
                 On Debian 12 install it with:\n    apt-get install dpdk dpdk-dev libdpdk-dev pkg-config\n\
                 (or run `make deps`).\n\n"
        )
    });

    // pkg-config's cflags carry `-include rte_config.h` and `-march=...`,
    // which both clang (bindgen) and cc must see exactly as DPDK wants.
    let cflags: Vec<String> = pkg_config::get_variable("libdpdk", "cflags")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_else(cflags_from_cli);

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let wrappers = out.join("static_wrappers");

    if !clang_available() {
        panic!(
            "\n\ndpdk-sys: bindgen needs libclang, which was not found.\n\
             On Debian 12 install it with:\n    apt-get install clang libclang-dev\n\
             (or run `make deps`).\n\n"
        );
    }

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .allowlist_function("rte_.*|nat64_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        // long double and friends have no stable Rust layout.
        .blocklist_function("rte_.*_ldouble.*")
        // Bitfield headers of tunnel protocols the appliance never matches on
        // do not map to Rust layouts (packed containing aligned).
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_gtp_psc_.*")
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .derive_default(true)
        .layout_tests(false)
        // DPDK's doxygen comments are not rustdoc: keep `cargo doc` clean.
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| {
            panic!(
                "\n\ndpdk-sys: bindgen failed on the DPDK headers ({e}).\n\
                 Check that libdpdk-dev, clang and libclang-dev are installed (`make deps`).\n\n"
            )
        });
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(wrappers.with_extension("c"))
        .file("shim.c")
        .include(env::var("CARGO_MANIFEST_DIR").unwrap())
        .opt_level(3)
        .warnings(false);
    for inc in &dpdk.include_paths {
        build.include(inc);
    }
    for f in &cflags {
        if !f.starts_with("-I") {
            build.flag(f);
        }
    }
    // `-include rte_config.h` is two words; cc keeps them in order above.
    build.compile("dpdk_static_wrappers");
}

fn cflags_from_cli() -> Vec<String> {
    let out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("run pkg-config --cflags libdpdk");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
}

/// bindgen loads libclang at run time and panics without a useful hint when it
/// is missing; look for it first in the places clang-sys searches on Debian.
fn clang_available() -> bool {
    if env::var_os("LIBCLANG_PATH").is_some() {
        return true;
    }
    let dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
        .map(|e| e.path().join("lib"))
        .chain([PathBuf::from("/usr/lib/x86_64-linux-gnu")]);
    dirs.flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .any(|e| e.file_name().to_string_lossy().starts_with("libclang"))
}
