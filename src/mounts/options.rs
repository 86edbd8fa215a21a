//! config.json mount options → mount(2) flags, propagation, recursive attrs and fs data.

/// A mount's options, split the way the kernel wants them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MountOptions {
    /// MS_* flags for mount(2) (without propagation).
    pub flags: u64,
    /// Propagation changes applied after the mount, in order (MS_PRIVATE|MS_REC, ...).
    pub propagation: Vec<u64>,
    /// MOUNT_ATTR_* to set / clear recursively ("rro", "rnosuid", ...).
    pub rec_set: u64,
    pub rec_clr: u64,
    /// Filesystem data ("mode=755,size=65536k").
    pub data: String,
    pub bind: bool,
    pub recursive_bind: bool,
    /// `idmap` (Some(false)) or `ridmap` (Some(true)).
    pub idmap: Option<bool>,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME: u64 = 0x70;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

/// Options that set or clear per-mount MS_* flags: (name, set, clear).
const FLAG_OPTIONS: &[(&str, u64, u64)] = {
    use libc::*;
    &[
        ("defaults", 0, 0),
        ("ro", MS_RDONLY, 0),
        ("rw", 0, MS_RDONLY),
        ("suid", 0, MS_NOSUID),
        ("nosuid", MS_NOSUID, 0),
        ("dev", 0, MS_NODEV),
        ("nodev", MS_NODEV, 0),
        ("exec", 0, MS_NOEXEC),
        ("noexec", MS_NOEXEC, 0),
        ("sync", MS_SYNCHRONOUS, 0),
        ("async", 0, MS_SYNCHRONOUS),
        ("dirsync", MS_DIRSYNC, 0),
        ("remount", MS_REMOUNT, 0),
        ("mand", MS_MANDLOCK, 0),
        ("nomand", 0, MS_MANDLOCK),
        ("atime", 0, MS_NOATIME),
        ("noatime", MS_NOATIME, 0),
        ("diratime", 0, MS_NODIRATIME),
        ("nodiratime", MS_NODIRATIME, 0),
        ("relatime", MS_RELATIME, 0),
        ("norelatime", 0, MS_RELATIME),
        ("strictatime", MS_STRICTATIME, 0),
        ("nostrictatime", 0, MS_STRICTATIME),
        ("lazytime", MS_LAZYTIME, 0),
        ("nolazytime", 0, MS_LAZYTIME),
        ("iversion", MS_I_VERSION, 0),
        ("noiversion", 0, MS_I_VERSION),
        ("silent", MS_SILENT, 0),
        ("loud", 0, MS_SILENT),
        ("nosymfollow", MS_NOSYMFOLLOW, 0),
        ("symfollow", 0, MS_NOSYMFOLLOW),
        ("bind", MS_BIND, 0),
        ("rbind", MS_BIND | MS_REC, 0),
    ]
};

/// Propagation options: (name, MS_* propagation flags).
const PROPAGATION_OPTIONS: &[(&str, u64)] = {
    use libc::*;
    &[
        ("private", MS_PRIVATE),
        ("rprivate", MS_PRIVATE | MS_REC),
        ("shared", MS_SHARED),
        ("rshared", MS_SHARED | MS_REC),
        ("slave", MS_SLAVE),
        ("rslave", MS_SLAVE | MS_REC),
        ("unbindable", MS_UNBINDABLE),
        ("runbindable", MS_UNBINDABLE | MS_REC),
    ]
};

/// Recursive attribute options: (name, MOUNT_ATTR_*, set or clear).
const REC_ATTR_OPTIONS: &[(&str, u64, bool)] = &[
    ("rro", MOUNT_ATTR_RDONLY, true),
    ("rrw", MOUNT_ATTR_RDONLY, false),
    ("rnosuid", MOUNT_ATTR_NOSUID, true),
    ("rsuid", MOUNT_ATTR_NOSUID, false),
    ("rnodev", MOUNT_ATTR_NODEV, true),
    ("rdev", MOUNT_ATTR_NODEV, false),
    ("rnoexec", MOUNT_ATTR_NOEXEC, true),
    ("rexec", MOUNT_ATTR_NOEXEC, false),
    ("rnodiratime", MOUNT_ATTR_NODIRATIME, true),
    ("rdiratime", MOUNT_ATTR_NODIRATIME, false),
    ("rnosymfollow", MOUNT_ATTR_NOSYMFOLLOW, true),
    ("rsymfollow", MOUNT_ATTR_NOSYMFOLLOW, false),
];

/// Recursive atime options: (name, MOUNT_ATTR_* atime mode).
const REC_ATIME_OPTIONS: &[(&str, u64)] = &[
    ("rnoatime", MOUNT_ATTR_NOATIME),
    ("rstrictatime", MOUNT_ATTR_STRICTATIME),
    ("rrelatime", 0),
    ("ratime", 0),
];

/// runc-specific extensions we accept and ignore.
const IGNORED_OPTIONS: &[&str] = &["tmpcopyup"];

/// Every option word `parse` understands (anything else is filesystem data), in table
/// order; `strata features` reports this list.
pub fn known() -> Vec<&'static str> {
    FLAG_OPTIONS
        .iter()
        .map(|o| o.0)
        .chain(PROPAGATION_OPTIONS.iter().map(|o| o.0))
        .chain(REC_ATTR_OPTIONS.iter().map(|o| o.0))
        .chain(REC_ATIME_OPTIONS.iter().map(|o| o.0))
        .chain(["idmap", "ridmap"])
        .chain(IGNORED_OPTIONS.iter().copied())
        .collect()
}

/// Parse options exactly as runc does: known words become flags, the rest is fs data.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        if let Some(&(name, set, clear)) = FLAG_OPTIONS.iter().find(|f| f.0 == opt) {
            o.bind |= name == "bind" || name == "rbind";
            o.recursive_bind |= name == "rbind";
            o.flags = (o.flags | set) & !clear;
        } else if let Some(&(_, p)) = PROPAGATION_OPTIONS.iter().find(|f| f.0 == opt) {
            o.propagation.push(p);
        } else if let Some(&(_, attr, set)) = REC_ATTR_OPTIONS.iter().find(|f| f.0 == opt) {
            rec(&mut o, attr, set);
        } else if let Some(&(_, mode)) = REC_ATIME_OPTIONS.iter().find(|f| f.0 == opt) {
            atime(&mut o, mode);
        } else if opt == "idmap" || opt == "ridmap" {
            o.idmap = Some(opt == "ridmap");
        } else if !IGNORED_OPTIONS.contains(&opt) {
            data.push(opt);
        }
    }
    o.data = data.join(",");
    o
}

fn rec(o: &mut MountOptions, attr: u64, set: bool) {
    if set {
        o.rec_set |= attr;
        o.rec_clr &= !attr;
    } else {
        o.rec_clr |= attr;
        o.rec_set &= !attr;
    }
}

fn atime(o: &mut MountOptions, mode: u64) {
    o.rec_clr |= MOUNT_ATTR_ATIME;
    o.rec_set = (o.rec_set & !MOUNT_ATTR_ATIME) | mode;
}

/// The MOUNT_ATTR_* equivalent of the per-mount MS_* flags (for mount_setattr on binds).
pub fn attrs_of_flags(flags: u64) -> (u64, u64) {
    use libc::*;
    let mut set = 0;
    let mut clr = 0;
    for (ms, attr) in [
        (MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MS_NODEV, MOUNT_ATTR_NODEV),
        (MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if flags & ms != 0 {
            set |= attr;
        }
    }
    if flags & MS_NOATIME != 0 {
        clr |= MOUNT_ATTR_ATIME;
        set |= MOUNT_ATTR_NOATIME;
    } else if flags & MS_STRICTATIME != 0 {
        clr |= MOUNT_ATTR_ATIME;
        set |= MOUNT_ATTR_STRICTATIME;
    }
    let _ = &mut clr;
    (set, clr)
}

/// Map a `rootfsPropagation` value to its flags.
pub fn propagation_of(name: &str) -> Option<u64> {
    let o = parse(&[name.to_string()]);
    o.propagation.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn split() {
        let o = parse(&[
            "nosuid".into(),
            "ro".into(),
            "mode=755".into(),
            "size=64k".into(),
            "rprivate".into(),
        ]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_RDONLY);
        assert_eq!(o.data, "mode=755,size=64k");
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        let o = parse(&["rbind".into(), "rw".into(), "ro".into(), "rw".into()]);
        assert!(o.bind && o.recursive_bind);
        assert_eq!(o.flags & libc::MS_RDONLY, 0);
        assert_eq!(propagation_of("shared"), Some(libc::MS_SHARED));
        assert_eq!(
            propagation_of("rslave"),
            Some(libc::MS_SLAVE | libc::MS_REC)
        );
        assert_eq!(propagation_of("bogus"), None);
    }

    #[test]
    fn every_known_option_is_not_data() {
        for k in known() {
            assert_eq!(parse(&[k.to_string()]).data, "", "{k}");
        }
        assert!(known().contains(&"rbind") && known().contains(&"rro"));
    }
}
