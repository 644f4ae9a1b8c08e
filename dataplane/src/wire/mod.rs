//! Zero-copy typed views over packet bytes (smoltcp style): checked once, then infallible accessors.
