//! The container's init process: the plan built from config.json in the parent, the
//! clone that starts it, and (in [`init`]) what the child does before it execs.

pub mod attrs;
pub mod channel;
pub mod clone;
pub mod init;
pub mod join;
pub mod user;
pub mod wait;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{PosixRlimitType, Process, Spec};
use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::capabilities::CapSets;
use crate::cgroups::CgroupMount;
use crate::devices::DevicePlan;
use crate::mounts::MountPlan;
use crate::namespaces::NsPlan;

/// Everything about the user's process, resolved before clone.
pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub cwd: PathBuf,
    /// Where args[0] may be: itself if it has a '/', else each $PATH entry joined with it.
    pub candidates: Vec<CString>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub umask: u32,
    pub caps: CapSets,
    pub last_cap: u32,
    pub rlimits: Vec<(libc::c_int, u64, u64, String)>,
    pub no_new_privs: bool,
    pub oom_score_adj: Option<i32>,
    /// fds 3..3+N stay open across exec (`--preserve-fds`).
    pub preserve_fds: u32,
    /// process.terminal: stdio is a pty whose master goes to the console socket.
    pub terminal: bool,
    /// process.consoleSize as (rows, columns).
    pub console_size: Option<(u16, u16)>,
    /// linux.seccomp, compiled.
    pub seccomp: Option<crate::seccomp::Filter>,
}

/// Everything the init does, in the order it does it.
pub struct InitPlan {
    pub rootfs: PathBuf,
    /// The root as an overlay of these layers (mounted on `rootfs`), not a bind of it.
    pub overlay: Option<crate::overlay::Layers>,
    pub readonly: bool,
    pub no_pivot: bool,
    pub propagation: Option<u64>,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<DevicePlan>,
    pub ptmx: bool,
    pub masked: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub sysctl: HashMap<String, String>,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub ns: NsPlan,
    pub cgroup_mount: CgroupMount,
    pub process: ProcessPlan,
    /// Name of the new session keyring to join (None with `--no-new-keyring`).
    pub new_keyring: Option<CString>,
    pub hooks: crate::hooks::InitHooks,
    /// I/O priority, scheduler, personality, memory policy, time namespace, LSM labels.
    pub attrs: attrs::Attrs,
}

fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    use PosixRlimitType::*;
    (match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

/// One entry per variable, as runc's init (which goes through setenv) leaves them: the
/// first one's place, the last one's value.
fn dedup_env(env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    for e in env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        match out
            .iter_mut()
            .find(|o| o.split_once('=').map_or(o.as_str(), |(k, _)| k) == key)
        {
            Some(o) => o.clone_from(e),
            None => out.push(e.clone()),
        }
    }
    out
}

fn cstrings(v: &[String], what: &str) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes()).with_context(|| format!("{what}: {s:?} contains a NUL byte"))
        })
        .collect()
}

impl ProcessPlan {
    pub fn from_spec(p: &Process) -> Result<ProcessPlan> {
        let args = cstrings(p.args().as_deref().unwrap_or(&[]), "process.args")?;
        let env_s = dedup_env(p.env().as_deref().unwrap_or(&[]));
        let env = cstrings(&env_s, "process.env")?;
        let arg0 = &p.args().as_ref().context("process.args missing")?[0];
        let candidates = if arg0.contains('/') {
            vec![CString::new(arg0.as_bytes())?]
        } else {
            let path = env_s
                .iter()
                .rev()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
            path.split(':')
                .map(|d| if d.is_empty() { "." } else { d })
                .map(|d| CString::new(format!("{d}/{arg0}")))
                .collect::<Result<_, _>>()?
        };
        let mut rlimits = Vec::new();
        for r in p.rlimits().iter().flatten() {
            if r.soft() > r.hard() {
                bail!(
                    "config.json: process.rlimits: {}: soft limit {} is above hard limit {}",
                    r.typ(),
                    r.soft(),
                    r.hard()
                );
            }
            rlimits.push((
                rlimit_resource(r.typ()),
                r.soft(),
                r.hard(),
                r.typ().to_string(),
            ));
        }
        let user = p.user();
        Ok(ProcessPlan {
            args,
            env,
            cwd: p.cwd().clone(),
            candidates,
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            caps: CapSets::from_spec(p.capabilities().as_ref())
                .context("config.json: process.capabilities")?,
            last_cap: crate::capabilities::last_cap(),
            rlimits,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            oom_score_adj: p.oom_score_adj(),
            preserve_fds: 0,
            terminal: p.terminal().unwrap_or(false),
            console_size: p.console_size().map(|b| {
                (
                    b.height().min(u16::MAX as u64) as u16,
                    b.width().min(u16::MAX as u64) as u16,
                )
            }),
            seccomp: None,
        })
    }
}

/// What would change the host itself when the container shares our mount namespace.
fn refuse_without_mount_ns(linux: &oci_spec::runtime::Linux) -> Result<()> {
    let some = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if some(linux.masked_paths()) || some(linux.readonly_paths()) {
        // runc: "unable to restrict sys entries without a private MNT namespace".
        bail!("config.json: linux.maskedPaths/readonlyPaths need a mount namespace: without one (linux.namespaces has no \"mount\") they would mask the host's /proc and /sys");
    }
    if linux
        .rootfs_propagation()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        bail!("config.json: linux.rootfsPropagation needs a mount namespace: without one it would change the propagation of the host's mounts");
    }
    Ok(())
}

impl InitPlan {
    /// Parse and check everything in the parent, so the child only acts.
    pub fn build(
        spec: &Spec,
        bundle: &Path,
        rootfs: PathBuf,
        no_pivot: bool,
        ns: NsPlan,
        cgroup_mount: CgroupMount,
    ) -> Result<InitPlan> {
        let linux = spec.linux().clone().unwrap_or_default();
        let mut process =
            ProcessPlan::from_spec(spec.process().as_ref().context("process missing")?)?;
        process.seccomp = linux
            .seccomp()
            .as_ref()
            .map(crate::seccomp::compile)
            .transpose()?;
        let mounts = crate::mounts::plan(&crate::lsm::labeled_mounts(spec)?, bundle)?;
        let ptmx = mounts.iter().any(|m| m.dest == Path::new("/dev/pts"));
        let devices = crate::devices::plan(linux.devices().as_deref().unwrap_or(&[]))?;
        let propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") => None,
            Some(p) => Some(crate::mounts::options::propagation_of(p).with_context(|| {
                format!("config.json: linux.rootfsPropagation: unknown value {p:?}")
            })?),
        };
        if !ns.mount {
            refuse_without_mount_ns(&linux)?;
        }
        let sysctl = linux.sysctl().clone().unwrap_or_default();
        crate::rootfs::validate_sysctls(&sysctl, ns.ipc, ns.net, ns.uts)?;
        let hostname = spec.hostname().as_deref().filter(|h| !h.is_empty());
        let domainname = spec.domainname().as_deref().filter(|h| !h.is_empty());
        if (hostname.is_some() || domainname.is_some()) && !ns.uts {
            bail!("config.json: hostname/domainname need the container's own uts namespace (add {{\"type\": \"uts\"}} to linux.namespaces)");
        }
        let attrs = attrs::Attrs::plan(spec, &ns)?;
        Ok(InitPlan {
            rootfs,
            overlay: None,
            readonly: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            no_pivot,
            propagation,
            mounts,
            devices,
            ptmx,
            masked: linux.masked_paths().clone().unwrap_or_default(),
            readonly_paths: linux.readonly_paths().clone().unwrap_or_default(),
            sysctl,
            hostname: hostname.map(CString::new).transpose()?,
            domainname: domainname.map(CString::new).transpose()?,
            ns,
            cgroup_mount,
            process,
            new_keyring: None,
            hooks: Default::default(),
            attrs,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_keeps_first_place_last_value() {
        let v: Vec<String> = ["A=1", "B=2", "A=3", "C"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(super::dedup_env(&v), ["A=3", "B=2", "C"]);
    }
}
