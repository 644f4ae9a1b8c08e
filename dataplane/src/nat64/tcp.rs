//! The TCP session state machine of RFC 6146 §3.5.2.2 as a pure function.
//!
//! The NAT64 does not track sequence numbers; it only watches SYN, FIN and
//! RST per direction to decide how long the session may live.

/// TCP header flag bits as they appear in byte 13 of the TCP header.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
}

/// States of RFC 6146 §3.5.2 (figure in §3.5.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// No session (never stored; the state a missing session is in).
    Closed = 0,
    /// SYN seen from the IPv6 side.
    V6Init = 1,
    /// SYN seen from the IPv4 side.
    V4Init = 2,
    /// Both SYNs seen.
    Established = 3,
    /// FIN seen from the IPv6 side.
    V6FinRcv = 4,
    /// FIN seen from the IPv4 side.
    V4FinRcv = 5,
    /// FIN seen from both sides.
    V6FinV4FinRcv = 6,
    /// RST seen, or an established session idled out: short-lived.
    Trans = 7,
}

impl TcpState {
    /// From the stored byte.
    pub fn from_u8(v: u8) -> TcpState {
        match v {
            1 => TcpState::V6Init,
            2 => TcpState::V4Init,
            3 => TcpState::Established,
            4 => TcpState::V6FinRcv,
            5 => TcpState::V4FinRcv,
            6 => TcpState::V6FinV4FinRcv,
            7 => TcpState::Trans,
            _ => TcpState::Closed,
        }
    }

    /// snake_case name for the operator view.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Closed => "closed",
            TcpState::V6Init => "v6_init",
            TcpState::V4Init => "v4_init",
            TcpState::Established => "established",
            TcpState::V6FinRcv => "v6_fin_rcv",
            TcpState::V4FinRcv => "v4_fin_rcv",
            TcpState::V6FinV4FinRcv => "v6_fin_v4_fin_rcv",
            TcpState::Trans => "trans",
        }
    }
}

/// Which side a packet came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// IPv6 -> IPv4.
    FromV6,
    /// IPv4 -> IPv6.
    FromV4,
}

/// What happens to the session lifetime after a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Lifetime untouched.
    Keep,
    /// Reset to the established timeout (TCP_EST).
    Est,
    /// Reset to the transitory timeout (TCP_TRANS).
    Trans,
}

/// One step of the state machine for a packet of an existing session.
pub fn step(state: TcpState, dir: Dir, f: u8) -> (TcpState, Timer) {
    use TcpState::*;
    let syn = f & flags::SYN != 0;
    let fin = f & flags::FIN != 0;
    let rst = f & flags::RST != 0;
    match (state, dir) {
        // §3.5.2.2 V4 INIT: an IPv6 SYN completes the handshake.
        (V4Init, Dir::FromV6) if syn => (Established, Timer::Est),
        // §3.5.2.2 V6 INIT: an IPv4 SYN completes it; an IPv6 SYN
        // (retransmission) refreshes the transitory lifetime.
        (V6Init, Dir::FromV4) if syn => (Established, Timer::Est),
        (V6Init, Dir::FromV6) if syn => (V6Init, Timer::Trans),
        (V4Init | V6Init, _) => (state, Timer::Keep),
        // §3.5.2.2 ESTABLISHED: FIN moves to the side's FIN RCV (lifetime
        // kept), RST to TRANS, anything else refreshes TCP_EST.
        (Established, Dir::FromV4) if fin => (V4FinRcv, Timer::Keep),
        (Established, Dir::FromV6) if fin => (V6FinRcv, Timer::Keep),
        (Established, _) if rst => (Trans, Timer::Trans),
        (Established, _) => (Established, Timer::Est),
        // FIN RCV: the other side's FIN closes both halves (TCP_TRANS).
        (V4FinRcv, Dir::FromV6) if fin => (V6FinV4FinRcv, Timer::Trans),
        (V6FinRcv, Dir::FromV4) if fin => (V6FinV4FinRcv, Timer::Trans),
        (V4FinRcv | V6FinRcv, _) => (state, Timer::Est),
        // Both FINs: only the timer ends it.
        (V6FinV4FinRcv, _) => (state, Timer::Keep),
        // TRANS: any non-RST packet revives the session.
        (Trans, _) if !rst => (Established, Timer::Est),
        (Trans, _) => (Trans, Timer::Keep),
        (Closed, _) => (Closed, Timer::Keep),
    }
}

/// What expiry does to a session in `state`: `Some(Trans)` when it gets a
/// second chance in TRANS (established-like states; RFC 6146 §3.5.2.2
/// lets the NAT64 probe here, this engine does not probe and just moves the
/// session to TRANS for TCP_TRANS), `None` when it is deleted.
pub fn on_expiry(state: TcpState) -> Option<TcpState> {
    match state {
        TcpState::Established | TcpState::V4FinRcv | TcpState::V6FinRcv => Some(TcpState::Trans),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::TcpState::*;
    use super::*;

    #[test]
    fn handshake_from_v6() {
        assert_eq!(step(V6Init, Dir::FromV6, SYN), (V6Init, Timer::Trans));
        assert_eq!(step(V6Init, Dir::FromV6, 0x10), (V6Init, Timer::Keep));
        assert_eq!(step(V6Init, Dir::FromV4, SYN | 0x10), (Established, Timer::Est));
    }

    #[test]
    fn handshake_from_v4() {
        assert_eq!(step(V4Init, Dir::FromV4, SYN), (V4Init, Timer::Keep));
        assert_eq!(step(V4Init, Dir::FromV6, SYN), (Established, Timer::Est));
    }

    #[test]
    fn close_both_orders() {
        let (s, t) = step(Established, Dir::FromV6, FIN);
        assert_eq!((s, t), (V6FinRcv, Timer::Keep));
        assert_eq!(step(s, Dir::FromV6, 0x10), (V6FinRcv, Timer::Est));
        assert_eq!(step(s, Dir::FromV4, FIN), (V6FinV4FinRcv, Timer::Trans));
        let (s, _) = step(Established, Dir::FromV4, FIN);
        assert_eq!(s, V4FinRcv);
        assert_eq!(step(s, Dir::FromV4, FIN), (V4FinRcv, Timer::Est));
        assert_eq!(step(s, Dir::FromV6, FIN), (V6FinV4FinRcv, Timer::Trans));
        assert_eq!(step(V6FinV4FinRcv, Dir::FromV6, 0x10), (V6FinV4FinRcv, Timer::Keep));
    }

    #[test]
    fn rst_and_trans() {
        assert_eq!(step(Established, Dir::FromV4, RST), (Trans, Timer::Trans));
        assert_eq!(step(Established, Dir::FromV6, 0x10), (Established, Timer::Est));
        assert_eq!(step(Trans, Dir::FromV6, RST), (Trans, Timer::Keep));
        assert_eq!(step(Trans, Dir::FromV4, 0x10), (Established, Timer::Est));
    }

    #[test]
    fn expiry() {
        assert_eq!(on_expiry(Established), Some(Trans));
        assert_eq!(on_expiry(V4FinRcv), Some(Trans));
        assert_eq!(on_expiry(Trans), None);
        assert_eq!(on_expiry(V6Init), None);
        assert_eq!(on_expiry(V6FinV4FinRcv), None);
        for v in 0..8 {
            assert_eq!(TcpState::from_u8(v) as u8, v);
        }
    }
}
