//! Reading zstd (all frames): the zstd crate's decoder with errors that say what went wrong.

use std::io::{self, BufRead, ErrorKind, Read};

pub struct ZstdReader<'a, R: BufRead> {
    inner: zstd::stream::read::Decoder<'a, R>,
}

impl<R: BufRead> ZstdReader<'_, R> {
    pub fn new(r: R) -> io::Result<Self> {
        Ok(ZstdReader {
            inner: zstd::stream::read::Decoder::with_buffer(r)?,
        })
    }
}

impl<R: BufRead> Read for ZstdReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(explain)
    }
}

/// The zstd crate reports a cut stream as a bare "incomplete frame" and decoding
/// failures as `Other`; the source's own errors keep their kind and pass unchanged.
fn explain(e: io::Error) -> io::Error {
    match e.kind() {
        ErrorKind::UnexpectedEof => io::Error::new(
            ErrorKind::UnexpectedEof,
            format!("zstd stream truncated ({e})"),
        ),
        ErrorKind::Other => {
            io::Error::new(ErrorKind::InvalidData, format!("zstd stream corrupt: {e}"))
        }
        _ => e,
    }
}
