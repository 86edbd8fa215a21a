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
use oci_spec::runtime::{Linux, Spec};

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

impl Undo {
    fn new(root: &Path, sd: &StateDir) -> Undo {
        Undo {
            pid: 0,
            cgroups: vec![],
            leaves: vec![],
            root: root.to_path_buf(),
            dir: Some(sd.dir.clone()),
            workdir: None,
            host_mounts: None,
        }
    }

    /// The container is created: nothing is undone any more.
    fn disarm(&mut self) {
        self.pid = 0;
        self.cgroups.clear();
        self.dir = None;
        self.workdir = None;
        self.host_mounts = None;
    }
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

/// Create the container. Returns with every signal blocked (see `Created::orig_mask`),
/// so that `run` cannot miss the init's SIGCHLD however fast it exits.
pub fn create(o: &CreateOpts) -> Result<Created> {
    let (b, ns) = load_bundle(o)?;
    let hs = cgroups::hierarchies()?;
    let sd = StateDir::create(&o.root, &o.id)?;
    let mut undo = Undo::new(&o.root, &sd);
    let (st, placement, layers) = reserve(o, &b, &ns, &hs, &sd, &mut undo)?;
    let cgm = CgroupMount::new(&hs, &placement, ns.new_cgroup);
    let (plan, id_maps, idmaps) = plan_init(o, &b, ns, &st, cgm, layers)?;

    // The pty master goes to the caller's socket, or to us to proxy in the foreground.
    let (console_child, console_ours) = crate::console::socket_ends(
        plan.process.terminal,
        o.console_socket.as_deref(),
        o.foreground,
    )?;
    let (chan_r, chan_w) = channel::channel()?;
    // A socket, not a pipe: "go" brings the v1 `tasks` files along (cgroups::place).
    let (go_r, go_w) = crate::fdpass::socketpair()?;
    // The init waits on the exec fifo, or for `run` on a pipe whose write end we keep.
    let (start_ours, start_child) = if o.start_now {
        let (r, w) = channel::pipe()?;
        (Some(w), r)
    } else {
        (None, mkfifo(&sd.fifo_path())?)
    };
    let child = init::InitFds {
        chan: chan_w,
        go: go_r,
        fifo: start_child,
        lock: sd.lock_fd(),
        console: console_child,
    };
    let ours = ParentEnds {
        chan: chan_r,
        go: go_w,
    };
    let orig_mask = crate::process::wait::block_all();
    let (
        pid,
        fifo,
        ParentEnds {
            chan: chan_r,
            go: go_w,
        },
    ) = spawn_init(&plan, id_maps.is_some(), child, ours, &orig_mask)?;
    let fifo = start_ours.unwrap_or(fifo);
    undo.pid = pid;
    let tasks = place_init(
        o,
        &b.linux,
        &plan,
        id_maps.as_ref(),
        &placement,
        &chan_r,
        &mut undo,
    )?;
    let raw: Vec<i32> = tasks.iter().map(|f| f.as_raw_fd()).collect();
    let _ = crate::fdpass::send_fds(go_w.as_raw_fd(), b"g", &raw);
    drop(tasks);
    // Only `exec` reads it, once we are done: written while the init builds the rootfs.
    let saved = sd.config_path();
    std::fs::write(&saved, &b.bytes).with_context(|| format!("write {}", saved.display()))?;
    let pid = serve_init(&plan, &st, idmaps.as_ref(), &chan_r, &go_w, &mut undo)?;
    // The init closed its copies of the exe seal's mounts first thing; no more forks.
    crate::exeseal::release_later();
    let st = record(o, &sd, st, pid, &plan, &undo.cgroups, go_w)?;
    undo.disarm();
    tracing::debug!(id = %o.id, pid, "container created");
    Ok(Created {
        state: st,
        fifo,
        chan: chan_r,
        orig_mask,
        console: console_ours,
    })
}

/// The bundle as `create` found it: config.json loaded and checked, the rootfs resolved,
/// the namespaces planned (returned beside it). Nothing is made yet.
struct Bundle {
    dir: PathBuf,
    spec: Spec,
    /// config.json as read: saved in the state dir for `exec`.
    bytes: Vec<u8>,
    rootfs: PathBuf,
    linux: Linux,
}

fn load_bundle(o: &CreateOpts) -> Result<(Bundle, namespaces::NsPlan)> {
    crate::state::validate_id(&o.id)?;
    let dir = std::fs::canonicalize(&o.bundle)
        .with_context(|| format!("bundle {}", o.bundle.display()))?;
    let (spec, bytes) = spec::load(&dir)?;
    spec::validate(&spec)?;
    let rootfs = spec::rootfs_path(&spec, &dir)?;
    let rootfs =
        std::fs::canonicalize(&rootfs).with_context(|| format!("rootfs {}", rootfs.display()))?;
    let linux = spec.linux().clone().unwrap_or_default();
    let ns = namespaces::plan(linux.namespaces().as_deref().unwrap_or(&[]))?;
    let b = Bundle {
        dir,
        spec,
        bytes,
        rootfs,
        linux,
    };
    Ok((b, ns))
}

/// Claim what the container will own before any process exists: its overlay layers
/// (and upper dir), its cgroup paths, and a provisional state (no pid yet) saved with the
/// config: if we are killed from here on, `delete` still finds the cgroups to remove,
/// and the init exits when it sees our end of "go" close.
fn reserve(
    o: &CreateOpts,
    b: &Bundle,
    ns: &namespaces::NsPlan,
    hs: &[cgroups::Hierarchy],
    sd: &StateDir,
    undo: &mut Undo,
) -> Result<(ContainerState, cgroups::Placement, Option<overlay::Layers>)> {
    let annotations = b.spec.annotations().clone().unwrap_or_default();
    // An upper dir is claimed under the root's lock, held from before its work dir may
    // be made until our provisional state (the claim) is saved: of two creates with one
    // upper or work dir, one sees the other's claim, and never uses a dir the other made
    // and may remove again.
    let root_lock = annotations
        .contains_key(overlay::UPPERDIR)
        .then(|| crate::state::lock_dir(&o.root))
        .transpose()?;
    let layers = overlay_layers(&annotations, &b.dir, ns)?;
    undo.workdir = layers.as_ref().and_then(|l| l.made_workdir.clone());
    // Cgroups are only planned here; the parent makes them after the clone, while the
    // init already builds the rootfs (it waits for them only at its cgroup gate).
    let mut placement = cgroups::plan(
        hs,
        b.linux.cgroups_path().as_deref(),
        &o.id,
        o.systemd_cgroup,
    )?;
    if unsafe { libc::geteuid() } != 0 {
        placement = cgroups::rootless(placement, &b.linux)?;
    }
    let st = ContainerState {
        id: o.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: b.dir.clone(),
        rootfs: b.rootfs.clone(),
        created: timefmt::now_rfc3339_nanos(),
        owner: String::new(),
        annotations,
        cgroup_dirs: placement.created.clone(),
        cgroup_paths: placement.paths.clone(),
        oci_version: b.spec.version().clone(),
        own_pid_ns: false,
        shared_cgroup: placement.shared,
        rootfs_mount_below: (!ns.mount)
            .then(|| crate::rootfs::mount_id_at(&b.rootfs))
            .transpose()?,
        hooks: b.spec.hooks().clone(),
    };
    if let Some(u) = layers.as_ref().and_then(|l| l.upper.as_ref()) {
        ensure_upper_free(&o.root, &o.id, u)?;
    }
    undo.host_mounts = st.rootfs_mount_below.map(|below| (b.rootfs.clone(), below));
    sd.save(&st)?;
    drop(root_lock);
    Ok((st, placement, layers))
}

/// Everything the init will do, prepared before the clone: the `InitPlan` with our
/// options applied, the user namespace's id maps, and the bind trees the parent builds.
fn plan_init(
    o: &CreateOpts,
    b: &Bundle,
    ns: namespaces::NsPlan,
    st: &ContainerState,
    cgm: CgroupMount,
    layers: Option<overlay::Layers>,
) -> Result<(
    InitPlan,
    Option<namespaces::IdMaps>,
    Option<crate::mounts::idmap::Prepared>,
)> {
    let mut plan = InitPlan::build(&b.spec, &b.dir, b.rootfs.clone(), o.no_pivot, ns, cgm)?;
    plan.overlay = layers;
    let id_maps = namespaces::IdMaps::plan(&b.linux, &plan.ns)?;
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
    let env: Vec<String> = plan
        .process
        .env
        .iter()
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    plan.hooks = hooks::InitHooks::new(st.hooks.as_ref(), st, &env);
    Ok((plan, id_maps, idmaps))
}

/// The parent's ends of the init's channel and "go" pipe.
struct ParentEnds {
    chan: OwnedFd,
    go: OwnedFd,
}

/// Clone the init (with every signal already blocked) and hand it its fds. Of those the
/// parent keeps only the exec fifo (`run` writes it), returned with the init's pid and
/// our own ends, which the init closes: holding them, it would never see EOF when we die.
fn spawn_init(
    plan: &InitPlan,
    has_id_maps: bool,
    fds: init::InitFds,
    ours: ParentEnds,
    orig_mask: &libc::sigset_t,
) -> Result<(libc::pid_t, OwnedFd, ParentEnds)> {
    if let Some(fd) = &plan.ns.join_pid {
        namespaces::join(fd, libc::CLONE_NEWPID, "pid")?;
    }
    // Non-dumpable from birth: the init is never ptrace-able by the container
    // (CVE-2016-9962), not even before its first instruction. Rootless, an unprivileged
    // parent could not write a non-dumpable child's id maps: the init turns itself
    // non-dumpable once they are written, before it touches the container.
    let rootless = has_id_maps && unsafe { libc::geteuid() } != 0;
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, rootless as libc::c_ulong, 0, 0, 0) };
    let pid = clone_fork(plan.ns.clone_flags).context("clone container init")?;
    if pid == 0 {
        drop(ours);
        init::run(plan, fds, orig_mask);
    }
    Ok((pid, fds.fifo, ours))
}

/// While the init already builds the rootfs: write its id maps (once it has made its
/// user namespace), make its cgroups, set their limits and device rules, and put it in
/// them (v1: the `tasks` files it writes itself into, returned to be sent with "go").
/// It waits for "go" only before it needs to be in its cgroups. If it failed meanwhile,
/// its own message explains more than ours.
fn place_init(
    o: &CreateOpts,
    linux: &Linux,
    plan: &InitPlan,
    id_maps: Option<&namespaces::IdMaps>,
    placement: &cgroups::Placement,
    chan: &OwnedFd,
    undo: &mut Undo,
) -> Result<Vec<OwnedFd>> {
    let pid = undo.pid;
    let offsets = plan.attrs.time_offsets_by_parent(plan.ns.user);
    let placed = if plan.ns.unshare_user || offsets.is_some() {
        // The maps can only be written once the init has made its user namespace, the
        // offsets once it has made its time namespace.
        match channel::recv(chan) {
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
        .and_then(|_| id_maps.map_or(Ok(()), |m| m.write(pid, "linux.")))
        .and_then(|_| offsets.map_or(Ok(()), |o| write_time_offsets(pid, o)))
        .and_then(|_| cgroups::make(placement, &o.root))
        .and_then(|made| {
            undo.cgroups = made;
            undo.leaves = placement.paths.clone();
            if let Some(r) = linux.resources() {
                cgroups::resources::apply(&placement.paths, r)?;
            }
            cgroups::apply_device_rules(&placement.paths, linux)?;
            let tasks = cgroups::place(&placement.paths, pid)?;
            // Our own affinity (a `taskset strata run`) is not the container's: every
            // CPU of its cpuset, as runc 1.2 does. execCPUAffinity is not the init's.
            crate::affinity::reset(pid)?;
            Ok(tasks)
        });
    match placed {
        Ok(tasks) => Ok(tasks),
        Err(e) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            if let Msg::Error(m) = channel::recv(chan) {
                bail!("container init: {m}");
            }
            Err(e)
        }
    }
}

/// The init's new time namespace, made in a user namespace: we write its offsets, as
/// runc does, with the host's CAP_SYS_TIME.
fn write_time_offsets(pid: libc::pid_t, offsets: &str) -> Result<()> {
    let path = format!("/proc/{pid}/timens_offsets");
    std::fs::write(&path, offsets)
        .with_context(|| format!("linux.timeOffsets: write {offsets:?} to {path}"))
}

/// Answer the init's requests until it is ready (waiting on the exec fifo): the
/// runtime's hooks, the seccomp listener fd, the real init's pid in a new pid namespace,
/// bind mount trees. Returns the init's pid (the forked one, in a new pid namespace).
fn serve_init(
    plan: &InitPlan,
    st: &ContainerState,
    idmaps: Option<&crate::mounts::idmap::Prepared>,
    chan: &OwnedFd,
    go: &OwnedFd,
    undo: &mut Undo,
) -> Result<libc::pid_t> {
    let stop = channel::stop_signals()?;
    let next = || {
        channel::recv_or_signal(chan, &stop).map_err(|sig| {
            anyhow::anyhow!("interrupted by signal {sig} while the container was being set up")
        })
    };
    let mut pid = undo.pid;
    let mut hooks_ran = false;
    let mut forked = false;
    loop {
        match next()? {
            Msg::Hooks if !hooks_ran => {
                // The init waits before pivot_root; on error, `undo` kills it.
                hooks_ran = true;
                let state = hooks::State::new(st, pid);
                for kind in [Kind::Prestart, Kind::CreateRuntime] {
                    hooks::run(kind, hooks::of(st.hooks.as_ref(), kind), &state)?;
                }
                unsafe { libc::write(go.as_raw_fd(), b"h".as_ptr() as *const libc::c_void, 1) };
            }
            Msg::Ready => return Ok(pid),
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
                    ..hooks::State::new(st, pid)
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
                let Some(prepared) = idmaps else {
                    bail!("container init asked for bind mount trees it has none of");
                };
                for tree in crate::mounts::idmap::build(prepared, &plan.mounts, pid)? {
                    channel::send_tree(chan, &tree).context("send a bind mount tree")?;
                }
            }
            Msg::Error(m) => bail!("container init: {m}"),
            Msg::Eof => bail!("container init exited during setup without a message"),
            Msg::Hooks => bail!("container init asked twice for the runtime's hooks"),
            Msg::Userns => bail!("container init sent an unexpected user namespace message"),
        }
    }
}

/// Save the final state (pid, its start time, the cgroups made) and the pid file, then
/// tell the init ("s") that it may outlive us.
fn record(
    o: &CreateOpts,
    sd: &StateDir,
    mut st: ContainerState,
    pid: libc::pid_t,
    plan: &InitPlan,
    made: &[PathBuf],
    go: OwnedFd,
) -> Result<ContainerState> {
    st.pid_start = crate::container::status::proc_stat(pid)
        .map(|(_, t)| t)
        .context("container init vanished")?;
    st.pid = pid;
    st.own_pid_ns = plan.ns.new_pid;
    // What was made, not what was planned: a concurrent create may have made a parent.
    st.cgroup_dirs = made.to_vec();
    sd.save(&st)?;
    if let Some(p) = &o.pid_file {
        crate::state::write_pid_file(p, pid)?;
    }
    if unsafe { libc::write(go.as_raw_fd(), b"s".as_ptr() as *const libc::c_void, 1) } != 1 {
        bail!("container init exited before it was started");
    }
    Ok(st)
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
