//! A container's bundle config: `strata spec`'s defaults, the image config's process
//! (Entrypoint + Cmd, Env, WorkingDir, User, Labels, StopSignal) and the overlay
//! annotations naming its layer dirs and its own upper dir.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;

use super::user::{self, Identity};

/// containerd's key for an image's stop signal.
const ANN_STOP_SIGNAL: &str = "org.opencontainers.image.stopSignal";
pub const ANN_IMAGE_ID: &str = "org.strata.image.id";
pub const ANN_IMAGE_NAME: &str = "org.strata.image.name";

/// docker's default capabilities for a container: what images expect root to be able to do.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the user asked for on top of the image.
#[derive(Clone, Debug, Default)]
pub struct ProcessOpts {
    /// Replaces the image's Cmd when not empty.
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
}

/// Where the container's layers are.
pub struct Layers {
    /// Layer diff dirs, top-most first.
    pub lowers: Vec<PathBuf>,
}

/// The process args the image and the options give: Entrypoint + (CMD or Cmd).
pub fn args(image_config: &Value, cmd: &[String]) -> Result<Vec<String>> {
    let c = &image_config["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut args = strings(&c["Entrypoint"]);
    if cmd.is_empty() {
        args.extend(strings(&c["Cmd"]));
    } else {
        args.extend(cmd.iter().cloned());
    }
    if args.is_empty() {
        bail!("no command specified: the image has no Entrypoint or Cmd, give one after the image name");
    }
    Ok(args)
}

/// Turn `strata spec`'s config into this container's.
pub fn configure(
    spec: &mut Value,
    image_config: &Value,
    o: &ProcessOpts,
    layers: &Layers,
    hostname: &str,
) -> Result<()> {
    let c = &image_config["config"];
    let args = args(image_config, &o.cmd)?;
    let user_s = o
        .user
        .clone()
        .or_else(|| c["User"].as_str().map(String::from))
        .unwrap_or_default();
    let id: Identity =
        user::resolve(&user_s, &layers.lowers).with_context(|| format!("user {user_s:?}"))?;
    let env = environment(c, &o.env, id.home.as_deref(), o.tty);
    let cwd = o
        .workdir
        .clone()
        .or_else(|| {
            c["WorkingDir"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(String::from)
        })
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        bail!("working directory {cwd:?} is not an absolute path");
    }
    let caps = json!(DEFAULT_CAPS);
    let p = &mut spec["process"];
    p["terminal"] = json!(o.tty);
    p["args"] = json!(args);
    p["env"] = json!(env);
    p["cwd"] = json!(cwd);
    p["user"] = json!({"uid": id.uid, "gid": id.gid});
    if !id.additional_gids.is_empty() {
        p["user"]["additionalGids"] = json!(id.additional_gids);
    }
    p["noNewPrivileges"] = json!(false);
    for set in ["bounding", "effective", "permitted"] {
        p["capabilities"][set] = caps.clone();
    }
    if let Some(m) = p["capabilities"].as_object_mut() {
        m.remove("ambient");
        m.remove("inheritable");
    }
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    spec["hostname"] = json!(hostname);
    annotate(spec, c, layers);
    Ok(())
}

fn environment(c: &Value, extra: &[String], home: Option<&str>, tty: bool) -> Vec<String> {
    let mut env: Vec<String> = c["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or_default().to_string();
        match env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(key.as_str()))
        {
            Some(e) => *e = kv,
            None => env.push(kv),
        }
    };
    for e in extra {
        set(e.clone());
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.into());
    }
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    if let Some(h) = home.filter(|_| !env.iter().any(|e| e.starts_with("HOME="))) {
        env.push(format!("HOME={h}"));
    }
    env
}

fn annotate(spec: &mut Value, c: &Value, layers: &Layers) {
    if !spec["annotations"].is_object() {
        spec["annotations"] = json!({});
    }
    let a = spec["annotations"].as_object_mut().expect("just made");
    if let Some(labels) = c["Labels"].as_object() {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                a.insert(k.clone(), json!(v));
            }
        }
    }
    if let Some(s) = c["StopSignal"].as_str() {
        a.insert(ANN_STOP_SIGNAL.into(), json!(s));
    }
    let lower: Vec<String> = layers
        .lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    a.insert(crate::overlay::LOWERDIR.into(), json!(lower.join(":")));
    // Relative to the bundle: the container's dir is made in a temp dir and renamed.
    a.insert(crate::overlay::UPPERDIR.into(), json!("upper"));
    a.insert(crate::overlay::WORKDIR.into(), json!("work"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_and_cmd_as_docker_combines_them() {
        let img = json!({"config": {"Entrypoint": ["/bin/app"], "Cmd": ["--help"]}});
        assert_eq!(args(&img, &[]).unwrap(), ["/bin/app", "--help"]);
        assert_eq!(args(&img, &["-v".into()]).unwrap(), ["/bin/app", "-v"]);
        let e = args(&json!({"config": {}}), &[]).unwrap_err().to_string();
        assert!(e.contains("no command specified"), "{e}");
    }

    #[test]
    fn env_overrides_and_defaults() {
        let c = json!({"Env": ["A=1", "PATH=/x"]});
        let env = environment(&c, &["A=2".into(), "B=3".into()], Some("/root"), true);
        assert_eq!(env, ["A=2", "PATH=/x", "B=3", "TERM=xterm", "HOME=/root"]);
        let env = environment(&json!({}), &[], None, false);
        assert_eq!(env, [DEFAULT_PATH]);
    }
}
