//! RFC 6146 stateful NAT64 state: pool4, BIB, sessions, TCP state machine, timers. One shard per worker.
