//! `exec`: run another process in a container: same namespaces, cgroups, seccomp filter
//! and (unless the process says otherwise) the same process settings as its init.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Process, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use super::status::{alive, status, Status};
use crate::affinity::ExecAffinity;
use crate::process::attrs::Attrs;
use crate::process::channel::{self, Msg};
use crate::process::join::{self, JoinFds, NsFds};
use crate::process::{clone::clone_fork, ProcessPlan};
use crate::state::{ContainerState, StateDir};

/// runc's `exec` flags.
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub root: PathBuf,
    pub id: String,
    /// A process.json to run instead of the config's process with `args`.
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    /// `uid[:gid]`
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// The process to run: process.json as given, or the container's process with the flags
/// applied (as runc builds it).
fn process(o: &ExecOpts, spec: &Spec) -> Result<Process> {
    if let Some(path) = &o.process {
        let data = std::fs::read(path).with_context(|| format!("--process {}", path.display()))?;
        let bad = || format!("--process {}: invalid process JSON", path.display());
        let mut v: serde_json::Value = serde_json::from_slice(&data).with_context(bad)?;
        // runc reads a missing user as uid 0, gid 0 (Go's zero value); oci-spec requires it.
        if let Some(obj) = v.as_object_mut() {
            obj.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        return serde_json::from_value(v).with_context(bad);
    }
    if o.args.is_empty() {
        bail!("exec: no command given (usage: strata exec <container-id> <command> [args...])");
    }
    let mut p = serde_json::to_value(
        spec.process()
            .as_ref()
            .context("saved config has no process")?,
    )?;
    p["args"] = serde_json::json!(o.args);
    p["terminal"] = serde_json::json!(o.tty);
    if let Some(cwd) = &o.cwd {
        p["cwd"] = serde_json::json!(cwd);
    }
    // -e overrides a variable the process already has (as in runc, the last one wins)
    // instead of adding a second entry that getenv and the PATH lookup would disagree on.
    if !p["env"].is_array() {
        p["env"] = serde_json::json!([]);
    }
    let env = p["env"].as_array_mut().unwrap();
    for e in &o.env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        let same = |v: &serde_json::Value| {
            v.as_str()
                .is_some_and(|s| s.split_once('=').map_or(s, |(k, _)| k) == key)
        };
        match env.iter().position(same) {
            Some(i) => env[i] = serde_json::json!(e),
            None => env.push(serde_json::json!(e)),
        }
    }
    if o.no_new_privs {
        p["noNewPrivileges"] = serde_json::json!(true);
    }
    if let Some(u) = &o.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
        let num = |s: &str, what: &str| {
            s.parse::<u32>()
                .with_context(|| format!("--user {u:?}: {what} {s:?} is not a number"))
        };
        p["user"]["uid"] = serde_json::json!(num(uid, "uid")?);
        if !gid.is_empty() {
            p["user"]["gid"] = serde_json::json!(num(gid, "gid")?);
        }
    }
    if !o.additional_gids.is_empty() {
        let gids = p["user"]["additionalGids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let more = o.additional_gids.iter().map(|g| serde_json::json!(g));
        p["user"]["additionalGids"] =
            serde_json::Value::Array(gids.into_iter().chain(more).collect());
    }
    for cap in &o.caps {
        for set in ["bounding", "effective", "permitted"] {
            let list = &mut p["capabilities"][set];
            if !list.is_array() {
                *list = serde_json::json!([]);
            }
            list.as_array_mut().unwrap().push(serde_json::json!(cap));
        }
    }
    serde_json::from_value(p).context("exec: building the process")
}

/// Namespaces of the init that differ from ours, opened through /proc/<pid>; the user
/// namespace comes first (it grants the right to join the others), pid is separate.
fn namespaces(st: &ContainerState) -> Result<(NsFds, Option<OwnedFd>)> {
    const ORDER: [(&str, libc::c_int); 8] = [
        ("user", libc::CLONE_NEWUSER),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("pid", libc::CLONE_NEWPID),
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("time", libc::CLONE_NEWTIME),
        ("mnt", libc::CLONE_NEWNS),
    ];
    let mut join = Vec::new();
    let mut pid_ns = None;
    for (name, t) in ORDER {
        let theirs = format!("/proc/{}/ns/{name}", st.pid);
        let (Ok(a), Ok(b)) = (
            std::fs::metadata(&theirs),
            std::fs::metadata(format!("/proc/self/ns/{name}")),
        ) else {
            continue; // a namespace type this kernel lacks
        };
        use std::os::unix::fs::MetadataExt;
        if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
            continue;
        }
        let fd: OwnedFd = std::fs::File::open(&theirs)
            .with_context(|| format!("open {theirs}"))?
            .into();
        if t == libc::CLONE_NEWPID {
            pid_ns = Some(fd);
        } else {
            join.push((fd, t, name));
        }
    }
    // Opened by pid: make sure that pid is still our init, not a reused number.
    if !alive(st.pid, st.pid_start) {
        bail!("container {} has stopped", st.id);
    }
    Ok((join, pid_ns))
}

/// Run the process; returns its exit code (0 with `detach`).
pub fn exec(o: &ExecOpts) -> Result<i32> {
    crate::state::validate_id(&o.id)?;
    let sd = StateDir::open(&o.root, &o.id)?;
    let st = sd.load()?;
    match status(&st, &sd) {
        Status::Running | Status::Created => {}
        Status::Paused => bail!("cannot exec in a paused container (resume it first)"),
        Status::Stopped => bail!("cannot exec in a stopped container"),
    }
    let saved = sd.config_path();
    let spec: Spec = serde_json::from_slice(
        &std::fs::read(&saved).with_context(|| format!("read {}", saved.display()))?,
    )
    .with_context(|| format!("parse {}", saved.display()))?;
    let proc_ = process(o, &spec)?;
    match proc_.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => bail!("exec: process.args: must name a program (it is empty)"),
    }
    if !proc_.cwd().is_absolute() {
        bail!(
            "exec: process.cwd {:?}: must be an absolute path",
            proc_.cwd()
        );
    }
    let mut plan = ProcessPlan::from_spec(&proc_)?;
    plan.preserve_fds = o.preserve_fds;
    let affinity = ExecAffinity::of(&proc_)?;
    let linux = spec.linux().clone().unwrap_or_default();
    plan.seccomp = linux
        .seccomp()
        .as_ref()
        .map(crate::seccomp::compile)
        .transpose()?;
    // ioPriority, scheduler and LSM labels of this process; the container's time
    // namespace is joined, not made.
    let mut for_attrs = spec.clone();
    for_attrs.set_process(Some(proc_.clone()));
    if let Some(l) = for_attrs.linux_mut() {
        l.set_time_offsets(None);
    }
    let attrs = Attrs::plan(&for_attrs, &Default::default())?;
    // No mount namespace of its own: the init is chrooted in ours; so is this process.
    // Opened before namespaces() checks that the pid is still our init.
    let root = st
        .rootfs_mount_below
        .map(|_| {
            std::fs::File::open(format!("/proc/{}/root", st.pid))
                .map(OwnedFd::from)
                .context("open the container's root")
        })
        .transpose()?;
    let (mut ns, pid_ns) = namespaces(&st)?;
    tracing::debug!(
        id = %o.id,
        init = st.pid,
        namespaces = %ns.iter().map(|n| n.2).chain(pid_ns.as_ref().map(|_| "pid")).collect::<Vec<_>>().join(","),
        "exec: joining the init's namespaces"
    );
    let (console_child, console_ours) =
        crate::console::socket_ends(plan.terminal, o.console_socket.as_deref(), !o.detach)?;

    let (chan_r, chan_w) = channel::channel()?;
    let (go_r, go_w) = channel::pipe()?;
    let orig_mask = crate::process::wait::block_all();
    let restore = || unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, &orig_mask, std::ptr::null_mut());
    };
    if unsafe { libc::geteuid() } != 0 && ns.first().is_some_and(|n| n.1 == libc::CLONE_NEWUSER) {
        // Rootless, joining the pid namespace needs CAP_SYS_ADMIN in our own user
        // namespace too: we enter the container's first (we own it; nothing is lost).
        let (fd, t, name) = ns.remove(0);
        crate::namespaces::join(&fd, t, name)?;
    }
    if let Some(fd) = &pid_ns {
        // setns(pid) applies to our children: the exec child is born in the container.
        crate::namespaces::join(fd, libc::CLONE_NEWPID, "pid")?;
    }
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let mut initial = affinity.enter_initial()?;
    let pid = clone_fork(0).context("fork the exec process")?;
    if pid == 0 {
        drop(chan_r);
        drop(go_w);
        let fds = JoinFds {
            chan: chan_w,
            go: go_r,
            console: console_child,
            lock: sd.lock_fd(),
            root,
        };
        join::run(&plan, &attrs, &ns, fds, &orig_mask);
    }
    if initial.take().is_some() {
        // What the kernel says, not what we asked: the process is not in its cgroups yet.
        let cpus = crate::affinity::cpus_of(pid);
        tracing::debug!(id = %o.id, pid, cpus = %cpus, "exec: initial CPU affinity");
    }
    drop(chan_w);
    drop(go_r);
    drop(console_child);
    let kill = |e: anyhow::Error| {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        restore();
        Err(e)
    };
    if let Err(e) = crate::cgroups::add_pid(&st.cgroup_paths, pid) {
        return kill(e.context("put the exec process in the container's cgroups"));
    }
    if let Err(e) = affinity.apply_final(pid) {
        return kill(e);
    }
    unsafe { libc::write(go_w.as_raw_fd(), b"g".as_ptr() as *const libc::c_void, 1) };
    loop {
        match channel::recv(&chan_r) {
            // The channel is CLOEXEC: EOF means the program runs.
            Msg::Eof | Msg::Ready => break,
            Msg::Fd(fd) => {
                let Some((path, meta)) = plan.seccomp.as_ref().and_then(|f| f.listener.as_ref())
                else {
                    return kill(anyhow::anyhow!("exec process sent an fd nobody asked for"));
                };
                let state = crate::hooks::State {
                    status: "running",
                    ..crate::hooks::State::new(&st, st.pid)
                };
                if let Err(e) = crate::seccomp::send_listener(path, meta, &fd, pid, &state) {
                    return kill(e);
                }
            }
            Msg::Error(m) => return kill(anyhow::anyhow!("exec: {m}")),
            Msg::Hooks | Msg::Pid(_) | Msg::Idmap | Msg::Userns => {
                return kill(anyhow::anyhow!("exec process sent an unexpected message"))
            }
        }
    }
    if let Some(p) = &o.pid_file {
        if let Err(e) = crate::state::write_pid_file(p, pid) {
            // The process is not left running unknown to the caller.
            return kill(e);
        }
    }
    tracing::debug!(id = %o.id, pid, args = ?plan.args, "exec: process started");
    // From here on other commands (kill, delete) must be free to act on the container.
    drop(sd);
    if o.detach {
        restore();
        return Ok(0);
    }
    let code = crate::process::wait::foreground(pid, console_ours.as_ref(), &orig_mask)?;
    tracing::debug!(id = %o.id, pid, status = code, "exec: process exited");
    Ok(code)
}
