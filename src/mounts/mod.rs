//! The mounts of config.json, planned in the parent and applied by the init inside the
//! rootfs. Every destination is resolved through [`Root`]; every mount targets an fd.

pub mod fdmount;
pub mod idmap;
pub mod options;
pub mod remount;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Mount;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::cgroups::CgroupMount;
use crate::paths::Root;
use fdmount::{c, clone_tree, mount_at, move_onto, setattr};
pub use options::MountOptions;

/// What a mount is, once its type and options are understood.
#[derive(Debug)]
pub enum Kind {
    Bind { source: PathBuf },
    Fs { fstype: CString, source: CString },
    Cgroup,
}

/// One mount from config.json, ready to apply without further parsing.
#[derive(Debug)]
pub struct MountPlan {
    pub dest: PathBuf,
    pub kind: Kind,
    pub opts: MountOptions,
    data: Option<CString>,
    /// Idmapped (bind mounts only): the parent builds its tree (see [`idmap`]).
    pub idmap: Option<idmap::Idmap>,
    /// The parent builds this bind's tree and hands it over: idmapped, or a bind into a
    /// user namespace, whose root may not reach the source (set by `idmap::prepare`).
    pub from_parent: bool,
}

/// Parse config.json's mounts (bind sources are relative to the bundle, like runc).
pub fn plan(mounts: &[Mount], bundle: &Path) -> Result<Vec<MountPlan>> {
    let mut out = Vec::with_capacity(mounts.len());
    for m in mounts {
        let raw = m.options().as_deref().unwrap_or(&[]);
        let opts = options::parse(raw);
        let idmap = idmap::plan(m, opts.idmap)?;
        let typ = m.typ().as_deref().unwrap_or("");
        let source = m.source().clone().unwrap_or_default();
        let kind = if typ == "bind" || opts.bind {
            if source.as_os_str().is_empty() {
                bail!(
                    "config.json: mounts: bind mount to {} has no source",
                    m.destination().display()
                );
            }
            let full = if source.is_absolute() {
                source
            } else {
                bundle.join(source)
            };
            Kind::Bind { source: full }
        } else if typ == "cgroup" || typ == "cgroup2" {
            Kind::Cgroup
        } else if typ.is_empty() || typ == "none" {
            bail!(
                "config.json: mounts: mount to {} has no type and is not a bind mount",
                m.destination().display()
            );
        } else {
            let src = if source.as_os_str().is_empty() {
                PathBuf::from(typ)
            } else {
                source
            };
            Kind::Fs {
                fstype: c(typ),
                source: CString::new(src.as_os_str().as_bytes())?,
            }
        };
        let data = if opts.data.is_empty() {
            None
        } else {
            Some(c(&opts.data))
        };
        out.push(MountPlan {
            dest: m.destination().clone(),
            kind,
            opts,
            data,
            idmap,
            from_parent: false,
        });
    }
    Ok(out)
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Open (creating as a directory if missing) a mount point for a filesystem mount.
/// procfs and sysfs refuse any symlink on the way (CVE-2019-19921, CVE-2023-27561).
fn dir_target(root: &Root, dest: &Path, strict: bool) -> Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    let open = |r: &Root| r.open_in(dest, flags, strict);
    let fd = match open(root) {
        Ok(fd) => fd,
        Err(e) if errno(&e) == libc::ENOENT => {
            root.mkdir_all(dest, 0o755)
                .with_context(|| format!("create mount point {}", dest.display()))?;
            open(root).with_context(|| format!("open mount point {}", dest.display()))?
        }
        Err(e) if strict && errno(&e) == libc::ELOOP => {
            bail!(
                "{} must be mounted on ordinary directory: it is a symlink in the rootfs",
                dest.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("open mount point {}", dest.display())),
    };
    Ok(fd)
}

/// /proc, /sys and /dev: never reached through a symlink (CVE-2019-19921, CVE-2026-41579).
fn is_special_dir(dest: &Path) -> bool {
    let d = crate::paths::relative(dest);
    d == Path::new("proc") || d == Path::new("sys") || d == Path::new("dev")
}

/// runc's rule against CVE-2019-16884: nothing may be mounted over procfs files (a fake
/// /proc/self/attr/* would silently disable the LSM), except the few that lxcfs emulates;
/// and /proc itself only gets a procfs. Checked on the *resolved* target, so a symlink
/// pointing into /proc is caught too.
fn check_proc_target(dest: &Path, target: &OwnedFd, is_proc: bool) -> Result<()> {
    const ALLOWED: &[&str] = &[
        "proc/cpuinfo",
        "proc/diskstats",
        "proc/meminfo",
        "proc/stat",
        "proc/swaps",
        "proc/uptime",
        "proc/loadavg",
        "proc/slabinfo",
        "proc/sys/kernel/ns_last_pid",
        "proc/sys/crypto/fips_enabled",
    ];
    let rel = crate::paths::relative(dest);
    if rel == Path::new("proc") {
        if !is_proc {
            bail!(
                "{} cannot be mounted because it is not of type proc",
                dest.display()
            );
        }
        return Ok(());
    }
    if crate::paths::is_procfs(target.as_raw_fd()) && !ALLOWED.iter().any(|a| rel == Path::new(a)) {
        bail!(
            "{} cannot be mounted because it is inside /proc",
            dest.display()
        );
    }
    Ok(())
}

/// Re-open `dest` after mounting, so propagation/attrs hit the new mount, not the one below.
fn reopen(root: &Root, dest: &Path) -> Result<OwnedFd> {
    root.open_in(dest, libc::O_PATH, false)
        .with_context(|| format!("reopen {}", dest.display()))
}

fn finish(root: &Root, m: &MountPlan) -> Result<()> {
    if m.opts.propagation.is_empty() && m.opts.rec_set == 0 && m.opts.rec_clr == 0 {
        return Ok(());
    }
    let fd = reopen(root, &m.dest)?;
    setattr(fd.as_raw_fd(), m.opts.rec_set, m.opts.rec_clr, true)
        .with_context(|| format!("set recursive mount attributes on {}", m.dest.display()))?;
    for p in &m.opts.propagation {
        mount_at(None, fd.as_raw_fd(), None, *p, None)
            .with_context(|| format!("set propagation on {}", m.dest.display()))?;
    }
    Ok(())
}

/// A mount made read-write for now, to be made read-only by [`Late::finish`].
pub struct Late {
    dest: PathBuf,
    mnt: OwnedFd,
}

impl Late {
    /// The read-only flag config.json asked for, once nothing is left to create in it.
    pub fn finish(self) -> Result<()> {
        let what = || format!("make {} read-only", self.dest.display());
        let r = if remount::mount_setattr_disabled() {
            Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
        } else {
            setattr(self.mnt.as_raw_fd(), options::MOUNT_ATTR_RDONLY, 0, false)
        };
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                remount::remount_tree(self.mnt.as_raw_fd(), libc::MS_RDONLY, 0).with_context(what)
            }
            r => r.with_context(what),
        }
    }
}

/// As runc does, a read-only tmpfs or /dev is mounted read-write and made read-only only
/// at the end (after devices, /dev/pts and other mount points in it, the console), or
/// nothing could be created in it.
fn late_readonly(m: &MountPlan, fstype: &CString) -> bool {
    m.opts.flags & libc::MS_RDONLY != 0
        && (fstype.to_bytes() == b"tmpfs" || crate::paths::relative(&m.dest) == Path::new("dev"))
}

/// Apply one planned mount inside `root`; `tree` is the idmapped tree the parent built.
/// Returns the mount to make read-only at the end (see [`late_readonly`]).
pub fn apply(
    root: &Root,
    m: &MountPlan,
    cgroup: &CgroupMount,
    tree: Option<&OwnedFd>,
) -> Result<Option<Late>> {
    match &m.kind {
        Kind::Bind { source } => {
            // A tree from the parent is what gets mounted: judge it, not the path (which
            // the init, a user namespace's root, may not even be allowed to open).
            let opened;
            let src = match tree {
                Some(t) => t,
                None => {
                    opened = crate::paths::openat(
                        libc::AT_FDCWD,
                        &CString::new(source.as_os_str().as_bytes())?,
                        libc::O_PATH | libc::O_CLOEXEC,
                        0,
                    )
                    .with_context(|| {
                        format!(
                            "bind mount source {} for {}",
                            source.display(),
                            m.dest.display()
                        )
                    })?;
                    &opened
                }
            };
            let is_dir = crate::paths::fstat(src.as_raw_fd())
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                .with_context(|| format!("stat bind source {}", source.display()))?;
            let target = if is_special_dir(&m.dest) {
                // A bind of the host's /sys or /dev is no more allowed through a symlink.
                dir_target(root, &m.dest, true)?
            } else if is_dir {
                root.mkdir_all(&m.dest, 0o755)
                    .with_context(|| format!("create bind mount point {}", m.dest.display()))?
            } else {
                root.ensure_file(&m.dest)
                    .with_context(|| format!("create bind mount point {}", m.dest.display()))?
            };
            check_proc_target(&m.dest, &target, crate::paths::is_procfs(src.as_raw_fd()))?;
            // A detached clone gets its flags before it is visible: never a writable window.
            let cloned;
            let tree = match tree {
                Some(t) => t,
                None => {
                    cloned = clone_tree(src.as_raw_fd(), m.opts.recursive_bind)
                        .with_context(|| format!("bind {} (clone)", source.display()))?;
                    &cloned
                }
            };
            bind_attrs_and_attach(tree, &target, m)?;
        }
        Kind::Fs { fstype, source } => {
            let strict = matches!(fstype.to_bytes(), b"proc" | b"sysfs") || is_special_dir(&m.dest);
            let target = dir_target(root, &m.dest, strict)?;
            check_proc_target(&m.dest, &target, fstype.to_bytes() == b"proc")?;
            let what = || format!("mount {} on {}", fstype.to_string_lossy(), m.dest.display());
            if late_readonly(m, fstype) {
                let mut opts = m.opts.clone();
                opts.flags &= !libc::MS_RDONLY;
                let mnt = match detached_fs(fstype, source, &opts) {
                    Ok(mnt) => {
                        attach(&mnt, &target, m)?;
                        mnt
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                        mount_at(
                            Some(source),
                            target.as_raw_fd(),
                            Some(fstype),
                            opts.flags,
                            m.data.as_deref(),
                        )
                        .with_context(what)?;
                        finish(root, m)?;
                        reopen(root, &m.dest)?
                    }
                    Err(e) => return Err(e).with_context(what),
                };
                return Ok(Some(Late {
                    dest: m.dest.clone(),
                    mnt,
                }));
            }
            // mount(2) aimed at the target fd is race-free and applies its flags atomically;
            // only a mount that needs work *after* mounting (recursive attrs, propagation)
            // is built detached, so that work never goes through a path again.
            if m.opts.rec_set == 0 && m.opts.rec_clr == 0 && m.opts.propagation.is_empty() {
                let r = mount_at(
                    Some(source),
                    target.as_raw_fd(),
                    Some(fstype),
                    m.opts.flags,
                    m.data.as_deref(),
                );
                if r.as_ref()
                    .is_err_and(|e| e.raw_os_error() == Some(libc::EPERM))
                    && fstype.to_bytes() == b"sysfs"
                {
                    // A user namespace without its own network namespace may not mount
                    // sysfs; runc binds the host's /sys instead, with the same flags.
                    return bind_host_sys(&target, m).map(|_| None);
                }
                return r.with_context(what).map(|_| None);
            }
            match detached_fs(fstype, source, &m.opts) {
                Ok(mnt) => attach(&mnt, &target, m)?,
                // No fsopen (kernel < 5.2): mount(2) onto the fd, then the old way.
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    mount_at(
                        Some(source),
                        target.as_raw_fd(),
                        Some(fstype),
                        m.opts.flags,
                        m.data.as_deref(),
                    )
                    .with_context(what)?;
                    finish(root, m)?;
                }
                Err(e) => return Err(e).with_context(what),
            }
        }
        Kind::Cgroup => {
            let target = dir_target(root, &m.dest, true)?;
            cgroup
                .mount(&m.dest, target, m.opts.flags)
                .with_context(|| format!("mount cgroup on {}", m.dest.display()))?;
            finish(root, m)?;
        }
    }
    Ok(None)
}

/// A bind's flags, set on the detached tree, then attached. `ro` on a recursive bind makes
/// every mount below read-only too: runc 1.1 leaves them writable, so a `/sys` bound
/// `rbind,ro` without a cgroup namespace would give the container every host cgroup
/// hierarchy read-write (CVE-2023-25809 class). The other flags stay on the top mount, as
/// runc has them (`rnosuid`, `rnoexec`, ... reach below). Without mount_setattr the tree
/// is attached first and each of its mounts remounted (before any container process runs).
fn bind_attrs_and_attach(tree: &OwnedFd, target: &OwnedFd, m: &MountPlan) -> Result<()> {
    let what = || format!("set options on bind mount {}", m.dest.display());
    let (set, clr) = options::attrs_of_flags(m.opts.flags);
    let ro_below = m.opts.recursive_bind && m.opts.flags & libc::MS_RDONLY != 0;
    let r = if remount::mount_setattr_disabled() {
        Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
    } else {
        setattr(tree.as_raw_fd(), set, clr, false).and_then(|_| {
            let below = if ro_below {
                options::MOUNT_ATTR_RDONLY
            } else {
                0
            };
            setattr(tree.as_raw_fd(), below, 0, true)
        })
    };
    match r {
        Ok(()) => attach(tree, target, m),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            attach(tree, target, m)?;
            let below = if ro_below { libc::MS_RDONLY } else { 0 };
            remount::remount_tree(tree.as_raw_fd(), m.opts.flags, below).with_context(what)
        }
        Err(e) => Err(e).with_context(what),
    }
}

fn bind_host_sys(target: &OwnedFd, m: &MountPlan) -> Result<()> {
    let src = crate::paths::openat(libc::AT_FDCWD, c"/sys", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let tree = clone_tree(src.as_raw_fd(), true).context("bind host /sys (clone)")?;
    let (set, clr) = options::attrs_of_flags(m.opts.flags);
    setattr(tree.as_raw_fd(), set, clr, true)
        .with_context(|| format!("set options on {}", m.dest.display()))?;
    move_onto(tree.as_raw_fd(), target.as_raw_fd())
        .with_context(|| format!("bind host /sys on {}", m.dest.display()))?;
    Ok(())
}

/// Attach a detached mount: recursive attributes first (still invisible), then
/// move_mount onto the target fd, then propagation through the mount's own fd, which
/// now names the attached mount. Nothing re-resolves the destination path, so a
/// swapped symlink cannot redirect any step (CVE-2021-30465 class).
fn attach(mnt: &OwnedFd, target: &OwnedFd, m: &MountPlan) -> Result<()> {
    setattr(mnt.as_raw_fd(), m.opts.rec_set, m.opts.rec_clr, true)
        .with_context(|| format!("set recursive mount attributes on {}", m.dest.display()))?;
    move_onto(mnt.as_raw_fd(), target.as_raw_fd())
        .with_context(|| format!("mount on {}", m.dest.display()))?;
    for p in &m.opts.propagation {
        mount_at(None, mnt.as_raw_fd(), None, *p, None)
            .with_context(|| format!("set propagation on {}", m.dest.display()))?;
    }
    Ok(())
}

/// A new filesystem instance, detached: fsopen + one fsconfig per data option +
/// fsmount with the per-mount flags as mount attributes.
fn detached_fs(fstype: &CString, source: &CString, o: &MountOptions) -> std::io::Result<OwnedFd> {
    let mut strings: Vec<(CString, CString)> = vec![(c("source"), source.clone())];
    let mut flags: Vec<CString> = Vec::new();
    for opt in o.data.split(',').filter(|s| !s.is_empty()) {
        match opt.split_once('=') {
            Some((k, v)) => strings.push((c(k), c(v))),
            None => flags.push(c(opt)),
        }
    }
    // Superblock flags travel as fsconfig flags; the rest become mount attributes.
    for (ms, name) in [
        (libc::MS_SYNCHRONOUS, "sync"),
        (libc::MS_DIRSYNC, "dirsync"),
        (libc::MS_LAZYTIME, "lazytime"),
        (libc::MS_MANDLOCK, "mand"),
        (libc::MS_SILENT, "silent"),
        (libc::MS_I_VERSION, "iversion"),
    ] {
        if o.flags & ms != 0 {
            flags.push(c(name));
        }
    }
    let (attrs, _) = options::attrs_of_flags(o.flags);
    let s: Vec<(&std::ffi::CStr, &std::ffi::CStr)> = strings
        .iter()
        .map(|(k, v)| (k.as_c_str(), v.as_c_str()))
        .collect();
    let f: Vec<&std::ffi::CStr> = flags.iter().map(|k| k.as_c_str()).collect();
    fdmount::new_fs_flags(fstype, &s, &f, attrs)
}
