//! The last steps before the user's program runs, shared by a container's init and by
//! `exec`: cwd, identity (rlimits, ids, capabilities), seccomp, fds, execve.

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use super::channel::send_fd;
use super::ProcessPlan;
use crate::capabilities;

/// First thing after clone: default signal dispositions (Rust ignores SIGPIPE; the
/// container must not inherit that) and the caller's mask back. (Non-dumpable comes
/// from the parent, set before clone.)
pub fn reset_signals(orig_mask: &libc::sigset_t) {
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        libc::sigprocmask(libc::SIG_SETMASK, orig_mask, std::ptr::null_mut());
    }
}

/// Everything up to execve that may fail with a message for the user; returns the
/// program to run.
pub fn prepare(p: &ProcessPlan, attrs: &super::attrs::Attrs, chan: &OwnedFd) -> Result<CString> {
    set_cwd(p)?;
    attrs.apply()?;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which identity() drops;
    // a notify listener must reach the parent while it still listens. Otherwise the
    // filter waits until right before execve, so that only the user's program runs under it.
    if let Some(f) = p
        .seccomp
        .as_ref()
        .filter(|f| !p.no_new_privs || f.listener.is_some())
    {
        load_seccomp(f, chan)?;
    }
    identity(p)?;
    let exe = find_exe(p)?;
    unsafe { libc::umask(p.umask as libc::mode_t) };
    // Every fd above the preserved ones closes at exec: nothing of the runtime leaks.
    let first = 3 + p.preserve_fds;
    crate::fdpass::cloexec_from(first);
    for fd in 3..first as i32 {
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("--preserve-fds: fd {fd} is not open"));
        }
    }
    Ok(exe)
}

fn load_seccomp(f: &crate::seccomp::Filter, chan: &OwnedFd) -> Result<()> {
    let listener = f
        .load()
        .context("load the seccomp filter (linux.seccomp)")?;
    if let Some(fd) = listener {
        let sent = send_fd(chan, fd);
        unsafe { libc::close(fd) };
        sent.context("hand the seccomp listener fd to the runtime")?;
    }
    Ok(())
}

/// Run the user's program: unblock signals, load a late seccomp filter, execve. Returns
/// only on failure, with the message for the caller to report.
pub fn exec(p: &ProcessPlan, exe: &CString) -> String {
    let argv = ptrs(&p.args);
    let envp = ptrs(&p.env);
    // The user program starts with nothing blocked, whatever our caller blocked.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    if let Some(f) = p
        .seccomp
        .as_ref()
        .filter(|f| p.no_new_privs && f.listener.is_none())
    {
        if let Err(e) = f.load() {
            return format!("load the seccomp filter (linux.seccomp): {e}");
        }
    }
    unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = std::io::Error::last_os_error();
    // runc's wording (an os.PathError): "exec /bin/x: exec format error".
    format!("exec {}: {}", exe.to_string_lossy(), go_text(&e))
}

pub(crate) fn ptrs(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

pub(crate) fn os(r: libc::c_int, what: &str) -> Result<()> {
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_string());
    }
    Ok(())
}

fn set_cwd(p: &ProcessPlan) -> Result<()> {
    let c = CString::new(p.cwd.as_os_str().as_bytes())?;
    if unsafe { libc::chdir(c.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("process.cwd {}", p.cwd.display()));
    }
    // A cwd reached through a leaked host fd reads back as "(unreachable)/..." (CVE-2024-21626).
    let mut buf = [0u8; 4096];
    let r = unsafe { libc::getcwd(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r.is_null() || buf[0] != b'/' {
        bail!(
            "process.cwd {}: lies outside the container",
            p.cwd.display()
        );
    }
    Ok(())
}

/// runc's fixStdioPermissions: stdio (a pipe from the caller, the container's pty) gets
/// the process's uid, so that a non-root user can reopen /dev/stdout or /dev/tty; the
/// gid stays (a pty's is the mount's `gid=5`). /dev/null is left alone, and stdio we may
/// not change (an owner unmapped in a user namespace, a read-only /dev) is left as it is.
fn fix_stdio_owner(uid: libc::uid_t) {
    let mut null: libc::stat = unsafe { std::mem::zeroed() };
    let null_rdev =
        (unsafe { libc::stat(c"/dev/null".as_ptr(), &mut null) } == 0).then_some(null.st_rdev);
    for fd in 0..3 {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_uid == uid {
            continue;
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFCHR && Some(st.st_rdev) == null_rdev {
            continue;
        }
        unsafe { libc::fchown(fd, uid, st.st_gid) };
    }
}

fn identity(p: &ProcessPlan) -> Result<()> {
    if p.uid != 0 {
        fix_stdio_owner(p.uid);
    }
    for (res, soft, hard, name) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        if unsafe { libc::setrlimit(*res as _, &lim) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("process.rlimits: {name} soft={soft} hard={hard}"));
        }
    }
    capabilities::drop_bounding(p.caps.bounding, p.last_cap)
        .context("drop bounding capabilities")?;
    os(
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) },
        "keep capabilities",
    )?;
    if unsafe { libc::setgroups(p.groups.len(), p.groups.as_ptr()) } != 0 {
        let e = std::io::Error::last_os_error();
        // A rootless user namespace denies setgroups; with no extra groups asked for,
        // there is nothing to set.
        if !(p.groups.is_empty() && e.raw_os_error() == Some(libc::EPERM)) {
            return Err(e).context("process.user.additionalGids: setgroups");
        }
    }
    os(
        unsafe { libc::setresgid(p.gid, p.gid, p.gid) },
        &format!("process.user.gid {}", p.gid),
    )?;
    os(
        unsafe { libc::setresuid(p.uid, p.uid, p.uid) },
        &format!("process.user.uid {}", p.uid),
    )?;
    os(
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) },
        "clear keep capabilities",
    )?;
    // A uid change resets dumpability to fs.suid_dumpable; we must stay non-dumpable
    // (CVE-2016-9962) until execve.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if !capabilities::apply(&p.caps).context("set capabilities")? {
        // runc says nothing either: a config may list ambient caps it cannot have.
        tracing::debug!("could not raise every ambient capability (they must also be permitted and inheritable)");
    }
    if p.no_new_privs {
        os(
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            "set no_new_privs",
        )?;
    }
    Ok(())
}

/// args[0] resolved in the container, as execvp would, so a bad program fails `create`.
/// Failures are worded as runc words them (Go's exec.LookPath): docker and podman turn
/// "executable file not found" / "no such file or directory" into exit code 127 and
/// "permission denied" into 126.
fn find_exe(p: &ProcessPlan) -> Result<CString> {
    let arg0 = p.args[0].to_string_lossy();
    let mut last_err = None;
    for cand in &p.candidates {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::stat(cand.as_ptr(), &mut st) } != 0 {
            let e = std::io::Error::last_os_error();
            last_err = Some(format!("stat {}: {}", cand.to_string_lossy(), go_text(&e)));
            continue;
        }
        // Go's findExecutable: a directory, or a file without an x bit, is EACCES.
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR
            || unsafe { libc::access(cand.as_ptr(), libc::X_OK) } != 0
        {
            last_err = Some(go_text(&std::io::Error::from_raw_os_error(libc::EACCES)));
            continue;
        }
        return Ok(cand.clone());
    }
    if arg0.contains('/') {
        bail!(
            "process.args[0]: exec: {arg0:?}: {}",
            last_err.unwrap_or_default()
        );
    }
    bail!("process.args[0]: exec: {arg0:?}: executable file not found in $PATH");
}

/// An errno as Go prints it ("no such file or directory"): what clients match on.
pub fn go_text(e: &std::io::Error) -> String {
    let Some(n) = e.raw_os_error() else {
        return e.to_string();
    };
    let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(n)) }.to_string_lossy();
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}
