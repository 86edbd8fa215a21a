//! Layer blobs from the registry into the temp dir, `--jobs` at a time, each checked for
//! size while it streams and for its digest at its end; the unpacker reads a blob as it
//! arrives, and sees its end only once the whole blob is there and verified.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::Method;
use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use super::client::Repo;
use super::status::Board;
use crate::image::archive::load::plan::LayerPlan;
use crate::image::archive::load::unpack::{Blobs, Event};
use crate::image::digest::{Digest, HashWriter};
use crate::image::store::blobs::TempBlob;
use crate::image::store::Store;

/// One blob on its way: where it is written, how much of it is there, how it ended.
pub struct Arrival {
    pub digest: Digest,
    pub size: u64,
    pub path: PathBuf,
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    written: u64,
    /// `Some(Ok)`: whole and verified; `Some(Err)`: failed (or given up).
    end: Option<Result<(), String>>,
}

impl Arrival {
    /// A blob to fetch into `path` (created empty now, so readers can open it).
    pub fn new(digest: Digest, size: u64, path: PathBuf) -> Result<Arrival> {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        Ok(Arrival {
            digest,
            size,
            path,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn advance(&self, written: u64) {
        self.lock().written = written;
        self.cv.notify_all();
    }

    /// The end, good or bad; a later end (a cancel after success) changes nothing.
    fn end(&self, r: Result<(), String>) {
        let mut st = self.lock();
        if st.end.is_none() {
            st.end = Some(r);
        }
        drop(st);
        self.cv.notify_all();
    }

    fn is_done(&self) -> bool {
        matches!(self.lock().end, Some(Ok(())))
    }
}

/// A reader of an arriving blob: waits for bytes, fails when the download does.
struct Reader<'a> {
    a: &'a Arrival,
    file: fs::File,
    pos: u64,
    board: &'a Board,
}

impl Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.a.lock();
        loop {
            if self.pos < st.written {
                let n = ((st.written - self.pos) as usize).min(buf.len());
                drop(st);
                let n = self.file.read(&mut buf[..n])?;
                if n == 0 {
                    return Err(io::Error::other("the downloaded blob shrank"));
                }
                self.pos += n as u64;
                if self.a.is_done() {
                    self.board
                        .bytes(&self.a.digest, "Extracting", self.pos, self.a.size);
                }
                return Ok(n);
            }
            match &st.end {
                Some(Ok(())) => return Ok(0),
                Some(Err(e)) => return Err(io::Error::other(e.clone())),
                None => st = self.a.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

/// The blobs of a pull for the unpacker: arriving ones, else the store's own.
pub struct Source<'a> {
    pub store: &'a Store,
    pub arrivals: &'a HashMap<Digest, Arrival>,
    pub board: &'a Board,
}

impl Blobs for Source<'_> {
    fn open(&self, l: &LayerPlan) -> io::Result<Box<dyn Read + Send + '_>> {
        match self.arrivals.get(&l.blob.digest) {
            Some(a) => Ok(Box::new(Reader {
                a,
                file: fs::File::open(&a.path)?,
                pos: 0,
                board: self.board,
            })),
            None => Ok(Box::new(fs::File::open(
                self.store.blob_path(&l.blob.digest),
            )?)),
        }
    }

    fn event(&self, l: &LayerPlan, e: Event) {
        match e {
            Event::Present => self.board.set(&l.blob.digest, "Already exists"),
            Event::Start(_) => {}
            Event::Done => self.board.set(&l.blob.digest, "Pull complete"),
        }
    }
}

/// Fetch every arrival, `jobs` at a time, in the order given (bottom layers first, so
/// that the unpacker, which goes bottom up, waits least). Each outcome goes to its
/// arrival (readers see it); returns the blobs, or the first error. `stop` gives up
/// the rest, and is set here on a failure.
pub fn fetch_all(
    repo: &Repo,
    order: &[&Arrival],
    jobs: usize,
    board: &Board,
    stop: &AtomicBool,
) -> Result<Vec<TempBlob>> {
    let queue = Mutex::new(order.iter().copied().collect::<VecDeque<&Arrival>>());
    let results: Mutex<Vec<Result<TempBlob>>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, order.len().max(1)) {
            s.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some(a) = next else { break };
                if stop.load(Ordering::Relaxed) {
                    a.end(Err("the pull was given up".into()));
                    continue;
                }
                let r = fetch(repo, a, board, stop).with_context(|| format!("layer {}", a.digest));
                match &r {
                    Ok(_) => a.end(Ok(())),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        a.end(Err(format!("{e:#}")));
                    }
                }
                results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut blobs = Vec::with_capacity(results.len());
    let mut first_err = None;
    for r in results {
        match r {
            Ok(b) => blobs.push(b),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(blobs),
    }
}

/// One blob: `GET /v2/<repo>/blobs/<digest>` into its file through sha256, never more
/// bytes than its descriptor's size; fsynced once verified.
fn fetch(repo: &Repo, a: &Arrival, board: &Board, stop: &AtomicBool) -> Result<TempBlob> {
    let conn = repo.conn;
    let url = repo.url(&format!("blobs/{}", a.digest));
    board.bytes(&a.digest, "Downloading", 0, a.size);
    let mut resp = conn.block_on(async {
        let resp = repo
            .request(Method::GET, &url)
            .send()
            .await
            .map_err(|e| conn.unreachable(&e))?;
        if !resp.status().is_success() {
            return Err(repo.refused("blob", resp).await);
        }
        Ok(resp)
    })?;
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&a.path)
        .with_context(|| format!("open {}", a.path.display()))?;
    let mut w = HashWriter::new(file);
    loop {
        if stop.load(Ordering::Relaxed) {
            bail!("given up: another part of the pull failed");
        }
        let chunk = conn.block_on(resp.chunk()).map_err(|e| {
            anyhow!(
                "{}: the download broke off: {}",
                repo.name(),
                super::client::chain(&e)
            )
        })?;
        let Some(c) = chunk else { break };
        if w.count() + c.len() as u64 > a.size {
            bail!(
                "{}: the registry sent more than the {} bytes its descriptor says",
                repo.name(),
                a.size
            );
        }
        w.write_all(&c)
            .with_context(|| format!("write {}", a.path.display()))?;
        a.advance(w.count());
        board.bytes(&a.digest, "Downloading", w.count(), a.size);
    }
    board.set(&a.digest, "Verifying Checksum");
    let (digest, size, file) = w.finish();
    if size != a.size {
        bail!(
            "{}: the download ended after {size} of its {} bytes",
            repo.name(),
            a.size
        );
    }
    if digest != a.digest {
        bail!(
            "{}: the blob is corrupt: its bytes hash to {digest}",
            repo.name()
        );
    }
    board.set(&a.digest, "Download complete");
    // Verified: readers may finish now; the fsync is only for the publish.
    a.end(Ok(()));
    file.sync_all()
        .with_context(|| format!("fsync {}", a.path.display()))?;
    Ok(TempBlob {
        digest,
        size,
        path: a.path.clone(),
    })
}
