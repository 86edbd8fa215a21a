//! OCI lifecycle hooks: which run when and with what state, running one, checking config.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{Hook, Hooks};
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::state::ContainerState;

/// The six kinds, in the order a container meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    /// The config.json field name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    /// The status a hook of this kind sees in the state on its stdin (runc's values).
    fn status(self) -> &'static str {
        match self {
            Kind::Prestart | Kind::CreateRuntime | Kind::CreateContainer => "creating",
            Kind::StartContainer => "created",
            Kind::Poststart => "running",
            Kind::Poststop => "stopped",
        }
    }
}

const ALL: [Kind; 6] = [
    Kind::Prestart,
    Kind::CreateRuntime,
    Kind::CreateContainer,
    Kind::StartContainer,
    Kind::Poststart,
    Kind::Poststop,
];

/// The hooks of one kind (none if `hooks` is absent).
pub fn of(hooks: Option<&Hooks>, kind: Kind) -> &[Hook] {
    let Some(h) = hooks else { return &[] };
    #[allow(deprecated)] // prestart is deprecated in the spec, and runc still runs it
    let list = match kind {
        Kind::Prestart => h.prestart(),
        Kind::CreateRuntime => h.create_runtime(),
        Kind::CreateContainer => h.create_container(),
        Kind::StartContainer => h.start_container(),
        Kind::Poststart => h.poststart(),
        Kind::Poststop => h.poststop(),
    };
    list.as_deref().unwrap_or(&[])
}

/// config.json checks: a path the runtime cannot resolve the same way in every namespace,
/// or a timeout that could never be met, is a config error before anything is created.
pub fn validate(hooks: &Hooks) -> Result<()> {
    for kind in ALL {
        for (i, h) in of(Some(hooks), kind).iter().enumerate() {
            let field = format!("config.json: hooks.{}[{i}]", kind.name());
            if !h.path().is_absolute() {
                bail!("{field}.path {:?}: must be absolute", h.path());
            }
            if let Some(t) = h.timeout() {
                if t <= 0 {
                    bail!("{field}.timeout {t}: must be greater than zero");
                }
            }
        }
    }
    Ok(())
}

/// The container state a hook reads on stdin (the runtime-spec's state schema).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub status: &'static str,
    /// The init's pid as the runtime sees it (also for the hooks run inside the container,
    /// where runc passes the in-namespace pid: one value is easier to correlate).
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl State {
    pub fn new(st: &ContainerState, pid: i32) -> State {
        State {
            oci_version: st.oci_version.clone(),
            id: st.id.clone(),
            status: "",
            pid,
            bundle: st.bundle.clone(),
            annotations: st.annotations.clone(),
        }
    }
}

/// What the init needs to run or request hooks, built before clone.
#[derive(Debug, Default)]
pub struct InitHooks {
    /// prestart or createRuntime hooks exist: before pivot_root the init asks the parent
    /// to run them and waits for its answer.
    pub ask_parent: bool,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    /// The state they see (its pid is filled in by the init).
    pub state: Option<State>,
}

impl InitHooks {
    /// `process_env`: the container process's environment, which the hooks run in the
    /// container get when they have no `env` of their own (as in runc, whose init runs
    /// them with its environment, already the container process's).
    pub fn new(hooks: Option<&Hooks>, st: &ContainerState, process_env: &[String]) -> InitHooks {
        let in_container = |kind| {
            let mut list = of(hooks, kind).to_vec();
            for h in list.iter_mut().filter(|h| h.env().is_none()) {
                h.set_env(Some(process_env.to_vec()));
            }
            list
        };
        let create_container = in_container(Kind::CreateContainer);
        let start_container = in_container(Kind::StartContainer);
        let in_init = !create_container.is_empty() || !start_container.is_empty();
        InitHooks {
            ask_parent: !of(hooks, Kind::Prestart).is_empty()
                || !of(hooks, Kind::CreateRuntime).is_empty(),
            create_container,
            start_container,
            state: in_init.then(|| State::new(st, 0)),
        }
    }
}

/// Run every hook of `kind` in order; the first failure is the error.
pub fn run(kind: Kind, hooks: &[Hook], state: &State) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let json = state_json(kind, state)?;
    for (i, h) in hooks.iter().enumerate() {
        run_one(h, &json).map_err(|e| describe(kind, i, h, e))?;
    }
    Ok(())
}

/// Run every hook of `kind`; a failure is only a warning (poststart, poststop: the
/// runtime-spec says the lifecycle continues as if the hook had succeeded).
pub fn run_warn(kind: Kind, hooks: &[Hook], state: &State) {
    if hooks.is_empty() {
        return;
    }
    let json = match state_json(kind, state) {
        Ok(j) => j,
        Err(e) => return crate::logging::warn(&format!("{} hooks: {e:#}", kind.name())),
    };
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run_one(h, &json) {
            crate::logging::warn(&format!("{:#}", describe(kind, i, h, e)));
        }
    }
}

fn state_json(kind: Kind, state: &State) -> Result<Vec<u8>> {
    let mut s = state.clone();
    s.status = kind.status();
    Ok(serde_json::to_vec(&s)?)
}

fn describe(kind: Kind, i: usize, h: &Hook, e: anyhow::Error) -> anyhow::Error {
    anyhow!("hooks.{}[{i}] {}: {e:#}", kind.name(), h.path().display())
}

// Files, not pipes, for stdin, stdout and stderr: writing the state cannot hit EPIPE
// (SIGPIPE is fatal in the init), and a hook that leaves a child holding its output
// open cannot make us wait for that child.
fn memfd(name: &str) -> Result<File> {
    let c = std::ffi::CString::new(name)?;
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn run_one(h: &Hook, state: &[u8]) -> Result<()> {
    let mut stdin = memfd("hook-state")?;
    stdin.write_all(state)?;
    stdin.rewind()?;
    let (mut out, mut err) = (memfd("hook-stdout")?, memfd("hook-stderr")?);
    let mut cmd = Command::new(h.path());
    if let Some([argv0, rest @ ..]) = h.args().as_deref() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        cmd.env(k, v);
    }
    // Only stdio crosses into the hook, as in runc: fds the caller left open for us
    // (without CLOEXEC) are not the hook's. Marked, not closed: std reports a failed
    // exec through one of them.
    unsafe {
        cmd.pre_exec(|| {
            crate::fdpass::cloexec_from(3);
            Ok(())
        })
    };
    // Its own process group, so a timeout kills whatever the hook started too.
    cmd.process_group(0)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(err.try_clone()?));
    let mut child = cmd.spawn().context("exec")?;
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = match wait(&mut child, deadline)? {
        Some(s) => s,
        None => {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            bail!("timed out after {}s (killed)", h.timeout().unwrap_or(0));
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut text = read_tail(&mut err);
    if text.is_empty() {
        text = read_tail(&mut out);
    }
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    };
    if text.is_empty() {
        bail!("{how}");
    }
    bail!("{how}: {text}")
}

// The end of what the hook wrote, trimmed: enough to explain, never a flood.
fn read_tail(f: &mut File) -> String {
    const MAX: usize = 4096;
    let mut buf = Vec::new();
    let _ = f.rewind().and_then(|_| f.read_to_end(&mut buf));
    let start = buf.len().saturating_sub(MAX);
    String::from_utf8_lossy(&buf[start..]).trim().to_string()
}

// The hook's exit status, or None if it still runs at the deadline.
fn wait(child: &mut Child, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
    let Some(deadline) = deadline else {
        return Ok(Some(child.wait()?));
    };
    // A pidfd turns readable at exit, so we wake at once; without one (old kernels) nap.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) } as i32;
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw) });
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match &pidfd {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.as_millis().min(i32::MAX as u128 - 1) as i32 + 1;
                unsafe { libc::poll(&mut p, 1, ms) };
            }
            None => std::thread::sleep(left.min(Duration::from_millis(10))),
        }
    }
}
