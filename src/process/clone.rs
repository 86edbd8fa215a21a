//! clone() with namespace flags, fork-style (no new stack): the child returns 0.
//!
//! Strata is single-threaded when it calls this, so the child may keep using the heap;
//! everything it needs is still prepared beforehand in an `InitPlan`.

/// Fork into new namespaces. Returns the child's pid in the parent, 0 in the child.
pub fn clone_fork(ns_flags: libc::c_int) -> std::io::Result<libc::pid_t> {
    let flags = (ns_flags | libc::SIGCHLD) as libc::c_ulong;
    // Raw syscall: glibc's clone() wants a new stack; fork() cannot take CLONE_NEW*.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as libc::pid_t)
}
