//! The root as an overlay of layer dirs (org.strata.overlay.* annotations) and the
//! detached read-only overlay API: layers, upper dir, options, errors, leftovers.

mod common;

use common::*;
use serde_json::{json, Value};
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use strata::overlay::{LOWERDIR, UPPERDIR, WORKDIR};

/// A sandbox, or None (after printing why) without root or without overlayfs.
fn sandbox(name: &str) -> Option<Test> {
    let has = fs::read_to_string("/proc/filesystems")
        .is_ok_and(|f| f.lines().any(|l| l.ends_with("\toverlay")))
        || strata::overlay::available().is_ok();
    if !has {
        eprintln!("SKIP: {name}: this kernel has no overlayfs");
        return None;
    }
    Test::new(name)
}

/// A layer dir `<test dir>/<rel>` holding `files` (path → content).
fn layer(t: &Test, rel: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = t.mkdir(rel);
    for (p, content) in files {
        let f = d.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, content).unwrap();
    }
    d
}

/// Make `cfg` an overlay root: root.path an empty `rootfs` in the bundle (made by
/// `bundle_dir`), writable unless the test says otherwise, and the annotations.
fn overlay_cfg(cfg: &mut Value, lower: &str, upper: Option<&str>, work: Option<&str>) {
    cfg["root"] = json!({"path": "rootfs", "readonly": false});
    let mut a = serde_json::Map::new();
    a.insert(LOWERDIR.into(), lower.into());
    if let Some(u) = upper {
        a.insert(UPPERDIR.into(), u.into());
    }
    if let Some(w) = work {
        a.insert(WORKDIR.into(), w.into());
    }
    cfg["annotations"] = Value::Object(a);
}

/// A bundle `<test dir>/<tag>` (with an empty `rootfs` dir) running `sh -c script`.
fn bundle(t: &Test, tag: &str, script: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let b = t.bundle(tag, &["sh", "-c", script], edit);
    fs::create_dir_all(b.join("rootfs")).unwrap();
    b
}

fn rootfs() -> String {
    test_rootfs().to_str().unwrap().to_string()
}

/// `strata` with the fallback forced (as on a kernel without `lowerdir+`).
fn fallback(t: &Test, args: &[&str]) -> Output {
    let mut c = t.command(args);
    c.env("STRATA_NO_LOWERDIR_PLUS", "1");
    run_cmd(&mut c, TIMEOUT)
}

/// `run` the bundle in the foreground (optionally with the fallback), check nothing of
/// it is left, and return its output.
fn run(t: &Test, b: &Path, tag: &str, forced_fallback: bool) -> Output {
    let id = t.id(tag);
    let args = ["run", &id, "-b", b.to_str().unwrap()];
    let out = if forced_fallback {
        fallback(t, &args)
    } else {
        t.strata(&args)
    };
    t.assert_no_leftovers(&id);
    out
}

/// Host mount points under the test's dir: there must never be any.
#[track_caller]
fn assert_nothing_mounted_under(t: &Test) {
    let ours: Vec<String> = host_mount_points()
        .into_iter()
        .filter(|m| Path::new(m).starts_with(&t.dir))
        .collect();
    assert!(ours.is_empty(), "mounted on the host: {ours:?}");
}

fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    let r = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

/// The super options (after the fstype and source) of the mount at `/` in a mountinfo.
fn root_super_options(mountinfo: &str) -> (String, Vec<String>) {
    let line = mountinfo
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in {mountinfo}"));
    let post: Vec<&str> = line.split_once(" - ").unwrap().1.split(' ').collect();
    (
        post[0].to_string(),
        post[2].split(',').map(String::from).collect(),
    )
}

#[test]
fn layers_upper_and_whiteouts() {
    let Some(t) = sandbox("ov_layers") else {
        return;
    };
    let top = layer(
        &t,
        "top",
        &[
            ("top", "from top\n"),
            ("shared", "top wins\n"),
            ("d/x", "x\n"),
        ],
    );
    let mid = layer(
        &t,
        "mid",
        &[
            ("mid", "from mid\n"),
            ("shared", "mid loses\n"),
            ("gone", "g\n"),
        ],
    );
    let lower = format!("{}:{}:{}", top.display(), mid.display(), rootfs());
    let upper = t.mkdir("diff");
    let script = "cat /top /mid /shared; echo new > /newfile; echo changed > /mid; \
                  rm /gone; rm -r /d; mkdir /d; echo y > /d/y; ls /d; \
                  cat /proc/self/mountinfo";
    let b = bundle(&t, "b", script, |c| {
        overlay_cfg(c, &lower, Some(upper.to_str().unwrap()), None)
    });
    let out = run(&t, &b, "c", false);
    out.ok();
    let (head, mi) = out.stdout.split_once("y\n").unwrap();
    assert_eq!(head, "from top\nfrom mid\ntop wins\n", "{out:#?}");
    let (fstype, _) = root_super_options(mi);
    assert_eq!(fstype, "overlay", "{mi}");
    // Every change is in the upper dir, and stays there after the container is gone.
    assert_eq!(fs::read_to_string(upper.join("newfile")).unwrap(), "new\n");
    assert_eq!(fs::read_to_string(upper.join("mid")).unwrap(), "changed\n");
    assert_eq!(fs::read_to_string(mid.join("mid")).unwrap(), "from mid\n");
    let wh = fs::symlink_metadata(upper.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device(), "{wh:?}");
    assert_eq!(wh.rdev(), 0, "a whiteout is the 0/0 char device");
    assert_eq!(
        getxattr(&upper.join("d"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..]),
        "recreated dir is not opaque"
    );
    assert_eq!(fs::read_to_string(upper.join("d/y")).unwrap(), "y\n");
    assert!(!upper.join("d/x").exists());
    // The lowers are untouched, the default work dir is beside the upper, mode 0700.
    assert!(mid.join("gone").exists() && top.join("d/x").exists());
    let work = t.dir.join("work");
    assert_eq!(
        fs::metadata(&work).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(fs::read_dir(b.join("rootfs")).unwrap().next().is_none());
    assert_nothing_mounted_under(&t);
}

#[test]
fn mount_options_and_no_host_mount() {
    let Some(t) = sandbox("ov_options") else {
        return;
    };
    let upper = t.mkdir("upper");
    let lower = format!("{}:{}", layer(&t, "l1", &[("a", "a")]).display(), rootfs());
    let (id, pid) = t.run_detached("c", "exec sleep 1000", |c| {
        overlay_cfg(c, &lower, Some(upper.to_str().unwrap()), None);
        fs::create_dir_all(t.dir.join("c/rootfs")).unwrap();
    });
    // While it runs: its / is the overlay, with our options; the host sees nothing.
    let mi = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let (fstype, opts) = root_super_options(&mi);
    assert_eq!(fstype, "overlay", "{mi}");
    assert_eq!(
        opts.iter().filter(|o| o.starts_with("lowerdir+=")).count(),
        2,
        "{opts:?}"
    );
    assert!(opts.iter().any(|o| o.starts_with("upperdir=")), "{opts:?}");
    assert!(opts.iter().any(|o| o.starts_with("workdir=")), "{opts:?}");
    assert!(!opts.iter().any(|o| o == "volatile"), "{opts:?}");
    // overlayfs prints an option only when it differs from the module's default (6.18
    // prints none of these when the defaults are off): either shown as off, or absent
    // with the default off.
    for o in ["redirect_dir", "metacopy", "index"] {
        match opts.iter().find(|x| x.starts_with(&format!("{o}="))) {
            Some(v) => assert_eq!(v, &format!("{o}=off"), "{opts:?}"),
            None => {
                let def = fs::read_to_string(format!("/sys/module/overlay/parameters/{o}"))
                    .unwrap_or_default();
                assert_eq!(def.trim(), "N", "{o} not shown yet on by default: {opts:?}");
            }
        }
    }
    assert_nothing_mounted_under(&t);
    t.force_delete(&id);
    assert_nothing_mounted_under(&t);
}

/// 300 layers (plus the busybox rootfs), each adding one file; returns the bundle.
fn many_layers(t: &Test, script: &str) -> PathBuf {
    let mut names = vec![];
    for i in 0..300 {
        layer(
            t,
            &format!("layers/l{i}"),
            &[(&format!("many/f{i}"), &format!("{i}\n"))],
        );
        names.push(format!("layers/l{i}"));
    }
    names.push(rootfs());
    let lower = names.join(":");
    let b = t.bundle("b", &["sh", "-c", script], |c| {
        overlay_cfg(c, &lower, Some("diff"), None);
        c["root"]["path"] = json!("rootfs");
    });
    // Layer paths are relative to the bundle: put the layers inside it.
    fs::rename(t.dir.join("layers"), b.join("layers")).unwrap();
    fs::create_dir_all(b.join("rootfs")).unwrap();
    fs::create_dir_all(b.join("diff")).unwrap();
    b
}

fn three_hundred(name: &str, forced_fallback: bool, key: &str) {
    let Some(t) = sandbox(name) else {
        return;
    };
    let script = "ls /many | wc -l; cat /many/f0 /many/f299; echo up > /many/f7; \
                  cat /proc/self/mountinfo";
    let b = many_layers(&t, script);
    let out = run(&t, &b, "c", forced_fallback);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines[..3], ["300", "0", "299"], "{out:#?}");
    let (_, opts) = root_super_options(&out.stdout);
    let n = opts.iter().filter(|o| o.starts_with(key)).count();
    assert!(n >= 1, "no {key} in {opts:?}");
    assert_eq!(fs::read_to_string(b.join("diff/many/f7")).unwrap(), "up\n");
    assert_eq!(
        fs::read_to_string(b.join("layers/l7/many/f7")).unwrap(),
        "7\n"
    );
    assert_nothing_mounted_under(&t);
}

#[test]
fn three_hundred_layers() {
    three_hundred("ov_300", false, "lowerdir+=");
}

#[test]
fn three_hundred_layers_without_lowerdir_plus() {
    // mount(2) with "lowerdir=3:4:...": one string of fd numbers.
    three_hundred("ov_300_fallback", true, "lowerdir=");
}

#[test]
fn readonly_root_over_overlay() {
    let Some(t) = sandbox("ov_readonly") else {
        return;
    };
    let upper = t.mkdir("diff");
    let lower = rootfs();
    let b = bundle(&t, "b", "touch /x 2>&1; echo rc=$?", |c| {
        overlay_cfg(c, &lower, Some("../diff"), None);
        c["root"]["readonly"] = json!(true);
    });
    let out = run(&t, &b, "c", false);
    out.ok();
    assert!(out.stdout.contains("Read-only file system"), "{out:#?}");
    assert!(out.stdout.ends_with("rc=1\n"), "{out:#?}");
    assert!(fs::read_dir(&upper).unwrap().next().is_none());
}

#[test]
fn lowers_only_is_a_read_only_root() {
    let Some(t) = sandbox("ov_lowers_only") else {
        return;
    };
    // One lower: overlayfs needs two without an upper, strata adds an empty one.
    for (tag, forced) in [("new", false), ("fallback", true)] {
        let b = bundle(&t, tag, "ls /bin/busybox; touch /x 2>&1; echo rc=$?", |c| {
            overlay_cfg(c, &rootfs(), None, None)
        });
        let out = run(&t, &b, tag, forced);
        out.ok();
        assert!(out.stdout.starts_with("/bin/busybox\n"), "{out:#?}");
        assert!(out.stdout.contains("Read-only file system"), "{out:#?}");
    }
    assert_nothing_mounted_under(&t);
}

#[test]
fn no_pivot_with_overlay_root() {
    let Some(t) = sandbox("ov_no_pivot") else {
        return;
    };
    let l = layer(&t, "l", &[("hello", "hi\n")]);
    let lower = format!("{}:{}", l.display(), rootfs());
    let b = bundle(&t, "b", "cat /hello; echo w > /w; ls /", |c| {
        overlay_cfg(c, &lower, Some("diff"), Some("w"))
    });
    fs::create_dir_all(b.join("diff")).unwrap();
    let id = t.id("c");
    let out = t.strata(&["run", "--no-pivot", &id, "-b", b.to_str().unwrap()]);
    out.ok();
    t.assert_no_leftovers(&id);
    assert!(out.stdout.starts_with("hi\n"), "{out:#?}");
    assert!(out.lines().contains(&"linuxrc"), "{out:#?}");
    assert_eq!(fs::read_to_string(b.join("diff/w")).unwrap(), "w\n");
    // An explicit work dir, relative to the bundle, made 0700.
    let w = fs::metadata(b.join("w")).unwrap();
    assert_eq!(w.permissions().mode() & 0o777, 0o700);
    assert_nothing_mounted_under(&t);
}

#[test]
fn root_propagation_with_overlay_root() {
    let Some(t) = sandbox("ov_propagation") else {
        return;
    };
    let lower = rootfs();
    for (tag, p) in [
        ("shared", "rshared"),
        ("private", "private"),
        ("slave", "rslave"),
    ] {
        let upper = t.mkdir(&format!("{tag}/diff"));
        let b = bundle(&t, &format!("b-{tag}"), "cat /proc/self/mountinfo", |c| {
            overlay_cfg(c, &lower, Some(upper.to_str().unwrap()), None);
            c["linux"]["rootfsPropagation"] = json!(p);
        });
        let out = run(&t, &b, tag, false);
        out.ok();
        let line = out
            .stdout
            .lines()
            .rev()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .unwrap()
            .to_string();
        assert!(line.contains(" - overlay "), "{line}");
        let shared = line.split(" - ").next().unwrap().contains(" shared:");
        assert_eq!(shared, p == "rshared", "{p}: {line}");
        assert_nothing_mounted_under(&t);
    }
}

#[test]
fn relative_paths_and_default_workdir() {
    let Some(t) = sandbox("ov_relative") else {
        return;
    };
    let b = bundle(&t, "b", "cat /one /two; echo z > /z", |c| {
        overlay_cfg(
            c,
            &format!("layers/a:layers/b:{}", rootfs()),
            Some("upper/diff"),
            None,
        )
    });
    layer(&t, "b/layers/a", &[("one", "1\n")]);
    layer(&t, "b/layers/b", &[("two", "2\n"), ("one", "hidden\n")]);
    t.mkdir("b/upper/diff");
    let out = run(&t, &b, "c", false);
    out.ok();
    assert_eq!(out.stdout, "1\n2\n");
    assert_eq!(fs::read_to_string(b.join("upper/diff/z")).unwrap(), "z\n");
    // work beside the upper dir: <parent of upperdir>/work.
    assert!(b.join("upper/work").is_dir());
}

#[test]
fn odd_characters_in_layer_paths() {
    let Some(t) = sandbox("ov_odd_names") else {
        return;
    };
    // ',' would split mount options and ':' lowerdir= lists: fds keep them out of both.
    for (tag, forced) in [("new", false), ("fallback", true)] {
        let l = layer(&t, &format!("{tag}/lay,er 1"), &[("f", "odd\n")]);
        let upper = t.mkdir(&format!("{tag}/up:per,x"));
        let lower = format!("{}:{}", l.display(), rootfs());
        let b = bundle(&t, &format!("b-{tag}"), "cat /f; echo u > /u", |c| {
            overlay_cfg(
                c,
                &lower,
                Some(upper.to_str().unwrap()),
                Some(t.dir.join(format!("{tag}/wo:rk,y")).to_str().unwrap()),
            )
        });
        let out = run(&t, &b, tag, forced);
        out.ok();
        assert_eq!(out.stdout, "odd\n");
        assert_eq!(fs::read_to_string(upper.join("u")).unwrap(), "u\n");
    }
}

#[test]
fn no_layer_fd_reaches_the_container() {
    let Some(t) = sandbox("ov_fds") else {
        return;
    };
    let lower = format!("{}:{}", layer(&t, "l", &[("f", "f")]).display(), rootfs());
    let upper = t.mkdir("diff");
    let b = t.bundle("b", &["ls", "/proc/self/fd"], |c| {
        overlay_cfg(c, &lower, Some(upper.to_str().unwrap()), None)
    });
    fs::create_dir_all(b.join("rootfs")).unwrap();
    for forced in [false, true] {
        let out = run(&t, &b, if forced { "fallback" } else { "new" }, forced);
        out.ok();
        assert_eq!(out.lines(), ["0", "1", "2", "3"], "{out:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// Errors: one clear line naming the annotation and the path, nothing left behind.

#[test]
fn bad_layers_are_refused() {
    let Some(t) = sandbox("ov_errors") else {
        return;
    };
    let file = t.dir.join("a-file");
    fs::write(&file, "x").unwrap();
    let upper = t.mkdir("upper");
    let u = upper.to_str().unwrap().to_string();
    let missing = t.dir.join("no-such-layer");
    let mut cases: Vec<(&str, String, Option<String>, Vec<String>)> = vec![
        (
            "missing",
            format!("{}:{}", missing.display(), rootfs()),
            Some(u.clone()),
            vec![
                LOWERDIR.into(),
                missing.display().to_string(),
                "No such file".into(),
            ],
        ),
        (
            "file",
            format!("{}:{}", file.display(), rootfs()),
            Some(u.clone()),
            vec![
                LOWERDIR.into(),
                file.display().to_string(),
                "not a directory".into(),
            ],
        ),
        (
            "empty",
            format!("{}::{}", rootfs(), rootfs()),
            Some(u.clone()),
            vec![LOWERDIR.into(), "element 2 is empty".into()],
        ),
        (
            "upper_missing",
            rootfs(),
            Some(missing.display().to_string()),
            vec![UPPERDIR.into(), missing.display().to_string()],
        ),
        (
            "upper_file",
            rootfs(),
            Some(file.display().to_string()),
            vec![
                UPPERDIR.into(),
                file.display().to_string(),
                "not a directory".into(),
            ],
        ),
    ];
    let inner = t.mkdir("upper/inner");
    cases.push((
        "overlap",
        format!("{}:{}", inner.display(), rootfs()),
        Some(u.clone()),
        vec![
            UPPERDIR.into(),
            u.clone(),
            inner.display().to_string(),
            "one contains the other".into(),
        ],
    ));
    for (tag, lower, upper, needles) in cases {
        let b = bundle(&t, tag, "true", |c| {
            overlay_cfg(c, &lower, upper.as_deref(), None)
        });
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        create_fails(&t, &t.id(tag), &b, &needles);
    }
    // An upper dir without lowers, a work dir without an upper dir.
    let b = t.bundle("no_lower", &["true"], |c| {
        c["annotations"] = json!({ UPPERDIR: u });
    });
    create_fails(&t, &t.id("no_lower"), &b, &[UPPERDIR, LOWERDIR]);
    let b = bundle(&t, "no_upper", "true", |c| {
        overlay_cfg(c, &rootfs(), None, Some("w"))
    });
    create_fails(&t, &t.id("no_upper"), &b, &[WORKDIR, UPPERDIR]);
    assert!(!b.join("w").exists());
    // No default work dir beside the upper: it is made only once the layers check out.
    assert!(!t.dir.join("work").exists(), "work dir left behind");
    assert_nothing_mounted_under(&t);
}

#[test]
fn upper_and_work_on_different_filesystems() {
    let Some(t) = sandbox("ov_xdev") else {
        return;
    };
    // /dev/shm is a tmpfs; the test dir is not (if it is, there is nothing to test).
    let shm = PathBuf::from(format!("/dev/shm/strata-test-xdev-{}", std::process::id()));
    fs::create_dir_all(&shm).unwrap();
    let dev = |p: &Path| fs::metadata(p).unwrap().dev();
    if dev(&shm) == dev(&t.dir) {
        eprintln!("SKIP: /dev/shm and {} are one filesystem", t.dir.display());
        let _ = fs::remove_dir_all(&shm);
        return;
    }
    let work = shm.join("work");
    let upper = t.mkdir("upper");
    let b = bundle(&t, "b", "true", |c| {
        overlay_cfg(
            c,
            &rootfs(),
            Some(upper.to_str().unwrap()),
            Some(work.to_str().unwrap()),
        )
    });
    let w = work.display().to_string();
    create_fails(
        &t,
        &t.id("c"),
        &b,
        &[WORKDIR, &w, "not on the filesystem of", UPPERDIR],
    );
    // The work dir it made to check was removed again.
    assert!(!work.exists(), "work dir left behind");
    fs::remove_dir_all(&shm).unwrap();
}

#[test]
fn failure_after_the_mount_leaves_nothing() {
    let Some(t) = sandbox("ov_late_error") else {
        return;
    };
    // The init mounts the overlay, then finds no program: the work dir we made goes too.
    let upper = t.mkdir("upper");
    let b = t.bundle("b", &["/no-such-program"], |c| {
        overlay_cfg(c, &rootfs(), Some(upper.to_str().unwrap()), None)
    });
    fs::create_dir_all(b.join("rootfs")).unwrap();
    for forced in [false, true] {
        let id = t.id(if forced { "fallback" } else { "new" });
        let args = ["create", &id, "-b", b.to_str().unwrap()];
        let out = if forced {
            fallback(&t, &args)
        } else {
            t.strata(&args)
        };
        out.assert_error(&["/no-such-program"]);
        t.assert_no_leftovers(&id);
        assert!(!t.dir.join("work").exists(), "work dir left behind");
        assert_nothing_mounted_under(&t);
    }
}

#[test]
fn overlay_in_a_user_namespace_is_refused() {
    let Some(t) = sandbox("ov_userns") else {
        return;
    };
    let upper = t.mkdir("upper");
    let b = bundle(&t, "b", "true", |c| {
        overlay_cfg(c, &rootfs(), Some(upper.to_str().unwrap()), None);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    });
    create_fails(&t, &t.id("c"), &b, &[LOWERDIR, "user namespace"]);
    assert!(!t.dir.join("work").exists(), "work dir left behind");
}

// ---------------------------------------------------------------------------------------
// One upper dir, one container at a time.

#[test]
fn an_upper_dir_serves_one_container_at_a_time() {
    let Some(t) = sandbox("ov_in_use") else {
        return;
    };
    let upper = t.mkdir("upper");
    let lower = rootfs();
    let mk = |tag: &str| {
        bundle(&t, tag, "sleep 1000", |c| {
            overlay_cfg(c, &lower, Some(upper.to_str().unwrap()), None)
        })
    };
    let (b1, b2) = (mk("b1"), mk("b2"));
    let (a, b) = (t.id("a"), t.id("b"));
    t.strata(&["create", &a, "-b", b1.to_str().unwrap()]).ok();
    let u = upper.display().to_string();
    let msg = format!("in use by container {a}");
    create_fails(&t, &b, &b2, &[UPPERDIR, &u, &msg, "created"]);
    t.strata(&["start", &a]).ok();
    create_fails(&t, &b, &b2, &[&msg, "running"]);
    // The same dir through another path (a symlink) is the same upper dir.
    let link = t.dir.join("upper-link");
    std::os::unix::fs::symlink(&upper, &link).unwrap();
    let b3 = bundle(&t, "b3", "true", |c| {
        overlay_cfg(c, &lower, Some(link.to_str().unwrap()), None)
    });
    create_fails(&t, &b, &b3, &[&msg]);
    // Another upper dir beside it would share the default work dir: refused too.
    let other = t.mkdir("other-upper");
    let b4 = bundle(&t, "b4", "true", |c| {
        overlay_cfg(c, &lower, Some(other.to_str().unwrap()), None)
    });
    let w = t.dir.join("work").display().to_string();
    create_fails(&t, &b, &b4, &[WORKDIR, &w, &msg]);
    // Once the first is gone, the upper dir is free again.
    t.force_delete(&a);
    t.strata(&["create", &b, "-b", b2.to_str().unwrap()]).ok();
    t.force_delete(&b);
}

#[test]
fn parallel_creates_with_one_upper_dir() {
    let Some(t) = sandbox("ov_parallel") else {
        return;
    };
    let upper = t.mkdir("upper");
    let lower = rootfs();
    // Four creates at once: the claim and the provisional state share one lock, so
    // exactly one wins however they interleave.
    let runs: Vec<(String, Running)> = (0..4)
        .map(|i| {
            let b = bundle(&t, &format!("b{i}"), "sleep 1000", |c| {
                overlay_cfg(c, &lower, Some(upper.to_str().unwrap()), None)
            });
            let id = t.id(&format!("c{i}"));
            let mut cmd = t.command(&["create", &id, "-b", b.to_str().unwrap()]);
            (id, Running::spawn(&mut cmd))
        })
        .collect();
    let outs: Vec<(String, Output)> = runs
        .into_iter()
        .map(|(id, r)| (id, r.wait(TIMEOUT)))
        .collect();
    let won: Vec<&String> = outs
        .iter()
        .filter(|(_, o)| o.code == 0)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(won.len(), 1, "{outs:#?}");
    for (id, o) in &outs {
        if o.code != 0 {
            o.assert_error(&[UPPERDIR, "in use by container"]);
            t.assert_no_leftovers(id);
        }
    }
    t.force_delete(won[0]);
}

// ---------------------------------------------------------------------------------------
// The detached read-only overlay (for the image tool's export).

fn open_dir(p: &Path) -> OwnedFd {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    assert!(fd >= 0, "open {}", p.display());
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn read_at(dir: &OwnedFd, name: &str) -> std::io::Result<String> {
    use std::io::Read;
    let c = CString::new(name).unwrap();
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut s = String::new();
    fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }).read_to_string(&mut s)?;
    Ok(s)
}

fn check_readonly_overlay(t: &Test, tag: &str) {
    let top = layer(t, &format!("{tag}/top"), &[("a", "top a\n"), ("t", "t\n")]);
    let bottom = layer(
        t,
        &format!("{tag}/bottom"),
        &[("a", "bottom a\n"), ("b", "b\n")],
    );
    let (top, bottom) = (open_dir(&top), open_dir(&bottom));
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let m = strata::overlay::mount_readonly(&[top.as_fd(), bottom.as_fd()]).unwrap();
    assert_eq!(read_at(&m, "a").unwrap(), "top a\n");
    assert_eq!(read_at(&m, "b").unwrap(), "b\n");
    assert_eq!(read_at(&m, "t").unwrap(), "t\n");
    let c = CString::new("new").unwrap();
    let w = unsafe {
        libc::openat(
            m.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
            0o644,
        )
    };
    assert_eq!(w, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EROFS)
    );
    // Visible in no mount namespace, even while open; gone once closed.
    assert_eq!(
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(" - overlay "))
            .count(),
        before.lines().filter(|l| l.contains(" - overlay ")).count()
    );
    drop(m);
    // A single lower (overlayfs alone would refuse it without an upper dir).
    let m = strata::overlay::mount_readonly(&[bottom.as_fd()]).unwrap();
    assert_eq!(read_at(&m, "a").unwrap(), "bottom a\n");
    drop(m);
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ov = |s: &str| s.lines().filter(|l| l.contains(" - overlay ")).count();
    assert_eq!(ov(&after), ov(&before), "{after}");
}

#[test]
fn detached_read_only_overlay() {
    let Some(t) = sandbox("ov_api") else {
        return;
    };
    assert!(strata::overlay::mount_readonly(&[]).is_err());
    check_readonly_overlay(&t, "new");
    // As on a kernel without lowerdir+: fd numbers in one fsconfig string, which holds
    // some 60 layers; more is a clear error.
    strata::overlay::disable_lowerdir_plus();
    check_readonly_overlay(&t, "fallback");
    let dirs: Vec<OwnedFd> = (0..100)
        .map(|i| open_dir(&layer(&t, &format!("many/{i}"), &[])))
        .collect();
    let fds: Vec<_> = dirs.iter().map(|d| d.as_fd()).collect();
    let e = strata::overlay::mount_readonly(&fds).unwrap_err();
    assert!(format!("{e:#}").contains("lowerdir+"), "{e:#}");
}

#[test]
fn features_list_the_annotations() {
    let out = run_cmd(Command::new(STRATA).arg("features"), TIMEOUT);
    out.ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    for k in [LOWERDIR, UPPERDIR, WORKDIR] {
        assert!(v["annotations"][k].is_string(), "{k}: {}", v["annotations"]);
    }
}
