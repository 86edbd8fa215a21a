//! PAX extended-header records: strict parsing of what a layer may carry, and sorted encoding.

use super::limits::{MAX_XATTRS, MAX_XATTR_VALUE};

const XATTR_KEY: &[u8] = b"SCHILY.xattr.";

/// A time from a PAX record: seconds (may be negative) and nanoseconds.
pub type PaxTime = (i64, u32);

/// The records of one local PAX header that mean something to us.
#[derive(Default, Debug)]
pub struct Pax {
    pub path: Option<Vec<u8>>,
    pub linkpath: Option<Vec<u8>>,
    pub size: Option<u64>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<PaxTime>,
    pub atime: Option<PaxTime>,
    /// (name, value) from `SCHILY.xattr.NAME`, in record order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One (key, value) record.
pub type Record<'a> = (&'a [u8], &'a [u8]);

/// Split a PAX header into (key, value) records. Records are length-prefixed and values may
/// hold newlines (binary xattrs, file names), so this never splits on '\n' (the `tar` crate's
/// parser does, and then silently drops `path`/`size` records after such a value).
pub fn records(mut data: &[u8]) -> Result<Vec<Record<'_>>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|b| *b == b' ')
            .filter(|&i| i > 0 && i <= 20)
            .ok_or("malformed PAX record length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .filter(|&l| l > sp + 1 && l <= data.len())
            .ok_or("malformed PAX record length")?;
        let (rec, rest) = data.split_at(len);
        let body = rec[sp + 1..]
            .strip_suffix(b"\n")
            .ok_or("PAX record does not end in a newline")?;
        let eq = body
            .iter()
            .position(|b| *b == b'=')
            .filter(|&i| i > 0)
            .ok_or("PAX record without a key")?;
        out.push((&body[..eq], &body[eq + 1..]));
        data = rest;
    }
    Ok(out)
}

/// Parse a local PAX header strictly: malformed records, duplicate keys (readers disagree
/// on which one wins), bad numbers and sparse-file records are errors; unknown keys are
/// ignored.
pub fn parse(data: &[u8]) -> Result<Pax, String> {
    let mut pax = Pax::default();
    let recs = records(data)?;
    for (i, (k, _)) in recs.iter().enumerate() {
        if recs[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(format!(
                "duplicate PAX record {:?}",
                String::from_utf8_lossy(k)
            ));
        }
    }
    for (k, v) in recs {
        match k {
            b"path" => pax.path = Some(v.to_vec()),
            b"linkpath" => pax.linkpath = Some(v.to_vec()),
            b"size" => pax.size = Some(number(k, v)?),
            b"uid" => pax.uid = Some(id(k, v)?),
            b"gid" => pax.gid = Some(id(k, v)?),
            b"mtime" => pax.mtime = Some(time(k, v)?),
            b"atime" => pax.atime = Some(time(k, v)?),
            b"ctime" => {
                time(k, v)?;
            }
            // OCI forbids sparse entries; GNU PAX sparse formats would also desync the data.
            _ if k.starts_with(b"GNU.sparse.") => {
                return Err("sparse entries are not allowed".into())
            }
            _ if k.starts_with(XATTR_KEY) => {
                let name = &k[XATTR_KEY.len()..];
                if name.is_empty() {
                    return Err("PAX xattr record without a name".into());
                }
                if v.len() > MAX_XATTR_VALUE {
                    return Err(format!(
                        "xattr {:?} value over {MAX_XATTR_VALUE} bytes",
                        String::from_utf8_lossy(name)
                    ));
                }
                pax.xattrs.push((name.to_vec(), v.to_vec()));
                if pax.xattrs.len() > MAX_XATTRS {
                    return Err(format!("more than {MAX_XATTRS} xattrs on one entry"));
                }
            }
            _ => {}
        }
    }
    Ok(pax)
}

/// A global PAX header: we apply none, so one that would change how entries read is refused
/// rather than ignored (GNU tar would honour it, docker would not).
pub fn check_global(data: &[u8]) -> Result<(), String> {
    for (k, _) in records(data)? {
        if !matches!(k, b"comment" | b"charset" | b"hdrcharset") {
            return Err(format!(
                "global PAX record {:?} is not supported",
                String::from_utf8_lossy(k)
            ));
        }
    }
    Ok(())
}

fn key(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

fn number(k: &[u8], v: &[u8]) -> Result<u64, String> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return Err(format!("bad PAX {} value", key(k)));
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad PAX {} value", key(k)))
}

fn id(k: &[u8], v: &[u8]) -> Result<u32, String> {
    let n = number(k, v)?;
    u32::try_from(n)
        .ok()
        .filter(|&n| n != u32::MAX)
        .ok_or_else(|| format!("PAX {} out of range", key(k)))
}

// "[-]SECONDS[.FRACTION]"; the fraction is cut to nanoseconds.
fn time(k: &[u8], v: &[u8]) -> Result<PaxTime, String> {
    let bad = || format!("bad PAX {} value", key(k));
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(r) => (true, r),
        None => (false, v),
    };
    let (secs, frac) = match v.iter().position(|b| *b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if secs.is_empty() || secs.len() > 18 || !frac.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let s = number(k, secs)? as i64;
    let mut ns: u32 = 0;
    for i in 0..9 {
        ns = ns * 10 + frac.get(i).map_or(0, |d| (d - b'0') as u32);
    }
    Ok(match (neg, ns) {
        (false, _) => (s, ns),
        (true, 0) => (-s, 0),
        (true, _) => (-s - 1, 1_000_000_000 - ns),
    })
}

/// Append one record; the length counts itself.
pub fn record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Encode records sorted by key, so equal inputs give equal bytes.
pub fn encode(mut recs: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    recs.sort();
    let mut out = Vec::new();
    for (k, v) in &recs {
        record(&mut out, k, v);
    }
    out
}

/// The key that carries xattr `name`.
pub fn xattr_key(name: &[u8]) -> Vec<u8> {
    [XATTR_KEY, name].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_newlines() {
        let data = encode(vec![
            (b"path".to_vec(), b"a\nb".to_vec()),
            (xattr_key(b"user.x"), vec![b'\n', 0, 10, 255]),
            (b"size".to_vec(), b"12".to_vec()),
        ]);
        let p = parse(&data).unwrap();
        assert_eq!(p.path.unwrap(), b"a\nb");
        assert_eq!(p.size, Some(12));
        assert_eq!(
            p.xattrs,
            vec![(b"user.x".to_vec(), vec![b'\n', 0, 10, 255])]
        );
    }

    #[test]
    fn record_lengths() {
        for n in [0, 1, 5, 6, 7, 90, 95, 96, 97, 990, 995, 996, 997] {
            let mut out = Vec::new();
            record(&mut out, b"k", &vec![b'v'; n]);
            let sp = out.iter().position(|b| *b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&out[..sp]).unwrap().parse().unwrap();
            assert_eq!(len, out.len(), "value length {n}");
        }
    }

    #[test]
    fn strictness() {
        assert!(parse(b"9 size=1\n9 size=2\n")
            .unwrap_err()
            .contains("duplicate"));
        assert!(parse(b"10 size=-1\n").is_err());
        assert!(parse(b"10 size=1x\n").is_err());
        assert!(parse(b"99 path=x\n").is_err());
        assert!(parse(b"9 path=x").is_err());
        assert!(parse(b"22 GNU.sparse.major=1\n")
            .unwrap_err()
            .contains("sparse"));
        assert!(parse(b"19 uid=4294967295\n").is_err());
        assert!(check_global(b"13 comment=x\n").is_ok());
        assert!(check_global(b"10 path=x\n").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(time(b"mtime", b"12").unwrap(), (12, 0));
        assert_eq!(time(b"mtime", b"12.5").unwrap(), (12, 500_000_000));
        assert_eq!(time(b"mtime", b"-1.25").unwrap(), (-2, 750_000_000));
        assert_eq!(time(b"mtime", b"1.1234567899").unwrap(), (1, 123_456_789));
        assert!(time(b"mtime", b".5").is_err());
        assert!(time(b"mtime", b"1.x").is_err());
    }
}
