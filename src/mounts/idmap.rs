//! Idmapped bind mounts (`idmap`, `ridmap`, `uidMappings`/`gidMappings` on a mount).
//!
//! The kernel only lets a process with CAP_SYS_ADMIN over the source's filesystem idmap
//! a mount, and the init may be in a user namespace of its own; so the parent does it,
//! as runc does: once the init has made its mount namespace a slave of the host's, it
//! asks; the parent enters that namespace, clones each source there (so the tree is a
//! slave, and keeps the locks the user namespace put on host mounts), idmaps it, and
//! hands the detached tree over the channel; the init attaches it. The mapping lives in
//! a user namespace made for it by a short-lived helper process (one per distinct
//! mapping: namespaces count against a per-user limit), or is one the container joins.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, Mount};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
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

/// The bind trees the parent builds, in mount order, and the user namespace each
/// idmapped one goes through.
pub struct Prepared {
    usernses: Vec<OwnedFd>,
    /// (index into the mounts, index into `usernses` if idmapped).
    jobs: Vec<(usize, Option<usize>)>,
}

/// Check the idmapped mounts and make their user namespaces (in the parent, before the
/// clone). `container` is the container's new user namespace's mappings, if it has one.
/// A root runtime also builds every other bind of a container with a user namespace: as
/// runc opens bind sources before it enters the user namespace, a source the container's
/// root cannot reach (a 0700 directory on the way) still gets mounted. Marks each such
/// mount `from_parent`.
pub fn prepare(
    mounts: &mut [MountPlan],
    ns: &NsPlan,
    container: Option<&IdMaps>,
) -> Result<Option<Prepared>> {
    let root = unsafe { libc::geteuid() } == 0;
    for m in mounts.iter_mut() {
        m.from_parent =
            m.idmap.is_some() || (root && ns.user && matches!(m.kind, Kind::Bind { .. }));
    }
    if !mounts.iter().any(|m| m.from_parent) {
        return Ok(None);
    }
    if !root {
        bail!("config.json: mounts: idmapped mounts need a root runtime (the kernel asks for CAP_SYS_ADMIN over the source's filesystem); not supported rootless");
    }
    let joined = ns
        .join
        .iter()
        .find(|(_, t, _)| *t == libc::CLONE_NEWUSER)
        .map(|(fd, _, _)| fd);
    let mut p = Prepared {
        usernses: vec![],
        jobs: vec![],
    };
    let mut by_maps: HashMap<(String, String), usize> = HashMap::new();
    for (i, m) in mounts.iter().enumerate() {
        if !m.from_parent {
            continue;
        }
        let Some(idmap) = &m.idmap else {
            p.jobs.push((i, None));
            continue;
        };
        let dest = m.dest.display();
        if !matches!(m.kind, Kind::Bind { .. }) {
            bail!("config.json: mounts: {dest}: idmapped mounts must be bind mounts");
        }
        let (maps, what) = match (&idmap.maps, container) {
            (Some(maps), _) => (Some(maps), format!("mounts: {dest}: ")),
            (None, Some(maps)) => (Some(maps), "linux.".to_string()),
            (None, None) => (None, String::new()),
        };
        let n = match (maps, joined) {
            (Some(maps), _) => {
                let key = (maps.uid.clone(), maps.gid.clone());
                match by_maps.get(&key) {
                    Some(&n) => n,
                    None => {
                        p.usernses.push(helper_userns(maps, &what)?);
                        by_maps.insert(key, p.usernses.len() - 1);
                        p.usernses.len() - 1
                    }
                }
            }
            (None, Some(fd)) => {
                // Our own user namespace maps nothing: the kernel would refuse it as an
                // idmap with a puzzling EPERM.
                if crate::namespaces::is_ours(fd, "user") {
                    bail!("config.json: mounts: {dest}: idmap without uidMappings/gidMappings uses the container's user namespace, and the one it joins is the host's");
                }
                p.usernses.push(fd.try_clone().context("dup user namespace fd")?);
                p.usernses.len() - 1
            }
            (None, None) => bail!(
                "config.json: mounts: {dest}: idmap without uidMappings/gidMappings uses the container's user namespace, and the container has none (add {{\"type\": \"user\"}} to linux.namespaces, or give the mount its own mappings)"
            ),
        };
        p.jobs.push((i, Some(n)));
    }
    Ok(Some(p))
}

/// Build the trees inside the init's (`pid`'s) mount namespace, in mount order.
/// We enter it for the time it takes and come back to our own namespace, root and cwd.
pub fn build(p: &Prepared, mounts: &[MountPlan], pid: libc::pid_t) -> Result<Vec<OwnedFd>> {
    let open = |path: &std::ffi::CStr, flags| {
        crate::paths::openat(libc::AT_FDCWD, path, flags | libc::O_CLOEXEC, 0)
            .with_context(|| format!("open {}", path.to_string_lossy()))
    };
    let own_ns = open(c"/proc/self/ns/mnt", libc::O_RDONLY)?;
    let root = open(c"/", libc::O_PATH | libc::O_DIRECTORY)?;
    let cwd = open(c".", libc::O_PATH | libc::O_DIRECTORY)?;
    let theirs = open(
        &CString::new(format!("/proc/{pid}/ns/mnt"))?,
        libc::O_RDONLY,
    )?;
    crate::namespaces::join(&theirs, libc::CLONE_NEWNS, "the container's mount")?;
    let trees: Result<Vec<OwnedFd>> = p
        .jobs
        .iter()
        .map(|&(i, n)| {
            let m = &mounts[i];
            let Kind::Bind { source } = &m.kind else {
                unreachable!("prepare only keeps binds");
            };
            let idmap = n.map(|n| {
                (
                    &p.usernses[n],
                    m.idmap.as_ref().is_some_and(|i| i.recursive),
                )
            });
            bind_tree(
                source,
                m.opts.recursive_bind,
                idmap,
                &m.dest.display().to_string(),
            )
        })
        .collect();
    // Back home; without it every later step would run in the container's namespace.
    let back =
        crate::namespaces::join(&own_ns, libc::CLONE_NEWNS, "our own mount").and_then(|_| {
            let ok = unsafe {
                libc::fchdir(root.as_raw_fd()) == 0
                    && libc::chroot(c".".as_ptr()) == 0
                    && libc::fchdir(cwd.as_raw_fd()) == 0
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error()).context("restore our root and cwd")
            }
        });
    if let Err(e) = back {
        // Half in the container's namespace, nothing we do next can be trusted.
        eprintln!("strata: {e:#}");
        std::process::abort();
    }
    trees
}

/// A detached clone of `source`, idmapped through the user namespace given (and the
/// mounts below it with its `recursive` flag).
fn bind_tree(
    source: &std::path::Path,
    rbind: bool,
    idmap: Option<(&OwnedFd, bool)>,
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
    let Some((userns, recursive)) = idmap else {
        return Ok(tree);
    };
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
fn helper_userns(maps: &IdMaps, what: &str) -> Result<OwnedFd> {
    let (r, w) = crate::process::channel::pipe().context("pipe")?;
    let pid = crate::process::clone::clone_fork(libc::CLONE_NEWUSER)
        .context("clone a helper user namespace")?;
    if pid == 0 {
        // The namespace lives as long as a process is in it: until we have opened it.
        drop(w);
        let mut b = [0u8; 1];
        unsafe {
            libc::read(r.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1);
            libc::_exit(0)
        }
    }
    drop(r);
    let res = maps.write(pid, what).and_then(|_| {
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
