#!/usr/bin/env bash
# Install what the build and the tests need, from Debian 12's packages.
# Idempotent: does nothing when everything is present.
set -euo pipefail

PKGS=(
  # DPDK 22.11 and what bindgen needs to read its headers
  dpdk dpdk-dev libdpdk-dev pkg-config clang libclang-dev libpcap-dev
  # the lab and the end-to-end tests
  iproute2 ethtool iputils-ping tcpdump python3-scapy
  # the namespace lab's clients, servers and the TAYGA baseline (deploy/lab)
  curl traceroute bind9-dnsutils unbound nginx-light iperf3 tayga iptables
  netcat-openbsd python3
  # deployment tests: BIRD scale-out lab, promtool checks of the alert rules
  bird2 prometheus
  # benchmarks (make bench): instruction counts, result files
  valgrind jq bc
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
echo "deps: ok (DPDK $(pkg-config --modversion libdpdk))"
