//! The container's root: propagation, pivot_root (or move+chroot), read-only root,
//! masked and read-only paths, sysctls. Runs in the init, in its new mount namespace.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::mounts::fdmount::{clone_tree, mount_at, mount_path, move_onto, setattr};
use crate::mounts::options::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
use crate::overlay::Layers;
use crate::paths::{fstat, Root};

/// Make our mount tree non-propagating toward the host (or as `rootfsPropagation` says),
/// and turn the rootfs into a mount point of its own so it can be pivoted to: a bind of
/// itself, or the overlay of `layers` (mounted only now, so it never reaches the host).
/// Without a mount namespace of its own (`own_ns` false) the host's propagation is left
/// alone: the bind of the rootfs is made in our namespace, and all the container's
/// mounts go under it, for delete to detach at once.
pub fn prepare(
    rootfs: &Path,
    propagation: Option<u64>,
    layers: Option<&Layers>,
    own_ns: bool,
) -> Result<()> {
    let mut root_flags = propagation.unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    if root_flags & libc::MS_UNBINDABLE != 0 {
        // Until pivot_root an unbindable root could not be bound onto itself (EINVAL, as
        // runc 1.1 fails): private now, unbindable in `finalize`.
        root_flags = root_flags & !libc::MS_UNBINDABLE | libc::MS_PRIVATE;
    }
    if own_ns {
        mount_path(None, c"/", None, root_flags, None).context("set propagation of /")?;
    }
    let rc = CString::new(rootfs.as_os_str().as_bytes())?;
    if own_ns {
        // A rootfs on a mount still shared with the host (rootfsPropagation "shared", or
        // "private"/"slave" that left the submounts of / alone): pivot_root refuses a
        // shared parent, and the bind below would join the host's peer group, so every
        // container mount would appear on the host. Make just that mount a slave: runc
        // makes it private (rootfsParentMountPrivate), which also cuts what the host
        // mounts there later from a "slave" root, which the spec says receives them.
        if let Some(mp) = shared_parent_mount(rootfs) {
            mount_path(
                None,
                &CString::new(mp.as_bytes())?,
                None,
                libc::MS_SLAVE,
                None,
            )
            .with_context(|| format!("make {mp} a slave"))?;
        }
    }
    if let Some(layers) = layers {
        let target = crate::paths::openat(libc::AT_FDCWD, &rc, libc::O_PATH | libc::O_DIRECTORY, 0)
            .with_context(|| format!("open rootfs {}", rootfs.display()))?;
        return crate::overlay::mount_root(layers, target.as_fd())
            .with_context(|| format!("overlay root on {}", rootfs.display()));
    }
    mount_path(Some(&rc), &rc, None, libc::MS_BIND | libc::MS_REC, None)
        .with_context(|| format!("bind rootfs {} onto itself", rootfs.display()))?;
    Ok(())
}

/// The mount point `p` lies on, if that mount is shared (a `shared:N` optional field).
fn shared_parent_mount(p: &Path) -> Option<String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // The last mount listed at a mount point is the one on top.
    let (mp, line) = mi
        .lines()
        .filter_map(|l| Some((l.split(' ').nth(4)?, l)))
        .filter(|(mp, _)| p.starts_with(mp))
        .fold(None::<(&str, &str)>, |best, (mp, l)| match best {
            Some((b, _)) if b.len() > mp.len() => best,
            _ => Some((mp, l)),
        })?;
    let optional = line.split(' ').skip(6).take_while(|f| *f != "-");
    optional
        .into_iter()
        .any(|f| f.starts_with("shared:"))
        .then(|| mp.to_string())
}

/// Enter the rootfs: pivot_root, or with `--no-pivot` a move mount and chroot; in the
/// runtime's own mount namespace (`own_ns` false) a chroot alone, as runc does (pivot_root
/// or a move onto / there would change the root of the whole host).
pub fn enter(rootfs: &Path, no_pivot: bool, own_ns: bool) -> Result<()> {
    let rc = CString::new(rootfs.as_os_str().as_bytes())?;
    if unsafe { libc::chdir(rc.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("chdir to rootfs");
    }
    if !own_ns {
        if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("chroot");
        }
    } else if no_pivot {
        hide_host_proc_and_sys(rootfs)?;
        mount_path(Some(c"."), c"/", None, libc::MS_MOVE, None).context("move rootfs to /")?;
        if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("chroot");
        }
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one; we then detach it,
        // after making it a slave so the unmount does not propagate to the host.
        // Our cwd still names the *new* root's mount (a "." lookup does not cross onto the
        // mount stacked on top), so go to the old root through an fd first, as runc does:
        // an rslave on "." would hit the container's mounts and drop their "rshared".
        let old_root = crate::paths::openat(
            libc::AT_FDCWD,
            c"/",
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
        .context("open old root")?;
        if unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("pivot_root");
        }
        if unsafe { libc::fchdir(old_root.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("fchdir to old root");
        }
        drop(old_root);
        mount_path(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)
            .context("make old root a slave")?;
        if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(std::io::Error::last_os_error()).context("detach old root");
        }
    }
    if unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("chdir /");
    }
    Ok(())
}

/// `--no-pivot` keeps the host's mounts in the container's mount namespace, under the
/// moved root: a fully visible host procfs or sysfs there lets a process with
/// CAP_SYS_ADMIN in a user namespace mount a fresh, unmasked one (the kernel only
/// checks that such a mount exists in the namespace). As runc's msMoveRoot does, each
/// procfs and sysfs mount outside the rootfs is detached, or, where the user namespace
/// locks it, covered with an empty read-only tmpfs.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    let mi = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    let points: Vec<String> = mi
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mp = pre.split(' ').nth(4)?.replace("\\040", " ");
            (matches!(fstype, "proc" | "sysfs") && !Path::new(&mp).starts_with(rootfs))
                .then_some(mp)
        })
        .collect();
    for mp in points {
        let c = CString::new(mp.as_bytes())?;
        // Gone with a parent detached before it, or already covered: nothing to hide.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0
            || !matches!(st.f_type as i64, PROC_SUPER_MAGIC | SYSFS_MAGIC)
        {
            continue;
        }
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            continue;
        }
        let fl = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        mount_path(
            Some(c"tmpfs"),
            &c,
            Some(c"tmpfs"),
            fl,
            Some(c"size=0,mode=0555"),
        )
        .with_context(|| format!("--no-pivot: hide the host's {mp}"))?;
    }
    Ok(())
}

/// Detach what a container without a mount namespace of its own mounted in ours: every
/// mount stacked on `rootfs` over the one (mount ID `below`) that was there before create,
/// each taking the mounts below it along. Each is unmounted through an fd checked to be
/// the top mount at the rootfs (no path is followed again), best effort.
pub fn detach_host_mounts(rootfs: &Path, below: u64) {
    let Ok(rc) = CString::new(rootfs.as_os_str().as_bytes()) else {
        return;
    };
    for _ in 0..64 {
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let Ok(fd) = crate::paths::openat(libc::AT_FDCWD, &rc, flags, 0) else {
            return;
        };
        match crate::mounts::remount::mnt_id(fd.as_raw_fd()) {
            Ok(id) if id != below => {}
            _ => return,
        }
        let p = crate::paths::fd_path(fd.as_raw_fd());
        if unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = std::io::Error::last_os_error();
            crate::logging::warn(&format!(
                "unmount the container's mounts at {}: {e}",
                rootfs.display()
            ));
            return;
        }
    }
}

/// The mount ID of the top mount at `path`.
pub fn mount_id_at(path: &Path) -> Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    let fd = crate::paths::openat(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_CLOEXEC, 0)
        .with_context(|| format!("open {}", path.display()))?;
    crate::mounts::remount::mnt_id(fd.as_raw_fd())
        .with_context(|| format!("mount ID of {}", path.display()))
}

/// After entering: apply `rootfsPropagation` and `root.readonly`.
pub fn finalize(propagation: Option<u64>, readonly: bool) -> Result<()> {
    if let Some(p) = propagation {
        mount_path(None, c"/", None, p, None).context("apply rootfsPropagation")?;
    }
    if readonly {
        let fd = crate::paths::openat(libc::AT_FDCWD, c"/", libc::O_PATH, 0)?;
        setattr(fd.as_raw_fd(), MOUNT_ATTR_RDONLY, 0, false).context("make root read-only")?;
    }
    Ok(())
}

/// Write `linux.sysctl` (the values of the namespaces we are in), once the container's
/// /proc is mounted, through a private procfs instance: a file mounted over one of the
/// container's /proc/sys files (a racing shared mount, a hook) cannot take the write.
pub fn write_sysctls(root: &Root, sysctl: &HashMap<String, String>) -> Result<()> {
    let Some(k) = sysctl.keys().next() else {
        return Ok(());
    };
    // Only with a proc mount, as runc: without one, /proc/sys is the image's.
    let mounted = root
        .open_in(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, true)
        .with_context(|| format!("linux.sysctl: {k}: open /proc"))?;
    if !crate::paths::is_procfs(mounted.as_raw_fd()) {
        bail!("linux.sysctl: {k}: /proc is not on procfs (does config.json mount proc at /proc?)");
    }
    let proc = crate::procfs::ProcHandle::new(Some(&mounted))
        .context("linux.sysctl: open a private procfs")?;
    for (k, v) in sysctl {
        let path = format!("sys/{}", k.replace('.', "/"));
        let fd = proc
            .open(&path, libc::O_WRONLY)
            .with_context(|| format!("linux.sysctl: {k}: open /proc/{path}"))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(v.as_bytes())
            .with_context(|| format!("linux.sysctl: {k}={v}"))?;
    }
    Ok(())
}

/// `linux.maskedPaths`: directories get an empty read-only tmpfs, files the container's
/// /dev/null, checked to really be the 1:3 character device and mounted from its fd so a
/// swapped symlink cannot redirect it (CVE-2025-31133).
pub fn mask_paths(root: &Root, paths: &[String]) -> Result<()> {
    let mut devnull: Option<OwnedFd> = None;
    for p in paths {
        let target = match root.open_in(Path::new(p), libc::O_PATH, false) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("linux.maskedPaths: open {p}")),
        };
        let st = fstat(target.as_raw_fd())?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            // One mount(2) onto the fd: read-only from its first instant.
            let fl = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            mount_at(
                Some(c"tmpfs"),
                target.as_raw_fd(),
                Some(c"tmpfs"),
                fl,
                Some(c"size=0,mode=0555"),
            )
            .with_context(|| format!("linux.maskedPaths: mask {p}"))?;
        } else {
            if devnull.is_none() {
                let fd = root
                    .open_in(Path::new("/dev/null"), libc::O_PATH, true)
                    .context("linux.maskedPaths: open /dev/null")?;
                let st = fstat(fd.as_raw_fd())?;
                if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
                    bail!(
                        "linux.maskedPaths: the container's /dev/null is not the null device (1:3)"
                    );
                }
                devnull = Some(fd);
            }
            let tree = clone_tree(devnull.as_ref().unwrap().as_raw_fd(), false)
                .context("linux.maskedPaths: clone /dev/null")?;
            move_onto(tree.as_raw_fd(), target.as_raw_fd())
                .with_context(|| format!("linux.maskedPaths: mask {p}"))?;
        }
    }
    Ok(())
}

/// `linux.readonlyPaths`: a read-only recursive clone of each path, made read-only
/// before it is attached, placed over the original.
pub fn readonly_paths(root: &Root, paths: &[String]) -> Result<()> {
    for p in paths {
        let target = match root.open_in(Path::new(p), libc::O_PATH, false) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("linux.readonlyPaths: open {p}")),
        };
        let tree = clone_tree(target.as_raw_fd(), true)
            .with_context(|| format!("linux.readonlyPaths: clone {p}"))?;
        setattr(
            tree.as_raw_fd(),
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            0,
            true,
        )
        .with_context(|| format!("linux.readonlyPaths: make {p} read-only"))?;
        move_onto(tree.as_raw_fd(), target.as_raw_fd())
            .with_context(|| format!("linux.readonlyPaths: mount {p}"))?;
    }
    Ok(())
}

/// Check sysctls are namespaced ones the container owns, as runc does.
pub fn validate_sysctls(
    sysctl: &HashMap<String, String>,
    new_ipc: bool,
    new_net: bool,
    new_uts: bool,
) -> Result<()> {
    for k in sysctl.keys() {
        let ipc = matches!(
            k.as_str(),
            "kernel.msgmax"
                | "kernel.msgmnb"
                | "kernel.msgmni"
                | "kernel.sem"
                | "kernel.shmall"
                | "kernel.shmmax"
                | "kernel.shmmni"
                | "kernel.shm_rmid_forced"
        ) || k.starts_with("fs.mqueue.");
        let uts = matches!(k.as_str(), "kernel.hostname" | "kernel.domainname");
        let ok = if ipc {
            new_ipc
        } else if k.starts_with("net.") {
            new_net
        } else if uts {
            new_uts
        } else {
            false
        };
        if !ok {
            bail!("config.json: linux.sysctl: {k:?} is not namespaced in this container (it would change the host)");
        }
        if k.contains('/') || k.split('.').any(|s| s.is_empty() || s == "..") {
            bail!("config.json: linux.sysctl: invalid key {k:?}");
        }
    }
    Ok(())
}
