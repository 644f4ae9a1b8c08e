#include <rte_errno.h>

int nat64_rte_errno(void) { return rte_errno; }
