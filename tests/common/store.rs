//! A private image store and strata state root per test, for the strata-image tests.

use super::{run_cmd, test_rootfs, Output, TIMEOUT};
use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const SI: &str = env!("CARGO_BIN_EXE_strata-image");
pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

static N: AtomicUsize = AtomicUsize::new(0);

/// A number unique in this test binary (for temp names).
pub fn unique() -> usize {
    N.fetch_add(1, Ordering::Relaxed)
}

/// A private store and runtime root under a temp dir, removed (containers first) when
/// dropped.
pub struct StoreEnv {
    pub dir: PathBuf,
}

impl StoreEnv {
    pub fn new(tag: &str) -> StoreEnv {
        let dir = std::env::temp_dir().join(format!(
            "strata-image-test-{tag}-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        StoreEnv { dir }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// strata-image with this store, this state root and the strata under test.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(SI);
        c.arg("--root")
            .arg(self.store())
            .arg("--runtime-root")
            .arg(self.dir.join("rt"))
            .env("STRATA", STRATA)
            .env_remove("SOURCE_DATE_EPOCH");
        c
    }

    pub fn si(&self, args: &[&str]) -> Output {
        run_cmd(self.cmd().args(args), TIMEOUT)
    }

    /// Import the busybox test rootfs as `name` (CMD sh); its image ID.
    pub fn busybox(&self, name: &str) -> String {
        let out = self.si(&[
            "import",
            "-q",
            "-c",
            "CMD [\"sh\"]",
            test_rootfs().to_str().unwrap(),
            name,
        ]);
        out.ok();
        out.stdout.trim().to_string()
    }

    /// `run --rm IMAGE CMD…`'s stdout (it must succeed).
    pub fn run(&self, image: &str, cmd: &[&str]) -> String {
        let mut args = vec!["run", "--rm", image];
        args.extend_from_slice(cmd);
        let out = self.si(&args);
        out.ok();
        out.stdout
    }

    pub fn index(&self) -> Value {
        serde_json::from_slice(&fs::read(self.store().join("index.json")).unwrap()).unwrap()
    }

    /// Entries in a dir of the store (`layers`, `blobs/sha256`, `tmp`, …).
    pub fn count(&self, sub: &str) -> usize {
        fs::read_dir(self.store().join(sub)).map_or(0, |d| d.count())
    }
}

impl Drop for StoreEnv {
    fn drop(&mut self) {
        let out = self.si(&["ps", "-a", "-q"]);
        for id in out.lines() {
            let _ = self.si(&["rm", "-f", id]);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A strata-image failure: non-zero, one `strata-image: ` message naming every needle.
#[track_caller]
pub fn assert_fails(out: &Output, needles: &[&str]) {
    assert_ne!(out.code, 0, "{}: expected a failure: {out:#?}", out.what);
    assert!(out.stderr.starts_with("strata-image: "), "{out:#?}");
    for n in needles {
        assert!(out.stderr.contains(n), "error lacks {n:?}: {out:#?}");
    }
}
