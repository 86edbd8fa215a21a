//! The child side of clone: what the container's init does between clone and execve.
//!
//! It never returns. Errors go back to the parent over the message pipe (and the init
//! exits); the process stays non-dumpable until execve (CVE-2016-9962), every fd but
//! stdio is CLOEXEC at execve, and the cwd is checked to lie inside the container
//! (CVE-2024-21626).

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use super::channel::{send_error, send_hooks, send_pid, send_ready};
use super::user::{self, os};
use super::InitPlan;
use crate::hooks::{self, Kind};
use crate::paths::Root;
use crate::{console, devices, mounts, namespaces, rootfs};

/// File descriptors the init is handed by its parent.
pub struct InitFds {
    /// Messages to the parent.
    pub chan: OwnedFd,
    /// One byte from the parent once the cgroups are made (with the v1 `tasks` files to
    /// join attached), then "h" after the runtime's hooks, "s" once the state is saved.
    pub go: OwnedFd,
    /// The exec fifo (opened O_RDWR): `start` writes a byte to it to release us.
    pub fifo: OwnedFd,
    /// The parent's state-dir lock: a flock is shared by every copy of the fd, so the
    /// init must drop its copy or no other command could run until it exits.
    pub lock: std::os::fd::RawFd,
    /// Where the pty master goes, with process.terminal.
    pub console: Option<OwnedFd>,
}

/// Run the init. `orig_mask` is the signal mask to restore before exec.
pub fn run(plan: &InitPlan, fds: InitFds, orig_mask: &libc::sigset_t) -> ! {
    unsafe { libc::close(fds.lock) };
    crate::exeseal::close_inherited();
    // Hooks see the pid `strata state` shows; /proc is still the runtime's here.
    let mut hook_state = plan.hooks.state.clone();
    let exe = match setup(plan, &fds, orig_mask, &mut hook_state) {
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
    if let Some(s) = &hook_state {
        if let Err(e) = hooks::run(Kind::StartContainer, &plan.hooks.start_container, s) {
            report_late(&fds, &format!("{e:#}"));
            unsafe { libc::_exit(1) }
        }
    }
    let msg = user::exec(&plan.process, &exe);
    report_late(&fds, &msg);
    unsafe { libc::_exit(127) }
}

/// An error after `start` released us. `run` reads the channel and reports it; after a
/// plain `create` nobody does, so then (EPIPE, with SIGPIPE ignored now) it goes to the
/// container's stderr, and into the exec fifo for a `start` that watches it.
fn report_late(fds: &InitFds, msg: &str) {
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if !send_error(&fds.chan, msg) {
        eprintln!("strata: {msg}");
        // One atomic write (≤ PIPE_BUF) that never blocks on an empty fifo.
        let m = &msg.as_bytes()[..msg.len().min(libc::PIPE_BUF)];
        unsafe {
            libc::write(
                fds.fifo.as_raw_fd(),
                m.as_ptr() as *const libc::c_void,
                m.len(),
            )
        };
    }
}

fn runtime_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or_else(|| unsafe { libc::getpid() })
}

fn setup(
    plan: &InitPlan,
    fds: &InitFds,
    orig_mask: &libc::sigset_t,
    hook_state: &mut Option<hooks::State>,
) -> Result<CString> {
    user::reset_signals(orig_mask);
    unsafe { libc::umask(0) };
    let gate = CgroupGate {
        go: fds.go.as_raw_fd(),
        unshare: plan.ns.new_cgroup,
        passed: std::cell::Cell::new(false),
    };
    for (fd, t, name) in &plan.ns.join {
        namespaces::join(fd, *t, name)?;
    }
    if plan.ns.unshare_user {
        os(
            unsafe { libc::unshare(libc::CLONE_NEWUSER) },
            "create the user namespace (after joining linux.namespaces paths)",
        )?;
    }
    let parent_sets_time = plan.attrs.time_offsets_by_parent(plan.ns.user).is_some();
    if parent_sets_time {
        plan.attrs.unshare_time_ns()?;
    }
    if plan.ns.unshare_user || parent_sets_time {
        // The parent now writes what only it may: id maps, time offsets.
        super::channel::send_userns(&fds.chan);
    }
    if plan.ns.user {
        // Until the parent has written our id maps we own no file we create: wait for them
        // (the gate opens once maps and cgroups are done), then act as the namespace's root.
        gate.pass()?;
        // Rootless, we were born dumpable so that our unprivileged parent could write
        // the maps; from here on nothing may ptrace us (CVE-2016-9962).
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        os(
            unsafe { libc::setresgid(0, 0, 0) },
            "become gid 0 in the user namespace (is container gid 0 mapped?)",
        )?;
        os(
            unsafe { libc::setresuid(0, 0, 0) },
            "become uid 0 in the user namespace (is container uid 0 mapped?)",
        )?;
    }
    if plan.ns.deferred != 0 {
        unshare_deferred(plan.ns.deferred, fds)?;
    }
    if let Some(s) = hook_state.as_mut() {
        s.pid = runtime_pid();
    }
    let hook_state = hook_state.as_ref();
    plan.attrs.enter_time_ns(plan.ns.user)?;
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

    rootfs::prepare(
        &plan.rootfs,
        plan.propagation,
        plan.overlay.as_ref(),
        plan.ns.mount,
    )?;
    let root = Root::open(&plan.rootfs)
        .with_context(|| format!("open rootfs {}", plan.rootfs.display()))?;
    // Idmapped trees, and in a user namespace every bind, come from the parent, cloned
    // in our namespace now that it is a slave.
    let n = plan.mounts.iter().filter(|m| m.from_parent).count();
    let mut trees = if n > 0 {
        super::channel::request_trees(&fds.chan, n).context("receive bind mount trees")?
    } else {
        vec![]
    }
    .into_iter();
    let mut late = vec![];
    for m in &plan.mounts {
        if matches!(m.kind, mounts::Kind::Cgroup) {
            gate.pass()?;
        }
        let tree = if m.from_parent { trees.next() } else { None };
        late.extend(mounts::apply(&root, m, &plan.cgroup_mount, tree.as_ref())?);
    }
    gate.pass()?;
    devices::create(&root, &plan.devices, plan.ptmx, plan.ns.user)?;
    hooks_before_pivot(plan, fds, hook_state)?;
    rootfs::write_sysctls(&root, &plan.sysctl)?;
    rootfs::mask_paths(&root, &plan.masked)?;
    rootfs::readonly_paths(&root, &plan.readonly_paths)?;
    drop(root);
    rootfs::enter(&plan.rootfs, plan.no_pivot, plan.ns.mount)?;
    if let Some(sock) = &fds.console {
        // The pty comes from the container's own devpts, and becomes its /dev/console.
        console::attach(sock.as_raw_fd(), plan.process.console_size, true)
            .context("process.terminal")?;
    }
    for l in late {
        l.finish()?;
    }
    rootfs::finalize(plan.propagation, plan.readonly)?;

    user::prepare(&plan.process, &plan.attrs, &fds.chan)
}

/// Once in the container's user namespace (joined by path, or made after joining others),
/// make the new namespaces, so that they belong to it (made at clone they would belong to
/// the host's, and we could not mount in them).
/// A new pid namespace only takes our children: fork once more (as a sibling, so the
/// parent can reap it); the child, its pid 1, carries on as the init once we have told
/// the parent its pid and gone.
fn unshare_deferred(flags: libc::c_int, fds: &InitFds) -> Result<()> {
    os(
        unsafe { libc::unshare(flags & !libc::CLONE_NEWPID) },
        "create namespaces in the container's user namespace",
    )?;
    if flags & libc::CLONE_NEWPID == 0 {
        return Ok(());
    }
    os(
        unsafe { libc::unshare(libc::CLONE_NEWPID) },
        "create a pid namespace in the container's user namespace",
    )?;
    let (r, w) = super::channel::pipe().context("pipe")?;
    let pid = super::clone::clone_fork(libc::CLONE_PARENT).context("fork the init")?;
    if pid == 0 {
        drop(w);
        // One byte once the parent knows our pid; EOF (the first init died or could not
        // tell it) means nobody would ever reap or clean up after us.
        let mut b = [0u8; 1];
        if unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1) } != 1 {
            unsafe { libc::_exit(1) };
        }
        return Ok(());
    }
    if send_pid(&fds.chan, pid) {
        unsafe { libc::write(w.as_raw_fd(), b"p".as_ptr() as *const libc::c_void, 1) };
        unsafe { libc::_exit(0) }
    }
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::_exit(1)
    }
}

/// prestart and createRuntime hooks run in the parent, createContainer ones here: after
/// the mounts, before pivot_root, and (as in runc) before sysctls, which may name an
/// interface a hook made.
fn hooks_before_pivot(plan: &InitPlan, fds: &InitFds, state: Option<&hooks::State>) -> Result<()> {
    if plan.hooks.ask_parent {
        send_hooks(&fds.chan);
        let mut b = [0u8; 1];
        if unsafe { libc::read(fds.go.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1) } != 1 {
            // A hook failed: the parent reports it and kills us.
            unsafe { libc::_exit(1) };
        }
    }
    if let Some(s) = state {
        hooks::run(Kind::CreateContainer, &plan.hooks.create_container, s)?;
    }
    Ok(())
}

/// The parent makes the cgroups while the init builds the rootfs; only the cgroup
/// namespace (rooted at the container's cgroup) and the cgroup mount need to wait. "go"
/// brings the v1 `tasks` files to join (see `cgroups::place`).
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
        let Ok((1, tasks)) = crate::fdpass::recv_fds(self.go, &mut b) else {
            // The parent gave up (and reports why); nothing more to say.
            unsafe { libc::_exit(1) };
        };
        crate::cgroups::join_self(tasks)?;
        if self.unshare {
            os(
                unsafe { libc::unshare(libc::CLONE_NEWCGROUP) },
                "unshare cgroup namespace",
            )?;
        }
        Ok(())
    }
}
