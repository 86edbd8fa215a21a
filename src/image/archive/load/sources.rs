//! Where an archive comes from: a tar file or stdin (plain, gzip or zstd, as `docker load`
//! takes it), read once as it streams, or an OCI layout directory, read beneath it.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs;
use std::io::{BufReader, IsTerminal, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::json;
use super::members::{self, short, Class, Member, Members};
use super::read;
use crate::image::progress::{Progress, ProgressReader};
use crate::image::store::blobs::MAX_JSON;
use crate::paths::Root;

/// The three input shapes.
#[derive(Clone, Debug)]
pub enum Input {
    Stdin,
    /// A tar archive (docker-archive, oci-archive or both), maybe gzip or zstd.
    File(PathBuf),
    /// An OCI image layout directory.
    Dir(PathBuf),
}

impl Input {
    /// `-i PATH` (a directory or a file), or stdin without it.
    pub fn from_arg(path: Option<&Path>) -> Input {
        match path {
            None => Input::Stdin,
            Some(p) if p.is_dir() => Input::Dir(p.to_path_buf()),
            Some(p) => Input::File(p.to_path_buf()),
        }
    }
}

/// Open the input: a tar is read whole now (its files into `tmp`), a directory as its
/// members are asked for.
pub fn open(input: &Input, tmp: &Path, quiet: bool) -> Result<Box<dyn Members>> {
    let (r, total): (Box<dyn Read>, Option<u64>) = match input {
        Input::Dir(d) => return Ok(Box::new(DirMembers::open(d, tmp, quiet)?)),
        Input::Stdin => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("no archive on stdin: pipe one in or give -i FILE");
            }
            (Box::new(stdin.lock()), None)
        }
        Input::File(p) => {
            let f = fs::File::open(p).with_context(|| format!("open {}", p.display()))?;
            let m = f.metadata()?;
            (Box::new(f), m.is_file().then_some(m.len()))
        }
    };
    let progress = Progress::new("load", total, quiet);
    let counted = ProgressReader { inner: r, progress };
    let plain = crate::image::compress::decoder(BufReader::with_capacity(1 << 20, counted))
        .context("archive")?;
    let members = read::read(plain, tmp)?;
    Ok(Box::new(members))
}

/// An OCI layout directory: each member opened beneath it without following a symlink,
/// and copied into the temp dir as it is verified (the directory may change under us).
pub struct DirMembers {
    root: Root,
    tmp: PathBuf,
    files: HashMap<String, Member>,
    progress: Progress,
}

impl DirMembers {
    fn open(dir: &Path, tmp: &Path, quiet: bool) -> Result<DirMembers> {
        Ok(DirMembers {
            root: Root::open(dir).with_context(|| format!("open {}", dir.display()))?,
            tmp: tmp.to_path_buf(),
            files: HashMap::new(),
            progress: Progress::new("load", None, quiet),
        })
    }

    /// The regular file `name`, or None if it does not exist.
    fn open_file(&self, name: &str) -> Result<Option<fs::File>> {
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        let fd = match self.root.open_in(Path::new(name), flags, true) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                bail!("{}: a symlink in the layout (not followed)", short(name))
            }
            Err(e) => return Err(e).with_context(|| format!("open {}", short(name))),
        };
        let st = crate::paths::fstat(fd.as_raw_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            bail!("{}: not a regular file", short(name));
        }
        Ok(Some(fs::File::from(fd)))
    }
}

impl Members for DirMembers {
    fn doc(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(f) = self.open_file(name)? else {
            return Ok(None);
        };
        json::check_size(f.metadata()?.len()).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let mut v = Vec::new();
        // Read one byte past the cap: a file growing meanwhile is refused too.
        f.take(MAX_JSON + 1).read_to_end(&mut v)?;
        json::check_size(v.len() as u64).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        Ok(Some(v))
    }

    fn file(&mut self, name: &str) -> Result<Option<Member>> {
        if let Some(m) = self.files.get(name) {
            return Ok(Some(m.clone()));
        }
        let Class::File { digest, .. } = members::classify(name) else {
            bail!("{}: not a file an image may name", short(name));
        };
        let Some(mut f) = self.open_file(name)? else {
            return Ok(None);
        };
        let m = members::copy_in(&mut f, &self.tmp, name, digest.as_ref())?;
        self.progress.inc(m.size);
        self.files.insert(name.to_string(), m.clone());
        Ok(Some(m))
    }
}
