//! Shared helpers: the busybox rootfs, per-test sandboxes, strata runs with deadlines, leftover checks.
#![allow(dead_code)]

pub mod store;

use serde_json::{json, Value};
use std::fs::{self, File};
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The binary under test (cargo builds it for integration tests).
pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");
/// Deadline for one ordinary strata command.
pub const TIMEOUT: Duration = Duration::from_secs(60);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// True while `pid` exists and is not a zombie.
/// The running kernel is at least `major.minor`.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0)) >= (major, minor)
}

pub fn process_alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// Poll `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------
// The shared busybox rootfs

/// `target/test-rootfs`, built once per machine by bundles/busybox/make-rootfs.sh under an
/// flock (test binaries and threads run in parallel), with /out, /ro and /mnt added as
/// mount points so that tests never need to create directories in the shared rootfs.
pub fn test_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = manifest.join("target");
        fs::create_dir_all(&target).unwrap();
        let dest = target.join("test-rootfs");
        let lock = File::create(target.join("test-rootfs.lock")).unwrap();
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        if !dest.join("bin/busybox").is_file() || !dest.join("mnt").is_dir() {
            let new = target.join("test-rootfs.new");
            let out = run_cmd(
                Command::new("bash")
                    .arg(manifest.join("bundles/busybox/make-rootfs.sh"))
                    .arg(&new),
                Duration::from_secs(600),
            );
            assert_eq!(out.code, 0, "make-rootfs.sh failed: {out:#?}");
            for d in ["out", "ro", "mnt"] {
                fs::create_dir_all(new.join(d)).unwrap();
            }
            let _ = fs::remove_dir_all(&dest);
            fs::rename(&new, &dest).unwrap();
        }
        drop(lock);
        dest.canonicalize().unwrap()
    })
}

/// bundles/busybox/config.json with root.path pointing at the shared test rootfs.
pub fn base_config() -> Value {
    static BASE: OnceLock<Value> = OnceLock::new();
    BASE.get_or_init(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/busybox/config.json");
        let mut v: Value = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
        v["root"]["path"] = json!(test_rootfs());
        v
    })
    .clone()
}

// ---------------------------------------------------------------------------------------
// config.json edits

/// Append a mount to config.json.
pub fn add_mount(cfg: &mut Value, m: Value) {
    cfg["mounts"].as_array_mut().unwrap().push(m);
}

/// A bind mount of a host path (read-write or read-only).
pub fn bind_mount(cfg: &mut Value, source: &Path, dest: &str, ro: bool) {
    let opt = if ro { "ro" } else { "rw" };
    add_mount(
        cfg,
        json!({"destination": dest, "type": "bind", "source": source, "options": ["rbind", opt]}),
    );
}

/// A writable tmpfs at /tmp (the root itself stays read-only).
pub fn tmpfs_tmp(cfg: &mut Value) {
    add_mount(
        cfg,
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}),
    );
}

/// Put the bundle's root at another path (e.g. a private rootfs copy).
pub fn set_root(cfg: &mut Value, rootfs: &Path) {
    cfg["root"]["path"] = json!(rootfs);
}

// ---------------------------------------------------------------------------------------
// Running processes with a deadline

/// What a finished command did. `code` is the exit status, or 128+N if signal N killed it.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Output {
    /// Assert exit status 0; returns self for chaining.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{} failed: {self:#?}", self.what);
        self
    }

    /// Assert a clean strata error: exit 1, exactly one line on stderr, prefixed
    /// `strata: `, containing every needle.
    #[track_caller]
    pub fn assert_error(&self, needles: &[&str]) {
        self.assert_error_code(1, needles)
    }

    /// A failed `exec`: exit 255 as in runc (its own failure, not the program's code).
    #[track_caller]
    pub fn assert_exec_error(&self, needles: &[&str]) {
        self.assert_error_code(255, needles)
    }

    /// `assert_error` with another exit code.
    #[track_caller]
    pub fn assert_error_code(&self, code: i32, needles: &[&str]) {
        assert_eq!(
            self.code, code,
            "{}: expected exit {code}: {self:#?}",
            self.what
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: expected one stderr line: {self:#?}",
            self.what
        );
        assert!(
            lines[0].starts_with("strata: "),
            "{}: error lacks the `strata: ` prefix: {self:#?}",
            self.what
        );
        for n in needles {
            assert!(
                lines[0].contains(n),
                "{}: error does not mention {n:?}: {self:#?}",
                self.what
            );
        }
    }

    /// stdout's lines, trimmed.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().map(str::trim).collect()
    }
}

/// An unlinked temporary file for a child's stdout or stderr. Files, not pipes: a
/// container created or run detached keeps these open for as long as it lives.
fn capture_file() -> File {
    let p = std::env::temp_dir().join(format!(
        "strata-test-cap-{}-{}",
        std::process::id(),
        unique()
    ));
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)
        .unwrap();
    fs::remove_file(&p).unwrap();
    f
}

fn read_all(mut f: File) -> String {
    let mut s = String::new();
    f.rewind().unwrap();
    f.read_to_string(&mut s).unwrap();
    s
}

/// A spawned process whose output is captured to files.
pub struct Running {
    pub child: Child,
    out: File,
    err: File,
    what: String,
}

impl Running {
    /// Spawn `cmd` with stdin from /dev/null and stdout/stderr captured.
    pub fn spawn(cmd: &mut Command) -> Running {
        Running::spawn_stdin(cmd, Stdio::null())
    }

    /// Spawn `cmd` with the given stdin and stdout/stderr captured.
    pub fn spawn_stdin(cmd: &mut Command, stdin: Stdio) -> Running {
        let (out, err) = (capture_file(), capture_file());
        let what = format!("{cmd:?}");
        let child = cmd
            .stdin(stdin)
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Running {
            child,
            out,
            err,
            what,
        }
    }

    /// Wait at most `timeout`; on expiry kill the process and fail the test.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> Output {
        let t0 = Instant::now();
        let mut nap = Duration::from_micros(200);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "timed out after {timeout:?}: {}\nstdout: {}\nstderr: {}",
                    self.what,
                    read_all(self.out),
                    read_all(self.err)
                );
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        };
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Output {
            code,
            stdout: read_all(self.out),
            stderr: read_all(self.err),
            what: self.what,
        }
    }
}

/// Run `cmd` to completion within `timeout`.
#[track_caller]
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> Output {
    Running::spawn(cmd).wait(timeout)
}

/// Make each `(fd, target)` fd of the parent available as `target` in the child, without
/// CLOEXEC. Sources are first moved above every target so no dup2 clobbers another source.
pub fn pass_fds(cmd: &mut Command, fds: &[(i32, i32)]) {
    let fds = fds.to_vec();
    unsafe {
        cmd.pre_exec(move || {
            let mut high = Vec::with_capacity(fds.len());
            for (src, _) in &fds {
                let h = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 100);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(h);
            }
            for (h, (_, target)) in high.iter().zip(&fds) {
                if libc::dup2(*h, *target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------
// /proc/self/mountinfo

/// One line of a mountinfo file.
#[derive(Debug, Clone)]
pub struct MountEntry {
    pub root: String,
    pub mount_point: String,
    pub opts: Vec<String>,
    pub fstype: String,
    pub source: String,
}

impl MountEntry {
    pub fn is_ro(&self) -> bool {
        self.opts.iter().any(|o| o == "ro")
    }
}

pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountEntry {
                root: pre.get(3)?.to_string(),
                mount_point: pre.get(4)?.replace("\\040", " "),
                opts: pre.get(5)?.split(',').map(String::from).collect(),
                fstype: post.first()?.to_string(),
                source: post.get(1).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// The last (topmost) mount at `mount_point`.
pub fn find_mount<'a>(mounts: &'a [MountEntry], mount_point: &str) -> Option<&'a MountEntry> {
    mounts.iter().rev().find(|m| m.mount_point == mount_point)
}

/// The host's own mount points right now.
pub fn host_mount_points() -> Vec<String> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap())
        .into_iter()
        .map(|m| m.mount_point)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Cgroups and processes on the host

/// Mount points of every cgroup hierarchy (v1 and v2) mounted on the host.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap())
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| PathBuf::from(m.mount_point))
        .collect()
}

/// Every directory named exactly `name` under `dir`, recursively.
pub fn find_dirs_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            let p = e.path();
            if e.file_name() == name {
                out.push(p.clone());
            }
            out.extend(find_dirs_named(&p, name));
        }
    }
    out
}

/// Cgroup directories named `id` on any hierarchy.
pub fn cgroup_dirs_of(id: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .iter()
        .flat_map(|m| find_dirs_named(m, id))
        .collect()
}

/// (pid, cmdline) of every live process one of whose cgroup paths has a component `id`.
pub fn processes_in_cgroup(id: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cg) = fs::read_to_string(e.path().join("cgroup")) else {
            continue;
        };
        let hit = cg.lines().any(|l| {
            l.splitn(3, ':')
                .nth(2)
                .is_some_and(|p| p.split('/').any(|c| c == id))
        });
        if hit {
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            out.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// A test's sandbox: temp dir, state root, bundles, strata invocations

/// One test's private world: a temp dir holding its `--root` and bundles, removed (with
/// any container still in that root force-deleted) when dropped.
pub struct Test {
    pub name: String,
    pub dir: PathBuf,
    pub root: PathBuf,
    env: Vec<(String, String)>,
}

impl Test {
    /// A fresh sandbox, or None (after printing SKIP) when not running as root.
    pub fn new(name: &str) -> Option<Test> {
        if !is_root() {
            eprintln!("SKIP: {name}: needs root (namespaces, mounts, cgroups)");
            return None;
        }
        test_rootfs();
        let dir = std::env::temp_dir().join(format!(
            "strata-test-{name}-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        Some(Test {
            name: name.to_string(),
            root: dir.join("state"),
            dir,
            env: vec![],
        })
    }

    /// Run every strata command of this test with `STRATA_NO_OPENAT2=1`.
    pub fn no_openat2(mut self) -> Self {
        self.env.push(("STRATA_NO_OPENAT2".into(), "1".into()));
        self
    }

    /// Run every strata command of this test with `key=value` in its environment.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A container ID unique to this test and process.
    pub fn id(&self, tag: &str) -> String {
        format!("{}-{tag}-{}", self.name, std::process::id())
    }

    /// Create (if needed) and return a directory inside the test's temp dir.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.dir.join(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// A private copy of the test rootfs (`cp -a`), for tests that alter it.
    pub fn rootfs_copy(&self, rel: &str) -> PathBuf {
        let dest = self.dir.join(rel);
        let out = Command::new("cp")
            .arg("-a")
            .arg(test_rootfs())
            .arg(&dest)
            .output()
            .unwrap();
        assert!(out.status.success(), "cp -a rootfs: {out:?}");
        dest
    }

    /// Write a bundle `<dir>/<tag>` whose config.json is the base config running `args`,
    /// then edited by `edit`.
    pub fn bundle(&self, tag: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let mut cfg = base_config();
        cfg["process"]["args"] = json!(args);
        edit(&mut cfg);
        self.bundle_from(tag, &cfg)
    }

    /// Write a bundle with exactly this config.json.
    pub fn bundle_from(&self, tag: &str, cfg: &Value) -> PathBuf {
        let b = self.mkdir(tag);
        fs::write(
            b.join("config.json"),
            serde_json::to_vec_pretty(cfg).unwrap(),
        )
        .unwrap();
        b
    }

    /// `strata --root <root> args...` as a Command (for spawning or extra setup).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(STRATA);
        c.arg("--root").arg(&self.root).args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Run strata to completion (with the default deadline).
    #[track_caller]
    pub fn strata(&self, args: &[&str]) -> Output {
        run_cmd(&mut self.command(args), TIMEOUT)
    }

    /// Make a bundle and `strata run` it in the foreground; returns the run's output.
    #[track_caller]
    pub fn run(&self, tag: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> Output {
        let b = self.bundle(tag, args, edit);
        let id = self.id(tag);
        let out = self.strata(&["run", &id, "-b", b.to_str().unwrap()]);
        self.assert_no_leftovers(&id);
        out
    }

    /// `run` a `sh -c script` container that must succeed; returns its stdout.
    #[track_caller]
    pub fn sh(&self, tag: &str, script: &str, edit: impl FnOnce(&mut Value)) -> String {
        let out = self.run(tag, &["sh", "-c", script], edit);
        out.ok();
        out.stdout
    }

    /// `strata state` parsed; panics if it fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.strata(&["state", id]);
        out.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {out:#?}"))
    }

    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"].as_i64().unwrap() as i32
    }

    /// Wait until `state` reports `want`.
    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(20), || {
            last = self.status(id);
            last == want
        });
        assert!(ok, "container {id} never became {want:?} (last: {last:?})");
    }

    /// Assert nothing of container `id` remains: no state dir, no cgroup directory named
    /// after it on any hierarchy, no process in a cgroup named after it.
    #[track_caller]
    pub fn assert_no_leftovers(&self, id: &str) {
        let sd = self.root.join(id);
        assert!(!sd.exists(), "state dir {} left behind", sd.display());
        let dirs = cgroup_dirs_of(id);
        assert!(dirs.is_empty(), "cgroup dirs left behind: {dirs:?}");
        let procs = processes_in_cgroup(id);
        assert!(procs.is_empty(), "processes left behind: {procs:?}");
    }

    /// Delete every container still in this test's root (best effort, never panics).
    fn cleanup(&self) {
        let Ok(rd) = fs::read_dir(&self.root) else {
            return;
        };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let mut c = self.command(&["delete", "--force", &id]);
            let mut r = Running::spawn(&mut c);
            let t0 = Instant::now();
            while r.child.try_wait().ok().flatten().is_none() && t0.elapsed() < TIMEOUT {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        self.cleanup();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `create` (then `run`) of bundle `b` as `id` must fail with a one-line error containing
/// `needles`, and leave no state, cgroup or process behind.
#[track_caller]
pub fn create_fails(t: &Test, id: &str, b: &Path, needles: &[&str]) {
    t.strata(&["create", id, "-b", b.to_str().unwrap()])
        .assert_error(needles);
    t.assert_no_leftovers(id);
    t.strata(&["run", id, "-b", b.to_str().unwrap()])
        .assert_error(needles);
    t.assert_no_leftovers(id);
    t.strata(&["state", id]).assert_error(&["does not exist"]);
}

// ---------------------------------------------------------------------------------------
// exec, terminals and seccomp: a running container, fds over unix sockets, ptys

/// The `Name:\tvalue` field of a /proc/<pid>/status text.
pub fn proc_status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

impl Test {
    /// `run -d` a bundle running `sh -c script` (which must stay alive, e.g. end with
    /// `exec sleep 1000`); returns the container's id and the init's host pid.
    #[track_caller]
    pub fn run_detached(
        &self,
        tag: &str,
        script: &str,
        edit: impl FnOnce(&mut Value),
    ) -> (String, i32) {
        let b = self.bundle(tag, &["sh", "-c", script], edit);
        let id = self.id(tag);
        self.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
            .ok();
        assert_eq!(self.status(&id), "running");
        let pid = self.pid(&id);
        (id, pid)
    }

    /// `delete --force` the container and check that nothing of it remains.
    #[track_caller]
    pub fn force_delete(&self, id: &str) {
        self.strata(&["delete", "--force", id]).ok();
        self.assert_no_leftovers(id);
    }
}

/// Accept one connection on `l`, unless `child` exits first or `timeout` passes (then
/// None). The accepted stream blocks, with `timeout` as its read timeout.
pub fn accept_until_exit(
    l: &std::os::unix::net::UnixListener,
    child: &mut Child,
    timeout: Duration,
) -> Option<std::os::unix::net::UnixStream> {
    l.set_nonblocking(true).unwrap();
    let t0 = Instant::now();
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(timeout)).unwrap();
                return Some(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if t0.elapsed() > timeout || child.try_wait().unwrap().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One message and the fd sent with it (SCM_RIGHTS), as runc's console-socket and
/// seccomp-agent protocols send them. Panics on EOF, timeout, or a message without an fd.
#[track_caller]
pub fn recv_with_fd(s: &std::os::unix::net::UnixStream) -> (Vec<u8>, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 16];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n > 0, "recvmsg: {n} ({})", std::io::Error::last_os_error());
    assert_eq!(
        msg.msg_flags & libc::MSG_CTRUNC,
        0,
        "control data truncated"
    );
    let mut fds = vec![];
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    let p = (libc::CMSG_DATA(c) as *const i32).add(i);
                    fds.push(std::os::fd::OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                        p,
                    )));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    assert_eq!(fds.len(), 1, "expected exactly one fd with the message");
    buf.truncate(n as usize);
    (buf, fds.pop().unwrap())
}

/// What /proc/self/fd/<fd> of this (test) process links to.
pub fn fd_link(fd: &impl AsRawFd) -> String {
    fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Write all of `data` to a pty master (or any fd).
#[track_caller]
pub fn write_fd(fd: &impl AsRawFd, data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                rest.as_ptr() as *const libc::c_void,
                rest.len(),
            )
        };
        assert!(n > 0, "write: {}", std::io::Error::last_os_error());
        rest = &rest[n as usize..];
    }
}

/// Read from `fd` (e.g. a pty master) until the text read contains `needle`; returns all
/// of it. Panics with what was read on EOF/EIO or when `timeout` passes.
#[track_caller]
pub fn read_until(fd: &impl AsRawFd, needle: &str, timeout: Duration) -> String {
    let mut got = Vec::new();
    let t0 = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if text.contains(needle) {
            return text;
        }
        let left = timeout.saturating_sub(t0.elapsed());
        assert!(
            !left.is_zero(),
            "timed out waiting for {needle:?}; read so far: {text:?}"
        );
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as i32) };
        if r <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        assert!(
            n > 0,
            "EOF/error ({}) waiting for {needle:?}; read so far: {text:?}",
            std::io::Error::last_os_error()
        );
        got.extend_from_slice(&buf[..n as usize]);
    }
}
