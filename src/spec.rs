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
