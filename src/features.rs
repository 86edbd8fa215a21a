//! `strata features`: what this runtime implements, as the runtime-spec's features.md
//! document (the JSON containerd and CRI-O read to decide what they may ask for).

use serde_json::{json, Value};

/// The oldest and newest runtime-spec versions strata accepts.
pub const OCI_VERSION_MIN: &str = "1.0.0";
pub const OCI_VERSION_MAX: &str = "1.2.0";

/// The features document. Host-dependent entries (AppArmor, SELinux, RDT) are probed now.
pub fn features() -> Value {
    let namespaces: Vec<Value> = crate::namespaces::SUPPORTED
        .iter()
        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
        .collect();
    let mut caps: Vec<caps::Capability> = caps::all().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": crate::mounts::options::known(),
        "linux": {
            "namespaces": namespaces,
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false,
                       "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",
                    "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"],
                "operators": ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                    "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
                    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
                    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
                    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
                    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
                    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
                    "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K"],
                "knownFlags": SECCOMP_FLAGS,
                "supportedFlags": SECCOMP_FLAGS,
            },
            "apparmor": {"enabled": crate::lsm::apparmor_enabled()},
            "selinux": {"enabled": crate::lsm::selinux_enabled()},
            "intelRdt": {"enabled": crate::resctrl::supported()},
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE",
                    "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED", "MPOL_PREFERRED_MANY",
                    "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES",
                    "MPOL_F_STATIC_NODES"],
            },
            "mountExtensions": {"idmap": {"enabled": crate::mounts::idmap::supported()}},
        },
        "annotations": annotations(),
    })
}

/// Our version, and the annotations a config.json may use (key → what it does).
fn annotations() -> Value {
    let mut a = serde_json::Map::new();
    a.insert(
        "io.github.strata.version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    for (k, v) in crate::overlay::ANNOTATIONS {
        a.insert(k.into(), v.into());
    }
    Value::Object(a)
}

const SECCOMP_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

#[cfg(test)]
mod tests {
    #[test]
    fn is_a_features_document() {
        let v = super::features();
        let f: oci_spec::runtime::Features = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(f.oci_version_min(), "1.0.0");
        let ns = &v["linux"]["namespaces"];
        assert!(ns.as_array().unwrap().contains(&"time".into()), "{ns}");
        assert!(ns.as_array().unwrap().contains(&"user".into()), "{ns}");
        for k in ["lowerdir", "upperdir", "workdir"] {
            let k = format!("org.strata.overlay.{k}");
            assert!(v["annotations"][&k].is_string(), "{k} missing");
        }
    }
}
