//! The layers of an archive verified and unpacked in parallel: each layer's decompressor
//! feeds its unpacker through a bounded channel, the unpacker hashing the diff ID, and
//! layers run side by side, bottom ones first; a layer waits for the layers below it
//! only if it has to look at them (a directory its tar does not list, a hard link to a
//! lower file), so a stack of layers unpacks on every core, not one layer at a time.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use super::plan::{ImagePlan, LayerPlan};
use crate::image::compress::{self, Compression};
use crate::image::digest::{Digest, HashReader};
use crate::image::layer::{self, Gate, UnpackOpts};
use crate::image::progress::Progress;
use crate::image::store::layers::LayerInfo;
use crate::image::store::Store;

/// Decompressed bytes per message, and messages in flight per layer.
const CHUNK: usize = 1 << 20;
const DEPTH: usize = 4;

/// A layer dir made here (a dir holding `diff/`), ready to publish.
pub struct NewLayerDir {
    pub dir: PathBuf,
    pub info: LayerInfo,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    /// In the store already, and its blob known to have this diff ID (or uncompressed,
    /// so its digest, checked as it was read, is the diff ID).
    Nothing,
    /// In the store already: decompress only, to check the diff ID.
    Verify,
    Unpack,
}

/// One layer of the archive: a chain ID's, shared by the images that have it; or another
/// blob claiming that chain's diff ID, only to be verified.
struct Node<'a> {
    plan: &'a LayerPlan,
    parent: Option<usize>,
    action: Action,
}

/// Where the layers' blobs come from, and who hears how each layer goes: the archive's
/// files for `load`; for `pull`, downloads still arriving or the store's own blobs.
pub trait Blobs: Sync {
    /// The layer's blob from its first byte (the reader may wait for bytes to arrive,
    /// and ends only once the whole blob is there and verified).
    fn open(&self, l: &LayerPlan) -> io::Result<Box<dyn BufRead + Send + '_>>;
    /// A layer's work starts or ends.
    fn event(&self, _l: &LayerPlan, _e: Event) {}
    /// Layers worked on at once: one per core for blobs that are all there; more for blobs
    /// still arriving, as a layer waiting for its bytes holds no core.
    fn parallel(&self) -> usize {
        compress::default_threads()
    }
}

/// What happens to one layer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// In the store with a proven blob: nothing to do.
    Present,
    /// Unpacking starts (`true`), or only the diff ID is checked (`false`).
    Start(bool),
    /// Unpacked or checked.
    Done,
}

/// The archive's blobs, in the temp dir already.
struct Files;

impl Blobs for Files {
    fn open(&self, l: &LayerPlan) -> io::Result<Box<dyn BufRead + Send + '_>> {
        Ok(Box::new(file_reader(fs::File::open(&l.blob.path)?)))
    }
}

/// Verify every layer of `images` and unpack those the store lacks into `tmp/layers/`.
/// `known` pairs (blob digest, diff ID) of the store's own images. Returns the new layer
/// dirs, every lower before its uppers.
pub fn unpack_all(
    store: &Store,
    tmp: &Path,
    images: &[ImagePlan],
    known: &HashSet<(Digest, Digest)>,
    quiet: bool,
) -> Result<Vec<NewLayerDir>> {
    unpack_with(store, tmp, images, known, &Files, quiet)
}

/// Which layers of `image` need their blob (to unpack it, or to prove its diff ID); the
/// others are in the store with a blob known to be theirs.
pub fn needed(store: &Store, image: &ImagePlan, known: &HashSet<(Digest, Digest)>) -> Vec<bool> {
    nodes(store, std::slice::from_ref(image), known)
        .iter()
        .map(|n| n.action != Action::Nothing)
        .collect()
}

/// `unpack_all` over blobs from `blobs`.
pub fn unpack_with(
    store: &Store,
    tmp: &Path,
    images: &[ImagePlan],
    known: &HashSet<(Digest, Digest)>,
    blobs: &dyn Blobs,
    quiet: bool,
) -> Result<Vec<NewLayerDir>> {
    let nodes = nodes(store, images, known);
    let todo: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].action != Action::Nothing)
        .collect();
    for n in nodes.iter().filter(|n| n.action == Action::Nothing) {
        blobs.event(n.plan, Event::Present);
    }
    let total = todo.iter().map(|&i| nodes[i].plan.blob.size).sum();
    let progress = Progress::new("unpack", Some(total), quiet);
    let root = tmp.join("layers");
    fs::create_dir_all(&root)?;
    let dir = |i: usize| root.join(nodes[i].plan.chain_id.hex());
    let sizes = run(&nodes, &todo, blobs.parallel(), &|i, gate| {
        let n = &nodes[i];
        let unpack = n.action == Action::Unpack;
        blobs.event(n.plan, Event::Start(unpack));
        let (diff_id, size) = (|| {
            let blob = blobs.open(n.plan)?;
            if unpack {
                fs::create_dir_all(dir(i).join("diff"))?;
                let lowers = lowers(store, &nodes, i, &dir);
                let opts = UnpackOpts { lowers, gate };
                unpack_layer(blob, &dir(i).join("diff"), opts, &progress)
            } else {
                hash_layer(blob, &progress)
            }
        })()
        .with_context(|| n.plan.what.clone())?;
        if diff_id != n.plan.diff_id {
            bail!(
                "{}: its content has diff ID {diff_id}, the config says {}",
                n.plan.what,
                n.plan.diff_id
            );
        }
        blobs.event(n.plan, Event::Done);
        Ok(size)
    })?;
    progress.done();
    Ok(nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.action == Action::Unpack)
        .map(|(i, n)| NewLayerDir {
            dir: dir(i),
            info: LayerInfo {
                diff_id: n.plan.diff_id.clone(),
                chain_id: n.plan.chain_id.clone(),
                parent: n.parent.map(|p| nodes[p].plan.chain_id.clone()),
                size: sizes[&i],
            },
        })
        .collect())
}

/// One node per distinct chain ID, parents first, each with what it needs; and a
/// `Verify` node for each other blob that claims a chain's diff ID (two images may hold
/// one layer compressed two ways: each blob must prove its diff ID).
fn nodes<'a>(
    store: &Store,
    images: &'a [ImagePlan],
    known: &HashSet<(Digest, Digest)>,
) -> Vec<Node<'a>> {
    let mut out: Vec<Node> = Vec::new();
    let mut by_chain: HashMap<&Digest, usize> = HashMap::new();
    // (blob, diff ID) pairs proven, or to be proven by a node.
    let mut proven: HashSet<(Digest, Digest)> = known.clone();
    for img in images {
        let mut parent = None;
        for l in &img.layers {
            let pair = (l.blob.digest.clone(), l.diff_id.clone());
            // An uncompressed blob's digest is its diff ID: the plan checked it.
            let free = l.blob.compression == Compression::None || proven.contains(&pair);
            proven.insert(pair);
            let action = match by_chain.get(&l.chain_id) {
                Some(&i) => {
                    parent = Some(i);
                    if !free {
                        out.push(Node {
                            plan: l,
                            parent: None,
                            action: Action::Verify,
                        });
                    }
                    continue;
                }
                None if store.layer_info(&l.chain_id).is_none() => Action::Unpack,
                None if free => Action::Nothing,
                None => Action::Verify,
            };
            by_chain.insert(&l.chain_id, out.len());
            out.push(Node {
                plan: l,
                parent,
                action,
            });
            parent = Some(out.len() - 1);
        }
    }
    out
}

/// The diff dirs below node `i`, top-most first: made here, or the store's.
fn lowers(store: &Store, nodes: &[Node], i: usize, dir: &dyn Fn(usize) -> PathBuf) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut p = nodes[i].parent;
    while let Some(j) = p {
        out.push(match nodes[j].action {
            Action::Unpack => dir(j).join("diff"),
            _ => store.layer_diff(&nodes[j].plan.chain_id),
        });
        p = nodes[j].parent;
    }
    out
}

// ---- the scheduler ----------------------------------------------------------------------

struct State {
    ready: VecDeque<usize>,
    left: usize,
    running: usize,
    done: HashMap<usize, u64>,
    failed: Option<anyhow::Error>,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// Run `work` on every node of `todo` on a pool of threads, in order (lowers first); an
/// unpack gets the gate to pass before it looks at its lowers made here. The first error
/// stops the rest.
///
/// No deadlock: a worker takes nodes in order, so the lowest running node has every lower
/// done, never waits at its gate, and ends.
fn run(
    nodes: &[Node],
    todo: &[usize],
    workers: usize,
    work: &(dyn Fn(usize, Option<Gate>) -> Result<u64> + Sync),
) -> Result<HashMap<usize, u64>> {
    let st = State {
        ready: todo.iter().copied().collect(),
        left: todo.len(),
        running: 0,
        done: HashMap::new(),
        failed: None,
    };
    let shared: Shared = Arc::new((Mutex::new(st), Condvar::new()));
    let gates: HashMap<usize, Gate> = todo
        .iter()
        .filter(|&&i| nodes[i].action == Action::Unpack)
        .filter_map(|&i| {
            let below = made_below(nodes, i);
            let sh = shared.clone();
            (!below.is_empty()).then(|| (i, Gate(Arc::new(move || wait_for(&sh, &below)))))
        })
        .collect();
    let workers = workers.min(todo.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| worker(&shared, &gates, work));
        }
    });
    drop(gates);
    let st = Arc::into_inner(shared)
        .ok_or_else(|| anyhow!("a layer gate outlived its pull"))?
        .0
        .into_inner()
        .map_err(|_| anyhow!("a worker panicked"))?;
    if let Some(e) = st.failed {
        return Err(e);
    }
    if st.left != 0 {
        bail!("{} layers were never unpacked", st.left);
    }
    Ok(st.done)
}

/// The nodes below `i` that are unpacked here (the others are in the store).
fn made_below(nodes: &[Node], i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = nodes[i].parent;
    while let Some(j) = p {
        if nodes[j].action == Action::Unpack {
            out.push(j);
        }
        p = nodes[j].parent;
    }
    out
}

/// Wait until every node of `below` is done; an error once any node has failed.
fn wait_for(shared: &Shared, below: &[usize]) -> Result<()> {
    let (lock, cv) = &**shared;
    let mut st = lock.lock().map_err(|_| anyhow!("a worker panicked"))?;
    loop {
        if st.failed.is_some() {
            bail!("a layer below failed");
        }
        if below.iter().all(|j| st.done.contains_key(j)) {
            return Ok(());
        }
        st = cv.wait(st).map_err(|_| anyhow!("a worker panicked"))?;
    }
}

fn worker(
    shared: &Shared,
    gates: &HashMap<usize, Gate>,
    work: &(dyn Fn(usize, Option<Gate>) -> Result<u64> + Sync),
) {
    let (lock, cv) = &**shared;
    let Ok(mut st) = lock.lock() else { return };
    loop {
        if st.failed.is_some() || st.left == 0 {
            break;
        }
        let Some(i) = st.ready.pop_front() else {
            if st.running == 0 {
                break; // nothing runs that could make more ready: `run` reports it
            }
            st = match cv.wait(st) {
                Ok(g) => g,
                Err(_) => return,
            };
            continue;
        };
        st.running += 1;
        drop(st);
        let gate = gates.get(&i).cloned();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(i, gate)))
            .unwrap_or_else(|_| Err(anyhow!("a layer worker panicked")));
        st = match lock.lock() {
            Ok(g) => g,
            Err(_) => return,
        };
        st.running -= 1;
        match r {
            Ok(size) => {
                st.left -= 1;
                st.done.insert(i, size);
            }
            Err(e) => {
                st.failed.get_or_insert(e);
            }
        }
        cv.notify_all();
    }
    cv.notify_all();
}

// ---- one layer --------------------------------------------------------------------------

/// Unpack `blob` into the empty `diff` over `lowers`: a decompressor thread hands the tar
/// on in chunks, and the unpacker hashes it (the diff ID) as it reads, so that the two
/// threads share a layer's work (inflate on one, sha256 and the files on the other) and
/// the last layer of a pull ends sooner. Returns (diff ID, tar size).
fn unpack_layer(
    blob: Box<dyn BufRead + Send + '_>,
    diff: &Path,
    opts: UnpackOpts,
    progress: &Progress,
) -> Result<(Digest, u64)> {
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel(DEPTH);
        let (spare_tx, spare_rx) = channel();
        let dec = s.spawn(move || decode(blob, progress, tx, spare_rx));
        let mut tar = HashReader::new(Chunks::new(rx, spare_tx));
        let unpacked = layer::unpack(&mut tar, diff, &opts);
        let decoded = dec
            .join()
            .map_err(|_| anyhow!("the decompressor thread panicked"))?;
        // The unpacker's error first: it names the entry, and carries the decoder's.
        unpacked?;
        decoded?;
        let (d, n, _) = tar.finish();
        Ok((d, n))
    })
}

/// Only the diff ID of a layer (its dir exists): decompress and hash.
fn hash_layer(blob: Box<dyn BufRead + Send + '_>, progress: &Progress) -> Result<(Digest, u64)> {
    let mut h = HashReader::new(open_tar(blob, progress)?);
    io::copy(&mut h, &mut io::sink())?;
    let (d, n, _) = h.finish();
    Ok((d, n))
}

/// The layer's tar stream (gzip, zstd or plain, by its first bytes), counting the blob's
/// bytes into the progress bar.
fn open_tar<'a>(
    blob: Box<dyn BufRead + Send + 'a>,
    progress: &'a Progress,
) -> io::Result<Box<dyn Read + 'a>> {
    let counted = Counted {
        inner: blob,
        progress,
    };
    compress::decoder_for_digest(counted)
}

/// A blob file, read in chunks of the size the decompressors work in.
pub fn file_reader(f: fs::File) -> BufReader<fs::File> {
    BufReader::with_capacity(CHUNK, f)
}

/// The decompressor thread: the tar in chunks to the unpacker, an error passed on too.
fn decode(
    blob: Box<dyn BufRead + Send + '_>,
    progress: &Progress,
    tx: SyncSender<io::Result<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut h = match open_tar(blob, progress) {
        Ok(r) => r,
        Err(e) => return Err(pass_on(e, &tx)),
    };
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let n = match fill(&mut h, &mut buf) {
            Ok(n) => n,
            Err(e) => return Err(pass_on(e, &tx)),
        };
        if n == 0 {
            break;
        }
        buf.truncate(n);
        if tx.send(Ok(buf)).is_err() {
            return Err(io::Error::other("the unpacker stopped reading"));
        }
    }
    Ok(())
}

/// Send the error to the unpacker (which reports it) and keep a copy.
fn pass_on(e: io::Error, tx: &SyncSender<io::Result<Vec<u8>>>) -> io::Error {
    let copy = io::Error::new(e.kind(), e.to_string());
    let _ = tx.send(Err(e));
    copy
}

/// Read until `buf` is full or the stream ends.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The unpacker's side of the channel: chunks read in order, emptied ones sent back.
struct Chunks {
    rx: Receiver<io::Result<Vec<u8>>>,
    spare: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    failed: bool,
}

impl Chunks {
    fn new(rx: Receiver<io::Result<Vec<u8>>>, spare: Sender<Vec<u8>>) -> Chunks {
        Chunks {
            rx,
            spare,
            cur: Vec::new(),
            pos: 0,
            failed: false,
        }
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.failed {
                return Err(io::Error::other("the layer stream failed"));
            }
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let used = std::mem::replace(&mut self.cur, next);
                    let _ = self.spare.send(used);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.failed = true;
                    return Err(e);
                }
                // The decompressor is done (or died: its result says which).
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A reader that adds what passes through it to a progress bar.
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.progress.inc(n as u64);
        self.inner.consume(n);
    }
}
