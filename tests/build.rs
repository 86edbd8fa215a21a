//! `strata-image build` against a real store and the real runtime: every instruction,
//! multi-stage builds and --target, the cache (hits run no container, a changed file
//! rebuilds from its step, --no-cache), and errors (and SIGINT) that leave no tag, no
//! container, no mount and no temp files.

mod common;

use common::store::{assert_fails, StoreEnv as Env, STRATA};
use common::{run_cmd, Output, TIMEOUT};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A build context and a `strata` wrapper that logs each call (to count containers).
struct Ctx {
    e: Env,
    dir: PathBuf,
    log: PathBuf,
    wrapper: PathBuf,
}

impl Ctx {
    fn new(tag: &str) -> Ctx {
        let e = Env::new(tag);
        let dir = e.dir.join("ctx");
        fs::create_dir_all(&dir).unwrap();
        let log = e.dir.join("strata.log");
        let wrapper = e.dir.join("strata-wrapper");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >> {}\nexec {STRATA} \"$@\"\n",
                log.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        e.busybox("busybox");
        Ctx {
            e,
            dir,
            log,
            wrapper,
        }
    }

    fn file(&self, rel: &str, body: &str) {
        let p = self.dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.e.cmd();
        c.env("STRATA", &self.wrapper).arg("build").args(args);
        c.arg(&self.dir);
        c
    }

    fn build(&self, args: &[&str]) -> Output {
        run_cmd(&mut self.cmd(args), TIMEOUT)
    }

    /// `strata run` calls so far (one per RUN step that was not cached).
    fn runs(&self) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" run "))
            .count()
    }

    fn inspect(&self, image: &str) -> Value {
        let out = self.e.si(&["inspect", "--type", "image", image]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        v[0].clone()
    }

    /// Nothing of a build left: no container in the runtime root, no overlay of the
    /// store mounted, an empty tmp/.
    #[track_caller]
    fn assert_clean(&self) {
        let rt = self.e.dir.join("rt");
        let left: Vec<_> = fs::read_dir(&rt)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name())
                    .filter(|n| !n.to_string_lossy().starts_with('@'))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "containers left: {left:?}");
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let store = self.e.store();
        assert!(
            !mi.contains(store.to_str().unwrap()),
            "a mount of the store is left: {mi}"
        );
        assert_eq!(self.e.count("tmp"), 0, "temp files left");
        assert_eq!(self.e.count("containers"), 0, "store containers left");
    }
}

fn history(c: &Ctx, image: &str) -> Vec<String> {
    let out = c.e.si(&["history", "--format", "json", image]);
    out.ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["CreatedBy"]
                .as_str()
                .or(r["created_by"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

const EVERYTHING: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS base
ONBUILD RUN echo triggered > /onbuild.txt

FROM base
ARG V=1
ARG EMPTY
ENV GREETING=hello DIR=/srv
LABEL org.example.v=$V maintainer="me"
WORKDIR $DIR
WORKDIR app
COPY a.txt ./
COPY --chown=1000:1001 --chmod=0750 bin/ /opt/bin/
COPY sub/*.txt /globbed/
ADD files.tar /unpacked/
ADD plain.txt /plain-added.txt
COPY <<EOF /etc/heredoc.conf
greeting=$GREETING
EOF
RUN echo "v=$V greeting=$GREETING pwd=$(pwd) empty=[$EMPTY]" > /run.txt
RUN ["/bin/sh", "-c", "echo exec-form > /exec.txt"]
RUN <<EOF
echo from-heredoc > /heredoc-run.txt
EOF
SHELL ["/bin/sh", "-ec"]
RUN rm /etc/motd 2>/dev/null || true; echo shelled > /shell.txt
USER 1000:1001
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=3 CMD wget -q localhost || exit 1
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /run.txt"]
"#;

#[test]
fn every_instruction_does_what_docker_does() {
    let c = Ctx::new("every");
    c.file("Dockerfile", EVERYTHING);
    c.file("a.txt", "A\n");
    c.file("bin/tool", "#!/bin/sh\necho tool\n");
    c.file("sub/x.txt", "x\n");
    c.file("sub/y.txt", "y\n");
    c.file("sub/z.md", "z\n");
    c.file("plain.txt", "plain\n");
    c.file("tree/inner/f", "in tar\n");
    let out = run_cmd(
        Command::new("tar")
            .arg("-C")
            .arg(c.dir.join("tree"))
            .arg("-cf")
            .arg(c.dir.join("files.tar"))
            .arg("inner"),
        TIMEOUT,
    );
    out.ok();
    let out = c.build(&["-t", "every:1", "--build-arg", "V=7"]);
    out.ok();
    let id = out.stdout.trim().to_string();
    assert!(id.starts_with("sha256:"), "{out:#?}");
    // The image runs, as USER 1000, its ENTRYPOINT + CMD.
    assert_eq!(
        c.e.run("every:1", &[]).trim(),
        "v=7 greeting=hello pwd=/srv/app empty=[]"
    );
    let show = c.e.run(
        "every:1",
        &[
            "id -u; cat /srv/app/a.txt /globbed/x.txt /globbed/y.txt /unpacked/inner/f \
           /plain-added.txt /etc/heredoc.conf /exec.txt /heredoc-run.txt /shell.txt \
           /onbuild.txt; stat -c '%u:%g %a' /opt/bin/tool; ls /globbed; /opt/bin/tool",
        ],
    );
    assert_eq!(
        show,
        "1000\nA\nx\ny\nin tar\nplain\ngreeting=hello\nexec-form\nfrom-heredoc\nshelled\n\
         triggered\n1000:1001 750\nx.txt\ny.txt\ntool\n"
    );
    let cfg = &c.inspect("every:1")["Config"];
    assert_eq!(cfg["User"], "1000:1001");
    assert_eq!(cfg["WorkingDir"], "/srv/app");
    assert_eq!(cfg["Labels"]["org.example.v"], "7");
    assert_eq!(cfg["Labels"]["maintainer"], "me");
    assert_eq!(cfg["ExposedPorts"]["8080/tcp"], serde_json::json!({}));
    assert_eq!(cfg["ExposedPorts"]["53/udp"], serde_json::json!({}));
    assert_eq!(cfg["Volumes"]["/data"], serde_json::json!({}));
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["cat /run.txt"]));
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "wget -q localhost || exit 1"])
    );
    assert_eq!(cfg["Healthcheck"]["Interval"], 30_000_000_000i64);
    assert_eq!(cfg["OnBuild"], serde_json::json!(["RUN echo child"]));
    assert!(cfg["Env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("GREETING=hello")));
    // History reads as docker's, BuildKit's texts.
    let h = history(&c, "every:1").join("\n");
    for want in [
        "ENV GREETING=hello DIR=/srv",
        "WORKDIR /srv/app",
        "COPY a.txt ./ # buildkit",
        "RUN |2 V=7 EMPTY= /bin/sh -c echo",
        "USER 1000:1001",
        "EXPOSE [8080/tcp 53/udp]",
        "HEALTHCHECK {Test:[CMD-SHELL wget -q localhost || exit 1] Interval:30s Timeout:0s \
         StartPeriod:0s StartInterval:0s Retries:3}",
        "VOLUME [/data]",
        r#"CMD ["cat /run.txt"]"#,
        "ARG V=1",
    ] {
        assert!(h.contains(want), "history lacks {want:?}:\n{h}");
    }
    c.assert_clean();
}

const STAGES: &str = "FROM busybox AS broken
RUN exit 3

FROM busybox AS builder
RUN echo compiled > /artifact

FROM busybox AS unused
RUN exit 4

FROM scratch AS final
COPY --from=builder /artifact /artifact
COPY --from=builder /bin/busybox /bin/busybox

FROM builder AS other
RUN echo other
";

#[test]
fn multi_stage_builds_only_what_the_target_needs() {
    let c = Ctx::new("stages");
    c.file("Dockerfile", STAGES);
    let out = c.build(&["-t", "final:1", "--target", "final"]);
    out.ok();
    // The two failing stages were not built: only builder's RUN ran.
    assert_eq!(c.runs(), 1, "{out:#?}");
    let out =
        c.e.si(&["run", "--rm", "final:1", "/bin/busybox", "cat", "/artifact"]);
    out.ok();
    assert_eq!(out.stdout, "compiled\n");
    // FROM a stage continues from it (builder's step is a cache hit).
    c.build(&["-t", "other:1", "--target", "other"]).ok();
    assert_eq!(c.runs(), 2);
    assert_eq!(c.e.run("other:1", &["cat", "/artifact"]), "compiled\n");
    assert_fails(
        &c.build(&["-q", "--target", "nope"]),
        &["target stage \"nope\" could not be found"],
    );
    c.assert_clean();
}

const CACHED: &str = "FROM busybox
RUN echo one > /one
COPY f.txt /f.txt
RUN cat /f.txt > /copy.txt
ENV X=1
";

#[test]
fn the_cache_skips_unchanged_steps_and_rebuilds_from_a_changed_file() {
    let c = Ctx::new("cache");
    c.file("Dockerfile", CACHED);
    c.file("f.txt", "v1\n");
    let first = c.build(&["-t", "c:1"]);
    first.ok();
    assert_eq!(c.runs(), 2);
    // Unchanged: no container, the same image, fast.
    let t = Instant::now();
    let again = c.build(&["-t", "c:1"]);
    let took = t.elapsed();
    again.ok();
    assert_eq!(c.runs(), 2, "a cached rebuild ran a container: {again:#?}");
    assert_eq!(again.stdout, first.stdout);
    assert!(
        took < Duration::from_secs(1),
        "cached rebuild took {took:?}"
    );
    // A file's time alone changes nothing.
    let f = fs::File::options()
        .write(true)
        .open(c.dir.join("f.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    c.build(&["-t", "c:1"]).ok();
    assert_eq!(c.runs(), 2);
    // Its content: rebuilt from that COPY on (the first RUN stays cached).
    c.file("f.txt", "v2\n");
    let out = c.build(&["-t", "c:2"]);
    out.ok();
    assert_eq!(c.runs(), 3, "{out:#?}");
    assert!(out.stderr.contains("Using cache"), "{out:#?}");
    assert_eq!(c.e.run("c:2", &["cat", "/copy.txt"]), "v2\n");
    assert_eq!(c.e.run("c:1", &["cat", "/copy.txt"]), "v1\n");
    // --no-cache runs everything again.
    c.build(&["-t", "c:3", "--no-cache"]).ok();
    assert_eq!(c.runs(), 5);
    // gc keeps the cache's layers: still all hits after it.
    c.e.si(&["gc"]).ok();
    c.build(&["-t", "c:2"]).ok();
    assert_eq!(c.runs(), 5);
    c.assert_clean();
}

#[test]
fn gc_drops_cache_entries_whose_layers_are_gone() {
    let c = Ctx::new("cachegc");
    c.file("Dockerfile", "FROM busybox\nRUN echo x > /x\n");
    c.build(&["-t", "g:1"]).ok();
    let cfg = c.inspect("g:1");
    let layers = cfg["RootFS"]["Layers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!layers.is_empty(), "{cfg:#}");
    // Untag, then lose the RUN layer's blob: gc must prune the entry naming it.
    c.e.si(&["rmi", "g:1"]).ok();
    let manifest_layers: Vec<PathBuf> = fs::read_dir(c.e.store().join("build-cache"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let v: Value = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
            let d = v["layers"].as_array()?.last()?["digest"]
                .as_str()?
                .to_string();
            Some(c.e.store().join("blobs/sha256").join(&d[7..]))
        })
        .collect();
    let before = c.e.count("build-cache");
    for p in &manifest_layers {
        let _ = fs::remove_file(p);
    }
    c.e.si(&["gc"]).ok();
    assert!(c.e.count("build-cache") < before);
    // The next build runs the step again and works.
    c.build(&["-t", "g:2"]).ok();
    assert_eq!(c.runs(), 2);
    assert_eq!(c.e.run("g:2", &["cat", "/x"]), "x\n");
}

#[test]
fn errors_are_clear_and_leave_nothing() {
    let c = Ctx::new("errors");
    c.file("inside.txt", "x\n");
    c.file("a.txt", "a\n");
    for (df, needles) in [
        (
            "FROM busybox\nRUN echo first; echo last-line >&2; exit 3\n",
            &["Dockerfile:2:1", "exited with code 3", "last-line"][..],
        ),
        (
            "FROM busybox\nCOPY missing.txt /\n",
            &[
                "Dockerfile:2:1",
                "missing.txt: not found in the build context",
            ][..],
        ),
        (
            "FROM busybox\nCOPY ../outside.txt /\n",
            &["../outside.txt: outside the build context"][..],
        ),
        (
            "FROM busybox\nCOPY --from=nostage /x /\n",
            &["--from=nostage", "no stage and no image"][..],
        ),
        (
            "FROM busybox\nFROBNICATE x\n",
            &["Dockerfile:2:1", "FROBNICATE"][..],
        ),
        (
            "FROM busybox\nRUN cat <<EOF\nno end\n",
            &["Dockerfile:2:"][..],
        ),
        ("RUN true\n", &["Dockerfile:1:1"][..]),
        (
            "FROM busybox\nCOPY inside.txt a.txt /dest\n",
            &["must be a directory and end with a /"][..],
        ),
    ] {
        c.file("Dockerfile", df);
        let out = c.build(&["-q", "-t", "bad:1"]);
        assert!(out.code != 0, "{df}: {out:#?}");
        assert_fails(&out, needles);
        let images = c.e.si(&["images"]);
        assert!(!images.stdout.contains("bad"), "{df}: tagged: {images:#?}");
        c.assert_clean();
    }
    // A file outside the context reached through a symlink stays outside.
    fs::write(c.e.dir.join("secret"), "secret\n").unwrap();
    std::os::unix::fs::symlink("../secret", c.dir.join("link")).unwrap();
    c.file("Dockerfile", "FROM busybox\nCOPY link /got\n");
    assert_fails(&c.build(&["-q"]), &["link: not found in the build context"]);
    c.assert_clean();
}

#[test]
fn copy_never_writes_through_an_image_symlink_out_of_the_image() {
    let c = Ctx::new("symlink");
    let host = c.e.dir.join("host-target");
    c.file(
        "Dockerfile",
        &format!(
            "FROM busybox\nRUN ln -s ../../../../../../../..{} /escape && ln -s / /rootlink\n\
             COPY f.txt /escape/f.txt\nCOPY f.txt /rootlink/etc/g.txt\n",
            host.display()
        ),
    );
    c.file("f.txt", "data\n");
    c.build(&["-t", "s:1"]).ok();
    assert!(
        !host.exists(),
        "COPY wrote to the host through an image symlink"
    );
    let inside = format!("{}/f.txt", host.display());
    assert_eq!(
        c.e.run("s:1", &["cat", &inside, "/etc/g.txt"]),
        "data\ndata\n"
    );
    c.assert_clean();
}

#[test]
fn dockerignore_is_honoured() {
    let c = Ctx::new("ignore");
    c.file(".dockerignore", "*.log\nsecrets/\n!keep.log\n");
    c.file("a.log", "no\n");
    c.file("keep.log", "yes\n");
    c.file("secrets/key", "no\n");
    c.file("ok/file", "ok\n");
    c.file("Dockerfile", "FROM busybox\nCOPY . /ctx/\n");
    c.build(&["-t", "i:1"]).ok();
    let ls = c.e.run("i:1", &["find", "/ctx", "-type", "f"]);
    let mut files: Vec<&str> = ls.lines().collect();
    files.sort();
    assert_eq!(
        files,
        [
            "/ctx/.dockerignore",
            "/ctx/Dockerfile",
            "/ctx/keep.log",
            "/ctx/ok/file"
        ]
    );
    // An ignored file does not bust the cache; a taken one does.
    c.file("a.log", "changed\n");
    let out = c.build(&["-t", "i:1"]);
    out.ok();
    assert!(out.stderr.contains("Using cache"), "{out:#?}");
    c.file("ok/file", "changed\n");
    let out = c.build(&["-t", "i:2"]);
    out.ok();
    assert!(!out.stderr.contains("Using cache"), "{out:#?}");
    assert_eq!(c.e.run("i:2", &["cat", "/ctx/ok/file"]), "changed\n");
}

#[test]
fn sigint_during_run_leaves_nothing() {
    let c = Ctx::new("sigint");
    c.file("Dockerfile", "FROM busybox\nRUN echo started; sleep 60\n");
    let mut cmd = c.cmd(&["-t", "int:1"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let started = common::wait_until(Duration::from_secs(20), || c.runs() >= 1);
    assert!(started);
    // Let the container come up, then interrupt the build.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait().unwrap();
    assert!(!st.success());
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let images = c.e.si(&["images"]);
    assert!(!images.stdout.contains("int"), "{images:#?}");
    c.assert_clean();
}

#[test]
fn network_is_none_unless_host_is_asked() {
    let c = Ctx::new("network");
    c.file(
        "Dockerfile",
        "FROM busybox\nRUN ls /sys/class/net | sort | tr '\\n' ' ' > /net.txt\n",
    );
    c.build(&["-t", "n:1"]).ok();
    assert_eq!(c.e.run("n:1", &["cat", "/net.txt"]).trim(), "lo");
    c.build(&["-t", "n:2", "--network", "host", "--no-cache"])
        .ok();
    let host = c.e.run("n:2", &["cat", "/net.txt"]);
    let ours: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(host.split_whitespace().count(), ours.len(), "{host}");
}

#[test]
fn copy_follows_image_symlinks_to_where_they_lead_and_keeps_them() {
    let c = Ctx::new("resolved");
    c.file(
        "Dockerfile",
        "FROM busybox\nRUN mkdir -p /real/sub && ln -s /real /link && ln -s sub /real/rel\n\
         COPY d/ /link/rel/d/\nCOPY f.txt /link/\nCOPY --chmod=0600 f.txt /link/rel/g.txt\n\
         COPY <<EOF /link/doc.txt\nheredoc\nEOF\nCOPY alias.txt /aliased.txt\n",
    );
    c.file("d/a.txt", "a\n");
    c.file("d/e/b.txt", "b\n");
    c.file("f.txt", "f\n");
    // A source named through a context symlink is its target; one inside a copied dir
    // stays a symlink.
    std::os::unix::fs::symlink("f.txt", c.dir.join("alias.txt")).unwrap();
    std::os::unix::fs::symlink("a.txt", c.dir.join("d/ln")).unwrap();
    c.build(&["-t", "r:1"]).ok();
    assert_eq!(
        c.e.run(
            "r:1",
            &["sh", "-c", "cat /aliased.txt; readlink /real/sub/d/ln"]
        ),
        "f\na.txt\n"
    );
    // The layers name the paths the links lead to: the links themselves are untouched.
    assert_eq!(
        c.e.run(
            "r:1",
            &[
                "sh",
                "-c",
                "readlink /link; readlink /real/rel; cat /real/sub/d/a.txt /real/sub/d/e/b.txt \
                 /real/f.txt /real/doc.txt; stat -c '%a %u' /real/sub/g.txt /real/sub/d/e"
            ]
        ),
        "/real\nsub\na\nb\nf\nheredoc\n600 0\n755 0\n"
    );
    c.assert_clean();
}

#[test]
fn a_content_change_that_keeps_size_and_mtime_still_rebuilds() {
    let c = Ctx::new("sums");
    c.file("Dockerfile", "FROM busybox\nCOPY f.txt /f.txt\n");
    c.file("f.txt", "v1\n");
    let f = c.dir.join("f.txt");
    let mtime = fs::metadata(&f).unwrap().modified().unwrap();
    // Old enough for its checksum to be remembered by inode and times.
    std::thread::sleep(Duration::from_millis(1100));
    c.build(&["-t", "m:1"]).ok();
    assert!(c.e.store().join("build-cache/sums").is_file());
    let again = c.build(&["-t", "m:1"]);
    assert!(again.stderr.contains("Using cache"), "{again:#?}");
    // Same size, same mtime, other content: only the ctime tells.
    fs::write(&f, "v2\n").unwrap();
    fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let out = c.build(&["-t", "m:2"]);
    out.ok();
    assert!(!out.stderr.contains("Using cache"), "{out:#?}");
    assert_eq!(c.e.run("m:2", &["cat", "/f.txt"]), "v2\n");
    c.assert_clean();
}

#[test]
fn a_heredoc_with_a_shebang_runs_with_its_interpreter() {
    let c = Ctx::new("shebang");
    c.file(
        "Dockerfile",
        "FROM busybox\nRUN <<EOF\n#!/usr/bin/awk -f\nBEGIN { print \"awk ran\" > \"/awk.txt\" }\nEOF\n",
    );
    c.build(&["-t", "sb:1"]).ok();
    assert_eq!(c.e.run("sb:1", &["cat", "/awk.txt"]), "awk ran\n");
    let h = history(&c, "sb:1");
    assert!(
        h.iter()
            .any(|t| t == "RUN /bin/sh -c /dev/pipes/EOF # buildkit"),
        "{h:#?}"
    );
    // The script's text is in the key: another script runs again.
    c.file(
        "Dockerfile",
        "FROM busybox\nRUN <<EOF\n#!/usr/bin/awk -f\nBEGIN { print \"again\" > \"/awk.txt\" }\nEOF\n",
    );
    c.build(&["-t", "sb:2"]).ok();
    assert_eq!(c.e.run("sb:2", &["cat", "/awk.txt"]), "again\n");
    c.assert_clean();
}

#[test]
fn builder_prune_drops_the_cache_and_what_only_it_kept() {
    let c = Ctx::new("prune");
    c.file(
        "Dockerfile",
        "FROM busybox\nRUN echo base > /base\nCOPY f.txt /f.txt\nRUN cat /f.txt > /g.txt\n",
    );
    c.file("f.txt", "v1\n");
    c.build(&["-t", "p:1"]).ok();
    c.file("f.txt", "v2\n");
    c.build(&["-t", "p:2"]).ok();
    assert_eq!(c.runs(), 3);
    c.e.si(&["rmi", "p:1"]).ok();
    let blobs = c.e.count("blobs/sha256");
    // Without -a: only what no image uses (v1's steps) goes, with its layers.
    let out = c.e.si(&["builder", "prune"]);
    out.ok();
    assert!(
        out.stdout.starts_with("Deleted build cache objects:"),
        "{out:#?}"
    );
    assert!(out.stdout.contains("Total reclaimed space:"), "{out:#?}");
    assert!(c.e.count("blobs/sha256") < blobs, "{out:#?}");
    c.build(&["-t", "p:2"]).ok();
    assert_eq!(c.runs(), 3, "p:2's steps must still be cached");
    c.file("f.txt", "v1\n");
    c.build(&["-t", "p:1"]).ok();
    assert_eq!(c.runs(), 4, "v1's last RUN must run again");
    // -a: everything, the context checksums too; the images keep their layers.
    c.e.si(&["builder", "prune", "-a", "-f"]).ok();
    assert_eq!(c.e.count("build-cache"), 0);
    assert_eq!(c.e.run("p:2", &["cat", "/g.txt"]), "v2\n");
    c.build(&["-t", "p:1"]).ok();
    assert_eq!(c.runs(), 6);
    c.assert_clean();
}
