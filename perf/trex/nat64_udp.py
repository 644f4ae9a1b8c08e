"""TRex stateless (STL) profile for the NAT64/SIIT appliance.

Direction 0 (port 0, IPv6 side): UDP from IPv6 clients to servers reached
through pool6 (RFC 6052 /96). Direction 1 (port 1, IPv4 side): the servers'
UDP answers to the clients' IPv4 addresses (SIIT EAMT addresses; for a
stateful run use nat64_return.py, which answers what the translator sent).

Flows: FLOWS distinct (client address, client port, server, server port)
tuples. Ports are pseudorandom per RFC 4814 section 4.5 (client ports
1024-65535, server ports 1-49151) and repeat with period FLOWS, so the
translator sees exactly FLOWS flows.

  start -f perf/trex/nat64_udp.py -m 10mpps -t --flows 1000000 --size 84

The addresses match perf/README.md ("Address plan"): clients
2001:db8:1::/112 (EAMT 198.18.0.0/16), pool6 2001:db8:64::/96, servers
203.0.113.0/24. Frame sizes count the FCS; IPv4 frames are 20 bytes shorter.

`packets()` builds the same frames with scapy alone (no TRex), one per
flow; tests/perf_profiles.rs sends them through nat64d.
"""
import argparse
import ipaddress

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

CLIENT6 = "2001:db8:1::"
CLIENT4 = "198.18.0.0"
POOL6 = "2001:db8:64::"
SERVER4 = "203.0.113.0"
MAC_TESTER6, MAC_DUT6 = "02:00:00:00:06:02", "02:00:00:00:06:01"
MAC_TESTER4, MAC_DUT4 = "02:00:00:00:04:02", "02:00:00:00:04:01"


def options(tunables=()):
    p = argparse.ArgumentParser(prog="nat64_udp.py")
    p.add_argument("--flows", type=int, default=4096)
    p.add_argument("--size", type=int, default=84, help="IPv6 frame size incl. FCS")
    p.add_argument("--clients", type=int, default=4096, help="distinct client addresses (<= 65536)")
    p.add_argument("--servers", type=int, default=256)
    p.add_argument("--seed", type=int, default=4814)
    return p.parse_args(list(tunables))


def server6(i):
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address(POOL6)) | int(ipaddress.IPv4Address(SERVER4)) + i))


def _pad(pkt, size):
    # size counts the 4-byte FCS the NIC adds
    return pkt / Raw(b"\x5a" * max(0, size - 4 - len(pkt)))


def base6(o):
    return _pad(Ether(src=MAC_TESTER6, dst=MAC_DUT6) / IPv6(src=CLIENT6, dst=server6(0), hlim=64)
                / UDP(sport=1024, dport=53), o.size)


def base4(o):
    return _pad(Ether(src=MAC_TESTER4, dst=MAC_DUT4) / IP(src=SERVER4, dst=CLIENT4, ttl=64)
                / UDP(sport=53, dport=1024), o.size - 20)


def _flows(o):
    """(client, client port, server, server port) per flow: a deterministic
    stand-in for TRex's repeatable-random variables (same ranges)."""
    x = o.seed | 1
    seen, out = set(), []
    k = 0
    while len(out) < o.flows:
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        f = (k % o.clients, 1024 + (x >> 33) % 64512, (x >> 20) % o.servers, 1 + (x >> 45) % 49151)
        k += 1
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out


def packets(direction, tunables=()):
    """Frames (scapy, without FCS) the profile sends, one per flow."""
    o = options(tunables)
    out = []
    for c, cport, s, sport in _flows(o):
        if direction == 0:
            p = base6(o)
            p[IPv6].src = str(ipaddress.IPv6Address(CLIENT6) + c)
            p[IPv6].dst = server6(s)
            p[UDP].sport, p[UDP].dport = cport, sport
        else:
            p = base4(o)
            p[IP].src = str(ipaddress.IPv4Address(SERVER4) + s)
            p[IP].dst = str(ipaddress.IPv4Address(CLIENT4) + c)
            p[UDP].sport, p[UDP].dport = sport, cport
        out.append(Ether(bytes(p)))  # checksums computed as a NIC would
    return out


class STLNat64Udp:
    def get_streams(self, direction=0, tunables=(), **kwargs):
        from trex_stl_lib.api import (STLPktBuilder, STLScVmRaw, STLStream, STLTXCont,
                                      STLVmFixChecksumHw, STLVmFixIpv4, STLVmFlowVar,
                                      STLVmFlowVarRepeatableRandom, STLVmWrFlowVar,
                                      CTRexVmInsFixHwCs)
        o = options(tunables)
        # Client index increments; ports and server are repeatable-random
        # with period `flows` (RFC 4814 pseudorandom ports).
        common = [
            STLVmFlowVar(name="client", min_value=0, max_value=o.clients - 1, size=2, op="inc"),
            STLVmFlowVarRepeatableRandom(name="cport", min_value=1024, max_value=65535, size=2,
                                         seed=o.seed, limit=o.flows),
            STLVmFlowVarRepeatableRandom(name="sport", min_value=1, max_value=49151, size=2,
                                         seed=o.seed + 1, limit=o.flows),
            STLVmFlowVarRepeatableRandom(name="server", min_value=0, max_value=o.servers - 1, size=1,
                                         seed=o.seed + 2, limit=o.flows),
        ]
        if direction == 0:
            pkt = base6(o)
            vm = common + [
                STLVmWrFlowVar(fv_name="client", pkt_offset="IPv6.src", offset_fixup=14),
                STLVmWrFlowVar(fv_name="server", pkt_offset="IPv6.dst", offset_fixup=15),
                STLVmWrFlowVar(fv_name="cport", pkt_offset="UDP.sport"),
                STLVmWrFlowVar(fv_name="sport", pkt_offset="UDP.dport"),
                STLVmFixChecksumHw(l3_offset="IPv6", l4_offset="UDP", l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP),
            ]
        else:
            pkt = base4(o)
            vm = common + [
                STLVmWrFlowVar(fv_name="client", pkt_offset="IP.dst", offset_fixup=2),
                STLVmWrFlowVar(fv_name="server", pkt_offset="IP.src", offset_fixup=3),
                STLVmWrFlowVar(fv_name="cport", pkt_offset="UDP.dport"),
                STLVmWrFlowVar(fv_name="sport", pkt_offset="UDP.sport"),
                STLVmFixIpv4(offset="IP"),
                STLVmFixChecksumHw(l3_offset="IP", l4_offset="UDP", l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP),
            ]
        return [STLStream(packet=STLPktBuilder(pkt=pkt, vm=STLScVmRaw(vm)), mode=STLTXCont())]


def register():
    return STLNat64Udp()
