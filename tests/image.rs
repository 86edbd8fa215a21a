//! strata-image against a real store: names and IDs, the store's shape as an OCI layout,
//! digests checked with sha256sum, reproducible layers, bad input that leaves the store
//! as it was, kill -9 at any point, and concurrent writers.

mod common;

use common::store::{assert_fails, StoreEnv as Env, SI};
use common::{run_cmd, test_rootfs, TIMEOUT};
use serde_json::Value;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn sha256sum(p: &Path) -> String {
    let out = run_cmd(Command::new("sha256sum").arg(p), TIMEOUT);
    out.ok();
    out.stdout.split_whitespace().next().unwrap().to_string()
}

#[test]
fn the_store_is_an_oci_layout_with_verifiable_digests() {
    let e = Env::new("layout");
    let id = e.busybox("busybox");
    let store = e.store();
    let layout: Value =
        serde_json::from_slice(&fs::read(store.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let idx = e.index();
    let m = &idx["manifests"][0];
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        "busybox:latest"
    );
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        "docker.io/library/busybox:latest"
    );
    // Every blob is named by the sha256 of its bytes.
    for b in fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let p = b.unwrap().path();
        assert_eq!(sha256sum(&p), p.file_name().unwrap().to_str().unwrap());
    }
    // The image ID is the config's digest; the diff ID is the sha256 of the gunzipped layer.
    let manifest: Value = serde_json::from_slice(
        &fs::read(
            store
                .join("blobs/sha256")
                .join(&m["digest"].as_str().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["config"]["digest"], id);
    let config: Value =
        serde_json::from_slice(&fs::read(store.join("blobs/sha256").join(&id[7..])).unwrap())
            .unwrap();
    let layer = store
        .join("blobs/sha256")
        .join(&manifest["layers"][0]["digest"].as_str().unwrap()[7..]);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let gunzipped = e.dir.join("layer.tar");
    let out = run_cmd(
        Command::new("sh").arg("-c").arg(format!(
            "gzip -dc < {} > {}",
            layer.display(),
            gunzipped.display()
        )),
        TIMEOUT,
    );
    out.ok();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{}", sha256sum(&gunzipped))
    );
    // The layer dir is keyed by chain ID (= diff ID for the bottom layer).
    let diff = &config["rootfs"]["diff_ids"][0].as_str().unwrap()[7..];
    assert!(store
        .join("layers")
        .join(diff)
        .join("diff/bin/busybox")
        .is_file());
}

#[test]
fn names_and_ids_resolve_as_docker_resolves_them() {
    let e = Env::new("names");
    let id = e.busybox("busybox");
    for key in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        &id,
        &id[7..],
        &id[7..12],
    ] {
        let out = e.si(&["inspect", "--type", "image", key]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v[0]["Id"], id, "{key}");
    }
    e.si(&["tag", "busybox", "localhost:5000/bb:v1"]).ok();
    let images = e.si(&["images"]);
    images.ok();
    assert!(images.stdout.contains("localhost:5000/bb"), "{images:#?}");
    // One of two names: only that name goes.
    let out = e.si(&["rmi", "busybox"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "Untagged: busybox:latest");
    assert_fails(
        &e.si(&["inspect", "--type", "image", "busybox"]),
        &["no such image: busybox"],
    );
    assert_fails(&e.si(&["rmi", "nope:1"]), &["no such image: nope:1"]);
    assert_fails(
        &e.si(&["tag", "localhost:5000/bb:v1", "Bad/Name"]),
        &["must be lowercase"],
    );
    assert_fails(
        &e.si(&["create", "--name", "a/b", "localhost:5000/bb:v1"]),
        &["invalid container name"],
    );
}

#[test]
fn container_names_are_unique_and_rmi_is_refused_while_used() {
    let e = Env::new("ctr");
    e.busybox("busybox");
    e.si(&["create", "--name", "c1", "busybox"]).ok();
    assert_fails(
        &e.si(&["create", "--name", "c1", "busybox"]),
        &["\"c1\" is already in use"],
    );
    assert_fails(
        &e.si(&["rmi", "busybox"]),
        &["used by container c1", "must be forced"],
    );
    assert_fails(&e.si(&["rm", "nope"]), &["no such container: nope"]);
    // Forced: the name goes, the image stays (nameless) while c1 needs it.
    let out = e.si(&["rmi", "-f", "busybox"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "Untagged: busybox:latest");
    assert_eq!(e.count("layers"), 1);
    assert_fails(
        &e.si(&["run", "--rm", "busybox", "true"]),
        &["no such image: busybox"],
    );
    e.si(&["rm", "c1"]).ok();
    // As in docker, the nameless image stays (dangling) until it is removed by ID.
    e.si(&["gc"]).ok();
    assert_eq!(e.count("layers"), 1);
    let images = e.si(&["images"]);
    assert!(images.stdout.contains("<none>"), "{images:#?}");
    let id = e.si(&["images", "-q"]).stdout.trim().to_string();
    e.si(&["rmi", &id]).ok();
    e.si(&["gc"]).ok();
    assert_eq!(e.count("layers"), 0);
    assert_eq!(e.count("blobs/sha256"), 0);
}

#[test]
fn run_passes_the_exit_code_and_rm_cleans_up() {
    let e = Env::new("run");
    e.busybox("busybox");
    let out = e.si(&["run", "--rm", "busybox", "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(e.count("containers"), 0);
    let out = e.si(&[
        "run",
        "--name",
        "keep",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "busybox",
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u)",
    ]);
    out.ok();
    assert_eq!(out.stdout.trim(), "1 /tmp 65534");
    let ps = e.si(&["ps", "-a"]);
    assert!(ps.stdout.contains("exited (0)"), "{ps:#?}");
    // strata's own error reaches the user, and the exit code is not 0.
    let out = e.si(&["run", "busybox", "/no/such"]);
    assert_ne!(out.code, 0, "{out:#?}");
    assert!(
        out.stderr
            .contains("\"/no/such\": stat /no/such: no such file or directory"),
        "{out:#?}"
    );
}

#[test]
fn same_content_and_timestamp_give_the_same_layer() {
    let e = Env::new("repro");
    let layer_of = |name: &str| -> String {
        let out = e.si(&["inspect", "--type", "image", name]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        v[0]["Layers"][0]["Digest"].as_str().unwrap().to_string()
    };
    let src = e.dir.join("tree");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), "same").unwrap();
    for (name, touch) in [("a", false), ("b", true)] {
        if touch {
            run_cmd(Command::new("touch").arg(src.join("d/f")), TIMEOUT).ok();
        }
        e.si(&[
            "import",
            "-q",
            "--timestamp",
            "1700000000",
            src.to_str().unwrap(),
            name,
        ])
        .ok();
    }
    assert_eq!(layer_of("a"), layer_of("b"));
    // zstd and none too, and the same across thread counts is the compress module's test.
    for (c, name) in [("zstd", "z"), ("none", "n")] {
        e.si(&[
            "import",
            "-q",
            "--compression",
            c,
            "--timestamp",
            "1",
            src.to_str().unwrap(),
            name,
        ])
        .ok();
    }
    assert_ne!(layer_of("z"), layer_of("n"));
}

#[test]
fn bad_input_leaves_the_store_as_it_was() {
    let e = Env::new("bad");
    e.busybox("busybox");
    let before = (e.index(), e.count("blobs/sha256"), e.count("layers"));
    let evil = e.dir.join("evil.tar");
    // A tar whose second entry climbs out of the layer.
    let mut b = Vec::new();
    for (name, data) in [("ok", &b"fine"[..]), ("../escape", &b"bad"[..])] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&x| x as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b.extend_from_slice(&h);
        let mut d = data.to_vec();
        d.resize(512, 0);
        b.extend_from_slice(&d);
    }
    b.extend_from_slice(&[0u8; 1024]);
    fs::write(&evil, &b).unwrap();
    for (args, needles) in [
        (
            vec!["import", evil.to_str().unwrap(), "evil"],
            vec!["../escape"],
        ),
        (vec!["import", "/no/such/dir", "x"], vec!["/no/such/dir"]),
        (
            vec!["import", test_rootfs().to_str().unwrap(), "Bad:Name"],
            vec!["must be lowercase"],
        ),
        (
            vec![
                "import",
                "-c",
                "FROB 1",
                test_rootfs().to_str().unwrap(),
                "x",
            ],
            vec!["unknown instruction FROB"],
        ),
        (vec!["commit", "nope", "x"], vec!["no such container: nope"]),
        (vec!["create", "nope"], vec!["no such image: nope"]),
        (
            vec!["import", "--compression", "lz4", "/tmp", "x"],
            vec!["lz4"],
        ),
    ] {
        let out = e.si(&args);
        assert_fails(&out, &needles);
        assert!(!e.dir.join("escape").exists() && !e.store().join("escape").exists());
        assert_eq!(
            (e.index(), e.count("blobs/sha256"), e.count("layers")),
            before,
            "{args:?}"
        );
        assert_eq!(e.count("tmp"), 0, "{args:?} left temp files");
    }
}

#[test]
fn a_corrupt_blob_is_named() {
    let e = Env::new("corrupt");
    let id = e.busybox("busybox");
    let cfg = e.store().join("blobs/sha256").join(&id[7..]);
    let mut bytes = fs::read(&cfg).unwrap();
    bytes[0] = b' ';
    fs::write(&cfg, &bytes).unwrap();
    assert_fails(&e.si(&["create", "busybox"]), &[&id, "corrupt"]);
}

#[test]
fn a_full_disk_is_a_clear_error_and_nothing_half_made() {
    let e = Env::new("full");
    let store = e.store();
    fs::create_dir_all(&store).unwrap();
    // A 2 MiB tmpfs cannot hold the busybox layer's blob plus its unpacked dir.
    let out = run_cmd(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&store),
        TIMEOUT,
    );
    out.ok();
    let out = e.si(&["import", test_rootfs().to_str().unwrap(), "busybox"]);
    assert_fails(&out, &["No space left on device"]);
    let ls = e.si(&["images", "-q"]);
    ls.ok();
    assert_eq!(ls.stdout, "");
    assert_eq!(e.count("blobs/sha256"), 0);
    assert_eq!(e.count("layers"), 0);
    assert_eq!(e.count("tmp"), 0);
    run_cmd(Command::new("umount").arg(&store), TIMEOUT).ok();
}

#[test]
fn kill_9_at_any_point_leaves_a_valid_store() {
    let e = Env::new("kill9");
    let id = e.busybox("base");
    // Kill imports at increasing delays: before, during and after the publish.
    for (i, ms) in [0u64, 5, 20, 40, 80, 120, 200, 400].iter().enumerate() {
        let mut c = e.cmd();
        c.args([
            "import",
            "-q",
            test_rootfs().to_str().unwrap(),
            &format!("img{i}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        // The next command sees a valid store: every entry loads and verifies.
        let out = e.si(&["images", "--format", "json"]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert!(v.as_array().unwrap().iter().any(|i| i["Id"] == id.as_str()));
        for img in v.as_array().unwrap() {
            e.si(&["inspect", "--type", "image", img["Id"].as_str().unwrap()])
                .ok();
        }
        for b in fs::read_dir(e.store().join("blobs/sha256")).unwrap() {
            let p = b.unwrap().path();
            assert_eq!(
                sha256sum(&p),
                p.file_name().unwrap().to_str().unwrap(),
                "half-written blob after kill at {ms} ms"
            );
        }
        for l in fs::read_dir(e.store().join("layers")).unwrap() {
            assert!(
                l.unwrap().path().join("layer.json").is_file(),
                "half-made layer after kill at {ms} ms"
            );
        }
        assert_eq!(
            e.count("tmp"),
            0,
            "temp files survived the next command (kill at {ms} ms)"
        );
    }
    e.si(&["run", "--rm", "base", "true"]).ok();
}

#[test]
fn concurrent_writers_do_not_lose_each_other() {
    let e = Env::new("concurrent");
    e.busybox("base");
    let src = test_rootfs().to_str().unwrap().to_string();
    let children: Vec<_> = (0..4)
        .map(|i| {
            let mut c = e.cmd();
            c.args(["import", "-q", &src, &format!("par{i}")]);
            common::Running::spawn(&mut c)
        })
        .collect();
    let tags: Vec<_> = (0..4)
        .map(|i| {
            let mut c = e.cmd();
            c.args(["tag", "base", &format!("tag{i}")]);
            common::Running::spawn(&mut c)
        })
        .collect();
    for r in children.into_iter().chain(tags) {
        r.wait(TIMEOUT).ok();
    }
    let idx = e.index();
    let names: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    for want in [
        "base:latest",
        "par0:latest",
        "par3:latest",
        "tag0:latest",
        "tag3:latest",
    ] {
        assert!(names.contains(&want), "{want} lost: {names:?}");
    }
}

#[test]
fn export_then_import_from_stdin_in_every_compression() {
    let e = Env::new("roundtrip");
    e.busybox("busybox");
    e.si(&[
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo hi > /hi; rm /etc/group",
    ])
    .ok();
    let tar = e.dir.join("c.tar");
    let out = e.si(&["export", "-o", tar.to_str().unwrap(), "c1"]);
    out.ok();
    // Piped, a long operation prints nothing but its result.
    assert_eq!(out.stderr, "", "{out:#?}");
    for (i, squeeze) in ["cat", "gzip -c", "zstd -q -c"].iter().enumerate() {
        let name = format!("back{i}");
        let cmd = format!(
            "{squeeze} < {} | {SI} --root {} import - {name}",
            tar.display(),
            e.store().display()
        );
        let out = run_cmd(Command::new("sh").arg("-c").arg(&cmd), TIMEOUT);
        out.ok();
        assert_eq!(out.stderr, "", "{out:#?}");
        let seen = e.si(&[
            "run",
            "--rm",
            &name,
            "sh",
            "-c",
            "cat /hi; test -e /etc/group || echo gone",
        ]);
        seen.ok();
        assert_eq!(seen.stdout, "hi\ngone\n", "{squeeze}");
    }
    // A truncated compressed stream is an error, and nothing is left of it.
    let before = (e.index(), e.count("blobs/sha256"), e.count("layers"));
    let cmd = format!(
        "gzip -c < {} | head -c 100000 | {SI} --root {} import - cut",
        tar.display(),
        e.store().display()
    );
    let out = run_cmd(Command::new("sh").arg("-c").arg(&cmd), TIMEOUT);
    assert_fails(&out, &["truncated"]);
    assert_eq!(
        (e.index(), e.count("blobs/sha256"), e.count("layers")),
        before
    );
}

#[test]
fn an_unknown_layer_media_type_is_named() {
    let e = Env::new("mediatype");
    e.busybox("busybox");
    // Rewrite the manifest with a layer media type nobody knows, as another tool might.
    let blobs = e.store().join("blobs/sha256");
    let mut idx = e.index();
    let old = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
    let mut m: Value = serde_json::from_slice(&fs::read(blobs.join(&old[7..])).unwrap()).unwrap();
    m["layers"][0]["mediaType"] = "application/vnd.example.layer.v1.tar+lz4".into();
    let bytes = serde_json::to_vec(&m).unwrap();
    let p = e.dir.join("m.json");
    fs::write(&p, &bytes).unwrap();
    let hex = sha256sum(&p);
    fs::write(blobs.join(&hex), &bytes).unwrap();
    idx["manifests"][0]["digest"] = format!("sha256:{hex}").into();
    idx["manifests"][0]["size"] = bytes.len().into();
    fs::write(
        e.store().join("index.json"),
        serde_json::to_vec(&idx).unwrap(),
    )
    .unwrap();
    // Its layer dir is gone too, so the layer would have to be read from the blob.
    fs::remove_dir_all(e.store().join("layers")).unwrap();
    fs::create_dir(e.store().join("layers")).unwrap();
    assert_fails(
        &e.si(&["create", "busybox"]),
        &[
            "unknown layer media type",
            "application/vnd.example.layer.v1.tar+lz4",
        ],
    );
}

#[test]
fn a_missing_layer_dir_is_unpacked_again_from_its_blob() {
    let e = Env::new("relayer");
    e.busybox("busybox");
    fs::remove_dir_all(e.store().join("layers")).unwrap();
    fs::create_dir(e.store().join("layers")).unwrap();
    let out = e.si(&["run", "--rm", "busybox", "cat", "/etc/passwd"]);
    out.ok();
    assert!(out.stdout.starts_with("root:x:0:0"), "{out:#?}");
    assert_eq!(e.count("layers"), 1);
}

#[test]
fn the_same_container_name_in_two_stores_runs_side_by_side() {
    // The name is the runtime ID; the cgroup must not be named after it, or the second
    // container would land in the first one's cgroup (and be refused).
    let (a, b) = (Env::new("twin-a"), Env::new("twin-b"));
    a.busybox("busybox");
    b.busybox("busybox");
    let mut c = a.cmd();
    c.args(["run", "--rm", "--name", "twin", "busybox", "sleep", "3"]);
    let first = common::Running::spawn(&mut c);
    assert!(
        common::wait_until(TIMEOUT, || a.si(&["ps"]).stdout.contains("running")),
        "the first twin never ran"
    );
    let out = b.si(&["run", "--rm", "--name", "twin", "busybox", "echo", "ok"]);
    out.ok();
    assert_eq!(out.stdout, "ok\n");
    first.wait(TIMEOUT).ok();
}
