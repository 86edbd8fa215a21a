//! Encoding one entry's headers (ustar, plus a sorted PAX header only when ustar cannot hold a field).

use super::pax;
use std::io::{self, Write};
use tar::{EntryType, Header};

const BLOCK: usize = 512;
const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
/// Largest value of an 8-byte octal field (uid, gid, device numbers).
const MAX_OCTAL8: u64 = 0o7777777;
/// Largest value of a 12-byte octal field (size, mtime).
const MAX_OCTAL12: u64 = 0o77777777777;

/// The two zero blocks that end an archive (as Go's archive/tar writes it: no record padding).
pub const END: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// What kind of entry a header describes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
    Char,
    Block,
    Fifo,
}

/// Everything a header says about one entry.
pub struct EntryHeader<'a> {
    /// Relative, `/`-separated; directories end in `/`.
    pub path: &'a [u8],
    pub kind: Kind,
    pub size: u64,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// Symlink target or hard link target; empty otherwise.
    pub link: &'a [u8],
    pub dev: (u32, u32),
    /// Sorted (name, value) pairs.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Write the (PAX and) ustar headers of `e`; the caller writes `e.size` bytes and [`pad`].
pub fn write<W: Write>(out: &mut W, e: &EntryHeader) -> io::Result<()> {
    let mut h = Header::new_ustar();
    let mut recs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    {
        let u = h
            .as_ustar_mut()
            .ok_or_else(|| io::Error::other("not a ustar header"))?;
        match split_ustar(e.path) {
            Some((prefix, name)) => {
                u.prefix[..prefix.len()].copy_from_slice(prefix);
                u.name[..name.len()].copy_from_slice(name);
            }
            None => {
                recs.push((b"path".to_vec(), e.path.to_vec()));
                let n = e.path.len().min(NAME_LEN);
                u.name[..n].copy_from_slice(&e.path[..n]);
            }
        }
        if e.link.len() <= NAME_LEN {
            u.linkname[..e.link.len()].copy_from_slice(e.link);
        } else {
            recs.push((b"linkpath".to_vec(), e.link.to_vec()));
            u.linkname.copy_from_slice(&e.link[..NAME_LEN]);
        }
    }
    h.set_entry_type(match e.kind {
        Kind::File => EntryType::Regular,
        Kind::Dir => EntryType::Directory,
        Kind::Symlink => EntryType::Symlink,
        Kind::HardLink => EntryType::Link,
        Kind::Char => EntryType::Char,
        Kind::Block => EntryType::Block,
        Kind::Fifo => EntryType::Fifo,
    });
    h.set_mode(e.mode & 0o7777);
    h.set_uid(numeric(e.uid as u64, MAX_OCTAL8, "uid", &mut recs));
    h.set_gid(numeric(e.gid as u64, MAX_OCTAL8, "gid", &mut recs));
    h.set_size(numeric(e.size, MAX_OCTAL12, "size", &mut recs));
    let mtime = u64::try_from(e.mtime).unwrap_or(u64::MAX);
    if mtime > MAX_OCTAL12 {
        recs.push((b"mtime".to_vec(), e.mtime.to_string().into_bytes()));
        h.set_mtime(0);
    } else {
        h.set_mtime(mtime);
    }
    h.set_device_major(e.dev.0)?;
    h.set_device_minor(e.dev.1)?;
    for (name, value) in e.xattrs {
        recs.push((pax::xattr_key(name), value.clone()));
    }
    if !recs.is_empty() {
        write_pax(out, e.path, pax::encode(recs))?;
    }
    h.set_cksum();
    out.write_all(h.as_bytes())
}

// A value for an octal field; one that does not fit goes in a PAX record and the field is 0.
fn numeric(v: u64, max: u64, key: &str, recs: &mut Vec<(Vec<u8>, Vec<u8>)>) -> u64 {
    if v <= max {
        return v;
    }
    recs.push((key.as_bytes().to_vec(), v.to_string().into_bytes()));
    0
}

// The 'x' header before an entry, named as Go names it ("dir/PaxHeaders.0/base"), with
// zero mode, owner and time so that it never varies.
fn write_pax<W: Write>(out: &mut W, path: &[u8], data: Vec<u8>) -> io::Result<()> {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let (dir, base) = match trimmed.iter().rposition(|b| *b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let name = [dir, b"PaxHeaders.0/", base].concat();
    let mut h = Header::new_ustar();
    let n = name.len().min(NAME_LEN);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    h.set_entry_type(EntryType::XHeader);
    h.set_mode(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.write_all(h.as_bytes())?;
    out.write_all(&data)?;
    pad(out, data.len() as u64)
}

/// Zero padding after `size` bytes of data, to the next block.
pub fn pad<W: Write>(out: &mut W, size: u64) -> io::Result<()> {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&END[..BLOCK - rem])?;
    }
    Ok(())
}

// Fit `path` into ustar name (100) and prefix (155), split at a '/', as Go does.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= NAME_LEN {
        return Some((&[], path));
    }
    let mut len = path.len().min(PREFIX_LEN + 1);
    if path[len - 1] == b'/' {
        len -= 1;
    }
    let i = path[..len].iter().rposition(|b| *b == b'/')?;
    let (prefix, name) = (&path[..i], &path[i + 1..]);
    (i > 0 && !name.is_empty() && name.len() <= NAME_LEN && prefix.len() <= PREFIX_LEN)
        .then_some((prefix, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ustar_split() {
        let short = b"usr/bin/sh";
        assert_eq!(split_ustar(short), Some((&b""[..], &short[..])));
        let long = [vec![b'd'; 120], b"/".to_vec(), vec![b'f'; 90]].concat();
        let (p, n) = split_ustar(&long).unwrap();
        assert_eq!((p.len(), n.len()), (120, 90));
        let dir = [
            vec![b'd'; 120],
            b"/".to_vec(),
            vec![b'e'; 99],
            b"/".to_vec(),
        ]
        .concat();
        let (p, n) = split_ustar(&dir).unwrap();
        assert_eq!((p.len(), n), (120, &[&[b'e'; 99][..], b"/"].concat()[..]));
        assert_eq!(split_ustar(&[b'x'; 101]), None);
        assert_eq!(
            split_ustar(&[vec![b'd'; 200], b"/f".to_vec()].concat()),
            None
        );
    }

    #[test]
    fn headers_parse_back() {
        let path = [vec![b'a'; 300], b"/f".to_vec()].concat();
        let xattrs = vec![(b"user.k".to_vec(), b"v\n".to_vec())];
        let mut out = Vec::new();
        let e = EntryHeader {
            path: &path,
            kind: Kind::File,
            size: 3,
            mode: 0o4755,
            uid: 5_000_000,
            gid: 7,
            mtime: -5,
            link: b"",
            dev: (0, 0),
            xattrs: &xattrs,
        };
        write(&mut out, &e).unwrap();
        out.extend_from_slice(b"abc");
        pad(&mut out, 3).unwrap();
        out.extend_from_slice(&END);
        let pax_hdr = Header::from_byte_slice(&out[..512]);
        assert_eq!(pax_hdr.entry_type(), EntryType::XHeader);
        let size = pax_hdr.entry_size().unwrap() as usize;
        let p = pax::parse(&out[512..512 + size]).unwrap();
        assert_eq!(p.path.as_deref(), Some(&path[..]));
        assert_eq!(p.uid, Some(5_000_000));
        assert_eq!(p.mtime, Some((-5, 0)));
        assert_eq!(p.xattrs, xattrs);
        let off = 512 + size.div_ceil(512) * 512;
        let h = Header::from_byte_slice(&out[off..off + 512]);
        assert_eq!(h.mode().unwrap(), 0o4755);
        assert_eq!(h.gid().unwrap(), 7);
        assert_eq!(h.uid().unwrap(), 0);
        assert_eq!(h.entry_size().unwrap(), 3);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
    }
}
