//! Layer compression: gzip (parallel) and zstd writers, and a reader that sniffs the format.

mod blocks;
mod gunzip;
mod pgzip;
mod unzstd;

#[cfg(test)]
mod tests;

use anyhow::{bail, Result};
use std::io::{self, BufRead, Read, Write};

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    /// "gzip" | "zstd" | "none" (also "uncompressed" for None).
    pub fn parse(s: &str) -> Result<Compression> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "none" | "uncompressed" => Ok(Compression::None),
            _ => bail!("unknown compression {s:?}: expected gzip, zstd or none"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The suffix of an OCI layer media type (`application/vnd.oci.image.layer.v1.tar+gzip`).
    pub fn media_type_suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "+gzip",
            Compression::Zstd => "+zstd",
        }
    }

    /// The levels the CLIs use by default (gzip and pigz: 6, zstd: 3).
    pub fn default_level(self) -> i32 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 6,
            Compression::Zstd => 3,
        }
    }

    /// Checks a user-given level. zstd stops at 19 as its CLI does without `--ultra`,
    /// whose levels need far more memory to decompress.
    pub fn check_level(self, level: i32) -> Result<i32> {
        let range = match self {
            Compression::None => bail!("compression none takes no level (got {level})"),
            Compression::Gzip => 1..=9,
            Compression::Zstd => 1..=19,
        };
        if !range.contains(&level) {
            bail!(
                "{} level {level} is out of range {}..={}",
                self.name(),
                range.start(),
                range.end()
            );
        }
        Ok(level)
    }

    /// Guesses the format from the first bytes of a stream.
    pub fn detect(first: &[u8]) -> Compression {
        if first.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if first.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Threads to use by default: as many as the machine offers.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A compressing writer. `finish` must be called: it writes the trailers.
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Plain(W),
    Gzip(Box<pgzip::GzEncoder<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// `level` None means the format's default; `threads` 0 counts as 1.
    pub fn new(c: Compression, level: Option<i32>, threads: usize, out: W) -> Result<Encoder<W>> {
        let level = match level {
            Some(level) => c.check_level(level)?,
            None => c.default_level(),
        };
        let threads = threads.max(1);
        let inner = match c {
            Compression::None => Inner::Plain(out),
            Compression::Gzip => {
                Inner::Gzip(Box::new(pgzip::GzEncoder::new(out, level as u32, threads)?))
            }
            Compression::Zstd => Inner::Zstd(zstd_encoder(out, level, threads)?),
        };
        Ok(Encoder { inner })
    }

    /// Writes what is still buffered and the trailers; returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::Plain(mut w) => w.flush().map(|()| w),
            Inner::Gzip(g) => g.finish(),
            Inner::Zstd(z) => z.finish(),
        }
    }

    pub fn get_ref(&self) -> &W {
        match &self.inner {
            Inner::Plain(w) => w,
            Inner::Gzip(g) => g.get_ref(),
            Inner::Zstd(z) => z.get_ref(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(w) => w.write(buf),
            Inner::Gzip(g) => g.write(buf),
            Inner::Zstd(z) => z.write(buf),
        }
    }

    /// Writes out only what is already compressed and flushes the writer. It never cuts
    /// a block early, so the bytes stay the same however writes and flushes fall.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w) => w.flush(),
            Inner::Gzip(g) => g.flush(),
            Inner::Zstd(z) => z.get_mut().flush(),
        }
    }
}

/// Always in zstd's multi-threaded mode, even with one worker: its output is the same
/// for any worker count but differs from the single-threaded mode's, and a layer's
/// digest must not depend on the machine that made it.
fn zstd_encoder<W: Write>(
    out: W,
    level: i32,
    threads: usize,
) -> Result<zstd::stream::write::Encoder<'static, W>> {
    let mut z = zstd::stream::write::Encoder::new(out, level)?;
    z.multithread(u32::try_from(threads).unwrap_or(u32::MAX))?;
    z.include_checksum(true)?;
    Ok(z)
}

/// A reader that decompresses whatever `r` holds: gzip (any number of members), zstd
/// (any number of frames), or plain bytes passed through unchanged.
pub fn decoder<'a, R: BufRead + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    sniff(r, Checks::All)
}

/// `decoder` for a stream whose output the caller hashes and compares to a digest it
/// knows (a layer's diff ID): gzip's CRC is not computed.
pub fn decoder_for_digest<'a, R: BufRead + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    sniff(r, Checks::DigestOnly)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Checks {
    All,
    DigestOnly,
}

fn sniff<'a, R: BufRead + 'a>(mut r: R, checks: Checks) -> io::Result<Box<dyn Read + 'a>> {
    let head = r.fill_buf()?;
    if head.len() >= SNIFF_LEN {
        let c = Compression::detect(head);
        return open(c, r, checks);
    }
    let prefix = read_prefix(&mut r)?;
    let c = Compression::detect(&prefix);
    open(c, io::Cursor::new(prefix).chain(r), checks)
}

/// The longest magic number `detect` looks at.
const SNIFF_LEN: usize = 4;

/// Up to `SNIFF_LEN` bytes taken out of `r`, for when its buffer holds fewer.
fn read_prefix<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(SNIFF_LEN);
    while prefix.len() < SNIFF_LEN {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(SNIFF_LEN - prefix.len());
        prefix.extend_from_slice(&buf[..n]);
        r.consume(n);
    }
    Ok(prefix)
}

fn open<'a, R: BufRead + 'a>(
    c: Compression,
    r: R,
    checks: Checks,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(gunzip::GzReader::new(r, checks == Checks::All)),
        Compression::Zstd => Box::new(unzstd::ZstdReader::new(r)?),
    })
}
