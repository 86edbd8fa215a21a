//! Blobs: written once through a hashing temp file and renamed to their digest; read
//! back with their size and digest checked, since a layout on disk is input like any other.

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::{Locked, Store};
use crate::image::digest::{Digest, HashReader, HashWriter};

/// The most we read into memory for a JSON document (manifest, config, index): a bigger
/// one is refused rather than buffered (CVE-2023-25153 class).
pub const MAX_JSON: u64 = 8 << 20;

/// A blob being written: bytes go through sha256 into a temp file of the operation.
pub struct BlobWriter {
    w: HashWriter<BufWriter<fs::File>>,
    path: PathBuf,
    /// Bytes of the file whose writeback has been started.
    started: u64,
}

/// How often a blob's written bytes are sent on to the disk while it is still being
/// written, so that its fsync finds little left to do (big blobs' fsyncs otherwise took
/// 40-230 ms each, paid at the end of a commit, load or pull).
pub const WRITEBACK_EVERY: u64 = 8 << 20;

/// A finished blob, still in the operation's temp dir until published.
#[derive(Debug)]
pub struct TempBlob {
    pub digest: Digest,
    pub size: u64,
    pub path: PathBuf,
}

impl BlobWriter {
    pub fn new(tmpdir: &Path) -> Result<BlobWriter> {
        let path = tmpdir.join(format!("blob-{}", super::random_hex(8)));
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        Ok(BlobWriter {
            w: HashWriter::new(BufWriter::with_capacity(1 << 20, f)),
            path,
            started: 0,
        })
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.w.count()
    }

    /// Flush and fsync: after this the bytes are on disk under their digest's name-to-be.
    pub fn finish(self) -> Result<TempBlob> {
        let b = self.finish_unsynced()?;
        b.sync()?;
        Ok(b)
    }

    /// Flush only: the caller fsyncs (`TempBlob::sync`) before publishing, off its
    /// critical path (`load` syncs while it unpacks).
    pub fn finish_unsynced(self) -> Result<TempBlob> {
        let (digest, size, buf) = self.w.finish();
        buf.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("write {}", self.path.display()))?;
        Ok(TempBlob {
            digest,
            size,
            path: self.path,
        })
    }
}

impl TempBlob {
    /// fsync the blob's file.
    pub fn sync(&self) -> Result<()> {
        fs::File::open(&self.path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("fsync {}", self.path.display()))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(buf)?;
        let in_file = self.w.count() - self.w.get_ref().buffer().len() as u64;
        if in_file - self.started >= WRITEBACK_EVERY {
            start_writeback(self.w.get_ref().get_ref(), self.started, in_file);
            self.started = in_file;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// Start writing `from..to` of `f` to disk, without waiting: a hint (the fsync is the
/// guarantee), so its errors are the fsync's to report.
pub fn start_writeback(f: &fs::File, from: u64, to: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on an open fd; no memory is passed.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            from as libc::off64_t,
            (to - from) as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Write a small blob (a JSON document) into `tmpdir`.
pub fn temp_bytes(tmpdir: &Path, bytes: &[u8]) -> Result<TempBlob> {
    let mut w = BlobWriter::new(tmpdir)?;
    w.write_all(bytes)?;
    w.finish()
}

impl Store {
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Read a whole blob of at most `max` bytes (and `size` if known), checking its digest.
    pub fn read_blob(&self, d: &Digest, size: Option<u64>, max: u64) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let f =
            fs::File::open(&p).with_context(|| format!("blob {d} is missing from the store"))?;
        let len = f.metadata()?.len();
        if let Some(s) = size {
            if s != len {
                bail!("blob {d}: size is {len}, its descriptor says {s}");
            }
        }
        if len > max {
            bail!("blob {d}: {len} bytes is more than the {max} allowed for this kind of document");
        }
        let mut r = HashReader::new(f);
        let mut v = Vec::with_capacity(len as usize);
        r.by_ref().take(max + 1).read_to_end(&mut v)?;
        let (got, _, _) = r.finish();
        if &got != d {
            bail!("blob {d} is corrupt: its content hashes to {got}");
        }
        Ok(v)
    }

    /// Open a blob for streaming; the caller checks the digest as it reads.
    pub fn open_blob(&self, d: &Digest) -> Result<fs::File> {
        fs::File::open(self.blob_path(d))
            .with_context(|| format!("blob {d} is missing from the store"))
    }
}

impl Locked<'_> {
    /// Move finished blobs into `blobs/sha256/` (one already there is kept: same bytes).
    pub fn publish_blobs(&self, blobs: &[&TempBlob]) -> Result<()> {
        for b in blobs {
            let dest = self.store.blob_path(&b.digest);
            if dest.exists() {
                continue;
            }
            fs::rename(&b.path, &dest).with_context(|| format!("publish blob {}", b.digest))?;
        }
        if !blobs.is_empty() {
            super::fsync_dir(&self.store.blobs_dir())?;
        }
        Ok(())
    }
}
