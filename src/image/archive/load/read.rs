//! The outer archive, read once as it streams (stdin works): every member checked by
//! name and type, documents kept in memory, files written into the temp dir through
//! sha256; never extracted as a tree, so links and devices in it point nowhere.

use anyhow::{anyhow, bail, Result};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use super::json;
use super::members::{self, short, Class, Member, Members};
use crate::image::layer::reader::{Label, TarReader, Type};

/// The most members one archive may have (each costs a file and a map entry).
pub const MAX_MEMBERS: usize = 100_000;
/// Links followed to find a file (docker ≤24 links a layer seen before to its first copy).
const MAX_HOPS: usize = 8;

const ARCHIVE: Label = Label {
    stream: "archive",
    entry: "archive member",
};

/// An archive read whole: what `Members` serves from.
#[derive(Default)]
pub struct TarMembers {
    docs: HashMap<String, Vec<u8>>,
    files: HashMap<String, Member>,
    /// Symlinks between layer files, by name: skopeo writes `<id>/layer.tar -> ../<diffid>.tar`.
    links: HashMap<String, String>,
}

/// Read the archive `r` to its end, writing its files into `tmp`.
pub fn read(r: impl Read, tmp: &Path) -> Result<TarMembers> {
    let mut tar = TarReader::with_label(r, ARCHIVE);
    let mut out = TarMembers::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut count = 0usize;
    // The reader's own errors name the archive; the stream's (a truncated gzip) get it.
    let io_context = |e: anyhow::Error| match e.downcast_ref::<std::io::Error>() {
        Some(_) => e.context("archive"),
        None => e,
    };
    while let Some(e) = tar.next().map_err(io_context)? {
        count += 1;
        if count > MAX_MEMBERS {
            bail!("archive: more than {MAX_MEMBERS} members");
        }
        let fail = |msg: String| {
            anyhow!(
                "archive member {:?}: {msg}",
                String::from_utf8_lossy(&e.path[..e.path.len().min(256)])
            )
        };
        let name = members::clean(&e.path).map_err(|err| fail(format!("{err:#}")))?;
        if e.kind == Type::Dir {
            continue; // directories are implied by the names of files
        }
        if name.is_empty() {
            return Err(fail(format!("a {:?} naming the archive's root", e.kind)));
        }
        if !seen.insert(name.clone()) {
            return Err(fail("appears twice in the archive".into()));
        }
        match e.kind {
            Type::File => out.member(&name, e.size, &mut tar, tmp)?,
            Type::Symlink => out
                .link(&name, &e.link)
                .map_err(|err| fail(format!("{err:#}")))?,
            Type::HardLink => return Err(fail("a hard link: image archives have none".into())),
            k => return Err(fail(format!("a {k:?} entry: image archives have none"))),
        }
    }
    Ok(out)
}

/// The data of the current entry as a reader.
struct Data<'a, R: Read>(&'a mut TarReader<R>);

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read_data(buf).map_err(std::io::Error::other)
    }
}

impl TarMembers {
    fn member<R: Read>(
        &mut self,
        name: &str,
        size: u64,
        tar: &mut TarReader<R>,
        tmp: &Path,
    ) -> Result<()> {
        match members::classify(name) {
            Class::Skip => {} // read past by the next `next()`
            Class::Doc => {
                json::check_size(size).map_err(|e| anyhow!("{name}: {e}"))?;
                let mut v = Vec::with_capacity(size as usize);
                Data(tar).read_to_end(&mut v)?;
                self.docs.insert(name.to_string(), v);
            }
            Class::File { digest, json } => {
                if json {
                    json::check_size(size).map_err(|e| anyhow!("{}: {e}", short(name)))?;
                }
                let m = members::copy_in(&mut Data(tar), tmp, name, digest.as_ref())?;
                self.files.insert(name.to_string(), m);
            }
        }
        Ok(())
    }

    /// Record a symlink member as another name of a file of the archive, resolved by name
    /// (never on a filesystem); one pointing out of the archive is refused.
    fn link(&mut self, name: &str, target: &[u8]) -> Result<()> {
        let t = String::from_utf8_lossy(target);
        if target.starts_with(b"/") {
            bail!("a symlink to the absolute path {t:?} (path traversal)");
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        parts.pop();
        for c in t.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        bail!("a symlink to {t:?}, out of the archive (path traversal)");
                    }
                }
                c => parts.push(c),
            }
        }
        let resolved = parts.join("/");
        let is_file = |n: &str| matches!(members::classify(n), Class::File { .. });
        match (is_file(name), is_file(&resolved)) {
            (true, true) => {
                self.links.insert(name.to_string(), resolved);
            }
            (false, _) => {} // a link no image format uses: never read
            (true, false) => bail!("a symlink to {t:?}, which is not a layer or blob file"),
        }
        Ok(())
    }
}

impl Members for TarMembers {
    fn doc(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.docs.get(name).cloned())
    }

    fn file(&mut self, name: &str) -> Result<Option<Member>> {
        let mut n = name;
        for _ in 0..MAX_HOPS {
            if let Some(m) = self.files.get(n) {
                return Ok(Some(m.clone()));
            }
            match self.links.get(n) {
                Some(t) => n = t,
                None => return Ok(None),
            }
        }
        bail!("{}: more than {MAX_HOPS} symlinks (a loop?)", short(name))
    }
}
