//! SIGINT, SIGTERM and SIGHUP during a build: noted, the running step's `strata` killed,
//! and the build then fails at its next check, so its guards remove the container, the
//! temp dir and the mounts (nothing is tagged).

use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILD: AtomicI32 = AtomicI32::new(0);
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // strata run passes signals to the container, whose pid 1 may ignore them: the
        // step is over either way, and its guard deletes the container.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The handlers, installed while this lives.
pub struct Handlers;

impl Handlers {
    pub fn install() -> Handlers {
        INTERRUPTED.store(false, Ordering::SeqCst);
        for s in SIGNALS {
            unsafe { libc::signal(s, on_signal as *const () as libc::sighandler_t) };
        }
        Handlers
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
        for s in SIGNALS {
            unsafe { libc::signal(s, libc::SIG_DFL) };
        }
    }
}

/// The process a signal should end (0: none).
pub fn set_child(pid: i32) {
    CHILD.store(pid, Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fail if a signal came.
pub fn check() -> Result<()> {
    if interrupted() {
        bail!("build interrupted");
    }
    Ok(())
}
