//! Idmapped bind mounts (`idmap`, `ridmap`, `uidMappings`/`gidMappings` on a mount).
//!
//! The kernel only lets a process with CAP_SYS_ADMIN over the source's filesystem idmap
//! a mount, and the init may already be in a user namespace of its own; so the parent
//! builds each idmapped tree detached, before the clone, and the init only attaches it
//! (the fd is inherited, and CLOEXEC so the container's program never sees it).
//! The mapping lives in a user namespace made for it by a short-lived helper process,
//! or is the namespace the container joins by path.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, Mount};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::fdmount::{clone_tree, setattr_idmap};
use super::{Kind, MountPlan};
use crate::namespaces::{IdMaps, NsPlan};

/// How one mount is idmapped, as config.json says it.
#[derive(Debug)]
pub struct Idmap {
    /// The mount's own mappings; None means the container's user namespace.
    pub maps: Option<IdMaps>,
    /// `ridmap`: every mount of the tree, not just its top.
    pub recursive: bool,
}

fn map_lines(m: &[LinuxIdMapping]) -> String {
    m.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Read a mount's idmap settings (None: not idmapped). `recursive` is Some for the
/// `idmap`/`ridmap` options.
pub fn plan(m: &Mount, recursive: Option<bool>) -> Result<Option<Idmap>> {
    let dest = m.destination().display();
    let uid = m.uid_mappings().as_deref().unwrap_or(&[]);
    let gid = m.gid_mappings().as_deref().unwrap_or(&[]);
    if uid.is_empty() && gid.is_empty() {
        return Ok(recursive.map(|recursive| Idmap {
            maps: None,
            recursive,
        }));
    }
    if uid.is_empty() || gid.is_empty() {
        bail!(
            "config.json: mounts: {dest}: an idmapped mount needs both uidMappings and gidMappings"
        );
    }
    if let Some(z) = uid.iter().chain(gid).find(|z| z.size() == 0) {
        bail!(
            "config.json: mounts: {dest}: uidMappings/gidMappings: containerID {} hostID {}: size must be above 0",
            z.container_id(),
            z.host_id()
        );
    }
    Ok(Some(Idmap {
        maps: Some(IdMaps {
            uid: map_lines(uid),
            gid: map_lines(gid),
        }),
        recursive: recursive.unwrap_or(false),
    }))
}

/// Build every idmapped tree of `mounts` (in the parent, before the clone). `container`
/// is the container's new user namespace's mappings, if it has one.
pub fn prepare(mounts: &mut [MountPlan], ns: &NsPlan, container: Option<&IdMaps>) -> Result<()> {
    if !mounts.iter().any(|m| m.idmap.is_some()) {
        return Ok(());
    }
    if unsafe { libc::geteuid() } != 0 {
        bail!("config.json: mounts: idmapped mounts need a root runtime (the kernel asks for CAP_SYS_ADMIN over the source's filesystem); not supported rootless");
    }
    let joined = ns
        .join
        .iter()
        .find(|(_, t, _)| *t == libc::CLONE_NEWUSER)
        .map(|(fd, _, _)| fd);
    // One helper namespace per distinct mapping.
    let mut userns: HashMap<(String, String), OwnedFd> = HashMap::new();
    for m in mounts.iter_mut() {
        let Some(idmap) = &m.idmap else { continue };
        let dest = m.dest.display().to_string();
        let Kind::Bind { source } = &m.kind else {
            bail!("config.json: mounts: {dest}: idmapped mounts must be bind mounts");
        };
        let maps = match (&idmap.maps, container) {
            (Some(maps), _) | (None, Some(maps)) => Some(maps),
            (None, None) => None,
        };
        let ns = match (maps, joined) {
            (Some(maps), _) => {
                let key = (maps.uid.clone(), maps.gid.clone());
                if !userns.contains_key(&key) {
                    let fd = helper_userns(maps, &dest)?;
                    userns.insert(key.clone(), fd);
                }
                &userns[&key]
            }
            (None, Some(fd)) => fd,
            (None, None) => bail!(
                "config.json: mounts: {dest}: idmap without uidMappings/gidMappings uses the container's user namespace, and the container has none (add {{\"type\": \"user\"}} to linux.namespaces, or give the mount its own mappings)"
            ),
        };
        m.tree = Some(idmapped_tree(
            source,
            m.opts.recursive_bind,
            idmap.recursive,
            ns,
            &dest,
        )?);
    }
    Ok(())
}

fn idmapped_tree(
    source: &std::path::Path,
    rbind: bool,
    recursive: bool,
    userns: &OwnedFd,
    dest: &str,
) -> Result<OwnedFd> {
    let src = crate::paths::openat(
        libc::AT_FDCWD,
        &CString::new(source.as_os_str().as_bytes())?,
        libc::O_PATH | libc::O_CLOEXEC,
        0,
    )
    .with_context(|| format!("open bind source {} for {dest}", source.display()))?;
    let tree = clone_tree(src.as_raw_fd(), rbind)
        .with_context(|| format!("bind {} (clone)", source.display()))?;
    setattr_idmap(tree.as_raw_fd(), userns.as_raw_fd(), recursive).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::EINVAL) => " (the filesystem does not support idmapped mounts, or a mount below it cannot be idmapped)",
            Some(libc::ENOSYS) => " (the kernel has no mount_setattr: Linux 5.12 or later is needed)",
            _ => "",
        };
        anyhow::anyhow!("idmap {} for {dest}: {e}{why}", source.display())
    })?;
    Ok(tree)
}

/// A user namespace with `maps`, held by a helper process only while the maps are written
/// and the namespace is opened.
fn helper_userns(maps: &IdMaps, dest: &str) -> Result<OwnedFd> {
    let mut p = [0i32; 2];
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    let pid = crate::process::clone::clone_fork(libc::CLONE_NEWUSER)
        .context("clone a helper user namespace")?;
    if pid == 0 {
        // Wait for the parent's end to close, then go.
        drop(w);
        let mut b = [0u8; 1];
        unsafe {
            libc::read(r.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1);
            libc::_exit(0)
        }
    }
    drop(r);
    let res = maps.write(pid, &format!("mounts: {dest}: ")).and_then(|_| {
        let path = format!("/proc/{pid}/ns/user");
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .with_context(|| format!("open {path}"))
    });
    drop(w);
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    res
}

/// Whether the kernel has mount_setattr (Linux 5.12), and so idmapped mounts.
pub fn supported() -> bool {
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            0,
            std::ptr::null::<u8>(),
            0,
        )
    };
    !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
}
