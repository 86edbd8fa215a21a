//! The test side of tests/load.rs: a private store per test (`Env`), the busybox base
//! layer, and the check every hostile archive must pass (refused, naming the part, with
//! the store and everything around it as they were).

use super::*;
use crate::common::{test_rootfs, Output, Running, TIMEOUT};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub use crate::common::store::{unique, StoreEnv as Env};

/// What tests/load.rs asks of a store beyond the shared ones.
pub trait LoadEnv {
    /// Write `members` as a tar file and `load -i` it.
    fn load(&self, members: &[Member]) -> Output;
    fn load_bytes(&self, bytes: &[u8]) -> Output;
    /// `load` with the bytes on stdin.
    fn load_stdin(&self, bytes: &[u8]) -> Output;
    /// What must not change when a load fails.
    fn snapshot(&self) -> (Vec<u8>, usize, usize, String);
    fn layer_dir(&self, chain: &str) -> PathBuf;
}

impl LoadEnv for Env {
    fn load(&self, members: &[Member]) -> Output {
        self.load_bytes(&tar(members))
    }

    fn load_bytes(&self, bytes: &[u8]) -> Output {
        let p = self.dir.join(format!("a{}.tar", unique()));
        fs::write(&p, bytes).unwrap();
        self.si(&["load", "-i", p.to_str().unwrap()])
    }

    fn load_stdin(&self, bytes: &[u8]) -> Output {
        let p = self.dir.join(format!("s{}.tar", unique()));
        fs::write(&p, bytes).unwrap();
        let mut c = self.cmd();
        c.arg("load");
        Running::spawn_stdin(&mut c, Stdio::from(fs::File::open(&p).unwrap())).wait(TIMEOUT)
    }

    fn snapshot(&self) -> (Vec<u8>, usize, usize, String) {
        let images = self.si(&["images", "-a"]);
        images.ok();
        (
            fs::read(self.store().join("index.json")).unwrap(),
            self.count("blobs/sha256"),
            self.count("layers"),
            images.stdout,
        )
    }

    fn layer_dir(&self, chain: &str) -> PathBuf {
        self.store().join("layers").join(hex(chain)).join("diff")
    }
}

#[track_caller]
pub fn assert_fails(out: &Output, needles: &[&str]) {
    assert_ne!(out.code, 0, "expected a failure: {out:#?}");
    assert!(out.stderr.starts_with("strata-image: load: "), "{out:#?}");
    for n in needles {
        assert!(out.stderr.contains(n), "error lacks {n:?}: {out:#?}");
    }
}

/// The busybox test rootfs as one plain layer tar (GNU tar, reproducible).
pub fn busybox_tar() -> &'static [u8] {
    static TAR: OnceLock<Vec<u8>> = OnceLock::new();
    TAR.get_or_init(|| {
        let out = Command::new("tar")
            .args(["--numeric-owner", "--sort=name", "--mtime=@0", "-C"])
            .arg(test_rootfs())
            .args(["-cf", "-", "."])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out.stdout
    })
}

pub fn base(c: Comp) -> Layer {
    Layer::new(busybox_tar().to_vec(), c)
}

/// A layer holding `/file` with `text` in it.
pub fn top(text: &str, c: Comp) -> Layer {
    Layer::new(layer_tar(&[("file", text.as_bytes())]), c)
}

pub fn chain(a: &str, b: &str) -> String {
    sha(format!("{a} {b}").as_bytes())
}

/// An Env holding one good image, to show that bad loads leave it as it was.
pub fn env_with_image(tag: &str) -> Env {
    let e = Env::new(tag);
    let good = Image::new(
        vec![base(Comp::Gzip), top("good\n", Comp::Gzip)],
        &["good:1"],
    );
    e.load(&oci(&[good])).ok();
    e
}

/// Every archive is refused naming `needles`; the store, and everything outside it, is
/// as it was.
#[track_caller]
pub fn refused(e: &Env, cases: Vec<(&str, Vec<u8>, Vec<String>)>) {
    let before = e.snapshot();
    for (what, bytes, needles) in cases {
        let n: Vec<&str> = needles.iter().map(String::as_str).collect();
        let out = e.load_bytes(&bytes);
        assert_ne!(out.code, 0, "{what}: loaded: {out:#?}");
        eprintln!("{what}: {}", out.stderr.trim());
        assert_fails(&out, &n);
        assert_eq!(e.snapshot(), before, "{what}: the store changed");
        assert_eq!(e.count("tmp"), 0, "{what}: temp files left");
        assert_eq!(
            escapes(&e.dir),
            Vec::<PathBuf>::new(),
            "{what}: wrote outside"
        );
    }
}

/// Files named `escape*` anywhere under `dir` (what a hostile name would have made).
pub fn escapes(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for d in rd.flatten() {
        let p = d.path();
        if d.file_name().to_string_lossy().starts_with("escape") {
            out.push(p.clone());
        }
        if d.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(escapes(&p));
        }
    }
    out
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}
