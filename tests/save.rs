//! strata-image save: the hybrid archive (OCI layout + docker's manifest.json), the
//! oci-archive, plain layers; read back by skopeo and umoci; the same bytes every time.

mod common;

use common::store::{StoreEnv as Env, SI};
use common::{run_cmd, Output, TIMEOUT};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// busybox, and img2 = busybox + one committed file (they share the bottom layer).
fn two_images(e: &Env) {
    e.busybox("busybox");
    e.si(&[
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo changed > /changed",
    ])
    .ok();
    e.si(&["commit", "-q", "c1", "img2"]).ok();
    e.si(&["rm", "c1"]).ok();
}

/// `save -q -o DIR/FILE ARGS…`; the file.
fn save(e: &Env, file: &str, args: &[&str]) -> PathBuf {
    let p = e.dir.join(file);
    let mut a = vec!["save", "-q", "-o", p.to_str().unwrap()];
    a.extend_from_slice(args);
    e.si(&a).ok();
    p
}

fn sh(cmd: &str) -> Output {
    let out = run_cmd(Command::new("sh").arg("-c").arg(cmd), TIMEOUT);
    out.ok();
    out
}

fn member(tar: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} missing from {}",
        tar.display()
    );
    out.stdout
}

fn members(tar: &Path) -> Vec<String> {
    sh(&format!("tar -tf {}", tar.display()))
        .stdout
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn the_hybrid_archive_is_read_as_docker_and_as_oci() {
    let e = Env::new("hybrid");
    two_images(&e);
    let tar = save(&e, "a.tar", &["busybox", "img2"]);
    let names = members(&tar);
    for want in [
        "oci-layout",
        "index.json",
        "manifest.json",
        "repositories",
        "blobs/sha256/",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    // The shared bottom layer is in the archive once; every blob is named by its digest.
    let blobs: Vec<&String> = names.iter().filter(|n| n.len() == 13 + 64).collect();
    let mut uniq = blobs.clone();
    uniq.dedup();
    assert_eq!(blobs.len(), uniq.len());
    let x = e.dir.join("x");
    fs::create_dir(&x).unwrap();
    sh(&format!("tar -xf {} -C {}", tar.display(), x.display()));
    for b in &blobs {
        let sum = sh(&format!("sha256sum {}", x.join(b).display())).stdout;
        assert_eq!(&sum[..64], &b[13..], "{b}");
    }
    // docker's view: manifest.json points at the same compressed blobs.
    let m: Value = serde_json::from_slice(&member(&tar, "manifest.json")).unwrap();
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(m[1]["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(m[0]["Layers"][0], m[1]["Layers"][0]);
    let out = sh(&format!(
        "skopeo inspect docker-archive:{}:img2:latest",
        tar.display()
    ));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    // OCI's view, by skopeo and umoci.
    let out = sh(&format!(
        "skopeo inspect oci-archive:{}:img2:latest",
        tar.display()
    ));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    sh(&format!(
        "umoci unpack --image {}:img2:latest {}",
        x.display(),
        e.dir.join("unpacked").display()
    ));
    assert_eq!(
        fs::read_to_string(e.dir.join("unpacked/rootfs/changed")).unwrap(),
        "changed\n"
    );
}

#[test]
fn the_same_images_give_the_same_bytes() {
    let e = Env::new("repro");
    two_images(&e);
    let a = fs::read(save(&e, "a.tar", &["img2", "busybox"])).unwrap();
    let b = fs::read(save(&e, "b.tar", &["img2", "busybox"])).unwrap();
    assert!(a == b, "two saves differ");
    // Piped to stdout, the same bytes again.
    let out = Command::new(SI)
        .arg("--root")
        .arg(e.dir.join("store"))
        .args(["save", "img2", "busybox"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout == a, "stdout differs from -o");
}

#[test]
fn oci_archive_and_plain_layers() {
    let e = Env::new("formats");
    two_images(&e);
    let oci = save(&e, "oci.tar", &["--format", "oci-archive", "img2"]);
    let names = members(&oci);
    assert!(
        !names
            .iter()
            .any(|n| n == "manifest.json" || n == "repositories"),
        "{names:?}"
    );
    sh(&format!(
        "skopeo inspect oci-archive:{}:img2:latest",
        oci.display()
    ));
    // --uncompressed: each layer is the plain tar, named by its diff ID.
    let plain = save(&e, "plain.tar", &["--uncompressed", "img2"]);
    let x = e.dir.join("px");
    fs::create_dir(&x).unwrap();
    sh(&format!("tar -xf {} -C {}", plain.display(), x.display()));
    let idx: Value = serde_json::from_slice(&fs::read(x.join("index.json")).unwrap()).unwrap();
    let md = idx["manifests"][0]["digest"].as_str().unwrap();
    let m: Value =
        serde_json::from_slice(&fs::read(x.join("blobs/sha256").join(&md[7..])).unwrap()).unwrap();
    let cfg: Value = serde_json::from_slice(
        &fs::read(
            x.join("blobs/sha256")
                .join(&m["config"]["digest"].as_str().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    for (l, diff) in m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(cfg["rootfs"]["diff_ids"].as_array().unwrap())
    {
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(&l["digest"], diff);
        let f = x
            .join("blobs/sha256")
            .join(&l["digest"].as_str().unwrap()[7..]);
        sh(&format!("tar -tf {} >/dev/null", f.display()));
    }
    sh(&format!(
        "skopeo inspect docker-archive:{}:img2:latest",
        plain.display()
    ));
}

#[test]
fn saving_an_unknown_image_writes_nothing() {
    let e = Env::new("unknown");
    two_images(&e);
    let p = e.dir.join("out.tar");
    let out = e.si(&["save", "-o", p.to_str().unwrap(), "busybox", "nope:1"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("no such image: nope:1"), "{out:#?}");
    let left: Vec<_> = fs::read_dir(&e.dir)
        .unwrap()
        .flatten()
        .map(|d| d.file_name())
        .collect();
    assert!(
        !p.exists()
            && !left
                .iter()
                .any(|n| n.to_string_lossy().starts_with(".out.tar")),
        "{left:?}"
    );
    let out = e.si(&["save", "--format", "zip", "busybox"]);
    assert!(
        out.stderr.contains("unknown archive format \"zip\""),
        "{out:#?}"
    );
}

#[test]
fn save_load_save_gives_the_same_bytes() {
    let e = Env::new("roundtrip");
    two_images(&e);
    for (file, args) in [
        ("a.tar", vec!["img2", "busybox"]),
        (
            "oci.tar",
            vec!["--format", "oci-archive", "img2", "busybox"],
        ),
        ("plain.tar", vec!["--uncompressed", "img2", "busybox"]),
    ] {
        let first = save(&e, file, &args);
        let back = Env::new("roundtrip-back");
        let out = back.si(&["load", "-q", "-i", first.to_str().unwrap()]);
        out.ok();
        assert_eq!(
            out.stdout, "Loaded image: img2:latest\nLoaded image: busybox:latest\n",
            "{file}"
        );
        let again = save(&back, file, &args);
        assert!(
            fs::read(&first).unwrap() == fs::read(&again).unwrap(),
            "{file}: save → load → save changed the bytes"
        );
        let seen = back.si(&["run", "--rm", "img2", "cat", "/changed"]);
        seen.ok();
        assert_eq!(seen.stdout, "changed\n");
    }
}

/// A store blob that changed on disk (same size, other bytes; or cut short) is not
/// copied into an archive that would lie about it: save fails naming the blob, and `-o`
/// leaves no file.
#[test]
fn a_changed_store_blob_fails_the_save() {
    let e = Env::new("changed");
    two_images(&e);
    let inspect: Value =
        serde_json::from_str(&e.si(&["inspect", "img2"]).stdout).expect("inspect json");
    let layer = inspect[0]["Layers"][1]["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = e.store().join("blobs/sha256").join(&layer[7..]);
    let good = fs::read(&blob).unwrap();
    let p = e.dir.join("out.tar");
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let cut = good[..good.len() - 100].to_vec();
    for (bad, needle) in [(flipped, "hashes to"), (cut, "bytes short")] {
        fs::write(&blob, &bad).unwrap();
        let out = e.si(&["save", "-o", p.to_str().unwrap(), "img2"]);
        assert_ne!(out.code, 0, "{out:#?}");
        assert!(
            out.stderr.contains(&layer) && out.stderr.contains(needle),
            "{needle}: {out:#?}"
        );
        assert!(!p.exists(), "save -o left {}", p.display());
        // To a pipe as well: the error, not a silent truncated archive.
        let out = e.cmd().args(["save", "img2"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle), "{err}");
    }
    fs::write(&blob, &good).unwrap();
    save(&e, "good.tar", &["img2"]);
}
