//! The runtime, reached only through the `strata` binary (as podman reaches runc): spec,
//! run, state, pause, resume, kill, delete.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How to call `strata`.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub bin: PathBuf,
    /// strata's `--root` (its state dir); None for its default.
    pub root: Option<PathBuf>,
}

/// What `strata state` says of a container.
#[derive(Clone, Debug, Deserialize)]
pub struct State {
    pub status: String,
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub created: Option<String>,
}

impl Runtime {
    /// `$STRATA`, else the `strata` beside this binary, else the one on `$PATH`.
    pub fn locate(root: Option<PathBuf>) -> Runtime {
        let bin = std::env::var_os("STRATA")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                let me = std::env::current_exe().ok()?;
                let b = me.parent()?.join("strata");
                b.is_file().then_some(b)
            })
            .unwrap_or_else(|| PathBuf::from("strata"));
        Runtime { bin, root }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        if let Some(r) = &self.root {
            c.arg("--root").arg(r);
        }
        c
    }

    // Run to completion, capturing output; an error carries strata's own message.
    fn call(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {}", self.bin.display()))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            let msg = msg.trim().trim_start_matches("strata: ");
            bail!("strata {}: {msg}", args.join(" "));
        }
        Ok(out.stdout)
    }

    /// Write strata's default config.json into `dir`.
    pub fn spec(&self, dir: &Path) -> Result<()> {
        let d = dir.to_string_lossy();
        self.call(&["spec", "--bundle", &d])?;
        Ok(())
    }

    /// The container's runtime state, or None if the runtime does not know it.
    pub fn state(&self, id: &str) -> Result<Option<State>> {
        let out = self
            .cmd()
            .args(["state", id])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {}", self.bin.display()))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            if msg.contains("does not exist") {
                return Ok(None);
            }
            bail!(
                "strata state {id}: {}",
                msg.trim().trim_start_matches("strata: ")
            );
        }
        let st: State = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("strata state {id}: unexpected output"))?;
        Ok(Some(st))
    }

    /// `strata run` in the foreground with our stdio; returns the container's exit code.
    pub fn run(&self, bundle: &Path, id: &str) -> Result<i32> {
        let mut child = self
            .cmd()
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .spawn()
            .with_context(|| format!("run {}", self.bin.display()))?;
        let status = wait_forwarding(&mut child)?;
        Ok(status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }))
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.call(&["pause", id]).map(|_| ())
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.call(&["resume", id]).map(|_| ())
    }

    /// `strata delete` (with `--force`: kills a running container first).
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut a = vec!["delete"];
        if force {
            a.push("--force");
        }
        a.push(id);
        self.call(&a).map(|_| ())
    }
}

// While strata runs in the foreground, a terminal's ^C reaches both of us (and strata
// passes it on to the container): we must outlive it to report the exit code. SIGTERM
// and SIGHUP sent to us alone are passed on to strata.
fn wait_forwarding(child: &mut std::process::Child) -> Result<std::process::ExitStatus> {
    static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
    extern "C" fn forward(sig: libc::c_int) {
        let pid = CHILD.load(std::sync::atomic::Ordering::Relaxed);
        if pid > 0 {
            unsafe { libc::kill(pid, sig) };
        }
    }
    CHILD.store(child.id() as i32, std::sync::atomic::Ordering::Relaxed);
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, forward as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, forward as *const () as libc::sighandler_t);
    }
    let st = child.wait().context("wait for strata")?;
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGQUIT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGHUP, libc::SIG_DFL);
    }
    Ok(st)
}
