//! The throughput measurement of write_tar and unpack beside GNU tar and cp (run by hand, release build).

use super::trees::opts;
use super::*;
use std::process::Command;
use strata::image::layer::{unpack, write_tar, Source, Times, UnpackOpts, WriteOpts};

/// Time write_tar (to a sink, to a pipe, with copy_to) and unpack against GNU tar and cp -a
/// on the tree named by STRATA_LAYER_BENCH_DIR, three rounds.
pub fn bench_write_tar() {
    use std::process::Stdio;
    use std::time::Instant;
    let Ok(dir) = std::env::var("STRATA_LAYER_BENCH_DIR") else {
        eprintln!("skipped: set STRATA_LAYER_BENCH_DIR");
        return;
    };
    let dir = Path::new(&dir);
    let tree = opts(Source::Tree, Times::Keep);
    let (stats, _) = write_tar(dir, std::io::sink(), &tree, &mut |_| {}).unwrap();
    let mb = stats.file_bytes as f64 / 1e6;
    println!("tree: {} entries, {mb:.1} MB of file data", stats.entries);
    let timed = |f: &mut dyn FnMut()| {
        let t0 = Instant::now();
        f();
        let s = t0.elapsed().as_secs_f64();
        format!("{s:.2}s {:.0} MB/s", mb / s)
    };
    let shell = |cmd: String| run(Command::new("sh").arg("-c").arg(cmd));
    if let Ok(to) = std::env::var("STRATA_LAYER_BENCH_COPY_ONLY") {
        let o = WriteOpts {
            copy_to: Some(to.into()),
            ..tree.clone()
        };
        println!(
            "copy_to only: {}",
            timed(&mut || {
                write_tar(dir, Counter(0), &o, &mut |_| {}).unwrap();
            })
        );
        return;
    }
    for round in 0..3 {
        let sink = timed(&mut || {
            write_tar(dir, Counter(0), &tree, &mut |_| {}).unwrap();
        });
        // Through a pipe, as GNU tar is measured; GNU tar writes 10 KiB records, and small
        // writes let cat drain a 64 KiB pipe while the next ones are made.
        let to_cat = |chunk: usize| {
            let mut cat = Command::new("sh")
                .args(["-c", "cat > /dev/null"])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            let stdin = cat.stdin.take().unwrap();
            write_tar(dir, Chunked(stdin, chunk), &tree, &mut |_| {}).unwrap();
            assert!(cat.wait().unwrap().success());
        };
        let pipe = timed(&mut || to_cat(usize::MAX));
        let pipe16k = timed(&mut || to_cat(16 * 1024));
        let gnu = timed(&mut || {
            shell(format!(
                "tar -cf - -C '{}' . | cat > /dev/null",
                dir.display()
            ));
        });
        let t = Tmp::new("bench-copy");
        shell("sync".into());
        let copy = timed(&mut || {
            let o = WriteOpts {
                copy_to: Some(t.dir("ours")),
                ..tree.clone()
            };
            write_tar(dir, Counter(0), &o, &mut |_| {}).unwrap();
        });
        shell("sync".into());
        let cp = timed(&mut || {
            shell(format!(
                "cp -a '{}' '{}'",
                dir.display(),
                t.path("cp").display()
            ));
        });
        fs::write(
            t.path("tree.tar"),
            write_tar(dir, Vec::new(), &tree, &mut |_| {}).unwrap().1,
        )
        .unwrap();
        shell("sync".into());
        let ours_x = timed(&mut || {
            let f = fs::File::open(t.path("tree.tar")).unwrap();
            unpack(
                std::io::BufReader::with_capacity(1 << 20, f),
                &t.dir("x-ours"),
                &UnpackOpts::default(),
            )
            .unwrap();
        });
        shell("sync".into());
        let gnu_x = timed(&mut || {
            let x = t.dir("x-gnu");
            shell(format!(
                "tar --xattrs --xattrs-include='*' -xpf '{}' -C '{}'",
                t.path("tree.tar").display(),
                x.display()
            ));
        });
        println!(
            "round {round}: write_tar→sink {sink} | write_tar→pipe→cat {pipe} \
             | write_tar→16 KiB writes→pipe→cat {pipe16k} | GNU tar→pipe→cat {gnu} \
             | write_tar+copy_to {copy} | cp -a {cp} | unpack {ours_x} | GNU tar -x {gnu_x}"
        );
    }
}

/// A sink that counts.
pub struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that passes on at most `.1` bytes per write.
struct Chunked<W>(W, usize);

impl<W: std::io::Write> std::io::Write for Chunked<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(self.1);
        self.0.write(&b[..n])
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
