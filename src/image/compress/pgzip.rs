//! Parallel gzip as pigz makes it, in bytes that never depend on thread count or write sizes.

use super::blocks::{Block, Deflated, Engine};
use crc32fast::Hasher;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::mem;
use std::sync::Arc;

/// Input per block, pigz's default (`-b 128`). Blocks start at fixed input offsets.
const BLOCK: usize = 128 * 1024;

/// OS "unknown" in the header, as Go writes it: the bytes must not depend on the host.
const OS_UNKNOWN: u8 = 255;

pub struct GzEncoder<W: Write> {
    out: W,
    level: u32,
    /// The block being filled. It is sent off only once full and more input follows, so
    /// the last block, the one that ends the deflate stream, needs no look-ahead.
    cur: Vec<u8>,
    /// The last block sent: the next one's dictionary.
    prev: Option<Arc<Vec<u8>>>,
    engine: Engine,
    /// Blocks sent to be deflated, and blocks written out; the difference is in flight.
    sent: u64,
    written: u64,
    /// Deflated blocks waiting for those before them, from block `written` on.
    ready: VecDeque<Option<Deflated>>,
    crc: Hasher,
    spare_inputs: Vec<Vec<u8>>,
    spare_outputs: Vec<Vec<u8>>,
    /// Set once an error left the output unusable; every later call reports it.
    failed: Option<(io::ErrorKind, String)>,
}

impl<W: Write> GzEncoder<W> {
    pub fn new(out: W, level: u32, threads: usize) -> io::Result<Self> {
        let engine = Engine::new(level, threads)?;
        Ok(GzEncoder {
            out,
            level,
            cur: Vec::with_capacity(BLOCK),
            prev: None,
            engine,
            sent: 0,
            written: 0,
            ready: VecDeque::new(),
            crc: Hasher::new(),
            spare_inputs: Vec::new(),
            spare_outputs: Vec::new(),
            failed: None,
        })
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Deflates the rest, writes the trailer and flushes the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.guard(|s| {
            s.send(true)?;
            while s.written < s.sent {
                s.wait_one()?;
            }
            s.write_trailer()?;
            s.out.flush()
        })?;
        let GzEncoder { out, .. } = self;
        Ok(out)
    }

    /// Runs `step`, and after any error refuses to go on: the output would be broken.
    fn guard<T>(&mut self, step: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(
                *kind,
                format!("gzip encoder failed earlier: {msg}"),
            ));
        }
        step(self).inspect_err(|e| self.failed = Some((e.kind(), e.to_string())))
    }

    fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.cur.len() == BLOCK {
            self.send(false)?;
        }
        let n = buf.len().min(BLOCK - self.cur.len());
        self.cur.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Hands the current block to the engine, after waiting for room in the pipeline.
    fn send(&mut self, last: bool) -> io::Result<()> {
        while self.sent - self.written >= self.engine.limit() as u64 {
            self.wait_one()?;
        }
        let next = if last { Vec::new() } else { self.spare_input() };
        let input = Arc::new(mem::replace(&mut self.cur, next));
        let block = Block {
            input: Arc::clone(&input),
            dict: self.prev.replace(input),
            last,
            out: self.spare_outputs.pop().unwrap_or_default(),
        };
        self.engine.submit(self.sent, block)?;
        self.sent += 1;
        self.poll()
    }

    /// Takes in the blocks already deflated, without waiting.
    fn poll(&mut self) -> io::Result<()> {
        while let Some((seq, done)) = self.engine.try_recv()? {
            self.accept(seq, done)?;
        }
        Ok(())
    }

    /// Waits for the next deflated block, in whatever order they finish.
    fn wait_one(&mut self) -> io::Result<()> {
        let (seq, done) = self.engine.recv()?;
        self.accept(seq, done)
    }

    /// Files a deflated block in order and writes out every block now in sequence.
    fn accept(&mut self, seq: u64, done: io::Result<Deflated>) -> io::Result<()> {
        // Less than the engine's limit, so it fits.
        let i = (seq - self.written) as usize;
        if self.ready.len() <= i {
            self.ready.resize_with(i + 1, || None);
        }
        self.ready[i] = Some(done?);
        while let Some(slot) = self.ready.front_mut() {
            let Some(d) = slot.take() else { break };
            self.ready.pop_front();
            self.emit(d)?;
        }
        Ok(())
    }

    fn emit(&mut self, d: Deflated) -> io::Result<()> {
        if self.written == 0 {
            self.out.write_all(&header(self.level))?;
        }
        self.out.write_all(&d.out)?;
        self.crc.combine(&d.crc);
        self.written += 1;
        self.recycle(d);
        Ok(())
    }

    fn write_trailer(&mut self) -> io::Result<()> {
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32, as RFC 1952 says.
        trailer[4..].copy_from_slice(&(self.crc.total_len() as u32).to_le_bytes());
        self.out.write_all(&trailer)
    }

    fn spare_input(&mut self) -> Vec<u8> {
        self.spare_inputs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK))
    }

    /// Keeps a written block's buffers for later blocks. An input is free only once
    /// both its own block and the next (which read it as dictionary) are done.
    fn recycle(&mut self, d: Deflated) {
        let keep = self.engine.limit() + 2;
        let mut out = d.out;
        if self.spare_outputs.len() < keep {
            out.clear();
            self.spare_outputs.push(out);
        }
        for input in [Some(d.input), d.dict].into_iter().flatten() {
            if let Ok(mut v) = Arc::try_unwrap(input) {
                if self.spare_inputs.len() < keep {
                    v.clear();
                    self.spare_inputs.push(v);
                }
            }
        }
    }
}

impl<W: Write> Write for GzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.guard(|s| s.write_some(buf))
    }

    /// Writes out the blocks already deflated; the block being filled stays open, since
    /// cutting it early would change the output.
    fn flush(&mut self) -> io::Result<()> {
        self.guard(|s| {
            s.poll()?;
            s.out.flush()
        })
    }
}

/// The fixed member header: no name, MTIME 0, XFL as gzip sets it for the level.
fn header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, OS_UNKNOWN]
}
