//! Where a COPY's files land in the image, planned without touching it: the destination
//! resolved in a read-only view of the stage's layers (an image symlink followed only
//! inside the image, as docker's FollowSymlinkInScope, and the layer recording the path
//! it leads to), the sources' scanned trees placed there with COPY's owner and mode, and
//! the directories on the way as an overlay copy-up would record them. The layer is then
//! written from that plan in one pass (`layer::placed`).
//!
//! Anything the plan cannot express the way the overlay copy would do it (an ADDed
//! archive, a destination below a non-directory, a symlink loop) returns None, and the
//! step takes the overlay path, whose errors are the reference.

use anyhow::{Context, Result};
use std::ffi::{OsStr, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::context::Matched;
use super::copy::{Attrs, Dest};
use crate::image::layer::placed::{Dir, Meta, Node};
use crate::image::layer::sys::{self, Target};
use crate::image::whiteout::{self, XattrRule};
use crate::paths::Root;

/// Symlinks followed in one destination before giving up, as Linux does.
const MAX_LINKS: usize = 40;

/// What is at a path of the image's lower layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Missing,
    Dir,
    Other,
}

/// A plan under construction: the tree rooted at the image's `/`.
pub struct Placement<'a> {
    lower: Option<&'a Root>,
    pub root: Dir,
    /// Seconds since the epoch: the mtime of what the step creates itself.
    now: i64,
}

impl<'a> Placement<'a> {
    pub fn new(lower: Option<&'a Root>, now: i64) -> Placement<'a> {
        Placement {
            lower,
            root: Dir {
                existing: true,
                ..Default::default()
            },
            now,
        }
    }

    /// Resolve `p` in the lower layers, following every symlink inside the image; None if
    /// a component other than the last is not a directory, or links loop.
    fn resolve(&self, p: &Path) -> Result<Option<(PathBuf, Found)>> {
        let mut done = PathBuf::from("/");
        let mut todo: Vec<OsString> = comps(p);
        todo.reverse();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                done.pop();
                continue;
            }
            let cand = done.join(&c);
            let last = todo.is_empty();
            match self.lstat(&cand)? {
                Some(st) if sys::file_type(&st) == libc::S_IFLNK => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Ok(None);
                    }
                    let target = self.readlink(&cand)?;
                    let t = Path::new(OsStr::from_bytes(&target));
                    if t.is_absolute() {
                        done = PathBuf::from("/");
                    }
                    let mut more = comps(t);
                    more.reverse();
                    todo.extend(more);
                }
                Some(st) if !sys::is_dir(&st) && !last => return Ok(None),
                Some(st) if sys::is_dir(&st) => done = cand,
                Some(_) => return Ok(Some((cand, Found::Other))),
                None => {
                    // Nothing below a missing component exists either.
                    let mut rest = cand;
                    while let Some(c) = todo.pop() {
                        if c == ".." {
                            rest.pop();
                        } else {
                            rest.push(c);
                        }
                    }
                    return Ok(Some((rest, Found::Missing)));
                }
            }
        }
        Ok(Some((done, Found::Dir)))
    }

    fn lstat(&self, p: &Path) -> Result<Option<libc::stat>> {
        let Some(root) = self.lower else {
            return Ok(None);
        };
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return Ok(Some(crate::paths::fstat(root.fd())?));
        };
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let dir = match root.open_in(parent, flags, true) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("{} in the image", p.display())),
        };
        Ok(sys::lstat_opt(
            dir.as_raw_fd(),
            &sys::cname(name.as_bytes())?,
        )?)
    }

    fn readlink(&self, p: &Path) -> Result<Vec<u8>> {
        let root = self.lower.expect("a symlink was found in the lowers");
        let parent = p.parent().unwrap_or(Path::new("/"));
        let dir = root.open_in(parent, libc::O_PATH | libc::O_DIRECTORY, true)?;
        let name = sys::cname(p.file_name().unwrap_or_default().as_bytes())?;
        Ok(sys::readlink_at(dir.as_raw_fd(), &name)?)
    }

    /// The lower's directory at `p` as an existing node: its owner, mode, mtime and
    /// carried xattrs, as a copy-up keeps them.
    fn existing_dir(&self, p: &Path, st: &libc::stat) -> Result<Dir> {
        let root = self.lower.expect("found in the lowers");
        let fd = root.open_in(p, libc::O_RDONLY | libc::O_DIRECTORY, true)?;
        let xattrs = Target::Fd(fd.as_raw_fd())
            .xattrs()?
            .into_iter()
            .filter(|(k, _)| whiteout::xattr_rule(k) == XattrRule::Carry)
            .collect();
        Ok(Dir {
            meta: Meta {
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
                mtime: st.st_mtime,
                xattrs,
            },
            existing: true,
            children: Default::default(),
        })
    }

    /// The tree's directory at `p` (resolved), made with its ancestors as the overlay copy
    /// would (missing ones 0755, owned by `owner`); None where the tree holds a
    /// non-directory on the way.
    fn dir_at(&mut self, p: &Path, owner: (u32, u32)) -> Result<Option<&mut Dir>> {
        let mut at = PathBuf::from("/");
        let mut plan: Vec<(OsString, Dir)> = vec![];
        // First decide what each missing tree node would be (lower lookups need &self).
        {
            let mut cur = Some(&self.root);
            for c in comps(p) {
                at.push(&c);
                let key = c.as_bytes().to_vec();
                match cur.and_then(|d| d.children.get(&key)) {
                    Some(Node::Dir(d)) => {
                        cur = Some(d);
                        continue;
                    }
                    Some(_) => return Ok(None),
                    None => cur = None,
                }
                let d = match self.lstat(&at)? {
                    Some(st) if sys::is_dir(&st) => self.existing_dir(&at, &st)?,
                    Some(_) => return Ok(None),
                    None => Dir {
                        meta: Meta {
                            mode: 0o755,
                            uid: owner.0,
                            gid: owner.1,
                            mtime: self.now,
                            xattrs: vec![],
                        },
                        existing: false,
                        children: Default::default(),
                    },
                };
                plan.push((c, d));
            }
        }
        let mut planned = plan.into_iter();
        let mut cur = &mut self.root;
        for c in comps(p) {
            let key = c.as_bytes().to_vec();
            if !cur.children.contains_key(&key) {
                let (_, d) = planned.next().expect("planned above");
                cur.children.insert(key.clone(), Node::Dir(d));
            }
            cur = match cur.children.get_mut(&key) {
                Some(Node::Dir(d)) => d,
                _ => unreachable!("checked above"),
            };
        }
        Ok(Some(cur))
    }

    /// Place a heredoc: a file of `body` (0644 root unless --chmod/--chown say), its
    /// missing parents root's as ImageRoot::write makes them.
    pub fn doc(&mut self, dest: &Dest, name: &str, body: &[u8], a: Attrs) -> Result<bool> {
        let target = match dest.is_dir {
            true => dest.path.join(name),
            false => dest.path.clone(),
        };
        let (parent, file) = split(&target);
        let Some((parent, Found::Dir | Found::Missing)) = self.resolve(parent)? else {
            return Ok(false);
        };
        let (uid, gid) = a.owner.unwrap_or((0, 0));
        let meta = Meta {
            mode: a.mode.unwrap_or(0o644),
            uid,
            gid,
            mtime: self.now,
            xattrs: vec![],
        };
        let node = Node::File(
            meta,
            crate::image::layer::placed::Data::Bytes(body.to_vec()),
        );
        self.put(&parent, file, node, (0, 0))
    }

    /// Place one matched source (its scanned tree `node`) as ImageRoot::copy would.
    pub fn source(&mut self, m: &Matched, node: Node, dest: &Dest, a: Attrs) -> Result<bool> {
        let owner = a.owner.unwrap_or((0, 0));
        let node = with_attrs(node, a);
        if m.is_dir {
            let Some((to, Found::Dir | Found::Missing)) = self.resolve(&dest.path)? else {
                return Ok(false);
            };
            let Node::Dir(src) = node else {
                unreachable!("a matched dir scans as a dir")
            };
            let Some(d) = self.dir_at(&to, owner)? else {
                return Ok(false);
            };
            merge(d, src);
            return Ok(true);
        }
        let base = m.rel.file_name().unwrap_or(OsStr::new("."));
        let Some((full, found)) = self.resolve(&dest.path)? else {
            return Ok(false);
        };
        let (parent, name) = if dest.is_dir || found == Found::Dir {
            if found == Found::Other {
                return Ok(false);
            }
            (full, base.to_os_string())
        } else {
            let (parent, name) = split(&dest.path);
            let Some((p, Found::Dir | Found::Missing)) = self.resolve(parent)? else {
                return Ok(false);
            };
            (p, name.to_os_string())
        };
        self.put(&parent, &name, node, owner)
    }

    fn put(&mut self, parent: &Path, name: &OsStr, node: Node, owner: (u32, u32)) -> Result<bool> {
        let Some(d) = self.dir_at(parent, owner)? else {
            return Ok(false);
        };
        d.children.insert(name.as_bytes().to_vec(), node);
        Ok(true)
    }

    /// The finished plan: existing directories nothing is written into are dropped.
    pub fn finish(mut self) -> Dir {
        self.root.prune();
        self.root
    }
}

/// A source directory's children merged into a tree directory: a directory into a
/// directory (taking the source's attributes), anything else replacing what was there.
fn merge(into: &mut Dir, src: Dir) {
    for (name, node) in src.children {
        match (into.children.get_mut(&name), node) {
            (Some(Node::Dir(d)), Node::Dir(s)) => {
                d.meta = s.meta.clone();
                d.existing = false;
                merge(d, s);
            }
            (_, n) => {
                into.children.insert(name, n);
            }
        }
    }
}

/// COPY's owner and mode applied to a scanned tree (symlinks have no mode of their own).
fn with_attrs(node: Node, a: Attrs) -> Node {
    let fix = |mut m: Meta, symlink: bool| {
        if let Some((u, g)) = a.owner {
            (m.uid, m.gid) = (u, g);
        }
        m.mode = match symlink {
            true => 0o777,
            false => a.mode.unwrap_or(m.mode),
        };
        m
    };
    match node {
        Node::Dir(d) => Node::Dir(Dir {
            meta: fix(d.meta, false),
            existing: false,
            children: d
                .children
                .into_iter()
                .map(|(k, n)| (k, with_attrs(n, a)))
                .collect(),
        }),
        Node::File(m, d) => Node::File(fix(m, false), d),
        Node::Symlink(m, t) => Node::Symlink(fix(m, true), t),
        Node::Device(m, k, r) => Node::Device(fix(m, false), k, r),
    }
}

fn comps(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

fn split(p: &Path) -> (&Path, &OsStr) {
    (
        p.parent().unwrap_or(Path::new("/")),
        p.file_name().unwrap_or(OsStr::new(".")),
    )
}
