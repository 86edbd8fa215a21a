//! AppArmor and SELinux: whether the host has them, the labels config.json asks for
//! (`process.apparmorProfile`, `process.selinuxLabel`, `linux.mountLabel`), and writing
//! the exec labels to /proc/self/attr right before execve.
//!
//! Fail closed: a label asked for on a host without that LSM fails `create`; the
//! container never runs unconfined in its place.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Mount, Process, Spec};
use std::borrow::Cow;

/// AppArmor is loaded and enabled.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim_start().starts_with('Y'))
}

/// SELinux is enabled: selinuxfs is mounted somewhere.
pub fn selinux_enabled() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines().any(|l| {
            l.split_once(" - ")
                .is_some_and(|(_, fs)| fs.starts_with("selinuxfs "))
        })
    })
}

/// The exec labels the init writes before execve; empty when none were asked for.
#[derive(Debug, Default)]
pub struct ExecLabels {
    /// "exec <profile>".
    apparmor: Option<String>,
    selinux: Option<String>,
}

impl ExecLabels {
    /// Check the host has the LSM each requested label needs.
    pub fn plan(p: &Process) -> Result<ExecLabels> {
        let mut l = ExecLabels::default();
        if let Some(prof) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
            if !apparmor_enabled() {
                bail!("config.json: process.apparmorProfile {prof:?}: AppArmor is not enabled on this host");
            }
            l.apparmor = Some(format!("exec {prof}"));
        }
        if let Some(label) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
            if !selinux_enabled() {
                bail!("config.json: process.selinuxLabel {label:?}: SELinux is not enabled on this host");
            }
            l.selinux = Some(label.to_string());
        }
        Ok(l)
    }

    /// In the init or an exec'd process (after pivot_root or setns: the container's
    /// /proc): label the next execve.
    pub fn apply(&self) -> Result<()> {
        if self.selinux.is_none() && self.apparmor.is_none() {
            return Ok(());
        }
        let proc = private_proc().context("LSM labels: open a private procfs")?;
        if let Some(label) = &self.selinux {
            write_attr(&proc, "thread-self/attr/exec", label)
                .with_context(|| format!("process.selinuxLabel {label:?}: /proc/self/attr/exec"))?;
        }
        if let Some(cmd) = &self.apparmor {
            // The AppArmor-specific file exists with LSM stacking (Linux ≥ 5.1); the
            // generic one is the older interface.
            let r = match write_attr(&proc, "thread-self/attr/apparmor/exec", cmd) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    write_attr(&proc, "thread-self/attr/exec", cmd)
                }
                r => r,
            };
            r.with_context(|| format!("process.apparmorProfile: write {cmd:?}"))?;
        }
        Ok(())
    }
}

/// Our procfs handle: the container's /proc must be a procfs (a fake one would make the
/// label silently not apply, CVE-2019-16884), and the write goes through a private
/// instance, so no mount over the attr file can take it (CVE-2025-52881).
fn private_proc() -> std::io::Result<crate::procfs::ProcHandle> {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;
    let mounted: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open("/proc")?
        .into();
    if !crate::paths::is_procfs(mounted.as_raw_fd()) {
        return Err(std::io::Error::other(
            "/proc is not on procfs (the container's /proc was replaced)",
        ));
    }
    crate::procfs::ProcHandle::new(Some(&mounted))
}

fn write_attr(proc: &crate::procfs::ProcHandle, rel: &str, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::File::from(proc.open(rel, libc::O_WRONLY)?).write_all(value.as_bytes())
}

/// config.json's mounts, with `context="<linux.mountLabel>"` added to the data of each
/// filesystem that takes it (as runc: not binds, proc, sysfs, mqueue or cgroups).
pub fn labeled_mounts(spec: &Spec) -> Result<Cow<'_, [Mount]>> {
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    let label = spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref())
        .filter(|s| !s.is_empty());
    let Some(label) = label else {
        return Ok(Cow::Borrowed(mounts));
    };
    if !selinux_enabled() {
        bail!("config.json: linux.mountLabel {label:?}: SELinux is not enabled on this host");
    }
    let mut out = mounts.to_vec();
    for m in &mut out {
        let typ = m.typ().as_deref().unwrap_or("");
        let opts = m.options().clone().unwrap_or_default();
        let bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
        if bind || matches!(typ, "proc" | "sysfs" | "mqueue" | "cgroup" | "cgroup2") {
            continue;
        }
        let mut opts = opts;
        opts.push(format!("context=\"{label}\""));
        m.set_options(Some(opts));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn attr_writes_go_to_procfs() {
        // Opening our own attr file works through the private instance (the write itself
        // fails without an LSM, with EINVAL, not with an open or procfs error).
        let proc = super::private_proc().unwrap();
        if let Err(e) = super::write_attr(&proc, "thread-self/attr/exec", "") {
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        }
        // Nothing but procfs's own files: not through a magic link to the host's root.
        let e = super::write_attr(&proc, "thread-self/root/tmp/x", "").unwrap_err();
        assert_ne!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    }
}
