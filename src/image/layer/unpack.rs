//! Layer tar → layer directory in overlay form: every write an `*at` call beneath the layer dir, whiteouts converted.

use super::attrs::Attrs;
use super::limits::BUF_SIZE;
use super::lowers::{self, Found, Gate, Here, Lowers};
use super::names::{self, Name, Oci};
use super::reader::{entry_error, Entry, TarReader, Type};
use super::sys::{self, Target};
use crate::image::store::direct::{Block, DirectFile, BLOCK};
use crate::image::whiteout::{self, XattrRule, OPAQUE_XATTR};
use crate::paths::Root;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Files this big are written past the page cache: at least one whole block goes direct.
const DIRECT_FROM: u64 = BLOCK as u64;

#[derive(Clone, Debug, Default)]
pub struct UnpackOpts {
    /// Layer dirs below this one, top-most first.
    pub lowers: Vec<PathBuf>,
    /// Passed before the lowers are first looked at: None if they are complete already.
    pub gate: Option<Gate>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries applied or skipped (extension headers not counted).
    pub entries: u64,
    /// Bytes of regular-file data written.
    pub file_bytes: u64,
}

/// Apply one OCI layer tar (uncompressed bytes) into `dir`, an existing EMPTY directory that
/// becomes this layer's overlay lowerdir. Reads `r` to EOF (bytes after the end-of-archive
/// blocks are drained, so a hashing reader around `r` covers the whole stream).
///
/// On error `dir` may hold partial content: the caller must discard it. Without a root
/// (`./`) entry in the tar, `dir` takes the top-most lower's root attributes, as overlay
/// shows the top layer's root.
pub fn unpack<R: Read>(r: R, dir: &Path, opts: &UnpackOpts) -> Result<UnpackStats> {
    let mut u = Unpacker::new(dir, opts)?;
    let mut tar = TarReader::new(r);
    while let Some(e) = tar.next()? {
        u.stats.entries += 1;
        u.entry(&e, &mut tar)
            .map_err(|err| entry_error(&e.path, format!("{err:#}")))?;
    }
    u.finish()
        .with_context(|| format!("unpacking a layer into {}", dir.display()))?;
    Ok(u.stats)
}

/// What this layer has made at a path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Made {
    /// A directory entry of the tar.
    Dir,
    /// A directory the tar needed but did not list.
    ImplicitDir,
    /// Anything else.
    Other,
}

struct Unpacker {
    root: Root,
    lowers: Lowers,
    /// Keyed by path; ordered so that a removed directory's contents are one range.
    made: BTreeMap<Vec<u8>, Made>,
    opaque: BTreeSet<Vec<u8>>,
    /// `.wh.` entries, applied at the end: a whiteout never hides its own layer's entries,
    /// wherever it sits in the tar.
    /// The hidden path, and the owner and times the whiteout device gets.
    whiteouts: Vec<(Vec<Vec<u8>>, Attrs)>,
    whited: HashSet<Vec<u8>>,
    /// Directory times, set last (their children change them). Keyed by path.
    dir_times: BTreeMap<Vec<u8>, Attrs>,
    root_entry: bool,
    /// The last parent directory used: tars list siblings together.
    cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    buf: Vec<u8>,
    /// The staging block of big files' direct writes, kept from one to the next.
    block: Option<Block>,
    stats: UnpackStats,
}

impl Unpacker {
    fn new(dir: &Path, opts: &UnpackOpts) -> Result<Unpacker> {
        let root = Root::open(dir).with_context(|| format!("layer dir {}", dir.display()))?;
        let rd = sys::open_dir(root.fd(), c".")?;
        if !sys::read_dir_names(rd.as_raw_fd())?.is_empty() {
            bail!("layer dir {} is not empty", dir.display());
        }
        Ok(Unpacker {
            root,
            lowers: Lowers::new(&opts.lowers, opts.gate.clone()),
            made: BTreeMap::new(),
            opaque: BTreeSet::new(),
            whiteouts: Vec::new(),
            whited: HashSet::new(),
            dir_times: BTreeMap::new(),
            root_entry: false,
            cache: None,
            buf: vec![0; BUF_SIZE],
            block: None,
            stats: UnpackStats::default(),
        })
    }

    fn entry<R: Read>(&mut self, e: &Entry, tar: &mut TarReader<R>) -> Result<()> {
        let name = Name::parse(&e.path)?;
        if e.kind != Type::Dir && e.path.ends_with(b"/") {
            bail!("a {:?} entry with a trailing slash", e.kind);
        }
        if name.0.first().is_some_and(|c| whiteout::is_aufs_meta(c)) {
            return Ok(()); // aufs hardlink dir and friends: legacy, ignored
        }
        if name.is_root() {
            return self.root_dir(e);
        }
        match names::oci(name.base())? {
            Oci::Plain => {}
            _ if e.kind != Type::File => {
                bail!("a whiteout must be a regular file, not {:?}", e.kind)
            }
            Oci::Whiteout(hidden) => {
                let mut p = name.parent().to_vec();
                p.push(hidden);
                if self.whited.insert(names::join(&p)) {
                    let attrs = self.attrs(e)?;
                    self.whiteouts.push((p, attrs));
                }
                return Ok(());
            }
            Oci::Opaque => return self.opaque(name.parent()),
        }
        let attrs = self.attrs(e)?;
        let parent_fd = self.parent(name.parent())?;
        let parent = parent_fd.as_raw_fd();
        let base = sys::cname(name.base())?;
        let key = names::join(&name.0);
        match e.kind {
            Type::Dir => {
                self.dir(parent, &base, &key, &attrs)?;
                self.made.insert(key, Made::Dir);
                return Ok(());
            }
            Type::HardLink => self.hardlink(&e.link, parent, &base, &key)?,
            Type::File => {
                self.clear(parent, &base, &key, false)?;
                self.file(parent, &base, &attrs, tar, e.size)?;
            }
            Type::Symlink => {
                self.clear(parent, &base, &key, false)?;
                sys::symlink_at(&e.link, parent, &base)?;
                attrs.apply(Target::At(parent, &base), true)?;
                attrs.apply_times(Target::At(parent, &base))?;
            }
            Type::Char | Type::Block | Type::Fifo => {
                self.clear(parent, &base, &key, false)?;
                self.node(e, parent, &base, &attrs)?;
            }
        }
        self.made.insert(key, Made::Other);
        Ok(())
    }

    /// The attributes an entry asks for; overlay xattrs are refused (forged whiteouts,
    /// opaque dirs, redirects or metacopy in our lowerdirs), host-policy ones dropped.
    fn attrs(&self, e: &Entry) -> Result<Attrs> {
        let mut xattrs = Vec::new();
        for (k, v) in &e.xattrs {
            match whiteout::xattr_rule(k) {
                XattrRule::Carry => xattrs.push((k.clone(), v.clone())),
                XattrRule::HostOnly => {}
                XattrRule::Overlay => bail!(
                    "forged overlay metadata: xattr {:?}",
                    String::from_utf8_lossy(k)
                ),
            }
        }
        Ok(Attrs {
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
            atime: e.atime,
            xattrs,
        })
    }

    fn root_dir(&mut self, e: &Entry) -> Result<()> {
        if e.kind != Type::Dir {
            bail!("only a directory can name the layer root");
        }
        let attrs = self.attrs(e)?;
        let fd = sys::open_dir(self.root.fd(), c".")?;
        attrs.apply(Target::Fd(fd.as_raw_fd()), false)?;
        self.dir_times.insert(Vec::new(), attrs);
        self.root_entry = true;
        Ok(())
    }

    /// Mark `dir` (made if missing) opaque to the lowers.
    fn opaque(&mut self, dir: &[Vec<u8>]) -> Result<()> {
        let fd = sys::open_dir(self.parent(dir)?.as_raw_fd(), c".")?;
        Target::Fd(fd.as_raw_fd()).set_xattr(OPAQUE_XATTR.as_bytes(), b"y")?;
        self.opaque.insert(names::join(dir));
        Ok(())
    }

    /// Make way for a new entry at `key`: a non-directory of this layer is unlinked, a
    /// directory removed with its contents unless the new entry is one too.
    fn clear(&mut self, parent: RawFd, base: &CStr, key: &[u8], dir: bool) -> Result<bool> {
        let Some(st) = sys::lstat_opt(parent, base)? else {
            return Ok(false);
        };
        if sys::is_dir(&st) {
            if dir {
                return Ok(true);
            }
            sys::remove_all_at(parent, base)?;
            self.forget_below(key);
        } else {
            sys::unlink_at(parent, base, false)?;
        }
        Ok(false)
    }

    // A directory went away: neither it nor anything below it is ours any more. Its
    // contents are the keys from "key/" up to "key0" ('0' follows '/'), removed as a range
    // so that a tar replacing many directories costs no more than making them.
    fn forget_below(&mut self, key: &[u8]) {
        let (from, to) = ([key, b"/"].concat(), [key, b"0"].concat());
        let below: Vec<Vec<u8>> = self
            .made
            .range(from.clone()..to.clone())
            .map(|(k, _)| k.clone())
            .collect();
        for k in below.iter().chain([&key.to_vec()]) {
            self.made.remove(k);
            self.dir_times.remove(k);
        }
        let opaque: Vec<Vec<u8>> = self.opaque.range(from..to).cloned().collect();
        for k in opaque.iter().chain([&key.to_vec()]) {
            self.opaque.remove(k);
        }
        self.cache = None;
    }

    fn dir(&mut self, parent: RawFd, base: &CStr, key: &[u8], attrs: &Attrs) -> Result<()> {
        if !self.clear(parent, base, key, true)? {
            sys::mkdir_at(parent, base, 0o700)?;
        }
        let fd = sys::open_dir(parent, base)?;
        attrs.apply(Target::Fd(fd.as_raw_fd()), false)?;
        self.dir_times.insert(key.to_vec(), attrs.clone());
        Ok(())
    }

    /// A regular file: created exclusively (never through a symlink), data, then attributes.
    fn file<R: Read>(
        &mut self,
        parent: RawFd,
        base: &CStr,
        attrs: &Attrs,
        tar: &mut TarReader<R>,
        size: u64,
    ) -> Result<()> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        let mut f = File::from(sys::open_nofollow(parent, base, flags, 0o600)?);
        if size >= DIRECT_FROM {
            f = self.direct_data(f, tar)?;
        } else {
            loop {
                let n = tar.read_data(&mut self.buf)?;
                if n == 0 {
                    break;
                }
                f.write_all(&self.buf[..n])?;
                self.stats.file_bytes += n as u64;
            }
        }
        let t = Target::Fd(f.as_raw_fd());
        attrs.apply(t, false)?;
        Ok(attrs.apply_times(t)?)
    }

    /// A big file's data, read into the aligned block and written past the page cache
    /// (`store::direct`): most of a layer's bytes, which a buffered write would give a
    /// fresh page-cache page each. What a container reads of it later is read from disk.
    fn direct_data<R: Read>(&mut self, f: File, tar: &mut TarReader<R>) -> Result<File> {
        let block = match self.block.take() {
            Some(b) => b,
            None => Block::new()?,
        };
        let mut d = DirectFile::new(f, block);
        loop {
            let n = tar.read_data(d.spare())?;
            if n == 0 {
                break;
            }
            d.filled(n)?;
            self.stats.file_bytes += n as u64;
        }
        let (f, block) = d.finish()?;
        self.block = Some(block);
        Ok(f)
    }

    /// A device or fifo. Kept as is: layer dirs are only ever overlay lowers of containers
    /// whose device access is the runtime's business (cgroup device rules).
    fn node(&mut self, e: &Entry, parent: RawFd, base: &CStr, attrs: &Attrs) -> Result<()> {
        let kind = match e.kind {
            Type::Char => libc::S_IFCHR,
            Type::Block => libc::S_IFBLK,
            _ => libc::S_IFIFO,
        };
        sys::mknod_at(parent, base, kind | 0o600, libc::makedev(e.dev.0, e.dev.1))?;
        let t = Target::At(parent, base);
        attrs.apply(t, false)?;
        Ok(attrs.apply_times(t)?)
    }
}

// Paths: parents, implicit directories, lower lookups.
impl Unpacker {
    /// What this layer has at `comps`, for the lower lookups.
    fn here(&self, comps: &[Vec<u8>]) -> Here {
        let key = names::join(comps);
        if self.whited.contains(&key) || self.opaque.contains(&key) {
            return Here::Hides;
        }
        match self.made.get(&key) {
            Some(Made::Other) => Here::Hides,
            Some(_) => Here::Dir,
            None => Here::Missing,
        }
    }

    /// The directory `comps` of this layer, as an O_PATH fd, creating what is missing.
    /// Symlinks are refused on the way (RESOLVE_NO_SYMLINKS, or the O_NOFOLLOW walk): a
    /// layer that makes `a -> /etc` and then writes `a/passwd` must fail, not write the host
    /// (CVE-2021-29136, CVE-2026-33056 classes).
    fn parent(&mut self, comps: &[Vec<u8>]) -> Result<Rc<OwnedFd>> {
        let key = names::join(comps);
        if let Some((k, fd)) = &self.cache {
            if *k == key {
                return Ok(fd.clone());
            }
        }
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let rel = if key.is_empty() { &b"."[..] } else { &key[..] };
        let fd = match self
            .root
            .open_in(Path::new(OsStr::from_bytes(rel)), flags, true)
        {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) =>
            {
                self.walk_parents(comps)?
            }
            Err(e) => return Err(e.into()),
        };
        let fd = Rc::new(fd);
        self.cache = Some((key, fd.clone()));
        Ok(fd)
    }

    // Component by component: say which one is a symlink or not a directory, and make the
    // missing ones.
    fn walk_parents(&mut self, comps: &[Vec<u8>]) -> Result<OwnedFd> {
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let mut cur = sys::open_nofollow(self.root.fd(), c".", flags, 0)?;
        for k in 0..comps.len() {
            let name = sys::cname(&comps[k])?;
            let shown = || String::from_utf8_lossy(&names::join(&comps[..=k])).into_owned();
            match sys::lstat_opt(cur.as_raw_fd(), &name)? {
                None => self.implicit_dir(cur.as_raw_fd(), &name, &comps[..=k])?,
                Some(st) if sys::is_dir(&st) => {}
                Some(st) if sys::file_type(&st) == libc::S_IFLNK => {
                    bail!("{:?} is a symlink: path leaves the layer", shown())
                }
                Some(_) => bail!("{:?} is not a directory", shown()),
            }
            cur = sys::open_nofollow(cur.as_raw_fd(), &name, flags, 0)?;
        }
        Ok(cur)
    }

    /// A directory the tar did not list: like the lower's if a lower shows one there
    /// (mode, owner, times, xattrs), else 0755 root:root.
    fn implicit_dir(&mut self, parent: RawFd, name: &CStr, comps: &[Vec<u8>]) -> Result<()> {
        let attrs = match self.lowers.lookup(comps, |p| self.here(p))? {
            Found::Dir(lower, st) => Some(lowers::attrs_of(Target::Fd(lower.as_raw_fd()), &st)?),
            Found::Nothing => None,
            Found::Other(_, st) => return Err(lowers::not_a_dir(comps, &st)),
        };
        sys::mkdir_at(parent, name, 0o700)?;
        let fd = sys::open_dir(parent, name)?;
        let t = Target::Fd(fd.as_raw_fd());
        match attrs {
            Some(a) => {
                a.apply(t, false)?;
                self.dir_times.insert(names::join(comps), a);
            }
            None => {
                t.chown(0, 0)?;
                t.chmod(0o755)?;
            }
        }
        self.made.insert(names::join(comps), Made::ImplicitDir);
        Ok(())
    }
}

// Hard links: resolved beneath this layer, else copied up from a lower.
impl Unpacker {
    /// Link `base` in `parent` to `link`, a path in this layer or, copied up, in a lower one
    /// (overlay cannot link across layers). The target is resolved with the same rules as
    /// entry names: no `..`, not absolute, no symlink on the way, not a directory
    /// (CVE-2014-6407 class).
    fn hardlink(&mut self, link: &[u8], parent: RawFd, base: &CStr, key: &[u8]) -> Result<()> {
        let target = Name::parse(link).context("hard link target")?;
        if target.is_root() {
            bail!("hard link target is a directory");
        }
        let tparent = self.link_source(&target).context("hard link target")?;
        let tbase = sys::cname(target.base())?;
        self.clear(parent, base, key, false)?;
        sys::link_at(tparent.as_raw_fd(), &tbase, parent, base)?;
        Ok(())
    }

    /// The directory holding the link target in this layer, copying the target up first if
    /// only a lower layer has it.
    fn link_source(&mut self, target: &Name) -> Result<Rc<OwnedFd>> {
        let tbase = sys::cname(target.base())?;
        let dir = names::join(target.parent());
        let rel = if dir.is_empty() { &b"."[..] } else { &dir[..] };
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        match self
            .root
            .open_in(Path::new(OsStr::from_bytes(rel)), flags, true)
        {
            Ok(fd) => match sys::lstat_opt(fd.as_raw_fd(), &tbase)? {
                Some(st) if sys::is_dir(&st) => bail!("is a directory"),
                Some(_) => return Ok(Rc::new(fd)),
                None => {}
            },
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => bail!("goes through a symlink"),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
            Err(e) => return Err(e.into()),
        }
        match self.lowers.lookup(&target.0, |p| self.here(p))? {
            Found::Nothing => bail!("does not exist"),
            Found::Dir(..) => bail!("is a directory"),
            Found::Other(lower, st) => self.copy_up(target, lower.as_raw_fd(), &st),
        }
    }

    /// Copy a lower non-directory (data, owner, mode, times, xattrs) into this layer at the
    /// same path; returns the directory it is in.
    fn copy_up(&mut self, target: &Name, lower: RawFd, st: &libc::stat) -> Result<Rc<OwnedFd>> {
        let parent = self.parent(target.parent())?;
        let p = parent.as_raw_fd();
        let name = sys::cname(target.base())?;
        let src = Target::At(lower, &name);
        let attrs = lowers::attrs_of(src, st)?;
        let ftype = sys::file_type(st);
        let t = match ftype {
            libc::S_IFREG => {
                let from = File::from(sys::open_nofollow(lower, &name, libc::O_RDONLY, 0)?);
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
                let mut to = File::from(sys::open_nofollow(p, &name, flags, 0o600)?);
                copy_file(&from, &mut to, &mut self.buf)?;
                attrs.apply(Target::Fd(to.as_raw_fd()), false)?;
                attrs.apply_times(Target::Fd(to.as_raw_fd()))?;
                None
            }
            libc::S_IFLNK => {
                sys::symlink_at(&sys::readlink_at(lower, &name)?, p, &name)?;
                Some(true)
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                sys::mknod_at(p, &name, ftype | 0o600, st.st_rdev)?;
                Some(false)
            }
            _ => bail!("a lower file of type {ftype:o} cannot be copied up"),
        };
        if let Some(symlink) = t {
            attrs.apply(Target::At(p, &name), symlink)?;
            attrs.apply_times(Target::At(p, &name))?;
        }
        self.made.insert(names::join(&target.0), Made::Other);
        Ok(parent)
    }
}

fn copy_file(mut from: &File, to: &mut File, buf: &mut [u8]) -> Result<()> {
    loop {
        let n = from.read(buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

// The end of the stream: whiteouts, the root's attributes, directory times.
impl Unpacker {
    fn finish(&mut self) -> Result<()> {
        for (p, attrs) in std::mem::take(&mut self.whiteouts) {
            self.whiteout(&p, &attrs).map_err(|e| {
                let mut shown = p.clone();
                if let Some(last) = shown.last_mut() {
                    last.splice(0..0, whiteout::WH_PREFIX.bytes());
                }
                entry_error(&names::join(&shown), format!("{e:#}"))
            })?;
        }
        if !self.root_entry {
            self.root_from_lower()?;
        }
        for (key, attrs) in &self.dir_times {
            let rel = if key.is_empty() { &b"."[..] } else { &key[..] };
            let flags = libc::O_RDONLY | libc::O_DIRECTORY;
            let fd = self
                .root
                .open_in(Path::new(OsStr::from_bytes(rel)), flags, true)?;
            attrs.apply_times(Target::Fd(fd.as_raw_fd()))?;
        }
        Ok(())
    }

    /// Hide lower `p`: a 0/0 character device, or, if this layer made a directory there,
    /// that directory made opaque (the lower one was deleted, this one created).
    fn whiteout(&mut self, p: &[Vec<u8>], attrs: &Attrs) -> Result<()> {
        for k in 0..p.len() {
            let key = names::join(&p[..k]);
            // Already hidden by an opaque dir or a non-directory of this layer.
            if self.opaque.contains(&key) || self.made.get(&key) == Some(&Made::Other) {
                return Ok(());
            }
        }
        match self.made.get(&names::join(p)) {
            Some(Made::Other) => return Ok(()),
            Some(_) => return self.opaque(p),
            None => {}
        }
        let parent = self.parent(&p[..p.len() - 1])?;
        let name = sys::cname(&p[p.len() - 1])?;
        sys::mknod_at(parent.as_raw_fd(), &name, libc::S_IFCHR, 0)?;
        // Mode 0, as overlayfs makes them; owner and times from the entry, so that a layer
        // dir is the same whoever unpacks it, and when.
        let t = Target::At(parent.as_raw_fd(), &name);
        t.chown(attrs.uid, attrs.gid)?;
        Ok(t.set_times(attrs.atime, attrs.mtime)?)
    }

    fn root_from_lower(&mut self) -> Result<()> {
        let Some(top) = self.lowers.top_root()? else {
            return Ok(());
        };
        let st = crate::paths::fstat(top.as_raw_fd())?;
        let attrs = lowers::attrs_of(Target::Fd(top.as_raw_fd()), &st)?;
        let fd = sys::open_dir(self.root.fd(), c".")?;
        attrs.apply(Target::Fd(fd.as_raw_fd()), false)?;
        self.dir_times.insert(Vec::new(), attrs);
        Ok(())
    }
}
