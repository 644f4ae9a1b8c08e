#!/usr/bin/env bash
# The appliance's benchmark (`make bench`): nat64d against dpdk-testpmd's io
# forwarding on the same devices and core, the in-process fast path on real
# mbufs, the session setup rate and memory, two workers against one.
# Writes perf/results/latest.json and the results table of perf/README.md.
#
# Parameters (environment):
#   BENCH_SECONDS=5         timed seconds of each whole-appliance run
#   BENCH_REPEAT=2          runs of each (the best is kept, all are recorded)
#   BENCH_FLOWS_SMALL=4096  flows of the "4k" runs
#   BENCH_FLOWS_LARGE=1000000 flows of the "1m" runs
#   BENCH_SESSIONS=4096,1000000,10000000  in-process session counts
#   BENCH_PACKETS=4000000   in-process packets timed per measurement
#   BENCH_FRAME=84          IPv6 frame size incl. FCS (IPv4: 20 less)
#   BENCH_MAIN_CORE=0 BENCH_CORE=1 BENCH_CORE2=0   EAL main lcore, worker cores
#   BENCH_THP=1             also run the in-process NAT64 figures on THP
#   BENCH_SKIP_BUILD=1      use the binaries already built
#   BENCH_IR=1              also count instructions per packet (valgrind; 0 skips)
#   BENCH_IR_PACKETS=200000 packets per instruction count
# `scripts/bench.sh --ir` (make bench-ir) runs only the instruction counts
# and merges them into BENCH_OUT: a minute, and independent of the load.
#   BENCH_OUT=perf/results/latest.json
# On a machine with more cores set BENCH_CORE/BENCH_CORE2 to two isolated
# cores of the NIC's NUMA node; the script is otherwise the same.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_RUN=${BENCH_SECONDS:-5}
REPEAT=${BENCH_REPEAT:-2}
FLOWS_S=${BENCH_FLOWS_SMALL:-4096}
FLOWS_L=${BENCH_FLOWS_LARGE:-1000000}
SESSIONS=${BENCH_SESSIONS:-4096,1000000,10000000}
PACKETS=${BENCH_PACKETS:-4000000}
FRAME=${BENCH_FRAME:-84}
MAIN=${BENCH_MAIN_CORE:-0}
CORE=${BENCH_CORE:-1}
CORE2=${BENCH_CORE2:-0}
OUT=${BENCH_OUT:-perf/results/latest.json}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/bench}
BIN=$CARGO_TARGET_DIR/release
WORK=$(mktemp -d /tmp/nat64-bench.XXXXXX)
RES=$WORK/results.jsonl
: >"$RES"
started=$(date +%s)

log() { echo "bench: $*" >&2; }
# One result line: key, value (number or null), free-form note.
put() { jq -cn --arg k "$1" --argjson v "$2" --arg n "${3:-}" '{key:$k, value:$v, note:$n}' >>"$RES"; }

# Render the results table of perf/README.md (between the bench markers).
table() {
  local json=$1 readme=$2 rows
  grep -q '<!-- bench:begin -->' "$readme" 2>/dev/null || { log "$readme has no bench markers"; return; }
  rows=$(jq -r '
    def f: if . == null then "n/a" elif type == "number" then (. * 100 | round / 100 | tostring) else tostring end;
    def row(l; k; t): "| \(l) | \(.[k] | f) | \(t) |";
    row("nat64d Mpps, NAT64 6->4 est, 4k flows"; "mpps_6to4_est_4k"; "-"),
    row("nat64d Mpps, NAT64 4->6 est, 4k flows"; "mpps_4to6_est_4k"; "-"),
    row("nat64d Mpps, SIIT 6->4, 4k flows"; "mpps_6to4_est_4k_siit"; "-"),
    row("nat64d Mpps, SIIT 4->6, 4k flows"; "mpps_4to6_est_4k_siit"; "-"),
    row("dpdk-testpmd io Mpps, 4k flows"; "testpmd_mpps_4k"; "reference"),
    row("ratio vs testpmd, NAT64 6->4 est, 4k"; "ratio_vs_testpmd_6to4_est_4k"; ">= 0.7"),
    row("ratio vs testpmd, NAT64 4->6 est, 4k"; "ratio_vs_testpmd_4to6_est_4k"; ">= 0.7"),
    row("ratio vs testpmd, SIIT 6->4, 4k"; "ratio_vs_testpmd_6to4_est_4k_siit"; ">= 0.7"),
    row("ratio vs testpmd, SIIT 4->6, 4k"; "ratio_vs_testpmd_4to6_est_4k_siit"; ">= 0.7"),
    row("nat64d Mpps, NAT64 6->4 est, 1M flows"; "mpps_6to4_est_1m"; "-"),
    row("nat64d Mpps, NAT64 4->6 est, 1M flows"; "mpps_4to6_est_1m"; "-"),
    row("nat64d Mpps, SIIT 6->4, 1M flows"; "mpps_6to4_est_1m_siit"; "-"),
    row("nat64d Mpps, SIIT 4->6, 1M flows"; "mpps_4to6_est_1m_siit"; "-"),
    row("nat64d Mpps, NAT64 6->4 new flows, 1M (first pass)"; "mpps_6to4_new_1m"; "-"),
    row("dpdk-testpmd io Mpps, 1M flows (NAT64 6->4 pcap)"; "testpmd_mpps_6to4_est_1m"; "reference"),
    row("ratio vs testpmd, NAT64 6->4 new flows, 1M"; "ratio_vs_testpmd_6to4_new_1m"; ">= 0.5"),
    row("ratio vs testpmd, NAT64 6->4 est, 1M"; "ratio_vs_testpmd_6to4_est_1m"; ">= 0.5"),
    row("ratio vs testpmd, NAT64 4->6 est, 1M"; "ratio_vs_testpmd_4to6_est_1m"; ">= 0.5"),
    row("ratio vs testpmd, SIIT 6->4, 1M"; "ratio_vs_testpmd_6to4_est_1m_siit"; ">= 0.5"),
    row("ratio vs testpmd, SIIT 4->6, 1M"; "ratio_vs_testpmd_4to6_est_1m_siit"; ">= 0.5"),
    row("pipeline cycles/pkt, SIIT 6->4 (in process)"; "pipeline_cycles_per_pkt_siit_6to4"; "-"),
    row("... same, without the express path"; "pipeline_cycles_per_pkt_siit_6to4_general"; "(A/B)"),
    row("pipeline cycles/pkt, SIIT 4->6 (in process)"; "pipeline_cycles_per_pkt_siit_4to6"; "-"),
    row("... same, without the express path"; "pipeline_cycles_per_pkt_siit_4to6_general"; "(A/B)"),
    row("pipeline cycles/pkt, NAT64 6->4 est, 4k (in process)"; "pipeline_cycles_per_pkt_nat64_6to4"; "-"),
    row("... same, without the express path"; "pipeline_cycles_per_pkt_nat64_6to4_general"; "(A/B)"),
    row("pipeline cycles/pkt, NAT64 4->6 est, 4k (in process)"; "pipeline_cycles_per_pkt_nat64_4to6"; "-"),
    row("... same, without the express path"; "pipeline_cycles_per_pkt_nat64_4to6_general"; "(A/B)"),
    row("pipeline instructions/pkt, SIIT 6->4 (callgrind, in process)"; "instr_per_pkt_siit_6to4"; "-"),
    row("pipeline instructions/pkt, SIIT 4->6 (callgrind, in process)"; "instr_per_pkt_siit_4to6"; "-"),
    row("pipeline instructions/pkt, NAT64 6->4 est, 4k (callgrind)"; "instr_per_pkt_nat64_6to4"; "-"),
    row("pipeline instructions/pkt, NAT64 4->6 est, 4k (callgrind)"; "instr_per_pkt_nat64_4to6"; "-"),
    row("pipeline instructions/pkt, NAT64 6->4, 64k flows, with the look-ahead (callgrind)"; "instr_per_pkt_nat64_6to4_64k"; "-"),
    row("pipeline instructions/pkt, NAT64 4->6, 64k flows, with the look-ahead (callgrind)"; "instr_per_pkt_nat64_4to6_64k"; "-"),
    row("NAT64 translator cycles/pkt 6->4, 4k sessions"; "cycles_per_pkt_4k"; "<= 40"),
    row("... same, without the express path"; "cycles_per_pkt_4k_general"; "(A/B)"),
    row("NAT64 translator cycles/pkt 6->4, 1M sessions"; "cycles_per_pkt_1m"; "-"),
    row("... same, without the burst look-ahead"; "cycles_per_pkt_1m_no_lookahead"; "(A/B)"),
    row("NAT64 translator cycles/pkt 6->4, 10M sessions"; "cycles_per_pkt_10m"; "<= 100"),
    row("... same, tables on transparent huge pages"; "cycles_per_pkt_10m_thp"; "(diagnostic)"),
    row("NAT64 translator cycles/pkt 4->6, 4k sessions"; "cycles_per_pkt_4to6_4k"; "-"),
    row("... same, without the express path"; "cycles_per_pkt_4to6_4k_general"; "(A/B)"),
    row("NAT64 translator cycles/pkt 4->6, 1M sessions"; "cycles_per_pkt_4to6_1m"; "-"),
    row("... same, without the burst look-ahead"; "cycles_per_pkt_4to6_1m_no_lookahead"; "(A/B)"),
    row("NAT64 translator cycles/pkt 4->6, 10M sessions"; "cycles_per_pkt_4to6_10m"; "-"),
    row("new sessions/s per core"; "new_sessions_per_s"; ">= 3000000"),
    row("... same, filling 10M sessions"; "new_sessions_per_s_10m"; ">= 3000000"),
    row("memory: cycles per random line, 640 MiB, dependent"; "memory_dependent_cycles_640mib"; "(machine)"),
    row("memory: cycles per random line, 640 MiB, 32 prefetched"; "memory_batch32_cycles_640mib"; "(machine)"),
    row("bytes per session (RSS)"; "bytes_per_session"; "<= 64"),
    row("2 workers / 1 worker, NAT64 6->4 (2 cores total)"; "scaling_2workers_vs_1"; "-"),
    row("handoffs with 2 workers, NAT64 6->4"; "handoffs_2workers"; "-"),
    row("2 workers / 1 worker, NAT64 4->6 est (half handed over)"; "scaling_4to6_2workers_vs_1"; "-"),
    row("handoffs with 2 workers, NAT64 4->6 (first run)"; "handoffs_4to6_2workers"; "-"),
    "",
    "Machine: \(.machine.cpu), \(.machine.cores) cores, \(.machine.memory), DPDK \(.machine.dpdk); load average at the end \(.machine.loadavg_at_end).",
    "Date: \(.date), commit \(.commit). Command: `\(.command)`." +
    (if .instr_commit then " Instruction counts: \(.instr_date), commit \(.instr_commit), `make bench-ir`." else "" end)' "$json")
  ROWS="$rows" awk '
    /<!-- bench:begin -->/ {print; print "| Figure | Measured | Target |"; print "|---|---|---|"; print ENVIRON["ROWS"]; skip=1; next}
    /<!-- bench:end -->/ {skip=0}
    !skip {print}' "$readme" >"$readme.tmp" && mv "$readme.tmp" "$readme"
}

if [ "${1:-}" = --table-only ]; then
  table "$OUT" perf/README.md
  exit 0
fi

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building nat64d, flowgen, fastpath (release) into $CARGO_TARGET_DIR"
  cargo build --release -p control --bin nat64d >&2
  cargo build --release -p perf --features dpdk --bin flowgen --bin fastpath >&2
fi
command -v dpdk-testpmd >/dev/null || { log "dpdk-testpmd missing (apt-get install dpdk)"; exit 1; }

# No hugepages: runs must not compete with tests for them, and 1M-flow
# pcaps need more memory than the reserved pages. Both sides get the same.
eal_mem() { echo "--no-huge -m $1 --no-shconf --file-prefix=bench$2 --log-level=*:error"; }

# --- traffic -----------------------------------------------------------
gen() { # name flows dir(v6|v4)
  local f=$WORK/$1.pcap
  [ -f "$f" ] || "$BIN/flowgen" "$3" --flows "$2" --frame-size "$FRAME" --out "$f" 2>/dev/null
  echo "$f"
}

# --- nat64d --------------------------------------------------------------
# siit_yaml IN_DEV_SPEC_V6 DEV_SPEC_V4 EAL_ARGS WORKERS MBUFS
siit_yaml() {
  cat <<EOF
dpdk:
  eal_args: [$3]
  workers: [$4]
  mbufs: $5
interfaces:
  - name: v6
    device: "$1"
    role: ipv6
    mac: "02:00:00:00:06:01"
    ipv6: ["2001:db8:ff::1/64"]
    neighbours:
      - { ip: "2001:db8:ff::2", mac: "02:00:00:00:06:02" }
    routes:
      - { prefix: "2001:db8:1::/48", via: "2001:db8:ff::2" }
  - name: v4
    device: "$2"
    role: ipv4
    mac: "02:00:00:00:04:01"
    ipv4: ["192.0.2.1/24"]
    neighbours:
      - { ip: 192.0.2.2, mac: "02:00:00:00:04:02" }
    routes:
      - { prefix: 203.0.113.0/24, via: 192.0.2.2 }
management:
  # Private endpoints: never collide with (or answer for) another nat64d.
  control_socket: "$WORK/control.sock"
  http_listen: "127.0.0.1:0"
instances:
  - siit:
      name: bench
      pool6: "2001:db8:64::/96"
      eamt:
        - { ipv6: "2001:db8:1::/112", ipv4: 198.18.0.0/16 }
EOF
}

# nat64_yaml: the same ports with a stateful instance instead (RFC 6146);
# with STATIC_BIB set (a file of list items) those bindings too.
nat64_yaml() {
  siit_yaml "$@" | sed '/^instances:/,$d'
  cat <<EOF
instances:
  - nat64:
      name: bench
      pool6: "2001:db8:64::/96"
      pool4:
        - prefix: 198.51.100.0/26
EOF
  if [ -n "${STATIC_BIB:-}" ]; then
    echo "      limits: { max_static_bib: $(($(wc -l <"$STATIC_BIB") + 1)) }"
    echo "      static_bib:"
    sed 's/^/        /' "$STATIC_BIB"
  fi
}

quote_list() { local a out=""; for a in "$@"; do out+="\"$a\", "; done; echo "${out%, }"; }

# Wait for PATTERN in FILE (up to 60 s); false if PID died first.
wait_for() {
  local i
  for i in $(seq 600); do
    grep -q "$1" "$2" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# sample_new FLOWS OUT: while nat64d replays the first pass of a pcap of
# FLOWS flows (one frame each, every one a new session), read its counters
# (`nat64ctl stats`, about 40 ms a read) and write to OUT the Mpps sent
# between 5 % and 95 % of the sessions created: the rate on new flows.
# Gives up after SECONDS_RUN seconds (OUT then says null).
sample_new() {
  local flows=$1 out=$2 samples=$2.samples t0 t1 line start
  : >"$samples"
  start=$(date +%s)
  while [ $(($(date +%s) - start)) -lt "$SECONDS_RUN" ]; do
    t0=$(date +%s.%N)
    line=$("$BIN/nat64ctl" --socket "$WORK/control.sock" --timeout 2 stats --format json 2>/dev/null |
      jq -r '"\([.ports[] | select(.name | endswith("_out")) | .tx_packets] | add) \(.nat64[0].sessions_created)"') || continue
    t1=$(date +%s.%N)
    # The read's midpoint stands for the moment the counters were read.
    echo "$(echo "($t0 + $t1) / 2" | bc -l) $line" >>"$samples"
    [ "${line#* }" -ge "$flows" ] 2>/dev/null && break
  done
  awk -v f="$flows" '$3 >= f * 0.05 && $3 <= f * 0.95 { if (!n++) { t = $1; p = $2 } T = $1; P = $2 }
    END { if (n >= 2 && T > t) printf "%.3f\n", (P - p) / (T - t) / 1e6; else print "null" }' "$samples" >"$out"
}

# run_nat64d TAG DIR(6to4|4to6) PCAP [WORKERS(1|2)] [MODE(siit|nat64)] [WARMUP_PCAP]
#   -> Mpps (or null). With WARMUP_PCAP (4to6 only) the IPv6 port replays
#   that pcap once (the 6->4 warm-up that opens the sessions) and drops
#   what it is given to send instead of a null port; only the IPv4 stream's
#   translations are counted. NEW_FLOWS=N: also sample_new N.
run_nat64d() {
  local tag=$1 dir=$2 pcap=$3 lcores=${4:-1} mode=${5:-siit} warm=${6:-}
  local rx="net_pcap_in,rx_pcap=$pcap,infinite_rx=1" null="net_null_out,no-rx=1"
  [ -n "$warm" ] && null="net_pcap_out,rx_pcap=$warm"
  # The replayed pcap stays in the pool's mbufs: room for it plus the
  # rings (about 2.3 KiB each). EAL's memory is plain anonymous memory
  # here (--no-huge), touched only as used; the pool needs about twice its
  # size reserved (1M buffers failed with 3.7 GB, start with 8 GB).
  local frames mbufs mem
  # Record header 16 bytes; IPv4 frames are FRAME - 24 in the file.
  frames=$(($(stat -c %s "$pcap") / (FRAME - 8) * lcores))
  mbufs=$((frames + 32768))
  mem=$((mbufs * 6 / 1024 + 1024))
  if [ "$lcores" = 2 ]; then
    # Two RX queues on the pcap device: each replays its half (.a, .b).
    rx="net_pcap_in,rx_pcap=${pcap%.pcap}.a.pcap,rx_pcap=${pcap%.pcap}.b.pcap,infinite_rx=1"
    [ -n "$warm" ] && null="net_pcap_out,rx_pcap=$warm,rx_pcap=$warm"
  fi
  local eal workers extra=()
  if [ "$lcores" = 2 ]; then
    # Two workers on two CPUs; the main lcore (control, mostly asleep)
    # shares CPU $CORE2 with the second worker. The lcore map goes on the
    # command line: lcore 2 is not a CPU id, which the configuration check
    # (rightly, for production) refuses.
    eal=$(quote_list --no-pci $(eal_mem "$mem" "n$tag"))
    workers=""
    extra=(-- --lcores "0@$MAIN,1@$CORE,2@$CORE2")
  else
    eal=$(quote_list -l "$MAIN,$CORE" --no-pci $(eal_mem "$mem" "n$tag"))
    workers=1
  fi
  local cfg=$WORK/nat64d-$tag.yaml st=$WORK/stats-$tag.json lg=$WORK/nat64d-$tag.log
  if [ "$dir" = 6to4 ]; then
    "${mode}_yaml" "$rx" "$null" "$eal" "$workers" "$mbufs"
  else
    "${mode}_yaml" "$null" "$rx" "$eal" "$workers" "$mbufs"
  fi >"$cfg"
  rm -f "$st"
  NO_COLOR=1 "$BIN/nat64d" --config "$cfg" --stats-file "$st" "${extra[@]}" 2>"$lg" &
  local pid=$!
  if ! wait_for "dataplane starting" "$lg" "$pid"; then
    log "nat64d $tag did not start: $(tail -3 "$lg" | tr '\n' ' ')"
    wait "$pid" 2>/dev/null || true
    echo null
    return
  fi
  local t0 t1 rest
  t0=$(date +%s.%N)
  # NEW_FLOWS=N: also time the first pass, whose N frames all open sessions.
  if [ -n "${NEW_FLOWS:-}" ]; then
    sample_new "$NEW_FLOWS" "$WORK/new-$tag.mpps"
  fi
  rest=$(echo "$SECONDS_RUN - ($(date +%s.%N) - $t0)" | bc)
  if [ "$(echo "$rest > 0" | bc)" = 1 ]; then sleep "$rest"; fi
  t1=$(date +%s.%N)
  kill -TERM "$pid"
  wait "$pid" || log "nat64d $tag exited with $?"
  local out rx_n tr
  # What left the output port (net_null_out, or net_pcap_out's drops).
  out=$(jq '[.ports[] | select(.device | endswith("_out")) | .opackets] | add' "$st")
  rx_n=$(jq '[.ports[].ipackets] | add' "$st")
  tr=$(jq ".counters.v6_to_v4 + .counters.v4_to_v6" "$st")
  cp "$st" "$WORK/keep-stats-$tag.json"
  log "nat64d $tag: in $rx_n out $out translated $tr in $(echo "$t1 - $t0" | bc) s"
  # The share the express path translated (the rest went the general way).
  local ex
  ex=$(jq '.counters.express // 0' "$st")
  log "nat64d $tag: express path $ex of $tr"
  if [ "${tr:-0}" -gt 0 ]; then put "express_share_${tag%-*}" "$(echo "scale=4; $ex / $tr" | bc)" "packets the express path translated / packets translated (last run)"; fi
  if [ "$out" -eq 0 ] || [ "$tr" -lt $((out * 99 / 100)) ]; then
    log "nat64d $tag drops: $(jq -c .drops "$st")"
    log "nat64d $tag: fewer packets translated than sent; figure discarded"
    echo null
    return
  fi
  echo "scale=3; $out / ($t1 - $t0) / 1000000" | bc
}

# run_testpmd TAG PCAP NFLOWS -> Mpps
run_testpmd() {
  local tag=$1 pcap=$2 n=$3
  local mbufs=$((n + 16384)) mem size=()
  if [ "$n" -gt 65536 ]; then
    # The pcap stays in mbufs: with 2 KiB buffers 1M frames need more
    # memory than EAL's --no-huge segment list takes. Small buffers (the
    # frames fit) keep it at ~1 KiB per frame.
    size=(--mbuf-size=$((FRAME + 384 > 512 ? FRAME + 384 : 512)))
    mem=$((mbufs * 1024 / 1048576 + 512))
  else
    mem=$((mbufs * 3072 / 1048576 + 512))
  fi
  local lg=$WORK/testpmd-$tag.log
  # shellcheck disable=SC2046
  dpdk-testpmd -l "$MAIN,$CORE" --no-pci $(eal_mem "$mem" "t$tag") \
    --vdev="net_pcap_in,rx_pcap=$pcap,infinite_rx=1" --vdev="net_null_out,no-rx=1" -- \
    --forward-mode=io --auto-start --nb-cores=1 --total-num-mbufs="$mbufs" "${size[@]}" --stats-period=1 \
    </dev/null >"$lg" 2>&1 &
  local pid=$!
  if ! wait_for "Rx-pps" "$lg" "$pid"; then
    log "testpmd $tag did not start: $(tail -3 "$lg" | tr '\n' ' ')"
    echo null
    return
  fi
  local t0 t1
  t0=$(date +%s.%N)
  sleep "$SECONDS_RUN"
  t1=$(date +%s.%N)
  kill -INT "$pid"
  wait "$pid" || true
  # testpmd's own per-second rate of the null port (the non-zero Tx-pps
  # lines); the first is a partial second, so the median of the rest.
  local rates
  rates=$(awk '/Tx-pps/ && $2 > 0 {print $2}' "$lg")
  if [ "$(echo "$rates" | wc -l)" -gt 2 ]; then rates=$(echo "$rates" | tail -n +2); fi
  rates=$(echo "$rates" | sort -n)
  log "testpmd $tag: per-second Tx-pps $(echo $rates | tr ' ' ',') over $(echo "$t1 - $t0" | bc) s"
  if [ -z "$rates" ]; then echo null; return; fi
  echo "$rates" | awk '{a[NR]=$1} END {printf "%.3f\n", a[int((NR+1)/2)] / 1e6}'
}

best() { # values... -> max (null when all null)
  printf '%s\n' "$@" | grep -v null | sort -g | tail -1 | grep . || echo null
}

ratio() { if [ "$1" = null ] || [ "$2" = null ]; then echo null; else echo "scale=3; $1 / $2" | bc; fi; }

# --- 1. nat64d against testpmd ---------------------------------------------
in6_s=$(gen "in6_$FLOWS_S" "$FLOWS_S" v6)
in4_s=$(gen "in4_$FLOWS_S" "$FLOWS_S" v4)
# Stateful return streams: nat64d picks pool4 ports at random (RFC 6056),
# so a pcap written beforehand cannot know them. flowgen fixes one pool4
# binding per client endpoint instead, written as static_bib entries; the
# IPv6 stream is replayed once as the warm-up that opens the sessions
# (static bindings never expire, the sessions they carry do as usual).
# At 1M flows the flows share 4096 client endpoints (one source port per
# client, many servers each): a million static_bib lines would take
# minutes to load, and one binding carrying many sessions is the common
# case anyway. The warm-up pcap has the same flows.
ret() { # flows [flowgen options] -> pcap (beside it: .bib, the static_bib items; .v6.pcap, the warm-up)
  local n=$1 f=$WORK/ret4_$1.pcap
  shift
  if [ ! -f "$f" ]; then
    "$BIN/flowgen" v4-static --flows "$n" "$@" --frame-size "$FRAME" --static-bib "${f%.pcap}.bib" --out "$f" 2>/dev/null
    "$BIN/flowgen" v6 --flows "$n" "$@" --frame-size "$FRAME" --out "${f%.pcap}.v6.pcap" 2>/dev/null
  fi
  echo "$f"
}
ret_s=$(ret "$FLOWS_S")

# --- 5. instructions per packet (valgrind's callgrind) -----------------------
# The instructions the whole worker pipeline executes per packet, in
# process (fastpath pipeline, 4k flows): exact and repeatable, so unlike
# the cycle figures they do not move with the machine's load, and a change
# to the packet path shows at once. At 4k flows the path is bound by
# instructions rather than cache misses (see docs/performance.md). The
# figure is the inclusive Ir of fastpath's run_burst (the look-ahead and
# Pipeline::process of each frame, as Worker::run does per burst) over the
# frames it received (the untimed warm-up pass included: the same work).
IR_PACKETS=${BENCH_IR_PACKETS:-200000}
ir_pipeline() { # key config pcap iface [packets] -> Ir per packet (or null)
  local cg=$WORK/ir-$1.cg line rx ir
  line=$(valgrind --tool=callgrind --callgrind-out-file="$cg" "$BIN/fastpath" --core "$CORE" pipeline \
    --config "$2" --pcap "$3" --iface "$4" --packets "${5:-$IR_PACKETS}" --label "$1" 2>/dev/null | tail -1)
  rx=$(echo "$line" | jq '.rx // 0' 2>/dev/null || echo 0)
  # fastpath's run_burst (never inlined) is the worker's per-burst path;
  # the largest inclusive count under its name is the whole call (the
  # other rows are the parts inlined from other files).
  ir=$(callgrind_annotate --inclusive=yes --threshold=100 "$cg" 2>/dev/null |
    grep -E 'fastpath::run_burst( \[|$)' | awk '{gsub(",", "", $1); print $1}' | sort -n | tail -1)
  if [ "${rx:-0}" -gt 0 ] && [ -n "$ir" ]; then echo "scale=1; $ir / $rx" | bc; else echo null; fi
}
ir_section() {
  if ! command -v valgrind >/dev/null; then
    log "valgrind missing (apt-get install valgrind): no instruction counts"
    return
  fi
  local eal cfg_s cfg_n cfg_r v
  eal=$(quote_list -l "$MAIN,$CORE" --no-pci $(eal_mem 1024 ir))
  cfg_s=$WORK/ir-siit.yaml cfg_n=$WORK/ir-nat64.yaml cfg_r=$WORK/ir-nat64-ret.yaml
  siit_yaml "net_pcap_in,rx_pcap=$in6_s,infinite_rx=1" "net_null_out,no-rx=1" "$eal" 1 65536 >"$cfg_s"
  nat64_yaml "net_pcap_in,rx_pcap=$in6_s,infinite_rx=1" "net_null_out,no-rx=1" "$eal" 1 65536 >"$cfg_n"
  # The stateful return stream through the static bindings of ret():
  # each flow's first answer opens its session, the rest are established.
  STATIC_BIB=${ret_s%.pcap}.bib nat64_yaml "net_null_out,no-rx=1" "net_pcap_in,rx_pcap=$ret_s,infinite_rx=1" \
    "$eal" 1 65536 >"$cfg_r"
  for c in "siit_6to4 $cfg_s $in6_s 0" "siit_4to6 $cfg_s $in4_s 1" \
    "nat64_6to4 $cfg_n $in6_s 0" "nat64_4to6 $cfg_r $ret_s 1"; do
    set -- $c
    v=$(ir_pipeline "$1" "$2" "$3" "$4")
    log "instructions per packet, $1: $v"
    put "instr_per_pkt_$1" "$v" "callgrind Ir of the whole pipeline per packet, in process, $FLOWS_S flows"
  done
  # 65 536 flows: past the look-ahead's gate (16 384 live sessions), so
  # this one counts its work too. The warm-up pass opens the sessions:
  # one packet in ten of the 665 536 creates one.
  local in6_m ret_m cfg_rm
  in6_m=$(gen in6_65536 65536 v6)
  v=$(ir_pipeline nat64_6to4_64k "$cfg_n" "$in6_m" 0 $((IR_PACKETS * 3)))
  log "instructions per packet, nat64_6to4_64k: $v"
  put instr_per_pkt_nat64_6to4_64k "$v" "as instr_per_pkt_nat64_6to4 at 65536 flows, with the burst look-ahead; a tenth of the packets open sessions"
  ret_m=$(ret 65536) cfg_rm=$WORK/ir-nat64-ret-64k.yaml
  STATIC_BIB=${ret_m%.pcap}.bib nat64_yaml "net_null_out,no-rx=1" "net_pcap_in,rx_pcap=$ret_m,infinite_rx=1" \
    "$eal" 1 65536 >"$cfg_rm"
  v=$(ir_pipeline nat64_4to6_64k "$cfg_rm" "$ret_m" 1 $((IR_PACKETS * 3)))
  log "instructions per packet, nat64_4to6_64k: $v"
  put instr_per_pkt_nat64_4to6_64k "$v" "as instr_per_pkt_nat64_4to6 at 65536 flows, with the burst look-ahead; a tenth of the packets open sessions"
}
if [ "${1:-}" = --ir ]; then
  # Only the instruction counts, merged into the last full run's results.
  ir_section
  if [ -f "$OUT" ]; then
    jq --slurpfile r "$RES" --arg c "$(git rev-parse --short HEAD)" --arg d "$(date -u +%FT%TZ)" \
      '. + ($r | map({(.key): .value}) | add) + {instr_commit: $c, instr_date: $d}
       | .notes += ($r | map(select(.note != "")) | map({(.key): .note}) | add // {})' "$OUT" >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    table "$OUT" perf/README.md
  fi
  cat "$RES"
  exit 0
fi

in6_l=$(gen "in6_$FLOWS_L" "$FLOWS_L" v6)
in4_l=$(gen "in4_$FLOWS_L" "$FLOWS_L" v4)
ret_l=$(ret "$FLOWS_L" --clients 4096 --client-ports 1)

# Each case: direction, pcap, flows, mode, result suffix. testpmd runs on
# the same pcap right before each nat64d run (interleaved, so a
# neighbour's load hits both alike); the best of BENCH_REPEAT runs counts.
# Stateless SIIT has no per-flow state, so "new" and "established" cost the
# same there; stateful 6->4 replays FLOWS flows, so all but the first pass
# are established sessions. Stateful 4->6 replays the return stream to the
# static bindings after a warm-up pass of the IPv6 stream (see ret above).
# Keys without a suffix are stateful NAT64, "_siit" marks SIIT (before
# 2026-11-24 04:30 UTC mpps_4to6_est_* were SIIT: no NAT64 4->6 run yet).
cases=(
  "6to4 $in6_s $FLOWS_S nat64 6to4_est_4k"
  "6to4 $in6_s $FLOWS_S siit 6to4_est_4k_siit"
  "4to6 $ret_s $FLOWS_S nat64 4to6_est_4k ${ret_s%.pcap}.v6.pcap"
  "4to6 $in4_s $FLOWS_S siit 4to6_est_4k_siit"
  "6to4 $in6_l $FLOWS_L nat64 6to4_est_1m"
  "6to4 $in6_l $FLOWS_L siit 6to4_est_1m_siit"
  "4to6 $ret_l $FLOWS_L nat64 4to6_est_1m ${ret_l%.pcap}.v6.pcap"
  "4to6 $in4_l $FLOWS_L siit 4to6_est_1m_siit"
)
for case in "${cases[@]}"; do
  set -- $case
  dir=$1 pcap=$2 n=$3 mode=$4 key=$5 warm=${6:-}
  tp=() nd=()
  bib=""
  [ -n "$warm" ] && bib=${pcap%.pcap}.bib
  # The stateful 6->4 runs' first pass is also the new-flow figure.
  new=""
  # (At 4k flows the first pass lasts about a millisecond: too short to read.)
  [ "$mode$dir$warm" = nat646to4 ] && [ "$n" -ge 100000 ] && new=$n
  for r in $(seq "$REPEAT"); do
    tp+=("$(run_testpmd "$key-$r" "$pcap" "$n")")
    nd+=("$(NEW_FLOWS=$new STATIC_BIB=$bib run_nat64d "$key-$r" "$dir" "$pcap" 1 "$mode" "$warm")")
  done
  t=$(best "${tp[@]}") d=$(best "${nd[@]}")
  put "testpmd_mpps_$key" "$t" "runs: ${tp[*]}"
  why=""
  [ "$d" = null ] && why=" (not measured: see the nat64d-$key-*.log in the work directory)"
  put "mpps_$key" "$d" "$mode; runs: ${nd[*]}$why"
  put "ratio_vs_testpmd_$key" "$(ratio "$d" "$t")" "$mode"
  if [ -n "$new" ]; then
    nk=${key/_est_/_new_} nv=()
    for r in $(seq "$REPEAT"); do nv+=("$(cat "$WORK/new-$key-$r.mpps" 2>/dev/null || echo null)"); done
    d=$(best "${nv[@]}")
    put "mpps_$nk" "$d" "first pass of the $n-flow pcap (every frame a new session), from nat64d's counters read about every 40 ms; runs: ${nv[*]}"
    put "ratio_vs_testpmd_$nk" "$(ratio "$d" "$t")" "against testpmd on the same pcap"
  fi
done
t4k=$(jq -s 'map(select(.key=="testpmd_mpps_6to4_est_4k"))[0].value' "$RES")
put testpmd_mpps_4k "$t4k" "testpmd io forwarding, net_pcap infinite_rx -> net_null, 1 core"

# --- 4. two workers against one (SIIT 6->4, 4k flows) -------------------------
"$BIN/flowgen" v6 --flows $((FLOWS_S / 2)) --seed 1 --frame-size "$FRAME" --out "${in6_s%.pcap}.a.pcap" 2>/dev/null
"$BIN/flowgen" v6 --flows $((FLOWS_S / 2)) --seed 2 --frame-size "$FRAME" --out "${in6_s%.pcap}.b.pcap" 2>/dev/null
two=()
for r in $(seq "$REPEAT"); do two+=("$(run_nat64d "two-$r" 6to4 "$in6_s" 2 nat64)"); done
two_best=$(best "${two[@]}")
one=$(jq -s 'map(select(.key=="mpps_6to4_est_4k"))[0].value' "$RES")
put mpps_6to4_est_4k_2workers "$two_best" "nat64; runs: ${two[*]}; lcores $CORE and $CORE2 (main lcore shares $CORE2)"
put scaling_2workers_vs_1 "$(ratio "$two_best" "$one")" ""
hand=null
if [ -f "$WORK/keep-stats-two-1.json" ]; then
  hand=$(jq '.counters.handoffs // null' "$WORK/keep-stats-two-1.json")
fi
put handoffs_2workers "$hand" "IPv4 packets handed to the owning worker; 6->4 traffic needs none (each worker owns its sessions)"
# The stateful return stream with two workers: both RX queues replay every
# answer (.a and .b are the same pcap), so half of them arrive at the
# worker that does not own the binding and are handed over (a NIC's RSS
# would spread them the same way: by hash, not by pool4 owner).
ln -sf "$ret_s" "${ret_s%.pcap}.a.pcap"
ln -sf "$ret_s" "${ret_s%.pcap}.b.pcap"
two46=()
for r in $(seq "$REPEAT"); do
  two46+=("$(STATIC_BIB=${ret_s%.pcap}.bib run_nat64d "two46-$r" 4to6 "$ret_s" 2 nat64 "${ret_s%.pcap}.v6.pcap")")
done
two46_best=$(best "${two46[@]}")
put mpps_4to6_est_4k_2workers "$two46_best" "nat64; runs: ${two46[*]}"
put scaling_4to6_2workers_vs_1 "$(ratio "$two46_best" "$(jq -s 'map(select(.key=="mpps_4to6_est_4k"))[0].value' "$RES")")" ""
hand=null
if [ -f "$WORK/keep-stats-two46-1.json" ]; then
  hand=$(jq '.counters.handoffs // null' "$WORK/keep-stats-two46-1.json")
fi
put handoffs_4to6_2workers "$hand" "IPv4 answers handed to the worker owning their binding, first run (about half of what arrived)"
lost=null
if [ -f "$WORK/keep-stats-two46-1.json" ]; then
  lost=$(jq '([.ports[].ipackets] | add) - ([.ports[].opackets] | add)' "$WORK/keep-stats-two46-1.json")
fi
put lost_4to6_2workers "$lost" "received but not sent in that run: handoff rings overflowing (the second worker shares its CPU)"

# --- 2./3. in-process fast path on real mbufs --------------------------------
fp() { "$BIN/fastpath" --core "$CORE" "$@"; }
# fp_pipeline WHAT FASTPATH_ARGS... -> the run's JSON line, logged; nulls
# for a run that translated less than half of what it received (a pcap
# that missed its bindings would time the drop path instead).
fp_pipeline() {
  local what=$1 line
  shift
  line=$(fp "$@" | tail -1)
  log "fastpath pipeline $what: $line"
  if ! echo "$line" | jq -e '(.v6_to_v4 + .v4_to_v6) * 2 > .rx' >/dev/null 2>&1; then
    log "fastpath pipeline $what translated too little; no figure"
    line='{"cycles_per_pkt": null, "ns_per_pkt": null}'
  fi
  echo "$line"
}
# NAT64 4->6 replays the return stream to the static bindings of the
# nat64d run's configuration: the untimed warm-up pass opens the sessions.
for c in "siit 6to4 $in6_s 0 6to4_est_4k_siit" "siit 4to6 $in4_s 1 6to4_est_4k_siit" \
  "nat64 6to4 $in6_s 0 6to4_est_4k" "nat64 4to6 $ret_s 1 4to6_est_4k"; do
  set -- $c
  mode=$1 dir=$2 pc=$3 iface=$4
  cfg=$WORK/nat64d-$5-1.yaml
  args=(pipeline --config "$cfg" --pcap "$pc" --iface "$iface" --packets "$PACKETS" --label "${mode}_$dir")
  line=$(fp_pipeline "$mode $dir" "${args[@]}")
  put "pipeline_cycles_per_pkt_${mode}_$dir" "$(echo "$line" | jq .cycles_per_pkt)" "whole worker pipeline in process ($mode, $FLOWS_S flows), median burst"
  put "pipeline_ns_per_pkt_${mode}_$dir" "$(echo "$line" | jq .ns_per_pkt)" ""
  # A/B of the express path (docs/architecture.md): every frame the general way.
  line=$(fp_pipeline "$mode $dir (no express path)" --no-express "${args[@]}")
  put "pipeline_cycles_per_pkt_${mode}_${dir}_general" "$(echo "$line" | jq .cycles_per_pkt)" "as pipeline_cycles_per_pkt_${mode}_$dir without the express path"
done

fp nat64 --sessions "$SESSIONS" --packets "$PACKETS" --frame-size "$FRAME" >"$WORK/nat64.jsonl"
while read -r line; do
  log "fastpath nat64: $line"
  m=$(echo "$line" | jq -r .measure) n=$(echo "$line" | jq .sessions)
  case $n in 4096) s=4k ;; 1000000) s=1m ;; 10000000) s=10m ;; *) s=$n ;; esac
  case $m in
    nat64_est_6to4)
      put "cycles_per_pkt_$s" "$(echo "$line" | jq .cycles_per_pkt)" "stateful translator 6->4, established, real mbufs"
      put "ns_per_pkt_$s" "$(echo "$line" | jq .ns_per_pkt)" "" ;;
    nat64_est_4to6)
      put "cycles_per_pkt_4to6_$s" "$(echo "$line" | jq .cycles_per_pkt)" "" ;;
    nat64_new)
      put "cycles_per_pkt_new_$s" "$(echo "$line" | jq .cycles_per_pkt)" "first packet of each flow (creates BIB + session)"
      put "new_sessions_per_s_$s" "$(echo "$line" | jq .new_sessions_per_s)" ""
      put "bytes_per_session_$s" "$(echo "$line" | jq .rss_bytes_per_session)" "RSS growth while filling / sessions"
      put "table_bytes_per_session_$s" "$(echo "$line" | jq .table_bytes_per_session)" ""
      put "anon_huge_bytes_$s" "$(echo "$line" | jq '.anon_huge_bytes // null')" "transparent huge page memory the kernel gave (AnonHugePages) with the tables filled" ;;
  esac
done <"$WORK/nat64.jsonl"
# Diagnostic: the same with glibc's malloc asking for transparent huge
# pages (THP is `madvise` on Debian, so the session tables otherwise sit
# on 4 KiB pages): the TLB share of the cycles above. BENCH_THP=0 skips.
if [ "${BENCH_THP:-1}" = 1 ]; then
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 fp nat64 --sessions "$SESSIONS" --packets "$PACKETS" \
    --frame-size "$FRAME" >"$WORK/nat64-thp.jsonl"
  while read -r line; do
    log "fastpath nat64 (THP): $line"
    m=$(echo "$line" | jq -r .measure) n=$(echo "$line" | jq .sessions)
    case $n in 4096) s=4k ;; 1000000) s=1m ;; 10000000) s=10m ;; *) s=$n ;; esac
    case $m in
      nat64_est_6to4) put "cycles_per_pkt_${s}_thp" "$(echo "$line" | jq .cycles_per_pkt)" "as cycles_per_pkt_$s, tables on transparent huge pages (glibc.malloc.hugetlb=1)" ;;
      nat64_est_4to6) put "cycles_per_pkt_4to6_${s}_thp" "$(echo "$line" | jq .cycles_per_pkt)" "" ;;
      nat64_new) put "new_sessions_per_s_${s}_thp" "$(echo "$line" | jq .new_sessions_per_s)" "" ;;
    esac
  done <"$WORK/nat64-thp.jsonl"
fi

# An A/B run of the translator: `fastpath FLAG nat64` at SESSIONS (4k or
# 1m), its established figures recorded as cycles_per_pkt[_4to6]_S_SUFFIX.
# ab_nat64 FLAG SESSIONS S SUFFIX WHAT
ab_nat64() {
  local flag=$1 n=$2 s=$3 suffix=$4 what=$5 line
  fp "$flag" nat64 --sessions "$n" --packets "$PACKETS" --frame-size "$FRAME" >"$WORK/nat64-$suffix.jsonl"
  while read -r line; do
    log "fastpath nat64 ($what): $line"
    case $(echo "$line" | jq -r .measure) in
      nat64_est_6to4) put "cycles_per_pkt_${s}_$suffix" "$(echo "$line" | jq .cycles_per_pkt)" "as cycles_per_pkt_$s $what" ;;
      nat64_est_4to6) put "cycles_per_pkt_4to6_${s}_$suffix" "$(echo "$line" | jq .cycles_per_pkt)" "" ;;
    esac
  done <"$WORK/nat64-$suffix.jsonl"
}
# The express path: the 4k-session figures, every packet the general way.
ab_nat64 --no-express 4096 4k general "without the express path"
# The worker's burst look-ahead (prefetch session state for the whole
# burst, stage by stage, before translating it): the 1M-session figures.
ab_nat64 --no-lookahead 1000000 1m no_lookahead "without the burst look-ahead"

# The machine's memory floor at the 1M and 10M table sizes: one random
# 64-byte line read after another, and in prefetched batches of 32 (as the
# look-ahead reads). At 10M each packet reads four such lines (two index
# buckets, two records), so 4 x the batch figure is its memory floor.
fp memory --mib 64,640 >"$WORK/memory.jsonl"
while read -r line; do
  log "fastpath memory: $line"
  mib=$(echo "$line" | jq .mib)
  put "memory_dependent_cycles_${mib}mib" "$(echo "$line" | jq .dependent_cycles_per_read)" "one random line of a $mib MiB table after another (latency)"
  put "memory_batch32_cycles_${mib}mib" "$(echo "$line" | jq .batch32_cycles_per_read)" "random lines of a $mib MiB table, prefetched 32 at a time (throughput)"
done <"$WORK/memory.jsonl"

# Headline figures: setup rate into an empty 1M table, memory at 10M.
pick() { jq -s --arg k "$1" 'map(select(.key==$k))[0].value // null' "$RES"; }
big=$(echo "$SESSIONS" | tr ',' '\n' | sort -n | tail -1)
case $big in 10000000) bs=10m ;; 1000000) bs=1m ;; 4096) bs=4k ;; *) bs=$big ;; esac
put new_sessions_per_s "$(pick new_sessions_per_s_1m)" "in-process, 1M-session table filled from empty"
put bytes_per_session "$(pick "bytes_per_session_$bs")" "resident bytes per session at $big sessions"

# --- 5. instructions per packet (defined above, with the --ir mode) ---------
if [ "${BENCH_IR:-1}" = 1 ]; then ir_section; fi

# --- results --------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
jq -s --arg date "$(date -u +%FT%TZ)" --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
  --arg cores "$(nproc)" --arg mem "$(free -g | awk '/Mem:/ {print $2}') GiB" \
  --arg dpdk "$(pkg-config --modversion libdpdk 2>/dev/null || echo ?)" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg commit "$(git rev-parse --short HEAD)" \
  --arg cmd "make bench (BENCH_SECONDS=$SECONDS_RUN BENCH_REPEAT=$REPEAT BENCH_FLOWS_SMALL=$FLOWS_S BENCH_FLOWS_LARGE=$FLOWS_L BENCH_SESSIONS=$SESSIONS BENCH_PACKETS=$PACKETS BENCH_FRAME=$FRAME)" \
  --argjson secs "$(($(date +%s) - started))" \
  '(map({(.key): .value}) | add) + {
     machine: {cpu: $cpu, cores: ($cores|tonumber), memory: $mem, dpdk: $dpdk, loadavg_at_end: $load},
     date: $date, commit: $commit, command: $cmd, runtime_s: $secs,
     notes: (map(select(.note != "")) | map({(.key): .note}) | add)}' "$RES" >"$OUT"
log "wrote $OUT"
table "$OUT" perf/README.md
log "updated perf/README.md; work files in $WORK"
