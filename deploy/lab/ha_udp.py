"""UDP flows for the failover lab (deploy/lab/ha.sh, tests/ha_e2e.rs).

  ha_udp.py echo ADDR PORT
      answer each datagram with the source port the server saw (2 bytes,
      network order) followed by the datagram, so the client can tell
      whether its mapping survived a failover.

  ha_udp.py flows DST PORT --count N --interval S --duration S --kill-file F
      N sockets, each with its own source port (one NAT64 session each),
      send one datagram every S seconds for the duration. At the end the
      kill time (seconds since the epoch, written into F by `ha.sh kill`)
      splits the replies into before and after, and one JSON object goes
      to stdout: how many flows were answered after the kill, how many kept
      the mapping port they had, and the time from the kill to the first
      reply to a datagram sent after it (which only the standby can have
      translated: the active was dead by then).
"""
import argparse
import json
import selectors
import socket
import struct
import sys
import time

# Datagram sent: flow index, send time. Echo adds the port it saw in front.
SENT = struct.Struct("!Id")
ECHOED = struct.Struct("!HId")


def echo(addr, port):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(struct.pack("!H", peer[1]) + data, peer)


def flows(a):
    family = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(a.count):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        socks.append(s)
    # replies[i]: (send time, receive time, mapping port) per reply.
    replies = [[] for _ in socks]
    sent = 0
    start = time.time()
    step = a.interval / a.count
    nxt = start
    i = 0
    while True:
        now = time.time()
        if now - start >= a.duration:
            break
        while nxt <= now:
            try:
                socks[i].sendto(SENT.pack(i, time.time()), (a.dst, a.port))
                sent += 1
            except (BlockingIOError, OSError):
                pass  # a full socket buffer or no route: the flow skips a beat
            i = (i + 1) % a.count
            nxt += step
        for key, _ in sel.select(timeout=max(0.0, min(nxt - time.time(), 0.05))):
            while True:
                try:
                    data = key.fileobj.recv(2048)
                except BlockingIOError:
                    break
                if len(data) != ECHOED.size:
                    continue
                port, idx, t_sent = ECHOED.unpack(data)
                if idx == key.data:
                    replies[idx].append((t_sent, time.time(), port))

    try:
        kill = float(open(a.kill_file).read().split()[0])
    except (OSError, ValueError, IndexError):
        kill = None
    out = {"flows": a.count, "sent": sent, "replies": sum(len(r) for r in replies)}
    out["answered"] = sum(1 for r in replies if r)
    if kill is not None:
        before = [[x for x in r if x[0] < kill] for r in replies]
        after = [[x for x in r if x[0] > kill] for r in replies]
        firsts = [min(x[1] for x in r) for r in after if r]
        out["kill_time"] = kill
        out["answered_before_kill"] = sum(1 for r in before if r)
        out["answered_after_kill"] = sum(1 for r in after if r)
        # The same mapping port before and after: the standby had the session.
        out["port_kept"] = sum(1 for b, f in zip(before, after) if b and f and b[-1][2] == f[0][2])
        out["first_reply_after_kill_s"] = (min(firsts) - kill) if firsts else None
        # Every flow answered again (the slowest flow's first reply).
        out["all_answered_after_kill_s"] = (
            (max(firsts) - kill) if len(firsts) == a.count else None
        )
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("echo")
    e.add_argument("addr")
    e.add_argument("port", type=int)
    f = sub.add_parser("flows")
    f.add_argument("dst")
    f.add_argument("port", type=int)
    f.add_argument("--count", type=int, default=400)
    f.add_argument("--interval", type=float, default=0.5)
    f.add_argument("--duration", type=float, default=20.0)
    f.add_argument("--kill-file", required=True)
    a = p.parse_args()
    if a.mode == "echo":
        echo(a.addr, a.port)
    else:
        flows(a)


if __name__ == "__main__":
    main()
