//! Stateless IP/ICMP translation: RFC 7915, RFC 6052, RFC 7757 (EAMT), RFC 6791.
