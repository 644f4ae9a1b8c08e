//! The safe layer over DPDK: EAL, mempools, mbufs, ports, lcores.
