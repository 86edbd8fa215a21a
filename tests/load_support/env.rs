//! The test side of tests/load.rs: a private store per test (`Env`), the busybox base
//! layer, and the check every hostile archive must pass (refused, naming the part, with
//! the store and everything around it as they were).

use super::*;
use crate::common::{run_cmd, test_rootfs, Output, Running, TIMEOUT};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub const SI: &str = env!("CARGO_BIN_EXE_strata-image");
pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

static N: AtomicUsize = AtomicUsize::new(0);

/// A private store and runtime root, removed (containers first) when dropped.
pub struct Env {
    pub dir: PathBuf,
}

impl Env {
    pub fn new(tag: &str) -> Env {
        let dir = std::env::temp_dir().join(format!(
            "strata-load-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Env { dir }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(SI);
        c.arg("--root")
            .arg(self.store())
            .arg("--runtime-root")
            .arg(self.dir.join("rt"))
            .env("STRATA", STRATA);
        c
    }

    pub fn si(&self, args: &[&str]) -> Output {
        run_cmd(self.cmd().args(args), TIMEOUT)
    }

    /// Write `members` as a tar file and `load -i` it.
    pub fn load(&self, members: &[Member]) -> Output {
        self.load_bytes(&tar(members))
    }

    pub fn load_bytes(&self, bytes: &[u8]) -> Output {
        let p = self
            .dir
            .join(format!("a{}.tar", N.fetch_add(1, Ordering::Relaxed)));
        fs::write(&p, bytes).unwrap();
        self.si(&["load", "-i", p.to_str().unwrap()])
    }

    /// `load` with the bytes on stdin.
    pub fn load_stdin(&self, bytes: &[u8]) -> Output {
        let p = self
            .dir
            .join(format!("s{}.tar", N.fetch_add(1, Ordering::Relaxed)));
        fs::write(&p, bytes).unwrap();
        let mut c = self.cmd();
        c.arg("load");
        Running::spawn_stdin(&mut c, Stdio::from(fs::File::open(&p).unwrap())).wait(TIMEOUT)
    }

    pub fn run(&self, image: &str, cmd: &[&str]) -> String {
        let mut args = vec!["run", "--rm", image];
        args.extend_from_slice(cmd);
        let out = self.si(&args);
        out.ok();
        out.stdout
    }

    pub fn count(&self, sub: &str) -> usize {
        fs::read_dir(self.store().join(sub)).map_or(0, |d| d.count())
    }

    /// What must not change when a load fails.
    pub fn snapshot(&self) -> (Vec<u8>, usize, usize, String) {
        let images = self.si(&["images", "-a"]);
        images.ok();
        (
            fs::read(self.store().join("index.json")).unwrap(),
            self.count("blobs/sha256"),
            self.count("layers"),
            images.stdout,
        )
    }

    pub fn layer_dir(&self, chain: &str) -> PathBuf {
        self.store().join("layers").join(hex(chain)).join("diff")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let out = self.si(&["ps", "-a", "-q"]);
        for id in out.lines() {
            let _ = self.si(&["rm", "-f", id]);
        }
        let _ = fs::remove_dir_all(&self.dir);
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
