//! Layer blobs from the registry into the temp dir, `--jobs` at a time, each checked for
//! size while it streams and for its digest at its end, and handed to its unpacker as it
//! arrives (`arrival`).

use anyhow::{anyhow, bail, Context, Result};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::arrival::Arrival;
use super::client::Repo;
use super::status::Board;
use crate::image::archive::load::plan::LayerPlan;
use crate::image::archive::load::unpack::{file_reader, Blobs, Event};
use crate::image::digest::{Digest, HashWriter};
use crate::image::store::blobs::TempBlob;
use crate::image::store::direct::DirectFile;
use crate::image::store::Store;

/// The blobs of a pull for the unpacker: arriving ones, else the store's own.
pub struct Source<'a> {
    pub store: &'a Store,
    pub arrivals: &'a HashMap<Digest, Arrival>,
    pub board: &'a Board,
    /// Blobs downloaded at once.
    pub jobs: usize,
}

impl Blobs for Source<'_> {
    /// Every layer downloading unpacks as its bytes arrive: the decompression of one
    /// overlaps the transfer of the others instead of waiting for a core's worth of
    /// layers to end (on 2 cores, the last layers were left to unpack after the
    /// downloads).
    fn parallel(&self) -> usize {
        crate::image::compress::default_threads().max(self.jobs)
    }

    fn open(&self, l: &LayerPlan) -> io::Result<Box<dyn BufRead + Send + '_>> {
        match self.arrivals.get(&l.blob.digest) {
            Some(a) => Ok(Box::new(a.reader(self.board))),
            None => Ok(Box::new(file_reader(fs::File::open(
                self.store.blob_path(&l.blob.digest),
            )?))),
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

/// Tries of a blob whose transfer breaks off without any progress before it is given up;
/// a try that brings bytes starts the count again (docker's rule, for flaky networks).
const TRIES: u32 = 4;

/// The progress line moves once per this many bytes (and at the end).
const PROGRESS_EVERY: u64 = 256 << 10;

/// How one request for a blob ended, if not with all of it.
enum Broke {
    /// The connection failed or closed early: worth another (ranged) request.
    Transfer(anyhow::Error),
    /// The registry refused, or sent wrong bytes: no retry would help.
    Fatal(anyhow::Error),
}

/// One blob: `GET /v2/<repo>/blobs/<digest>` through sha256 into its arrival (whose writer
/// thread puts it in its file), never more bytes than its descriptor's size; a transfer
/// that breaks off is asked again for the rest (`Range: bytes=N-`, N the bytes already
/// hashed), or, from a registry that ignores ranges, again whole, its first N bytes
/// skipped. Fsynced once verified.
fn fetch(repo: &Repo, a: &Arrival, board: &Board, stop: &AtomicBool) -> Result<TempBlob> {
    board.bytes(&a.digest, "Downloading", 0, a.size);
    let file = DirectFile::open(&a.path).with_context(|| format!("open {}", a.path.display()))?;
    std::thread::scope(|s| {
        let writer = s.spawn(|| a.write_out(file));
        let got = fetch_bytes(repo, a, board, stop);
        if let Err(e) = &got {
            // Stops the writer (a later end changes nothing).
            a.end(Err(format!("{e:#}")));
        }
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the blob writer panicked")));
        let (digest, size) = got?;
        let file = written.with_context(|| format!("write {}", a.path.display()))?;
        file.sync_all()
            .with_context(|| format!("fsync {}", a.path.display()))?;
        Ok(TempBlob {
            digest,
            size,
            path: a.path.clone(),
        })
    })
}

/// The blob's bytes, with retries, hashed and verified; the arrival ends well here.
fn fetch_bytes(
    repo: &Repo,
    a: &Arrival,
    board: &Board,
    stop: &AtomicBool,
) -> Result<(Digest, u64)> {
    let mut w = HashWriter::new(io::sink());
    let mut tries = 0;
    loop {
        let before = w.count();
        let e = match download(repo, a, board, stop, &mut w) {
            Ok(()) => break,
            Err(Broke::Fatal(e)) => return Err(e),
            Err(Broke::Transfer(e)) => e,
        };
        if w.count() > before {
            tries = 0;
        }
        if stop.load(Ordering::Relaxed) {
            return Err(e);
        }
        tries += 1;
        if tries >= TRIES {
            return Err(e.context(format!(
                "{}: the download broke off after {} of its {} bytes, {tries} times without \
                 progress",
                repo.name(),
                w.count(),
                a.size
            )));
        }
        let wait = Duration::from_millis(250 << tries);
        board.set(&a.digest, &format!("Retrying in {} ms", wait.as_millis()));
        std::thread::sleep(wait);
    }
    board.set(&a.digest, "Verifying Checksum");
    let (digest, size, _) = w.finish();
    if digest != a.digest {
        bail!(
            "{}: the blob is corrupt: its bytes hash to {digest}",
            repo.name()
        );
    }
    board.set(&a.digest, "Download complete");
    // Verified: readers may finish now.
    a.end(Ok(()));
    Ok((digest, size))
}

/// One request for the rest of the blob, from `w.count()` on, into `w`.
fn download(
    repo: &Repo,
    a: &Arrival,
    board: &Board,
    stop: &AtomicBool,
    w: &mut HashWriter<io::Sink>,
) -> Result<(), Broke> {
    let conn = repo.conn;
    let url = repo.url(&format!("blobs/{}", a.digest));
    let have = w.count();
    // The whole transfer is one future: one entry into the runtime per blob, not one per
    // chunk (the thread parks between chunks either way).
    conn.block_on(async {
        let build = || {
            let req = repo.request(Method::GET, &url);
            match have {
                0 => req,
                _ => req.header(RANGE, format!("bytes={have}-")),
            }
        };
        let mut resp = repo
            .send(build)
            .await
            .map_err(Broke::Fatal)?
            .map_err(|e| Broke::Transfer(conn.unreachable(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let e = repo.refused("blob", resp).await;
            // A registry (or its proxy) failing for now may answer the next try.
            return Err(if status.is_server_error() {
                Broke::Transfer(e)
            } else {
                Broke::Fatal(e)
            });
        }
        // Bytes of this answer that are in the file already: all before `have` unless
        // the registry sent just the range asked for.
        let mut skip = have;
        if have > 0 && status == StatusCode::PARTIAL_CONTENT {
            match content_range_start(&resp) {
                Some(start) if start == have => skip = 0,
                other => {
                    return Err(Broke::Fatal(anyhow!(
                        "{}: asked for the blob's bytes from {have}, the registry sent \
                         a range from {other:?}",
                        repo.name()
                    )))
                }
            }
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Broke::Fatal(anyhow!(
                    "given up: another part of the pull failed"
                )));
            }
            let chunk = resp.chunk().await.map_err(|e| {
                Broke::Transfer(anyhow!(
                    "{}: the download broke off: {}",
                    repo.name(),
                    super::client::chain(&e)
                ))
            })?;
            let Some(mut c) = chunk else { break };
            if skip > 0 {
                let n = skip.min(c.len() as u64);
                skip -= n;
                c = c.slice(n as usize..);
            }
            if w.count() + c.len() as u64 > a.size {
                return Err(Broke::Fatal(anyhow!(
                    "{}: the registry sent more than the {} bytes its descriptor says",
                    repo.name(),
                    a.size
                )));
            }
            let before = w.count();
            w.write_all(&c).map_err(|e| Broke::Fatal(e.into()))?;
            a.push(c);
            if w.count() / PROGRESS_EVERY != before / PROGRESS_EVERY || w.count() == a.size {
                board.bytes(&a.digest, "Downloading", w.count(), a.size);
            }
            a.wait_for_room(stop);
            if let Some(e) = a.failed() {
                return Err(Broke::Fatal(anyhow!("{e}")));
            }
        }
        if w.count() < a.size {
            return Err(Broke::Transfer(anyhow!(
                "{}: the download ended after {} of its {} bytes",
                repo.name(),
                w.count(),
                a.size
            )));
        }
        Ok(())
    })
}

/// The first byte of a 206's `Content-Range: bytes START-END/SIZE`.
fn content_range_start(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = v.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}
