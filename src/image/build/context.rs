//! Where COPY and ADD read from: the build context (its `.dockerignore` applied) or
//! another stage's or image's filesystem; source patterns resolved beneath it, and the
//! checksum of what they name (content and metadata, never times) for the cache key.

use anyhow::{bail, Context as _, Result};
use sha2::{Digest as _, Sha256};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::dockerfile::ignore::Matcher as Ignore;
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

    /// Feed what `m` names into `h`: for each file below it its relative path, type,
    /// mode, owner (for stage and image sources), link target and content.
    pub fn checksum(&self, m: &Matched, h: &mut Sha256) -> Result<()> {
        let flags = if m.is_dir {
            libc::O_RDONLY | libc::O_DIRECTORY
        } else {
            libc::O_RDONLY | libc::O_NONBLOCK
        };
        let fd = self
            .root
            .open_in(&m.rel, flags, false)
            .with_context(|| format!("{} in {}", m.rel.display(), self.what))?;
        let st = crate::paths::fstat(fd.as_raw_fd())?;
        self.hash_node(&fd, None, &m.rel, Path::new(""), &st, h)
    }

    fn hash_node(
        &self,
        fd: &OwnedFd,
        link: Option<Vec<u8>>,
        rel: &Path,
        shown: &Path,
        st: &libc::stat,
        h: &mut Sha256,
    ) -> Result<()> {
        let field = |h: &mut Sha256, b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(h, shown.as_os_str().as_bytes());
        let owner = if self.ignore.is_some() {
            (0, 0)
        } else {
            (st.st_uid, st.st_gid)
        };
        field(
            h,
            format!("{:o} {} {} {}", st.st_mode, owner.0, owner.1, st.st_size).as_bytes(),
        );
        if let Some(l) = link {
            field(h, &l);
            return Ok(());
        }
        match sys::file_type(st) {
            libc::S_IFREG => {
                let mut f = File::from(fd.try_clone()?);
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            libc::S_IFDIR => {
                for name in self.children(fd.as_raw_fd(), rel)? {
                    let c = sys::cname(&name)?;
                    let cst = sys::lstat_at(fd.as_raw_fd(), &c)?;
                    let child_rel = rel.join(OsStr::from_bytes(&name));
                    let child_shown = shown.join(OsStr::from_bytes(&name));
                    match sys::file_type(&cst) {
                        libc::S_IFLNK => {
                            let l = sys::readlink_at(fd.as_raw_fd(), &c)?;
                            self.hash_node(fd, Some(l), &child_rel, &child_shown, &cst, h)?;
                        }
                        libc::S_IFDIR | libc::S_IFREG => {
                            let flags = if sys::is_dir(&cst) {
                                libc::O_RDONLY | libc::O_DIRECTORY
                            } else {
                                libc::O_RDONLY | libc::O_NONBLOCK
                            };
                            let cfd = sys::open_nofollow(fd.as_raw_fd(), &c, flags, 0)?;
                            self.hash_node(&cfd, None, &child_rel, &child_shown, &cst, h)?;
                        }
                        _ => {
                            field(h, child_shown.as_os_str().as_bytes());
                            field(h, format!("{:o} {}", cst.st_mode, cst.st_rdev).as_bytes());
                        }
                    }
                }
            }
            _ => field(h, format!("{}", st.st_rdev).as_bytes()),
        }
        Ok(())
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
