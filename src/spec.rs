//! Reading, checking and generating the bundle's config.json (the OCI runtime spec).

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;
use std::fs;
use std::path::{Path, PathBuf};

/// Load `<bundle>/config.json`; a parse error names the file, line and column. Returns
/// the bytes too, so that the copy `exec` reads is exactly what was parsed.
pub fn load(bundle: &Path) -> Result<(Spec, Vec<u8>)> {
    let path = bundle.join("config.json");
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "{}: no such file (is {} an OCI bundle?)",
                path.display(),
                bundle.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let spec: Spec = serde_json::from_slice(&data).map_err(|e| {
        let field = crate::jsonpath::path_at(&data, e.line(), e.column())
            .map(|f| format!(" {f}:"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "{}:{}:{}: invalid config:{field} {}",
            path.display(),
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        )
    })?;
    Ok((spec, data))
}

// serde_json appends " at line X column Y"; we already lead with file:line:col.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map(|i| &msg[..i]).unwrap_or(msg)
}

/// The rootfs path, absolute, checked to be a directory.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .context("config.json: root: missing (root.path names the rootfs)")?;
    let p = root.path();
    if p.as_os_str().is_empty() {
        bail!("config.json: root.path is empty");
    }
    let full = if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    };
    match fs::metadata(&full) {
        Ok(m) if m.is_dir() => Ok(full),
        Ok(_) => bail!("config.json: root.path {}: not a directory", full.display()),
        Err(e) => bail!("config.json: root.path {}: {e}", full.display()),
    }
}

/// Checks the runtime needs before creating anything, each naming the field at fault.
pub fn validate(spec: &Spec) -> Result<()> {
    check_version(spec.version())?;
    let process = spec
        .process()
        .as_ref()
        .context("config.json: process: missing")?;
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => bail!("config.json: process.args: must name a program (it is empty)"),
    }
    if !process.cwd().is_absolute() {
        bail!(
            "config.json: process.cwd {:?}: must be an absolute path",
            process.cwd()
        );
    }
    if let Some(h) = spec.hooks() {
        crate::hooks::validate(h)?;
    }
    // Used only by `exec`, but a config error is create's to report.
    crate::affinity::ExecAffinity::of(process).context("config.json")?;
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            bail!(
                "config.json: mounts: destination {:?} must be absolute",
                m.destination()
            );
        }
    }
    Ok(())
}

/// The spec versions whose configs we understand: the 1.x series, which keeps backward
/// and forward compatibility within the major version.
const KNOWN_MAJOR: &str = "1";

/// `ociVersion` MUST be SemVer 2.0.0 (config.md), and a config of another major version
/// may mean what we would read differently. runc 1.1 takes any string; crun refuses
/// versions other than 1.x ("unknown version specified"), and so do we, naming the value.
fn check_version(v: &str) -> Result<()> {
    let major = semver_major(v).with_context(|| {
        format!("config.json: ociVersion {v:?}: not a SemVer 2.0.0 version (like \"1.0.2\")")
    })?;
    if major != KNOWN_MAJOR {
        bail!("config.json: ociVersion {v:?}: unsupported major version {major} (strata implements the runtime-spec 1.x)");
    }
    Ok(())
}

/// The major version of a SemVer 2.0.0 string, or None if it is not one:
/// MAJOR.MINOR.PATCH without leading zeros, then optional `-pre.release` and `+build`.
fn semver_major(v: &str) -> Option<&str> {
    let (v, build) = match v.split_once('+') {
        Some((v, b)) => (v, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let numeric = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3 || !nums.iter().all(|n| numeric(n)) {
        return None;
    }
    // A numeric pre-release identifier has no leading zeros either.
    if let Some(p) = pre {
        let ok = p
            .split('.')
            .all(|i| ident(i) && (!i.bytes().all(|b| b.is_ascii_digit()) || numeric(i)));
        if !ok {
            return None;
        }
    }
    if build.is_some_and(|b| !b.split('.').all(ident)) {
        return None;
    }
    Some(nums[0])
}

/// The default config.json `spec` writes (runc's template; `rootless` adapts it).
pub fn default_config(rootless: bool) -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut v = serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "strata",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        let uid = unsafe { libc::geteuid() };
        let gid = unsafe { libc::getegid() };
        let linux = &mut v["linux"];
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
            {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}]);
        linux.as_object_mut().unwrap().remove("resources");
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["type"] != "cgroup");
        for m in mounts.iter_mut() {
            if m["type"] == "sysfs" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["type"] == "devpts" {
                m["options"] = serde_json::json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
        }
    }
    v
}

/// `strata spec`: write the default config.json into `bundle`, refusing to overwrite.
pub fn write_default(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let text = serde_json::to_string_pretty(&default_config(rootless))?;
    fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn semver_versions() {
        for (v, major) in [
            ("1.0.2", Some("1")),
            ("1.0.2-dev", Some("1")),
            ("1.2.0-rc.1+build.5", Some("1")),
            ("10.20.30", Some("10")),
            ("0.5.0", Some("0")),
            ("1.0.0-0A.is.legal", Some("1")),
        ] {
            assert_eq!(super::semver_major(v), major, "{v}");
        }
        for v in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.0.0",
            "1.02.0",
            "v1.0.0",
            "1.0.0-",
            "1.0.0+",
            "1.0.0-01",
            "1.0.0-a..b",
            "1.0.0-a_b",
            "bogus",
            " 1.0.0",
        ] {
            assert_eq!(super::semver_major(v), None, "{v}");
        }
    }

    #[test]
    fn default_parses_as_spec() {
        for rootless in [false, true] {
            let v = super::default_config(rootless);
            let s: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
            assert_eq!(
                s.process().as_ref().unwrap().args().as_ref().unwrap()[0],
                "sh"
            );
        }
    }
}
