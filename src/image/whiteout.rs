//! Whiteouts: the OCI tar form (`.wh.NAME`, `.wh..wh..opq`), the overlayfs form (0/0 char devices, `trusted.overlay.opaque`), and which xattrs cross between them.

use anyhow::{bail, Result};
use std::io;
use std::os::fd::RawFd;

pub const WH_PREFIX: &str = ".wh.";
pub const WH_OPAQUE: &str = ".wh..wh..opq";
pub const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The overlay xattr namespace of unprivileged (`userxattr`) mounts.
pub const USER_OVERLAY_XATTR_PREFIX: &str = "user.overlay.";
/// aufs metadata names (`.wh..wh..plnk`, `.wh..wh.aufs`, `.wh..wh.orph`) start with this.
const AUFS_META_PREFIX: &str = ".wh..wh.";

/// An overlayfs whiteout: a character device 0/0.
pub fn is_overlay_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// trusted.overlay.opaque == "y" on the dir fd (only "y" means opaque; "x" does not).
/// `fd` must be a real open fd (not O_PATH: fgetxattr refuses those).
pub fn is_opaque(fd: RawFd) -> io::Result<bool> {
    let mut v = [0u8; 2];
    let name = c"trusted.overlay.opaque";
    let n = unsafe { libc::fgetxattr(fd, name.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) | Some(libc::ERANGE) => Ok(false),
            _ => Err(e),
        };
    }
    Ok(n == 1 && v[0] == b'y')
}

/// What an OCI tar entry name means: a plain entry, a whiteout of NAME, or an opaque marker;
/// errors for degenerate names (".wh.", ".wh..", ".wh...") naming them.
#[derive(Debug, PartialEq, Eq)]
pub enum OciName<'a> {
    Plain,
    /// The hidden NAME.
    Whiteout(&'a str),
    Opaque,
}

/// Classify the last component of an entry name. aufs metadata (`.wh..wh..plnk` and
/// friends) comes back as a whiteout of `.wh.…`; callers skip it first with [`is_aufs_meta`].
pub fn classify(file_name: &str) -> Result<OciName<'_>> {
    if file_name == WH_OPAQUE {
        return Ok(OciName::Opaque);
    }
    let Some(hidden) = file_name.strip_prefix(WH_PREFIX) else {
        return Ok(OciName::Plain);
    };
    // ".wh." would hide "", ".wh.." the dir itself and ".wh..." its parent: erasing the
    // parent is how a whiteout would reach outside its directory (boxlite, umoci 0.6).
    if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
        bail!("degenerate whiteout name {file_name:?}");
    }
    Ok(OciName::Whiteout(hidden))
}

/// Is this top-level component aufs metadata (`.wh..wh.*` other than the opaque marker)?
/// docker skips these and everything beneath them; so do we.
pub fn is_aufs_meta(component: &[u8]) -> bool {
    component.starts_with(AUFS_META_PREFIX.as_bytes()) && component != WH_OPAQUE.as_bytes()
}

/// What a layer does with one xattr name, on both the write and the unpack side.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum XattrRule {
    /// Image content: carried in the tar and set on unpack.
    Carry,
    /// Host policy (SELinux labels, IMA/EVM): neither exported nor applied.
    HostOnly,
    /// overlayfs metadata: host-internal when writing; forged when found in a tar.
    Overlay,
}

/// The rule for xattr `name`. overlay metadata in a layer could forge whiteouts, opaque
/// dirs, redirects or metacopy in our lowerdirs (umoci 0.5); `user.overlay.*` is the same
/// namespace on `userxattr` mounts.
pub fn xattr_rule(name: &[u8]) -> XattrRule {
    if name.starts_with(OVERLAY_XATTR_PREFIX.as_bytes())
        || name.starts_with(USER_OVERLAY_XATTR_PREFIX.as_bytes())
    {
        XattrRule::Overlay
    } else if name.starts_with(b"security.") && name != b"security.capability" {
        XattrRule::HostOnly
    } else {
        XattrRule::Carry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names() {
        assert_eq!(classify("a").unwrap(), OciName::Plain);
        assert_eq!(classify(".wh").unwrap(), OciName::Plain);
        assert_eq!(classify(".whx").unwrap(), OciName::Plain);
        assert_eq!(classify(".wh.a").unwrap(), OciName::Whiteout("a"));
        assert_eq!(classify(".wh..a").unwrap(), OciName::Whiteout(".a"));
        assert_eq!(classify(".wh....").unwrap(), OciName::Whiteout("..."));
        assert_eq!(classify(WH_OPAQUE).unwrap(), OciName::Opaque);
        for bad in [".wh.", ".wh..", ".wh..."] {
            let e = classify(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn aufs_meta() {
        assert!(is_aufs_meta(b".wh..wh..plnk"));
        assert!(is_aufs_meta(b".wh..wh.aufs"));
        assert!(!is_aufs_meta(WH_OPAQUE.as_bytes()));
        assert!(!is_aufs_meta(b".wh.x"));
    }

    #[test]
    fn xattr_rules() {
        assert_eq!(xattr_rule(b"trusted.overlay.opaque"), XattrRule::Overlay);
        assert_eq!(xattr_rule(b"trusted.overlay.uuid"), XattrRule::Overlay);
        assert_eq!(xattr_rule(b"user.overlay.opaque"), XattrRule::Overlay);
        assert_eq!(xattr_rule(b"trusted.other"), XattrRule::Carry);
        assert_eq!(xattr_rule(b"user.x"), XattrRule::Carry);
        assert_eq!(xattr_rule(b"security.capability"), XattrRule::Carry);
        assert_eq!(xattr_rule(b"system.posix_acl_access"), XattrRule::Carry);
        assert_eq!(xattr_rule(b"security.selinux"), XattrRule::HostOnly);
    }

    #[test]
    fn whiteout_stat() {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        st.st_mode = libc::S_IFCHR;
        assert!(is_overlay_whiteout(&st));
        st.st_rdev = libc::makedev(1, 3);
        assert!(!is_overlay_whiteout(&st));
        st.st_rdev = 0;
        st.st_mode = libc::S_IFREG;
        assert!(!is_overlay_whiteout(&st));
    }
}
