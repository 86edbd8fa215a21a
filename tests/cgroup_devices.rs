//! Device cgroup rules against the real kernel: v1 devices.allow/deny and the cgroup2 eBPF
//! filter, checked by what a process inside the cgroup can open.

use oci_spec::runtime::LinuxDeviceCgroup;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use strata::cgroups::devices::{apply_v1, apply_v2, default_rules};

const V1_ROOT: &str = "/sys/fs/cgroup/devices";
// Not allowed by default: c 10:237 and b 7:0; opening them (without ioctls) is harmless.
const CHAR_DENIED: &str = "/dev/loop-control";
const BLOCK_DENIED: &str = "/dev/loop0";

fn rule(
    allow: bool,
    t: &str,
    major: Option<i64>,
    minor: Option<i64>,
    access: Option<&str>,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(t.parse().unwrap()));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(access.map(String::from));
    r
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn is_fs(path: &str, magic: i64) -> bool {
    let c = CString::new(path).unwrap();
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == magic }
}

/// The cgroup2 mount: /sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup on unified ones.
fn v2_root() -> Option<&'static str> {
    const CGROUP2: i64 = 0x6367_7270;
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|p| is_fs(p, CGROUP2))
}

/// A uniquely named cgroup dir, removed on drop (after its processes have gone).
struct Cg(PathBuf);

impl Cg {
    fn new(root: &str, tag: &str) -> Cg {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = Path::new(root).join(format!("strata-devtest-{}-{tag}-{n}", std::process::id()));
        fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        Cg(p)
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        for _ in 0..200 {
            match fs::remove_dir(&self.0) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return,
            }
        }
    }
}

/// Run `sh -c script` inside the cgroup; Ok(stdout) or Err(stderr).
fn sh_in(cg: &Cg, script: &str) -> Result<String, String> {
    let procs = CString::new(cg.0.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Writing "0" moves the writer itself; only async-signal-safe calls after fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if n != 1 {
                return Err(err);
            }
            Ok(())
        })
    };
    let out = cmd.output().expect("spawn sh in the cgroup");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn assert_ok(cg: &Cg, script: &str) -> String {
    sh_in(cg, script).unwrap_or_else(|e| panic!("{script:?} failed in {}: {e}", cg.0.display()))
}

fn assert_eperm(cg: &Cg, script: &str) {
    match sh_in(cg, script) {
        Ok(_) => panic!(
            "{script:?} succeeded in {} but should be denied",
            cg.0.display()
        ),
        Err(e) => assert!(
            e.contains("Operation not permitted"),
            "{script:?}: expected EPERM, got: {e}"
        ),
    }
}

/// What the default rules must allow and deny, seen from a process in the cgroup.
fn check_default_behaviour(cg: &Cg) {
    assert_ok(cg, ": </dev/null && : >/dev/null");
    assert_eq!(assert_ok(cg, "head -c1 /dev/zero | wc -c").trim(), "1");
    assert_ok(cg, "head -c1 /dev/urandom >/dev/null");
    assert_eperm(cg, &format!(": <{CHAR_DENIED}"));
    assert_eperm(cg, &format!(": <{BLOCK_DENIED}"));
    // "c *:* m": creating the node is allowed, opening it is not.
    let dir = std::env::temp_dir().join(format!(
        "strata-devtest-node-{}-{}",
        std::process::id(),
        cg.0.file_name().unwrap().to_string_lossy()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    let node = dir.join("lc");
    assert_ok(cg, &format!("mknod {} c 10 237", node.display()));
    assert_eperm(cg, &format!(": <{}", node.display()));
    fs::remove_dir_all(&dir).unwrap();
}

fn with_rule(extra: LinuxDeviceCgroup) -> Vec<LinuxDeviceCgroup> {
    let mut r = default_rules();
    r.push(extra);
    r
}

fn skip_unless_ready(root: Option<&str>, what: &str) -> Option<String> {
    if !is_root() {
        println!("SKIP: not root");
        return None;
    }
    let Some(root) = root else {
        println!("SKIP: no {what} hierarchy");
        return None;
    };
    if !Path::new(CHAR_DENIED).exists() || !Path::new(BLOCK_DENIED).exists() {
        println!("SKIP: {CHAR_DENIED} or {BLOCK_DENIED} missing");
        return None;
    }
    Some(root.to_string())
}

#[test]
fn v1_default_rules_list_and_behaviour() {
    let v1 = Path::new(V1_ROOT)
        .join("devices.list")
        .exists()
        .then_some(V1_ROOT);
    let Some(root) = skip_unless_ready(v1, "v1 devices") else {
        return;
    };
    let cg = Cg::new(&root, "v1");
    assert_eq!(
        fs::read_to_string(cg.0.join("devices.list")).unwrap(),
        "a *:* rwm\n"
    );

    apply_v1(&cg.0, &default_rules()).unwrap();
    let expected = "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:8 rwm\nc 1:7 rwm\nc 5:0 rwm\nc 1:5 rwm\n\
                    c 1:9 rwm\nc 136:* rwm\nc 5:2 rwm\nc 10:200 rwm\n";
    assert_eq!(
        fs::read_to_string(cg.0.join("devices.list")).unwrap(),
        expected
    );
    check_default_behaviour(&cg);

    // Re-applying starts again from deny-all: a read-only grant adds one line.
    apply_v1(
        &cg.0,
        &with_rule(rule(true, "c", Some(10), Some(237), Some("r"))),
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(cg.0.join("devices.list")).unwrap(),
        format!("{expected}c 10:237 r\n")
    );
    assert_ok(&cg, &format!(": <{CHAR_DENIED}"));
    assert_eperm(&cg, &format!(": >>{CHAR_DENIED}"));

    // And back: the grant is gone.
    apply_v1(&cg.0, &default_rules()).unwrap();
    assert_eq!(
        fs::read_to_string(cg.0.join("devices.list")).unwrap(),
        expected
    );
    assert_eperm(&cg, &format!(": <{CHAR_DENIED}"));
}

#[test]
fn v1_deny_rules_after_allow_all() {
    let v1 = Path::new(V1_ROOT)
        .join("devices.list")
        .exists()
        .then_some(V1_ROOT);
    let Some(root) = skip_unless_ready(v1, "v1 devices") else {
        return;
    };
    let cg = Cg::new(&root, "v1deny");
    // Privileged-style: allow everything, then take write on /dev/null away.
    apply_v1(
        &cg.0,
        &[
            rule(true, "a", None, None, Some("rwm")),
            rule(false, "c", Some(1), Some(3), Some("w")),
        ],
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(cg.0.join("devices.list")).unwrap(),
        "a *:* rwm\n"
    );
    assert_ok(
        &cg,
        &format!(": <{CHAR_DENIED} && : <{BLOCK_DENIED} && : </dev/null"),
    );
    assert_eperm(&cg, ": >>/dev/null");
}

/// Ids of the BPF_CGROUP_DEVICE programs attached directly to `dir` (BPF_PROG_QUERY).
fn attached(dir: &Path) -> Vec<u32> {
    #[repr(C)]
    struct Query {
        target_fd: u32,
        attach_type: u32,
        query_flags: u32,
        attach_flags: u32,
        prog_ids: u64,
        prog_cnt: u32,
        _pad: u32,
    }
    let f = fs::File::open(dir).unwrap();
    let mut ids = [0u32; 64];
    let mut q = Query {
        target_fd: std::os::fd::AsRawFd::as_raw_fd(&f) as u32,
        attach_type: 6,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: 64,
        _pad: 0,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            16,
            &mut q as *mut Query,
            std::mem::size_of::<Query>() as u32,
        )
    };
    assert!(
        r == 0,
        "BPF_PROG_QUERY: {}",
        std::io::Error::last_os_error()
    );
    ids[..q.prog_cnt as usize].to_vec()
}

#[test]
fn v2_filter_attach_replace_and_behaviour() {
    let Some(root) = skip_unless_ready(v2_root(), "cgroup2") else {
        return;
    };
    let cg = Cg::new(&root, "v2");

    // Before: nothing attached, everything allowed.
    assert!(attached(&cg.0).is_empty());
    assert_ok(&cg, &format!(": <{CHAR_DENIED}"));

    apply_v2(&cg.0, &default_rules()).unwrap();
    let first = attached(&cg.0);
    assert_eq!(first.len(), 1, "one program after the first apply");
    // apply_v2 has returned and closed every fd: the cgroup alone keeps the program.
    check_default_behaviour(&cg);

    // Re-apply with a read-only grant: the old program must be gone, or it would still deny.
    apply_v2(
        &cg.0,
        &with_rule(rule(true, "c", Some(10), Some(237), Some("r"))),
    )
    .unwrap();
    let second = attached(&cg.0);
    assert_eq!(second.len(), 1, "replaced, not stacked: {second:?}");
    assert_ne!(second, first);
    assert_ok(&cg, &format!(": <{CHAR_DENIED}"));
    assert_eperm(&cg, &format!(": >>{CHAR_DENIED}"));
    assert_eperm(&cg, &format!(": <{BLOCK_DENIED}"));

    // And back to the defaults.
    apply_v2(&cg.0, &default_rules()).unwrap();
    assert_eq!(attached(&cg.0).len(), 1);
    assert_eperm(&cg, &format!(": <{CHAR_DENIED}"));

    // Privileged: allow all, minus write on /dev/null (deny exceptions match on any overlap).
    apply_v2(
        &cg.0,
        &[
            rule(true, "a", None, None, Some("rwm")),
            rule(false, "c", Some(1), Some(3), Some("w")),
        ],
    )
    .unwrap();
    assert_eq!(attached(&cg.0).len(), 1);
    assert_ok(
        &cg,
        &format!(": <{CHAR_DENIED} && : <{BLOCK_DENIED} && : </dev/null"),
    );
    assert_eperm(&cg, ": >>/dev/null");
    assert_eperm(&cg, ": <>/dev/null");
}

#[test]
fn v2_program_outlives_a_process_that_attached_it() {
    let Some(root) = skip_unless_ready(v2_root(), "cgroup2") else {
        return;
    };
    // The attaching process is a fresh copy of this test binary, which exits before we look.
    if let Ok(dir) = std::env::var("STRATA_DEVTEST_ATTACH") {
        apply_v2(Path::new(&dir), &default_rules()).unwrap();
        return;
    }
    let cg = Cg::new(&root, "v2exit");
    let st = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "v2_program_outlives_a_process_that_attached_it",
            "--nocapture",
        ])
        .env("STRATA_DEVTEST_ATTACH", &cg.0)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(attached(&cg.0).len(), 1);
    assert_eperm(&cg, &format!(": <{CHAR_DENIED}"));
    assert_ok(&cg, ": </dev/null");
}

/// Load a two-instruction program named `name` that returns `verdict`, attach it to `dir`
/// with BPF_F_ALLOW_MULTI as someone else (or an earlier strata) would; returns its id.
fn attach_foreign(dir: &Path, name: &str, verdict: i32) -> u32 {
    #[repr(C)]
    #[derive(Default)]
    struct Load {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
    }
    #[repr(C)]
    #[derive(Default)]
    struct Attach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
        _pad: u32,
    }
    // mov32 r0, verdict; exit. Register nibbles are 0 (r0), so only code and imm are set.
    let mut mov = [0xb4u8, 0, 0, 0, 0, 0, 0, 0];
    mov[4..].copy_from_slice(&verdict.to_ne_bytes());
    let insns = [mov, [0x95, 0, 0, 0, 0, 0, 0, 0]];
    let license = b"GPL\0";
    let mut l = Load {
        prog_type: 15,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    l.prog_name[..name.len()].copy_from_slice(name.as_bytes());
    let prog = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            5,
            &mut l as *mut Load,
            std::mem::size_of::<Load>() as u32,
        )
    };
    assert!(
        prog >= 0,
        "BPF_PROG_LOAD: {}",
        std::io::Error::last_os_error()
    );
    let before = attached(dir);
    let f = fs::File::open(dir).unwrap();
    let mut a = Attach {
        target_fd: std::os::fd::AsRawFd::as_raw_fd(&f) as u32,
        attach_bpf_fd: prog as u32,
        attach_type: 6,
        attach_flags: 2,
        ..Default::default()
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            8,
            &mut a as *mut Attach,
            std::mem::size_of::<Attach>() as u32,
        )
    };
    assert!(
        r == 0,
        "BPF_PROG_ATTACH: {}",
        std::io::Error::last_os_error()
    );
    unsafe { libc::close(prog as i32) };
    let after = attached(dir);
    *after.iter().find(|id| !before.contains(id)).unwrap()
}

#[test]
fn v2_replaces_only_its_own_programs() {
    let Some(root) = skip_unless_ready(v2_root(), "cgroup2") else {
        return;
    };
    let cg = Cg::new(&root, "v2mixed");
    apply_v2(&cg.0, &default_rules()).unwrap();
    // Someone else's allow-all filter, and a second (stale) one of ours.
    let foreign = attach_foreign(&cg.0, "other_filter", 1);
    attach_foreign(&cg.0, "strata_devices", 1);
    assert_eq!(attached(&cg.0).len(), 3);
    assert_eperm(&cg, &format!(": <{CHAR_DENIED}"));

    // Two of ours: no BPF_F_REPLACE; attach the new one, then detach both old ones.
    apply_v2(
        &cg.0,
        &with_rule(rule(true, "c", Some(10), Some(237), Some("r"))),
    )
    .unwrap();
    let now = attached(&cg.0);
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now.contains(&foreign),
        "the foreign program was detached: {now:?}"
    );
    assert_ok(&cg, &format!(": <{CHAR_DENIED}"));
    assert_eperm(&cg, &format!(": >>{CHAR_DENIED}"));

    // A foreign deny-all still applies on top of ours: programs are ANDed.
    attach_foreign(&cg.0, "other_deny", 0);
    assert_eperm(&cg, ": </dev/null");
}

fn err_v1(rules: &[LinuxDeviceCgroup]) -> String {
    // A dir that does not exist: validation must fail before any file is touched.
    format!(
        "{:#}",
        apply_v1(Path::new("/nonexistent/strata"), rules).unwrap_err()
    )
}

#[test]
fn invalid_rules_are_refused_with_the_rule_named() {
    let ok = rule(true, "c", Some(1), Some(3), Some("rwm"));
    let cases: Vec<(Vec<LinuxDeviceCgroup>, &str)> = vec![
        (
            vec![
                ok.clone(),
                ok.clone(),
                rule(true, "c", Some(1), Some(3), Some("rwx")),
            ],
            r#"linux.resources.devices[2]: "c 1:3 rwx": invalid access "rwx""#,
        ),
        (
            vec![rule(true, "u", Some(1), Some(3), Some("rwm"))],
            r#"linux.resources.devices[0]: "u 1:3 rwm": type "u" is not allowed"#,
        ),
        (
            vec![ok.clone(), rule(true, "p", None, None, Some("r"))],
            r#"linux.resources.devices[1]: "p *:* r": type "p" is not allowed"#,
        ),
        (
            vec![rule(true, "c", Some(1), Some(3), None)],
            r#"linux.resources.devices[0]: "c 1:3 ": access is empty"#,
        ),
        (
            vec![rule(true, "c", Some(1), Some(3), Some(""))],
            r#"linux.resources.devices[0]: "c 1:3 ": access is empty"#,
        ),
        (
            vec![rule(true, "c", Some(-1), Some(3), Some("r"))],
            r#"linux.resources.devices[0]: "c -1:3 r": invalid major -1"#,
        ),
        (
            vec![rule(true, "b", Some(8), Some(1 << 32), Some("r"))],
            r#"linux.resources.devices[0]: "b 8:4294967296 r": invalid minor 4294967296"#,
        ),
        (
            vec![
                rule(true, "c", None, None, Some("rwm")),
                rule(false, "c", Some(1), Some(1), Some("r")),
            ],
            r#"linux.resources.devices[1]: "c 1:1 r": cannot punch a hole in the earlier wildcard rule "c *:* rwm""#,
        ),
        (
            vec![
                rule(true, "a", None, None, Some("rwm")),
                rule(false, "c", Some(4), None, Some("w")),
                rule(true, "c", Some(4), Some(1), Some("rw")),
            ],
            r#"linux.resources.devices[2]: "c 4:1 rw": cannot punch a hole in the earlier wildcard rule "c 4:* w""#,
        ),
    ];
    for (rules, want) in &cases {
        let e1 = err_v1(rules);
        assert!(e1.starts_with(want), "v1: got {e1:?}, want {want:?}");
        let e2 = format!(
            "{:#}",
            apply_v2(Path::new("/nonexistent/strata"), rules).unwrap_err()
        );
        assert!(e2.starts_with(want), "v2: got {e2:?}, want {want:?}");
    }

    // Valid rules on a wrong dir: the error names the file or the dir.
    let e = err_v1(&default_rules());
    assert!(e.contains("/nonexistent/strata/devices.deny"), "{e}");
    let e = format!(
        "{:#}",
        apply_v2(&std::env::temp_dir(), &default_rules()).unwrap_err()
    );
    assert!(e.contains("is not a cgroup2 directory"), "{e}");
}

#[test]
fn v1_invalid_rules_leave_the_cgroup_untouched() {
    let v1 = Path::new(V1_ROOT)
        .join("devices.list")
        .exists()
        .then_some(V1_ROOT);
    let Some(root) = skip_unless_ready(v1, "v1 devices") else {
        return;
    };
    let cg = Cg::new(&root, "v1bad");
    let mut rules = default_rules();
    rules.push(rule(true, "c", Some(1), Some(3), Some("rwx")));
    let e = format!("{:#}", apply_v1(&cg.0, &rules).unwrap_err());
    assert!(e.contains("devices[11]"), "{e}");
    assert_eq!(
        fs::read_to_string(cg.0.join("devices.list")).unwrap(),
        "a *:* rwm\n"
    );
}

#[test]
fn v1_kernel_refusal_names_the_rule_and_file() {
    let v1 = Path::new(V1_ROOT)
        .join("devices.list")
        .exists()
        .then_some(V1_ROOT);
    let Some(root) = skip_unless_ready(v1, "v1 devices") else {
        return;
    };
    let parent = Cg::new(&root, "v1parent");
    apply_v1(&parent.0, &default_rules()).unwrap();
    let child = Cg(parent.0.join("child"));
    fs::create_dir(&child.0).unwrap();
    // The child may not get more than its parent: the kernel says EPERM for the rule.
    let e = format!(
        "{:#}",
        apply_v1(&child.0, &[rule(true, "c", Some(10), Some(237), Some("r"))]).unwrap_err()
    );
    let want = format!(
        "linux.resources.devices[0]: \"c 10:237 r\": write \"c 10:237 r\" to {}/devices.allow",
        child.0.display()
    );
    assert!(
        e.starts_with(&want) && e.contains("Operation not permitted"),
        "{e}"
    );
    // A cgroup with children cannot be reset to deny-all in v1.
    let e = format!("{:#}", apply_v1(&parent.0, &default_rules()).unwrap_err());
    assert!(e.contains("already has child cgroups"), "{e}");
    drop(child);
}
