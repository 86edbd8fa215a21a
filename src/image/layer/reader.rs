//! The one strict tar parser for layers: framing, PAX and GNU long names, with sizes capped before anything is buffered.

// `tar::Archive::entries` is not used: it buffers a PAX header of any declared size before
// a caller can refuse it (CVE-2022-2879 class), splits PAX records on '\n' (so a binary
// xattr holding 0x0A fails and a `size` record after one is silently dropped, leaving the
// ustar size to frame the data) and hides the raw records. Here `tar::Header` decodes the
// fields and every disagreement between encodings is an error (TARmageddon,
// CVE-2025-62518: a PAX size and a ustar size that differ let two parsers see two archives).

use super::limits::{MAX_GNU_LONG, MAX_PAX};
use super::pax::{self, Pax, PaxTime};
use anyhow::{anyhow, bail, Result};
use std::io::{self, Read};
use tar::Header;

const BLOCK: u64 = 512;
const MAX_OCTAL12: u64 = 0o77777777777;

/// What an entry is, by typeflag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

/// One entry, with every extension header folded in.
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Type,
    /// Symlink or hard link target (empty for other types).
    pub link: Vec<u8>,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: PaxTime,
    pub atime: PaxTime,
    pub dev: (u32, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub struct TarReader<R: Read> {
    r: R,
    /// What the errors call the stream and its entries.
    label: Label,
    /// Data bytes of the current entry not read yet, then its padding.
    left: u64,
    pad: u64,
    /// Bytes consumed so far (for error messages before a name is known).
    pos: u64,
}

/// The extension headers seen before an entry.
#[derive(Default)]
struct Pending {
    pax: Option<Pax>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Pending {
    fn any(&self) -> bool {
        self.pax.is_some() || self.long_name.is_some() || self.long_link.is_some()
    }
}

/// How errors name the stream and an entry of it: a layer's, or an image archive's.
#[derive(Clone, Copy)]
pub struct Label {
    pub stream: &'static str,
    pub entry: &'static str,
}

pub const LAYER: Label = Label {
    stream: "layer tar",
    entry: "layer entry",
};

/// The error for entry `name` of a layer (shown whole up to 256 bytes).
pub fn entry_error(name: &[u8], msg: impl std::fmt::Display) -> anyhow::Error {
    labeled_error(LAYER, name, msg)
}

fn labeled_error(label: Label, name: &[u8], msg: impl std::fmt::Display) -> anyhow::Error {
    const SHOWN: usize = 256;
    let shown = String::from_utf8_lossy(&name[..name.len().min(SHOWN)]).into_owned();
    let more = if name.len() > SHOWN { "..." } else { "" };
    anyhow!("{} {shown:?}{more}: {msg}", label.entry)
}

impl<R: Read> TarReader<R> {
    pub fn new(r: R) -> TarReader<R> {
        TarReader::with_label(r, LAYER)
    }

    /// A reader whose errors call the stream and its entries `label`.
    pub fn with_label(r: R, label: Label) -> TarReader<R> {
        TarReader {
            r,
            label,
            left: 0,
            pad: 0,
            pos: 0,
        }
    }

    fn at(&self, msg: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{} at byte {}: {msg}", self.label.stream, self.pos)
    }

    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += got as u64;
        Ok(got)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        if self.fill(buf)? != buf.len() {
            return Err(self.at("unexpected end of the stream"));
        }
        Ok(())
    }

    // Discard `n` bytes that must be there.
    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.read_exact(&mut buf[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Read the current entry's data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        let k = self.left.min(buf.len() as u64) as usize;
        if k == 0 {
            return Ok(0);
        }
        self.read_exact(&mut buf[..k])?;
        self.left -= k as u64;
        Ok(k)
    }

    /// The next entry, or None at the end of the archive (after which the stream has been
    /// read to EOF).
    pub fn next(&mut self) -> Result<Option<Entry>> {
        self.skip(self.left + self.pad)?;
        (self.left, self.pad) = (0, 0);
        let mut pending = Pending::default();
        loop {
            let mut block = [0u8; BLOCK as usize];
            let got = self.fill(&mut block)?;
            if got == 0 && !pending.any() {
                return Ok(None);
            }
            if got != block.len() {
                return Err(self.at("unexpected end of the stream"));
            }
            if block.iter().all(|b| *b == 0) {
                if pending.any() {
                    return Err(self.at("extension header with no entry after it"));
                }
                self.end()?;
                return Ok(None);
            }
            let h = Header::from_byte_slice(&block);
            check_header(h).map_err(|e| self.at(e))?;
            let size = num(&h.as_old().size, || h.entry_size()).map_err(|e| self.at(e))?;
            let flag = h.as_old().linkflag[0];
            if !matches!(flag, b'x' | b'g' | b'L' | b'K') {
                let e = entry(h, size, pending, self.label)?;
                self.left = e.size;
                self.pad = (BLOCK - e.size % BLOCK) % BLOCK;
                return Ok(Some(e));
            }
            self.extension(flag, size, &mut pending)
                .map_err(|e| labeled_error(self.label, &h.path_bytes(), format!("{e:#}")))?;
        }
    }

    // One extension header, folded into `pending`.
    fn extension(&mut self, flag: u8, size: u64, pending: &mut Pending) -> Result<()> {
        match flag {
            b'x' => {
                let data = self.meta(size, MAX_PAX, "PAX header", pending.pax.is_some())?;
                pending.pax = Some(pax::parse(&data).map_err(|e| anyhow!(e))?);
            }
            b'g' => {
                if pending.any() {
                    bail!("global PAX header between an entry's headers");
                }
                let data = self.meta(size, MAX_PAX, "global PAX header", false)?;
                pax::check_global(&data).map_err(|e| anyhow!(e))?;
            }
            b'L' => {
                let dup = pending.long_name.is_some();
                pending.long_name = Some(until_nul(self.meta(
                    size,
                    MAX_GNU_LONG,
                    "GNU long name",
                    dup,
                )?));
            }
            _ => {
                let dup = pending.long_link.is_some();
                pending.long_link = Some(until_nul(self.meta(
                    size,
                    MAX_GNU_LONG,
                    "GNU long link",
                    dup,
                )?));
            }
        }
        Ok(())
    }
    // The data of an extension header, refused before reading if over `max`.
    fn meta(&mut self, size: u64, max: u64, what: &str, dup: bool) -> Result<Vec<u8>> {
        if dup {
            bail!("two {what}s for one entry");
        }
        if size > max {
            bail!("{what} of {size} bytes (limit {max})");
        }
        let mut data = vec![0u8; size as usize];
        self.read_exact(&mut data)?;
        self.skip((BLOCK - size % BLOCK) % BLOCK)?;
        Ok(data)
    }

    // After the first zero block: the rest of the stream (the second zero block, record
    // padding) must be zeros too. Anything else is a second archive some readers (tar -i)
    // would see and we would not.
    fn end(&mut self) -> Result<()> {
        let mut buf = [0u8; 8192];
        loop {
            let n = self.fill(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            if buf[..n].iter().any(|b| *b != 0) {
                return Err(self.at("data after the end-of-archive marker"));
            }
        }
    }
}

// A GNU base-256 field, signed (GNU tar writes pre-1970 mtimes so): the first byte's top bit
// marks the encoding, its next bit the sign, as Go's parseNumeric reads it.
fn base256(b: &[u8]) -> Option<i64> {
    let inv = if b[0] & 0x40 != 0 { 0xff } else { 0 };
    let mut x: u64 = 0;
    for (i, &c) in b.iter().enumerate() {
        let c = if i == 0 { (c ^ inv) & 0x7f } else { c ^ inv };
        if x >> 56 != 0 {
            return None;
        }
        x = x << 8 | c as u64;
    }
    let x = i64::try_from(x).ok()?;
    Some(if inv == 0xff { !x } else { x })
}

fn until_nul(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(i) = v.iter().position(|b| *b == 0) {
        v.truncate(i);
    }
    v
}

// A numeric field: empty (all NUL or spaces) reads as 0, as Go reads it.
fn num(raw: &[u8], parse: impl FnOnce() -> io::Result<u64>) -> Result<u64> {
    if raw.iter().all(|b| *b == 0 || *b == b' ') {
        return Ok(0);
    }
    Ok(parse()?)
}

// Checksum (unsigned or, as some old writers made it, signed) and a ustar or GNU magic.
fn check_header(h: &Header) -> Result<()> {
    let b = h.as_bytes();
    let field = &b[148..156];
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &c) in b.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += c as u32;
        signed += c as i8 as i32;
    }
    let want = num(field, || h.cksum().map(u64::from))?;
    if want != unsigned as u64 && want as i64 != signed as i64 {
        bail!("header checksum mismatch");
    }
    if h.as_ustar().is_none() && h.as_gnu().is_none() {
        bail!("not a ustar, PAX or GNU tar header");
    }
    Ok(())
}

// Fold the extension headers into the entry and check that the encodings agree.
fn entry(h: &Header, ustar_size: u64, p: Pending, label: Label) -> Result<Entry> {
    let pax = p.pax.unwrap_or_default();
    let path = match (p.long_name, pax.path) {
        (Some(_), Some(_)) => bail!("an entry with both a GNU long name and a PAX path"),
        (Some(n), None) | (None, Some(n)) => n,
        (None, None) => h.path_bytes().into_owned(),
    };
    let fail = |msg: String| labeled_error(label, &path, msg);
    let link = match (p.long_link, pax.linkpath) {
        (Some(_), Some(_)) => return Err(fail("both a GNU long link and a PAX linkpath".into())),
        (Some(l), None) | (None, Some(l)) => l,
        (None, None) => h
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default(),
    };
    let flag = h.as_old().linkflag[0];
    let kind = match flag {
        // '\0' is the pre-POSIX regular file; with a trailing slash it meant a directory.
        b'\0' if path.ends_with(b"/") => Type::Dir,
        b'0' | b'\0' | b'7' => Type::File,
        b'1' => Type::HardLink,
        b'2' => Type::Symlink,
        b'3' => Type::Char,
        b'4' => Type::Block,
        b'5' => Type::Dir,
        b'6' => Type::Fifo,
        b'S' => return Err(fail("sparse entries are not allowed in layers".into())),
        f => return Err(fail(format!("unsupported entry type {:?}", f as char))),
    };
    let size = match pax.size {
        None => ustar_size,
        Some(s) if s == ustar_size || (ustar_size == 0 && s > MAX_OCTAL12) => s,
        Some(s) => {
            return Err(fail(format!(
                "PAX size {s} disagrees with the header size {ustar_size}"
            )))
        }
    };
    // Go's reader takes these types to have no data whatever the size says; a reader that
    // skipped the data would see different entries after this one.
    if kind != Type::File && size != 0 {
        return Err(fail(format!("a {kind:?} entry with {size} bytes of data")));
    }
    let field = |raw: &[u8], v: io::Result<u64>| num(raw, || v).map_err(|e| fail(e.to_string()));
    let o = h.as_old();
    let id = |pax: Option<u32>, raw: &[u8], v: io::Result<u64>| -> Result<u32> {
        match pax {
            Some(id) => Ok(id),
            None => u32::try_from(field(raw, v)?).map_err(|_| fail("uid/gid out of range".into())),
        }
    };
    let uid = id(pax.uid, &o.uid, h.uid())?;
    let gid = id(pax.gid, &o.gid, h.gid())?;
    let mode = field(&o.mode, h.mode().map(u64::from))? as u32 & 0o7777;
    let mtime = match pax.mtime {
        Some(t) => t,
        None if o.mtime[0] & 0x80 != 0 => (
            base256(&o.mtime).ok_or_else(|| fail("mtime out of range".into()))?,
            0,
        ),
        None => (field(&o.mtime, h.mtime())? as i64, 0),
    };
    let dev = match kind {
        // dev_major and dev_minor sit at the same offsets in ustar and GNU headers.
        Type::Char | Type::Block => {
            let b = h.as_bytes();
            let major = field(
                &b[329..337],
                h.device_major().map(|d| d.unwrap_or(0).into()),
            )?;
            let minor = field(
                &b[337..345],
                h.device_minor().map(|d| d.unwrap_or(0).into()),
            )?;
            let fit =
                |n: u64| u32::try_from(n).map_err(|_| fail("device number out of range".into()));
            (fit(major)?, fit(minor)?)
        }
        _ => (0, 0),
    };
    Ok(Entry {
        path,
        kind,
        link,
        size,
        mode,
        uid,
        gid,
        atime: pax.atime.unwrap_or(mtime),
        mtime,
        dev,
        xattrs: pax.xattrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base256_mtimes() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 5;
        assert_eq!(base256(&f), Some(5));
        let neg = [0xffu8; 12];
        assert_eq!(base256(&neg), Some(-1));
        let mut f = [0xffu8; 12];
        f[11] = 0xfe;
        assert_eq!(base256(&f), Some(-2));
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[3] = 1;
        assert_eq!(base256(&f), None);
    }
}
