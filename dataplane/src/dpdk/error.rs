use std::ffi::CStr;
use std::fmt;

use dpdk_sys as sys;

/// A DPDK call that failed: which one, and DPDK's error number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    /// The operation that failed, e.g. `rte_eth_dev_configure`.
    pub op: &'static str,
    /// The positive errno value DPDK reported.
    pub errno: i32,
    /// Extra context (a device name, a queue number).
    pub context: String,
}

impl DpdkError {
    pub(crate) fn new(op: &'static str, ret: i32, context: impl Into<String>) -> Self {
        DpdkError { op, errno: ret.abs(), context: context.into() }
    }

    /// Build an error from `rte_errno`, for calls that signal failure with a
    /// null pointer.
    pub(crate) fn from_errno(op: &'static str, context: impl Into<String>) -> Self {
        // SAFETY: reads a thread-local integer through the C shim; no preconditions.
        let errno = unsafe { sys::nat64_rte_errno() };
        Self::new(op, errno, context)
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local
        // NUL-terminated string for any errno value.
        let msg = unsafe { CStr::from_ptr(sys::rte_strerror(self.errno)) };
        write!(f, "{} failed", self.op)?;
        if !self.context.is_empty() {
            write!(f, " ({})", self.context)?;
        }
        write!(f, ": {} (errno {})", msg.to_string_lossy(), self.errno)
    }
}

impl std::error::Error for DpdkError {}
