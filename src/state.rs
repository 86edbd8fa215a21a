//! The state directory: one dir per container under `--root`, its JSON, its lock, its fifo.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Default `--root`, like runc's /run/runc.
pub const DEFAULT_ROOT: &str = "/run/strata";
/// `--root` when none is given: /run/strata for root; as runc, $XDG_RUNTIME_DIR/strata
/// for anyone else (who cannot write /run).
pub fn default_root() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if unsafe { libc::geteuid() } != 0 && !d.is_empty() => {
            PathBuf::from(d).join("strata")
        }
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// Name of the fifo `start` writes to release the waiting init (runc uses the same name).
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";
/// The config the container was created with: exec must follow it (seccomp, process
/// defaults) even if the bundle changed since.
const SAVED_CONFIG: &str = "config.json";
// The state dir is named after the ID: a file name is at most 255 bytes.
const MAX_ID_LEN: usize = 255;

/// Refuse IDs that are empty, too long, path-like or odd (`../x`, `a/b`, `/`).
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        // runc's words.
        bail!("invalid container ID: container id cannot be empty");
    }
    if id.len() > MAX_ID_LEN {
        bail!("invalid container ID: longer than {MAX_ID_LEN} bytes");
    }
    if id == "." || id == ".." {
        bail!("invalid container ID {id:?}: not a name");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
    {
        bail!("invalid container ID {id:?}: character {c:?} is not allowed (use letters, digits, _ + - .)");
    }
    Ok(())
}

/// What Strata remembers about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// Host pid of the container's init; 0 once it is known to be gone.
    pub pid: i32,
    /// Start time (clock ticks since boot) of `pid`, to tell a reused pid from ours.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Cgroup directories this container created, deepest last. Delete removes its own;
    /// the parents among them go through the root's noted list (`cgroups::parents`).
    #[serde(default)]
    pub cgroup_dirs: Vec<PathBuf>,
    /// Every cgroup directory the init was placed in (created or joined).
    #[serde(default)]
    pub cgroup_paths: Vec<PathBuf>,
    /// The config's ociVersion, echoed by `state`.
    #[serde(default)]
    pub oci_version: String,
    /// True when the container has its own pid namespace (its processes die with init).
    #[serde(default)]
    pub own_pid_ns: bool,
    /// Its cgroup already had other processes at create (runc lets users share one):
    /// `delete` then kills only the init, never sweeps the cgroup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_cgroup: bool,
    /// No mount namespace of its own: the ID of the mount at the rootfs before create.
    /// The container's mounts were made in ours, over it; delete detaches them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_mount_below: Option<u64>,
    /// config.json's hooks: poststart and poststop run from here, as the bundle may
    /// have changed since create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// The state dir of one container, held locked for the life of this value.
pub struct StateDir {
    pub dir: PathBuf,
    pub id: String,
    _lock: Option<OwnedFd>,
}

/// Open `dir` and take an exclusive flock on it (a container's state dir, or the root).
pub(crate) fn lock_dir(dir: &Path) -> Result<OwnedFd> {
    let f = fs::File::open(dir).with_context(|| format!("open state dir {}", dir.display()))?;
    let fd: OwnedFd = f.into();
    // flock on the directory itself: released when the fd closes, even on a crash.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("lock state dir {}", dir.display()));
    }
    Ok(fd)
}

fn ensure_root(root: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .with_context(|| format!("create state root {}", root.display()))
}

impl StateDir {
    /// Make a new, locked state dir; fails if the ID is already taken.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        ensure_root(root)?;
        let dir = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container with id {id:?} already exists")
            }
            Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
        }
        let lock = lock_dir(&dir)?;
        Ok(StateDir {
            dir,
            id: id.to_string(),
            _lock: Some(lock),
        })
    }

    /// Open and lock an existing container's state dir.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let dir = root.join(id);
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(_) if !dir.exists() => bail!("container {id:?} does not exist"),
            Err(e) => return Err(e),
        };
        // A concurrent delete may have removed it while we waited for the lock.
        if !dir.join(STATE_FILE).exists() {
            bail!("container {id:?} does not exist");
        }
        Ok(StateDir {
            dir,
            id: id.to_string(),
            _lock: Some(lock),
        })
    }

    /// Open for reading only, without the lock: `state` and `list` must answer even
    /// while another command holds it, and `save` replaces the file atomically.
    pub fn open_unlocked(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let dir = root.join(id);
        if !dir.join(STATE_FILE).exists() {
            bail!("container {id:?} does not exist");
        }
        Ok(StateDir {
            dir,
            id: id.to_string(),
            _lock: None,
        })
    }

    /// The lock's fd, which a forked child must close or it would hold the lock.
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        self._lock.as_ref().map_or(-1, |l| l.as_raw_fd())
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join(SAVED_CONFIG)
    }

    pub fn load(&self) -> Result<ContainerState> {
        let p = self.dir.join(STATE_FILE);
        let data = match fs::read(&p) {
            Ok(d) => d,
            // Deleted between open and load (readers do not lock).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {:?} does not exist", self.id)
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
        };
        serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()))
    }

    /// Write the state atomically (tmp + rename) so a reader never sees half a file.
    pub fn save(&self, st: &ContainerState) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        // 0600: annotations may carry anything the caller put there.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("write {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec(st)?)?;
        drop(f);
        fs::rename(&tmp, self.dir.join(STATE_FILE))?;
        Ok(())
    }

    /// Remove the state dir (the lock fd stays valid until dropped).
    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.dir)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .with_context(|| format!("remove state dir {}", self.dir.display()))
    }
}

/// Remove the state dir of a `create` that was killed before it wrote any state (it
/// made nothing else yet). True if there was one.
pub fn remove_half_made(root: &Path, id: &str) -> Result<bool> {
    let dir = root.join(id);
    if !dir.is_dir() || dir.join(STATE_FILE).exists() {
        return Ok(false);
    }
    // A create that is still running holds the lock; once we have it, check again. A
    // racing delete may remove the dir meanwhile: then there is nothing left to do.
    let _lock = match lock_dir(&dir) {
        Ok(l) => l,
        Err(_) if !dir.exists() => return Ok(false),
        Err(e) => return Err(e),
    };
    if dir.join(STATE_FILE).exists() || !dir.exists() {
        return Ok(false);
    }
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", dir.display()))
        }
        _ => Ok(true),
    }
}

/// Does a container with this ID exist (its state file is there)?
pub fn exists(root: &Path, id: &str) -> bool {
    root.join(id).join(STATE_FILE).exists()
}

/// IDs of every container under `root`, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(anyhow!(e).context(format!("read {}", root.display()))),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::validate_id;
    #[test]
    fn ids() {
        for ok in ["a", "abc-1_2.3+x", "A"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", ".", "../x", "a/b", "/", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
        assert!(validate_id(&"x".repeat(256)).is_err());
        assert!(validate_id(&"x".repeat(255)).is_ok());
    }
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
