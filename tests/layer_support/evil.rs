//! Hostile layer tars: each must fail naming the entry (or be harmless) and leave everything outside the layer dir as it was.

use super::*;
use strata::image::layer::{unpack, UnpackOpts};

/// Run every case below as a test, after the block `$setup` (the fallback binary disables
/// openat2 there).
#[macro_export]
macro_rules! evil_tests {
    ($setup:block) => {
        $crate::evil_tests!(@each $setup;
            dotdot, dotdot_nested, absolute, abs_symlink_parent, dotdot_symlink_parent,
            dot_symlink_chain, hardlink_dotdot, hardlink_abs, hardlink_symlink_parent,
            hardlink_dir, hardlink_missing, degenerate_whiteouts, whiteout_symlink,
            forged_overlay_xattr, lower_symlink_parent, lower_file_parent, long_name,
            big_pax, sparse, pax_size_mismatch, nul_name, header_only_with_data,
            trailing_garbage, symlink_then_dir, duplicate_pax_path, gnu_long_name_dotdot,
            global_pax_path, whiteout_under_symlink, opaque_under_symlink, empty_name,
            too_many_xattrs, big_xattr);
    };
    (@each $setup:block; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                $crate::need_root!();
                $setup
                $crate::layer_support::evil::$name();
            }
        )*
    };
}

/// A layer dir with a lower beside it, sentinels next to them and in a separate /tmp dir.
pub struct Env {
    pub tmp: Tmp,
    pub outside: Tmp,
    pub layer: PathBuf,
    pub lower: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let tmp = Tmp::new("evil");
        let outside = Tmp::new("outside");
        write(&tmp.path("sentinel"), b"orig", 0o644);
        write(&outside.path("sentinel"), b"orig", 0o644);
        let layer = tmp.dir("layer");
        let lower = tmp.dir("lower");
        Env {
            tmp,
            outside,
            layer,
            lower,
        }
    }

    pub fn out(&self) -> String {
        self.outside.0.display().to_string()
    }

    // Everything but the layer dir, and the outside dir.
    fn world(&self) -> (BTreeMap<String, Node>, BTreeMap<String, Node>, Node) {
        let mut near = snapshot(&self.tmp.0, &SNAP);
        near.retain(|k, _| k != "layer" && !k.starts_with("layer/"));
        (
            near,
            snapshot(&self.outside.0, &SNAP),
            node(&self.outside.0, &SNAP),
        )
    }

    fn unpack(&self, tar: &[u8]) -> anyhow::Result<strata::image::layer::UnpackStats> {
        let opts = UnpackOpts {
            lowers: vec![self.lower.clone()],
            gate: None,
        };
        unpack(tar, &self.layer, &opts)
    }

    /// Unpacking `tar` must fail naming `entry`, with `why` in the message, and change
    /// nothing outside the layer dir.
    pub fn refuse(&self, tar: &[u8], entry: &str, why: &str) {
        let before = self.world();
        let passwd = fs::metadata("/etc/passwd")
            .map(|m| (m.nlink(), m.mtime()))
            .ok();
        let err = match self.unpack(tar) {
            Ok(s) => panic!("unpacked a tar that should fail on {entry:?}: {s:?}"),
            Err(e) => format!("{e:#}"),
        };
        // Without the closing quote: long names are shown cut.
        let named = format!("layer entry {entry:?}");
        let named = &named[..named.len() - 1];
        assert!(err.contains(named), "error does not name {entry:?}: {err}");
        assert!(err.contains(why), "error does not say {why:?}: {err}");
        self.unchanged(before, passwd);
    }

    /// Unpacking `tar` may succeed, but must change nothing outside the layer dir.
    pub fn harmless(&self, tar: &[u8]) {
        let before = self.world();
        let passwd = fs::metadata("/etc/passwd")
            .map(|m| (m.nlink(), m.mtime()))
            .ok();
        let _ = self.unpack(tar);
        self.unchanged(before, passwd);
    }

    fn unchanged(
        &self,
        before: (BTreeMap<String, Node>, BTreeMap<String, Node>, Node),
        passwd: Option<(u64, i64)>,
    ) {
        let after = self.world();
        assert_same(&before.0, &after.0, "next to the layer dir");
        assert_same(&before.1, &after.1, "in the outside dir");
        assert_eq!(before.2, after.2, "the outside dir itself");
        assert_eq!(
            passwd,
            fs::metadata("/etc/passwd")
                .map(|m| (m.nlink(), m.mtime()))
                .ok()
        );
    }
}

pub fn dotdot() {
    let e = Env::new();
    e.refuse(
        &RawTar::default().file("../escape", b"x").end(),
        "../escape",
        "leaves the layer",
    );
}

pub fn dotdot_nested() {
    let e = Env::new();
    let t = RawTar::default()
        .dir("a/")
        .file("a/../../escape", b"x")
        .end();
    e.refuse(&t, "a/../../escape", "leaves the layer");
}

pub fn absolute() {
    let e = Env::new();
    e.refuse(
        &RawTar::default().file("/abs/path", b"x").end(),
        "/abs/path",
        "absolute",
    );
}

pub fn abs_symlink_parent() {
    let e = Env::new();
    let t = RawTar::default()
        .symlink("a", &e.out())
        .file("a/file", b"x")
        .end();
    e.refuse(&t, "a/file", "symlink");
}

pub fn dotdot_symlink_parent() {
    let e = Env::new();
    let t = RawTar::default().symlink("a", "..").file("a/x", b"x").end();
    e.refuse(&t, "a/x", "symlink");
}

pub fn dot_symlink_chain() {
    let e = Env::new();
    let t = RawTar::default()
        .symlink("a", ".")
        .file("a/a/a/x", b"x")
        .end();
    e.refuse(&t, "a/a/a/x", "symlink");
    let e = Env::new();
    let t = RawTar::default()
        .symlink("a", ".")
        .symlink("b", "a/a/a")
        .file("b/x", b"x")
        .end();
    e.refuse(&t, "b/x", "symlink");
}

pub fn hardlink_dotdot() {
    let e = Env::new();
    e.refuse(
        &RawTar::default().hardlink("x", "../sentinel").end(),
        "x",
        "leaves the layer",
    );
}

pub fn hardlink_abs() {
    let e = Env::new();
    e.refuse(
        &RawTar::default().hardlink("x", "/etc/passwd").end(),
        "x",
        "absolute",
    );
}

pub fn hardlink_symlink_parent() {
    let e = Env::new();
    let t = RawTar::default()
        .symlink("l", &e.out())
        .hardlink("x", "l/sentinel")
        .end();
    e.refuse(&t, "x", "symlink");
    // The same through a symlink in the lower layer.
    let e = Env::new();
    ln_s(&e.out(), &e.lower.join("l"));
    e.refuse(
        &RawTar::default().hardlink("x", "l/sentinel").end(),
        "x",
        "symlink",
    );
}

pub fn hardlink_dir() {
    let e = Env::new();
    e.refuse(
        &RawTar::default().dir("d/").hardlink("x", "d").end(),
        "x",
        "directory",
    );
    let e = Env::new();
    mkdir(&e.lower.join("ld"), 0o755);
    e.refuse(
        &RawTar::default().hardlink("x", "ld").end(),
        "x",
        "directory",
    );
}

pub fn hardlink_missing() {
    let e = Env::new();
    e.refuse(
        &RawTar::default().hardlink("x", "nope").end(),
        "x",
        "does not exist",
    );
}

pub fn degenerate_whiteouts() {
    for name in [".wh.", ".wh..", ".wh...", "d/.wh.."] {
        let e = Env::new();
        e.refuse(
            &RawTar::default().dir("d/").file(name, b"").end(),
            name,
            "degenerate",
        );
    }
}

pub fn whiteout_symlink() {
    let e = Env::new();
    write(&e.lower.join("x"), b"lower", 0o644);
    e.refuse(
        &RawTar::default().symlink(".wh.x", "y").end(),
        ".wh.x",
        "regular file",
    );
}

pub fn forged_overlay_xattr() {
    let e = Env::new();
    let t = RawTar::default()
        .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("d/")
        .end();
    e.refuse(&t, "d/", "forged overlay metadata");
    let e = Env::new();
    let t = RawTar::default()
        .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .file("f", b"x")
        .end();
    e.refuse(&t, "f", "trusted.overlay.redirect");
}

pub fn lower_symlink_parent() {
    let e = Env::new();
    ln_s(&e.out(), &e.lower.join("a"));
    e.refuse(
        &RawTar::default().file("a/file", b"x").end(),
        "a/file",
        "symlink in a lower layer",
    );
}

pub fn lower_file_parent() {
    let e = Env::new();
    write(&e.lower.join("f"), b"lower", 0o644);
    e.refuse(
        &RawTar::default().file("f/x", b"x").end(),
        "f/x",
        "not a directory in a lower layer",
    );
}

pub fn long_name() {
    let e = Env::new();
    let name = "a/".repeat(2100) + "f";
    let t = RawTar::default()
        .pax(&[("path", name.as_bytes())])
        .file("f", b"x")
        .end();
    e.refuse(&t, &name[..100], "name of 4201 bytes");
}

pub fn big_pax() {
    let e = Env::new();
    let t = RawTar::default()
        .pax(&[("comment", &vec![b'a'; 2 << 20])])
        .file("f", b"x")
        .end();
    e.refuse(&t, "PaxHeaders.0/x", "(limit 1048576)");
}

pub fn sparse() {
    let e = Env::new();
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()[..6].copy_from_slice(b"sparse");
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    e.refuse(
        &RawTar::default().raw(*h.as_bytes()).end(),
        "sparse",
        "sparse",
    );
    let e = Env::new();
    let t = RawTar::default()
        .pax(&[("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0")])
        .file("s", b"")
        .end();
    e.refuse(&t, "PaxHeaders.0/x", "sparse");
}

/// TARmageddon (CVE-2025-62518): the PAX size says 1024, the ustar size 0, and the 1024
/// bytes hold a header a ustar-size reader would see as the next entry.
pub fn pax_size_mismatch() {
    let e = Env::new();
    let hidden = RawTar::default().file("smuggled", b"evil").0;
    assert_eq!(hidden.len(), 1024);
    let mut t = RawTar::default().pax(&[("size", b"1024")]);
    t.0.extend_from_slice(&raw_header(b"a", b'0', 0, b""));
    let t = t.data(&hidden).end();
    // The `tar` crate takes the PAX size and reads on: it would not have refused this.
    let names: Vec<String> = tar::Archive::new(&t[..])
        .entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect();
    assert_eq!(names, ["a"]);
    e.refuse(&t, "a", "PAX size 1024 disagrees with the header size 0");
}

pub fn nul_name() {
    let e = Env::new();
    let t = RawTar::default()
        .pax(&[("path", b"a\0b")])
        .file("f", b"x")
        .end();
    e.refuse(&t, "a\0b", "NUL");
}

pub fn header_only_with_data() {
    let e = Env::new();
    let hidden = RawTar::default().file("../smuggled", b"").0;
    let t = RawTar::default().entry("l", b'2', &hidden, "target").end();
    e.refuse(&t, "l", "bytes of data");
}

pub fn trailing_garbage() {
    let e = Env::new();
    let mut t = RawTar::default().file("f", b"x").end();
    t.extend_from_slice(&RawTar::default().file("../after-end", b"x").end());
    let err = format!("{:#}", e.unpack(&t).unwrap_err());
    assert!(
        err.contains("data after the end-of-archive marker"),
        "{err}"
    );
}

/// CVE-2026-33056: a symlink, then a directory entry of the same name, must not chmod the
/// symlink's target.
pub fn symlink_then_dir() {
    let e = Env::new();
    let t = RawTar::default()
        .symlink("x", &e.out())
        .raw(raw_header(b"x/", b'5', 0, b""))
        .end();
    e.harmless(&t);
    assert!(fs::symlink_metadata(e.layer.join("x")).unwrap().is_dir());
}

pub fn duplicate_pax_path() {
    let e = Env::new();
    let t = RawTar::default()
        .pax(&[("path", b"innocent"), ("path", b"../evil")])
        .file("f", b"x")
        .end();
    e.refuse(&t, "PaxHeaders.0/x", "duplicate PAX record");
}

pub fn gnu_long_name_dotdot() {
    let e = Env::new();
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(14);
    h.set_cksum();
    let t = RawTar::default()
        .raw(*h.as_bytes())
        .data(b"../gnu-escape\0")
        .file("f", b"x")
        .end();
    e.refuse(&t, "../gnu-escape", "leaves the layer");
}

pub fn global_pax_path() {
    let e = Env::new();
    let t = RawTar::default()
        .entry("pax_global_header", b'g', b"16 path=../evil\n", "")
        .file("f", b"x")
        .end();
    e.refuse(&t, "pax_global_header", "global PAX record \"path\"");
}

/// A whiteout below this layer's own symlink is redundant (the symlink hides the lower
/// entry): dropped, never made through the symlink.
pub fn whiteout_under_symlink() {
    let e = Env::new();
    let t = RawTar::default()
        .symlink("a", &e.out())
        .file("a/.wh.sentinel", b"")
        .end();
    e.harmless(&t);
    assert!(e.outside.path("sentinel").exists());
}

pub fn opaque_under_symlink() {
    let e = Env::new();
    let t = RawTar::default()
        .symlink("a", &e.out())
        .file("a/.wh..wh..opq", b"")
        .end();
    e.refuse(&t, "a/.wh..wh..opq", "symlink");
}

pub fn empty_name() {
    let e = Env::new();
    e.refuse(&RawTar::default().file("", b"x").end(), "", "empty name");
}

pub fn too_many_xattrs() {
    let e = Env::new();
    let keys: Vec<String> = (0..129)
        .map(|i| format!("SCHILY.xattr.user.x{i}"))
        .collect();
    let recs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
    let t = RawTar::default().pax(&recs).file("f", b"x").end();
    e.refuse(&t, "PaxHeaders.0/x", "more than 128 xattrs");
}

pub fn big_xattr() {
    let e = Env::new();
    let t = RawTar::default()
        .pax(&[("SCHILY.xattr.user.big", &vec![b'v'; 65537])])
        .file("f", b"x")
        .end();
    e.refuse(&t, "PaxHeaders.0/x", "value over 65536 bytes");
}
