//! `rte_flow` rules that steer IPv4 return traffic to its owner's RX queue
//! ([`crate::steer::SteerRule`]): pattern ETH / IPV4 (destination under a
//! mask, protocol) / TCP | UDP (destination port under a mask, or empty)
//! [/ ICMP (identifier under a mask)], action QUEUE.
//!
//! A port keeps the rules it created and destroys them before it stops
//! ([`Port::stop`]), so a flow handle never outlives its device.

use std::ffi::{c_void, CStr};
use std::fmt;
use std::ptr::NonNull;

use dpdk_sys as sys;

use super::Port;
use crate::nat64::Proto;
use crate::steer::SteerRule;

/// A flow call the PMD refused, with the reason it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    /// `rte_flow_validate`, `rte_flow_create`, ...
    pub op: &'static str,
    /// Positive errno (ENOTSUP, EINVAL, ENOSYS ...).
    pub errno: i32,
    /// `rte_flow_error.type`: which part of the rule was refused.
    pub kind: u32,
    /// The PMD's message, when it gave one.
    pub message: String,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ATTR
            | sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ATTR_INGRESS
            | sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ATTR_PRIORITY
            | sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ATTR_GROUP => "attributes",
            sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ITEM
            | sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ITEM_SPEC
            | sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ITEM_MASK
            | sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ITEM_NUM => "pattern",
            sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ACTION
            | sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ACTION_CONF
            | sys::rte_flow_error_type_RTE_FLOW_ERROR_TYPE_ACTION_NUM => "action",
            _ => "rule",
        };
        let msg = if self.message.is_empty() { "no message" } else { &self.message };
        write!(f, "{} refused the {what}: {msg} (errno {})", self.op, self.errno)
    }
}

impl FlowError {
    /// Whether the device has no flow API at all (ethdev answers ENOSYS
    /// for PMDs without flow operations: net_pcap, net_null, net_ring ...).
    pub fn no_flow_api(&self) -> bool {
        self.errno == 38
    }
}

impl std::error::Error for FlowError {}

fn flow_error(op: &'static str, ret: i32, e: &sys::rte_flow_error) -> FlowError {
    let message = if e.message.is_null() {
        String::new()
    } else {
        // SAFETY: a non-null `message` is a NUL-terminated string the PMD
        // keeps alive (a literal) at least until the next flow call.
        unsafe { CStr::from_ptr(e.message) }.to_string_lossy().into_owned()
    };
    FlowError { op, errno: ret.abs(), kind: e.type_, message }
}

/// A created rule. Only [`Port`] holds these, and destroys them before the
/// device stops or closes.
#[derive(Debug)]
pub(super) struct RawFlow(NonNull<sys::rte_flow>);

// SAFETY: an rte_flow handle is an opaque pointer owned by the PMD; ethdev
// serialises flow calls on one port (or the PMD declares them thread-safe),
// so it may be destroyed from any thread.
unsafe impl Send for RawFlow {}

/// The C structures of one rule, kept together so the pointers in `items`
/// and `actions` stay valid for the call.
#[derive(Default)]
struct Spec {
    ipv4: sys::rte_flow_item_ipv4,
    ipv4_mask: sys::rte_flow_item_ipv4,
    tcp: sys::rte_flow_item_tcp,
    tcp_mask: sys::rte_flow_item_tcp,
    udp: sys::rte_flow_item_udp,
    udp_mask: sys::rte_flow_item_udp,
    icmp: sys::rte_flow_item_icmp,
    icmp_mask: sys::rte_flow_item_icmp,
    queue: sys::rte_flow_action_queue,
}

impl Spec {
    fn new(rule: &SteerRule) -> Box<Spec> {
        let mut s = Box::<Spec>::default();
        // rte_flow items carry header fields in network byte order.
        s.ipv4.hdr.dst_addr = rule.dst.to_bits().to_be();
        s.ipv4_mask.hdr.dst_addr = rule.dst_mask.to_bits().to_be();
        s.ipv4.hdr.next_proto_id = proto_number(rule.proto);
        s.ipv4_mask.hdr.next_proto_id = 0xff;
        let (port, mask) = (rule.port.to_be(), rule.port_mask.to_be());
        s.tcp.hdr.dst_port = port;
        s.tcp_mask.hdr.dst_port = mask;
        s.udp.hdr.dst_port = port;
        s.udp_mask.hdr.dst_port = mask;
        // RFC 6146 §3.5.3: the echo identifier plays the port's part.
        s.icmp.hdr.icmp_ident = port;
        s.icmp_mask.hdr.icmp_ident = mask;
        s.queue.index = rule.queue;
        s
    }

    /// ETH / IPV4 [/ L4] / END and QUEUE / END, pointing into `self`.
    fn pattern(&self, rule: &SteerRule) -> ([sys::rte_flow_item; 4], [sys::rte_flow_action; 2]) {
        let item = |type_, spec: *const c_void, mask: *const c_void| sys::rte_flow_item {
            type_,
            spec,
            last: std::ptr::null(),
            mask,
        };
        let null = std::ptr::null();
        let end = item(sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_END, null, null);
        // TCP and UDP always name their item (Intel flow directors pick
        // the flow type from the last item, so ETH / IPV4 with protocol 6
        // would not match TCP there); an empty one matches any port. ICMP
        // without an identifier match stays at the IPv4 protocol, since
        // several PMDs have no ICMP item.
        let (tcp, udp, icmp) = match rule.needs_l4() {
            true => (
                (ptr(&self.tcp), ptr(&self.tcp_mask)),
                (ptr(&self.udp), ptr(&self.udp_mask)),
                Some((ptr(&self.icmp), ptr(&self.icmp_mask))),
            ),
            false => ((null, null), (null, null), None),
        };
        let l4 = match (rule.proto, icmp) {
            (Proto::Tcp, _) => item(sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_TCP, tcp.0, tcp.1),
            (Proto::Udp, _) => item(sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_UDP, udp.0, udp.1),
            (Proto::Icmp, Some((spec, mask))) => {
                item(sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_ICMP, spec, mask)
            }
            (Proto::Icmp, None) => end,
        };
        let items = [
            // Any Ethernet frame (untagged: VLAN interfaces are not steered).
            item(sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_ETH, null, null),
            item(sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_IPV4, ptr(&self.ipv4), ptr(&self.ipv4_mask)),
            l4,
            end,
        ];
        let actions = [
            sys::rte_flow_action {
                type_: sys::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: ptr(&self.queue),
            },
            sys::rte_flow_action {
                type_: sys::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_END,
                conf: std::ptr::null(),
            },
        ];
        (items, actions)
    }
}

fn ptr<T>(r: &T) -> *const c_void {
    r as *const T as *const c_void
}

fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Icmp => 1,
    }
}

fn ingress() -> sys::rte_flow_attr {
    let mut attr = sys::rte_flow_attr::default();
    attr.set_ingress(1);
    attr
}

impl Port {
    /// Ask the PMD whether it would accept `rule` (`rte_flow_validate`),
    /// without creating it.
    pub fn validate_steering(&self, rule: &SteerRule) -> Result<(), FlowError> {
        let spec = Spec::new(rule);
        let (items, actions) = spec.pattern(rule);
        let attr = ingress();
        let mut err = sys::rte_flow_error::default();
        // SAFETY: attr, items and actions are valid and END-terminated; the
        // item specs and the action conf live in `spec` for the whole call;
        // err is a valid out-pointer.
        let ret =
            unsafe { sys::rte_flow_validate(self.id(), &attr, items.as_ptr(), actions.as_ptr(), &mut err) };
        if ret != 0 {
            return Err(flow_error("rte_flow_validate", ret, &err));
        }
        Ok(())
    }

    /// Create `rule` (`rte_flow_create`); the port keeps it until
    /// [`Port::clear_steering`] or until it stops.
    pub fn add_steering(&self, rule: &SteerRule) -> Result<(), FlowError> {
        let spec = Spec::new(rule);
        let (items, actions) = spec.pattern(rule);
        let attr = ingress();
        let mut err = sys::rte_flow_error::default();
        // SAFETY: as in validate_steering; the PMD copies what it keeps.
        let flow =
            unsafe { sys::rte_flow_create(self.id(), &attr, items.as_ptr(), actions.as_ptr(), &mut err) };
        let Some(flow) = NonNull::new(flow) else {
            // SAFETY: reads a thread-local integer through the C shim.
            let errno = unsafe { sys::nat64_rte_errno() };
            return Err(flow_error("rte_flow_create", errno, &err));
        };
        self.flows_lock().push(RawFlow(flow));
        Ok(())
    }

    /// Destroy every rule this port created; returns how many there were.
    /// The first failure is returned after trying all of them.
    pub fn clear_steering(&self) -> Result<usize, FlowError> {
        let flows = std::mem::take(&mut *self.flows_lock());
        let n = flows.len();
        let mut first = Ok(n);
        for f in flows.into_iter().rev() {
            let mut err = sys::rte_flow_error::default();
            // SAFETY: `f` was returned by rte_flow_create on this port, which
            // has not stopped or closed since (stop clears first); it is
            // destroyed exactly once, having been taken out of the list.
            let ret = unsafe { sys::rte_flow_destroy(self.id(), f.0.as_ptr(), &mut err) };
            if ret != 0 && first.is_ok() {
                first = Err(flow_error("rte_flow_destroy", ret, &err));
            }
        }
        first
    }

    /// Remove every flow rule of the port, including rules this process
    /// did not create (`rte_flow_flush`).
    pub fn flush_flows(&self) -> Result<(), FlowError> {
        let mut flows = self.flows_lock();
        let mut err = sys::rte_flow_error::default();
        // SAFETY: valid port id; err is a valid out-pointer. Our handles
        // are forgotten below, since flush destroyed them.
        let ret = unsafe { sys::rte_flow_flush(self.id(), &mut err) };
        flows.clear();
        if ret != 0 {
            return Err(flow_error("rte_flow_flush", ret, &err));
        }
        Ok(())
    }

    /// Number of steering rules the port holds.
    pub fn steering_rules(&self) -> usize {
        self.flows_lock().len()
    }

    fn flows_lock(&self) -> std::sync::MutexGuard<'_, Vec<RawFlow>> {
        // A panic while holding the lock cannot leave the list half-written
        // (push and take are single steps): keep using it.
        self.flows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn spec_is_in_network_order_and_l4_only_when_ports_are_matched() {
        let rule = SteerRule {
            proto: Proto::Udp,
            dst: Ipv4Addr::new(192, 0, 2, 2),
            dst_mask: Ipv4Addr::BROADCAST,
            port: 0x0400,
            port_mask: 0xfc00,
            queue: 1,
        };
        let s = Spec::new(&rule);
        let dst = s.ipv4.hdr.dst_addr;
        assert_eq!(dst.to_ne_bytes(), [192, 0, 2, 2]);
        let port = s.udp.hdr.dst_port;
        assert_eq!(port.to_ne_bytes(), [0x04, 0x00]);
        let (items, actions) = s.pattern(&rule);
        assert_eq!(items[2].type_, sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_UDP);
        assert_eq!(actions[0].type_, sys::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_QUEUE);
        // Any port: an empty UDP item; ICMP without identifier: no item.
        let any_port = SteerRule { port: 0, port_mask: 0, ..rule };
        let (items, _) = s.pattern(&any_port);
        assert_eq!(items[2].type_, sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_UDP);
        assert!(items[2].spec.is_null() && items[2].mask.is_null());
        let (items, _) = s.pattern(&SteerRule { proto: Proto::Icmp, ..any_port });
        assert_eq!(items[2].type_, sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_END);
    }
}
