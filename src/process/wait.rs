//! Waiting for a foreground process (`run`, `exec`): forward signals, reap, exit code.

/// Block every signal; returns the mask before. Done before clone, so that a foreground
/// caller cannot miss its child's SIGCHLD however fast the child exits.
pub fn block_all() -> libc::sigset_t {
    let mut orig: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, &mut orig);
    }
    orig
}

/// Wait for `pid` with every signal blocked: forward each to the init; on SIGCHLD reap.
/// SIGCHLD was blocked since before clone, so an instant exit is never missed.
pub fn wait_forwarding(pid: libc::pid_t, orig_mask: &libc::sigset_t) -> i32 {
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigfillset(&mut all) };
    let code = loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break crate::signal::exit_code(status);
        }
        if r < 0 {
            break 255;
        }
        let sig = unsafe { libc::sigwaitinfo(&all, std::ptr::null_mut()) };
        if sig > 0 && sig != libc::SIGCHLD {
            unsafe { libc::kill(pid, sig) };
        }
    };
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, orig_mask, std::ptr::null_mut()) };
    code
}

/// The foreground wait of `run` and `exec`: through the pty proxy when we hold the
/// console socket's other end, else plain; the caller's signal mask comes back either way.
pub fn foreground(
    pid: libc::pid_t,
    console: Option<&std::os::fd::OwnedFd>,
    orig_mask: &libc::sigset_t,
) -> anyhow::Result<i32> {
    let Some(sock) = console else {
        return Ok(wait_forwarding(pid, orig_mask));
    };
    let code = crate::console::recv_master(sock).map(|m| crate::console::proxy(m, pid));
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, orig_mask, std::ptr::null_mut()) };
    code
}
