//! Layer tars against real overlay mounts, GNU tar, and hostile input.

mod layer_support;

use layer_support::trees::*;
use layer_support::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use strata::image::layer::{unpack, write_tar, Source, Times, UnpackOpts, WriteOpts};

evil_tests!({});

#[test]
fn tree_round_trip() {
    need_root!();
    let t = Tmp::new("tree");
    let src = t.dir("src");
    make_tree(&src);
    let tar = tar_of(&src, &opts(Source::Tree, Times::Keep));
    let dst = t.dir("dst");
    unpack_into(&tar, &dst, &[]);
    assert_same(
        &snapshot(&src, &SNAP),
        &snapshot(&dst, &SNAP),
        "tree → tar → unpack",
    );
}

#[test]
fn tar_layout() {
    need_root!();
    let t = Tmp::new("layout");
    let src = t.dir("src");
    make_tree(&src);
    let tar = tar_of(&src, &opts(Source::Tree, Times::Keep));
    assert!(tar.len().is_multiple_of(512) && tar.ends_with(&[0u8; 1024]));
    let l = list(&tar);
    let names: Vec<&str> = l.iter().map(|e| e.path.as_str()).collect();
    // Sorted by name within each directory, depth-first, directories first and with a
    // trailing slash, no root entry, no leading "./".
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| {
        let key = |s: &str| {
            s.trim_end_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        key(a).cmp(&key(b))
    });
    assert_eq!(names, sorted);
    assert_eq!(names[0], "abs");
    assert!(names.contains(&"bin/") && names.contains(&"bin/sh"));
    assert!(names
        .iter()
        .all(|n| !n.starts_with("./") && !n.starts_with('/') && !n.is_empty()));
    let e = |n: &str| {
        l.iter()
            .find(|e| e.path == n)
            .unwrap_or_else(|| panic!("no {n}"))
    };
    // The first path of a hard-linked inode is the file, the later ones link to it.
    assert_eq!((e("bin/ash").flag, e("bin/ash").data.len()), (b'0', 10));
    assert_eq!(
        (e("bin/sh").flag, e("bin/sh").link.as_str()),
        (b'1', "bin/ash")
    );
    assert_eq!(e("bin/su").mode, 0o4755);
    assert_eq!(e("tmp/").mode, 0o1777);
    assert_eq!((e("etc/shadow").uid, e("etc/shadow").gid), (0, 42));
    assert_eq!(
        e("bin/ping").pax,
        vec![(
            "SCHILY.xattr.security.capability".to_string(),
            cap_net_raw()
        )]
    );
    // PAX only where ustar cannot say it: the 120/90 split fits, the 3×100 path and the
    // 150-byte link target do not.
    let mid = format!("{}/{}", "d".repeat(120), "f".repeat(90));
    assert!(e(&mid).pax.is_empty());
    let deep = format!(
        "{}/{}/{}/file",
        "x".repeat(100),
        "y".repeat(100),
        "z".repeat(100)
    );
    assert_eq!(
        e(&deep).pax,
        vec![("path".to_string(), deep.clone().into_bytes())]
    );
    assert_eq!(e("longlink").pax[0].0, "linkpath");
    assert!(e("etc/passwd").pax.is_empty() && e("bin/").pax.is_empty());
    assert_eq!(
        e("etc/empty").pax,
        vec![("mtime".to_string(), b"-86400".to_vec())]
    );
    // PAX records sorted by key.
    let keys: Vec<&str> = e("home/user/.profile")
        .pax
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["SCHILY.xattr.user.bin", "SCHILY.xattr.user.note"]);
    let raw_uname = |tar: &[u8], name: &str| {
        let pos = tar
            .windows(name.len())
            .position(|w| w == name.as_bytes())
            .unwrap();
        tar[pos + 265..pos + 265 + 64].iter().all(|b| *b == 0)
    };
    assert!(raw_uname(&tar, "etc/passwd"), "uname/gname must be empty");
}

#[test]
fn reproducible() {
    need_root!();
    let t = Tmp::new("repro");
    let src = t.dir("src");
    make_tree(&src);
    let keep = opts(Source::Tree, Times::Keep);
    let kept = tar_of(&src, &keep);
    assert_eq!(kept, tar_of(&src, &keep), "same tree, same bytes");
    let set = opts(Source::Tree, Times::Set(1_000_000));
    let before = tar_of(&src, &set);
    set_times(&src, 1_700_000_000);
    assert_ne!(
        kept,
        tar_of(&src, &keep),
        "the touch shows with Times::Keep"
    );
    assert_eq!(before, tar_of(&src, &set), "Times::Set ignores mtimes");
    assert!(list(&before).iter().all(|e| e.mtime == 1_000_000));
    let clamp = 1_700_000_010;
    for e in list(&tar_of(&src, &opts(Source::Tree, Times::Clamp(clamp)))) {
        let real = fs::symlink_metadata(src.join(e.path.trim_end_matches('/')))
            .unwrap()
            .mtime() as u64;
        assert_eq!(e.mtime, real.min(clamp as u64), "{}", e.path);
    }
}

#[test]
fn tree_mode_keeps_devices_and_drops_overlay_xattrs() {
    need_root!();
    let t = Tmp::new("treemode");
    let src = t.dir("src");
    mknod(&src.join("wh"), libc::S_IFCHR, 0, 0, 0o600);
    write(&src.join("f"), b"x", 0o644);
    setxattr(&src.join("f"), "trusted.overlay.origin", b"zzz");
    setxattr(&src.join("f"), "user.keep", b"1");
    let l = list(&tar_of(&src, &opts(Source::Tree, Times::Keep)));
    assert_eq!(
        l.iter()
            .map(|e| (e.path.as_str(), e.flag))
            .collect::<Vec<_>>(),
        [("f", b'0'), ("wh", b'3')]
    );
    assert_eq!(
        l[0].pax,
        vec![("SCHILY.xattr.user.keep".to_string(), b"1".to_vec())]
    );
}

/// An upper that leans on its lowers (redirect_dir or metacopy was on) is refused rather
/// than written as a layer that silently lacks data.
#[test]
fn upper_with_metacopy_is_refused() {
    need_root!();
    let t = Tmp::new("metacopy");
    let upper = t.dir("upper");
    write(&upper.join("f"), b"", 0o644);
    setxattr(&upper.join("f"), "trusted.overlay.metacopy", b"");
    let err = write_tar(
        &upper,
        std::io::sink(),
        &opts(Source::Upper, Times::Keep),
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert!(
        format!("{err:#}").contains("f: has trusted.overlay.metacopy"),
        "{err:#}"
    );
    // A tree (say, a copy of a layer dir) just drops it.
    assert!(write_tar(
        &upper,
        std::io::sink(),
        &opts(Source::Tree, Times::Keep),
        &mut |_| {}
    )
    .is_ok());
}

/// A file whose size is not what stat said (procfs files stat as empty) is an error naming
/// it, never a tar with a wrong size.
#[test]
fn changed_while_read() {
    let err = write_tar(
        Path::new("/proc/sys/kernel/random"),
        std::io::sink(),
        &opts(Source::Tree, Times::Keep),
        &mut |_| {},
    )
    .expect_err("procfs files grow while read");
    let err = format!("{err:#}");
    assert!(err.contains("boot_id: changed while being read"), "{err}");
}

#[test]
fn unpack_refuses_a_non_empty_dir() {
    let t = Tmp::new("nonempty");
    let dir = t.dir("layer");
    write(&dir.join("x"), b"", 0o644);
    let err = unpack(&RawTar::default().end()[..], &dir, &UnpackOpts::default()).unwrap_err();
    assert!(format!("{err:#}").contains("is not empty"));
}

#[test]
fn upper_round_trip() {
    need_root!();
    let c = make_changes();
    let tar = tar_of(&c.upper(), &opts(Source::Upper, Times::Keep));
    let l = list(&tar);
    let names: Vec<&str> = l.iter().map(|e| e.path.as_str()).collect();
    for wh in [
        ".wh.del.txt",
        ".wh.dir_rm",
        ".wh.rename_me.txt",
        ".wh.hard2",
    ] {
        let e = l
            .iter()
            .find(|e| e.path == wh)
            .unwrap_or_else(|| panic!("no {wh} in {names:?}"));
        assert_eq!((e.flag, e.mode, e.data.len()), (b'0', 0, 0), "{wh}");
    }
    let at = names.iter().position(|n| *n == "dir_recreate/").unwrap();
    assert_eq!(names[at + 1], "dir_recreate/.wh..wh..opq");
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".wh..wh..opq")).count(),
        1,
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.is_empty() || *n == "./" || *n == "/"),
        "no root entry"
    );
    let e = |n: &str| l.iter().find(|e| e.path == n).unwrap();
    assert_eq!(e("change.txt").data, b"new content");
    assert_eq!((e("new.txt").uid, e("new.txt").mode), (1000, 0o640));
    assert_eq!(
        (e("new_link").flag, e("new_link").link.as_str()),
        (b'1', "new.txt")
    );
    assert!(!names.contains(&"keep.txt"));
    for e in &l {
        assert!(
            !e.pax.iter().any(|(k, _)| k.contains("trusted.overlay")),
            "{}: {:?}",
            e.path,
            e.pax
        );
    }

    let layer = c.t.dir("layer");
    unpack_into(&tar, &layer, &[&c.lower()]);
    let ov = Overlay::mount(&[&layer, &c.lower()], None);
    assert_same(
        &c.merged,
        &snapshot(&ov.root(), &SNAP),
        "merged view before and after",
    );
}

#[test]
fn copy_to_equals_upper() {
    need_root!();
    let c = make_changes();
    let copy = c.t.dir("copy");
    let o = WriteOpts {
        copy_to: Some(copy.clone()),
        ..opts(Source::Upper, Times::Keep)
    };
    let (stats, tar) = write_tar(&c.upper(), Vec::new(), &o, &mut |_| {}).unwrap();
    assert_eq!(stats.entries as usize, list(&tar).len());
    let layer_xattrs = SnapOpts {
        xattr: |k| !k.starts_with("trusted.overlay.") || k == "trusted.overlay.opaque",
        dir_mtimes: true,
    };
    let copied = snapshot(&copy, &layer_xattrs);
    assert_same(
        &snapshot(&c.upper(), &layer_xattrs),
        &copied,
        "upper and its copy",
    );
    assert_eq!(
        copied["dir_recreate"].xattrs["trusted.overlay.opaque"],
        b"y"
    );
    // The copy is what unpacking the tar gives.
    let layer = c.t.dir("layer");
    unpack_into(&tar, &layer, &[&c.lower()]);
    assert_same(
        &copied,
        &snapshot(&layer, &layer_xattrs),
        "copy and unpacked tar",
    );
}

/// OCI whiteout rules that a plain overlay commit never produces.
#[test]
fn unpack_whiteout_rules() {
    need_root!();
    let t = Tmp::new("rules");
    let lower = t.dir("lower");
    write(&lower.join("own/x"), b"lower", 0o644);
    write(&lower.join("late/old"), b"old", 0o644);
    write(&lower.join("gone/f"), b"f", 0o644);
    write(&lower.join("shadowed/x"), b"x", 0o644);
    mkdir(&lower.join("usr/share"), 0o711);
    lchown(&lower.join("usr"), 5, 6);
    setxattr(&lower.join("usr"), "user.dir", b"d");
    set_mtime(&lower.join("usr"), 1_234_567);
    write(&lower.join("lib/libc.so"), b"libc", 0o755);
    setxattr(&lower.join("lib/libc.so"), "user.lib", b"1");
    set_mtime(&lower.join("lib/libc.so"), 7_654_321);
    let tar = RawTar::default()
        // The layer's own x survives its whiteout, before or after it.
        .file("own/.wh.x", b"")
        .file("own/x", b"mine")
        .file("own/y", b"mine")
        .file("own/.wh.y", b"")
        // Opaque marker after the children it must not hide.
        .file("late/new", b"new")
        .file("late/.wh..wh..opq", b"")
        .file("late/.wh.old", b"") // inside an opaque dir of this layer: dropped
        // A whiteout of a dir this layer recreates: the dir becomes opaque.
        .file(".wh.gone", b"")
        .file("gone/g", b"g")
        .file(".wh.shadowed", b"")
        // Implicit parents copy the lower's attributes.
        .file("usr/share/doc/x", b"x")
        // A hard link to a lower file copies it up.
        .hardlink("libc.link", "lib/libc.so")
        // aufs metadata is ignored.
        .file(".wh..wh..plnk/123.456", b"aufs")
        .end();
    let layer = t.dir("layer");
    unpack_into(&tar, &layer, &[&lower]);
    let s = snapshot(&layer, &ALL);
    assert_eq!(s["own/x"].data, b"mine");
    assert_eq!(s["own/y"].data, b"mine");
    assert!(!s.contains_key("own/.wh.x") && !s.contains_key(".wh..wh..plnk"));
    assert_eq!(
        s["late"]
            .xattrs
            .get("trusted.overlay.opaque")
            .map(|v| &v[..]),
        Some(&b"y"[..])
    );
    assert!(
        !s.contains_key("late/old"),
        "whiteout in an opaque dir is dropped"
    );
    assert_eq!(
        s["gone"]
            .xattrs
            .get("trusted.overlay.opaque")
            .map(|v| &v[..]),
        Some(&b"y"[..])
    );
    assert_eq!((s["shadowed"].kind, s["shadowed"].rdev), ('c', (0, 0)));
    let usr = &s["usr"];
    assert_eq!(
        (usr.mode, usr.uid, usr.gid, usr.mtime),
        (0o755, 5, 6, 1_234_567)
    );
    assert_eq!(usr.xattrs["user.dir"], b"d");
    assert_eq!(s["usr/share"].mode, 0o711);
    assert_eq!(
        (s["usr/share/doc"].mode, s["usr/share/doc"].uid),
        (0o755, 0)
    );
    let lib = &s["lib/libc.so"];
    assert_eq!(
        (lib.data.as_slice(), lib.mode, lib.mtime),
        (&b"libc"[..], 0o755, 7_654_321)
    );
    assert_eq!(lib.xattrs["user.lib"], b"1");
    assert_eq!(s["libc.link"].link_group.as_deref(), Some("lib/libc.so"));
    // And overlay agrees.
    let ov = Overlay::mount(&[&layer, &lower], None);
    let m = snapshot(&ov.root(), &SNAP);
    assert!(m.contains_key("own/x") && !m.contains_key("late/old") && !m.contains_key("gone/f"));
    assert!(!m.contains_key("shadowed") && m.contains_key("usr/share/doc/x"));
}

/// Later entries replace earlier ones of the same layer: non-directories are unlinked (other
/// hard links keep the old data), a directory over a directory only changes attributes,
/// anything else over a directory removes it with its contents.
#[test]
fn unpack_replaces_entries() {
    need_root!();
    let t = Tmp::new("replace");
    let layer = t.dir("layer");
    let tar = RawTar::default()
        .file("f", b"one")
        .hardlink("f2", "f")
        .file("f", b"two")
        .dir("d/")
        .file("d/x", b"x")
        .dir("d/sub/")
        .file("d", b"now a file")
        .file("d/.wh.y", b"")
        .symlink("s", "target")
        .dir("s/")
        .file("s/in", b"in")
        .dir("keep/")
        .file("keep/x", b"x")
        .raw(raw_header(b"keep/", b'5', 0, b""))
        .end();
    let stats = unpack(&tar[..], &layer, &UnpackOpts::default()).unwrap();
    assert_eq!(stats.entries, 14);
    assert_eq!(stats.file_bytes, 3 + 3 + 1 + 10 + 2 + 1);
    let s = snapshot(&layer, &ALL);
    assert_eq!(
        (s["f"].data.as_slice(), s["f2"].data.as_slice()),
        (&b"two"[..], &b"one"[..])
    );
    assert_eq!(
        (s["d"].kind, s["d"].data.as_slice()),
        ('f', &b"now a file"[..])
    );
    assert!(!s.keys().any(|k| k.starts_with("d/")), "{:?}", s.keys());
    assert_eq!((s["s"].kind, s["s/in"].kind), ('d', 'f'));
    assert_eq!(s["keep/x"].data, b"x");
}

#[test]
fn gnu_tar_lists_our_tar() {
    need_root!();
    if !gnu_tar() {
        return;
    }
    let t = Tmp::new("tvf");
    let src = t.dir("src");
    make_tree(&src);
    fs::write(
        t.path("our.tar"),
        tar_of(&src, &opts(Source::Tree, Times::Keep)),
    )
    .unwrap();
    let out = run(Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(t.path("our.tar")));
    let line = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().nth(5) == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let check = |name: &str, perms: &str, owner: &str| {
        let l = line(name);
        assert_eq!(
            (l[0].as_str(), l[1].as_str()),
            (perms, owner),
            "{name}: {l:?}"
        );
    };
    check("bin/", "drwxr-xr-x", "0/0");
    check("bin/su", "-rwsr-xr-x", "0/0");
    check("bin/sh", "hrwxr-xr-x", "0/0");
    check("bin/busybox", "lrwxrwxrwx", "0/0");
    check("tmp/", "drwxrwxrwt", "0/0");
    check("etc/shadow", "-rw-r-----", "0/42");
    check("home/user/", "drwx------", "1000/1000");
    check("dev/null", "crw-rw-rw-", "0/0");
    check("dev/sda", "brw-rw----", "0/0");
    check("dev/fifo", "prw-r--r--", "0/0");
    assert_eq!(line("dev/null")[2], "1,3");
    assert_eq!(line("bin/sh")[6..], ["link", "to", "bin/ash"]);
    assert_eq!(line("bin/busybox")[6..], ["->", "sh"]);
    let deep = format!(
        "{}/{}/{}/file",
        "x".repeat(100),
        "y".repeat(100),
        "z".repeat(100)
    );
    line(&deep);
    assert!(
        !out.contains("PaxHeaders"),
        "PAX headers listed as files:\n{out}"
    );
}

#[test]
fn gnu_tar_extracts_our_tar() {
    need_root!();
    if !gnu_tar() {
        return;
    }
    let t = Tmp::new("gnux");
    let src = t.dir("src");
    make_tree(&src);
    fs::write(
        t.path("our.tar"),
        tar_of(&src, &opts(Source::Tree, Times::Keep)),
    )
    .unwrap();
    let dst = t.dir("dst");
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(t.path("our.tar"))
        .arg("-C")
        .arg(&dst));
    assert_same(
        &snapshot(&src, &SNAP),
        &snapshot(&dst, &SNAP),
        "our tar → GNU tar -x",
    );
}

#[test]
fn unpack_reads_gnu_pax_tar() {
    need_root!();
    if !gnu_tar() {
        return;
    }
    let t = Tmp::new("gnupax");
    let src = t.dir("src");
    make_tree(&src);
    run(Command::new("tar")
        .args(["--format=pax", "--xattrs", "--xattrs-include=*", "-cf"])
        .arg(t.path("gnu.tar"))
        .arg("-C")
        .arg(&src)
        .arg("."));
    let dst = t.dir("dst");
    unpack_into(&fs::read(t.path("gnu.tar")).unwrap(), &dst, &[]);
    assert_same(
        &snapshot(&src, &SNAP),
        &snapshot(&dst, &SNAP),
        "GNU tar --format=pax → unpack",
    );
    assert_eq!(
        xattrs(&dst.join("bin/ping"))["security.capability"],
        cap_net_raw()
    );
    // The "./" entry carries the root's attributes.
    assert_eq!(
        fs::metadata(&dst).unwrap().mtime(),
        fs::metadata(&src).unwrap().mtime()
    );
}

#[test]
fn unpack_reads_gnu_format_long_names() {
    need_root!();
    if !gnu_tar() {
        return;
    }
    let t = Tmp::new("gnulong");
    let src = t.dir("src");
    make_tree(&src);
    run(Command::new("tar")
        .args(["--format=gnu", "-cf"])
        .arg(t.path("gnu.tar"))
        .arg("-C")
        .arg(&src)
        .arg("."));
    let dst = t.dir("dst");
    unpack_into(&fs::read(t.path("gnu.tar")).unwrap(), &dst, &[]);
    // The GNU format has no xattrs.
    let no_xattrs = SnapOpts {
        xattr: |_| false,
        dir_mtimes: true,
    };
    assert_same(
        &snapshot(&src, &no_xattrs),
        &snapshot(&dst, &no_xattrs),
        "GNU tar --format=gnu → unpack",
    );
}

/// Throughput of write_tar and unpack beside GNU tar on the same tree (release build):
/// STRATA_LAYER_BENCH_DIR=/tmp/usr-copy cargo test --release --test layer -- --ignored --nocapture bench
/// (STRATA_LAYER_BENCH_COPY_ONLY=<empty dir> times one write_tar with copy_to there, alone).
#[test]
#[ignore]
fn bench() {
    layer_support::bench::bench_write_tar();
}

/// Files of a block (1 MiB) and more are unpacked past the page cache in aligned blocks,
/// their tails buffered: every length around the block size comes back byte for byte,
/// with its mode, owner, times and xattrs, and (where the filesystem takes O_DIRECT) only
/// the tail's page of a big file is left in the page cache.
#[test]
fn big_files_unpack_past_the_page_cache() {
    need_root!();
    let t = Tmp::new("direct");
    let src = t.dir("src");
    const MIB: usize = 1 << 20;
    let sizes = [MIB - 1, MIB, MIB + 1, 3 * MIB + 777, 8 * MIB];
    for (i, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..n).map(|k| (k * 31 + k / 4099 + i) as u8).collect();
        let p = src.join(format!("f{n}"));
        fs::write(&p, &data).unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o751)).unwrap();
        std::os::unix::fs::chown(&p, Some(1000 + i as u32), Some(2000)).unwrap();
        setxattr(&p, "user.big", b"yes");
    }
    let tar = tar_of(&src, &opts(Source::Tree, Times::Keep));
    let dst = t.dir("dst");
    unpack_into(&tar, &dst, &[]);
    // Before anything reads the files back.
    if takes_o_direct(&t.0) {
        let resident = resident_pages(&dst.join(format!("f{}", 8 * MIB)));
        assert_eq!(
            resident, 0,
            "pages of an unpacked 8 MiB file in the page cache"
        );
    } else {
        eprintln!(
            "SKIP the page-cache check: {} refuses O_DIRECT",
            t.0.display()
        );
    }
    assert_same(
        &snapshot(&src, &SNAP),
        &snapshot(&dst, &SNAP),
        "big files: tree → tar → unpack",
    );
}

fn takes_o_direct(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(dir.join("direct-probe"))
        .is_ok()
}

/// Pages of `p` in the page cache (mincore over a mapping of it).
fn resident_pages(p: &Path) -> usize {
    use std::os::fd::AsRawFd;
    let f = fs::File::open(p).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let page = 4096;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: a read-only shared mapping of a file we opened, unmapped before return;
    // mincore writes one byte per page into `vec`, which has that many.
    unsafe {
        let m = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(m, libc::MAP_FAILED);
        assert_eq!(libc::mincore(m, len, vec.as_mut_ptr()), 0);
        libc::munmap(m, len);
    }
    vec.iter().filter(|&&b| b & 1 == 1).count()
}
