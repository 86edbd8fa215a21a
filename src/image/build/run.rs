//! RUN: the command in a container made from the build's current image state, run by
//! `strata run` over an overlay of the state's layer dirs and a fresh upper dir (which
//! then becomes the step's layer), its output shown and its tail kept for the error.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::interrupt;
use crate::image::bundle::{self, Layers, ProcessOpts};
use crate::image::runtime::Runtime;
use crate::image::store::random_hex;

/// Lines of a failing command's output repeated in the error.
const TAIL: usize = 10;

/// One RUN, ready to go.
pub struct RunStep {
    pub argv: Vec<String>,
    /// The stage's build args, `K=V`; an ENV of the same name wins over them, as in docker.
    pub args: Vec<(String, String)>,
    pub network_host: bool,
    pub quiet: bool,
    /// A dir mounted read-only at /dev/pipes (a shebang heredoc's script).
    pub pipes: Option<PathBuf>,
}

/// The container, deleted (killed if need be) when this is dropped: on success, on
/// error and on interrupt alike.
struct Guard<'a> {
    rt: &'a Runtime,
    id: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.rt.state(&self.id) {
            if let Err(e) = self.rt.delete(&self.id, true) {
                eprintln!(
                    "strata-image: warning: delete build container {}: {e:#}",
                    self.id
                );
            }
        }
    }
}

/// Run `step` over `lowers` (layer diff dirs, top-most first) with the image `config`;
/// `dir` is an empty dir of the build's temp dir, and `dir/upper` holds the change after.
pub fn run(
    rt: &Runtime,
    dir: &Path,
    config: &Value,
    lowers: &[PathBuf],
    step: &RunStep,
) -> Result<()> {
    if lowers.is_empty() {
        bail!("there is nothing to run in an image with no layers (FROM scratch): add files first");
    }
    for d in ["rootfs", "upper", "work"] {
        fs::create_dir(dir.join(d))?;
    }
    rt.spec(dir)?;
    let id = format!("build-{}", random_hex(6));
    let spec = bundle_config(dir, config, lowers, step, &id)?;
    fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
    let (read, write) = pipe()?;
    let mut cmd = Command::new(&rt.bin);
    if let Some(r) = &rt.root {
        cmd.arg("--root").arg(r);
    }
    cmd.arg("run")
        .arg("--bundle")
        .arg(dir)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write.try_clone()?))
        .stderr(Stdio::from(write));
    let guard = Guard { rt, id };
    let mut child = cmd
        .spawn()
        .with_context(|| format!("run {}", rt.bin.display()))?;
    // Our copies of the write end are gone with `cmd`: EOF comes when the container ends.
    drop(cmd);
    let quiet = step.quiet;
    let reader = std::thread::spawn(move || tail(read, quiet));
    interrupt::set_child(child.id() as i32);
    let status = child.wait();
    interrupt::set_child(0);
    if interrupt::interrupted() {
        drop(guard); // before joining: the container may still hold the pipe
        let _ = reader.join();
        return interrupt::check();
    }
    let status = status.context("wait for strata run")?;
    drop(guard);
    let lines = reader.join().unwrap_or_default();
    let code = status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    });
    if code != 0 {
        let mut msg = format!("the command {:?} exited with code {code}", step.argv);
        if !lines.is_empty() {
            msg.push_str("; its last lines of output:");
            for l in &lines {
                msg.push_str("\n  ");
                msg.push_str(l);
            }
        }
        bail!(msg);
    }
    Ok(())
}

fn bundle_config(
    dir: &Path,
    config: &Value,
    lowers: &[PathBuf],
    step: &RunStep,
    id: &str,
) -> Result<Value> {
    let mut spec: Value = serde_json::from_slice(&fs::read(dir.join("config.json"))?)
        .context("strata spec wrote an unreadable config.json")?;
    // RUN runs its own argv: the image's ENTRYPOINT plays no part.
    let mut img = config.clone();
    if let Some(c) = img["config"].as_object_mut() {
        c.remove("Entrypoint");
    }
    let env_names = super::vars::env_of(config);
    let env = step
        .args
        .iter()
        .filter(|(k, _)| !env_names.contains_key(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let opts = ProcessOpts {
        cmd: step.argv.clone(),
        env,
        workdir: None,
        user: None,
        tty: false,
    };
    let layers = Layers {
        lowers: lowers.to_vec(),
    };
    bundle::configure(&mut spec, &img, &opts, &layers, "strata-build")?;
    spec["linux"]["cgroupsPath"] = format!("/strata-image/{id}").into();
    if let Some(p) = &step.pipes {
        let m = serde_json::json!({
            "destination": "/dev/pipes",
            "type": "bind",
            "source": p,
            "options": ["rbind", "ro", "nosuid", "nodev"],
        });
        match spec["mounts"].as_array_mut() {
            Some(ms) => ms.push(m),
            None => spec["mounts"] = serde_json::json!([m]),
        }
    }
    if step.network_host {
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
    }
    Ok(spec)
}

fn pipe() -> Result<(fs::File, std::os::fd::OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    use std::os::fd::FromRawFd;
    Ok(unsafe {
        (
            fs::File::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

// Show the output (unless quiet) and keep its last lines.
fn tail(read: fs::File, quiet: bool) -> Vec<String> {
    let mut last: VecDeque<String> = VecDeque::with_capacity(TAIL + 1);
    let mut err = std::io::stderr();
    for line in BufReader::new(read).split(b'\n') {
        let Ok(line) = line else { break };
        let s = String::from_utf8_lossy(&line).into_owned();
        if !quiet {
            let _ = writeln!(err, "{s}");
        }
        last.push_back(s);
        if last.len() > TAIL {
            last.pop_front();
        }
    }
    last.into()
}
