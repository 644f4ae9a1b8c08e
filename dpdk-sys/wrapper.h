/* The DPDK API surface the appliance uses. bindgen reads this file; its
 * static-inline functions reach Rust through generated wrappers. */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_prefetch.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_flow.h>
#include <rte_thash.h>
#include <rte_dev.h>
#include <rte_version.h>

/* rte_errno is a per-lcore (thread-local) macro: read it through a function. */
int nat64_rte_errno(void);
