//! Security: sealed init exe, symlinked /proc /sys /dev and mount targets, fd leaks, cwd escapes, caps.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

#[test]
fn init_exe_is_not_writable_and_not_the_host_binary() {
    let Some(t) = Test::new("exe") else { return };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    let pid = t.pid(&id);
    let exe = format!("/proc/{pid}/exe");
    for trunc in [false, true] {
        let err = fs::OpenOptions::new()
            .write(true)
            .truncate(trunc)
            .open(&exe)
            .expect_err("the init's exe opened for writing");
        assert!(
            matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)),
            "unexpected error opening {exe} for writing: {err}"
        );
    }
    let target = fs::read_link(&exe).unwrap();
    let host = fs::canonicalize(STRATA).unwrap();
    assert_ne!(
        target, host,
        "the init runs the host strata binary directly"
    );
    // Still the same strata code, just reached through a sealed view.
    assert_eq!(fs::read(&exe).unwrap(), fs::read(&host).unwrap());
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

/// A private rootfs copy whose `name` entry is replaced by a symlink to `target`. With
/// `inside`, the directory the link names also exists *inside* the rootfs (the link is
/// not dangling there), so only a runtime that follows it on the host would miss it.
fn rootfs_with_link(
    t: &Test,
    tag: &str,
    name: &str,
    target: &Path,
    inside: Option<&Path>,
) -> PathBuf {
    let r = t.rootfs_copy(tag);
    let p = r.join(name);
    if p.is_dir() {
        fs::remove_dir_all(&p).unwrap();
    }
    symlink(target, &p).unwrap();
    if let Some(d) = inside {
        fs::create_dir_all(r.join(d.strip_prefix("/").unwrap())).unwrap();
    }
    r
}

/// Host directory with a marker file, to check it is never mounted on or written to.
fn host_dir(t: &Test, rel: &str) -> PathBuf {
    let d = t.mkdir(rel);
    fs::write(d.join("marker"), "host\n").unwrap();
    d
}

#[track_caller]
fn assert_host_dir_untouched(d: &Path) {
    let names: Vec<_> = fs::read_dir(d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["marker"], "host dir {} was written to", d.display());
    assert_eq!(fs::read_to_string(d.join("marker")).unwrap(), "host\n");
    let mps = host_mount_points();
    assert!(
        !mps.iter().any(|m| Path::new(m).starts_with(d)),
        "something was mounted on the host at {}",
        d.display()
    );
}

/// /proc, /sys and /dev as symlinks (to a host path, and to /etc inside the rootfs) are
/// refused with a message about the symlink, leaving nothing behind; also when /sys or
/// /dev is a bind mount of the host's (as `spec --rootless` makes /sys).
fn symlinked_special_dirs_are_refused(t: Test) {
    let host = host_dir(&t, "hostdir");
    // (name, how /name is mounted: its filesystem, a bind of the host's, or not at all)
    let cases = [
        ("proc", "fs"),
        ("sys", "fs"),
        ("dev", "fs"),
        ("sys", "bind"),
        ("dev", "bind"),
        ("dev", "none"),
    ];
    for (i, (name, how)) in cases.into_iter().enumerate() {
        for (j, target) in [host.clone(), PathBuf::from("/etc")]
            .into_iter()
            .enumerate()
        {
            let tag = format!("{name}{j}-{how}");
            let rootfs = rootfs_with_link(&t, &format!("rootfs-{tag}"), name, &target, Some(&host));
            let b = t.bundle(&format!("b-{tag}"), &["true"], |c| {
                set_root(c, &rootfs);
                if how == "none" {
                    // Device nodes then go straight into the image's /dev.
                    let ms = c["mounts"].as_array_mut().unwrap();
                    ms.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
                }
                if how == "bind" {
                    for m in c["mounts"].as_array_mut().unwrap() {
                        if m["destination"] == format!("/{name}") {
                            *m = json!({"destination": format!("/{name}"), "type": "bind",
                                "source": format!("/{name}"), "options": ["rbind", "nosuid", "noexec", "ro"]});
                        }
                    }
                }
            });
            let id = t.id(&format!("c{i}{j}"));
            t.strata(&["run", &id, "-b", b.to_str().unwrap()])
                .assert_error(&[&format!("/{name}"), "symlink"]);
            t.assert_no_leftovers(&id);
            assert_host_dir_untouched(&host);
            // Nothing was created through the link inside the rootfs either.
            let mut etc: Vec<_> = fs::read_dir(rootfs.join("etc"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .collect();
            etc.sort();
            assert_eq!(
                etc,
                ["group", "hostname", "passwd"],
                "{name} -> {}",
                target.display()
            );
        }
    }
}

#[test]
fn symlinked_proc_sys_dev_are_refused() {
    let Some(t) = Test::new("special_links") else {
        return;
    };
    symlinked_special_dirs_are_refused(t);
}

#[test]
fn symlinked_proc_sys_dev_are_refused_without_openat2() {
    let Some(t) = Test::new("special_links_fb") else {
        return;
    };
    symlinked_special_dirs_are_refused(t.no_openat2());
}

/// A mount destination that is a symlink pointing at a host path (absolute, or climbing
/// with ../) gets its mount inside the rootfs, never on the host path.
fn symlinked_mount_destination_stays_inside(t: Test) {
    let host = host_dir(&t, "hostdir");
    let src = t.mkdir("bindsrc");
    fs::write(src.join("payload"), "p\n").unwrap();
    let climbing = PathBuf::from(format!("../../../../../../../..{}", host.display()));
    for (i, target) in [host.clone(), climbing].into_iter().enumerate() {
        for (j, kind) in ["tmpfs", "bind"].into_iter().enumerate() {
            let tag = format!("{i}{j}");
            let rootfs = rootfs_with_link(&t, &format!("rootfs{tag}"), "mnt", &target, Some(&host));
            let b = t.bundle(
                &format!("b{tag}"),
                &[
                    "sh",
                    "-c",
                    "echo inside > /mnt/written; ls -A /mnt; echo ===; cat /proc/self/mountinfo",
                ],
                |c| {
                    set_root(c, &rootfs);
                    if kind == "tmpfs" {
                        add_mount(
                            c,
                            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"}),
                        );
                    } else {
                        bind_mount(c, &src, "/mnt", false);
                    }
                },
            );
            let id = t.id(&format!("c{tag}"));
            let out = t.strata(&["run", &id, "-b", b.to_str().unwrap()]);
            t.assert_no_leftovers(&id);
            assert_host_dir_untouched(&host);
            out.ok();
            let (ls, mi) = out.stdout.split_once("===\n").unwrap();
            let mut ls: Vec<&str> = ls.lines().collect();
            ls.sort();
            let want: &[&str] = if kind == "tmpfs" {
                &["written"]
            } else {
                &["payload", "written"]
            };
            assert_eq!(ls, want, "{kind} via {}", target.display());
            // The container sees the mount at the link's target resolved in its own root.
            let mounts = parse_mountinfo(mi);
            let m = find_mount(&mounts, host.to_str().unwrap())
                .unwrap_or_else(|| panic!("no mount at {} inside:\n{mi}", host.display()));
            if kind == "tmpfs" {
                assert_eq!(m.fstype, "tmpfs", "{m:?}");
            } else {
                assert_eq!(m.root, src.to_str().unwrap(), "{m:?}");
            }
            if kind == "bind" {
                assert_eq!(fs::read_to_string(src.join("written")).unwrap(), "inside\n");
                fs::remove_file(src.join("written")).unwrap();
            }
        }
    }
}

#[test]
fn symlinked_mount_destination_stays_in_rootfs() {
    let Some(t) = Test::new("dest_link") else {
        return;
    };
    symlinked_mount_destination_stays_inside(t);
}

#[test]
fn symlinked_mount_destination_stays_in_rootfs_without_openat2() {
    let Some(t) = Test::new("dest_link_fb") else {
        return;
    };
    symlinked_mount_destination_stays_inside(t.no_openat2());
}

/// Both resolvers: a sandbox using openat2, and one forced onto the fallback walk.
fn both_resolvers(name: &str) -> Vec<Test> {
    let Some(t) = Test::new(name) else {
        return vec![];
    };
    let Some(fb) = Test::new(&format!("{name}_fb")) else {
        return vec![];
    };
    vec![t, fb.no_openat2()]
}

/// A mount destination that is a symlink *dangling* inside the rootfs (its target exists
/// only on the host) gets the target created inside the rootfs and mounted there, as runc
/// does (securejoin's MkdirAllInRoot).
#[test]
fn dangling_mount_destination_symlink_is_created_inside() {
    for t in both_resolvers("dangling_mnt") {
        let host = host_dir(&t, "hostdir");
        let rootfs = rootfs_with_link(&t, "rootfs", "mnt", &host, None);
        let b = t.bundle(
            "b",
            &["sh", "-c", "echo inside > /mnt/written; ls -A /mnt"],
            |c| {
                set_root(c, &rootfs);
                add_mount(
                    c,
                    json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"}),
                );
            },
        );
        let id = t.id("c");
        let out = t.strata(&["run", &id, "-b", b.to_str().unwrap()]);
        t.assert_no_leftovers(&id);
        assert_host_dir_untouched(&host);
        out.ok();
        assert_eq!(out.stdout, "written\n");
        assert!(rootfs.join(host.strip_prefix("/").unwrap()).is_dir());
    }
}

/// A /dev symlink dangling inside the rootfs is refused with a message about the symlink.
#[test]
fn dangling_dev_symlink_is_refused_as_a_symlink() {
    for t in both_resolvers("dangling_dev") {
        let host = host_dir(&t, "hostdir");
        let rootfs = rootfs_with_link(&t, "rootfs", "dev", &host, None);
        let b = t.bundle("b", &["true"], |c| set_root(c, &rootfs));
        let id = t.id("c");
        t.strata(&["run", &id, "-b", b.to_str().unwrap()])
            .assert_error(&["/dev", "symlink"]);
        t.assert_no_leftovers(&id);
        assert_host_dir_untouched(&host);
    }
}

/// Open host files as fds 5 (a file) and 6 (a directory) in the strata process.
fn with_extra_fds(t: &Test, cmd: &mut std::process::Command) -> (fs::File, fs::File) {
    let f = fs::File::create(t.dir.join("leaky-file")).unwrap();
    let d = fs::File::open(host_dir(t, "leaky-dir")).unwrap();
    pass_fds(cmd, &[(f.as_raw_fd(), 5), (d.as_raw_fd(), 6)]);
    (f, d)
}

#[test]
fn no_fd_leaks_into_the_container() {
    let Some(t) = Test::new("fds") else { return };
    // The mechanism really hands fds 5 and 6 to a child.
    let mut probe = std::process::Command::new("ls");
    probe.arg("/proc/self/fd");
    let _keep = with_extra_fds(&t, &mut probe);
    let seen = run_cmd(&mut probe, TIMEOUT);
    assert!(
        seen.lines().contains(&"5") && seen.lines().contains(&"6"),
        "{seen:#?}"
    );

    // run
    let b = t.bundle("b", &["ls", "/proc/self/fd"], |_| {});
    let id = t.id("run");
    let mut cmd = t.command(&["run", &id, "-b", b.to_str().unwrap()]);
    let _keep = with_extra_fds(&t, &mut cmd);
    let out = run_cmd(&mut cmd, TIMEOUT);
    out.ok();
    assert_eq!(out.lines(), ["0", "1", "2", "3"], "{out:#?}");
    t.assert_no_leftovers(&id);

    // create + start: the init outlives the create that had the fds
    let outdir = t.mkdir("out");
    let b = t.bundle("b2", &["sh", "-c", "ls /proc/self/fd > /out/fds"], |c| {
        bind_mount(c, &outdir, "/out", false)
    });
    let id = t.id("create");
    let mut cmd = t.command(&["create", &id, "-b", b.to_str().unwrap()]);
    let _keep = with_extra_fds(&t, &mut cmd);
    run_cmd(&mut cmd, TIMEOUT).ok();
    t.strata(&["start", &id]).ok();
    t.wait_status(&id, "stopped");
    assert_eq!(
        fs::read_to_string(outdir.join("fds")).unwrap(),
        "0\n1\n2\n3\n"
    );
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn preserve_fds_passes_exactly_n_fds() {
    let Some(t) = Test::new("preserve_fds") else {
        return;
    };
    let files: Vec<fs::File> = (3..=5)
        .map(|n| {
            let p = t.dir.join(format!("fd{n}"));
            fs::write(&p, format!("content-{n}\n")).unwrap();
            fs::File::open(&p).unwrap()
        })
        .collect();
    let b = t.bundle(
        "b",
        &[
            "sh",
            "-c",
            "cat <&3; cat <&4; { cat <&5; } 2>/dev/null || echo no-fd-5",
        ],
        |_| {},
    );
    let id = t.id("c");
    let mut cmd = t.command(&["run", "--preserve-fds", "2", &id, "-b", b.to_str().unwrap()]);
    let pairs: Vec<(i32, i32)> = files
        .iter()
        .zip(3..)
        .map(|(f, n)| (f.as_raw_fd(), n))
        .collect();
    pass_fds(&mut cmd, &pairs);
    let out = run_cmd(&mut cmd, TIMEOUT);
    out.ok();
    assert_eq!(out.stdout, "content-3\ncontent-4\nno-fd-5\n");
    t.assert_no_leftovers(&id);
}

#[test]
fn new_session_keyring_unless_asked_not_to() {
    let Some(t) = Test::new("keyring") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let keys = || fs::read_to_string("/proc/keys").unwrap_or_default();
    for (tag, flags, want) in [
        ("new", &[][..], true),
        ("keep", &["--no-new-keyring"][..], false),
    ] {
        let id = t.id(tag);
        let mut args = vec!["create", &id, "-b", b.to_str().unwrap()];
        args.extend_from_slice(flags);
        t.strata(&args).ok();
        let name = format!("_ses.{id}:");
        assert_eq!(keys().contains(&name), want, "{tag}: {}", keys());
        t.strata(&["delete", &id]).ok();
        t.assert_no_leftovers(&id);
    }
}

/// `pwd; ls -A` run with `cwd`: refused naming process.cwd (true), or run somewhere that
/// is neither the test's dir nor one of the host dirs passed as fds (false).
#[track_caller]
fn cwd_refused_or_contained(t: &Test, out: &Output, cwd: &str, code: i32) -> bool {
    if out.code != 0 {
        out.assert_error_code(code, &["process.cwd", cwd]);
        return true;
    }
    let l = out.lines();
    assert!(
        l[0].starts_with('/') && !l[0].contains(t.dir.to_str().unwrap()),
        "{out:#?}"
    );
    assert!(
        !l.contains(&"marker") && !l.contains(&"leaky-file"),
        "host dir reached: {out:#?}"
    );
    false
}

#[test]
fn cwd_cannot_escape_through_proc_self_fd() {
    let Some(t) = Test::new("cwd_escape") else {
        return;
    };
    let mut refused = 0;
    for n in 3..=15 {
        let cwd = format!("/proc/self/fd/{n}");
        let b = t.bundle(&format!("b{n}"), &["sh", "-c", "pwd; ls -A"], |c| {
            c["process"]["cwd"] = json!(cwd)
        });
        let id = t.id(&format!("c{n}"));
        let mut cmd = t.command(&["run", &id, "-b", b.to_str().unwrap()]);
        let _keep = with_extra_fds(&t, &mut cmd);
        let out = run_cmd(&mut cmd, TIMEOUT);
        t.assert_no_leftovers(&id);
        refused += cwd_refused_or_contained(&t, &out, &cwd, 1) as usize;
    }
    assert!(refused > 0, "no /proc/self/fd/N cwd was refused");
    // Climbing out with .. stays at the container's root.
    let host = host_dir(&t, "climb");
    let cwd = format!("/../../../../..{}", host.display());
    let b = t.bundle("climb", &["pwd"], |c| c["process"]["cwd"] = json!(cwd));
    let id = t.id("climb");
    t.strata(&["run", &id, "-b", b.to_str().unwrap()])
        .assert_error(&["process.cwd"]);
    t.assert_no_leftovers(&id);
}

#[test]
fn capabilities_never_exceed_the_config() {
    let Some(t) = Test::new("bounding") else {
        return;
    };
    let out = t.sh("c", "grep ^Cap /proc/self/status", |c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"]
        });
    });
    let field = |f: &str| {
        let v = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{f}:")))
            .unwrap_or_else(|| panic!("no {f}: {out}"));
        u64::from_str_radix(v.trim(), 16).unwrap()
    };
    assert_eq!(field("CapBnd"), 1 << 5 | 1 << 0, "{out}");
    assert_eq!(field("CapEff"), 1 << 5, "{out}");
    assert_eq!(field("CapPrm"), 1 << 5, "{out}");
    assert_eq!(field("CapInh"), 0, "{out}");
    assert_eq!(field("CapAmb"), 0, "{out}");
    // A configured capability the runtime itself lacks (CAP_SYS_RESOURCE is not in this
    // machine's bounding set) is not conjured up either.
    let host_bnd = fs::read_to_string("/proc/self/status").unwrap();
    let host_bnd = host_bnd
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let out = t.sh("all", "grep ^CapBnd /proc/self/status", |c| {
        let all = json!(["CAP_SYS_RESOURCE", "CAP_SYS_ADMIN", "CAP_KILL"]);
        c["process"]["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
    });
    let bnd = u64::from_str_radix(out.trim().strip_prefix("CapBnd:").unwrap().trim(), 16).unwrap();
    assert_eq!(
        bnd & !host_bnd,
        0,
        "container has caps the host lacks: {bnd:x}"
    );
    assert_eq!(bnd & !(1 << 24 | 1 << 21 | 1 << 5), 0, "{bnd:x}");
}

// --- escape classes pinned down one by one ---------------------------------------------

/// CVE-2025-31133: /dev/null swapped (by a createContainer hook, between the device
/// nodes and the masking) for a symlink to a procfs file, a regular file or another
/// device: masking refuses it instead of mounting that over the masked path.
#[test]
fn masking_refuses_a_swapped_dev_null() {
    let Some(t) = Test::new("devnull_swap") else {
        return;
    };
    let null = test_rootfs().join("dev/null");
    let null = null.display();
    let mask = |c: &mut serde_json::Value, swap: &str| {
        c["linux"]["maskedPaths"] = json!(["/etc/hostname"]);
        if !swap.is_empty() {
            let sh = format!("/bin/rm {null} && {swap}");
            c["hooks"] =
                json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", sh]}]});
        }
    };
    // Control: masking really uses /dev/null.
    let out = t.sh("ok", "wc -c < /etc/hostname", |c| mask(c, ""));
    assert_eq!(out.trim(), "0");
    for (tag, swap, needle) in [
        (
            "link",
            format!("/bin/ln -s /proc/sys/kernel/core_pattern {null}"),
            "/dev/null",
        ),
        (
            "file",
            format!("/usr/bin/touch {null}"),
            "not the null device",
        ),
        (
            "zero",
            format!("/bin/mknod -m 666 {null} c 1 5"),
            "not the null device",
        ),
    ] {
        let b = t.bundle(tag, &["true"], |c| mask(c, &swap));
        create_fails(&t, &t.id(tag), &b, &["linux.maskedPaths", needle]);
    }
}

/// CVE-2016-9962: a process exec'd into a created container cannot look into the
/// init's fds or exe while it is still strata (non-dumpable); once it is the user's
/// program, it can (so the check can tell).
#[test]
fn a_created_init_cannot_be_inspected_from_the_container() {
    let Some(t) = Test::new("init_dumpable") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    // (Listing /proc/1/fd is allowed to its owner, root; following an fd is not.)
    let probe = "readlink /proc/1/fd/0 >/dev/null 2>&1 && echo fd; \
                 readlink /proc/1/exe >/dev/null 2>&1 && echo exe; \
                 cat /proc/1/environ >/dev/null 2>&1 && echo environ; echo end";
    let out = t.strata(&["exec", &id, "sh", "-c", probe]);
    assert_eq!(out.ok().lines(), ["end"], "the created init is inspectable");
    t.strata(&["start", &id]).ok();
    t.wait_status(&id, "running");
    assert!(wait_until(TIMEOUT, || {
        fs::read_link(format!("/proc/{}/exe", t.pid(&id))).is_ok_and(|e| e.ends_with("busybox"))
    }));
    let out = t.strata(&["exec", &id, "sh", "-c", probe]);
    assert_eq!(out.ok().lines(), ["fd", "exe", "environ", "end"]);
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}

/// CVE-2019-5736 for `exec`: the strata process that waits for an exec'd program runs
/// from the sealed copy too, never the host binary the container could reach.
#[test]
fn exec_runs_from_the_sealed_copy() {
    let Some(t) = Test::new("exec_sealed") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    let run = Running::spawn(&mut t.command(&["exec", &id, "sleep", "30"]));
    let exe = format!("/proc/{}/exe", run.child.id());
    let host = fs::canonicalize(STRATA).unwrap();
    // Sealing happens first thing; wait for the re-exec.
    assert!(
        wait_until(TIMEOUT, || fs::read_link(&exe).is_ok_and(|e| e != host)),
        "exec runs {:?}",
        fs::read_link(&exe)
    );
    let err = fs::OpenOptions::new()
        .write(true)
        .open(&exe)
        .expect_err("exec's exe opened for writing");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)),
        "{err}"
    );
    assert_eq!(fs::read(&exe).unwrap(), fs::read(&host).unwrap());
    t.strata(&["delete", "--force", &id]).ok();
    let out = run.wait(TIMEOUT);
    assert_ne!(out.code, 0, "exec outlived its container: {out:#?}");
    t.assert_no_leftovers(&id);
}

/// CVE-2024-21626 for `exec --cwd`: no fd of strata (or of its caller) can be the
/// exec'd process's way out to the host.
#[test]
fn exec_cwd_cannot_escape_through_proc_self_fd() {
    let Some(t) = Test::new("exec_cwd_escape") else {
        return;
    };
    let b = t.bundle("b", &["sleep", "1000"], |_| {});
    let id = t.id("c");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .ok();
    let mut refused = 0;
    for n in 3..=15 {
        let cwd = format!("/proc/self/fd/{n}");
        let mut cmd = t.command(&["exec", "--cwd", &cwd, &id, "sh", "-c", "pwd; ls -A"]);
        let _keep = with_extra_fds(&t, &mut cmd);
        let out = run_cmd(&mut cmd, TIMEOUT);
        refused += cwd_refused_or_contained(&t, &out, &cwd, 255) as usize;
    }
    assert!(refused > 0, "no /proc/self/fd/N cwd was refused");
    t.strata(&["delete", "--force", &id]).ok();
    t.assert_no_leftovers(&id);
}

/// CVE-2023-25809: without a cgroup namespace the container sees its cgroups through
/// bind mounts, and they are read-only too (every v1 hierarchy and the v2 one).
#[test]
fn cgroupfs_is_read_only_without_a_cgroup_namespace() {
    let Some(t) = Test::new("cgroup_ro_nons") else {
        return;
    };
    let out = t.sh(
        "c",
        "for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do mkdir ${d}strata-x 2>/dev/null \
         && echo \"made $d\"; done; echo end",
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "cgroup");
        },
    );
    assert_eq!(out, "end\n", "a cgroup dir was writable");
}

/// A host directory with a tmpfs mounted at `sub` below it, unmounted when dropped.
struct HostTree(PathBuf);

impl HostTree {
    fn new(t: &Test, rel: &str) -> Option<HostTree> {
        let d = t.mkdir(rel);
        let sub = d.join("sub");
        fs::create_dir(&sub).unwrap();
        let c = std::ffi::CString::new(sub.to_str().unwrap()).unwrap();
        let r = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                c.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            eprintln!(
                "SKIP: {}: cannot mount a tmpfs on the host ({})",
                t.name,
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(HostTree(d))
    }
}

impl Drop for HostTree {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.join("sub").to_str().unwrap()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn in_userns(c: &mut serde_json::Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["uidMappings"] = map.clone();
    c["linux"]["gidMappings"] = map;
}

/// `ro` on an rbind is read-only all the way down (runc 1.1 leaves the submounts
/// writable); the recursive `r*` options reach the submounts too, and plain flags stay
/// on the top mount. With `/sys` bound `rbind,ro` and no cgroup namespace (what rootless
/// configs do), no cgroup hierarchy is writable inside (CVE-2023-25809 class).
fn rbind_ro_reaches_submounts(t: Test, userns: bool) {
    let Some(tree) = HostTree::new(&t, "tree") else {
        return;
    };
    let script = "touch /mnt/sub/x 2>/dev/null && echo WROTE; \
        awk '$5==\"/mnt/sub\" || $5==\"/ro/sub\" {print $5, $6}' /proc/self/mountinfo; \
        awk '$5 ~ /^\\/sys/ && $6 !~ /^ro/ {print \"rw:\", $5}' /proc/self/mountinfo; \
        for d in /sys/fs/cgroup/*/; do mkdir ${d}strata-x 2>/dev/null && echo \"made $d\"; done; \
        echo end";
    let out = t.sh("c", script, |c| {
        if userns {
            in_userns(c);
        }
        add_mount(
            c,
            json!({"destination": "/mnt", "type": "bind", "source": tree.0, "options": ["rbind", "ro"]}),
        );
        add_mount(
            c,
            json!({"destination": "/ro", "type": "bind", "source": tree.0,
                   "options": ["rbind", "rnosuid", "rnodev", "rnoexec"]}),
        );
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
        for m in mounts.iter_mut().filter(|m| m["destination"] == "/sys") {
            *m = json!({"destination": "/sys", "type": "bind", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "cgroup");
        // Enough rights to write to a writable cgroupfs, were one left.
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_DAC_OVERRIDE"));
        }
    });
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        !out.contains("WROTE"),
        "a submount of an rbind,ro was writable: {out}"
    );
    let opts = |mp: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(mp))
            .unwrap_or_else(|| panic!("{mp} not mounted: {out}"))
            .trim()
            .split(',')
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(opts("/mnt/sub ")[0], "ro", "{out}");
    let ro_sub = opts("/ro/sub ");
    assert_eq!(ro_sub[0], "rw", "{out}");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(ro_sub.iter().any(|x| x == o), "/ro/sub lacks {o}: {out}");
    }
    assert!(
        !out.contains("rw: "),
        "a mount under /sys is writable: {out}"
    );
    assert!(!out.contains("made "), "a host cgroup was made: {out}");
    assert!(out.ends_with("end\n"), "{out}");
    assert!(
        cgroup_dirs_of("strata-x").is_empty(),
        "a cgroup was created on the host"
    );
}

#[test]
fn rbind_ro_is_read_only_all_the_way_down() {
    if let Some(t) = Test::new("rbind_ro") {
        rbind_ro_reaches_submounts(t, false);
    }
}

#[test]
fn rbind_ro_is_read_only_all_the_way_down_in_a_user_namespace() {
    if let Some(t) = Test::new("rbind_ro_userns") {
        rbind_ro_reaches_submounts(t, true);
    }
}

/// The same without mount_setattr: the bind is attached, then each mount remounted.
#[test]
fn rbind_ro_is_read_only_all_the_way_down_without_mount_setattr() {
    if let Some(t) = Test::new("rbind_ro_remount") {
        rbind_ro_reaches_submounts(t.with_env("STRATA_NO_MOUNT_SETATTR", "1"), false);
    }
    if let Some(t) = Test::new("rbind_ro_remount_userns") {
        rbind_ro_reaches_submounts(t.with_env("STRATA_NO_MOUNT_SETATTR", "1"), true);
    }
}
