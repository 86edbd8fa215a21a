//! Files written past the page cache (`O_DIRECT`): blobs, written once, fsynced and seldom
//! read back (a pull's unpacker gets their bytes from memory), and the big files of a
//! layer being unpacked. Buffered, each byte costs a fresh page-cache page and a copy
//! into it; in a VM that hands freed memory back to its host (free page reporting), a
//! fresh page is a host fault, and buffered writes of a new file cost up to 4 s per GB
//! (0.2 s through `O_DIRECT`, the disk writes being the same).

use std::alloc::{self, Layout};
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::blobs::{start_writeback, WRITEBACK_EVERY};

/// Bytes staged per write; the alignment `O_DIRECT` asks of memory, offsets and lengths
/// (4096 covers 512-byte and 4K-sector devices).
pub const BLOCK: usize = 1 << 20;
const ALIGN: usize = 4096;

/// A file written from its start, in whole aligned blocks while it can be, through the
/// page cache where the filesystem refuses `O_DIRECT` (tmpfs before 6.6, some FUSE).
pub struct DirectFile {
    file: fs::File,
    buf: Block,
    len: usize,
    /// Bytes handed to the kernel, all of them before any in `buf`.
    written: u64,
    direct: bool,
    /// Buffered only: bytes whose writeback has been started.
    started: u64,
}

impl DirectFile {
    /// Opens an existing, empty file for writing.
    pub fn open(path: &Path) -> io::Result<DirectFile> {
        let file = fs::OpenOptions::new().write(true).open(path)?;
        Ok(DirectFile::new(file, Block::new()?))
    }

    /// `file`, open for writing at its start, staged through `buf`.
    pub fn new(file: fs::File, buf: Block) -> DirectFile {
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on an fd `file` owns; no memory is passed.
        let direct = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) == 0
        };
        DirectFile {
            file,
            buf,
            len: 0,
            written: 0,
            direct,
            started: 0,
        }
    }

    /// Bytes in the file (a reader may read these); the rest are still in memory.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The staging block's free part, for a reader to fill in place (then `filled`).
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut_slice()[self.len..]
    }

    /// `n` bytes of `spare` hold data now.
    pub fn filled(&mut self, n: usize) -> io::Result<()> {
        self.len = (self.len + n).min(BLOCK);
        if self.len == BLOCK {
            self.write_block()?;
        }
        Ok(())
    }

    /// Writes what is left; returns the file (not fsynced) and the block, for another.
    pub fn finish(mut self) -> io::Result<(fs::File, Block)> {
        // The tail is not a whole block: it goes through the page cache.
        self.set_buffered()?;
        self.write_block()?;
        Ok((self.file, self.buf))
    }

    fn write_block(&mut self) -> io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        if self.direct {
            match self.file.write(&self.buf.as_slice()[..self.len]) {
                Ok(n) if n == self.len => {
                    self.wrote(n);
                    return Ok(());
                }
                // A short direct write leaves an unaligned offset: the rest is buffered.
                Ok(n) => {
                    self.buf.as_mut_slice().copy_within(n..self.len, 0);
                    self.len -= n;
                    self.written += n as u64;
                    self.set_buffered()?;
                }
                // The filesystem takes O_DIRECT opens but not these writes.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.set_buffered()?,
                Err(e) => return Err(e),
            }
        }
        self.file.write_all(&self.buf.as_slice()[..self.len])?;
        self.wrote(self.len);
        if self.written - self.started >= WRITEBACK_EVERY {
            start_writeback(&self.file, self.started, self.written);
            self.started = self.written;
        }
        Ok(())
    }

    fn wrote(&mut self, n: usize) {
        self.written += n as u64;
        self.len = 0;
    }

    fn set_buffered(&mut self) -> io::Result<()> {
        if !self.direct {
            return Ok(());
        }
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on an fd this value owns; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
            return Err(io::Error::last_os_error());
        }
        self.direct = false;
        self.started = self.written;
        Ok(())
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let spare = self.spare();
        let n = data.len().min(spare.len());
        spare[..n].copy_from_slice(&data[..n]);
        self.filled(n)?;
        Ok(n)
    }

    /// Whole blocks only: a partial one is written by `finish`.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `BLOCK` bytes aligned to `ALIGN`.
pub struct Block(std::ptr::NonNull<u8>);

// SAFETY: the block is plain bytes owned by this value.
unsafe impl Send for Block {}

impl Block {
    fn layout() -> Layout {
        Layout::from_size_align(BLOCK, ALIGN).expect("a valid layout")
    }

    pub fn new() -> io::Result<Block> {
        // Zeroed, so that every byte is initialised before a slice sees it.
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(Self::layout()) };
        std::ptr::NonNull::new(p)
            .map(Block)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: BLOCK initialised bytes allocated by `new`, owned here.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), BLOCK) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr(), BLOCK) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated by `new` with this layout.
        unsafe { alloc::dealloc(self.0.as_ptr(), Self::layout()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::store::files::TestDir;

    /// Lengths around the block size, written in uneven pieces, read back whole; the file
    /// holds only whole blocks until `finish`.
    #[test]
    fn every_length_comes_back_as_written() {
        let dir = TestDir::new("direct");
        for len in [0, 1, ALIGN - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 777] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            fs::File::create(&p).unwrap();
            let mut f = DirectFile::open(&p).unwrap();
            for piece in data.chunks(70_001) {
                f.write_all(piece).unwrap();
            }
            assert_eq!(f.written(), (len / BLOCK * BLOCK) as u64, "len {len}");
            assert_eq!(fs::metadata(&p).unwrap().len(), f.written());
            f.finish().unwrap();
            assert!(fs::read(&p).unwrap() == data, "len {len}: the bytes differ");
        }
    }
}
