//! Every wire view over arbitrary bytes taken as an IPv6 packet.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane_fuzz::walk_v6(data, 0);
    dataplane_fuzz::walk_ethernet(data);
});
