//! RFC 7915 §5 translation of arbitrary bytes; the first byte shapes the
//! input (bit 0: addresses into mapped space, bit 1: fix checksums).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dataplane_fuzz::xlate::run_6to4(data));
