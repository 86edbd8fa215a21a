//! A layer written from a planned tree rather than from a directory: host files placed at
//! image paths with the owner, mode and times the plan gives them (COPY and ADD of local
//! files). One pass reads each source file once and feeds the tar (→ diff ID →
//! compressor), the layer dir (`copy_to`) and the file's own sha256; nothing is staged.

use super::attrs::Attrs;
use super::copy::{Mirror, Special};
use super::header::{self, EntryHeader, Kind};
use super::limits::BUF_SIZE;
use super::sys::{self, Target};
use super::write::{Times, WriteStats};
use crate::image::whiteout::WH_PREFIX;
use crate::paths::Root;
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// What every entry gets: permission bits, owner, mtime (before `Times`), carried xattrs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A source file as the plan saw it: reopened beneath the source root, and refused if it
/// is no longer that inode, that size, those times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFile {
    pub rel: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Index into the digests table `write` fills.
    pub slot: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    Host(HostFile),
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir(Dir),
    File(Meta, Data),
    Symlink(Meta, Vec<u8>),
    /// mknod type bits and device number.
    Device(Meta, u32, u64),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dir {
    pub meta: Meta,
    /// A directory the lower layers already have: written only if something below it is,
    /// and (as an overlay copy-up keeps it) with its own mtime unless a child of its own
    /// is new.
    pub existing: bool,
    pub children: BTreeMap<Vec<u8>, Node>,
}

impl Dir {
    /// Drop existing directories nothing is written into; true if this one is left empty
    /// and existing (so its parent drops it too).
    pub fn prune(&mut self) -> bool {
        self.children.retain(|_, n| match n {
            Node::Dir(d) => !d.prune(),
            _ => true,
        });
        self.existing && self.children.is_empty()
    }

    /// Whether any direct child is new (not an existing directory merged into).
    fn has_new_child(&self) -> bool {
        self.children
            .values()
            .any(|n| !matches!(n, Node::Dir(d) if d.existing))
    }
}

/// How a plan is written.
#[derive(Clone, Copy, Debug)]
pub struct PlacedOpts<'a> {
    /// An existing empty dir that receives the layer dir form in the same pass.
    pub copy_to: Option<&'a Path>,
    pub times: Times,
    /// The mtime of existing directories that get a new child (the step's time).
    pub now: i64,
}

/// Write `root` (the image's `/`, itself not an entry) as a layer tar to `out` (and to
/// `o.copy_to`). `digests[slot]` gets the sha256 of each host file read whose slot is
/// still empty.
pub fn write_placed<W: Write>(
    root: &Dir,
    src: &Root,
    out: W,
    o: &PlacedOpts,
    digests: &mut [Option<[u8; 32]>],
    progress: &mut dyn FnMut(u64),
) -> Result<(WriteStats, W)> {
    let (times, now) = (o.times, o.now);
    let mirror = o.copy_to.map(Mirror::open).transpose()?;
    let mut w = Placer {
        out: BufWriter::with_capacity(256 * 1024, out),
        src,
        times,
        now,
        digests,
        progress,
        buf: vec![0; BUF_SIZE],
        stats: WriteStats::default(),
    };
    let m = mirror.as_ref().map(|m| (m, m.root_fd()));
    w.children(root, b"", m)?;
    w.out.write_all(&header::END)?;
    let out = w.out.into_inner().map_err(|e| e.into_error())?;
    Ok((w.stats, out))
}

struct Placer<'a, W: Write> {
    out: BufWriter<W>,
    src: &'a Root,
    times: Times,
    now: i64,
    digests: &'a mut [Option<[u8; 32]>],
    progress: &'a mut dyn FnMut(u64),
    buf: Vec<u8>,
    stats: WriteStats,
}

type At<'m> = Option<(&'m Mirror, RawFd)>;

impl<W: Write> Placer<'_, W> {
    fn children(&mut self, d: &Dir, prefix: &[u8], m: At<'_>) -> Result<()> {
        for (name, node) in &d.children {
            let path = [prefix, name].concat();
            let shown = || String::from_utf8_lossy(&path).into_owned();
            // Any reader would take such a file for a whiteout and delete lower files.
            if name.starts_with(WH_PREFIX.as_bytes()) {
                bail!(
                    "{}: a file named {WH_PREFIX}* cannot be carried in a layer",
                    shown()
                );
            }
            let c = sys::cname(name)?;
            self.node(node, &path, &c, m).with_context(shown)?;
        }
        Ok(())
    }

    fn attrs(&self, meta: &Meta) -> Attrs {
        let mtime = (self.times.apply(meta.mtime), 0);
        Attrs {
            mode: meta.mode & 0o7777,
            uid: meta.uid,
            gid: meta.gid,
            mtime,
            atime: mtime,
            xattrs: meta.xattrs.clone(),
        }
    }

    /// A header with the plan's metadata; the callers fill in path, link and device.
    fn header(&self, kind: Kind, meta: &Meta, size: u64) -> EntryHeader<'static> {
        EntryHeader {
            path: b"",
            kind,
            size,
            mode: meta.mode & 0o7777,
            uid: meta.uid,
            gid: meta.gid,
            mtime: self.times.apply(meta.mtime),
            link: b"",
            dev: (0, 0),
            xattrs: &[],
        }
    }

    fn emit(&mut self, e: EntryHeader) -> io::Result<()> {
        header::write(&mut self.out, &e)?;
        self.stats.entries += 1;
        Ok(())
    }

    fn node(&mut self, node: &Node, path: &[u8], name: &std::ffi::CStr, m: At<'_>) -> Result<()> {
        match node {
            Node::Dir(d) => {
                let mut meta = d.meta.clone();
                if !d.existing || d.has_new_child() {
                    meta.mtime = self.now;
                }
                let dir_path = [path, b"/"].concat();
                let e = EntryHeader {
                    path: &dir_path,
                    xattrs: &meta.xattrs,
                    ..self.header(Kind::Dir, &meta, 0)
                };
                self.emit(e)?;
                let a = self.attrs(&meta);
                let child = match m {
                    Some((mi, parent)) => Some(mi.dir(parent, name, &a)?),
                    None => None,
                };
                let cm = m
                    .zip(child.as_ref())
                    .map(|((mi, _), c)| (mi, c.as_raw_fd()));
                self.children(d, &dir_path, cm)?;
                if let Some(c) = &child {
                    a.apply_times(Target::Fd(c.as_raw_fd()))?;
                }
            }
            Node::File(meta, data) => self.file(meta, data, path, name, m)?,
            Node::Symlink(meta, target) => {
                let e = EntryHeader {
                    path,
                    link: target,
                    ..self.header(Kind::Symlink, meta, 0)
                };
                self.emit(e)?;
                if let Some((mi, parent)) = m {
                    mi.special(parent, name, Special::Symlink(target), &self.attrs(meta))?;
                }
            }
            Node::Device(meta, kind, rdev) => {
                let k = match *kind {
                    libc::S_IFCHR => Kind::Char,
                    libc::S_IFBLK => Kind::Block,
                    libc::S_IFIFO => Kind::Fifo,
                    other => bail!("unsupported file type {other:o}"),
                };
                let dev = match k {
                    Kind::Fifo => (0, 0),
                    _ => (libc::major(*rdev), libc::minor(*rdev)),
                };
                let e = EntryHeader {
                    path,
                    dev,
                    ..self.header(k, meta, 0)
                };
                self.emit(e)?;
                if let Some((mi, parent)) = m {
                    let s = Special::Node(*kind, *rdev);
                    mi.special(parent, name, s, &self.attrs(meta))?;
                }
            }
        }
        Ok(())
    }

    fn file(
        &mut self,
        meta: &Meta,
        data: &Data,
        path: &[u8],
        name: &std::ffi::CStr,
        m: At<'_>,
    ) -> Result<()> {
        let size = match data {
            Data::Host(h) => h.size,
            Data::Bytes(b) => b.len() as u64,
        };
        let e = EntryHeader {
            path,
            ..self.header(Kind::File, meta, size)
        };
        // The source is checked before its header is written: a changed file fails the
        // step, never a tar whose sizes lie.
        let f = match data {
            Data::Host(h) => Some(self.open(h)?),
            Data::Bytes(_) => None,
        };
        self.emit(e)?;
        let mut copy = match m {
            Some((mi, parent)) => Some(mi.file(parent, name)?),
            None => None,
        };
        match (data, f) {
            (Data::Host(h), Some(f)) => {
                let sum = self.data(&f, h.size, copy.as_mut(), self.digests[h.slot].is_none())?;
                if let Some(s) = sum {
                    self.digests[h.slot] = Some(s);
                }
            }
            (Data::Bytes(b), _) => {
                self.out.write_all(b)?;
                if let Some(c) = copy.as_mut() {
                    c.write_all(b)?;
                }
            }
            _ => unreachable!("a host file is opened above"),
        }
        header::pad(&mut self.out, size)?;
        if let (Some((mi, _)), Some(c)) = (m, &copy) {
            mi.finish_file(c, &self.attrs(meta))?;
        }
        Ok(())
    }

    fn open(&self, h: &HostFile) -> Result<File> {
        // Symlinks are followed inside the source root, as the scan followed a source
        // named through one; the inode check below is what ties the open to the scan.
        let fd: OwnedFd = self
            .src
            .open_in(&h.rel, libc::O_RDONLY | libc::O_NONBLOCK, false)
            .with_context(|| format!("open {}", h.rel.display()))?;
        let st = crate::paths::fstat(fd.as_raw_fd())?;
        if !same_file(&st, h) {
            bail!("{}: changed while being copied", h.rel.display());
        }
        Ok(File::from(fd))
    }

    /// Copy exactly `size` bytes to the tar (and the mirror), hashing them if asked.
    fn data(
        &mut self,
        mut f: &File,
        size: u64,
        mut copy: Option<&mut File>,
        hash: bool,
    ) -> Result<Option<[u8; 32]>> {
        let mut h = hash.then(Sha256::new);
        let mut left = size;
        loop {
            // One byte more than expected, so growth shows and a short read means EOF.
            let want = (left + 1).min(self.buf.len() as u64) as usize;
            let n = read_retry(&mut f, &mut self.buf[..want])?;
            if n as u64 > left || (n == 0 && left > 0) {
                return Err(anyhow!("changed while being copied"));
            }
            if n == 0 {
                break;
            }
            let chunk = &self.buf[..n];
            self.out.write_all(chunk)?;
            if let Some(c) = copy.as_deref_mut() {
                c.write_all(chunk)?;
            }
            if let Some(h) = h.as_mut() {
                h.update(chunk);
            }
            (self.progress)(n as u64);
            self.stats.file_bytes += n as u64;
            left -= n as u64;
            if left == 0 && n < want {
                break;
            }
        }
        Ok(h.map(|h| h.finalize().into()))
    }
}

/// Whether `st` is still the file the plan saw (inode, size, mtime and ctime).
pub fn same_file(st: &libc::stat, h: &HostFile) -> bool {
    st.st_dev == h.dev
        && st.st_ino == h.ino
        && st.st_size as u64 == h.size
        && ns(st.st_mtime, st.st_mtime_nsec) == h.mtime_ns
        && ns(st.st_ctime, st.st_ctime_nsec) == h.ctime_ns
}

/// Seconds and nanoseconds as nanoseconds.
pub fn ns(s: i64, n: i64) -> i64 {
    s.saturating_mul(1_000_000_000).saturating_add(n)
}

fn read_retry(f: &mut &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn meta(mode: u32, mtime: i64) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: vec![],
        }
    }

    fn dir(existing: bool, mtime: i64, children: Vec<(&str, Node)>) -> Node {
        Node::Dir(Dir {
            meta: meta(0o755, mtime),
            existing,
            children: children
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        })
    }

    #[test]
    fn the_tar_and_the_layer_dir_say_the_same_and_sums_are_taken() {
        let t = std::env::temp_dir().join(format!("placed-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&t);
        let (src, mirror, unpacked) = (t.join("src"), t.join("mirror"), t.join("unpacked"));
        for d in [&src, &mirror, &unpacked] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(src.join("big"), vec![7u8; 300_000]).unwrap();
        let st = fs::metadata(src.join("big")).unwrap();
        let host = HostFile {
            rel: "big".into(),
            dev: st.dev(),
            ino: st.ino(),
            size: st.len(),
            mtime_ns: ns(st.mtime(), st.mtime_nsec()),
            ctime_ns: ns(st.ctime(), st.ctime_nsec()),
            slot: 0,
        };
        let Node::Dir(mut root) = dir(
            true,
            0,
            vec![
                (
                    "usr",
                    dir(true, 5, vec![("empty-existing", dir(true, 5, vec![]))]),
                ),
                (
                    "etc",
                    dir(
                        true,
                        5,
                        vec![
                            ("big", Node::File(meta(0o600, 9), Data::Host(host))),
                            (
                                "doc",
                                Node::File(meta(0o644, 9), Data::Bytes(b"hi\n".to_vec())),
                            ),
                            ("ln", Node::Symlink(meta(0o777, 9), b"doc".to_vec())),
                        ],
                    ),
                ),
            ],
        ) else {
            unreachable!()
        };
        root.prune();
        assert!(
            !root.children.contains_key(b"usr".as_slice()),
            "nothing was written into usr"
        );
        let root_fs = Root::open(&src).unwrap();
        let mut sums = vec![None];
        let o = PlacedOpts {
            copy_to: Some(&mirror),
            times: Times::Keep,
            now: 1000,
        };
        let (stats, tar) =
            write_placed(&root, &root_fs, Vec::new(), &o, &mut sums, &mut |_| {}).unwrap();
        assert_eq!(stats.entries, 4);
        let want: [u8; 32] = Sha256::digest(vec![7u8; 300_000]).into();
        assert_eq!(sums[0], Some(want));
        super::super::unpack(&tar[..], &unpacked, &Default::default()).unwrap();
        for d in [&mirror, &unpacked] {
            assert_eq!(fs::read(d.join("etc/big")).unwrap(), vec![7u8; 300_000]);
            assert_eq!(fs::read_to_string(d.join("etc/doc")).unwrap(), "hi\n");
            assert_eq!(fs::read_link(d.join("etc/ln")).unwrap(), Path::new("doc"));
            let m = fs::metadata(d.join("etc/big")).unwrap();
            assert_eq!((m.permissions().mode() & 0o7777, m.mtime()), (0o600, 9));
            // An existing directory that got a new child carries the step's time.
            assert_eq!(fs::metadata(d.join("etc")).unwrap().mtime(), 1000);
            assert!(!d.join("usr").exists());
        }
        // A source changed since the plan is refused, never written with a wrong size.
        fs::write(src.join("big"), b"shorter").unwrap();
        let o = PlacedOpts { copy_to: None, ..o };
        let err =
            write_placed(&root, &root_fs, Vec::new(), &o, &mut sums, &mut |_| {}).unwrap_err();
        assert!(
            format!("{err:#}").contains("changed while being copied"),
            "{err:#}"
        );
        fs::remove_dir_all(&t).unwrap();
    }
}
