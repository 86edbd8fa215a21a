//! Trees the layer tests write and read: every entry type, and a container's changes made through a real overlay.

use super::*;
use std::process::Command;
use strata::image::layer::{unpack, write_tar, Source, Times, UnpackOpts, WriteOpts};

pub fn opts(source: Source, times: Times) -> WriteOpts {
    WriteOpts {
        source,
        times,
        copy_to: None,
    }
}

pub fn tar_of(dir: &Path, o: &WriteOpts) -> Vec<u8> {
    let mut seen = 0;
    let (stats, out) = write_tar(dir, Vec::new(), o, &mut |n| seen += n).unwrap();
    assert_eq!(seen, stats.file_bytes);
    out
}

pub fn unpack_into(tar: &[u8], dir: &Path, lowers: &[&Path]) {
    let o = UnpackOpts {
        lowers: lowers.iter().map(|p| p.to_path_buf()).collect(),
        gate: None,
    };
    unpack(tar, dir, &o).unwrap_or_else(|e| panic!("unpack: {e:#}"));
}

/// A tree with every entry type, odd modes and owners, xattrs (one binary value holding
/// '\n'), file caps, hard links, devices and names too long for ustar.
pub fn make_tree(root: &Path) {
    mkdir(&root.join("bin"), 0o755);
    write(&root.join("bin/sh"), b"#!busybox\n", 0o755);
    fs::hard_link(root.join("bin/sh"), root.join("bin/ash")).unwrap();
    ln_s("sh", &root.join("bin/busybox"));
    write(&root.join("bin/su"), b"setuid", 0o4755);
    write(&root.join("bin/ping"), b"ping", 0o755);
    // With setcap where it is installed (CI has no libcap2-bin): the same bytes either way.
    if have("setcap") {
        run(Command::new("setcap")
            .arg("cap_net_raw+ep")
            .arg(root.join("bin/ping")));
        assert_eq!(
            xattrs(&root.join("bin/ping"))["security.capability"],
            cap_net_raw()
        );
    } else {
        setxattr(
            &root.join("bin/ping"),
            "security.capability",
            &cap_net_raw(),
        );
    }
    mkdir(&root.join("etc"), 0o755);
    setxattr(&root.join("etc"), "trusted.strata", b"1");
    write(
        &root.join("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\n",
        0o644,
    );
    write(&root.join("etc/shadow"), b"root:*:1::::::\n", 0o640);
    lchown(&root.join("etc/shadow"), 0, 42);
    write(&root.join("etc/empty"), b"", 0o600);
    mkdir(&root.join("tmp"), 0o1777);
    mkdir(&root.join("home/user"), 0o700);
    lchown(&root.join("home/user"), 1000, 1000);
    write(&root.join("home/user/.profile"), b"export A=1\n", 0o600);
    lchown(&root.join("home/user/.profile"), 1000, 1000);
    setxattr(&root.join("home/user/.profile"), "user.note", b"hello");
    setxattr(
        &root.join("home/user/.profile"),
        "user.bin",
        &[0, b'\n', 255, b'\n'],
    );
    ln_s("usr/lib", &root.join("lib"));
    ln_s("/etc/passwd", &root.join("abs"));
    mkdir(&root.join("dev"), 0o755);
    mknod(&root.join("dev/null"), libc::S_IFCHR, 1, 3, 0o666);
    mknod(&root.join("dev/sda"), libc::S_IFBLK, 8, 0, 0o660);
    mknod(&root.join("dev/fifo"), libc::S_IFIFO, 0, 0, 0o644);
    let mid = root.join("d".repeat(120));
    write(&mid.join("f".repeat(90)), b"over 100", 0o644);
    let deep = root.join(format!(
        "{}/{}/{}",
        "x".repeat(100),
        "y".repeat(100),
        "z".repeat(100)
    ));
    write(&deep.join("file"), b"over 255", 0o644);
    ln_s(&"t".repeat(150), &root.join("longlink"));
    set_times(root, 1_600_000_000);
    // Before 1970: a PAX mtime record here, a negative base-256 field in GNU format.
    set_mtime(&root.join("etc/empty"), -86_400);
}

/// Give every inode below `root` a distinct, fixed mtime (children before their dirs).
pub fn set_times(root: &Path, base: i64) {
    let mut paths: Vec<_> = snapshot(root, &SNAP).into_keys().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for (i, p) in paths.iter().enumerate() {
        set_mtime(&root.join(p), base + i as i64);
    }
}

/// The container's changes, made through a real overlay mount.
pub struct Changed {
    pub t: Tmp,
    pub merged: std::collections::BTreeMap<String, Node>,
}

impl Changed {
    pub fn lower(&self) -> std::path::PathBuf {
        self.t.path("lower")
    }
    pub fn upper(&self) -> std::path::PathBuf {
        self.t.path("upper")
    }
}

pub fn make_changes() -> Changed {
    let t = Tmp::new("upper");
    let lower = t.dir("lower");
    for (p, data) in [
        ("keep.txt", "keep"),
        ("change.txt", "old"),
        ("del.txt", "del"),
        ("rename_me.txt", "rename"),
        ("chmod_me.txt", "m"),
        ("xattr_me.txt", "x"),
        ("dir_recreate/a", "a"),
        ("dir_recreate/b", "b"),
        ("dir_rm/x", "x"),
        ("dir_rm/sub/y", "y"),
        ("sub/deep/file", "deep"),
        ("hard1", "hard"),
    ] {
        write(&lower.join(p), data.as_bytes(), 0o644);
    }
    fs::hard_link(lower.join("hard1"), lower.join("hard2")).unwrap();
    mkdir(&lower.join("bin"), 0o755);
    ln_s("busybox", &lower.join("bin/sh"));
    mkdir(&lower.join("dev"), 0o755);
    mknod(&lower.join("dev/null"), libc::S_IFCHR, 1, 3, 0o666);
    write(&lower.join("suid"), b"suid", 0o4755);
    write(&lower.join("cap"), b"cap", 0o755);
    setxattr(&lower.join("cap"), "security.capability", &cap_net_raw());
    set_times(&lower, 1_500_000_000);
    let (upper, work) = (t.dir("upper"), t.dir("work"));

    let ov = Overlay::mount(&[&lower], Some((&upper, &work)));
    let m = ov.root();
    write(&m.join("new.txt"), b"new", 0o640);
    lchown(&m.join("new.txt"), 1000, 1000);
    setxattr(&m.join("new.txt"), "user.new", b"v\n");
    fs::hard_link(m.join("new.txt"), m.join("new_link")).unwrap();
    fs::write(m.join("change.txt"), b"new content").unwrap();
    fs::remove_file(m.join("del.txt")).unwrap();
    fs::remove_dir_all(m.join("dir_recreate")).unwrap();
    mkdir(&m.join("dir_recreate"), 0o750);
    write(&m.join("dir_recreate/c"), b"c", 0o644);
    fs::remove_dir_all(m.join("dir_rm")).unwrap();
    fs::rename(m.join("rename_me.txt"), m.join("renamed.txt")).unwrap();
    chmod(&m.join("chmod_me.txt"), 0o600);
    setxattr(&m.join("xattr_me.txt"), "user.added", b"1");
    write(&m.join("sub/deep/new"), b"n", 0o644);
    write(&m.join("newdir/inner/f"), b"f", 0o644);
    ln_s("inner/f", &m.join("newdir/link"));
    mknod(&m.join("newfifo"), libc::S_IFIFO, 0, 0, 0o600);
    fs::remove_file(m.join("hard2")).unwrap();
    let merged = snapshot(&m, &SNAP);
    drop(ov);
    Changed { t, merged }
}

pub fn gnu_tar() -> bool {
    let ok = have("tar") && run(Command::new("tar").arg("--version")).contains("GNU tar");
    if !ok {
        eprintln!("skipped: needs GNU tar");
    }
    ok
}
