//! Reading gzip: every member of a concatenated stream, checked to the last byte.

use crc32fast::Hasher;
use flate2::{Decompress, FlushDecompress, Status};
use std::io::{self, BufRead, ErrorKind, Read};

const MAGIC: [u8; 2] = [0x1f, 0x8b];
const DEFLATE: u8 = 8;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

pub struct GzReader<R: BufRead> {
    r: R,
    z: Decompress,
    state: State,
    /// The CRC and length of the member's data so far, for its trailer.
    crc: Hasher,
    check_crc: bool,
    size: u32,
    /// The header's own CRC, for FHCRC.
    header_crc: Hasher,
    /// Compressed bytes consumed, so errors can say where.
    pos: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a member's header; `first` tells a bad first header from trailing garbage.
    Header {
        first: bool,
    },
    Body,
    Trailer,
    Done,
}

impl<R: BufRead> GzReader<R> {
    /// `check_crc` false: the caller hashes the output and compares it to a digest it
    /// knows, which the CRC, a weaker check of the same bytes, can only repeat (at 1-2% of
    /// a pull's CPU).
    pub fn new(r: R, check_crc: bool) -> Self {
        GzReader {
            r,
            z: Decompress::new(false),
            state: State::Header { first: true },
            crc: Hasher::new(),
            check_crc,
            size: 0,
            header_crc: Hasher::new(),
            pos: 0,
        }
    }

    fn read_header(&mut self, first: bool) -> io::Result<()> {
        let start = self.pos;
        self.header_crc = Hasher::new();
        let mut fixed = [0u8; 10];
        let got = self.header_bytes(&mut fixed)?;
        let magic = got.min(MAGIC.len());
        if fixed[..magic] != MAGIC[..magic] {
            return Err(not_gzip(first, start));
        }
        if got < fixed.len() {
            return Err(truncated("in a member header"));
        }
        if fixed[2] != DEFLATE {
            return Err(invalid(format!(
                "unsupported gzip compression method {} at byte {start} (only 8, deflate)",
                fixed[2]
            )));
        }
        let flags = fixed[3];
        if flags & FRESERVED != 0 {
            return Err(invalid(format!(
                "gzip header at byte {start} has reserved flag bits set ({flags:#04x})"
            )));
        }
        self.read_optional_fields(flags)?;
        self.z.reset(false);
        self.crc = Hasher::new();
        self.size = 0;
        Ok(())
    }

    fn read_optional_fields(&mut self, flags: u8) -> io::Result<()> {
        if flags & FEXTRA != 0 {
            let mut len = [0u8; 2];
            self.header_exact(&mut len)?;
            self.skip_header(u16::from_le_bytes(len).into())?;
        }
        if flags & FNAME != 0 {
            self.skip_header_string()?;
        }
        if flags & FCOMMENT != 0 {
            self.skip_header_string()?;
        }
        if flags & FHCRC != 0 {
            let want = self.header_crc.clone().finalize() as u16;
            let mut stored = [0u8; 2];
            self.header_exact(&mut stored)?;
            if u16::from_le_bytes(stored) != want {
                return Err(invalid("gzip header CRC mismatch".to_string()));
            }
        }
        Ok(())
    }

    /// Fills `out` as far as the stream goes; returns how much it got.
    fn header_bytes(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < out.len() {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(out.len() - got);
            out[got..got + n].copy_from_slice(&buf[..n]);
            self.header_crc.update(&buf[..n]);
            self.r.consume(n);
            self.pos += n as u64;
            got += n;
        }
        Ok(got)
    }

    fn header_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        if self.header_bytes(out)? < out.len() {
            return Err(truncated("in a member header"));
        }
        Ok(())
    }

    fn skip_header(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Err(truncated("in a member header"));
            }
            let k = n.min(buf.len());
            self.header_crc.update(&buf[..k]);
            self.r.consume(k);
            self.pos += k as u64;
            n -= k;
        }
        Ok(())
    }

    /// Skips a zero-terminated name or comment.
    fn skip_header_string(&mut self) -> io::Result<()> {
        loop {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Err(truncated("in a member header"));
            }
            let (k, ended) = match buf.iter().position(|&b| b == 0) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            self.header_crc.update(&buf[..k]);
            self.r.consume(k);
            self.pos += k as u64;
            if ended {
                return Ok(());
            }
        }
    }

    /// Inflates into `out`; returns the bytes made and whether the member's deflate
    /// stream ended.
    fn inflate(&mut self, out: &mut [u8]) -> io::Result<(usize, bool)> {
        loop {
            let input = self.r.fill_buf()?;
            let eof = input.is_empty();
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress(input, out, FlushDecompress::None)
                .map_err(|e| invalid(format!("gzip stream corrupt near byte {}: {e}", self.pos)))?;
            let used = (self.z.total_in() - in0) as usize;
            let made = (self.z.total_out() - out0) as usize;
            self.r.consume(used);
            self.pos += used as u64;
            if self.check_crc {
                self.crc.update(&out[..made]);
            }
            self.size = self.size.wrapping_add(made as u32);
            let ended = status == Status::StreamEnd;
            if made > 0 || ended {
                return Ok((made, ended));
            }
            if eof {
                return Err(truncated("in deflate data"));
            }
            if used == 0 {
                return Err(invalid(format!("gzip inflate stuck at byte {}", self.pos)));
            }
        }
    }

    fn read_trailer(&mut self) -> io::Result<()> {
        let mut trailer = [0u8; 8];
        let mut got = 0;
        while got < trailer.len() {
            let n = self.r.read(&mut trailer[got..])?;
            if n == 0 {
                return Err(truncated("in a member trailer"));
            }
            got += n;
        }
        self.pos += 8;
        let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let stored_size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        let crc = self.crc.clone().finalize();
        if self.check_crc && stored_crc != crc {
            return Err(invalid(format!(
                "gzip CRC mismatch: the trailer says {stored_crc:08x}, the data's is {crc:08x}"
            )));
        }
        if stored_size != self.size {
            return Err(invalid(format!(
                "gzip length mismatch: the trailer says {stored_size} (mod 2^32), the data has {}",
                self.size
            )));
        }
        Ok(())
    }

    fn at_eof(&mut self) -> io::Result<bool> {
        Ok(self.r.fill_buf()?.is_empty())
    }
}

impl<R: BufRead> Read for GzReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Header { first } => {
                    self.read_header(first)?;
                    self.state = State::Body;
                }
                State::Body => {
                    let (made, ended) = self.inflate(out)?;
                    if ended {
                        self.state = State::Trailer;
                    }
                    if made > 0 {
                        return Ok(made);
                    }
                }
                State::Trailer => {
                    self.read_trailer()?;
                    self.state = if self.at_eof()? {
                        State::Done
                    } else {
                        State::Header { first: false }
                    };
                }
                State::Done => return Ok(0),
            }
        }
    }
}

fn not_gzip(first: bool, at: u64) -> io::Error {
    if first {
        invalid("not a gzip stream (no gzip magic 1f 8b)".to_string())
    } else {
        invalid(format!(
            "trailing garbage at byte {at}, after a gzip member: not another gzip member"
        ))
    }
}

fn truncated(where_: &str) -> io::Error {
    io::Error::new(
        ErrorKind::UnexpectedEof,
        format!("gzip stream truncated ({where_})"),
    )
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg)
}
