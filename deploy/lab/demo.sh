#!/usr/bin/env bash
# `make demo`: an IPv6-only client reaches an IPv4-only server by name,
# through DNS64 (Unbound) and nat64d on DPDK, in a namespace lab that is
# torn down at the end, also after a failure or Ctrl-C.
#
# Environment: ENGINE=nat64 (default) or siit (a stateless stand-in),
# ARMS=2 (default) or 1, NAT64D=path (default target/release/nat64d, under $CARGO_TARGET_DIR when set).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LAB=$HERE/lab.sh
ENGINE=${ENGINE:-nat64}
ARMS=${ARMS:-2}
export LAB_DIR=${LAB_DIR:-/tmp/n64lab}
export NAT64D=${NAT64D:-${CARGO_TARGET_DIR:-$ROOT/target}/release/nat64d}
NAT64CTL=${NAT64CTL:-$(dirname "$NAT64D")/nat64ctl}
PATH="$(dirname "$NAT64CTL"):$PATH"
export PATH

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'; else B="" G="" R="" D="" N=""; fi
n=0 ok=0 bad=0
step() {
  n=$((n + 1))
  printf '\n%s%d. %s%s\n' "$B" "$n" "$1" "$N"
  [ -n "${2:-}" ] && printf '   %s%s%s\n' "$D" "$2" "$N"
  return 0
}
# show HOST CMD...: print the command as typed on HOST, run it there, indent
# its output, and count it as a check.
show() {
  local host=$1
  shift
  local shown="$*"
  [ "$1" = bash ] && [ "${2:-}" = -c ] && shown=$3
  printf '   %sn64%s$%s %s\n' "$B" "$host" "$N" "$shown"
  local out rc
  out=$("$LAB" x "$host" "$@" 2>&1)
  rc=$?
  [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/     /'
  if [ $rc -eq 0 ]; then ok=$((ok + 1)); else
    bad=$((bad + 1))
    printf '     %s(failed: exit %d)%s\n' "$R" "$rc" "$N"
  fi
  return $rc
}

cleanup() {
  local rc=$?
  [ -f "$LAB_DIR/nat64d.pid" ] && "$LAB" stop >/dev/null 2>&1
  "$LAB" down
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (namespaces, DPDK)"; exit 1; }
[ -x "$NAT64D" ] || { echo "demo: no $NAT64D; run: cargo build --release -p control"; exit 1; }
"$LAB" deps

printf '%sNAT64 demo%s: an IPv6-only client reaches an IPv4-only server by name.\n' "$B" "$N"
cat <<EOF
   n64cli  2001:db8:2::10 (IPv6 only) --+
   n64dns  2001:db8:3::53 (Unbound DNS64)+-- n64rt -- 2001:db8:1::1 [nat64d] 198.51.100.1 -- n64srv 198.51.100.10
   n64web6 2001:db8:4::80 (IPv6 only) --+   router     DPDK af_packet       (IPv4 only: nginx, iperf3)
   pool6 2001:db8:64::/96   pool4 203.0.113.1   zone lab.example: www -> A 198.51.100.10 only
EOF

step "Build the lab" "namespaces n64*, veth pairs with offloads off, Unbound, nginx, iperf3 ($ARMS-armed)"
"$LAB" up --arms "$ARMS" 2>&1 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

step "Start nat64d ($ENGINE) in namespace n64x" "DPDK owns n64x6/n64x4 through net_af_packet; the lab is ready when nat64d answers ping"
"$LAB" start --engine "$ENGINE" 2>&1 | sed 's/^/   /'
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
echo "   its translation instance, from $LAB_DIR/nat64d.yaml:"
sed -n '/^instances:/,/^management:/p' "$LAB_DIR/nat64d.yaml" | grep -vE '^(instances|management):|^ *#' | sed 's/^/   | /'

step "DNS64: the name has only an A record; the resolver synthesizes an AAAA inside pool6" \
  "2001:db8:64::c633:640a is 198.51.100.10 embedded after the /96 (RFC 6052 §2.2)"
show cli dig +short A www.lab.example
show cli dig +short AAAA www.lab.example

step "HTTP by name: curl resolves www.lab.example to the synthesized address and goes through nat64d"
show cli curl -sS -m 5 http://www.lab.example/
show srv tail -n1 "$LAB_DIR/nginx-srv.access"
printf '     %s(the IPv4-only server saw the request from pool4, not from the IPv6 client)%s\n' "$D" "$N"

step "ICMP by address: ping the IPv4 server's pool6 address (echo translated both ways)"
show cli ping -c 3 -i 0.2 -W 1 2001:db8:64::198.51.100.10

step "traceroute: the router, the appliance (it decrements the hop limit like a router), the IPv4 server"
show cli traceroute -n -q 1 -w 1 -m 6 2001:db8:64::198.51.100.10

step "iperf3 TCP, 3 seconds (client IPv6, server IPv4)"
show cli bash -c "iperf3 -c iperf.lab.example -t 3 -f m | grep -E 'sender|receiver'"

step "iperf3 UDP, 3 seconds at 100 Mbit/s, 1200-byte datagrams"
show cli bash -c "iperf3 -u -c iperf.lab.example -t 3 -b 100M -l 1200 -f m | grep -E 'receiver'"

if [ "$ENGINE" = nat64 ]; then
  step "The other way: a static BIB entry (203.0.113.1#8080 -> [2001:db8:4::80]#80) lets an IPv4 client reach the IPv6-only server"
  show srv curl -sS -m 5 http://203.0.113.1:8080/
fi

if "$NAT64CTL" --help 2>/dev/null | grep -qi session; then
  step "Sessions held by the appliance (nat64ctl over the control socket)" \
    "each IPv6 transport address is bound to one pool4 address:port (the BIB), per remote (the session)"
  show x bash -c "nat64ctl --socket $LAB_DIR/control.sock session list | head -12"
fi

if "$LAB" x x curl -sf -m 2 http://127.0.0.1:9464/metrics >/dev/null 2>&1; then
  step "A few metrics (Prometheus, http://127.0.0.1:9464/metrics inside n64x)" \
    "translated packets each way, sessions, pool4 ports in use, and every drop reason that is not zero"
  show x bash -c "curl -sS http://127.0.0.1:9464/metrics | grep -E '^nat64_(translated_packets_total|sessions|sessions_created_total|pool4_ports_in_use|dropped_packets_total)[{ ]' | grep -v ' 0$'"
fi

step "Stop nat64d with SIGTERM: it drains, closes the ports and writes its counters"
rc=$("$LAB" stop 2>&1)
printf '   exit status %s\n' "$rc"
if [ "$rc" = 0 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
if [ -f "$LAB_DIR/stats.json" ]; then
  python3 - "$LAB_DIR/stats.json" <<'EOF' | sed 's/^/   /'
import json, sys
s = json.load(open(sys.argv[1]))
c = s["counters"]
print("packets  rx %(rx)d  tx %(tx)d   translated 6->4 %(v6_to_v4)d  4->6 %(v4_to_v6)d" % c)
print("served   arp %(arp_replies)d  nd %(nd_adverts)d  echo %(echo_replies)d  icmp errors sent %(icmp_errors)d" % c)
print("drops    " + (", ".join("%s %d" % kv for kv in sorted(s["drops"].items())) or "none"))
EOF
fi

step "Tear down" "every n64* namespace and veth is removed (also on failure or Ctrl-C)"
trap - EXIT
"$LAB" down
echo "   done"
printf '\n%sdemo: %d passed, %d failed%s\n' "$([ $bad -eq 0 ] && echo "$G" || echo "$R")" $ok $bad "$N"
[ $bad -eq 0 ]
