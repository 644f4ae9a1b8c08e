#!/usr/bin/python3
"""Frame injector for the live graybox runner (tests/graybox_e2e.rs).

Runs inside the test's network namespace. Reads one JSON command per line
on stdin, answers one JSON line on stdout:
  {"op": "send", "iface": I, "hex": FRAME}       -> {"ok": true}
  {"op": "take", "iface": I}                     -> {"frames": [HEX, ...]}
    (every IPv4/IPv6 frame captured on I since the last take)
  {"op": "quit"}
Capture starts on the given interfaces before the first command is read.
"""
import json
import sys
import threading

from scapy.all import AsyncSniffer, conf, get_if_hwaddr, sendp  # Debian's python3-scapy

conf.verb = 0
ifaces = sys.argv[1:]
captured = {i: [] for i in ifaces}
lock = threading.Lock()


def keep(iface):
    own = bytes.fromhex(get_if_hwaddr(iface).replace(":", ""))

    def on(pkt):
        raw = bytes(pkt)
        # Only IP frames the daemon sent: capture also sees what we send
        # ourselves, and the daemon's ARP/NDP chatter is not under test.
        if len(raw) >= 14 and raw[6:12] != own and raw[12:14] in (b"\x08\x00", b"\x86\xdd"):
            with lock:
                captured[iface].append(raw.hex())
    return on


sniffers = []
for i in ifaces:
    s = AsyncSniffer(iface=i, prn=keep(i), store=False)
    s.start()
    sniffers.append(s)
print(json.dumps({"ready": True}), flush=True)

for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd["op"]
    if op == "send":
        sendp(bytes.fromhex(cmd["hex"]), iface=cmd["iface"])
        print(json.dumps({"ok": True}), flush=True)
    elif op == "take":
        with lock:
            frames, captured[cmd["iface"]] = captured[cmd["iface"]], []
        print(json.dumps({"frames": frames}), flush=True)
    elif op == "quit":
        break
for s in sniffers:
    s.stop()
