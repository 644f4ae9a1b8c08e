#!/usr/bin/env bash
# Reserve 2 MiB hugepages for DPDK if we can. Prints "hugepages" on success
# and "no-huge" otherwise, so callers can fall back to EAL's --no-huge.
set -u
want=${1:-512}
nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ -w "$nr" ]; then
  have=$(cat "$nr")
  [ "$have" -ge "$want" ] || echo "$want" > "$nr" 2>/dev/null
  grep -qs "hugetlbfs /dev/hugepages" /proc/mounts || {
    mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null
  }
fi
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "${free:-0}" -ge 64 ] && grep -qs hugetlbfs /proc/mounts; then
  echo hugepages
else
  echo no-huge
fi
