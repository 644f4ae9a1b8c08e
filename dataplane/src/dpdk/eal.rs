use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as sys;

use super::DpdkError;

/// EAL may be initialised once per process, and never again after cleanup.
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// The initialised Environment Abstraction Layer. Dropping it runs
/// `rte_eal_cleanup`; drop every port and mempool first.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

/// A closure handed to another lcore.
type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

impl Eal {
    /// Start EAL with an argument list as on a DPDK command line (the first
    /// element is the program name). Fails if EAL was already started in
    /// this process.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, DpdkError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::new("rte_eal_init", libc_ealready(), "EAL already initialised"));
        }
        let owned: Vec<CString> = args
            .iter()
            .map(|a| {
                CString::new(a.as_ref())
                    .map_err(|_| DpdkError::new("rte_eal_init", 22, "argument contains NUL"))
            })
            .collect::<Result<_, _>>()?;
        // EAL may permute argv; give it pointers into storage we keep alive.
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        argv.push(std::ptr::null_mut());
        let argc = owned.len() as c_int;
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a
        // null pointer; `owned` outlives the call, and EAL keeps no pointer
        // to them after returning (it copies what it needs).
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_errno(
                "rte_eal_init",
                args.iter().map(|a| a.as_ref()).collect::<Vec<_>>().join(" "),
            ));
        }
        Ok(Eal { _private: () })
    }

    /// The lcore this code runs on (the main lcore for the caller of `init`).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL is initialised; plain getter.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// The enabled worker lcores (every enabled lcore but the main one).
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        // SAFETY: EAL is initialised; rte_get_next_lcore walks its lcore
        // table and returns RTE_MAX_LCORE at the end.
        let mut id = unsafe { sys::rte_get_next_lcore(u32::MAX, 1, 0) };
        while id < sys::RTE_MAX_LCORE {
            out.push(id);
            // SAFETY: as above.
            id = unsafe { sys::rte_get_next_lcore(id, 1, 0) };
        }
        out
    }

    /// Run `job` on worker lcore `lcore`. Its return value comes back from
    /// [`Eal::wait`].
    pub fn launch<F>(&self, lcore: u32, job: F) -> Result<(), DpdkError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        let boxed: Box<Job> = Box::new(Box::new(job));
        let arg = Box::into_raw(boxed) as *mut c_void;
        // SAFETY: `trampoline` takes ownership of `arg`, a leaked Box<Job>,
        // exactly once. If the launch fails the job never runs, so we
        // reclaim the box here instead.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if ret != 0 {
            // SAFETY: the launch failed, so no other owner of `arg` exists.
            drop(unsafe { Box::from_raw(arg as *mut Job) });
            return Err(DpdkError::new("rte_eal_remote_launch", ret, format!("lcore {lcore}")));
        }
        Ok(())
    }

    /// Wait for the job on `lcore` to finish and return its value.
    pub fn wait(&self, lcore: u32) -> i32 {
        // SAFETY: EAL is initialised; waiting on an idle lcore returns at once.
        unsafe { sys::rte_eal_wait_lcore(lcore) }
    }
}

unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `Eal::launch`, handed to
    // exactly one trampoline call.
    let job = unsafe { Box::from_raw(arg as *mut Job) };
    // A panic must not unwind into C.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(-1)
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by `init`; every DPDK object created
        // through this layer is dropped before the Eal token (documented).
        unsafe { sys::rte_eal_cleanup() };
    }
}

fn libc_ealready() -> i32 {
    114 // EALREADY on Linux
}

/// The lcore the calling thread runs on (`u32::MAX` for non-EAL threads).
#[inline]
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local; valid on any thread.
    unsafe { sys::rte_lcore_id() }
}

/// The time-stamp counter.
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: reads the CPU's TSC; no preconditions.
    unsafe { sys::rte_get_tsc_cycles() }
}

/// TSC ticks per second, as EAL measured it.
pub fn tsc_hz() -> u64 {
    // SAFETY: plain getter; valid after EAL init (0 before).
    unsafe { sys::rte_get_tsc_hz() }
}
