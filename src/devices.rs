//! /dev inside the container: default nodes, `linux.devices`, and the standard links.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::paths::Root;

/// A device node to create.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub path: PathBuf,
    pub kind: libc::mode_t,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

const DEFAULTS: &[(&str, u32, u32)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// runc's default devices, then config.json's (which replace a default of the same path).
pub fn plan(devs: &[LinuxDevice]) -> Result<Vec<DevicePlan>> {
    let mut out: Vec<DevicePlan> = DEFAULTS
        .iter()
        .map(|(p, ma, mi)| DevicePlan {
            path: p.into(),
            kind: libc::S_IFCHR,
            major: *ma,
            minor: *mi,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    for d in devs {
        let p = d.path();
        if !p.is_absolute()
            || !p.starts_with("/dev")
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            bail!(
                "config.json: linux.devices: path {:?} must be an absolute path under /dev",
                p
            );
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => bail!(
                "config.json: linux.devices: {:?}: type \"a\" is not a device node",
                p
            ),
        };
        let plan = DevicePlan {
            path: p.clone(),
            kind,
            major: d.major() as u32,
            minor: d.minor() as u32,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        out.retain(|x| x.path != plan.path);
        out.push(plan);
    }
    Ok(out)
}

/// Refuse a rootfs whose /dev is a symlink (CVE-2026-41579 class): nodes must land in
/// the container's /dev and nowhere else.
fn dev_dir(root: &Root) -> Result<()> {
    match root.open_in(Path::new("/dev"), libc::O_PATH | libc::O_DIRECTORY, true) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            bail!("rootfs /dev is a symlink: refusing to create devices through it")
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            root.mkdir_all(Path::new("/dev"), 0o755)
                .context("create /dev")?;
            Ok(())
        }
        Err(e) => Err(e).context("open /dev in rootfs"),
    }
}

/// Create the nodes and links. `ptmx`: /dev/pts is a devpts mount, so /dev/ptmx links to it.
/// `userns`: the kernel refuses mknod there, so the host's node is bind-mounted instead.
pub fn create(root: &Root, devs: &[DevicePlan], ptmx: bool, userns: bool) -> Result<()> {
    dev_dir(root)?;
    // Nodes mostly share one parent (/dev): resolved once, not per node.
    let mut parents: Vec<(&Path, OwnedFd)> = Vec::new();
    for d in devs {
        let dir = d.path.parent().unwrap_or(Path::new("/dev"));
        let at = match parents.iter().position(|(p, _)| *p == dir) {
            Some(i) => i,
            None => {
                let fd = root
                    .mkdir_all(dir, 0o755)
                    .with_context(|| format!("create parent of {}", d.path.display()))?;
                parents.push((dir, fd));
                parents.len() - 1
            }
        };
        let parent = &parents[at].1;
        let name = CString::new(d.path.file_name().unwrap_or_default().as_bytes())?;
        let dev = libc::makedev(d.major, d.minor);
        if userns {
            bind_host_node(parent, &name, d)?;
            continue;
        }
        if unsafe { libc::mknodat(parent.as_raw_fd(), name.as_ptr(), d.kind | d.mode, dev) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EEXIST) {
                continue;
            }
            return Err(e).with_context(|| format!("mknod {}", d.path.display()));
        }
        if unsafe {
            libc::fchownat(
                parent.as_raw_fd(),
                name.as_ptr(),
                d.uid,
                d.gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } != 0
        {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("chown {}", d.path.display()));
        }
    }
    let dev = root
        .open_in(Path::new("/dev"), libc::O_PATH | libc::O_DIRECTORY, true)
        .context("open /dev")?;
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    if ptmx {
        let n = c"ptmx";
        unsafe { libc::unlinkat(dev.as_raw_fd(), n.as_ptr(), 0) };
        links.push(("ptmx", "pts/ptmx"));
    }
    for (name, target) in links {
        let (n, t) = (CString::new(name)?, CString::new(target)?);
        if unsafe { libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), n.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e).with_context(|| format!("symlink /dev/{name}"));
            }
        }
    }
    Ok(())
}

// runc's answer to mknod in a user namespace: an empty file with the host's node bound
// onto it. The host node must be the same device, or the container would get another.
fn bind_host_node(parent: &OwnedFd, name: &CStr, d: &DevicePlan) -> Result<()> {
    let host = crate::paths::openat(
        libc::AT_FDCWD,
        &CString::new(d.path.as_os_str().as_bytes())?,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
    )
    .with_context(|| {
        format!(
            "{}: in a user namespace the host's node is bound, and the host has none",
            d.path.display()
        )
    })?;
    let st = crate::paths::fstat(host.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != d.kind || st.st_rdev != libc::makedev(d.major, d.minor) {
        bail!("{}: the host's node is not device {}:{} of that type, so it cannot be bound in a user namespace", d.path.display(), d.major, d.minor);
    }
    let fd = unsafe {
        libc::openat(
            parent.as_raw_fd(),
            name.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(e)
            .with_context(|| format!("create {} to bind the host's node onto", d.path.display()));
    }
    let target = unsafe { OwnedFd::from_raw_fd(fd) };
    let tree = crate::mounts::fdmount::clone_tree(host.as_raw_fd(), false)
        .with_context(|| format!("bind host {}", d.path.display()))?;
    crate::mounts::fdmount::move_onto(tree.as_raw_fd(), target.as_raw_fd())
        .with_context(|| format!("bind host {}", d.path.display()))?;
    Ok(())
}
