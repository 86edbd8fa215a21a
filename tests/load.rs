//! strata-image load against a real store: every archive shape (legacy docker-archive,
//! skopeo's, docker 25's hybrid, oci-archive in each compression, an OCI layout dir),
//! images run after loading, shared layers unpacked once, and hostile archives refused
//! with the part named and the store left exactly as it was.

// Archives are built from lists of images; `&[img.clone()]` reads better than from_ref.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;
mod load_support;

use load_support::env::*;
use load_support::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[test]
fn a_legacy_docker_archive_loads_with_dockers_image_id() {
    let e = Env::new("legacy");
    let img = Image::new(
        vec![base(Comp::None), top("legacy\n", Comp::None)],
        &["legacy:v1"],
    );
    let out = e.load(&docker(&[img.clone()], false));
    out.ok();
    assert_eq!(out.stdout, "Loaded image: legacy:v1\n");
    assert_eq!(out.stderr, "", "piped: no progress bar");
    assert_eq!(e.run("legacy:v1", &["cat", "/file"]), "legacy\n");
    let v: Value = serde_json::from_str(&e.si(&["inspect", "legacy:v1"]).stdout).unwrap();
    assert_eq!(
        v[0]["Id"],
        img.id(),
        "the config's bytes are kept: docker's ID"
    );
    // skopeo's layout: top-level <diffid>.tar, <id>/layer.tar symlinks to it; on stdin.
    let sk = Image::new(
        vec![base(Comp::None), top("skopeo\n", Comp::None)],
        &["docker.io/library/skopeo:latest"],
    );
    let out = e.load_stdin(&tar(&docker(&[sk], true)));
    out.ok();
    assert_eq!(out.stdout, "Loaded image: skopeo:latest\n");
    assert_eq!(e.run("skopeo", &["cat", "/file"]), "skopeo\n");
    assert_eq!(e.count("layers"), 3, "the busybox layer is shared");
}

#[test]
fn docker_25_hybrid_and_oci_archives_in_every_compression() {
    let e = Env::new("shapes");
    let img = |tag: &str, c: Comp| Image::new(vec![base(c), top(tag, c)], &[tag]);
    let out = e.load(&hybrid(&[img("hybrid:gz", Comp::Gzip)]));
    out.ok();
    assert_eq!(out.stdout, "Loaded image: hybrid:gz\n");
    let out = e.load_stdin(&tar(&oci(&[img("oci:zst", Comp::Zstd)])));
    out.ok();
    assert_eq!(out.stdout, "Loaded image: oci:zst\n");
    // The whole archive compressed, as `docker save | gzip` makes it.
    let out = e.load_stdin(&Comp::Gzip.apply(&tar(&oci(&[img("oci:plain", Comp::None)]))));
    out.ok();
    assert_eq!(out.stdout, "Loaded image: oci:plain\n");
    for tag in ["hybrid:gz", "oci:zst", "oci:plain"] {
        assert_eq!(e.run(tag, &["cat", "/file"]), tag);
    }
    // Each image keeps its blobs as they came (the same manifest digest as the archive).
    let idx: Value =
        serde_json::from_slice(&fs::read(e.store().join("index.json")).unwrap()).unwrap();
    let zst = img("oci:zst", Comp::Zstd);
    assert!(idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["digest"] == sha(&zst.manifest())
            && d["annotations"]["io.containerd.image.name"] == "docker.io/library/oci:zst"));
}

#[test]
fn an_oci_layout_directory_loads_and_a_bare_tag_is_no_name() {
    let e = Env::new("dir");
    let img = Image::new(
        vec![base(Comp::Gzip), top("dir\n", Comp::Gzip)],
        &["latest"],
    );
    let dir = e.dir.join("layout");
    write_dir(&oci(&[img.clone()]), &dir);
    let out = e.si(&["load", "-i", dir.to_str().unwrap()]);
    out.ok();
    // umoci's ref name `latest` is a tag, not an image name: loaded by ID.
    assert_eq!(out.stdout, format!("Loaded image ID: {}\n", img.id()));
    assert_eq!(e.run(&hex(&img.id())[..12], &["cat", "/file"]), "dir\n");
    // A symlink in the layout is not followed.
    let evil = e.dir.join("evil-layout");
    write_dir(&oci(&[img.clone()]), &evil);
    let blob = evil.join("blobs/sha256").join(hex(&img.layers[1].digest()));
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &blob).unwrap();
    let before = e.snapshot();
    assert_fails(&e.si(&["load", "-i", evil.to_str().unwrap()]), &["symlink"]);
    assert_eq!(e.snapshot(), before);
}

#[test]
fn untagged_images_load_by_id() {
    let e = Env::new("untagged");
    let img = Image::new(vec![base(Comp::None), top("anon\n", Comp::None)], &[]);
    let out = e.load(&docker(&[img.clone()], false));
    out.ok();
    assert_eq!(out.stdout, format!("Loaded image ID: {}\n", img.id()));
    assert_eq!(e.run(&img.id(), &["cat", "/file"]), "anon\n");
    let images = e.si(&["images"]);
    assert!(images.stdout.contains(&hex(&img.id())[..12]), "{images:#?}");
}

#[test]
fn shared_layers_are_unpacked_once_and_never_again() {
    let e = Env::new("shared");
    let b = base(Comp::Gzip);
    let a1 = Image::new(vec![b.clone(), top("one\n", Comp::Gzip)], &["multi:one"]);
    let a2 = Image::new(vec![b.clone(), top("two\n", Comp::Gzip)], &["multi:two"]);
    let out = e.load(&oci(&[a1.clone(), a2.clone()]));
    out.ok();
    assert_eq!(
        out.stdout,
        "Loaded image: multi:one\nLoaded image: multi:two\n"
    );
    assert_eq!(e.count("layers"), 3);
    assert_eq!(e.run("multi:one", &["cat", "/file"]), "one\n");
    assert_eq!(e.run("multi:two", &["cat", "/file"]), "two\n");
    let base_dir = e.layer_dir(&b.diff_id());
    let inode = |p: &Path| fs::metadata(p).unwrap().ino();
    let before = (
        inode(&base_dir),
        fs::metadata(&base_dir).unwrap().mtime_nsec(),
    );
    // The same base, compressed otherwise (a blob the store lacks, so only its diff ID
    // is checked), under a new top; and the first archive again.
    let a3 = Image::new(
        vec![base(Comp::Zstd), top("three\n", Comp::Zstd)],
        &["multi:three"],
    );
    e.load(&oci(&[a3])).ok();
    let again = e.load(&oci(&[a1.clone(), a2]));
    again.ok();
    assert_eq!(again.stdout, out.stdout);
    assert_eq!(e.count("layers"), 4);
    let after = (
        inode(&base_dir),
        fs::metadata(&base_dir).unwrap().mtime_nsec(),
    );
    assert_eq!(before, after, "the base layer dir was made again");
    assert_eq!(e.run("multi:three", &["cat", "/file"]), "three\n");
    // A name taken from another image is reported as docker reports it.
    let moved = Image::new(vec![b, top("moved\n", Comp::Gzip)], &["multi:one"]);
    let out = e.load(&oci(&[moved]));
    out.ok();
    assert_eq!(
        out.stdout,
        format!(
            "The image multi:one already exists, renaming the old one with ID {} to empty string\n\
             Loaded image: multi:one\n",
            a1.id()
        )
    );
    assert_eq!(e.count("tmp"), 0);
}

fn bad_image() -> Image {
    Image::new(vec![base(Comp::Gzip), top("bad\n", Comp::Gzip)], &["bad:1"])
}

#[test]
fn hostile_member_names_and_types_are_refused() {
    let e = env_with_image("names");
    let img = bad_image();
    let with = |m: Member| {
        let mut v = oci(&[img.clone()]);
        v.insert(1, m);
        tar(&v)
    };
    let abs = format!("{}/escape-abs", e.dir.display());
    let mut sk = docker(&[img.clone()], true);
    let link = sk
        .iter_mut()
        .find(|m| matches!(m.entry, Entry::Symlink(_)))
        .unwrap();
    link.entry = Entry::Symlink("../../../../../etc/passwd".into());
    let mut dup = oci(&[img.clone()]);
    dup.push(dup[dup.len() - 1].clone());
    refused(
        &e,
        vec![
            (
                "../ name",
                with(file("../escape-dotdot", b"x")),
                s(&["../escape-dotdot", "path traversal"]),
            ),
            (
                "absolute name",
                with(file(&abs, b"x")),
                s(&[&abs, "absolute"]),
            ),
            (
                "blobs/sha256/../../x",
                with(file("blobs/sha256/../../escape-x", b"x")),
                s(&["blobs/sha256/../../escape-x", "path traversal"]),
            ),
            (
                "symlink out",
                with(symlink("escape-link", "/etc/passwd")),
                s(&["escape-link", "absolute"]),
            ),
            (
                "skopeo link out",
                tar(&sk),
                s(&["layer.tar", "out of the archive"]),
            ),
            (
                "hard link",
                with(hardlink("escape-hard", "index.json")),
                s(&["escape-hard", "hard link"]),
            ),
            (
                "device",
                {
                    let mut t = with(file("escape-dev", b""));
                    // Turn the regular file's header into a character device's.
                    let at = t.windows(10).position(|w| w == b"escape-dev").unwrap();
                    t[at + 156] = b'3';
                    t[at + 148..at + 156].copy_from_slice(b"        ");
                    let sum: u32 = t[at..at + 512].iter().map(|&x| x as u32).sum();
                    t[at + 148..at + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                    t
                },
                s(&["escape-dev", "Char"]),
            ),
            (
                "a member twice",
                tar(&dup),
                s(&["index.json", "appears twice"]),
            ),
            (
                "cut archive",
                {
                    let t = tar(&oci(&[img.clone()]));
                    t[..t.len() / 2].to_vec()
                },
                s(&["archive at byte", "unexpected end of the stream"]),
            ),
            (
                "cut gzip archive",
                {
                    let t = Comp::Gzip.apply(&tar(&oci(&[img.clone()])));
                    t[..t.len() / 2].to_vec()
                },
                s(&["gzip stream truncated"]),
            ),
            (
                "no image",
                tar(&[file("hello", b"x")]),
                s(&["not an image archive"]),
            ),
        ],
    );
}

#[test]
fn blobs_that_lie_are_refused() {
    let e = env_with_image("blobs");
    let img = bad_image();
    let top_name = format!("blobs/sha256/{}", hex(&img.layers[1].digest()));
    let mut wrong = oci(&[img.clone()]);
    replace(&mut wrong, &top_name, Comp::Gzip.apply(b"other"));
    let mut size = oci(&[img.clone()]);
    edit_json(&mut size, "index.json", |v| {
        v["manifests"][0]["size"] = json!(v["manifests"][0]["size"].as_u64().unwrap() + 1)
    });
    let cut = |c: Comp| {
        let mut l = top("cut\n", c);
        // A layer that does not compress, so that the cut falls in its data.
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        l.tar = layer_tar(&[("file", &noise)]);
        l.blob = c.apply(&l.tar);
        l.blob.truncate(l.blob.len() - 40);
        tar(&oci(&[Image::new(vec![base(Comp::Gzip), l], &["cut:1"])]))
    };
    let mut missing = oci(&[img.clone()]);
    missing.retain(|m| m.name != top_name);
    let xyz = |d: &str| {
        let mut v = oci(&[img.clone()]);
        edit_json(&mut v, "index.json", |v| {
            v["manifests"][0]["digest"] = json!(d)
        });
        tar(&v)
    };
    let sha512 = format!("sha512:{}", "ab".repeat(64));
    let mut zst_as_gz = top("mt\n", Comp::Zstd);
    zst_as_gz.media_type = Comp::Gzip.media_type();
    // Two images with one layer compressed two ways; the second blob is another tar.
    let t1 = top("twin\n", Comp::Gzip);
    let mut t2 = top("twin\n", Comp::Zstd);
    t2.blob = Comp::Zstd.apply(&layer_tar(&[("file", b"evil twin\n")]));
    let twins = [
        Image::new(vec![base(Comp::Gzip), t1], &["twin:1"]),
        Image::new(vec![base(Comp::Gzip), t2], &["twin:2"]),
    ];
    let mut bad_diff = top("diff\n", Comp::Gzip);
    bad_diff.tar = layer_tar(&[("file", b"not what the blob holds")]);
    refused(
        &e,
        vec![
            (
                "wrong content",
                tar(&wrong),
                vec![format!("{}…", &top_name[..25]), "digest mismatch".into()],
            ),
            (
                "size",
                tar(&size),
                s(&[
                    "index.json: image 1 (bad:1): manifest",
                    "size is",
                    "descriptor says",
                ]),
            ),
            (
                "truncated gzip",
                cut(Comp::Gzip),
                s(&["image 1 (cut:1): layer 2", "gzip stream truncated"]),
            ),
            (
                "truncated zstd",
                cut(Comp::Zstd),
                s(&["image 1 (cut:1): layer 2", "zstd stream truncated"]),
            ),
            (
                "missing blob",
                tar(&missing),
                s(&["image 1 (bad:1): layer 2", "is not in the archive"]),
            ),
            (
                "sha256:XYZ",
                xyz("sha256:XYZ"),
                s(&["index.json", "invalid digest \"sha256:XYZ\""]),
            ),
            ("sha512", xyz(&sha512), s(&["index.json", "only sha256"])),
            (
                "media type",
                tar(&oci(&[Image::new(
                    vec![base(Comp::Gzip), zst_as_gz],
                    &["mt:1"],
                )])),
                s(&["layer 2", "media type", "zstd"]),
            ),
            (
                "a twin blob",
                tar(&oci(&twins)),
                s(&["image 2 (twin:2): layer 2", "diff ID"]),
            ),
            (
                "diff ID",
                tar(&oci(&[Image::new(
                    vec![base(Comp::Gzip), bad_diff],
                    &["diff:1"],
                )])),
                s(&["image 1 (diff:1): layer 2", "diff ID"]),
            ),
        ],
    );
}

#[test]
fn documents_that_lie_are_refused() {
    let e = env_with_image("docs");
    let img = bad_image();
    // manifest.json's image has another top layer than index.json's.
    let other = Image::new(
        vec![base(Comp::Gzip), top("other\n", Comp::Gzip)],
        &["bad:1"],
    );
    let mut disagree = hybrid(&[img.clone()]);
    push_blob(&mut disagree, &other.layers[1].blob);
    edit_json(&mut disagree, "manifest.json", |v| {
        v[0]["Layers"][1] = json!(format!("blobs/sha256/{}", hex(&other.layers[1].digest())))
    });
    let mut extra = hybrid(&[img.clone()]);
    push_blob(&mut extra, &other.config);
    edit_json(&mut extra, "manifest.json", |v| {
        v[0]["Config"] = json!(format!("blobs/sha256/{}", hex(&other.id())))
    });
    let gb = img
        .clone()
        .edit_manifest(|m| m["config"]["size"] = json!(1u64 << 30));
    let big = img
        .clone()
        .edit_config(|c| c["config"]["Labels"]["pad"] = json!("x".repeat(9 << 20)));
    let big_json = format!("{}….json", &hex(&big.id())[..12]);
    let lie = img
        .clone()
        .edit_manifest(|m| m["mediaType"] = json!(MT_INDEX));
    let fewer = img.clone().edit_config(|c| {
        c["rootfs"]["diff_ids"].as_array_mut().unwrap().pop();
        c["history"].as_array_mut().unwrap().pop();
    });
    let history = img.clone().edit_config(|c| {
        c["history"]
            .as_array_mut()
            .unwrap()
            .push(json!({"created_by": "more"}))
    });
    let evil_layer = Layer::new(layer_tar(&[("../escape-inner", b"x")]), Comp::Gzip);
    let inner = Image::new(vec![base(Comp::Gzip), evil_layer], &["inner:1"]);
    refused(
        &e,
        vec![
            (
                "disagreeing layers",
                tar(&disagree),
                s(&[
                    "manifest.json and index.json disagree",
                    "manifest.json: image 1 (bad:1): layer 2",
                ]),
            ),
            (
                "disagreeing config",
                tar(&extra),
                s(&[
                    "manifest.json and index.json disagree",
                    "no image of index.json has",
                ]),
            ),
            (
                "1 GB config",
                tar(&oci(&[gb])),
                s(&[
                    "image 1 (bad:1): config: declared size",
                    "1073741824 bytes, more than",
                ]),
            ),
            (
                "9 MiB config",
                tar(&oci(&[big.clone()])),
                s(&["image 1 (bad:1): config", "more than the 8388608"]),
            ),
            (
                "9 MiB legacy config",
                tar(&docker(&[big], false)),
                s(&[&big_json, "more than"]),
            ),
            (
                "manifest media type",
                tar(&oci(&[lie])),
                s(&["image 1 (bad:1)", "does not match its descriptor"]),
            ),
            (
                "diff IDs < layers",
                tar(&oci(&[fewer])),
                s(&["image 1 (bad:1)", "2 layers but 1 diff IDs"]),
            ),
            (
                "history",
                tar(&oci(&[history])),
                s(&["image 1 (bad:1): config", "history has 3 non-empty layers"]),
            ),
            (
                "../ inside a layer",
                tar(&oci(&[inner])),
                s(&["image 1 (inner:1): layer 2", "../escape-inner"]),
            ),
        ],
    );
}

/// A blob member added to an archive.
fn push_blob(members: &mut Vec<Member>, blob: &[u8]) {
    members.insert(1, file(&format!("blobs/sha256/{}", hex(&sha(blob))), blob));
}

#[test]
fn absurd_counts_are_refused_before_anything_is_built() {
    let e = env_with_image("counts");
    let img = bad_image();
    // A million layer paths in a small manifest.json (4 MB: under the JSON cap).
    let mut paths = docker(&[img.clone()], false);
    let many = format!(
        r#"[{{"Config":"x.json","RepoTags":null,"Layers":[{}"a"]}}]"#,
        r#""a","#.repeat(999_999)
    );
    replace(&mut paths, "manifest.json", many.into_bytes());
    // A manifest of 70 000 layers (descriptors kept tiny: the array is refused unread).
    let wide = img
        .clone()
        .edit_manifest(|m| m["layers"] = json!(vec![0; 70_000]));
    // 600 real layer descriptors: under the JSON caps, over overlayfs's 500 lowers.
    let tall = img.clone().edit_manifest(|m| {
        let l = m["layers"][1].clone();
        m["layers"] = json!(vec![l; 600]);
    });
    let t0 = Instant::now();
    refused(
        &e,
        vec![
            (
                "1e6 layer paths",
                tar(&paths),
                s(&["manifest.json", "more than 65536 entries"]),
            ),
            (
                "70000 layers",
                tar(&oci(&[wide])),
                s(&["image 1 (bad:1): manifest", "more than 65536 entries"]),
            ),
            (
                "600 layers",
                tar(&oci(&[tall])),
                s(&["image 1 (bad:1)", "600 layers, more than the 500 allowed"]),
            ),
        ],
    );
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
}

#[test]
fn a_chain_of_layers_builds_on_the_store() {
    // Layers of one image unpack in order over each other: a whiteout in the top layer
    // hides a file of the base, and a file replaced stays replaced.
    let e = Env::new("chain");
    let b = base(Comp::Gzip);
    let mid = Layer::new(
        layer_tar(&[("etc/mid", b"mid\n"), ("file", b"old\n")]),
        Comp::Zstd,
    );
    let up = Layer::new(
        layer_tar(&[("etc/.wh.mid", b""), ("file", b"new\n")]),
        Comp::Gzip,
    );
    let img = Image::new(vec![b.clone(), mid.clone(), up.clone()], &["chain:1"]);
    e.load(&oci(&[img])).ok();
    assert_eq!(
        e.run(
            "chain:1",
            &["sh", "-c", "cat /file; test -e /etc/mid || echo gone"]
        ),
        "new\ngone\n"
    );
    let c2 = chain(&b.diff_id(), &mid.diff_id());
    assert!(e.layer_dir(&chain(&c2, &up.diff_id())).is_dir());
}

#[test]
fn an_upper_layer_that_looks_below_waits_for_the_layers_under_it() {
    // Layers unpack side by side; one that must look at a lower (a directory its tar
    // does not list, a hard link to a lower file) waits for it. Two layers, so that both
    // start at once; the lower one is big, so that the upper one gets to its lookups
    // while the lower one is still being written.
    let e = Env::new("gate");
    let big: Vec<u8> = (0..48u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mid = Layer::new(
        tar(&[
            Member {
                name: "deep/".into(),
                entry: Entry::Dir,
            },
            Member {
                name: "deep/a/".into(),
                entry: Entry::Dir,
            },
            file("deep/a/big", &big),
            file("deep/a/f", b"from mid\n"),
        ]),
        Comp::Gzip,
    );
    let up = Layer::new(
        tar(&[
            file("deep/a/g", b"from up\n"),
            hardlink("deep/a/h", "deep/a/f"),
        ]),
        Comp::Gzip,
    );
    let top = chain(&mid.diff_id(), &up.diff_id());
    let img = Image::new(vec![mid, up], &["gate:1"]);
    e.load(&oci(&[img])).ok();
    let diff = e.layer_dir(&top).join("deep/a");
    assert_eq!(fs::read_to_string(diff.join("g")).unwrap(), "from up\n");
    assert_eq!(fs::read_to_string(diff.join("h")).unwrap(), "from mid\n");
}

#[test]
fn a_layer_in_the_store_is_never_unpacked_again() {
    // A layer dir planted in the store for a tar that unpack would refuse: a load that
    // unpacked it again would fail. Both paths: a plain blob (its digest is its diff ID)
    // and a compressed one the store has never seen (decompressed only to check it).
    let e = Env::new("planted");
    e.si(&["images"]).ok();
    let evil = layer_tar(&[("../escape-never", b"x")]);
    let d = sha(&evil);
    let dir = e.store().join("layers").join(hex(&d));
    fs::create_dir_all(dir.join("diff")).unwrap();
    fs::write(dir.join("diff/planted"), b"yes\n").unwrap();
    let info = json!({"diff_id": d, "chain_id": d, "size": evil.len()});
    fs::write(dir.join("layer.json"), serde_json::to_vec(&info).unwrap()).unwrap();
    for (tag, c) in [("p:plain", Comp::None), ("p:gzip", Comp::Gzip)] {
        let img = Image::new(vec![Layer::new(evil.clone(), c), top(tag, c)], &[tag]);
        let out = e.load(&oci(&[img]));
        out.ok();
        assert_eq!(out.stdout, format!("Loaded image: {tag}\n"));
    }
    // The store's dir is what the image sees; nothing escaped.
    let top_dir = e.layer_dir(&chain(&d, &top("p:gzip", Comp::Gzip).diff_id()));
    assert_eq!(fs::read(top_dir.join("file")).unwrap(), b"p:gzip");
    assert_eq!(escapes(&e.dir), Vec::<PathBuf>::new());
    // A compressed blob whose content is not its claimed diff ID is still caught.
    let liar = Layer::new(layer_tar(&[("other", b"x")]), Comp::Gzip);
    let mut img = Image::new(vec![liar, top("liar", Comp::Gzip)], &["p:liar"]);
    img = img.edit_config(|c| c["rootfs"]["diff_ids"][0] = json!(d));
    let before = e.snapshot();
    assert_fails(&e.load(&oci(&[img])), &["layer 1", "diff ID"]);
    assert_eq!(e.snapshot(), before);
}

#[test]
fn kill_9_at_any_point_of_a_load_leaves_a_valid_store() {
    use std::os::unix::process::CommandExt;
    let e = env_with_image("kill9");
    let img = Image::new(vec![base(Comp::Zstd), top("k\n", Comp::Gzip)], &["k:1"]);
    let p = e.dir.join("k.tar");
    fs::write(&p, tar(&oci(&[img]))).unwrap();
    for ms in [0u64, 5, 20, 50, 100, 200, 400] {
        let mut c = e.cmd();
        c.args(["load", "-i", p.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        // The next command sees a valid store: every image verifies, every layer dir is
        // whole, and the killed load's temp dir is swept.
        let ids = e.si(&["images", "-q"]);
        ids.ok();
        for id in ids.lines() {
            e.si(&["inspect", "--type", "image", id]).ok();
        }
        for l in fs::read_dir(e.store().join("layers")).unwrap() {
            let l = l.unwrap().path();
            assert!(
                l.join("layer.json").is_file(),
                "half-made {l:?} after {ms} ms"
            );
        }
        assert_eq!(e.count("tmp"), 0, "temp files survived (kill at {ms} ms)");
    }
    e.load(&oci(&[Image::new(
        vec![base(Comp::Zstd), top("k\n", Comp::Gzip)],
        &["k:1"],
    )]))
    .ok();
    assert_eq!(e.run("k:1", &["cat", "/file"]), "k\n");
}
