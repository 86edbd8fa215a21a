//! `create`: reserve the ID, place a new init in its namespaces and cgroups, let it build
//! the container, and return once it waits on the exec fifo. Any failure undoes it all.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::cgroups::{self, CgroupMount};
use crate::hooks::{self, Kind};
use crate::process::channel::{self, Msg};
use crate::process::{clone::clone_fork, init, InitPlan};
use crate::state::{ContainerState, StateDir};
use crate::{namespaces, overlay, spec, timefmt};

/// What `create` (and `run`) were asked to do.
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub systemd_cgroup: bool,
    /// Extra fds (3..3+N) handed to the container.
    pub preserve_fds: u32,
    /// Of those, how many came from `LISTEN_FDS`: the container is told about them
    /// (`LISTEN_FDS=N`, `LISTEN_PID=1`), as runc does.
    pub listen_fds: u32,
    /// Keep the caller's session keyring instead of joining a new one.
    pub no_new_keyring: bool,
    /// Where the pty master of a process.terminal container goes.
    pub console_socket: Option<PathBuf>,
    /// A foreground `run`: without a console socket, the terminal is proxied by us.
    pub foreground: bool,
    /// `run`: we release the init ourselves right after create, so it waits on a pipe
    /// instead of an exec fifo in the state dir (no inode to make, unlink and evict).
    pub start_now: bool,
}

/// A container in state `created`, with the parent's ends of its pipes (used by `run`).
pub struct Created {
    pub state: ContainerState,
    pub fifo: OwnedFd,
    pub chan: OwnedFd,
    /// The signal mask before create blocked every signal.
    pub orig_mask: libc::sigset_t,
    /// Our end of the console socket, when we proxy the container's terminal.
    pub console: Option<OwnedFd>,
}

// Undoes a half-made container: kills the init, removes cgroups, the state dir, and the
// overlay work dir if we made it.
struct Undo {
    pid: libc::pid_t,
    cgroups: Vec<PathBuf>,
    leaves: Vec<PathBuf>,
    root: PathBuf,
    dir: Option<PathBuf>,
    workdir: Option<PathBuf>,
    /// Without a mount namespace: (rootfs, mount ID below the container's mounts).
    host_mounts: Option<(PathBuf, u64)>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.pid > 0 {
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
        // What else got into the cgroups we made: an init forked into a new pid
        // namespace that we had not heard of yet.
        for p in cgroups::pids(&self.cgroups) {
            unsafe {
                libc::kill(p, libc::SIGKILL);
                libc::waitpid(p, std::ptr::null_mut(), 0);
            }
        }
        cgroups::remove(&self.cgroups, &self.leaves, &self.root);
        if let Some((rootfs, below)) = &self.host_mounts {
            crate::rootfs::detach_host_mounts(rootfs, *below);
        }
        // With the init gone, so is its overlay (and overlayfs's own work/work inside).
        // Before the state dir: while our claim on the upper dir is visible, no other
        // create can take up a work dir we are about to remove.
        if let Some(w) = &self.workdir {
            let _ = std::fs::remove_dir_all(w);
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn mkfifo(path: &Path) -> Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("mkfifo {}", path.display()));
    }
    // O_RDWR never blocks on open; the init's read then blocks until `start` writes.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("open {}", path.display()));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Write a pid file atomically, as containerd expects to read it whole.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("pid")
    ));
    // Errors name the file the caller asked for, not our temp name beside it.
    let what = || format!("--pid-file {}", path.display());
    std::fs::write(&tmp, pid.to_string()).with_context(what)?;
    std::fs::rename(&tmp, path)
        .with_context(what)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// Create the container. Returns with every signal blocked (see `Created::orig_mask`),
/// so that `run` cannot miss the init's SIGCHLD however fast it exits.
pub fn create(o: &CreateOpts) -> Result<Created> {
    crate::state::validate_id(&o.id)?;
    let bundle = std::fs::canonicalize(&o.bundle)
        .with_context(|| format!("bundle {}", o.bundle.display()))?;
    let (spec, spec_bytes) = spec::load(&bundle)?;
    spec::validate(&spec)?;
    let rootfs = spec::rootfs_path(&spec, &bundle)?;
    let rootfs =
        std::fs::canonicalize(&rootfs).with_context(|| format!("rootfs {}", rootfs.display()))?;
    let linux = spec.linux().clone().unwrap_or_default();
    let ns = namespaces::plan(linux.namespaces().as_deref().unwrap_or(&[]))?;
    let hs = cgroups::hierarchies()?;
    let annotations = spec.annotations().clone().unwrap_or_default();

    let sd = StateDir::create(&o.root, &o.id)?;
    let mut undo = Undo {
        pid: 0,
        cgroups: vec![],
        leaves: vec![],
        root: o.root.clone(),
        dir: Some(sd.dir.clone()),
        workdir: None,
        host_mounts: None,
    };
    // An upper dir is claimed under the root's lock, held from before its work dir may
    // be made until our provisional state (the claim) is saved: of two creates with one
    // upper or work dir, one sees the other's claim, and never uses a dir the other made
    // and may remove again.
    let root_lock = annotations
        .contains_key(overlay::UPPERDIR)
        .then(|| crate::state::lock_dir(&o.root))
        .transpose()?;
    let layers = overlay_layers(&annotations, &bundle, &ns)?;
    undo.workdir = layers.as_ref().and_then(|l| l.made_workdir.clone());
    // Cgroups are only planned here; the parent makes them after the clone, while the
    // init already builds the rootfs (it waits for them only at its cgroup gate).
    let mut placement = cgroups::plan(
        &hs,
        linux.cgroups_path().as_deref(),
        &o.id,
        o.systemd_cgroup,
    )?;
    if unsafe { libc::geteuid() } != 0 {
        placement = cgroups::rootless(placement, &linux)?;
    }
    // Provisional state (no pid yet): if we are killed from here on, `delete` still finds
    // the cgroups to remove, and the init exits when it sees our end of "go" close.
    let st = ContainerState {
        id: o.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: timefmt::now_rfc3339_nanos(),
        owner: String::new(),
        annotations,
        cgroup_dirs: placement.created.clone(),
        cgroup_paths: placement.paths.clone(),
        oci_version: spec.version().clone(),
        own_pid_ns: false,
        shared_cgroup: placement.shared,
        rootfs_mount_below: (!ns.mount)
            .then(|| crate::rootfs::mount_id_at(&rootfs))
            .transpose()?,
        hooks: spec.hooks().clone(),
    };
    if let Some(u) = layers.as_ref().and_then(|l| l.upper.as_ref()) {
        ensure_upper_free(&o.root, &o.id, u)?;
    }
    undo.host_mounts = st.rootfs_mount_below.map(|b| (rootfs.clone(), b));
    sd.save(&st)?;
    drop(root_lock);
    let cgm = CgroupMount::new(&hs, &placement, ns.new_cgroup);
    let mut plan = InitPlan::build(&spec, &bundle, rootfs.clone(), o.no_pivot, ns, cgm)?;
    plan.overlay = layers;
    let id_maps = namespaces::IdMaps::plan(&linux, &plan.ns)?;
    let idmaps = crate::mounts::idmap::prepare(&mut plan.mounts, &plan.ns, id_maps.as_ref())?;
    plan.process.preserve_fds = o.preserve_fds;
    if o.listen_fds > 0 {
        for e in [
            format!("LISTEN_FDS={}", o.listen_fds),
            "LISTEN_PID=1".into(),
        ] {
            plan.process.env.push(CString::new(e)?);
        }
    }
    plan.new_keyring = (!o.no_new_keyring)
        .then(|| CString::new(format!("_ses.{}", o.id)))
        .transpose()?;
    plan.hooks = hooks::InitHooks::new(st.hooks.as_ref(), &st);

    // The pty master goes to the caller's socket, or to us to proxy in the foreground.
    let (console_child, console_ours) = console_socket(
        plan.process.terminal,
        o.console_socket.as_deref(),
        o.foreground,
    )?;
    // (ours, the init's end if it differs)
    let (fifo, init_end) = if o.start_now {
        let (r, w) = channel::pipe()?;
        (w, Some(r))
    } else {
        (mkfifo(&sd.fifo_path())?, None)
    };
    let (chan_r, chan_w) = channel::channel()?;
    // A socket, not a pipe: "go" brings fds along.
    let (go_r, go_w) = crate::fdpass::socketpair()?;
    let orig_mask = crate::process::wait::block_all();
    if let Some(fd) = &plan.ns.join_pid {
        namespaces::join(fd, libc::CLONE_NEWPID, "pid")?;
    }
    // Non-dumpable from birth: the init is never ptrace-able by the container
    // (CVE-2016-9962), not even before its first instruction. Rootless, an unprivileged
    // parent could not write a non-dumpable child's id maps: the init turns itself
    // non-dumpable once they are written, before it touches the container.
    let rootless = id_maps.is_some() && unsafe { libc::geteuid() } != 0;
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, rootless as libc::c_ulong, 0, 0, 0) };
    let mut pid = clone_fork(plan.ns.clone_flags).context("clone container init")?;
    if pid == 0 {
        drop(chan_r);
        drop(go_w);
        let fifo_child = init_end.unwrap_or(fifo);
        init::run(
            &plan,
            init::InitFds {
                chan: chan_w,
                go: go_r,
                fifo: fifo_child,
                lock: sd.lock_fd(),
                console: console_child,
            },
            &orig_mask,
        );
    }
    undo.pid = pid;
    drop(init_end);
    drop(chan_w);
    drop(go_r);
    // The init is already building the rootfs; it waits for "go" only before it needs
    // to be in its cgroups. If it failed meanwhile, its own message explains more.
    let placed = if plan.ns.unshare_user {
        // The maps can only be written once the init has made its user namespace.
        match channel::recv(&chan_r) {
            Msg::Userns => Ok(()),
            Msg::Error(m) => Err(anyhow::anyhow!("container init: {m}")),
            m => Err(anyhow::anyhow!(
                "container init: expected its user namespace, got {m:?}"
            )),
        }
    } else {
        Ok(())
    };
    let placed = placed
        .and_then(|_| id_maps.as_ref().map_or(Ok(()), |m| m.write(pid, "linux.")))
        .and_then(|_| cgroups::make(&placement, &o.root))
        .and_then(|made| {
            undo.cgroups = made;
            undo.leaves = placement.paths.clone();
            if let Some(r) = linux.resources() {
                cgroups::resources::apply(&placement.paths, r)?;
            }
            cgroups::apply_device_rules(&placement.paths, &linux)?;
            cgroups::place(&placement.paths, pid)
        });
    let tasks = match placed {
        Ok(t) => t,
        Err(e) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            if let Msg::Error(m) = channel::recv(&chan_r) {
                bail!("container init: {m}");
            }
            return Err(e);
        }
    };
    drop(console_child);
    // "go" carries the v1 `tasks` files the init writes itself into (cgroups::place).
    let raw: Vec<i32> = tasks.iter().map(|f| f.as_raw_fd()).collect();
    let _ = crate::fdpass::send_fds(go_w.as_raw_fd(), b"g", &raw);
    drop(tasks);
    // Only `exec` reads it, once we are done: written while the init builds the rootfs.
    let saved = sd.dir.join(super::exec::SAVED_CONFIG);
    std::fs::write(&saved, &spec_bytes).with_context(|| format!("write {}", saved.display()))?;
    let stop = channel::stop_signals()?;
    let next = || {
        channel::recv_or_signal(&chan_r, &stop).map_err(|sig| {
            anyhow::anyhow!("interrupted by signal {sig} while the container was being set up")
        })
    };
    let mut hooks_ran = false;
    let mut forked = false;
    loop {
        match next()? {
            Msg::Hooks if !hooks_ran => {
                // The init waits before pivot_root; on error, `undo` kills it.
                hooks_ran = true;
                let state = hooks::State::new(&st, pid);
                for kind in [Kind::Prestart, Kind::CreateRuntime] {
                    hooks::run(kind, hooks::of(st.hooks.as_ref(), kind), &state)?;
                }
                unsafe { libc::write(go_w.as_raw_fd(), b"h".as_ptr() as *const libc::c_void, 1) };
            }
            Msg::Ready => break,
            Msg::Fd(fd) => {
                let Some((path, meta)) = plan
                    .process
                    .seccomp
                    .as_ref()
                    .and_then(|f| f.listener.as_ref())
                else {
                    bail!("container init sent an fd nobody asked for");
                };
                let state = hooks::State {
                    status: "creating",
                    ..hooks::State::new(&st, pid)
                };
                crate::seccomp::send_listener(path, meta, &fd, pid, &state)?;
            }
            Msg::Pid(p) if !forked && plan.ns.deferred & libc::CLONE_NEWPID != 0 => {
                // The first init forked the real one into a new pid namespace, and exits.
                forked = true;
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                pid = p;
                undo.pid = p;
            }
            Msg::Pid(_) => bail!("container init sent a pid nobody asked for"),
            Msg::Idmap => {
                let Some(prepared) = &idmaps else {
                    bail!("container init asked for bind mount trees it has none of");
                };
                for tree in crate::mounts::idmap::build(prepared, &plan.mounts, pid)? {
                    channel::send_tree(&chan_r, &tree).context("send a bind mount tree")?;
                }
            }
            Msg::Error(m) => bail!("container init: {m}"),
            Msg::Eof => bail!("container init exited during setup without a message"),
            Msg::Hooks => bail!("container init asked twice for the runtime's hooks"),
            Msg::Userns => bail!("container init sent an unexpected user namespace message"),
        }
    }
    // The init closed its copies of the exe seal's mounts first thing; no more forks.
    crate::exeseal::release_later();
    let pid_start = crate::container::status::proc_stat(pid)
        .map(|(_, t)| t)
        .context("container init vanished")?;
    let mut st = st;
    st.pid = pid;
    st.pid_start = pid_start;
    st.own_pid_ns = plan.ns.new_pid;
    // What was made, not what was planned: a concurrent create may have made a parent.
    st.cgroup_dirs = undo.cgroups.clone();
    sd.save(&st)?;
    if let Some(p) = &o.pid_file {
        write_pid_file(p, pid)?;
    }
    // The state is on disk: the init may now outlive us.
    if unsafe { libc::write(go_w.as_raw_fd(), b"s".as_ptr() as *const libc::c_void, 1) } != 1 {
        bail!("container init exited before it was started");
    }
    drop(go_w);
    undo.pid = 0;
    undo.cgroups.clear();
    undo.dir = None;
    undo.workdir = None;
    undo.host_mounts = None;
    tracing::debug!(id = %o.id, pid, "container created");
    Ok(Created {
        state: st,
        fifo,
        chan: chan_r,
        orig_mask,
        console: console_ours,
    })
}

/// The overlay root config.json's annotations ask for, its layers opened and checked.
fn overlay_layers(
    annotations: &HashMap<String, String>,
    bundle: &Path,
    ns: &namespaces::NsPlan,
) -> Result<Option<overlay::Layers>> {
    let layers = overlay::Layers::from_annotations(annotations, bundle)?;
    if layers.is_some() && !ns.mount {
        if let Some(w) = layers.as_ref().and_then(|l| l.made_workdir.as_ref()) {
            let _ = std::fs::remove_dir(w);
        }
        bail!(
            "{}: an overlay root needs a mount namespace (linux.namespaces has no \"mount\")",
            overlay::LOWERDIR
        );
    }
    if layers.is_some() && ns.user {
        // Inside a user namespace overlayfs cannot write its trusted.* whiteouts and
        // opaque dirs: the upper dir would not describe the change the same way.
        if let Some(w) = layers.as_ref().and_then(|l| l.made_workdir.as_ref()) {
            let _ = std::fs::remove_dir(w);
        }
        bail!(
            "{}: an overlay root in a user namespace is not supported",
            overlay::LOWERDIR
        );
    }
    Ok(layers)
}

/// Refuse an upper or work dir that another container of this root uses as either:
/// one created, running, paused, or still being created (its provisional state has no
/// pid yet). overlayfs with index=off only warns about shared ones (and a second mount
/// would empty the first one's work dir). Called under the root's lock.
fn ensure_upper_free(root: &Path, id: &str, upper: &overlay::Upper) -> Result<()> {
    let mut ours = vec![];
    for d in [&upper.dir, &upper.work] {
        let s = crate::paths::fstat(d.fd.as_raw_fd())?;
        ours.push(((s.st_dev, s.st_ino), d));
    }
    for other in crate::state::list_ids(root)?.iter().filter(|o| *o != id) {
        let Ok(sd) = StateDir::open_unlocked(root, other) else {
            continue;
        };
        let Ok(st) = sd.load() else { continue };
        let Some(theirs) = overlay::upper_and_work(&st.annotations, &st.bundle) else {
            continue;
        };
        let theirs: Vec<(u64, u64)> = theirs
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        let Some((_, dir)) = ours.iter().find(|(key, _)| theirs.contains(key)) else {
            continue;
        };
        let status = match st.pid {
            0 => "being created".to_string(),
            _ => match super::status::status(&st, &sd) {
                super::Status::Stopped => continue,
                s => s.to_string(),
            },
        };
        bail!(
            "{} {}: in use by container {other} ({status})",
            dir.annotation,
            dir.path.display()
        );
    }
    Ok(())
}

/// (the child's end, our end) of the console socket, checked against process.terminal
/// as runc does.
pub fn console_socket(
    terminal: bool,
    path: Option<&Path>,
    foreground: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    match (terminal, path) {
        (true, Some(p)) => Ok((Some(crate::console::connect(p)?), None)),
        (true, None) if foreground => {
            let (ours, child) = crate::fdpass::socketpair()?;
            Ok((Some(child), Some(ours)))
        }
        (true, None) => bail!("process.terminal is true: a detached container needs --console-socket to receive its terminal"),
        (false, Some(_)) => bail!("--console-socket given but process.terminal is false: there is no terminal to send"),
        (false, None) => Ok((None, None)),
    }
}
