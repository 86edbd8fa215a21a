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

/// Parse options exactly as runc does: known words become flags, the rest is fs data.
pub fn parse(options: &[String]) -> MountOptions {
    use libc::*;
    let mut o = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let (set, clear): (u64, u64) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" => (MS_RDONLY, 0),
            "rw" => (0, MS_RDONLY),
            "suid" => (0, MS_NOSUID),
            "nosuid" => (MS_NOSUID, 0),
            "dev" => (0, MS_NODEV),
            "nodev" => (MS_NODEV, 0),
            "exec" => (0, MS_NOEXEC),
            "noexec" => (MS_NOEXEC, 0),
            "sync" => (MS_SYNCHRONOUS, 0),
            "async" => (0, MS_SYNCHRONOUS),
            "dirsync" => (MS_DIRSYNC, 0),
            "remount" => (MS_REMOUNT, 0),
            "mand" => (MS_MANDLOCK, 0),
            "nomand" => (0, MS_MANDLOCK),
            "atime" => (0, MS_NOATIME),
            "noatime" => (MS_NOATIME, 0),
            "diratime" => (0, MS_NODIRATIME),
            "nodiratime" => (MS_NODIRATIME, 0),
            "relatime" => (MS_RELATIME, 0),
            "norelatime" => (0, MS_RELATIME),
            "strictatime" => (MS_STRICTATIME, 0),
            "nostrictatime" => (0, MS_STRICTATIME),
            "lazytime" => (MS_LAZYTIME, 0),
            "nolazytime" => (0, MS_LAZYTIME),
            "iversion" => (MS_I_VERSION, 0),
            "noiversion" => (0, MS_I_VERSION),
            "silent" => (MS_SILENT, 0),
            "loud" => (0, MS_SILENT),
            "nosymfollow" => (MS_NOSYMFOLLOW, 0),
            "symfollow" => (0, MS_NOSYMFOLLOW),
            "bind" => {
                o.bind = true;
                (MS_BIND, 0)
            }
            "rbind" => {
                o.bind = true;
                o.recursive_bind = true;
                (MS_BIND | MS_REC, 0)
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let base = match opt.trim_start_matches('r') {
                    "private" => MS_PRIVATE,
                    "shared" => MS_SHARED,
                    "slave" => MS_SLAVE,
                    _ => MS_UNBINDABLE,
                };
                let rec = if opt.starts_with('r') { MS_REC } else { 0 };
                o.propagation.push(base | rec);
                (0, 0)
            }
            "rro" => rec(&mut o, MOUNT_ATTR_RDONLY, true),
            "rrw" => rec(&mut o, MOUNT_ATTR_RDONLY, false),
            "rnosuid" => rec(&mut o, MOUNT_ATTR_NOSUID, true),
            "rsuid" => rec(&mut o, MOUNT_ATTR_NOSUID, false),
            "rnodev" => rec(&mut o, MOUNT_ATTR_NODEV, true),
            "rdev" => rec(&mut o, MOUNT_ATTR_NODEV, false),
            "rnoexec" => rec(&mut o, MOUNT_ATTR_NOEXEC, true),
            "rexec" => rec(&mut o, MOUNT_ATTR_NOEXEC, false),
            "rnodiratime" => rec(&mut o, MOUNT_ATTR_NODIRATIME, true),
            "rdiratime" => rec(&mut o, MOUNT_ATTR_NODIRATIME, false),
            "rnosymfollow" => rec(&mut o, MOUNT_ATTR_NOSYMFOLLOW, true),
            "rsymfollow" => rec(&mut o, MOUNT_ATTR_NOSYMFOLLOW, false),
            "rnoatime" => atime(&mut o, MOUNT_ATTR_NOATIME),
            "rstrictatime" => atime(&mut o, MOUNT_ATTR_STRICTATIME),
            "rrelatime" => atime(&mut o, 0),
            "ratime" => atime(&mut o, 0),
            // runc-specific extensions we accept and ignore.
            "tmpcopyup" => (0, 0),
            other => {
                data.push(other);
                (0, 0)
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o.data = data.join(",");
    o
}

fn rec(o: &mut MountOptions, attr: u64, set: bool) -> (u64, u64) {
    if set {
        o.rec_set |= attr;
        o.rec_clr &= !attr;
    } else {
        o.rec_clr |= attr;
        o.rec_set &= !attr;
    }
    (0, 0)
}

fn atime(o: &mut MountOptions, mode: u64) -> (u64, u64) {
    o.rec_clr |= MOUNT_ATTR_ATIME;
    o.rec_set = (o.rec_set & !MOUNT_ATTR_ATIME) | mode;
    (0, 0)
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
}
