"""TRex STL profile: the IPv4 return stream of a stateful NAT64 run.

A stateful translator picks the pool4 address and port of each session, so
the answers can only be built from what it sent: capture its IPv4 side
during a nat64_udp.py run (or take nat64d's tx_pcap in a lab), then

  flowgen answer --input captured4.pcap --out answers4.pcap
  start -f perf/trex/nat64_return.py -p 1 -m 10mpps -t --pcap answers4.pcap

The pcap's frames are replayed in a loop as one stream each; `packets()`
returns them for tests.
"""
import argparse

from scapy.layers.l2 import Ether
from scapy.utils import rdpcap


def options(tunables=()):
    p = argparse.ArgumentParser(prog="nat64_return.py")
    p.add_argument("--pcap", required=True)
    return p.parse_args(list(tunables))


def packets(direction=1, tunables=()):
    return [Ether(bytes(p)) for p in rdpcap(options(tunables).pcap)]


class STLNat64Return:
    def get_streams(self, direction=1, tunables=(), **kwargs):
        from trex_stl_lib.api import STLProfile
        return STLProfile.load_pcap(options(tunables).pcap, loop_count=0).get_streams()


def register():
    return STLNat64Return()
