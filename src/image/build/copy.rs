//! COPY and ADD into the image's merged view (a detached writable overlay), for what a
//! `placement` plan cannot express (an ADDed archive, a destination below a file): sources read
//! beneath their root, destinations resolved beneath the image's root (a symlink in the
//! image is followed only inside it, as docker's FollowSymlinkInScope), every write an
//! `*at` call that never follows a final symlink; an ADDed local tar unpacked by the
//! store's strict unpacker first.

use anyhow::{bail, Context, Result};
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::context::{Matched, Source};
use crate::image::layer::sys::{self, Target};
use crate::paths::Root;

/// How copied files are owned and moded.
#[derive(Clone, Copy, Debug)]
pub struct Attrs {
    /// None keeps the source's owner (stages, images, archives).
    pub owner: Option<(u32, u32)>,
    /// None keeps the source's permission bits.
    pub mode: Option<u32>,
}

/// Where a copy goes: an absolute, cleaned path in the image, and whether it names a
/// directory (`/x/`, several sources, a wildcard).
pub struct Dest {
    pub path: PathBuf,
    pub is_dir: bool,
}

/// The image's root being written (a writable overlay's root).
pub struct ImageRoot {
    pub root: Root,
}

impl ImageRoot {
    pub fn new(root: Root) -> ImageRoot {
        ImageRoot { root }
    }

    fn dir_fd(&self, p: &Path) -> std::io::Result<OwnedFd> {
        self.root
            .open_in(p, libc::O_RDONLY | libc::O_DIRECTORY, false)
    }

    /// mkdir -p of `p` inside the image; returns it open for reading.
    pub fn mkdir_all(&self, p: &Path) -> Result<OwnedFd> {
        self.mkdir_owned(p, None)
    }

    /// mkdir -p, the dirs it makes owned by `owner` (COPY --chown's, as BuildKit and
    /// buildah make a missing destination).
    fn mkdir_owned(&self, p: &Path, owner: Option<(u32, u32)>) -> Result<OwnedFd> {
        let missing: Vec<&Path> = p.ancestors().take_while(|a| !self.is_dir(a)).collect();
        self.root
            .mkdir_all(p, 0o755)
            .with_context(|| format!("create {} in the image", p.display()))?;
        if let Some((uid, gid)) = owner.filter(|o| *o != (0, 0)) {
            for d in missing {
                let fd = self.dir_fd(d)?;
                Target::Fd(fd.as_raw_fd()).chown(uid, gid)?;
            }
        }
        self.dir_fd(p)
            .with_context(|| format!("open {} in the image", p.display()))
    }

    fn is_dir(&self, p: &Path) -> bool {
        self.dir_fd(p).is_ok()
    }

    /// Copy what `m` names from `src` to `dest`.
    pub fn copy(&self, src: &Source, m: &Matched, dest: &Dest, a: Attrs) -> Result<()> {
        let what = || format!("copy {} from {}", m.rel.display(), src.what);
        if m.is_dir {
            let to = self.mkdir_owned(&dest.path, a.owner)?;
            let from = src.open_dir(&m.rel).with_context(what)?;
            return self
                .copy_children(src, &from, &m.rel, &to, a)
                .with_context(what);
        }
        let target = if dest.is_dir || self.is_dir(&dest.path) {
            let base = m.rel.file_name().unwrap_or(OsStr::new("."));
            dest.path.join(base)
        } else {
            dest.path.clone()
        };
        let (parent, name) = split(&target)?;
        let to = self.mkdir_owned(parent, a.owner)?;
        let f = src
            .root
            .open_in(&m.rel, libc::O_RDONLY | libc::O_NONBLOCK, false)
            .with_context(what)?;
        let st = crate::paths::fstat(f.as_raw_fd())?;
        self.file(
            File::from(f),
            &st,
            to.as_raw_fd(),
            &sys::cname(name.as_bytes())?,
            a,
        )
        .with_context(|| format!("write {}", target.display()))
    }

    /// A file of the given bytes (a heredoc source).
    pub fn write(&self, target: &Path, bytes: &[u8], a: Attrs) -> Result<()> {
        let (parent, name) = split(target)?;
        let to = self.mkdir_all(parent)?;
        let name = sys::cname(name.as_bytes())?;
        clear(to.as_raw_fd(), &name, false)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        let mut f = File::from(sys::open_nofollow(to.as_raw_fd(), &name, flags, 0o600)?);
        f.write_all(bytes)?;
        let t = Target::Fd(f.as_raw_fd());
        let (uid, gid) = a.owner.unwrap_or((0, 0));
        t.chown(uid, gid)?;
        t.chmod(a.mode.unwrap_or(0o644))?;
        Ok(())
    }

    fn copy_children(
        &self,
        src: &Source,
        from: &OwnedFd,
        rel: &Path,
        to: &OwnedFd,
        a: Attrs,
    ) -> Result<()> {
        for name in src.children(from.as_raw_fd(), rel)? {
            let c = sys::cname(&name)?;
            let st = sys::lstat_at(from.as_raw_fd(), &c)?;
            let child_rel = rel.join(OsStr::from_bytes(&name));
            let shown = || child_rel.display().to_string();
            match sys::file_type(&st) {
                libc::S_IFDIR => {
                    let fd = sys::open_dir(from.as_raw_fd(), &c)?;
                    let sub = self.dir(to.as_raw_fd(), &c).with_context(shown)?;
                    self.copy_children(src, &fd, &child_rel, &sub, a)?;
                    finish(Target::Fd(sub.as_raw_fd()), &st, a, false).with_context(shown)?;
                }
                libc::S_IFREG => {
                    let flags = libc::O_RDONLY | libc::O_NONBLOCK;
                    let f = File::from(sys::open_nofollow(from.as_raw_fd(), &c, flags, 0)?);
                    self.file(f, &st, to.as_raw_fd(), &c, a)
                        .with_context(shown)?;
                }
                libc::S_IFLNK => {
                    let target = sys::readlink_at(from.as_raw_fd(), &c)?;
                    clear(to.as_raw_fd(), &c, false)?;
                    sys::symlink_at(&target, to.as_raw_fd(), &c).with_context(shown)?;
                    finish(Target::At(to.as_raw_fd(), &c), &st, a, true).with_context(shown)?;
                }
                libc::S_IFSOCK => {}
                // A 0/0 device is an overlay whiteout: never made by a copy.
                libc::S_IFCHR if st.st_rdev == 0 => {}
                kind => {
                    clear(to.as_raw_fd(), &c, false)?;
                    sys::mknod_at(to.as_raw_fd(), &c, kind, st.st_rdev).with_context(shown)?;
                    finish(Target::At(to.as_raw_fd(), &c), &st, a, false).with_context(shown)?;
                }
            }
        }
        Ok(())
    }

    /// An existing directory is merged into; anything else in the way is replaced.
    fn dir(&self, parent: RawFd, name: &CStr) -> Result<OwnedFd> {
        clear(parent, name, true)?;
        match sys::mkdir_at(parent, name, 0o700) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(sys::open_dir(parent, name)?)
    }

    fn file(
        &self,
        mut f: File,
        st: &libc::stat,
        parent: RawFd,
        name: &CStr,
        a: Attrs,
    ) -> Result<()> {
        clear(parent, name, false)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        let mut out = File::from(sys::open_nofollow(parent, name, flags, 0o600)?);
        let n = std::io::copy(&mut f, &mut out)?;
        if n != st.st_size as u64 {
            bail!("changed while being copied");
        }
        finish(Target::Fd(out.as_raw_fd()), st, a, false)
    }
}

fn split(p: &Path) -> Result<(&Path, &OsStr)> {
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => bail!("{}: not a file path", p.display()),
    }
}

/// Remove `name` unless it is a directory and `keep_dir` (then it is merged into).
fn clear(parent: RawFd, name: &CStr, keep_dir: bool) -> Result<()> {
    match sys::lstat_opt(parent, name)? {
        None => Ok(()),
        Some(st) if keep_dir && sys::is_dir(&st) => Ok(()),
        Some(_) => Ok(sys::remove_all_at(parent, name)?),
    }
}

/// Owner, then mode (chown clears set-id bits), then the source's times.
fn finish(t: Target<'_>, st: &libc::stat, a: Attrs, symlink: bool) -> Result<()> {
    let (uid, gid) = a.owner.unwrap_or((st.st_uid, st.st_gid));
    t.chown(uid, gid)?;
    if !symlink {
        t.chmod(a.mode.unwrap_or(st.st_mode & 0o7777))?;
    }
    t.set_times(
        (st.st_atime, st.st_atime_nsec as u32),
        (st.st_mtime, st.st_mtime_nsec as u32),
    )?;
    Ok(())
}

/// Whether a local file is an archive ADD unpacks: a tar, plain or gzip/zstd compressed.
pub fn is_archive(src: &Source, rel: &Path) -> bool {
    let Ok(fd) = src
        .root
        .open_in(rel, libc::O_RDONLY | libc::O_NONBLOCK, false)
    else {
        return false;
    };
    let f = std::io::BufReader::new(File::from(fd));
    let Ok(mut dec) = crate::image::compress::decoder(f) else {
        return false;
    };
    let mut block = [0u8; 512];
    if dec.read_exact(&mut block).is_err() {
        return false;
    }
    block[257..262] == *b"ustar"
}

/// Unpack an ADDed archive into `staging` (an empty dir) with the store's strict
/// unpacker: names with `..`, absolute links and writes through symlinks are refused.
pub fn unpack_archive(src: &Source, rel: &Path, staging: &Path) -> Result<()> {
    let fd = src
        .root
        .open_in(rel, libc::O_RDONLY | libc::O_NONBLOCK, false)
        .with_context(|| format!("open {}", rel.display()))?;
    let f = std::io::BufReader::with_capacity(1 << 20, File::from(fd));
    let dec =
        crate::image::compress::decoder(f).with_context(|| format!("ADD {}", rel.display()))?;
    crate::image::layer::unpack(dec, staging, &Default::default())
        .with_context(|| format!("ADD {}: unpack", rel.display()))?;
    Ok(())
}
