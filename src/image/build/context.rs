//! Where COPY and ADD read from: the build context (its `.dockerignore` applied) or
//! another stage's or image's filesystem; source patterns resolved beneath it, and the
//! scan of what they name: the tree COPY places, and the checksum (content and metadata,
//! never times) of the cache key.

use anyhow::{bail, Context as _, Result};
use sha2::{Digest as _, Sha256};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::dockerfile::ignore::Matcher as Ignore;
use super::sums::{now_ns, Sums};
use crate::image::layer::placed::{ns, same_file, Data, Dir, HostFile, Meta, Node};
use crate::image::layer::sys;
use crate::paths::Root;

/// A tree COPY reads from, every lookup beneath its root.
pub struct Source {
    pub root: Root,
    /// The build context's `.dockerignore`; None for a stage or an image.
    pub ignore: Option<Ignore>,
    /// What errors call it ("the build context", "stage builder").
    pub what: String,
    /// Keeps a detached mount (another stage's view) alive as long as the root is used.
    pub _mount: Option<OwnedFd>,
}

/// One source path a pattern matched, relative to the source root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    pub rel: PathBuf,
    pub is_dir: bool,
}

/// A path cleaned as Go's `path.Clean` would, relative; None if `..` leaves the root.
pub fn clean_relative(p: &str) -> Option<PathBuf> {
    let mut out: Vec<&OsStr> = vec![];
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop()?;
            }
            _ => {}
        }
    }
    Some(out.iter().collect())
}

/// An absolute path cleaned lexically (`..` at `/` stays at `/`).
pub fn clean_absolute(p: &str) -> PathBuf {
    let mut out: Vec<&OsStr> = vec![];
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Path::new("/").join(out.iter().collect::<PathBuf>())
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// fnmatch(3) of one path component (Go's filepath.Match for one element).
pub fn component_match(pattern: &[u8], name: &[u8]) -> bool {
    let (Ok(p), Ok(n)) = (CString::new(pattern), CString::new(name)) else {
        return false;
    };
    unsafe { libc::fnmatch(p.as_ptr(), n.as_ptr(), libc::FNM_PATHNAME) == 0 }
}

impl Source {
    pub fn open(dir: &Path, ignore: Option<Ignore>, what: &str) -> Result<Source> {
        let root = Root::open(dir).with_context(|| format!("open {what} {}", dir.display()))?;
        Ok(Source {
            root,
            ignore,
            what: what.to_string(),
            _mount: None,
        })
    }

    /// A detached mount (its fd) as a source.
    pub fn of_mount(mount: OwnedFd, what: &str) -> Result<Source> {
        let root = Root::open(Path::new(&format!("/proc/self/fd/{}", mount.as_raw_fd())))?;
        Ok(Source {
            root,
            ignore: None,
            what: what.to_string(),
            _mount: Some(mount),
        })
    }

    fn ignored(&self, rel: &Path) -> bool {
        self.ignore
            .as_ref()
            .is_some_and(|i| i.excluded(&rel.to_string_lossy()))
    }

    fn stat(&self, rel: &Path) -> std::io::Result<libc::stat> {
        let fd = self.root.open_in(rel, libc::O_PATH, false)?;
        crate::paths::fstat(fd.as_raw_fd())
    }

    /// The paths a COPY source names: one path, or what a wildcard matches (sorted).
    /// A path outside the root, a missing one or a wildcard matching nothing is an error.
    pub fn resolve(&self, pattern: &str) -> Result<Vec<Matched>> {
        let Some(rel) = clean_relative(pattern) else {
            bail!(
                "{pattern}: outside {} (a source cannot go above its root with ..)",
                self.what
            );
        };
        let found = if has_wildcard(pattern) {
            self.glob(&rel)?
        } else {
            match self.stat(&rel) {
                Ok(st) if !self.ignored(&rel) || rel.as_os_str().is_empty() => vec![Matched {
                    rel: rel.clone(),
                    is_dir: sys::is_dir(&st),
                }],
                Ok(_) => vec![],
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => vec![],
                Err(e) => return Err(e).with_context(|| format!("{pattern} in {}", self.what)),
            }
        };
        if found.is_empty() {
            bail!("{pattern}: not found in {}", self.what);
        }
        Ok(found)
    }

    // filepath.Glob, one component at a time, never leaving the root.
    fn glob(&self, rel: &Path) -> Result<Vec<Matched>> {
        let mut cur: Vec<PathBuf> = vec![PathBuf::new()];
        let comps: Vec<&OsStr> = rel.iter().collect();
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let mut next = vec![];
            for base in &cur {
                if !has_wildcard(&c.to_string_lossy()) {
                    let p = base.join(c);
                    if self.stat(&p).is_ok() {
                        next.push(p);
                    }
                    continue;
                }
                let Ok(fd) = self.open_dir(base) else {
                    continue;
                };
                let mut names = sys::read_dir_names(fd.as_raw_fd())?;
                names.sort();
                for n in names {
                    if component_match(c.as_bytes(), &n) {
                        let p = base.join(OsStr::from_bytes(&n));
                        let st = self.stat(&p);
                        if last || st.as_ref().is_ok_and(sys::is_dir) {
                            next.push(p);
                        }
                    }
                }
            }
            cur = next;
        }
        let mut out = vec![];
        for p in cur {
            if self.ignored(&p) {
                continue;
            }
            let st = self.stat(&p)?;
            out.push(Matched {
                is_dir: sys::is_dir(&st),
                rel: p,
            });
        }
        Ok(out)
    }

    pub fn open_dir(&self, rel: &Path) -> std::io::Result<OwnedFd> {
        self.root
            .open_in(rel, libc::O_RDONLY | libc::O_DIRECTORY, false)
    }

    /// The entries of a directory of the source that COPY takes, sorted (ignored ones
    /// left out).
    pub fn children(&self, dir: RawFd, rel: &Path) -> Result<Vec<Vec<u8>>> {
        let mut names = sys::read_dir_names(dir)?;
        names.sort();
        names.retain(|n| !self.ignored(&rel.join(OsStr::from_bytes(n))));
        Ok(names)
    }

    /// Whether this is the build context (whose owners COPY never keeps).
    pub fn is_context(&self) -> bool {
        self.ignore.is_some()
    }

    /// What `m` names, as a tree of its source metadata (read beneath the root, the
    /// ignored left out), its files numbered in `scan`, and the checksum records of each
    /// entry below it: relative path, type, mode, owner (for stage and image sources), link
    /// target and content.
    pub fn scan(&self, m: &Matched, scan: &mut Scan) -> Result<Node> {
        let fd = self
            .root
            .open_in(&m.rel, libc::O_PATH, false)
            .with_context(|| format!("{} in {}", m.rel.display(), self.what))?;
        let st = crate::paths::fstat(fd.as_raw_fd())?;
        let flags = if sys::is_dir(&st) {
            libc::O_RDONLY | libc::O_DIRECTORY
        } else {
            libc::O_PATH
        };
        let fd = self
            .root
            .open_in(&m.rel, flags, false)
            .with_context(|| format!("{} in {}", m.rel.display(), self.what))?;
        self.scan_node(&fd, None, &m.rel, Path::new(""), &st, scan)
    }

    fn scan_node(
        &self,
        fd: &OwnedFd,
        link: Option<Vec<u8>>,
        rel: &Path,
        shown: &Path,
        st: &libc::stat,
        scan: &mut Scan,
    ) -> Result<Node> {
        scan.field(shown.as_os_str().as_bytes());
        let owner = if self.is_context() {
            (0, 0)
        } else {
            (st.st_uid, st.st_gid)
        };
        scan.field(format!("{:o} {} {} {}", st.st_mode, owner.0, owner.1, st.st_size).as_bytes());
        let meta = Meta {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            xattrs: vec![],
        };
        if let Some(l) = link {
            scan.field(&l);
            return Ok(Node::Symlink(meta, l));
        }
        match sys::file_type(st) {
            libc::S_IFREG => {
                let slot = scan.files.len();
                let h = HostFile {
                    rel: rel.to_path_buf(),
                    dev: st.st_dev,
                    ino: st.st_ino,
                    size: st.st_size as u64,
                    mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
                    ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
                    slot,
                };
                scan.records.push(Record::Content(slot));
                scan.files.push(h.clone());
                Ok(Node::File(meta, Data::Host(h)))
            }
            libc::S_IFDIR => {
                let mut d = Dir {
                    meta,
                    ..Default::default()
                };
                for name in self.children(fd.as_raw_fd(), rel)? {
                    let c = sys::cname(&name)?;
                    let cst = sys::lstat_at(fd.as_raw_fd(), &c)?;
                    let child_rel = rel.join(OsStr::from_bytes(&name));
                    let child_shown = shown.join(OsStr::from_bytes(&name));
                    let node = match sys::file_type(&cst) {
                        libc::S_IFLNK => {
                            let l = sys::readlink_at(fd.as_raw_fd(), &c)?;
                            self.scan_node(fd, Some(l), &child_rel, &child_shown, &cst, scan)?
                        }
                        libc::S_IFDIR | libc::S_IFREG => {
                            let flags = if sys::is_dir(&cst) {
                                libc::O_RDONLY | libc::O_DIRECTORY
                            } else {
                                libc::O_PATH
                            };
                            let cfd = sys::open_nofollow(fd.as_raw_fd(), &c, flags, 0)?;
                            self.scan_node(&cfd, None, &child_rel, &child_shown, &cst, scan)?
                        }
                        kind => {
                            scan.field(child_shown.as_os_str().as_bytes());
                            scan.field(format!("{:o} {}", cst.st_mode, cst.st_rdev).as_bytes());
                            // Sockets are not copied, nor 0/0 devices (overlay whiteouts).
                            if kind == libc::S_IFSOCK || (kind == libc::S_IFCHR && cst.st_rdev == 0)
                            {
                                continue;
                            }
                            let m = Meta {
                                mode: cst.st_mode & 0o7777,
                                uid: cst.st_uid,
                                gid: cst.st_gid,
                                mtime: cst.st_mtime,
                                xattrs: vec![],
                            };
                            Node::Device(m, kind, cst.st_rdev)
                        }
                    };
                    d.children.insert(name, node);
                }
                Ok(Node::Dir(d))
            }
            kind => {
                scan.field(format!("{}", st.st_rdev).as_bytes());
                Ok(Node::Device(meta, kind, st.st_rdev))
            }
        }
    }
}

/// One record of a COPY checksum: bytes, or the content digest of a scanned file.
enum Record {
    Bytes(Vec<u8>),
    Content(usize),
}

/// What COPY's sources were found to be: their files (by slot) and digests as far as
/// known, and the records their checksum is made of.
#[derive(Default)]
pub struct Scan {
    pub files: Vec<HostFile>,
    pub digests: Vec<Option<[u8; 32]>>,
    records: Vec<Record>,
}

impl Scan {
    /// A length-prefixed field, so that no two field lists hash alike.
    pub fn field(&mut self, b: &[u8]) {
        let mut v = (b.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(b);
        self.records.push(Record::Bytes(v));
    }

    /// Take what `sums` knows (context files only: other sources are mounts whose inode
    /// numbers do not last).
    pub fn recall(&mut self, sums: &mut Sums, src: &Source) {
        self.digests.resize(self.files.len(), None);
        if !src.is_context() {
            return;
        }
        for (i, f) in self.files.iter().enumerate() {
            self.digests[i] = self.digests[i].or_else(|| sums.get(f));
        }
    }

    /// Read the files whose digest is not known yet.
    pub fn fill(&mut self, src: &Source, sums: &mut Sums) -> Result<()> {
        self.digests.resize(self.files.len(), None);
        let mut buf = vec![0u8; 256 * 1024];
        for (i, f) in self.files.iter().enumerate() {
            if self.digests[i].is_some() {
                continue;
            }
            let read_at = now_ns();
            let fd = src
                .root
                .open_in(&f.rel, libc::O_RDONLY | libc::O_NONBLOCK, false)
                .with_context(|| format!("{} in {}", f.rel.display(), src.what))?;
            if !same_file(&crate::paths::fstat(fd.as_raw_fd())?, f) {
                bail!(
                    "{} in {}: changed while being read",
                    f.rel.display(),
                    src.what
                );
            }
            let mut file = File::from(fd);
            let mut h = Sha256::new();
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            let sum: [u8; 32] = h.finalize().into();
            self.digests[i] = Some(sum);
            if src.is_context() {
                sums.put(f, sum, read_at);
            }
        }
        Ok(())
    }

    /// Remember the digests a layer writer computed (read from `read_at` on).
    pub fn learnt(&self, src: &Source, sums: &mut Sums, read_at: i64) {
        if !src.is_context() {
            return;
        }
        for (f, d) in self.files.iter().zip(&self.digests) {
            if let Some(d) = d {
                sums.put(f, *d, read_at);
            }
        }
    }

    /// The checksum of everything scanned (all digests must be known).
    pub fn checksum(&self) -> Result<[u8; 32]> {
        let mut h = Sha256::new();
        for r in &self.records {
            match r {
                Record::Bytes(b) => h.update(b),
                Record::Content(i) => match self.digests.get(*i).copied().flatten() {
                    Some(d) => h.update(d),
                    None => bail!("internal: the content of a COPY source was not read"),
                },
            }
        }
        Ok(h.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_and_matching() {
        assert_eq!(clean_relative("./a/../b/"), Some(PathBuf::from("b")));
        assert_eq!(clean_relative("/etc/x"), Some(PathBuf::from("etc/x")));
        assert_eq!(clean_relative("a/../../x"), None);
        assert_eq!(clean_absolute("/a/../../b/./c"), PathBuf::from("/b/c"));
        assert!(component_match(b"*.txt", b"a.txt"));
        assert!(!component_match(b"*.txt", b"a.md"));
        assert!(component_match(b"f?[0-9]", b"fa1"));
    }
}
