//! Cgroups: find the host's hierarchies (v1, v2 or hybrid), place a container in
//! `linux.cgroupsPath`, answer "is it frozen / which pids", remove what we created.
//! Version-specific details live in [`v1`] and [`v2`].

pub mod devices;
pub mod parents;
pub mod resources;
pub mod stats;
pub mod v1;
pub mod v2;

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::mounts::fdmount::{c, clone_tree, mount_at, move_onto, setattr};
use crate::mounts::options::MOUNT_ATTR_RDONLY;

/// The host's cgroup layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    V1,
    Hybrid,
    Unified,
}

/// One mounted hierarchy and where this process sits in it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// The cgroup path the mount's root shows (usually "/").
    pub mount_root: PathBuf,
    /// v1 controllers ("cpu", "name=systemd"); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
    /// This process's cgroup in that hierarchy.
    pub own: PathBuf,
}

impl Hierarchy {
    /// Name of the subdirectory under /sys/fs/cgroup ("memory", "unified", "systemd").
    pub fn dir_name(&self) -> String {
        self.mountpoint
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
    fn join(&self, cgroup: &Path) -> PathBuf {
        let rel = cgroup.strip_prefix(&self.mount_root).unwrap_or(cgroup);
        let rel: PathBuf = rel
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        self.mountpoint.join(rel)
    }
}

/// All cgroup hierarchies mounted on the host, with this process's place in each.
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    let own = fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    let mi = fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mi.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let (fstype, superopts) = (post[0], post[2]);
        let v2 = fstype == "cgroup2";
        if fstype != "cgroup" && !v2 {
            continue;
        }
        let mountpoint = PathBuf::from(unescape(pre[4]));
        if out.iter().any(|h| h.mountpoint == mountpoint) {
            continue;
        }
        let controllers: Vec<String> = if v2 {
            vec![]
        } else {
            superopts
                .split(',')
                .filter(|o| {
                    !matches!(
                        *o,
                        "rw" | "ro" | "clone_children" | "noprefix" | "xattr" | "cpuset_v2_mode"
                    ) && !o.starts_with("release_agent=")
                })
                .map(String::from)
                .collect()
        };
        let own_path = own.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_id, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let matches = if v2 {
                ctrls.is_empty()
            } else {
                let set: Vec<&str> = ctrls.split(',').collect();
                !controllers.is_empty() && controllers.iter().all(|c| set.contains(&c.as_str()))
            };
            matches.then(|| PathBuf::from(path))
        });
        let Some(own_path) = own_path else { continue };
        // The same hierarchy mounted again later (a container run in the runtime's own
        // mount namespace mounts cgroups inside its rootfs): the first, oldest mount is
        // the host's; writing through the other could hit a read-only or vanishing copy.
        if out
            .iter()
            .any(|h| h.v2 == v2 && h.controllers == controllers)
        {
            continue;
        }
        out.push(Hierarchy {
            mountpoint,
            mount_root: PathBuf::from(unescape(pre[3])),
            controllers,
            v2,
            own: own_path,
        });
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The host layout, from the hierarchies found.
pub fn layout(hs: &[Hierarchy]) -> Layout {
    let v1 = hs.iter().any(|h| !h.v2);
    let v2 = hs.iter().any(|h| h.v2);
    match (v1, v2) {
        (true, true) => Layout::Hybrid,
        (false, true) => Layout::Unified,
        _ => Layout::V1,
    }
}

/// Where a container lives on every hierarchy, and which dirs it made.
#[derive(Debug, Default)]
pub struct Placement {
    pub paths: Vec<PathBuf>,
    pub created: Vec<PathBuf>,
    /// The container's cgroup already had processes when it was planned.
    pub shared: bool,
}

/// The cgroup path a container gets: `cgroupsPath` absolute as is, relative (or absent,
/// meaning the ID) under our own cgroup, like runc's cgroupfs driver.
fn container_cgroup(h: &Hierarchy, cgroups_path: Option<&Path>, id: &str) -> PathBuf {
    match cgroups_path {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) if !p.as_os_str().is_empty() => h.own.join(p),
        _ => h.own.join(id),
    }
}

/// Work out where the container lives on every hierarchy and which directories it
/// will create, refusing bad paths; nothing is created yet (see [`make`]).
pub fn plan(
    hs: &[Hierarchy],
    cgroups_path: Option<&Path>,
    id: &str,
    systemd: bool,
) -> Result<Placement> {
    if systemd {
        bail!("--systemd-cgroup: the systemd cgroup driver is not supported (no systemd on this host); use the cgroupfs driver");
    }
    if let Some(p) = cgroups_path {
        if p.to_string_lossy().matches(':').count() == 2 {
            bail!("linux.cgroupsPath {:?} is in the systemd slice:prefix:name form, which needs --systemd-cgroup", p);
        }
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            bail!("linux.cgroupsPath {:?}: must not contain \"..\"", p);
        }
    }
    let mut pl = Placement::default();
    for h in hs {
        let dir = h.join(&container_cgroup(h, cgroups_path, id));
        // Never adopt a hierarchy root: limits, device rules, `kill --all` and delete would
        // then hit every process of the host.
        if dir == h.mountpoint {
            bail!(
                "linux.cgroupsPath {:?}: is the root of {}",
                cgroups_path.unwrap_or(Path::new(id)),
                h.mountpoint.display()
            );
        }
        let mut missing = Vec::new();
        let mut p = dir.clone();
        while !p.exists() && p != h.mountpoint {
            missing.push(p.clone());
            if !p.pop() {
                break;
            }
        }
        // `p` is now the deepest existing dir: the container's own, or the ancestor a new
        // one would inherit a frozen state from. The init would hang in the freezer for
        // ever (runc: "container's cgroup unexpectedly frozen").
        if p != h.mountpoint && frozen_or_freezing(&p) {
            bail!(
                "linux.cgroupsPath {:?}: {} is frozen (thaw it, or resume the container that owns it, first)",
                cgroups_path.unwrap_or(Path::new(id)),
                p.display()
            );
        }
        // runc 1.1 warns and goes on: users share cgroups on purpose. `delete` then
        // never sweeps that cgroup's other processes (see ContainerState::shared_cgroup).
        let n = match missing.is_empty() {
            true => fs::read_to_string(dir.join("cgroup.procs"))
                .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
                .unwrap_or(0),
            false => 0, // not made yet: nobody in it
        };
        if n > 0 && !pl.shared {
            pl.shared = true;
            crate::logging::warn(&format!(
                "linux.cgroupsPath {:?}: {} is not empty: {n} process(es) found; the container shares it",
                cgroups_path.unwrap_or(Path::new(id)),
                dir.display()
            ));
        }
        pl.created.extend(missing.into_iter().rev());
        pl.paths.push(dir);
    }
    Ok(pl)
}

/// Rootless without a delegated cgroup tree: run without cgroups of our own (as runc
/// does) unless the config asks for limits, which then cannot be kept.
pub fn rootless(pl: Placement, linux: &oci_spec::runtime::Linux) -> Result<Placement> {
    let writable = |d: &Path| {
        let c = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).unwrap_or_default();
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    };
    let blocked = pl
        .paths
        .iter()
        .find(|p| !writable(p.parent().unwrap_or(p)) && !writable(p));
    let Some(dir) = blocked else {
        return Ok(pl);
    };
    let limits = linux.resources().as_ref().is_some_and(|r| {
        let mut r = r.clone();
        // A device list is always sent, and the container's own user namespace keeps
        // devices out anyway (nodes are bind-mounted from the host).
        r.set_devices(None);
        serde_json::to_value(&r).is_ok_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    });
    if limits {
        bail!(
            "rootless: linux.resources asks for limits, but {} is not writable by this user (delegate a cgroup to it, or drop the limits)",
            dir.parent().unwrap_or(dir).display()
        );
    }
    tracing::debug!(dir = %dir.display(), "rootless: no writable cgroup, running without one");
    Ok(Placement::default())
}

/// Create the container's directories and any missing parents (v1 cpusets get their
/// cpus/mems), under the root's lock so a concurrent delete in this root cannot remove a
/// parent in between. Parents made here are noted for [`remove`]. Returns every dir made, so a
/// caller undoing an error removes only its own.
pub fn make(placement: &Placement, root: &Path) -> Result<Vec<PathBuf>> {
    let mut lock = parents::lock(root)?;
    let mut made = Vec::new();
    for leaf in &placement.paths {
        if let Err(e) = make_chain(leaf, &mut made) {
            remove_made(&made);
            return Err(e);
        }
        if leaf.join("cpuset.cpus").exists() && !resources::is_v2(leaf) {
            if let Err(e) = v1::init_cpuset(leaf) {
                remove_made(&made);
                return Err(e);
            }
        }
    }
    lock.add(
        made.iter()
            .filter(|d| !placement.paths.contains(d))
            .cloned(),
    );
    lock.save();
    Ok(made)
}

/// mkdir `leaf` and its missing parents. Our root's lock keeps our own deletes out, but
/// another root (or runc) may remove a shared parent under us: then look again.
fn make_chain(leaf: &Path, made: &mut Vec<PathBuf>) -> Result<()> {
    // Usually only the leaf is missing: one mkdir, no lookups first.
    match fs::create_dir(leaf) {
        Ok(()) => {
            made.push(leaf.to_path_buf());
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(_) => {}
    }
    for attempt in 0.. {
        let mut chain = Vec::new();
        let mut p = leaf.to_path_buf();
        while !p.exists() {
            chain.push(p.clone());
            if !p.pop() {
                break;
            }
        }
        let mut vanished = false;
        for d in chain.into_iter().rev() {
            match fs::create_dir(&d) {
                Ok(()) => made.push(d),
                // Another root's create made it between our look and now.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 5 => {
                    vanished = true;
                    break;
                }
                Err(e) => return Err(e).with_context(|| format!("create cgroup {}", d.display())),
            }
        }
        if !vanished {
            break;
        }
    }
    Ok(())
}

fn remove_made(made: &[PathBuf]) {
    for d in made.iter().rev() {
        let _ = fs::remove_dir(d);
    }
}

/// The device allow-list, composed as runc does: config.json's rules, then an allow for
/// each `linux.devices` node, then the default nodes; v1 files or a v2 eBPF program.
pub fn apply_device_rules(paths: &[PathBuf], linux: &oci_spec::runtime::Linux) -> Result<()> {
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};
    let mut rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    for d in linux.devices().iter().flatten() {
        let typ = match d.typ() {
            LinuxDeviceType::B => LinuxDeviceType::B,
            LinuxDeviceType::P => continue, // fifos need no device rule
            _ => LinuxDeviceType::C,
        };
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(typ)
                .major(d.major())
                .minor(d.minor())
                .access("rwm")
                .build()?,
        );
    }
    rules.extend(devices::default_rules());
    if let Some(d) = paths.iter().find(|p| p.join("devices.allow").exists()) {
        return devices::apply_v1(d, &rules);
    }
    if let Some(d) = paths.iter().find(|p| resources::is_v2(p)) {
        return devices::apply_v2(d, &rules);
    }
    Ok(())
}

/// Place the init in the container's cgroups: on cgroup2 by writing its pid into
/// cgroup.procs here; on each v1 hierarchy by handing back its `tasks` file, opened for
/// writing, for the init to write "0" into itself. The kernel moves a task that writes 0
/// into `tasks` (just itself, which is the whole init: a forked child has one thread)
/// without the global threadgroup lock, whose writer must first wait for an RCU grace
/// period whenever no other migration ran in the last one: 5-15 ms on a quiet host,
/// paid by about half of back-to-back `run`s here, while the init waited for us.
/// Opened by us, the file keeps our credentials for the kernel's permission check, so
/// the init may already be in its user namespace. A v1 hierarchy whose `tasks` we
/// cannot open gets the pid written as before. At most [`crate::fdpass::MAX_FDS`] files.
pub fn place(paths: &[PathBuf], pid: i32) -> Result<Vec<OwnedFd>> {
    let mut tasks = Vec::new();
    for p in paths {
        // cgroup2 has no `tasks` file.
        if let Ok(f) = fs::OpenOptions::new().write(true).open(p.join("tasks")) {
            tasks.push(f.into());
            continue;
        }
        add_pid(std::slice::from_ref(p), pid)?;
    }
    Ok(tasks)
}

/// The init's side of [`place`]: write "0" into each `tasks` file it was handed.
pub fn join_self(tasks: Vec<OwnedFd>) -> Result<()> {
    for f in tasks {
        let mut f = fs::File::from(f);
        std::io::Write::write_all(&mut f, b"0").with_context(|| {
            let at = fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()));
            let at = at.map_or_else(|_| "tasks".into(), |p| p.display().to_string());
            format!("join cgroup {at}")
        })?;
    }
    Ok(())
}

/// Move `pid` into the container's cgroups.
pub fn add_pid(paths: &[PathBuf], pid: i32) -> Result<()> {
    for p in paths {
        let f = p.join("cgroup.procs");
        fs::write(&f, pid.to_string())
            .with_context(|| format!("add pid {pid} to {}", f.display()))?;
    }
    Ok(())
}

/// Remove the container's own dirs that it created (`created` ∩ `paths`), retrying
/// while the kernel still counts the just-exited tasks; then the noted parents that
/// are now empty, whoever made them.
pub fn remove(created: &[PathBuf], paths: &[PathBuf], root: &Path) {
    for d in created.iter().rev().filter(|d| paths.contains(d)) {
        for i in 0..200 {
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                // Sub-cgroups made inside the container (its cgroup namespace) hold it.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && has_subdirs(d) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && i < 199 => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => {
                    tracing::warn!("remove cgroup {}: {e}", d.display());
                    break;
                }
            }
        }
    }
    if !parents::any(root) {
        return; // nothing noted: skip the root's lock
    }
    match parents::lock(root) {
        Ok(mut l) => {
            paths.iter().for_each(|p| l.prune(p));
            l.save();
        }
        Err(e) => tracing::warn!("{e:#}"),
    }
}

fn has_subdirs(d: &Path) -> bool {
    fs::read_dir(d).is_ok_and(|mut it| it.any(|e| e.is_ok_and(|e| e.path().is_dir())))
}

/// Pids in the container's cgroup: the union over hierarchies, sorted.
pub fn pids(paths: &[PathBuf]) -> Vec<i32> {
    let mut all: Vec<i32> = paths
        .iter()
        .filter_map(|p| fs::read_to_string(p.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Freeze (pause) or thaw (resume) the container: the v1 freezer where there is one
/// (v1 and hybrid hosts), else cgroup.freeze on v2.
pub fn freeze(paths: &[PathBuf], frozen: bool) -> Result<()> {
    if let Some(d) = paths.iter().find(|p| p.join("freezer.state").exists()) {
        return v1::freeze(d, frozen);
    }
    if let Some(d) = paths.iter().find(|p| p.join("cgroup.freeze").exists()) {
        return v2::freeze(d, frozen);
    }
    bail!("this host has no cgroup freezer (neither v1 freezer nor cgroup v2)")
}

/// Is `dir` frozen or freezing, by its own state or an ancestor's (v1 `freezer.state`
/// shows the inherited state; v2 `cgroup.events` does, `cgroup.freeze` only its own)?
fn frozen_or_freezing(dir: &Path) -> bool {
    v1::is_frozen(dir)
        || v2::is_frozen(dir)
        || fs::read_to_string(dir.join("cgroup.events"))
            .is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"))
}

/// Is the container frozen (v1 freezer or v2 cgroup.freeze)?
pub fn is_frozen(paths: &[PathBuf]) -> bool {
    paths.iter().any(|p| v1::is_frozen(p) || v2::is_frozen(p))
}

/// What the init needs to mount a `cgroup` filesystem inside the container.
#[derive(Debug, Default)]
pub struct CgroupMount {
    /// (subdir, v1 controllers joined by ',' or None for cgroup2, host dir of the container cgroup)
    pub entries: Vec<(String, Option<String>, PathBuf)>,
    pub unified_only: bool,
    pub cgroupns: bool,
}

impl CgroupMount {
    pub fn new(hs: &[Hierarchy], placement: &Placement, cgroupns: bool) -> CgroupMount {
        let entries = hs
            .iter()
            .zip(&placement.paths)
            .map(|(h, p)| {
                (
                    h.dir_name(),
                    (!h.v2).then(|| h.controllers.join(",")),
                    p.clone(),
                )
            })
            .collect();
        CgroupMount {
            entries,
            unified_only: layout(hs) == Layout::Unified,
            cgroupns,
        }
    }

    /// Mount the container's view of its cgroups at `target`. With a cgroup namespace the
    /// mounts are fresh (showing only the container's subtree); without one, the
    /// container's own cgroup dirs are bind-mounted. `ro` applies to every submount
    /// (runc 1.1.5 and youki 0.7 leave the v1 submounts writable; we do not).
    pub fn mount(&self, dest: &Path, target: OwnedFd, flags: u64) -> Result<()> {
        let ro = flags & libc::MS_RDONLY != 0;
        let fl = flags & !(libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC);
        if self.unified_only {
            let (_, _, host) = self.entries.first().context("no cgroup2 hierarchy")?;
            return self.mount_one(target, None, host, fl, ro);
        }
        // Everything below happens through the tmpfs's own fd: no path is resolved again
        // once it is attached, so nothing can be redirected (CVE-2021-30465 class).
        let (attrs, _) = crate::mounts::options::attrs_of_flags(fl);
        let tmpfs = crate::mounts::fdmount::new_fs(c"tmpfs", &[(c"mode", c"755")], attrs)
            .context("create tmpfs for cgroup hierarchies")?;
        move_onto(tmpfs.as_raw_fd(), target.as_raw_fd())
            .context("mount tmpfs for cgroup hierarchies")?;
        for (name, ctrls, host) in &self.entries {
            let sub = dest.join(name);
            let n = c(name);
            if unsafe { libc::mkdirat(tmpfs.as_raw_fd(), n.as_ptr(), 0o755) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("create {}", sub.display()));
            }
            let fd = crate::paths::openat(
                tmpfs.as_raw_fd(),
                &n,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            self.mount_one(fd, ctrls.as_deref(), host, fl, ro)
                .with_context(|| format!("mount {}", sub.display()))?;
            // "cpu,cpuacct" gets "cpu" and "cpuacct" links, as on the host.
            if name.contains(',') {
                for part in name.split(',') {
                    let l = c(part);
                    unsafe { libc::symlinkat(n.as_ptr(), tmpfs.as_raw_fd(), l.as_ptr()) };
                }
            }
        }
        if ro {
            setattr(tmpfs.as_raw_fd(), MOUNT_ATTR_RDONLY, 0, false)
                .context("make cgroup tmpfs read-only")?;
        }
        Ok(())
    }

    fn mount_one(
        &self,
        target: OwnedFd,
        ctrls: Option<&str>,
        host: &Path,
        fl: u64,
        ro: bool,
    ) -> Result<()> {
        let rdonly = if ro { libc::MS_RDONLY } else { 0 };
        if self.cgroupns {
            let (fstype, data) = match ctrls {
                Some(c) => ("cgroup", Some(crate::mounts::fdmount::c(c))),
                None => ("cgroup2", None),
            };
            mount_at(
                Some(&c(fstype)),
                target.as_raw_fd(),
                Some(&c(fstype)),
                fl | rdonly,
                data.as_deref(),
            )?;
        } else {
            let src = crate::paths::openat(
                libc::AT_FDCWD,
                &CString::new(host.to_string_lossy().as_bytes())?,
                libc::O_PATH,
                0,
            )?;
            let tree = clone_tree(src.as_raw_fd(), false)?;
            let (set, _) = crate::mounts::options::attrs_of_flags(fl | rdonly);
            setattr(tree.as_raw_fd(), set, 0, false)?;
            move_onto(tree.as_raw_fd(), target.as_raw_fd())?;
        }
        Ok(())
    }
}
