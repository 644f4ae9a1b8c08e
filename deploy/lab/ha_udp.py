"""UDP flows for the failover lab (deploy/lab/ha.sh, tests/ha_e2e.rs).

  ha_udp.py echo ADDR PORT
      answer each datagram with the source port the server saw (2 bytes,
      network order) followed by the datagram, so the client can tell
      whether its mapping survived a failover.

  ha_udp.py burst DST PORT --count N --first-port P
      one datagram from each of the source ports P .. P+N-1, each socket
      closed at once: N more sessions that stay until their timeout.

  ha_udp.py flows DST PORT --count N --interval S --duration S [--mark NAME=FILE]...
      N sockets, each with its own source port (one NAT64 session each),
      send one datagram every S seconds for the duration. At the end each
      mark's time (seconds since the epoch in FILE, e.g. kill.time written
      by `ha.sh kill`) splits the replies, and one JSON object goes to
      stdout with, per mark: how many flows were answered after it, how
      many only through the mapping port they had before the first mark,
      and the time from the mark to the first reply to a datagram sent
      after it (after a kill, only the standby can have translated that).
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


def burst(a):
    family = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    any_addr = "::" if family == socket.AF_INET6 else "0.0.0.0"
    for port in range(a.first_port, a.first_port + a.count):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((any_addr, port))
            s.sendto(b"burst", (a.dst, a.port))
        if port % 100 == 0:
            time.sleep(0.01)  # spread the burst a little for the translator's rings


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

    marks = {}
    for m in a.mark:
        name, _, path = m.partition("=")
        try:
            marks[name] = float(open(path).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # that event did not happen in this run
    out = {"flows": a.count, "sent": sent, "replies": sum(len(r) for r in replies)}
    out["answered"] = sum(1 for r in replies if r)
    # Each flow's mapping port before the first event.
    first = min(marks.values(), default=None)
    base = [next((x[2] for x in reversed(r) if x[0] < first), None) if first else None for r in replies]
    out["answered_before"] = sum(1 for p in base if p is not None)
    out["marks"] = {}
    for name, t in marks.items():
        after = [[x for x in r if x[0] > t] for r in replies]
        firsts = [min(x[1] for x in r) for r in after if r]
        out["marks"][name] = {
            "time": t,
            "answered_after": len(firsts),
            # Every reply since the event came through the flow's old
            # mapping: the appliance that answered had its session.
            "port_kept": sum(1 for b, r in zip(base, after) if b is not None and r and all(x[2] == b for x in r)),
            "first_reply_after_s": (min(firsts) - t) if firsts else None,
            # Every flow answered again (the slowest flow's first reply).
            "all_answered_after_s": (max(firsts) - t) if len(firsts) == a.count else None,
        }
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
    f.add_argument("--mark", action="append", default=[], metavar="NAME=FILE")
    b = sub.add_parser("burst")
    b.add_argument("dst")
    b.add_argument("port", type=int)
    b.add_argument("--count", type=int, default=5000)
    b.add_argument("--first-port", type=int, default=20000)
    a = p.parse_args()
    if a.mode == "echo":
        echo(a.addr, a.port)
    elif a.mode == "burst":
        burst(a)
    else:
        flows(a)


if __name__ == "__main__":
    main()
