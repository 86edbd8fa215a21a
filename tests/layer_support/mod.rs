//! Helpers for the layer tests: scratch dirs, trees with every file type, tree snapshots, detached overlay mounts, raw tar bytes.
#![allow(dead_code)]

pub mod bench;
pub mod evil;
pub mod trees;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Skip (return early) with a printed reason unless root.
#[macro_export]
macro_rules! need_root {
    () => {
        if !$crate::layer_support::is_root() {
            eprintln!("skipped: needs root (mknod, chown, trusted xattrs, overlay mounts)");
            return;
        }
    };
}

static N: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory under /tmp, removed on drop.
pub struct Tmp(pub PathBuf);

impl Tmp {
    pub fn new(tag: &str) -> Tmp {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("strata-layer-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        Tmp(p)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// A new empty subdirectory (mode 0755).
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn write(p: &Path, data: &[u8], mode: u32) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mkdir(p: &Path, mode: u32) {
    fs::create_dir_all(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn ln_s(target: &str, p: &Path) {
    symlink(target, p).unwrap();
}

pub fn mknod(p: &Path, kind: u32, major: u32, minor: u32, mode: u32) {
    let r = unsafe { libc::mknod(c(p).as_ptr(), kind | mode, libc::makedev(major, minor)) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    chmod(p, mode);
}

pub fn chmod(p: &Path, mode: u32) {
    let r = unsafe { libc::chmod(c(p).as_ptr(), mode) };
    assert_eq!(r, 0, "chmod {}", p.display());
}

pub fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

pub fn setxattr(p: &Path, name: &str, value: &[u8]) {
    let n = CString::new(name).unwrap();
    let r = unsafe {
        libc::lsetxattr(
            c(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// mtime (and atime) of `p`, not following a symlink.
pub fn set_mtime(p: &Path, secs: i64) {
    let ts = [libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    }; 2];
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c(p).as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

/// security.capability v2 for cap_net_raw+ep, as `setcap cap_net_raw+ep` writes it.
pub fn cap_net_raw() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes()); // VFS_CAP_REVISION_2 | effective
    v.extend_from_slice(&(1u32 << 13).to_le_bytes()); // permitted: CAP_NET_RAW
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

pub fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let cp = c(p);
    let mut list = vec![0u8; 65536];
    let n = unsafe { libc::llistxattr(cp.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    let mut out = BTreeMap::new();
    if n <= 0 {
        return out;
    }
    for name in list[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        let m =
            unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), v);
        }
    }
    out
}

/// One inode as a snapshot sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub data: Vec<u8>,
    pub rdev: (u32, u32),
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// The first path (in sorted order) sharing this inode, for hard links.
    pub link_group: Option<String>,
}

pub struct SnapOpts {
    /// Keep only the xattrs this accepts.
    pub xattr: fn(&str) -> bool,
    pub dir_mtimes: bool,
}

pub fn no_overlay_xattrs(name: &str) -> bool {
    !name.starts_with("trusted.overlay.")
}

/// Every xattr, overlay ones included (for layer dirs).
pub const ALL: SnapOpts = SnapOpts {
    xattr: |_| true,
    dir_mtimes: true,
};

pub const SNAP: SnapOpts = SnapOpts {
    xattr: no_overlay_xattrs,
    dir_mtimes: true,
};

/// Every inode below `root` (not the root itself) by relative path.
pub fn snapshot(root: &Path, o: &SnapOpts) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    walk(root, root, o, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    o: &SnapOpts,
    out: &mut BTreeMap<String, Node>,
    inodes: &mut BTreeMap<(u64, u64), String>,
) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let mut n = node(&p, o);
        let m = fs::symlink_metadata(&p).unwrap();
        // overlayfs shares one inode among its whiteouts: not a hard link of the tree.
        let whiteout = n.kind == 'c' && n.rdev == (0, 0);
        if n.kind != 'd' && !whiteout && m.nlink() > 1 {
            n.link_group = Some(
                inodes
                    .entry((m.dev(), m.ino()))
                    .or_insert(rel.clone())
                    .clone(),
            );
        }
        let dir = n.kind == 'd';
        out.insert(rel, n);
        if dir {
            walk(root, &p, o, out, inodes);
        }
    }
}

/// One inode (link_group left empty).
pub fn node(p: &Path, o: &SnapOpts) -> Node {
    use std::os::unix::fs::FileTypeExt;
    let m = fs::symlink_metadata(p).unwrap();
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_file() {
        'f'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        's'
    };
    let data = match kind {
        'f' => fs::read(p).unwrap(),
        'l' => fs::read_link(p).unwrap().as_os_str().as_bytes().to_vec(),
        _ => Vec::new(),
    };
    let rdev = m.rdev();
    Node {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: if kind == 'd' && !o.dir_mtimes {
            0
        } else {
            m.mtime()
        },
        data,
        rdev: (libc::major(rdev), libc::minor(rdev)),
        xattrs: xattrs(p)
            .into_iter()
            .filter(|(k, _)| (o.xattr)(k))
            .collect(),
        link_group: None,
    }
}

/// Assert two snapshots are equal, listing every difference.
pub fn assert_same(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("only in first: {k}")),
            Some(w) if w != v => diffs.push(format!("{k}:\n   {v:?}\n   {w:?}")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        diffs.push(format!("only in second: {k}"));
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

// The new mount API, for overlays that are never attached anywhere: the mount lives only
// as an fd, and its files are reached through /proc/self/fd/N.
const FSOPEN_CLOEXEC: u32 = 1;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 1;
const MOUNT_ATTR_RDONLY: u32 = 1;

/// A detached overlay mount.
pub struct Overlay(OwnedFd);

impl Overlay {
    /// `lowers` top-most first; with `upper` (and `work`) read-write, else read-only.
    pub fn mount(lowers: &[&Path], upper: Option<(&Path, &Path)>) -> Overlay {
        unsafe {
            let fs = libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC);
            assert!(
                fs >= 0,
                "fsopen overlay: {}",
                std::io::Error::last_os_error()
            );
            let fs = OwnedFd::from_raw_fd(fs as i32);
            let set = |k: &str, v: &str| {
                let (k, v) = (CString::new(k).unwrap(), CString::new(v).unwrap());
                let r = libc::syscall(
                    libc::SYS_fsconfig,
                    fs.as_raw_fd(),
                    FSCONFIG_SET_STRING,
                    k.as_ptr(),
                    v.as_ptr(),
                    0,
                );
                assert_eq!(
                    r,
                    0,
                    "fsconfig {k:?}={v:?}: {}",
                    std::io::Error::last_os_error()
                );
            };
            let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
            set("lowerdir", &lower.join(":"));
            if let Some((u, w)) = upper {
                set("upperdir", &u.display().to_string());
                set("workdir", &w.display().to_string());
            }
            set("redirect_dir", "off");
            set("metacopy", "off");
            set("index", "off");
            let r = libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                0,
                0,
                0,
            );
            assert_eq!(r, 0, "fsconfig create: {}", std::io::Error::last_os_error());
            let attr = if upper.is_some() {
                0
            } else {
                MOUNT_ATTR_RDONLY
            };
            let m = libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attr);
            assert!(m >= 0, "fsmount: {}", std::io::Error::last_os_error());
            Overlay(OwnedFd::from_raw_fd(m as i32))
        }
    }

    /// The mount's root as a path (valid while this lives).
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }
}

/// A raw 512-byte ustar header with exactly these bytes in its fields (no validation, so
/// tests can say what a hostile tar says).
pub fn raw_header(name: &[u8], flag: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    {
        let b = h.as_mut_bytes();
        b[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        b[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    }
    h.set_mode(if flag == b'5' { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    h.as_mut_bytes()[156] = flag;
    h.set_cksum();
    *h.as_bytes()
}

/// A tar being assembled block by block.
#[derive(Default)]
pub struct RawTar(pub Vec<u8>);

impl RawTar {
    pub fn entry(mut self, name: &str, flag: u8, data: &[u8], link: &str) -> RawTar {
        self.0.extend_from_slice(&raw_header(
            name.as_bytes(),
            flag,
            data.len() as u64,
            link.as_bytes(),
        ));
        self.data(data)
    }

    pub fn file(self, name: &str, data: &[u8]) -> RawTar {
        self.entry(name, b'0', data, "")
    }

    pub fn dir(self, name: &str) -> RawTar {
        self.entry(name, b'5', b"", "")
    }

    pub fn symlink(self, name: &str, target: &str) -> RawTar {
        self.entry(name, b'2', b"", target)
    }

    pub fn hardlink(self, name: &str, target: &str) -> RawTar {
        self.entry(name, b'1', b"", target)
    }

    /// A PAX 'x' header with these records before the next entry.
    pub fn pax(self, recs: &[(&str, &[u8])]) -> RawTar {
        let mut data = Vec::new();
        for (k, v) in recs {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.entry("PaxHeaders.0/x", b'x', &data, "")
    }

    pub fn data(mut self, data: &[u8]) -> RawTar {
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn raw(mut self, block: [u8; 512]) -> RawTar {
        self.0.extend_from_slice(&block);
        self
    }

    pub fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

/// One entry of a tar as the `tar` crate reads it (our writer's output is plain enough).
#[derive(Debug)]
pub struct Listed {
    pub path: String,
    pub flag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: String,
    pub data: Vec<u8>,
    pub pax: Vec<(String, Vec<u8>)>,
}

/// The entries of a tar, read by hand: the `tar` crate's PAX parser splits records on '\n'
/// and fails on binary xattr values.
pub fn list(tar: &[u8]) -> Vec<Listed> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    while pos + 512 <= tar.len() && tar[pos..pos + 512].iter().any(|b| *b != 0) {
        let h = tar::Header::from_byte_slice(&tar[pos..pos + 512]);
        let size = h.entry_size().unwrap() as usize;
        let data = tar[pos + 512..pos + 512 + size].to_vec();
        pos += 512 + size.div_ceil(512) * 512;
        let flag = h.as_bytes()[156];
        if flag == b'x' {
            pax = pax_records(&data);
            continue;
        }
        let get = |k: &str| {
            pax.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        out.push(Listed {
            path: get("path")
                .unwrap_or_else(|| String::from_utf8_lossy(&h.path_bytes()).into_owned()),
            flag,
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            link: get("linkpath").unwrap_or_else(|| {
                h.link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default()
            }),
            data,
            pax: std::mem::take(&mut pax),
        });
    }
    out
}

fn pax_records(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data.iter().position(|b| *b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&data[..sp]).unwrap().parse().unwrap();
        let rec = &data[sp + 1..len - 1];
        let eq = rec.iter().position(|b| *b == b'=').unwrap();
        out.push((
            String::from_utf8(rec[..eq].to_vec()).unwrap(),
            rec[eq + 1..].to_vec(),
        ));
        data = &data[len..];
    }
    out
}

/// Run a command, asserting success; its stdout.
pub fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
