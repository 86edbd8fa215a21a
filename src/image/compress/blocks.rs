//! Deflating pigz-style gzip blocks, on the caller's thread or on a pool of worker threads.

use crc32fast::Hasher;
use flate2::{Compress, Compression, FlushCompress, Status};
use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

/// Deflate's window: how far back a block may reach into the one before it.
const DICT: usize = 32 * 1024;

/// One block of input to deflate.
pub struct Block {
    pub input: Arc<Vec<u8>>,
    /// The previous block's input, whose tail primes the window; shared, not copied.
    pub dict: Option<Arc<Vec<u8>>>,
    /// Only the last block ends the deflate stream (BFINAL). The others end with a sync
    /// flush, byte-aligned, so the pieces concatenate into one stream.
    pub last: bool,
    /// An empty buffer to deflate into, reused from an earlier block.
    pub out: Vec<u8>,
}

/// A deflated block, with the buffers it came with so they can be reused.
pub struct Deflated {
    pub input: Arc<Vec<u8>>,
    pub dict: Option<Arc<Vec<u8>>>,
    pub out: Vec<u8>,
    /// The input's CRC-32, to combine in order into the trailer's.
    pub crc: Hasher,
}

/// A block's sequence number and what became of it.
pub type Outcome = (u64, io::Result<Deflated>);

/// Deflates one block into its `out` buffer and takes its CRC.
fn deflate_block(level: u32, block: Block) -> io::Result<Deflated> {
    let Block {
        input,
        dict,
        last,
        mut out,
    } = block;
    let mut crc = Hasher::new();
    crc.update(&input);
    let window = dict.as_deref().map(|d| &d[d.len().saturating_sub(DICT)..]);
    deflate(level, &input, window, last, &mut out)?;
    Ok(Deflated {
        input,
        dict,
        out,
        crc,
    })
}

/// A new raw deflate stream for every block: a reset zlib-rs stream keeps state that
/// changes later output (the same block came out 8 bytes apart after different blocks),
/// and a block's bytes must depend only on its input, its window and whether it is last.
fn deflate(
    level: u32,
    input: &[u8],
    window: Option<&[u8]>,
    last: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut z = Compress::new(Compression::new(level), false);
    if let Some(w) = window {
        z.set_dictionary(w).map_err(deflate_failed)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    out.clear();
    out.reserve(input.len() + input.len() / 64 + 64);
    loop {
        let at = z.total_in() as usize;
        let status = z
            .compress_vec(&input[at..], out, flush)
            .map_err(deflate_failed)?;
        if status == Status::StreamEnd {
            return Ok(());
        }
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(4096));
            continue;
        }
        // zlib leaves output room only once the input is in and the flush is done.
        if !last && z.total_in() as usize == input.len() {
            return Ok(());
        }
        return Err(io::Error::other(
            "deflate stopped before the end of a block",
        ));
    }
}

/// Runs blocks through a `BlockDeflater`, at most `limit` in flight.
pub enum Engine {
    /// One thread: each block is deflated as it is submitted, on the caller's thread.
    Inline {
        level: u32,
        done: Option<Outcome>,
    },
    Pool(Pool),
}

impl Engine {
    pub fn new(level: u32, threads: usize) -> io::Result<Engine> {
        if threads <= 1 {
            Ok(Engine::Inline { level, done: None })
        } else {
            Pool::new(level, threads).map(Engine::Pool)
        }
    }

    /// How many blocks may be submitted and not yet taken back: two per worker keeps
    /// every worker busy while bounding memory.
    pub fn limit(&self) -> usize {
        match self {
            Engine::Inline { .. } => 1,
            Engine::Pool(p) => 2 * p.workers.len(),
        }
    }

    pub fn submit(&mut self, seq: u64, block: Block) -> io::Result<()> {
        match self {
            Engine::Inline { level, done } => {
                *done = Some((seq, deflate_block(*level, block)));
                Ok(())
            }
            Engine::Pool(p) => p.submit(seq, block),
        }
    }

    /// A finished block if there is one, without waiting.
    pub fn try_recv(&mut self) -> io::Result<Option<Outcome>> {
        match self {
            Engine::Inline { done, .. } => Ok(done.take()),
            Engine::Pool(p) => match p.done.try_recv() {
                Ok(outcome) => Ok(Some(outcome)),
                Err(TryRecvError::Empty) => Ok(None),
                Err(TryRecvError::Disconnected) => Err(workers_gone()),
            },
        }
    }

    /// The next block to finish, in whatever order they do.
    pub fn recv(&mut self) -> io::Result<Outcome> {
        match self {
            Engine::Inline { done, .. } => done
                .take()
                .ok_or_else(|| io::Error::other("gzip: waited for a block never submitted")),
            Engine::Pool(p) => p.done.recv().map_err(|_| workers_gone()),
        }
    }
}

/// Worker threads taking blocks from one queue. Dropping it stops and joins them.
pub struct Pool {
    /// Always set until drop, which closes the queue by taking it.
    jobs: Option<Sender<(u64, Block)>>,
    done: Receiver<Outcome>,
    /// Tells workers to skip what is still queued when the encoder is dropped unfinished.
    cancel: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(level: u32, threads: usize) -> io::Result<Pool> {
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let mut pool = Pool {
            jobs: Some(jobs_tx),
            done: done_rx,
            cancel: Arc::new(AtomicBool::new(false)),
            workers: Vec::with_capacity(threads),
        };
        for i in 0..threads {
            let jobs = Arc::clone(&jobs_rx);
            let done = done_tx.clone();
            let cancel = Arc::clone(&pool.cancel);
            let worker = thread::Builder::new()
                .name(format!("gzip-{i}"))
                .spawn(move || work(level, &jobs, &done, &cancel))?;
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    fn submit(&mut self, seq: u64, block: Block) -> io::Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(workers_gone)?;
        jobs.send((seq, block)).map_err(|_| workers_gone())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.jobs = None;
        for worker in self.workers.drain(..) {
            // A worker's panic was already reported as its block's error.
            let _ = worker.join();
        }
    }
}

fn work(
    level: u32,
    jobs: &Mutex<Receiver<(u64, Block)>>,
    done: &Sender<Outcome>,
    cancel: &AtomicBool,
) {
    loop {
        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((seq, block)) = next else { return };
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        // A panic becomes that block's error, so the encoder reports it instead of
        // waiting forever for the block.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| deflate_block(level, block)))
            .unwrap_or_else(|p| Err(panic_error(p)));
        if done.send((seq, outcome)).is_err() {
            return;
        }
    }
}

fn panic_error(payload: Box<dyn Any + Send>) -> io::Error {
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    io::Error::other(format!("gzip worker thread panicked: {msg}"))
}

fn workers_gone() -> io::Error {
    io::Error::other("gzip worker threads exited unexpectedly")
}

fn deflate_failed(e: flate2::CompressError) -> io::Error {
    io::Error::other(format!("deflate failed: {e}"))
}
