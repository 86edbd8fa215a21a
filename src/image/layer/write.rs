//! Directory → layer tar: a sorted, fd-only walk of an overlay upper (whiteouts converted) or a plain tree.

use super::attrs::Attrs;
use super::copy::{Mirror, Special};
use super::header::{self, EntryHeader, Kind};
use super::limits::BUF_SIZE;
use super::sys::{self, Target};
use crate::image::whiteout::{self, XattrRule, OPAQUE_XATTR, WH_OPAQUE, WH_PREFIX};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// overlay xattrs that mean the upper alone is not the change (a renamed dir's content or
/// a file's data stay in the lowers): writing a layer from it would silently lose them.
const NOT_SELF_CONTAINED: [&[u8]; 2] = [b"trusted.overlay.redirect", b"trusted.overlay.metacopy"];

/// What the walked directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An overlayfs upper dir (mounted redirect_dir=off, metacopy=off, index=off): 0/0
    /// devices become `.wh.NAME`, opaque dirs get `DIR/.wh..wh..opq`.
    Upper,
    /// A tree as it is (a rootfs to import, a container's merged view to export).
    Tree,
}

/// The mtimes written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    Keep,
    /// SOURCE_DATE_EPOCH: mtimes later than t become t.
    Clamp(i64),
    /// Every mtime becomes t.
    Set(i64),
}

impl Times {
    pub(super) fn apply(self, mtime: i64) -> i64 {
        match self {
            Times::Keep => mtime,
            Times::Clamp(t) => mtime.min(t),
            Times::Set(t) => t,
        }
    }
}

#[derive(Clone, Debug)]
pub struct WriteOpts {
    pub source: Source,
    pub times: Times,
    /// An existing empty directory that receives, in the same pass, the walked tree in
    /// layer-dir form (what unpacking the tar would give).
    pub copy_to: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Tar entries written (PAX headers not counted).
    pub entries: u64,
    /// Bytes of regular-file data.
    pub file_bytes: u64,
}

/// Walk `dir` and write one layer tar to `out`. Calls `progress(n)` with bytes of file data
/// as they are read. On error the output (and `copy_to`) hold partial content.
pub fn write_tar<W: Write>(
    dir: &Path,
    out: W,
    opts: &WriteOpts,
    progress: &mut dyn FnMut(u64),
) -> Result<(WriteStats, W)> {
    let c = CString::new(dir.as_os_str().as_bytes())?;
    let root = crate::paths::openat(libc::AT_FDCWD, &c, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .with_context(|| format!("open {}", dir.display()))?;
    let mirror = opts.copy_to.as_deref().map(Mirror::open).transpose()?;
    let mut w = Walker {
        out: BufWriter::with_capacity(256 * 1024, out),
        opts,
        progress,
        links: HashMap::new(),
        buf: vec![0; BUF_SIZE],
        mirror,
        stats: WriteStats::default(),
    };
    w.walk_root(root.as_raw_fd())
        .with_context(|| format!("writing a layer tar of {}", dir.display()))?;
    w.out.write_all(&header::END)?;
    let out = w.out.into_inner().map_err(|e| e.into_error())?;
    Ok((w.stats, out))
}

struct Walker<'a, W: Write> {
    out: BufWriter<W>,
    opts: &'a WriteOpts,
    progress: &'a mut dyn FnMut(u64),
    /// (dev, ino) of multiply-linked non-directories → the tar path first written for them.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    mirror: Option<Mirror>,
    stats: WriteStats,
}

/// One directory entry about to be written.
struct Node {
    name: CString,
    st: libc::stat,
    /// The entry's last path component in the tar (`.wh.NAME` for a whiteout).
    tar_name: Vec<u8>,
    whiteout: bool,
}

/// What one xattr list becomes: the tar's records, and the mirror's (which also keeps the
/// opaque marker of an upper).
struct Xattrs {
    tar: Vec<(Vec<u8>, Vec<u8>)>,
    opaque: bool,
}

impl<W: Write> Walker<'_, W> {
    fn upper(&self) -> bool {
        self.opts.source == Source::Upper
    }

    fn walk_root(&mut self, root: RawFd) -> Result<()> {
        let st = crate::paths::fstat(root)?;
        let x = self.xattrs(Target::Fd(root))?;
        if x.opaque {
            self.opaque_marker(b"", &st)?;
        }
        let attrs = self.attrs(&st, &x);
        let mirror = match &self.mirror {
            Some(m) => {
                attrs.apply(Target::Fd(m.root_fd()), false)?;
                Some(m.root_fd())
            }
            None => None,
        };
        self.walk_dir(root, b"", mirror)?;
        if let Some(m) = mirror {
            attrs.apply_times(Target::Fd(m))?;
        }
        Ok(())
    }

    /// The entries of one directory, sorted by their tar names; sockets skipped (as docker does).
    fn list(&self, dir: RawFd) -> io::Result<Vec<Node>> {
        let mut nodes = Vec::new();
        for name in sys::read_dir_names(dir)? {
            let cname = sys::cname(&name)?;
            let st = match sys::lstat_opt(dir, &cname)? {
                Some(st) => st,
                None => continue, // deleted since the listing
            };
            if sys::file_type(&st) == libc::S_IFSOCK {
                continue;
            }
            let whiteout = self.upper() && whiteout::is_overlay_whiteout(&st);
            let tar_name = if whiteout {
                [WH_PREFIX.as_bytes(), &name].concat()
            } else {
                name
            };
            nodes.push(Node {
                name: cname,
                st,
                tar_name,
                whiteout,
            });
        }
        nodes.sort_by(|a, b| a.tar_name.cmp(&b.tar_name));
        Ok(nodes)
    }

    fn walk_dir(&mut self, dir: RawFd, prefix: &[u8], mirror: Option<RawFd>) -> Result<()> {
        for node in self.list(dir)? {
            let path = [prefix, &node.tar_name].concat();
            let shown = || String::from_utf8_lossy(&path).into_owned();
            // OCI has no way to say "a file named .wh.x": any reader would take it for a
            // whiteout (or, for .wh..wh..opq, an opaque marker) and delete lower files.
            if !node.whiteout && node.tar_name.starts_with(WH_PREFIX.as_bytes()) {
                bail!(
                    "{}: a file named {WH_PREFIX}* cannot be carried in a layer",
                    shown()
                );
            }
            self.node(dir, &path, &node, mirror).with_context(shown)?;
        }
        Ok(())
    }

    fn node(&mut self, dir: RawFd, path: &[u8], n: &Node, mirror: Option<RawFd>) -> Result<()> {
        if n.whiteout {
            return self.whiteout(path, n, mirror);
        }
        if sys::is_dir(&n.st) {
            return self.dir(dir, path, n, mirror);
        }
        let key = (n.st.st_dev, n.st.st_ino);
        if n.st.st_nlink > 1 {
            if let Some(first) = self.links.get(&key).cloned() {
                return self.hardlink(path, &first, n, mirror);
            }
            self.links.insert(key, path.to_vec());
        }
        match sys::file_type(&n.st) {
            libc::S_IFREG => self.file(dir, path, n, mirror),
            _ => self.special(dir, path, n, mirror),
        }
    }

    /// Read the xattrs of an inode and sort them into what the tar and the mirror get.
    fn xattrs(&self, t: Target) -> Result<Xattrs> {
        let mut x = Xattrs {
            tar: Vec::new(),
            opaque: false,
        };
        for (k, v) in t.xattrs()? {
            match whiteout::xattr_rule(&k) {
                XattrRule::Carry => x.tar.push((k, v)),
                XattrRule::HostOnly => {}
                XattrRule::Overlay if self.upper() && NOT_SELF_CONTAINED.contains(&&k[..]) => {
                    bail!(
                        "has {}: an upper mounted with redirect_dir or metacopy on does not \
                         hold the whole change",
                        String::from_utf8_lossy(&k)
                    );
                }
                XattrRule::Overlay => {
                    x.opaque |= self.upper() && k == OPAQUE_XATTR.as_bytes() && v == b"y";
                }
            }
        }
        Ok(x)
    }

    fn mtime(&self, st: &libc::stat) -> i64 {
        self.opts.times.apply(st.st_mtime)
    }

    fn attrs(&self, st: &libc::stat, x: &Xattrs) -> Attrs {
        let mut xattrs = x.tar.clone();
        if x.opaque {
            xattrs.push((OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec()));
            xattrs.sort();
        }
        Attrs::from_stat(st, (self.mtime(st), 0), xattrs)
    }

    fn header(&mut self, e: EntryHeader) -> io::Result<()> {
        header::write(&mut self.out, &e)?;
        self.stats.entries += 1;
        Ok(())
    }

    /// A header of `kind` with `st`'s mode, owner and (Times-adjusted) mtime; the callers
    /// fill in path, size, link, device and xattrs.
    fn plain(&self, kind: Kind, st: &libc::stat) -> EntryHeader<'static> {
        EntryHeader {
            path: b"",
            kind,
            size: 0,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: self.mtime(st),
            link: b"",
            dev: (0, 0),
            xattrs: &[],
        }
    }

    /// An empty regular file with mode 0: a whiteout or opaque marker.
    fn marker(&mut self, path: &[u8], st: &libc::stat) -> io::Result<()> {
        let e = EntryHeader {
            path,
            mode: 0,
            ..self.plain(Kind::File, st)
        };
        self.header(e)
    }

    fn opaque_marker(&mut self, dir_path: &[u8], st: &libc::stat) -> io::Result<()> {
        self.marker(&[dir_path, WH_OPAQUE.as_bytes()].concat(), st)
    }

    fn whiteout(&mut self, path: &[u8], n: &Node, mirror: Option<RawFd>) -> Result<()> {
        self.marker(path, &n.st)?;
        if let (Some(m), Some(parent)) = (&self.mirror, mirror) {
            let a = Attrs::from_stat(&n.st, (self.mtime(&n.st), 0), Vec::new());
            m.special(parent, &n.name, Special::Node(libc::S_IFCHR, 0), &a)?;
        }
        Ok(())
    }

    fn dir(&mut self, dir: RawFd, path: &[u8], n: &Node, mirror: Option<RawFd>) -> Result<()> {
        let fd = sys::open_dir(dir, &n.name)?;
        let st = same_inode(fd.as_raw_fd(), &n.st)?;
        let x = self.xattrs(Target::Fd(fd.as_raw_fd()))?;
        let dir_path = [path, b"/"].concat();
        self.header(EntryHeader {
            path: &dir_path,
            xattrs: &x.tar,
            ..self.plain(Kind::Dir, &st)
        })?;
        if x.opaque {
            self.opaque_marker(&dir_path, &st)?;
        }
        let attrs = self.attrs(&st, &x);
        let child = match (&self.mirror, mirror) {
            (Some(m), Some(parent)) => Some(m.dir(parent, &n.name, &attrs)?),
            _ => None,
        };
        self.walk_dir(
            fd.as_raw_fd(),
            &dir_path,
            child.as_ref().map(|c| c.as_raw_fd()),
        )?;
        if let Some(c) = child {
            attrs.apply_times(Target::Fd(c.as_raw_fd()))?;
        }
        Ok(())
    }

    fn hardlink(
        &mut self,
        path: &[u8],
        first: &[u8],
        n: &Node,
        mirror: Option<RawFd>,
    ) -> Result<()> {
        self.header(EntryHeader {
            path,
            link: first,
            ..self.plain(Kind::HardLink, &n.st)
        })?;
        if let (Some(m), Some(parent)) = (&self.mirror, mirror) {
            m.hardlink(first, parent, &n.name)?;
        }
        Ok(())
    }

    fn special(&mut self, dir: RawFd, path: &[u8], n: &Node, mirror: Option<RawFd>) -> Result<()> {
        let t = Target::At(dir, &n.name);
        let x = self.xattrs(t)?;
        let ftype = sys::file_type(&n.st);
        let (kind, target) = match ftype {
            libc::S_IFLNK => (Kind::Symlink, sys::readlink_at(dir, &n.name)?),
            libc::S_IFCHR => (Kind::Char, Vec::new()),
            libc::S_IFBLK => (Kind::Block, Vec::new()),
            libc::S_IFIFO => (Kind::Fifo, Vec::new()),
            _ => bail!("unsupported file type {:o}", ftype),
        };
        let rdev = n.st.st_rdev;
        let dev = match kind {
            Kind::Char | Kind::Block => (libc::major(rdev), libc::minor(rdev)),
            _ => (0, 0),
        };
        self.header(EntryHeader {
            path,
            link: &target,
            dev,
            xattrs: &x.tar,
            ..self.plain(kind, &n.st)
        })?;
        if let (Some(m), Some(parent)) = (&self.mirror, mirror) {
            let s = match kind {
                Kind::Symlink => Special::Symlink(&target),
                _ => Special::Node(ftype, rdev),
            };
            m.special(parent, &n.name, s, &self.attrs(&n.st, &x))?;
        }
        Ok(())
    }

    fn file(&mut self, dir: RawFd, path: &[u8], n: &Node, mirror: Option<RawFd>) -> Result<()> {
        // O_NONBLOCK: a fifo swapped in after the lstat must not hang the walk; O_NOFOLLOW:
        // a symlink swapped in fails instead of exporting its target (CVE-2018-15664 class).
        let flags = libc::O_RDONLY | libc::O_NONBLOCK;
        let f = File::from(sys::open_nofollow(dir, &n.name, flags, 0)?);
        let st = same_inode(f.as_raw_fd(), &n.st)?;
        let x = self.xattrs(Target::Fd(f.as_raw_fd()))?;
        self.header(EntryHeader {
            path,
            size: st.st_size as u64,
            xattrs: &x.tar,
            ..self.plain(Kind::File, &st)
        })?;
        let mut copy = match (&self.mirror, mirror) {
            (Some(m), Some(parent)) => Some(m.file(parent, &n.name)?),
            _ => None,
        };
        self.data(&f, st.st_size as u64, copy.as_mut())?;
        header::pad(&mut self.out, st.st_size as u64)?;
        if let (Some(m), Some(c)) = (&self.mirror, &copy) {
            m.finish_file(c, &self.attrs(&st, &x))?;
        }
        Ok(())
    }

    /// Copy exactly `size` bytes to the tar (and the mirror); a file that turns out shorter
    /// or longer is an error, never a tar whose sizes lie.
    fn data(&mut self, mut f: &File, size: u64, mut copy: Option<&mut File>) -> Result<()> {
        let mut left = size;
        loop {
            // One byte more than expected, so growth shows and a short read means EOF.
            let want = (left + 1).min(self.buf.len() as u64) as usize;
            let n = read_retry(&mut f, &mut self.buf[..want])?;
            if n as u64 > left || (n == 0 && left > 0) {
                return Err(anyhow!("changed while being read"));
            }
            if n == 0 {
                break;
            }
            self.out.write_all(&self.buf[..n])?;
            if let Some(c) = copy.as_deref_mut() {
                c.write_all(&self.buf[..n])?;
            }
            (self.progress)(n as u64);
            self.stats.file_bytes += n as u64;
            left -= n as u64;
            if left == 0 && n < want {
                break;
            }
        }
        Ok(())
    }
}

fn read_retry(f: &mut &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// fstat an opened entry and check it is still the inode the listing saw.
fn same_inode(fd: RawFd, seen: &libc::stat) -> Result<libc::stat> {
    let st = crate::paths::fstat(fd)?;
    if st.st_dev != seen.st_dev || st.st_ino != seen.st_ino {
        bail!("changed while being read (replaced)");
    }
    Ok(st)
}
