#!/usr/bin/env bash
# The namespace lab: an IPv6-only client, a DNS64 resolver and an
# IPv6-only web server behind a router, the appliance (nat64d on DPDK
# af_packet, or TAYGA for comparison), and an IPv4-only server.
#
#   lab.sh up [--arms 1|2] [--mtu6 N] [--mid-mtu N]
#                                       build namespaces, links, services
#   lab.sh start [--engine nat64|siit] [--short-timeouts]
#                                       write the nat64d config, start nat64d
#   lab.sh stop                         SIGTERM nat64d, wait, print its exit
#   lab.sh tayga-start | tayga-stop     TAYGA + kernel NAT44 instead
#   lab.sh x NS CMD...                  run CMD in namespace n64NS
#   lab.sh down                         remove everything (idempotent)
#   lab.sh deps                         install the lab's Debian packages
#
# Two-armed (default):
#
#   n64cli  2001:db8:2::10 --+
#   n64dns  2001:db8:3::53 --+-- n64rt --- 2001:db8:1::/64 --- n64x [appliance]
#   n64web6 2001:db8:4::80 --+  (router)    (MTU --mtu6)         |
#                                                       198.51.100.0/24
#                                                                |
#                                                      n64srv 198.51.100.10
#
# One-armed (--arms 1): n64x has a single port on the bridge n64br (in
# namespace n64sw) that also holds the router's uplink and the server; the
# appliance carries both families on it.
#
# --mid-mtu N puts an access router n64acc between n64rt and the client,
# joined to n64rt by a link of MTU N (2001:db8:5::/64): a bottleneck that
# neither the client nor the appliance is attached to, so only an ICMPv6
# Packet Too Big from n64rt, translated by the appliance, can tell the IPv4
# server about it.
#
# pool6 2001:db8:64::/96 (network-specific, RFC 6052 §3.1: the well-known
# prefix must not embed these non-global IPv4 addresses); pool4 203.0.113.1,
# routed by the server to 198.51.100.1. Only documentation ranges
# (RFC 3849, RFC 5737) are used. Every namespace and veth starts with "n64".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LAB_DIR=${LAB_DIR:-/tmp/n64lab}
NAT64D=${NAT64D:-${CARGO_TARGET_DIR:-$ROOT/target}/release/nat64d}
NS_ALL=(n64cli n64dns n64web6 n64rt n64acc n64x n64srv n64sw)

# Addresses (documentation ranges only).
POOL6=2001:db8:64::
POOL4=203.0.113.1
X6=2001:db8:1::1 RT6=2001:db8:1::2
CLI6=2001:db8:2::10 DNS6=2001:db8:3::53 WEB6=2001:db8:4::80
X4=198.51.100.1 SRV4=198.51.100.10

log() { printf '%s\n' "lab: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
nsx() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

PKGS=(iproute2 ethtool iputils-ping traceroute curl bind9-dnsutils unbound nginx-light
  iperf3 tayga iptables netcat-openbsd python3 tcpdump)

cmd_deps() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    # policy-rc.d or not, the lab starts its own daemons: keep the
    # packages' services from running in the root namespace.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Kill what runs inside our namespaces (only lab processes can be there),
# then delete them; also veths left in the root namespace by a failed run.
cmd_down() {
  local ns pids left
  for ns in "${NS_ALL[@]}"; do
    ip netns list 2>/dev/null | grep -qw "^$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
  done
  for _ in $(seq 50); do
    left=""
    for ns in "${NS_ALL[@]}"; do
      ip netns list 2>/dev/null | grep -qw "^$ns" || continue
      left+=$(ip netns pids "$ns" 2>/dev/null || true)
    done
    [ -z "$left" ] && break
    sleep 0.1
  done
  for ns in "${NS_ALL[@]}"; do
    ip netns list 2>/dev/null | grep -qw "^$ns" || continue
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^n64' || true); do
    ip link del "$l" 2>/dev/null || true
  done
}

# A veth pair: end A in namespace NA, end B in NB, offloads off on both
# (af_packet would otherwise see partial checksums and oversized GSO frames).
veth() {
  local a=$1 na=$2 b=$3 nb=$4 mtu=${5:-1500}
  ip link add "$a" netns "$na" mtu "$mtu" type veth peer name "$b" netns "$nb" mtu "$mtu"
  nsx "$na" ethtool -K "$a" rx off tx off tso off gso off gro off >/dev/null 2>&1 || true
  nsx "$nb" ethtool -K "$b" rx off tx off tso off gso off gro off >/dev/null 2>&1 || true
  nsx "$na" ip link set "$a" up
  nsx "$nb" ip link set "$b" up
}

addr() { nsx "$1" ip addr add "$3" dev "$2" nodad 2>/dev/null || nsx "$1" ip addr add "$3" dev "$2"; }

cmd_up() {
  local arms=2 mtu6=1500 mid=""
  while (($#)); do
    case $1 in
      --arms) arms=$2; shift 2 ;;
      --mtu6) mtu6=$2; shift 2 ;;
      --mid-mtu) mid=$2; shift 2 ;;
      *) die "up: unknown option $1" ;;
    esac
  done
  [ "$(id -u)" -eq 0 ] || die "the lab needs root"
  local c absent=""
  for c in ip ethtool nsenter ping traceroute curl dig unbound nginx iperf3 tayga iptables nc tcpdump; do
    command -v "$c" >/dev/null || absent+=" $c"
  done
  [ -z "$absent" ] || die "missing:$absent (install with: $0 deps, or scripts/deps.sh)"
  cmd_down
  mkdir -p "$LAB_DIR"
  echo "ARMS=$arms MTU6=$mtu6" >"$LAB_DIR/lab.env"
  local ns
  for ns in "${NS_ALL[@]}"; do
    [ "$ns" = n64sw ] && [ "$arms" = 2 ] && continue
    [ "$ns" = n64acc ] && [ -z "$mid" ] && continue
    ip netns add "$ns"
    nsx "$ns" ip link set lo up
  done

  # IPv6 side: each host on its own link to the router.
  if [ -z "$mid" ]; then
    veth n64cli0 n64cli n64rtc n64rt
    addr n64rt n64rtc 2001:db8:2::1/64
  else
    veth n64cli0 n64cli n64acc0 n64acc
    veth n64rtc n64rt n64acc1 n64acc "$mid"
    addr n64acc n64acc0 2001:db8:2::1/64
    addr n64acc n64acc1 2001:db8:5::2/64
    addr n64rt n64rtc 2001:db8:5::1/64
    nsx n64acc sysctl -qw net.ipv6.conf.all.forwarding=1
    nsx n64acc ip -6 route add default via 2001:db8:5::1
    nsx n64rt ip -6 route add 2001:db8:2::/64 via 2001:db8:5::2
  fi
  veth n64dns0 n64dns n64rtd n64rt
  veth n64w60 n64web6 n64rtw n64rt
  addr n64rt n64rtd 2001:db8:3::1/64
  addr n64rt n64rtw 2001:db8:4::1/64
  addr n64cli n64cli0 $CLI6/64
  addr n64dns n64dns0 $DNS6/64
  addr n64web6 n64w60 $WEB6/64
  nsx n64cli ip -6 route add default via 2001:db8:2::1
  nsx n64dns ip -6 route add default via 2001:db8:3::1
  nsx n64web6 ip -6 route add default via 2001:db8:4::1
  # The IPv6-only hosts have no IPv4 at all.
  for ns in n64cli n64dns n64web6; do
    nsx "$ns" sysctl -qw net.ipv4.conf.all.forwarding=0
  done

  if [ "$arms" = 2 ]; then
    veth n64rtx n64rt n64x6 n64x "$mtu6"
    veth n64srv0 n64srv n64x4 n64x
  else
    ip netns add n64sw 2>/dev/null || true
    nsx n64sw ip link set lo up
    nsx n64sw ip link add n64br type bridge
    nsx n64sw ip link set n64br up
    veth n64rtx n64rt n64swr n64sw "$mtu6"
    veth n64x0 n64x n64swx n64sw "$mtu6"
    veth n64srv0 n64srv n64sws n64sw "$mtu6"
    for l in n64swr n64swx n64sws; do nsx n64sw ip link set "$l" master n64br; done
  fi
  addr n64rt n64rtx $RT6/64
  nsx n64rt sysctl -qw net.ipv6.conf.all.forwarding=1
  nsx n64rt ip -6 route add ${POOL6}/96 via $X6

  # The appliance's ports belong to DPDK: no kernel IPv6 on them (no
  # link-local, DAD, MLD or router solicitations competing with nat64d).
  for l in $(nsx n64x ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^n64'); do
    nsx n64x sysctl -qw "net.ipv6.conf.$l.disable_ipv6=1"
  done

  addr n64srv n64srv0 $SRV4/24
  nsx n64srv ip route add 203.0.113.0/24 via $X4
  nsx n64srv sysctl -qw net.ipv6.conf.all.disable_ipv6=1

  mkdir -p /etc/netns/n64cli /etc/netns/n64web6 /etc/netns/n64srv
  echo "nameserver $DNS6" >/etc/netns/n64cli/resolv.conf
  echo "nameserver $DNS6" >/etc/netns/n64web6/resolv.conf
  echo "nameserver 127.0.0.1" >/etc/netns/n64srv/resolv.conf

  start_services
  log "up: $arms-armed, appliance IPv6 link MTU $mtu6"
}

start_services() {
  local d=$LAB_DIR
  mkdir -p "$d/www4" "$d/www6" "$d/nginx-tmp"
  echo "hello from the IPv4-only server 198.51.100.10" >"$d/www4/index.html"
  echo "hello from the IPv6-only server 2001:db8:4::80" >"$d/www6/index.html"
  # 4 MiB of pseudo-random bytes for downloads that need full-size packets.
  head -c 4194304 /dev/urandom >"$d/www4/big.bin"
  chmod -R a+rX "$d"

  # DNS64: Unbound with the lab's own root zone (an auth-zone used as
  # upstream, RFC 8806 style) so it never asks any server outside the lab.
  sed -e "s|@DIR@|$d|g" -e "s|@DNS6@|$DNS6|g" -e "s|@POOL6@|${POOL6}/96|g" \
    "$HERE/unbound.conf" >"$d/unbound.conf"
  cp "$HERE/root.zone" "$d/root.zone"
  unbound-checkconf "$d/unbound.conf" >/dev/null
  nsx n64dns unbound -c "$d/unbound.conf" </dev/null >>"$d/services.log" 2>&1

  local site
  for site in srv web6; do
    local listen www
    if [ $site = srv ]; then listen="$SRV4:80" www=$d/www4; else listen="[$WEB6]:80" www=$d/www6; fi
    sed -e "s|@DIR@|$d|g" -e "s|@SITE@|$site|g" -e "s|@LISTEN@|$listen|g" -e "s|@WWW@|$www|g" \
      "$HERE/nginx.conf" >"$d/nginx-$site.conf"
  done
  nsx n64srv nginx -c "$d/nginx-srv.conf" </dev/null >>"$d/services.log" 2>&1
  nsx n64web6 nginx -c "$d/nginx-web6.conf" </dev/null >>"$d/services.log" 2>&1

  nsx n64srv iperf3 -s -D -B $SRV4 --pidfile "$d/iperf3.pid" --logfile "$d/iperf3.log" \
    </dev/null >>"$d/services.log" 2>&1
  # UDP echo on both sides for the UDP checks (port 7, RFC 862).
  nsx n64srv /usr/bin/python3 "$HERE/udp_echo.py" $SRV4 7 </dev/null >"$d/echo-srv.log" 2>&1 &
  nsx n64web6 /usr/bin/python3 "$HERE/udp_echo.py" $WEB6 7 </dev/null >"$d/echo-web6.log" 2>&1 &
  for _ in $(seq 50); do
    nsx n64dns dig +short +time=1 +tries=1 @$DNS6 ns.lab.example AAAA >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "unbound did not answer"
}

# EAL memory: hugepages when they can be had (LAB_HUGE=0 forbids them).
eal_mem() {
  if [ "${LAB_HUGE:-1}" != 0 ] && [ "$("$ROOT/scripts/hugepages.sh" 512)" = hugepages ]; then
    echo '"--in-memory"'
  else
    echo '"--no-huge", "-m", "512", "--no-shconf"'
  fi
}

# The nat64d configuration of the lab, for the stateful engine or (to prove
# the plumbing without it) a SIIT instance with explicit address mappings.
write_config() {
  local engine=$1 short=$2 arms mtu6 eal
  # shellcheck disable=SC1091
  . "$LAB_DIR/lab.env"
  arms=$ARMS mtu6=$MTU6
  eal='["-l", "0-1", "--no-pci", '"$(eal_mem)"', "--log-level=*:warning"]'
  # RFC 6146 §4 defaults; short ones make the expiry tests quick.
  local udp=300 tcpe=7440 tcpt=240 icmp=60 hold=6
  if [ "$short" = 1 ]; then udp=4 tcpe=8 tcpt=4 icmp=4 hold=2; fi
  {
    echo "# Generated by deploy/lab/lab.sh ($engine, $arms-armed)."
    echo "dpdk:"
    echo "  eal_args: $eal"
    echo "  workers: [1]"
    echo "interfaces:"
    if [ "$arms" = 2 ]; then
      cat <<EOF
  - name: v6
    device: "net_af_packet0,iface=n64x6,qpairs=1,framecnt=${AFP_FRAMES:-4096}"
    role: ipv6
    mtu: $mtu6
    ipv6: ["$X6/64"]
    routes:
      - { prefix: "2001:db8:2::/64", via: "$RT6" }
      - { prefix: "2001:db8:3::/64", via: "$RT6" }
      - { prefix: "2001:db8:4::/64", via: "$RT6" }
  - name: v4
    device: "net_af_packet1,iface=n64x4,qpairs=1,framecnt=${AFP_FRAMES:-4096}"
    role: ipv4
    ipv4: ["$X4/24"]
EOF
    else
      cat <<EOF
  - name: arm
    device: "net_af_packet0,iface=n64x0,qpairs=1,framecnt=${AFP_FRAMES:-4096}"
    role: both
    mtu: $mtu6
    ipv6: ["$X6/64"]
    ipv4: ["$X4/24"]
    routes:
      - { prefix: "2001:db8:2::/64", via: "$RT6" }
      - { prefix: "2001:db8:3::/64", via: "$RT6" }
      - { prefix: "2001:db8:4::/64", via: "$RT6" }
EOF
    fi
    echo "instances:"
    if [ "$engine" = nat64 ]; then
      cat <<EOF
  - nat64:
      name: lab
      pool6: "${POOL6}/96"
      pool4:
        - prefix: $POOL4
      static_bib:
        # IPv4 clients reach the IPv6-only web server, its UDP echo and
        # its ping (ICMP identifier 4242) at 203.0.113.1.
        - { protocol: tcp, ipv6: "$WEB6#80", ipv4: "$POOL4#8080" }
        - { protocol: udp, ipv6: "$WEB6#7", ipv4: "$POOL4#7007" }
        - { protocol: icmp, ipv6: "$WEB6#4242", ipv4: "$POOL4#4242" }
      timeouts: { udp: $udp, tcp_est: $tcpe, tcp_trans: $tcpt, icmp: $icmp, syn_hold: $hold }
      limits: { max_sessions: 65536 }
EOF
    else
      cat <<EOF
  - siit:
      name: lab
      pool6: "${POOL6}/96"
      eamt:
        # The stateless stand-in: each IPv6 host gets its own IPv4 address.
        - { ipv6: "$CLI6", ipv4: 203.0.113.10 }
        - { ipv6: "$WEB6", ipv4: 203.0.113.80 }
EOF
    fi
    cat <<EOF
management:
  control_socket: $LAB_DIR/control.sock
  http_listen: 127.0.0.1:9464
logging:
  level: info
EOF
  } >"$LAB_DIR/nat64d.yaml"
}

cmd_start() {
  local engine=nat64 short=0
  while (($#)); do
    case $1 in
      --engine) engine=$2; shift 2 ;;
      --short-timeouts) short=1; shift ;;
      *) die "start: unknown option $1" ;;
    esac
  done
  [ -f "$LAB_DIR/lab.env" ] || die "the lab is not up (lab.sh up)"
  [ -x "$NAT64D" ] || die "no nat64d at $NAT64D (cargo build --release -p control)"
  write_config "$engine" "$short"
  "$NAT64D" --check --config "$LAB_DIR/nat64d.yaml" >"$LAB_DIR/check.txt" 2>&1 ||
    { cat "$LAB_DIR/check.txt" >&2; die "nat64d --check refused the lab configuration"; }
  rm -f "$LAB_DIR/stats.json" "$LAB_DIR/nat64d.rc"
  # The daemon runs in the appliance namespace; its exit status is kept
  # for `stop`.
  (
    set +e
    # nsenter execs (ip netns exec forks), so $! is nat64d itself.
    nsenter --net=/run/netns/n64x -- "$NAT64D" --config "$LAB_DIR/nat64d.yaml" --stats-file "$LAB_DIR/stats.json" \
      >"$LAB_DIR/nat64d.log" 2>&1 &
    echo $! >"$LAB_DIR/nat64d.pid"
    wait $!
    echo $? >"$LAB_DIR/nat64d.rc"
  ) </dev/null >/dev/null 2>&1 &
  # Ready when the appliance answers a ping on its IPv6 address (DPDK up,
  # NDP and ICMP served by the dataplane).
  for _ in $(seq 100); do
    if [ -f "$LAB_DIR/nat64d.rc" ]; then
      tail -20 "$LAB_DIR/nat64d.log" >&2
      die "nat64d exited with status $(cat "$LAB_DIR/nat64d.rc")"
    fi
    nsx n64rt ping -6 -c1 -W0.2 -q $X6 >/dev/null 2>&1 && { log "nat64d ($engine) is up"; return 0; }
    sleep 0.2
  done
  tail -20 "$LAB_DIR/nat64d.log" >&2
  die "nat64d did not answer on $X6 within 20 s"
}

cmd_stop() {
  [ -f "$LAB_DIR/nat64d.pid" ] || die "nat64d was not started"
  local pid
  pid=$(cat "$LAB_DIR/nat64d.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    [ -f "$LAB_DIR/nat64d.rc" ] && break
    sleep 0.1
  done
  [ -f "$LAB_DIR/nat64d.rc" ] || { kill -KILL "$pid" 2>/dev/null || true; die "nat64d ignored SIGTERM for 10 s"; }
  rm -f "$LAB_DIR/nat64d.pid"
  cat "$LAB_DIR/nat64d.rc"
}

# TAYGA in the appliance namespace, the way Debian users run it: the
# kernel owns the ports, TAYGA translates over a TUN device, mapping each
# IPv6 client to an address of its dynamic pool (192.0.2.0/24), and kernel
# NAT44 shares pool4 (203.0.113.1) among them.
cmd_tayga_start() {
  local arms v6 v4
  # shellcheck disable=SC1091
  . "$LAB_DIR/lab.env"
  arms=$ARMS
  if [ "$arms" = 2 ]; then v6=n64x6 v4=n64x4; else v6=n64x0 v4=n64x0; fi
  nsx n64x sysctl -qw "net.ipv6.conf.$v6.disable_ipv6=0"
  nsx n64x sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1
  addr n64x $v6 $X6/64
  addr n64x $v4 $X4/24
  nsx n64x ip -6 route add 2001:db8::/46 via $RT6
  cat >"$LAB_DIR/tayga.conf" <<EOF
tun-device n64tayga
ipv4-addr 192.0.2.1
ipv6-addr 2001:db8:1::64
prefix ${POOL6}/96
dynamic-pool 192.0.2.0/24
data-dir $LAB_DIR/tayga
EOF
  mkdir -p "$LAB_DIR/tayga"
  nsx n64x tayga -c "$LAB_DIR/tayga.conf" --mktun >/dev/null
  nsx n64x ip link set n64tayga up
  nsx n64x ip addr add 192.0.2.254/32 dev n64tayga
  nsx n64x ip route add 192.0.2.0/24 dev n64tayga
  nsx n64x ip -6 route add ${POOL6}/96 dev n64tayga
  nsx n64x iptables -t nat -A POSTROUTING -s 192.0.2.0/24 -o $v4 -j SNAT --to-source $POOL4
  # pool4 is routed here, not on a link: answer nothing for it but NAT.
  nsx n64x tayga -c "$LAB_DIR/tayga.conf" --pidfile "$LAB_DIR/tayga.pid" </dev/null >>"$LAB_DIR/services.log" 2>&1
  for _ in $(seq 50); do
    nsx n64rt ping -6 -c1 -W0.2 -q $X6 >/dev/null 2>&1 && { log "TAYGA is up"; return 0; }
    sleep 0.1
  done
  die "the TAYGA appliance does not answer on $X6"
}

cmd_tayga_stop() {
  [ -f "$LAB_DIR/tayga.pid" ] && kill -TERM "$(cat "$LAB_DIR/tayga.pid")" 2>/dev/null || true
  rm -f "$LAB_DIR/tayga.pid"
}

main() {
  local c=${1:-}
  shift || true
  case $c in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    tayga-start) cmd_tayga_start ;;
    tayga-stop) cmd_tayga_stop ;;
    deps) cmd_deps ;;
    x)
      local ns=n64$1
      shift
      nsx "$ns" "$@"
      ;;
    *) sed -n '2,14p' "$0" >&2; exit 2 ;;
  esac
}

# Sourced (deploy/lab/ha.sh reuses the helpers above): define only.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
