"""UDP echo (RFC 862) for the lab: answers each datagram with its payload,
prefixed by the address the server saw it from, so tests can check what
the translator did to the source."""
import socket
import sys

addr, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind((addr, port))
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(b"from " + peer[0].encode() + b" " + data, peer)
