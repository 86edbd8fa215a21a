//! Linux namespaces from config.json: which to create at clone, which to join by path.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::os::fd::{AsRawFd, OwnedFd};

/// The namespace work split by who does it and when.
#[derive(Debug, Default)]
pub struct NsPlan {
    /// CLONE_NEW* flags passed to clone() (cgroup excluded: see `new_cgroup`).
    pub clone_flags: libc::c_int,
    /// The pid namespace to join: the parent setns()es before clone, so the init is born in it.
    pub join_pid: Option<OwnedFd>,
    /// Other namespaces the init joins with setns() right after it starts.
    pub join: Vec<(OwnedFd, libc::c_int, &'static str)>,
    /// Unshared by the init after the parent has put it in its cgroup, so that the
    /// container's cgroup becomes the namespace root.
    pub new_cgroup: bool,
    /// The container has its own uts/net/ipc namespace (new, or joined by path), so
    /// hostname and namespaced sysctls are its own to set.
    pub uts: bool,
    pub net: bool,
    pub ipc: bool,
    /// A new pid namespace: every process dies with the init.
    pub new_pid: bool,
    /// A mount namespace of its own (new or joined). Without one the container runs in
    /// ours, as the spec and runc have it: its mounts are made in the runtime's
    /// namespace, under a bind of the rootfs that delete (or a failed create) detaches.
    pub mount: bool,
    /// A new time namespace: clone() cannot take CLONE_NEWTIME, so the init unshares it
    /// (see `process::attrs`) and its program enters it at execve.
    pub new_time: bool,
    /// The init runs in a user namespace (new, or joined): it becomes that namespace's
    /// root once its id maps exist, and device nodes are bind-mounted, not made.
    pub user: bool,
    /// A new user namespace, whose id maps the parent writes after clone.
    pub new_user: bool,
    /// New namespaces the init unshares itself, after joining a user namespace by path,
    /// so that they belong to that namespace and the init has rights over them (a new pid
    /// namespace then takes one more fork: see `process::init`). Not in `clone_flags`.
    pub deferred: libc::c_int,
    /// A new user namespace that the init unshares itself, after joining namespaces by
    /// path: those belong to the host's user namespace, which a process born in a new
    /// one has no rights in (runc orders it the same way). The parent writes the id maps
    /// when the init says it is there; the other new namespaces are `deferred`.
    pub unshare_user: bool,
}

/// The namespace types strata creates or joins: the one list `plan` checks and
/// `strata features` reports.
pub const SUPPORTED: &[LinuxNamespaceType] = &[
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::User,
];

fn flag(t: LinuxNamespaceType) -> (libc::c_int, &'static str) {
    match t {
        LinuxNamespaceType::Pid => (libc::CLONE_NEWPID, "pid"),
        LinuxNamespaceType::Network => (libc::CLONE_NEWNET, "network"),
        LinuxNamespaceType::Mount => (libc::CLONE_NEWNS, "mount"),
        LinuxNamespaceType::Ipc => (libc::CLONE_NEWIPC, "ipc"),
        LinuxNamespaceType::Uts => (libc::CLONE_NEWUTS, "uts"),
        LinuxNamespaceType::User => (libc::CLONE_NEWUSER, "user"),
        LinuxNamespaceType::Cgroup => (libc::CLONE_NEWCGROUP, "cgroup"),
        LinuxNamespaceType::Time => (libc::CLONE_NEWTIME, "time"),
    }
}

/// Build the plan; namespace paths are opened now so a bad path fails before any clone.
pub fn plan(nss: &[LinuxNamespace]) -> Result<NsPlan> {
    let mut p = NsPlan::default();
    let mut seen = 0;
    for ns in nss {
        let (f, name) = flag(ns.typ());
        if seen & f != 0 {
            bail!("config.json: linux.namespaces: {name} is listed twice");
        }
        seen |= f;
        p.uts |= f == libc::CLONE_NEWUTS;
        p.net |= f == libc::CLONE_NEWNET;
        p.ipc |= f == libc::CLONE_NEWIPC;
        p.user |= f == libc::CLONE_NEWUSER;
        if !SUPPORTED.contains(&ns.typ()) {
            bail!("config.json: linux.namespaces: {name} namespaces are not supported yet");
        }
        match ns.path() {
            Some(path) if !path.as_os_str().is_empty() => {
                let fd: OwnedFd = std::fs::File::open(path)
                    .with_context(|| {
                        format!(
                            "config.json: linux.namespaces: {name} path {}",
                            path.display()
                        )
                    })?
                    .into();
                // Check the file really is a namespace of that type before anything else runs.
                if unsafe {
                    libc::ioctl(fd.as_raw_fd(), 0xb703 /* NS_GET_NSTYPE */)
                } != f as libc::c_int
                {
                    bail!(
                        "config.json: linux.namespaces: {} is not a {name} namespace",
                        path.display()
                    );
                }
                // "Joining" our own (the host's) namespace gives the container nothing of
                // its own: hostname and sysctls would then change the host.
                if is_ours(&fd, name) {
                    p.uts &= f != libc::CLONE_NEWUTS;
                    p.net &= f != libc::CLONE_NEWNET;
                    p.ipc &= f != libc::CLONE_NEWIPC;
                }
                if f == libc::CLONE_NEWPID {
                    p.join_pid = Some(fd);
                } else if f == libc::CLONE_NEWUSER {
                    // First: it grants the rights to join (and mount in) the others.
                    p.join.insert(0, (fd, f, name));
                } else {
                    p.join.push((fd, f, name));
                }
            }
            _ => {
                match f {
                    libc::CLONE_NEWCGROUP => p.new_cgroup = true,
                    libc::CLONE_NEWTIME => p.new_time = true,
                    _ => p.clone_flags |= f,
                }
                p.new_pid |= f == libc::CLONE_NEWPID;
                p.new_user |= f == libc::CLONE_NEWUSER;
            }
        }
    }
    p.mount = seen & libc::CLONE_NEWNS != 0;
    if p.user && !p.new_user {
        p.deferred = std::mem::take(&mut p.clone_flags);
    } else if p.new_user && !p.join.is_empty() {
        p.unshare_user = true;
        p.deferred = std::mem::take(&mut p.clone_flags) & !libc::CLONE_NEWUSER;
    }
    Ok(p)
}

/// Whether `fd` is the namespace (of type `name`) we are in ourselves.
pub fn is_ours(fd: &OwnedFd, name: &str) -> bool {
    let file = match name {
        "network" => "net",
        "mount" => "mnt",
        other => other,
    };
    let Ok(own) = std::fs::metadata(format!("/proc/self/ns/{file}")) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    crate::paths::fstat(fd.as_raw_fd())
        .is_ok_and(|st| st.st_dev == own.dev() && st.st_ino == own.ino())
}

/// setns() wrapper with the namespace named in the error.
pub fn join(fd: &OwnedFd, nstype: libc::c_int, name: &str) -> Result<()> {
    if unsafe { libc::setns(fd.as_raw_fd(), nstype) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("join {name} namespace"));
    }
    Ok(())
}

/// `linux.uidMappings`/`gidMappings` as the kernel's map files want them.
#[derive(Debug, Default, Clone)]
pub struct IdMaps {
    pub uid: String,
    pub gid: String,
}

impl IdMaps {
    /// Check the mappings against the namespaces: a new user namespace needs both maps,
    /// and maps without one mean nothing.
    pub fn plan(linux: &oci_spec::runtime::Linux, ns: &NsPlan) -> Result<Option<IdMaps>> {
        let fmt = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
            m.iter()
                .flatten()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect()
        };
        let (uid, gid) = (fmt(linux.uid_mappings()), fmt(linux.gid_mappings()));
        if !ns.new_user {
            if !uid.is_empty() || !gid.is_empty() {
                bail!("config.json: linux.uidMappings/gidMappings need a new user namespace (add {{\"type\": \"user\"}} to linux.namespaces)");
            }
            return Ok(None);
        }
        if uid.is_empty() || gid.is_empty() {
            bail!("config.json: linux.namespaces: a new user namespace needs both linux.uidMappings and linux.gidMappings");
        }
        for m in linux
            .uid_mappings()
            .iter()
            .flatten()
            .chain(linux.gid_mappings().iter().flatten())
        {
            if m.size() == 0 {
                bail!("config.json: linux.uidMappings/gidMappings: containerID {} hostID {}: size must be above 0", m.container_id(), m.host_id());
            }
        }
        Ok(Some(IdMaps { uid, gid }))
    }

    /// Write the maps of `pid`'s new user namespace (from the parent, as the kernel asks).
    /// `what` leads the field's name in errors ("linux.", "mounts: /data: ").
    pub fn write(&self, pid: libc::pid_t, what: &str) -> Result<()> {
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            // Unprivileged: gid_map is only writable once setgroups is denied.
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .context("deny setgroups in the user namespace")?;
        }
        for (file, field, map) in [
            ("uid_map", "uidMappings", &self.uid),
            ("gid_map", "gidMappings", &self.gid),
        ] {
            std::fs::write(format!("/proc/{pid}/{file}"), map).with_context(|| {
                format!(
                    "config.json: {what}{field}: write {:?} to {file}",
                    map.trim()
                )
            })?;
        }
        Ok(())
    }
}
