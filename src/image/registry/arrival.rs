//! A layer blob on its way in, shared by its download, its file writer and its unpacker:
//! the download hashes its bytes into a window in memory, from which a thread of its own
//! writes the file (past the page cache: a disk write never holds up the download) and
//! the unpacker reads them (the file is never read back in a pull that goes well). The
//! unpacker sees the blob's end only once the whole of it is verified.

use bytes::Bytes;
use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::status::Board;
use crate::image::digest::Digest;
use crate::image::store::direct::DirectFile;

/// Bytes a download may be ahead of its unpacker: it waits beyond this, so that a fast
/// registry does not pile a whole blob into memory (the file has them, but reading them
/// from there costs a disk read, or a page-cache page apiece).
const AHEAD: u64 = 4 << 20;
/// Readers are woken at most once per this many bytes (and at the end).
const WAKE_EVERY: u64 = 256 << 10;

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
    /// Bytes received and hashed; those from `start` on are in `window`.
    received: u64,
    /// Bytes in the file (the writer stages the rest in whole blocks).
    in_file: u64,
    /// Bytes handed to the writer.
    to_writer: u64,
    /// Bytes the lead reader has taken.
    lead_pos: u64,
    window: VecDeque<Bytes>,
    start: u64,
    woken: u64,
    lead: Lead,
    /// `Some(Ok)`: whole and verified; `Some(Err)`: failed (or given up).
    end: Option<Result<(), String>>,
}

/// The first reader drains the window; a second reader of the same blob (an image that
/// holds one layer twice) reads what it has passed from the file.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Lead {
    #[default]
    Coming,
    Reading,
    /// It stopped (done or failed): nobody drains the window, so the download does, down
    /// to what the file holds, and never waits.
    Gone,
}

impl State {
    /// Drops the window's bytes that are in the file and that the lead reader has taken
    /// (or all that are in the file, once it has gone).
    fn trim(&mut self) {
        let upto = match self.lead {
            Lead::Coming => return,
            Lead::Reading => self.lead_pos.min(self.in_file),
            Lead::Gone => self.in_file,
        };
        while let Some(c) = self.window.front() {
            if self.start + c.len() as u64 > upto {
                break;
            }
            self.start += c.len() as u64;
            self.window.pop_front();
        }
    }

    /// The rest of the window chunk that holds `pos` (not before `start`).
    fn piece(&self, pos: u64) -> Bytes {
        let mut skip = (pos - self.start) as usize;
        for c in &self.window {
            if skip < c.len() {
                return c.slice(skip..);
            }
            skip -= c.len();
        }
        Bytes::new()
    }
}

impl Arrival {
    /// A blob to fetch into `path` (created empty now, so readers can open it).
    pub fn new(digest: Digest, size: u64, path: PathBuf) -> io::Result<Arrival> {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Arrival {
            digest,
            size,
            path,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The blob's next bytes, received and hashed.
    pub fn push(&self, chunk: Bytes) {
        let mut st = self.lock();
        st.received += chunk.len() as u64;
        st.window.push_back(chunk);
        st.trim();
        if st.received - st.woken >= WAKE_EVERY || st.received == self.size {
            st.woken = st.received;
            drop(st);
            self.cv.notify_all();
        }
    }

    /// Writes the blob's bytes into `file` as they arrive, until the end; the file is
    /// whole (not fsynced) once this returns Ok.
    pub fn write_out(&self, file: DirectFile) -> io::Result<fs::File> {
        let r = self.write_all_out(file);
        if let Err(e) = &r {
            // The download and the readers stop on it.
            self.end(Err(format!("write {}: {e}", self.path.display())));
        }
        r
    }

    fn write_all_out(&self, mut file: DirectFile) -> io::Result<fs::File> {
        loop {
            let piece = {
                let mut st = self.lock();
                loop {
                    if st.to_writer < st.received {
                        break st.piece(st.to_writer);
                    }
                    match &st.end {
                        Some(Ok(())) => {
                            drop(st);
                            let (f, _) = file.finish()?;
                            let mut st = self.lock();
                            st.in_file = st.received;
                            st.trim();
                            return Ok(f);
                        }
                        Some(Err(e)) => return Err(io::Error::other(e.clone())),
                        None => st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                    }
                }
            };
            file.write_all(&piece)?;
            let mut st = self.lock();
            st.to_writer += piece.len() as u64;
            st.in_file = file.written();
            st.trim();
            drop(st);
            // The download may wait for room that this write made.
            self.cv.notify_all();
        }
    }

    /// How the blob failed, if it has.
    pub fn failed(&self) -> Option<String> {
        match &self.lock().end {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// Waits while the download is `AHEAD` of its reader (or of the reader to come) or of
    /// its writer: until they catch up, the reader stops, the blob fails, or `stop` is set.
    pub fn wait_for_room(&self, stop: &AtomicBool) {
        let mut st = self.lock();
        while st.received - st.start > AHEAD
            && st.lead != Lead::Gone
            && st.end.is_none()
            && !stop.load(Ordering::Relaxed)
        {
            // The timeout is for `stop`, which is set without a notify.
            st = self
                .cv
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The end, good or bad; a later end (a cancel after success) changes nothing.
    pub fn end(&self, r: Result<(), String>) {
        let mut st = self.lock();
        if st.end.is_none() {
            st.end = Some(r);
        }
        drop(st);
        self.cv.notify_all();
    }

    /// A reader from the blob's first byte.
    pub fn reader<'a>(&'a self, board: &'a Board) -> Reader<'a> {
        let mut st = self.lock();
        let lead = st.lead == Lead::Coming;
        if lead {
            st.lead = Lead::Reading;
        }
        Reader {
            a: self,
            file: None,
            cur: Bytes::new(),
            pos: 0,
            lead,
            board,
        }
    }
}

/// A reader of an arriving blob: waits for bytes, fails when the download does. Its
/// buffer is the window's own chunk (shared, not copied).
pub struct Reader<'a> {
    a: &'a Arrival,
    /// Opened once bytes behind the window are wanted.
    file: Option<fs::File>,
    /// The blob's bytes from `pos` on that this reader holds.
    cur: Bytes,
    pos: u64,
    lead: bool,
    board: &'a Board,
}

/// Bytes read at once from the file, behind the window.
const FILE_READ: usize = 1 << 20;

impl Reader<'_> {
    /// The bytes at `pos`: a piece of the window, else of the file; empty at the end.
    fn next_piece(&mut self) -> io::Result<Bytes> {
        let mut st = self.a.lock();
        loop {
            if self.pos < st.received {
                if self.pos < st.start {
                    let behind = (st.start - self.pos).min(FILE_READ as u64) as usize;
                    drop(st);
                    return self.read_file(behind);
                }
                let piece = st.piece(self.pos);
                if self.lead {
                    let ahead = st.received - st.start;
                    st.lead_pos = self.pos + piece.len() as u64;
                    st.trim();
                    // The download waits for room: tell it there is some.
                    if ahead > AHEAD && st.received - st.start <= AHEAD {
                        self.a.cv.notify_all();
                    }
                }
                return Ok(piece);
            }
            match &st.end {
                Some(Ok(())) => return Ok(Bytes::new()),
                Some(Err(e)) => return Err(io::Error::other(e.clone())),
                None => st = self.a.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    fn read_file(&mut self, len: usize) -> io::Result<Bytes> {
        let f = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(fs::File::open(&self.a.path)?),
        };
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, self.pos)?;
        if n == 0 {
            return Err(io::Error::other("the downloaded blob shrank"));
        }
        buf.truncate(n);
        Ok(Bytes::from(buf))
    }
}

impl BufRead for Reader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.cur.is_empty() {
            self.cur = self.next_piece()?;
        }
        Ok(&self.cur)
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.cur.len());
        self.cur = self.cur.slice(n..);
        self.pos += n as u64;
        if self.cur.is_empty() && self.a.lock().end == Some(Ok(())) {
            self.board
                .bytes(&self.a.digest, "Extracting", self.pos, self.a.size);
        }
    }
}

impl Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let have = self.fill_buf()?;
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if self.lead {
            let mut st = self.a.lock();
            st.lead = Lead::Gone;
            st.trim();
            drop(st);
            self.a.cv.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::registry::status::Mode;
    use crate::image::store::files::TestDir;

    fn blob(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    /// A blob of `n` bytes on its way, with what a pull gives its parts.
    struct Case {
        _dir: TestDir,
        data: Vec<u8>,
        a: Arrival,
        board: Board,
        stop: AtomicBool,
    }

    impl Case {
        fn new(n: usize) -> Case {
            let dir = TestDir::new("arrival");
            let data = blob(n);
            let a = Arrival::new(Digest::of(&data), n as u64, dir.path().join("blob")).unwrap();
            Case {
                _dir: dir,
                data,
                a,
                board: Board::new(Mode::Quiet),
                stop: AtomicBool::new(false),
            }
        }
    }

    /// A download of `data` as the fetcher does it: pushed in pieces, waiting for room after
    /// each, while the writer thread fills the file.
    fn download(a: &Arrival, data: &[u8], stop: &AtomicBool) -> u64 {
        std::thread::scope(|s| {
            let file = DirectFile::open(&a.path).unwrap();
            let writer = s.spawn(|| a.write_out(file));
            let mut most_ahead = 0u64;
            for c in data.chunks(40_000) {
                a.push(Bytes::copy_from_slice(c));
                {
                    let st = a.lock();
                    most_ahead = most_ahead.max(st.received - st.start);
                }
                a.wait_for_room(stop);
            }
            a.end(Ok(()));
            writer.join().unwrap().unwrap();
            assert!(fs::read(&a.path).unwrap() == data, "the file differs");
            most_ahead
        })
    }

    fn read_all(mut r: impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn the_unpacker_reads_from_memory_and_the_download_waits_for_it() {
        let Case {
            data,
            a,
            board,
            stop,
            ..
        } = &Case::new(50 << 20);
        let (got, most_ahead) = std::thread::scope(|s| {
            let dl = s.spawn(|| download(a, data, stop));
            // The reader comes late: the download waits for it (it does not spill).
            std::thread::sleep(Duration::from_millis(200));
            assert!(a.lock().received <= AHEAD + 40_000);
            let got = read_all(a.reader(board)).unwrap();
            (got, dl.join().unwrap())
        });
        assert!(got == *data, "the reader's bytes differ from the blob's");
        assert!(most_ahead <= AHEAD + 40_000, "{most_ahead} bytes were held");
        assert!(a.lock().window.is_empty(), "the window outlived its reader");
    }

    #[test]
    fn a_second_reader_reads_what_the_first_passed_from_the_file() {
        let Case {
            data,
            a,
            board,
            stop,
            ..
        } = &Case::new(30 << 20);
        std::thread::scope(|s| {
            let mut lead = a.reader(board);
            let mut second = a.reader(board);
            s.spawn(|| download(a, data, stop));
            let mut first = vec![0u8; 20 << 20];
            lead.read_exact(&mut first).unwrap();
            assert!(a.lock().start > 0, "the lead did not drain the window");
            let rest = read_all(&mut lead).unwrap();
            assert!([first, rest].concat() == *data);
            assert!(read_all(&mut second).unwrap() == *data);
        });
    }

    #[test]
    fn a_reader_that_stops_early_never_holds_the_download() {
        let Case {
            data,
            a,
            board,
            stop,
            ..
        } = &Case::new(40 << 20);
        std::thread::scope(|s| {
            let mut r = a.reader(board);
            let dl = s.spawn(|| download(a, data, stop));
            let mut some = vec![0u8; 1000];
            r.read_exact(&mut some).unwrap();
            drop(r); // an unpacker that failed
            dl.join().unwrap();
        });
        assert!(a.lock().window.is_empty());
    }

    #[test]
    fn a_download_waiting_for_a_reader_gives_up_on_stop() {
        let Case { data, a, stop, .. } = &Case::new(40 << 20);
        std::thread::scope(|s| {
            let dl = s.spawn(|| download(a, data, stop));
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
            dl.join().unwrap();
        });
    }

    #[test]
    fn a_failed_download_fails_its_reader() {
        let Case { data, a, board, .. } = &Case::new(1000);
        a.push(Bytes::copy_from_slice(&data[..600]));
        a.end(Err("the registry went away".into()));
        let e = read_all(a.reader(board)).unwrap_err();
        assert_eq!(e.to_string(), "the registry went away");
    }
}
