//! Tests of layer compression: its own round trips and the real gzip, pigz and zstd tools.

use super::*;
use std::io::{BufReader, Cursor, ErrorKind};
use std::process::{Command, Stdio};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Deterministic data that compresses like a layer: text-like runs, repeats and
/// incompressible stretches, from an LCG.
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&[u8]] = &[
        b"usr", b"lib", b"share", b"/", b"\n", b"the ", b"layer ", b"0x7f", b"ELF", b"  ",
        b"return ", b"{", b"}", b"fn ", b"int ", b"config", b"=", b"1", b"\t", b"#!",
    ];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let kind = next() % 4;
        let n = 1 + next() % (16 * KIB);
        for _ in 0..n {
            match kind {
                0 => out.extend_from_slice(WORDS[next() % WORDS.len()]),
                1 => out.push((next() % 256) as u8),
                2 => out.push(b'a' + (out.len() % 7) as u8),
                _ => {
                    let back = 1 + next() % out.len().clamp(1, 30000);
                    let b = out
                        .get(out.len().wrapping_sub(back))
                        .copied()
                        .unwrap_or(b'x');
                    out.push(b);
                }
            }
        }
    }
    out.truncate(len);
    out
}

fn compress(
    c: Compression,
    level: Option<i32>,
    threads: usize,
    data: &[u8],
    chunk: usize,
) -> Vec<u8> {
    let mut enc = Encoder::new(c, level, threads, Vec::new()).unwrap();
    for piece in data.chunks(chunk.max(1)) {
        enc.write_all(piece).unwrap();
    }
    enc.finish().unwrap()
}

fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
    compress(Compression::Gzip, None, threads, data, data.len())
}

fn zstd(data: &[u8], threads: usize) -> Vec<u8> {
    compress(Compression::Zstd, None, threads, data, data.len())
}

fn decode(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    decoder(Cursor::new(data))?.read_to_end(&mut out)?;
    Ok(out)
}

/// Runs a real tool with `input` on stdin; returns its stdout, panicking if it fails.
fn tool(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("1 byte", vec![b'x']),
        ("128 KiB - 1", mixed(128 * KIB - 1, 1)),
        ("128 KiB", mixed(128 * KIB, 2)),
        ("128 KiB + 1", mixed(128 * KIB + 1, 3)),
        ("3 MiB mixed", mixed(3 * MIB + 12345, 4)),
    ]
}

#[test]
fn parse_names_and_rejects_unknown() {
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        assert_eq!(Compression::parse(c.name()).unwrap(), c);
    }
    assert_eq!(
        Compression::parse("uncompressed").unwrap(),
        Compression::None
    );
    assert_eq!(Compression::default(), Compression::Gzip);
    let e = Compression::parse("lz4").unwrap_err().to_string();
    assert!(
        e.contains("\"lz4\"") && e.contains("gzip") && e.contains("zstd") && e.contains("none"),
        "{e}"
    );
    assert_eq!(Compression::Gzip.media_type_suffix(), "+gzip");
    assert_eq!(Compression::Zstd.media_type_suffix(), "+zstd");
    assert_eq!(Compression::None.media_type_suffix(), "");
    assert_eq!(Compression::Gzip.default_level(), 6);
    assert_eq!(Compression::Zstd.default_level(), 3);
}

#[test]
fn check_level_names_value_and_range() {
    for bad in [0, 10, -1] {
        let e = Compression::Gzip.check_level(bad).unwrap_err().to_string();
        assert!(e.contains(&bad.to_string()) && e.contains("1..=9"), "{e}");
    }
    for good in 1..=9 {
        assert_eq!(Compression::Gzip.check_level(good).unwrap(), good);
    }
    let e = Compression::Zstd.check_level(20).unwrap_err().to_string();
    assert!(e.contains("20") && e.contains("1..=19"), "{e}");
    assert_eq!(Compression::Zstd.check_level(19).unwrap(), 19);
    assert!(Compression::None.check_level(1).is_err());
    assert!(Encoder::new(Compression::None, Some(1), 1, Vec::new()).is_err());
    assert!(Encoder::new(Compression::Gzip, Some(0), 1, Vec::new()).is_err());
}

#[test]
fn detect_by_magic() {
    assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
    assert_eq!(
        Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
        Compression::Zstd
    );
    assert_eq!(Compression::detect(b"usr/"), Compression::None);
    assert_eq!(Compression::detect(&[0x1f]), Compression::None);
    assert_eq!(Compression::detect(&[]), Compression::None);
}

#[test]
fn gzip_bytes_identical_across_threads_and_write_sizes() {
    for (name, data) in inputs() {
        let want = gzip(&data, 1);
        for threads in [1, 2, 3, 8] {
            for chunk in [1, 7, 64 * KIB, MIB, data.len()] {
                let got = compress(Compression::Gzip, None, threads, &data, chunk);
                assert!(
                    got == want,
                    "{name}: {threads} threads, {chunk}-byte writes differ"
                );
            }
        }
    }
}

#[test]
fn gzip_header_is_fixed() {
    let header = |level| compress(Compression::Gzip, Some(level), 2, b"abc", 3)[..10].to_vec();
    assert_eq!(header(6), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    assert_eq!(header(9)[8], 2);
    assert_eq!(header(1)[8], 4);
}

#[test]
fn gzip_levels_all_round_trip() {
    let data = mixed(300 * KIB, 5);
    for level in 1..=9 {
        let z = compress(Compression::Gzip, Some(level), 2, &data, data.len());
        assert!(tool("gzip", &["-dc"], &z) == data, "level {level}");
    }
}

#[test]
fn our_gzip_read_by_gzip_pigz_and_ourselves() {
    for (name, data) in inputs() {
        let z = gzip(&data, 2);
        assert!(tool("gzip", &["-dc"], &z) == data, "{name}: gzip -dc");
        assert!(tool("pigz", &["-dc"], &z) == data, "{name}: pigz -dc");
        assert!(decode(&z).unwrap() == data, "{name}: decoder");
    }
}

#[test]
fn gzip_and_pigz_output_read_by_decoder() {
    let data = mixed(2 * MIB + 7, 6);
    for (cmd, args) in [
        ("gzip", &["-c"][..]),
        ("gzip", &["-1", "-c"]),
        ("pigz", &["-p", "2", "-c"]),
        ("pigz", &["-i", "-9", "-c"]),
    ] {
        let z = tool(cmd, args, &data);
        assert!(decode(&z).unwrap() == data, "{cmd} {args:?}");
    }
}

#[test]
fn gzip_header_with_name_comment_extra_and_header_crc() {
    let data = mixed(200 * KIB, 7);
    let ours = gzip(&data, 1);
    let mut header = vec![0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 0, 0, 0, 0, 0, 3];
    header.extend_from_slice(&[4, 0, b'A', b'B', 0, 0]);
    header.extend_from_slice(b"layer.tar\0a comment\0");
    let hcrc = crc32fast::hash(&header) as u16;
    header.extend_from_slice(&hcrc.to_le_bytes());
    let z = [&header[..], &ours[10..]].concat();
    assert!(
        tool("gzip", &["-dc"], &z) == data,
        "gzip -dc disagrees with the test"
    );
    assert!(decode(&z).unwrap() == data);

    let mut bad = z.clone();
    bad[header.len() - 1] ^= 1;
    let e = decode(&bad).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(e.to_string().contains("header CRC"), "{e}");
}

#[test]
fn concatenated_gzip_members() {
    let parts = [
        mixed(100 * KIB, 8),
        Vec::new(),
        mixed(300 * KIB, 9),
        b"end".to_vec(),
    ];
    let z = [
        tool("gzip", &["-c"], &parts[0]),
        gzip(&parts[1], 1),
        tool("pigz", &["-c"], &parts[2]),
        gzip(&parts[3], 3),
    ]
    .concat();
    let want = parts.concat();
    assert!(decode(&z).unwrap() == want);
    assert!(
        tool("gzip", &["-dc"], &z) == want,
        "gzip -dc disagrees with the test"
    );
}

#[test]
fn our_zstd_read_by_zstd_and_ourselves() {
    for (name, data) in inputs() {
        let z = zstd(&data, 2);
        assert!(tool("zstd", &["-dc"], &z) == data, "{name}: zstd -dc");
        assert!(decode(&z).unwrap() == data, "{name}: decoder");
    }
}

#[test]
fn zstd_bytes_identical_across_worker_counts() {
    let data = mixed(3 * MIB, 10);
    let want = zstd(&data, 1);
    for threads in [2, 4] {
        for chunk in [7, 64 * KIB, data.len()] {
            let got = compress(Compression::Zstd, None, threads, &data, chunk);
            assert!(got == want, "{threads} workers, {chunk}-byte writes differ");
        }
    }
}

#[test]
fn zstd_tool_output_and_frames_read_by_decoder() {
    let a = mixed(MIB, 11);
    let b = mixed(100 * KIB, 12);
    let za = tool("zstd", &["-3", "-T2", "-c"], &a);
    let zb = tool("zstd", &["-19", "--no-check", "-c"], &b);
    assert!(decode(&za).unwrap() == a);
    assert!(
        decode(&[za, zb, zstd(b"tail", 1)].concat()).unwrap() == [&a[..], &b[..], b"tail"].concat()
    );
}

#[test]
fn plain_bytes_pass_through() {
    for data in [
        Vec::new(),
        vec![0x1f],
        b"ab".to_vec(),
        vec![0x28, 0xb5, 0x2f],
        mixed(MIB, 13),
    ] {
        assert!(decode(&data).unwrap() == data);
        let mut out = Vec::new();
        decoder(BufReader::with_capacity(1, &data[..]))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == data);
        assert!(compress(Compression::None, None, 4, &data, 5) == data);
    }
}

#[test]
fn sniffing_works_through_a_one_byte_buffer() {
    let data = mixed(300 * KIB, 14);
    for z in [gzip(&data, 2), zstd(&data, 1)] {
        let mut out = Vec::new();
        decoder(BufReader::with_capacity(1, &z[..]))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == data);
    }
}

#[test]
fn small_reads_cross_members_and_trailers() {
    let want = [mixed(150 * KIB, 15), mixed(10, 16)].concat();
    let z = [gzip(&want[..150 * KIB], 2), gzip(&want[150 * KIB..], 1)].concat();
    let mut r = decoder(Cursor::new(&z)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 3];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert!(out == want);
}

fn assert_truncated(z: &[u8], what: &str) {
    let e = decode(z).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{what}: {e}");
    assert!(e.to_string().contains("truncated"), "{what}: {e}");
}

#[test]
fn truncated_gzip_is_an_error() {
    let data = mixed(400 * KIB, 17);
    for z in [gzip(&data, 2), tool("gzip", &["-c"], &data)] {
        let n = z.len();
        for cut in [2, 5, 9, 10, 11, 100, n / 2, n - 9, n - 8, n - 5, n - 1] {
            assert_truncated(&z[..cut], &format!("cut at {cut} of {n}"));
        }
    }
    assert_truncated(&gzip(b"", 1)[..11], "empty member cut in its deflate data");
}

#[test]
fn truncated_zstd_is_an_error() {
    let data = mixed(400 * KIB, 18);
    let z = zstd(&data, 2);
    let n = z.len();
    for cut in [4, 6, 20, n / 2, n - 4, n - 1] {
        assert_truncated(&z[..cut], &format!("cut at {cut} of {n}"));
    }
}

#[test]
fn corrupt_zstd_is_an_error() {
    let data = mixed(400 * KIB, 19);
    let mut z = zstd(&data, 2);
    let last = z.len() - 1;
    z[last] ^= 0xff; // the content checksum
    let e = decode(&z).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains("zstd"), "{e}");
}

#[test]
fn corrupt_gzip_crc_and_length_are_errors() {
    let data = mixed(200 * KIB, 20);
    let z = gzip(&data, 2);
    let n = z.len();
    for (at, what) in [(n - 8, "CRC"), (n - 1, "length")] {
        let mut bad = z.clone();
        bad[at] ^= 0x40;
        let e = decode(&bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
        assert!(
            e.to_string().contains(&format!("gzip {what} mismatch")),
            "{e}"
        );
    }
    let mut bad = z.clone();
    bad[n / 2] ^= 0x10;
    assert!(
        decode(&bad).is_err(),
        "a flipped bit in deflate data went unnoticed"
    );
}

/// A layer's decoder leaves the CRC to the diff ID its caller checks; the length and the
/// deflate stream's own structure are still checked.
#[test]
fn the_digest_checked_decoder_skips_only_the_crc() {
    let data = mixed(200 * KIB, 20);
    let z = gzip(&data, 2);
    let n = z.len();
    let read = |b: &[u8]| -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        super::decoder_for_digest(b)?.read_to_end(&mut out)?;
        Ok(out)
    };
    let mut crc = z.clone();
    crc[n - 8] ^= 0x40;
    assert!(read(&crc).unwrap() == data);
    let mut len = z.clone();
    len[n - 1] ^= 0x40;
    let e = read(&len).unwrap_err();
    assert!(e.to_string().contains("gzip length mismatch"), "{e}");
}

#[test]
fn trailing_garbage_after_gzip_is_an_error() {
    let z = gzip(b"hello", 1);
    for tail in [
        &b"\0"[..],
        b"\0\0\0\0\0\0\0\0\0\0\0\0",
        b"garbage",
        b"\x1f\x8c",
    ] {
        let e = decode(&[&z[..], tail].concat()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("trailing garbage"), "{e}");
    }
}

/// A writer that fails once it has taken `room` bytes.
#[derive(Debug)]
struct Full {
    room: usize,
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::other("disk full"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn writer_errors_surface_and_stick() {
    let data = mixed(2 * MIB, 21);
    for threads in [1, 3] {
        let mut enc = Encoder::new(Compression::Gzip, None, threads, Full { room: 1000 }).unwrap();
        let e = enc.write_all(&data).and_then(|()| enc.flush()).unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        let e = enc.finish().unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
    }
}

#[test]
fn dropping_an_unfinished_encoder_returns() {
    let data = mixed(4 * MIB, 22);
    for c in [Compression::Gzip, Compression::Zstd] {
        let mut enc = Encoder::new(c, None, 8, Vec::new()).unwrap();
        enc.write_all(&data).unwrap();
        drop(enc);
    }
}

#[test]
fn get_ref_and_default_threads() {
    let enc = Encoder::new(Compression::Gzip, None, 2, vec![1u8]).unwrap();
    assert_eq!(enc.get_ref(), &vec![1u8]);
    assert!(default_threads() >= 1);
}

#[test]
fn flushes_do_not_change_output() {
    let data = mixed(700 * KIB, 23);
    for c in [Compression::Gzip, Compression::Zstd] {
        let want = compress(c, None, 1, &data, data.len());
        for threads in [0, 1, 3] {
            let mut enc = Encoder::new(c, None, threads, Vec::new()).unwrap();
            for piece in data.chunks(50 * KIB) {
                enc.write_all(piece).unwrap();
                enc.flush().unwrap();
            }
            assert!(enc.finish().unwrap() == want, "{c:?}, {threads} threads");
        }
    }
}
