#!/usr/bin/python3
"""Build the frames a test-rig profile describes and write them to a pcap,
so they can be replayed through nat64d (tests/perf_profiles.rs).

  rig_packets.py trex PROFILE.py --direction 0 --out f.pcap [-- TUNABLES]
  rig_packets.py siitperf FILE.conf --direction fwd|rev --frames N --size 84 --out f.pcap
  rig_packets.py pktgen FILE.pkt --frames N --out f.pcap

Needs scapy (Debian: python3-scapy; run with /usr/bin/python3).
"""
import argparse
import importlib.util
import ipaddress
import random
import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap


def pad(pkt, frame_size):
    """Pad to `frame_size` bytes on the wire (FCS included, so 4 less here)."""
    return Ether(bytes(pkt / Raw(b"\x00" * max(0, frame_size - 4 - len(pkt)))))


def trex(path, direction, tunables):
    spec = importlib.util.spec_from_file_location("profile", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.packets(direction, tunables)


def siitperf_conf(path):
    conf = {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            k, _, v = line.partition(" ")
            conf[k] = v.strip()
    return conf


def port(conf, prefix, kind, rng, i):
    """A port as siitperf varies it: 0 fixed (min), 1 increasing, 2
    decreasing, 3 pseudorandom (RFC 4814)."""
    lo, hi = int(conf.get(f"{prefix}-{kind}-min", 0)), int(conf.get(f"{prefix}-{kind}-max", 0))
    mode = int(conf.get(f"{prefix}-var-{kind}", 0))
    span = hi - lo + 1
    return {0: lo, 1: lo + i % span, 2: hi - i % span}.get(mode, rng.randint(lo, hi))


def siitperf(path, direction, frames, size):
    c = siitperf_conf(path)
    rng = random.Random(8219)
    out = []
    for i in range(frames):
        if direction == "fwd":
            # Left sender: IPv6 (IP-L-Vers 6) to the right side's virtual address.
            p = (Ether(src=c["MAC-L-Tester"], dst=c["MAC-L-DUT"])
                 / IPv6(src=c["IPv6-L-Real"], dst=c["IPv6-R-Virt"])
                 / UDP(sport=port(c, "Fwd", "sport", rng, i), dport=port(c, "Fwd", "dport", rng, i)))
            out.append(pad(p, size))
        else:
            # Right sender, stateless: IPv4 to the left side's virtual (EAM) address.
            if c.get("Stateful", "0") != "0":
                sys.exit("stateful reverse traffic answers learned tuples; build it with flowgen answer")
            p = (Ether(src=c["MAC-R-Tester"], dst=c["MAC-R-DUT"])
                 / IP(src=c["IPv4-R-Real"], dst=c["IPv4-L-Virt"])
                 / UDP(sport=port(c, "Rev", "sport", rng, i), dport=port(c, "Rev", "dport", rng, i)))
            out.append(pad(p, size - 20))
    return out


def pktgen(path, frames):
    """The subset of Pktgen-DPDK commands the profiles use: set type/proto/
    size/mac/ip/port, and `range <port> src|dst port start|min|max|inc`."""
    s = {"range": {}}
    for line in open(path):
        w = line.split("#", 1)[0].split()
        if len(w) >= 4 and w[0] == "set":
            key = " ".join(w[2:-1])
            s[key] = w[-1]
        elif len(w) == 6 and w[0] == "range" and w[3] == "port":
            s["range"].setdefault(w[2], {})[w[4]] = int(w[5])
    v6 = s.get("type") == "ipv6"
    out = []
    cur = {k: r.get("start", 0) for k, r in s["range"].items()}
    for _ in range(frames):
        sport = cur.get("src", int(s["sport"]))
        dport = cur.get("dst", int(s["dport"]))
        src = s["src ip"].split("/")[0]
        ip = IPv6(src=src, dst=s["dst ip"]) if v6 else IP(src=src, dst=s["dst ip"])
        p = Ether(src=s["src mac"], dst=s["dst mac"]) / ip / UDP(sport=sport, dport=dport)
        out.append(pad(p, int(s["size"])))
        for k, r in s["range"].items():
            n = cur[k] + r.get("inc", 0)
            cur[k] = r["min"] if n > r["max"] else n
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["trex", "siitperf", "pktgen"])
    ap.add_argument("file")
    ap.add_argument("--direction", default="0")
    ap.add_argument("--frames", type=int, default=4096)
    ap.add_argument("--size", type=int, default=84)
    ap.add_argument("--out", required=True)
    # Anything else (after `--`) is passed to a TRex profile as tunables.
    a, rest = ap.parse_known_args()
    a.tunables = [x for x in rest if x != "--"]
    if a.kind == "trex":
        pkts = trex(a.file, int(a.direction), a.tunables)
    elif a.kind == "siitperf":
        pkts = siitperf(a.file, a.direction, a.frames, a.size)
    else:
        pkts = pktgen(a.file, a.frames)
    wrpcap(a.out, pkts)
    print(f"{len(pkts)} frames -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
