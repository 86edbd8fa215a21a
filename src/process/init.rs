//! The child side of clone: what the container's init does between clone and execve.
//!
//! It never returns. Errors go back to the parent over the message pipe (and the init
//! exits); the process stays non-dumpable until execve (CVE-2016-9962), every fd but
//! stdio is CLOEXEC at execve, and the cwd is checked to lie inside the container
//! (CVE-2024-21626).

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::channel::{send_error, send_ready};
use super::{InitPlan, ProcessPlan};
use crate::paths::Root;
use crate::{capabilities, devices, mounts, namespaces, rootfs};

/// File descriptors the init is handed by its parent.
pub struct InitFds {
    /// Messages to the parent.
    pub chan: OwnedFd,
    /// One byte from the parent once the init is in its cgroups.
    pub go: OwnedFd,
    /// The exec fifo (opened O_RDWR): `start` writes a byte to it to release us.
    pub fifo: OwnedFd,
    /// The parent's state-dir lock: a flock is shared by every copy of the fd, so the
    /// init must drop its copy or no other command could run until it exits.
    pub lock: std::os::fd::RawFd,
}

/// Run the init. `orig_mask` is the signal mask to restore before exec.
pub fn run(plan: &InitPlan, fds: InitFds, orig_mask: &libc::sigset_t) -> ! {
    unsafe { libc::close(fds.lock) };
    let exe = match setup(plan, &fds, orig_mask) {
        Ok(exe) => exe,
        Err(e) => {
            send_error(&fds.chan, &format!("{e:#}"));
            unsafe { libc::_exit(1) }
        }
    };
    send_ready(&fds.chan);
    // "saved", or EOF if the parent died before it could record us: then nobody knows
    // this init, so it goes away instead of waiting forever. (EOF at the cgroup gate
    // earlier ends it the same way.)
    let mut s = [0u8; 1];
    if unsafe { libc::read(fds.go.as_raw_fd(), s.as_mut_ptr() as *mut libc::c_void, 1) } != 1 {
        unsafe { libc::_exit(1) };
    }
    // Wait for `start`. The fifo is open read-write, so this blocks until a byte comes.
    let mut b = [0u8; 1];
    loop {
        let n = unsafe { libc::read(fds.fifo.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1) };
        if n == 1 {
            break;
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        unsafe { libc::_exit(1) };
    }
    let argv = ptrs(&plan.process.args);
    let envp = ptrs(&plan.process.env);
    // The user's program starts with nothing blocked, whatever our caller blocked.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr())
    };
    let e = std::io::Error::last_os_error();
    let msg = format!("exec {:?}: {e}", exe);
    // `run` reads the channel and reports the error; after a plain `create` nobody does,
    // so then (EPIPE, with SIGPIPE ignored now) it goes to the container's stderr.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if !send_error(&fds.chan, &msg) {
        eprintln!("strata: {msg}");
    }
    unsafe { libc::_exit(127) }
}

fn ptrs(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn os(r: libc::c_int, what: &str) -> Result<()> {
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_string());
    }
    Ok(())
}

fn setup(plan: &InitPlan, fds: &InitFds, orig_mask: &libc::sigset_t) -> Result<CString> {
    unsafe {
        // Rust ignores SIGPIPE by default; the container must get default dispositions.
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        libc::sigprocmask(libc::SIG_SETMASK, orig_mask, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::umask(0);
    }
    let gate = CgroupGate {
        go: fds.go.as_raw_fd(),
        unshare: plan.ns.new_cgroup,
        passed: std::cell::Cell::new(false),
    };
    for (fd, t, name) in &plan.ns.join {
        namespaces::join(fd, *t, name)?;
    }
    plan.attrs.enter_time_ns()?;
    if let Some(name) = &plan.new_keyring {
        // A private session keyring, so the container cannot read the caller's keys.
        // Kernels without keyrings (ENOSYS) simply have nothing to leak.
        const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
        if unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) }
            < 0
        {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOSYS) {
                return Err(e).context("join a new session keyring");
            }
        }
    }
    if let Some(h) = &plan.hostname {
        os(
            unsafe { libc::sethostname(h.as_ptr(), h.as_bytes().len()) },
            "set hostname",
        )?;
    }
    if let Some(d) = &plan.domainname {
        os(
            unsafe { libc::setdomainname(d.as_ptr(), d.as_bytes().len()) },
            "set domainname",
        )?;
    }
    if let Some(adj) = plan.process.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .with_context(|| format!("process.oomScoreAdj {adj}"))?;
    }

    rootfs::prepare(&plan.rootfs, plan.propagation)?;
    let root = Root::open(&plan.rootfs)
        .with_context(|| format!("open rootfs {}", plan.rootfs.display()))?;
    for m in &plan.mounts {
        if matches!(m.kind, mounts::Kind::Cgroup) {
            gate.pass()?;
        }
        mounts::apply(&root, m, &plan.cgroup_mount)?;
    }
    gate.pass()?;
    devices::create(&root, &plan.devices, plan.ptmx)?;
    rootfs::write_sysctls(&root, &plan.sysctl)?;
    rootfs::mask_paths(&root, &plan.masked)?;
    rootfs::readonly_paths(&root, &plan.readonly_paths)?;
    drop(root);
    rootfs::enter(&plan.rootfs, plan.no_pivot)?;
    rootfs::finalize(plan.propagation, plan.readonly)?;

    let p = &plan.process;
    set_cwd(p)?;
    plan.attrs.apply()?;
    identity(p)?;
    let exe = find_exe(p)?;
    unsafe { libc::umask(p.umask as libc::mode_t) };
    // Every fd above the preserved ones closes at exec: nothing of the runtime leaks.
    let first = 3 + p.preserve_fds;
    const CLOSE_RANGE_CLOEXEC: u32 = 4;
    if unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) } != 0 {
        mark_cloexec_fallback(first as i32);
    }
    for fd in 3..first as i32 {
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("--preserve-fds: fd {fd} is not open"));
        }
    }
    Ok(exe)
}

/// The parent places the init in its cgroups while the init builds the rootfs; only the
/// cgroup namespace (rooted at the container's cgroup) and the cgroup mount need to wait.
struct CgroupGate {
    go: std::os::fd::RawFd,
    unshare: bool,
    passed: std::cell::Cell<bool>,
}

impl CgroupGate {
    fn pass(&self) -> Result<()> {
        if self.passed.replace(true) {
            return Ok(());
        }
        let mut b = [0u8; 1];
        if unsafe { libc::read(self.go, b.as_mut_ptr() as *mut libc::c_void, 1) } != 1 {
            // The parent gave up (and reports why); nothing more to say.
            unsafe { libc::_exit(1) };
        }
        if self.unshare {
            os(
                unsafe { libc::unshare(libc::CLONE_NEWCGROUP) },
                "unshare cgroup namespace",
            )?;
        }
        Ok(())
    }
}

fn mark_cloexec_fallback(first: i32) {
    // Not /proc/self/fd: after pivot_root that is whatever the image put at /proc.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let max = lim.rlim_cur.min(1 << 20) as i32;
    for fd in first..max {
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
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

fn identity(p: &ProcessPlan) -> Result<()> {
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
    os(
        unsafe { libc::setgroups(p.groups.len(), p.groups.as_ptr()) },
        "process.user.additionalGids: setgroups",
    )?;
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
        tracing::warn!("could not raise every ambient capability (they must also be permitted and inheritable)");
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
fn find_exe(p: &ProcessPlan) -> Result<CString> {
    let arg0 = p.args[0].to_string_lossy();
    let mut last_err = None;
    for cand in &p.candidates {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::stat(cand.as_ptr(), &mut st) } != 0 {
            last_err = Some(std::io::Error::last_os_error());
            continue;
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            last_err = Some(std::io::Error::from_raw_os_error(libc::EISDIR));
            continue;
        }
        if unsafe { libc::access(cand.as_ptr(), libc::X_OK) } != 0 {
            last_err = Some(std::io::Error::last_os_error());
            continue;
        }
        return Ok(cand.clone());
    }
    if arg0.contains('/') {
        bail!(
            "process.args[0] {arg0:?}: {}",
            last_err.map(|e| e.to_string()).unwrap_or_default()
        );
    }
    bail!("process.args[0] {arg0:?}: executable file not found in $PATH");
}
