#!/usr/bin/env bash
# The failover lab: two nat64d appliances with the same two NAT64
# instances behind one router, session sync between them over a management
# link, and a health check on the router that moves A's pools to B when A
# stops answering. Instance ha is active on A (B its standby), instance hb
# active on B (A its standby): active/standby per instance, active/active
# per appliance.
#
#   ha.sh up                     build namespaces, links, servers
#   ha.sh start a|b              write the appliance's config, start nat64d
#                                (HA_SYNC=0: without session sync)
#   ha.sh watch                  start the router's health check (background)
#   ha.sh route a|b              point instance ha's pools at A or B now
#                                (time into route.time)
#   ha.sh kill a|b               SIGKILL the appliance (time into kill.time)
#   ha.sh ctl a|b ARGS...        nat64ctl against the appliance's socket
#   ha.sh x NS CMD...            run CMD in namespace $TAG-NS
#   ha.sh down                   remove everything (idempotent)
#
#   TAG-cli 2001:db8:2::10                                TAG-srv 192.0.2.10
#        \                                                   /
#         TAG-rt  br6 2001:db8:1::1/64    br4 198.51.100.1/24  192.0.2.1/25
#          |  \                          /   |
#          |   +--- TAG-a  ::a / .10 ---+    |     A: nat64d -l 0 (ha active)
#          +------- TAG-b  ::b / .11 --------+     B: nat64d -l 1 (hb active)
#                   A 192.0.2.129 === B 192.0.2.130  management link (sync)
#
# The router's ends of the appliances' ports are bridged (br6, br4), so it
# resolves either appliance on the same link (NDP/ARP) and a failover is one
# route change per family. Instance ha: pool6 2001:db8:64::/96
# (network-specific, RFC 6052 §3.1), pool4 203.0.113.1; hb: 2001:db8:46::/96,
# 203.0.113.2. Only documentation ranges (RFC 3849, RFC 5737). Names: every namespace is $TAG-<host>, every link starts with
# $TAG (HA_TAG, default "halab"; the test uses its pid), so two labs with
# different tags can run side by side.
set -euo pipefail

HA_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The namespace, veth and address helpers (nsx, veth, addr, die).
# shellcheck source=deploy/lab/lab.sh
. "$HA_HERE/lab.sh"
log() { printf '%s\n' "ha: $*" >&2; }

T=${HA_TAG:-halab}
HA_DIR=${HA_DIR:-/tmp/$T}
NAT64D=${NAT64D:-${CARGO_TARGET_DIR:-$ROOT/target}/release/nat64d}
NAT64CTL=${NAT64CTL:-$(dirname "$NAT64D")/nat64ctl}
HOSTS=(cli rt srv a b)
((${#T} <= 9)) || die "HA_TAG '$T' is too long for interface names (9 characters at most)"

POOL6=2001:db8:64:: POOL4=203.0.113.1
# The second instance, active on B (active/active: each appliance is the
# other's standby).
POOL6B=2001:db8:46:: POOL4B=203.0.113.2
CLI6=2001:db8:2::10 SRV4=192.0.2.10
RT6=2001:db8:1::1 RT4=198.51.100.1
A6=2001:db8:1::a A4=198.51.100.10 AM=192.0.2.129
B6=2001:db8:1::b B4=198.51.100.11 BM=192.0.2.130
SYNC_PORT=6146

ns() { echo "$T-$1"; }
# Appliance addresses by letter: v6, v4, management, peer's management.
app6() { if [ "$1" = a ]; then echo $A6; else echo $B6; fi; }
app4() { if [ "$1" = a ]; then echo $A4; else echo $B4; fi; }
appm() { if [ "$1" = a ]; then echo $AM; else echo $BM; fi; }
peerm() { if [ "$1" = a ]; then echo $BM; else echo $AM; fi; }
letter() { case ${1:-} in a | b) ;; *) die "appliance must be a or b, not '${1:-}'" ;; esac; }

cmd_down() {
  local h n pids
  for h in "${HOSTS[@]}"; do
    n=$(ns "$h")
    ip netns list 2>/dev/null | grep -qw "^$n" || continue
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    # Word splitting wanted: one pid per word.
    # shellcheck disable=SC2086
    if [ -n "$pids" ]; then kill -KILL $pids 2>/dev/null || true; fi
  done
  for h in "${HOSTS[@]}"; do
    n=$(ns "$h")
    ip netns list 2>/dev/null | grep -qw "^$n" || continue
    for _ in $(seq 50); do
      [ -z "$(ip netns pids "$n" 2>/dev/null || true)" ] && break
      sleep 0.1
    done
    ip netns del "$n" 2>/dev/null || true
  done
  # The appliances' watchers (outside the namespaces) write the exit
  # status last: wait for them, so that nothing writes into $HA_DIR after.
  local x
  for x in a b; do
    [ -f "$HA_DIR/$x.pid" ] || continue
    for _ in $(seq 100); do
      [ -f "$HA_DIR/$x.rc" ] && break
      sleep 0.05
    done
  done
  local l
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$T" || true); do
    ip link del "$l" 2>/dev/null || true
  done
}

# A bridge in the router namespace with the router's address on it.
bridge() {
  local br=$1 ip=$2
  nsx "$(ns rt)" ip link add "$br" type bridge mcast_snooping 0
  nsx "$(ns rt)" ip link set "$br" up
  addr "$(ns rt)" "$br" "$ip"
}

# Appliance X's port FAMILY (6 or 4): veth from the appliance to the bridge.
port() {
  local x=$1 fam=$2 rt
  rt=$(ns rt)
  veth "$T$x$fam" "$(ns "$x")" "${T}r$x$fam" "$rt"
  nsx "$rt" ip link set "${T}r$x$fam" master "${T}br$fam"
  nsx "$rt" sysctl -qw "net.ipv6.conf.${T}r$x$fam.disable_ipv6=1"
  # The appliance's ports belong to DPDK: no kernel IPv6 on them.
  nsx "$(ns "$x")" sysctl -qw "net.ipv6.conf.$T$x$fam.disable_ipv6=1"
}

cmd_up() {
  [ "$(id -u)" -eq 0 ] || die "the lab needs root"
  local c absent=""
  for c in ip ethtool nsenter ping iperf3; do
    command -v "$c" >/dev/null || absent+=" $c"
  done
  [ -z "$absent" ] || die "missing:$absent (install with: deploy/lab/lab.sh deps)"
  cmd_down
  mkdir -p "$HA_DIR"
  rm -f "$HA_DIR"/*.time "$HA_DIR"/*.rc "$HA_DIR"/*.pid "$HA_DIR"/watch.log
  local h
  for h in "${HOSTS[@]}"; do
    ip netns add "$(ns "$h")"
    nsx "$(ns "$h")" ip link set lo up
  done
  local rt cli srv
  rt=$(ns rt) cli=$(ns cli) srv=$(ns srv)
  nsx "$rt" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1

  veth "${T}c0" "$cli" "${T}rc" "$rt"
  addr "$rt" "${T}rc" 2001:db8:2::1/64
  addr "$cli" "${T}c0" $CLI6/64
  nsx "$cli" ip -6 route add default via 2001:db8:2::1

  veth "${T}s0" "$srv" "${T}rs" "$rt"
  addr "$rt" "${T}rs" 192.0.2.1/25
  addr "$srv" "${T}s0" $SRV4/25
  nsx "$srv" ip route add default via 192.0.2.1
  nsx "$srv" sysctl -qw net.ipv6.conf.all.disable_ipv6=1

  bridge "${T}br6" $RT6/64
  bridge "${T}br4" $RT4/24
  for h in a b; do
    port $h 6
    port $h 4
  done
  # The management link is the kernel's: sync is a UDP socket of nat64d.
  veth "${T}am" "$(ns a)" "${T}bm" "$(ns b)"
  addr "$(ns a)" "${T}am" $AM/25
  addr "$(ns b)" "${T}bm" $BM/25

  # A is active for instance ha, B for instance hb.
  nsx "$rt" ip -6 route add ${POOL6}/96 via $A6
  nsx "$rt" ip route add $POOL4/32 via $A4
  nsx "$rt" ip -6 route add ${POOL6B}/96 via $B6
  nsx "$rt" ip route add $POOL4B/32 via $B4

  # The shared secret of the sync (64 hex characters, mode 0600).
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$HA_DIR/sync.key")

  nsx "$srv" iperf3 -s -D -B $SRV4 --pidfile "$HA_DIR/iperf3.pid" --logfile "$HA_DIR/iperf3.log" </dev/null >/dev/null 2>&1
  nsx "$srv" /usr/bin/python3 "$HA_HERE/ha_udp.py" echo $SRV4 7 </dev/null >"$HA_DIR/echo.log" 2>&1 &
  log "up: tag $T, files in $HA_DIR"
}

# One DPDK port of appliance X in the configuration: family FAM (6 or 4),
# its address and the route towards the client or the server.
iface() {
  local x=$1 fam=$2 ip=$3 to=$4 via=$5
  cat <<EOF
  - name: v$fam
    device: "net_af_packet$((fam == 4)),iface=$T$x$fam,qpairs=1,framecnt=${AFP_FRAMES:-4096}"
    role: ipv$fam
    ipv$fam: ["$ip"]
    routes:
      - { prefix: "$to", via: "$via" }
EOF
}

# Instance ha's port allocation: HA_ALLOC=blocks gives each client blocks
# of 512 ports (the standby must then claim the blocks of what it imports).
allocation() {
  case ${HA_ALLOC:-dynamic} in
    dynamic) ;;
    blocks) echo "      allocation: { mode: blocks, block_size: 512, max_blocks_per_client: 16 }" ;;
    *) die "HA_ALLOC must be dynamic or blocks" ;;
  esac
}

# The appliance's configuration: one lcore (A: 0, B: 1; the main thread
# polls), its own file prefix, the same instance as the peer, and a sync
# block naming the peer on the management link.
write_config() {
  local x=$1 sync=$2 lcore=0
  [ "$x" = b ] && lcore=1
  {
    echo "# Generated by deploy/lab/ha.sh: appliance $x of the failover lab."
    cat <<EOF
dpdk:
  eal_args: ["-l", "$lcore", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--file-prefix=$T$x", "--log-level=*:warning"]
  workers: []
interfaces:
$(iface "$x" 6 "$(app6 "$x")/64" 2001:db8:2::/64 $RT6)
$(iface "$x" 4 "$(app4 "$x")/24" 192.0.2.0/25 $RT4)
instances:
  - nat64:
      name: ha
      pool6: "${POOL6}/96"
      pool4:
        - prefix: $POOL4
      limits: { max_sessions: 65536 }
$(allocation)
  - nat64:
      name: hb
      pool6: "${POOL6B}/96"
      pool4:
        - prefix: $POOL4B
      limits: { max_sessions: 65536 }
management:
  control_socket: $HA_DIR/$x.sock
  http_listen: 127.0.0.1:9464
logging:
  level: info
EOF
    if [ "$sync" = 1 ]; then
      cat <<EOF
sync:
  listen: $(appm "$x"):$SYNC_PORT
  peers: [$(peerm "$x"):$SYNC_PORT]
  key_file: $HA_DIR/sync.key
  flush_ms: 20
  queue: 65536
  # Every live session is re-sent this often: also the bound on how long
  # a session lost on the way (see docs/ha.md, "Failover lab") stays lost.
  refresh_s: 10
EOF
    fi
  } >"$HA_DIR/$x.yaml"
}

cmd_start() {
  # HA_SYNC=0: without session sync (to see what a failover loses).
  local x=${1:-} sync=${HA_SYNC:-1}
  letter "$x"
  [ -f "$HA_DIR/sync.key" ] || die "the lab is not up (ha.sh up)"
  [ -x "$NAT64D" ] || die "no nat64d at $NAT64D (cargo build --release -p control)"
  write_config "$x" "$sync"
  "$NAT64D" --check --config "$HA_DIR/$x.yaml" >"$HA_DIR/$x.check" 2>&1 ||
    { cat "$HA_DIR/$x.check" >&2; die "nat64d --check refused $HA_DIR/$x.yaml"; }
  rm -f "$HA_DIR/$x.rc"
  (
    set +e
    # nsenter execs, so $! is nat64d itself.
    nsenter --net="/run/netns/$(ns "$x")" -- "$NAT64D" --config "$HA_DIR/$x.yaml" >"$HA_DIR/$x.log" 2>&1 &
    pid=$!
    echo $pid >"$HA_DIR/$x.pid"
    wait $pid
    rc=$?
    # Only while this run is the appliance's current one: a killed run
    # reaped late must not pass its status to the next.
    [ "$(cat "$HA_DIR/$x.pid" 2>/dev/null)" = "$pid" ] && echo $rc >"$HA_DIR/$x.rc"
  ) </dev/null >/dev/null 2>&1 &
  # Ready when the dataplane answers on both families; this also makes
  # the router resolve the appliance (and the appliance the router) before
  # any failover needs it.
  for _ in $(seq 100); do
    if [ -f "$HA_DIR/$x.rc" ]; then
      tail -20 "$HA_DIR/$x.log" >&2
      die "nat64d $x exited with status $(cat "$HA_DIR/$x.rc")"
    fi
    if nsx "$(ns rt)" ping -6 -c1 -W0.2 -q "$(app6 "$x")" >/dev/null 2>&1 &&
      nsx "$(ns rt)" ping -4 -c1 -W0.2 -q "$(app4 "$x")" >/dev/null 2>&1; then
      log "nat64d $x is up (sync: $sync)"
      return 0
    fi
    sleep 0.2
  done
  tail -20 "$HA_DIR/$x.log" >&2
  die "nat64d $x did not answer within 20 s"
}

cmd_route() {
  local x=${1:-} rt
  letter "$x"
  rt=$(ns rt)
  nsx "$rt" ip -6 route replace ${POOL6}/96 via "$(app6 "$x")"
  nsx "$rt" ip route replace $POOL4/32 via "$(app4 "$x")"
  date +%s.%N >"$HA_DIR/route.time"
}

# The router's health check: ping A's IPv6 address (answered by its
# dataplane, so a hung worker fails it too) every 50 ms, each with a
# 200 ms deadline; after 3 misses in a row, move instance ha's pool6 and
# pool4 to B and write the time into flip.time. A miss costs at most 0.25 s,
# so the flip comes within about 0.8 s of the failure.
cmd_watch() {
  rm -f "$HA_DIR/flip.time"
  # shellcheck disable=SC2016 # expanded by the inner shell
  nsx "$(ns rt)" bash -c '
    miss=0
    while :; do
      if ping -6 -c1 -W0.2 -q "$1" >/dev/null 2>&1; then miss=0; else miss=$((miss + 1)); fi
      if [ "$miss" -ge 3 ]; then
        ip -6 route replace "$2" via "$3" && ip route replace "$4" via "$5"
        date +%s.%N >"$6.tmp" && mv "$6.tmp" "$6"
        echo "A missed 3 health checks: pools routed to B"
        exit 0
      fi
      sleep 0.05
    done' watch $A6 ${POOL6}/96 $B6 $POOL4/32 $B4 "$HA_DIR/flip.time" \
    </dev/null >"$HA_DIR/watch.log" 2>&1 &
  echo $! >"$HA_DIR/watch.pid"
  log "health check of A running (log: $HA_DIR/watch.log)"
}

cmd_kill() {
  local x=${1:-} pid
  letter "$x"
  pid=$(cat "$HA_DIR/$x.pid")
  kill -KILL "$pid"
  # Stamped once the signal is sent: whatever is sent after this time can
  # only be translated by the peer.
  date +%s.%N >"$HA_DIR/kill.time"
  # Return once it is reaped (its exit status written), so that a `start`
  # right after cannot take the dead one's status for its own.
  for _ in $(seq 100); do
    [ -f "$HA_DIR/$x.rc" ] && return 0
    sleep 0.05
  done
  die "nat64d $x (pid $pid) still not reaped 5 s after SIGKILL"
}

main() {
  local c=${1:-}
  shift || true
  case $c in
    up) cmd_up ;;
    down) cmd_down ;;
    start) cmd_start "$@" ;;
    watch) cmd_watch ;;
    route) cmd_route "$@" ;;
    kill) cmd_kill "$@" ;;
    ctl)
      letter "${1:-}"
      local x=$1
      shift
      "$NAT64CTL" --socket "$HA_DIR/$x.sock" --timeout 10 "$@"
      ;;
    x)
      local n
      n=$(ns "$1")
      shift
      nsx "$n" "$@"
      ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
  esac
}

main "$@"
