#!/usr/bin/env bash
# nat64d vs TAYGA in the same lab with the same clients (perf/README.md,
# "Lab: nat64d vs TAYGA"). For each translator: TCP throughput (iperf3, one
# stream, IPv6 client -> IPv4 server by name) and small-packet UDP packets
# per second (iperf3 -u, 18-byte payload: 80-byte frames on the IPv6 side,
# 60 on the IPv4 side, sent as fast as the client can). RUNS runs of SECS
# seconds each; the median is printed as a Markdown table.
#
#   deploy/lab/compare-tayga.sh            (ENGINE=nat64|siit, RUNS=3, SECS=5)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LAB=$HERE/lab.sh
export LAB_DIR=${LAB_DIR:-/tmp/n64lab}
export NAT64D=${NAT64D:-${CARGO_TARGET_DIR:-$ROOT/target}/release/nat64d}
ENGINE=${ENGINE:-nat64}
RUNS=${RUNS:-3}
SECS=${SECS:-5}

trap '"$LAB" stop >/dev/null 2>&1; "$LAB" down' EXIT
# Everything here shares the machine's CPUs: say how busy it was.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs" >&2
"$LAB" deps
"$LAB" up >/dev/null

rxpk() { "$LAB" x srv cat /sys/class/net/n64srv0/statistics/rx_packets; }

# One iperf3 run; prints the figure. tcp: Mbit/s received. udp: packets per
# second that reached the IPv4 server's interface (the translator's output;
# iperf3's own receiver loses many of them in its socket buffer), then the
# rate the client offered.
measure() {
  local kind=$1 json before after
  if [ "$kind" = tcp ]; then
    json=$("$LAB" x cli timeout $((SECS + 20)) iperf3 -c iperf.lab.example -t "$SECS" -J)
    python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; print("%.0f" % (e["sum_received"]["bits_per_second"]/1e6))' <<<"$json"
  else
    before=$(rxpk)
    json=$("$LAB" x cli timeout $((SECS + 20)) iperf3 -u -c iperf.lab.example -t "$SECS" -l 18 -b 0 -J)
    after=$(rxpk)
    python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; d=int(sys.argv[1]); print("%.0f/%.0f" % (d/s["seconds"], s["packets"]/s["seconds"]))' \
      $((after - before)) <<<"$json"
  fi
}

# The median run (by its first figure).
median() { tr ' ' '\n' | grep . | sort -t/ -k1,1n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A RES
for t in nat64d tayga; do
  if [ $t = nat64d ]; then "$LAB" start --engine "$ENGINE" >/dev/null; else "$LAB" tayga-start >/dev/null; fi
  # Warm up: neighbours resolved, first sessions created.
  "$LAB" x cli curl -sS -m 5 -o /dev/null http://www.lab.example/
  for kind in tcp udp; do
    vals=""
    for _ in $(seq "$RUNS"); do vals+="$(measure $kind) "; done
    RES[$t.$kind]=$(median <<<"$vals")
    echo "$t $kind: $vals-> median ${RES[$t.$kind]}" >&2
  done
  if [ $t = nat64d ]; then
    "$LAB" stop >/dev/null
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("nat64d ports:", [(p["device"], p["imissed"]) for p in s["ports"]], "drops:", s["drops"])' \
      "$LAB_DIR/stats.json" >&2
  else
    "$LAB" tayga-stop
  fi
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cat <<EOF
| translator | TCP, 1 stream (Mbit/s) | UDP 18-byte payload: delivered / offered (packets/s) |
| --- | --- | --- |
| nat64d ($ENGINE, DPDK net_af_packet, 1 worker) | ${RES[nat64d.tcp]} | ${RES[nat64d.udp]} |
| TAYGA 0.9.2 + kernel NAT44 (TUN) | ${RES[tayga.tcp]} | ${RES[tayga.udp]} |
EOF
