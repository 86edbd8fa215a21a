//! `strata exec`: a second process in a running container, with runc's flags.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// A container that keeps running until deleted.
const SLEEPER: &str = "exec sleep 1000";

/// `strata exec <id> args...` (flags may precede the id in `args`).
fn exec(t: &Test, args: &[&str]) -> Output {
    let mut a = vec!["exec"];
    a.extend_from_slice(args);
    t.strata(&a)
}

/// `exec <id> sh -c script`, which must succeed; returns its stdout.
#[track_caller]
fn exec_sh(t: &Test, id: &str, script: &str) -> String {
    let out = exec(t, &[id, "sh", "-c", script]);
    out.ok();
    out.stdout
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap()
}

const CAP_NET_ADMIN: u32 = 12;

#[test]
fn exec_shares_the_inits_namespaces_and_files() {
    let Some(t) = Test::new("exec_ns") else {
        return;
    };
    let (id, pid) = t.run_detached(
        "c",
        "echo from-init-$((6*7)) > /tmp/f; exec sleep 1000",
        tmpfs_tmp,
    );
    // The file pid 1 wrote into its own tmpfs is the one exec reads.
    let mut out = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            let o = exec(&t, &[&id, "cat", "/tmp/f"]);
            let done = o.code == 0;
            out = Some(o);
            done
        }),
        "exec never read /tmp/f: {out:#?}"
    );
    assert_eq!(out.unwrap().stdout, "from-init-42\n");

    let kinds = ["pid", "mnt", "net", "ipc", "uts", "cgroup"];
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/1/ns/{k}; readlink /proc/self/ns/{k}; "))
        .collect::<String>()
        + "echo pid=$$; cat /proc/1/cmdline | tr '\\0' ' '";
    let seen = exec_sh(&t, &id, &script);
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 2 * kinds.len() + 2, "{seen}");
    for (i, k) in kinds.iter().enumerate() {
        let host = fs::read_link(format!("/proc/{pid}/ns/{k}")).unwrap();
        let host = host.to_str().unwrap();
        let ours = fs::read_link(format!("/proc/self/ns/{k}")).unwrap();
        assert_ne!(
            host,
            ours.to_str().unwrap(),
            "the container shares our {k} namespace"
        );
        assert_eq!(
            lines[2 * i],
            host,
            "/proc/1/ns/{k} inside is not the init's: {seen}"
        );
        assert_eq!(
            lines[2 * i + 1],
            host,
            "exec is not in the init's {k} namespace: {seen}"
        );
    }
    // exec sees the container's pid 1 (the init, as pid 1), and is not pid 1 itself.
    let me: i32 = lines[2 * kinds.len()]
        .strip_prefix("pid=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(me > 1, "{seen}");
    assert_eq!(lines[2 * kinds.len() + 1].trim(), "sleep 1000", "{seen}");
    // The container's hostname (uts) and the init is still the only other process.
    assert_eq!(exec(&t, &[&id, "hostname"]).ok().stdout, "strata\n");
    t.force_delete(&id);
}

#[test]
fn exec_exit_codes() {
    let Some(t) = Test::new("exec_exit") else {
        return;
    };
    let (id, _) = t.run_detached("c", SLEEPER, |_| {});
    assert_eq!(exec(&t, &[&id, "true"]).ok().stdout, "");
    assert_eq!(exec(&t, &[&id, "sh", "-c", "exit 7"]).code, 7);
    assert_eq!(exec(&t, &[&id, "sh", "-c", "exit 255"]).code, 255);
    // Not pid 1 in the namespace: the shell really dies of the signal.
    let out = exec(&t, &[&id, "sh", "-c", "kill -9 $$; echo survived"]);
    assert_eq!(out.code, 128 + 9, "{out:#?}");
    assert_eq!(out.stdout, "");
    let out = exec(&t, &[&id, "sh", "-c", "kill -TERM $$; echo survived"]);
    assert_eq!(out.code, 128 + 15, "{out:#?}");
    // stdout and stderr are the exec's own.
    let out = exec(&t, &[&id, "sh", "-c", "echo to-out; echo to-err >&2"]);
    out.ok();
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("to-out\n", "to-err\n")
    );
    // The container is untouched by its exec'd processes exiting.
    assert_eq!(t.status(&id), "running");
    t.force_delete(&id);
}

#[test]
fn exec_env_cwd_user_groups_caps() {
    let Some(t) = Test::new("exec_flags") else {
        return;
    };
    let (id, _) = t.run_detached("c", SLEEPER, |_| {});

    // -e appends to the config's environment.
    let out = exec(&t, &["-e", "FOO=bar", "--env", "X=1 2", &id, "env"]);
    out.ok();
    let mut env: Vec<&str> = out.stdout.lines().collect();
    env.sort();
    assert_eq!(
        env,
        [
            "FOO=bar",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
            "X=1 2"
        ],
        "{out:#?}"
    );

    // -e overrides a variable of the config, and the last of the same name wins: one
    // entry each, and the program is looked up in the PATH given.
    let out = exec(
        &t,
        &[
            "-e",
            "TERM=dumb",
            "-e",
            "FOO=1",
            "-e",
            "FOO=2",
            "-e",
            "PATH=/usr/bin",
            &id,
            "env",
        ],
    );
    out.ok();
    let mut env: Vec<&str> = out.stdout.lines().collect();
    env.sort();
    assert_eq!(env, ["FOO=2", "PATH=/usr/bin", "TERM=dumb"], "{out:#?}");
    exec(&t, &["-e", "PATH=/nowhere", &id, "env"]).assert_exec_error(&["\"env\"", "PATH"]);

    // --cwd, and the config's cwd (/) without it.
    assert_eq!(
        exec(&t, &["--cwd", "/dev/shm", &id, "pwd"]).ok().stdout,
        "/dev/shm\n"
    );
    assert_eq!(exec(&t, &[&id, "pwd"]).ok().stdout, "/\n");
    exec(&t, &["--cwd", "/no/such/dir", &id, "pwd"]).assert_exec_error(&["/no/such/dir"]);

    // -u uid:gid, -u uid, and -g.
    assert_eq!(
        exec(
            &t,
            &["-u", "1000:1000", &id, "sh", "-c", "id -u; id -g; id -G"]
        )
        .ok()
        .stdout,
        "1000\n1000\n1000\n"
    );
    assert_eq!(
        exec(&t, &["--user", "1234", &id, "sh", "-c", "id -u; id -g"])
            .ok()
            .stdout,
        "1234\n0\n"
    );
    let out = exec(
        &t,
        &["-u", "1000:1000", "-g", "10", "-g", "20", &id, "id", "-G"],
    );
    out.ok();
    let mut groups: Vec<&str> = out.stdout.split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["10", "1000", "20"], "{out:#?}");
    exec(&t, &["-u", "bob", &id, "true"]).assert_exec_error(&["bob"]);

    // --cap adds to the config's sets (which lack CAP_NET_ADMIN).
    let caps = |extra: &[&str]| {
        let mut a = extra.to_vec();
        a.extend_from_slice(&[&id, "cat", "/proc/self/status"]);
        let out = exec(&t, &a);
        out.ok();
        let s = out.stdout;
        // Never inheritable (CVE-2022-29162): file caps must not grow across execve.
        assert_eq!(hex(proc_status_field(&s, "CapInh")), 0, "{s}");
        (
            hex(proc_status_field(&s, "CapEff")),
            hex(proc_status_field(&s, "CapBnd")),
        )
    };
    let (eff, bnd) = caps(&[]);
    assert_eq!(eff & 1 << CAP_NET_ADMIN, 0, "{eff:x}");
    assert_eq!(bnd & 1 << CAP_NET_ADMIN, 0, "{bnd:x}");
    let (eff2, bnd2) = caps(&["--cap", "CAP_NET_ADMIN"]);
    assert_eq!(eff2, eff | 1 << CAP_NET_ADMIN, "{eff2:x} vs {eff:x}");
    assert_eq!(bnd2, bnd | 1 << CAP_NET_ADMIN, "{bnd2:x} vs {bnd:x}");
    // ... and the capability really works: creating a network device needs it.
    let ip = "ip link add dummy0 type dummy 2>&1 && echo made";
    assert!(
        !exec(&t, &[&id, "sh", "-c", ip]).stdout.contains("made"),
        "made a link without CAP_NET_ADMIN"
    );
    // (the dummy driver may be missing; then both fail alike and only the bits count)
    let with = exec(&t, &["--cap", "CAP_NET_ADMIN", &id, "sh", "-c", ip]);
    if with.stdout.contains("made") {
        assert!(exec_sh(&t, &id, "ip link show dummy0").contains("dummy0"));
    }
    t.force_delete(&id);
}

#[test]
fn exec_no_new_privs() {
    let Some(t) = Test::new("exec_nnp") else {
        return;
    };
    let (id, _) = t.run_detached("c", SLEEPER, |c| {
        c["process"]["noNewPrivileges"] = json!(false)
    });
    assert_eq!(nnp(&t, &id, &[]), "0");
    assert_eq!(nnp(&t, &id, &["--no-new-privs"]), "1");
    t.force_delete(&id);

    // A config with noNewPrivileges: exec follows it.
    let (id, _) = t.run_detached("d", SLEEPER, |_| {});
    assert_eq!(nnp(&t, &id, &[]), "1");
    t.force_delete(&id);
}

/// NoNewPrivs of `exec [flags] <id> cat /proc/self/status`.
fn nnp(t: &Test, id: &str, flags: &[&str]) -> String {
    let mut a = flags.to_vec();
    a.extend_from_slice(&[id, "cat", "/proc/self/status"]);
    let out = exec(t, &a);
    out.ok();
    proc_status_field(&out.stdout, "NoNewPrivs").to_string()
}

#[test]
fn exec_process_json() {
    let Some(t) = Test::new("exec_process") else {
        return;
    };
    let (id, _) = t.run_detached("c", SLEEPER, |_| {});
    let p = t.dir.join("process.json");
    fs::write(
        &p,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo \"$GREETING\"; pwd; id -u; id -g; umask"],
            "env": ["GREETING=from process.json", "PATH=/bin:/usr/bin"],
            "cwd": "/dev",
            "user": {"uid": 123, "gid": 456, "umask": 18},
        }))
        .unwrap(),
    )
    .unwrap();
    let out = exec(&t, &["--process", p.to_str().unwrap(), &id]);
    out.ok();
    assert_eq!(
        out.stdout, "from process.json\n/dev\n123\n456\n0022\n",
        "{out:#?}"
    );
    // process.json replaces the config's process: nothing of its env comes along; without
    // a user it runs as root (as in runc).
    fs::write(
        &p,
        serde_json::to_vec(&json!({"args": ["/usr/bin/env"], "env": ["ONLY=this"], "cwd": "/"}))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        exec(&t, &["-p", p.to_str().unwrap(), &id]).ok().stdout,
        "ONLY=this\n"
    );

    fs::write(&p, "{not json").unwrap();
    exec(&t, &["--process", p.to_str().unwrap(), &id]).assert_exec_error(&["process.json"]);
    let missing = t.dir.join("missing.json");
    exec(&t, &["--process", missing.to_str().unwrap(), &id]).assert_exec_error(&["missing.json"]);
    t.force_delete(&id);
}

#[test]
fn exec_detached_with_pid_file() {
    let Some(t) = Test::new("exec_detach") else {
        return;
    };
    let (id, init) = t.run_detached("c", SLEEPER, |_| {});
    let pid_file = t.dir.join("exec.pid");
    let out = exec(
        &t,
        &[
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "1000",
        ],
    );
    out.ok();
    assert_eq!(out.stdout, "");
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 0 && pid != init);
    assert!(process_alive(pid), "exec'd pid {pid} is not alive");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x001000\x00");
    // Same cgroups as the init, on every hierarchy.
    let cg = |p: i32| fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cg(pid), cg(init));
    assert!(cg(pid).contains(&id), "{}", cg(pid));
    // In the container's pid namespace, with a pid of its own there.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid: Vec<&str> = proc_status_field(&status, "NSpid")
        .split_whitespace()
        .collect();
    assert_eq!(nspid.len(), 2, "{status}");
    assert_ne!(nspid[1], "1");
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        fs::read_link(format!("/proc/{init}/ns/pid")).unwrap()
    );
    // The container's own view lists it.
    let ps = exec_sh(&t, &id, "ps -o pid,args");
    assert!(ps.contains(&format!("{} sleep 1000", nspid[1])), "{ps}");
    // delete --force takes it down with the container.
    t.force_delete(&id);
    assert!(wait_until(Duration::from_secs(10), || !process_alive(pid)));
}

#[test]
fn exec_refused_when_paused_stopped_or_missing() {
    let Some(t) = Test::new("exec_refused") else {
        return;
    };
    let (id, _) = t.run_detached("c", SLEEPER, |_| {});
    t.strata(&["pause", &id]).ok();
    assert_eq!(t.status(&id), "paused");
    exec(&t, &[&id, "true"]).assert_exec_error(&["paused"]);
    t.strata(&["resume", &id]).ok();
    exec(&t, &[&id, "true"]).ok();
    t.strata(&["kill", &id, "KILL"]).ok();
    t.wait_status(&id, "stopped");
    exec(&t, &[&id, "true"]).assert_exec_error(&["stopped"]);
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
    exec(&t, &[&id, "true"]).assert_exec_error(&["does not exist"]);
    exec(&t, &["no-such-container", "true"]).assert_exec_error(&["does not exist"]);
    // No command at all.
    let (id, _) = t.run_detached("d", SLEEPER, |_| {});
    exec(&t, &[&id]).assert_exec_error(&["command"]);
    t.force_delete(&id);
}

#[test]
fn exec_in_a_created_container() {
    let Some(t) = Test::new("exec_created") else {
        return;
    };
    let out = t.mkdir("out");
    let b = t.bundle(
        "b",
        &["sh", "-c", "echo started > /out/started; exec sleep 1000"],
        |c| bind_mount(c, &out, "/out", false),
    );
    let id = t.id("c");
    t.strata(&["create", &id, "-b", b.to_str().unwrap()]).ok();
    assert_eq!(
        exec_sh(&t, &id, "echo in-created; hostname"),
        "in-created\nstrata\n"
    );
    // exec did not start the container's own program.
    assert_eq!(t.status(&id), "created");
    assert!(!out.join("started").exists());
    t.force_delete(&id);
}

#[test]
fn exec_gets_only_stdio_unless_fds_are_preserved() {
    let Some(t) = Test::new("exec_fds") else {
        return;
    };
    let (id, _) = t.run_detached("c", SLEEPER, |_| {});
    let secret = t.dir.join("host-secret");
    fs::write(&secret, "host-secret-content\n").unwrap();
    let f3 = fs::File::open(&secret).unwrap();
    let f4 = fs::File::open(&secret).unwrap();
    let fds = [(f3.as_raw_fd(), 3), (f4.as_raw_fd(), 4)];

    // The mechanism really hands fds 3 and 4 to a child.
    let mut probe = std::process::Command::new("sh");
    probe.args(["-c", "cat <&4"]);
    pass_fds(&mut probe, &fds);
    assert_eq!(
        run_cmd(&mut probe, TIMEOUT).ok().stdout,
        "host-secret-content\n"
    );

    let script = "ls /proc/$$/fd; { cat <&3; } 2>/dev/null || echo no-fd-3; { cat <&4; } 2>/dev/null || echo no-fd-4";
    let mut cmd = t.command(&["exec", &id, "sh", "-c", script]);
    pass_fds(&mut cmd, &fds);
    let out = run_cmd(&mut cmd, TIMEOUT);
    out.ok();
    assert_eq!(
        out.lines(),
        ["0", "1", "2", "no-fd-3", "no-fd-4"],
        "{out:#?}"
    );

    let mut cmd = t.command(&["exec", "--preserve-fds", "1", &id, "sh", "-c", script]);
    pass_fds(&mut cmd, &fds);
    let out = run_cmd(&mut cmd, TIMEOUT);
    out.ok();
    assert_eq!(
        out.lines(),
        ["0", "1", "2", "3", "host-secret-content", "no-fd-4"],
        "{out:#?}"
    );
    t.force_delete(&id);
}

#[test]
fn exec_runs_under_the_containers_seccomp_filter() {
    let Some(t) = Test::new("exec_seccomp") else {
        return;
    };
    let (id, _) = t.run_detached("c", SLEEPER, |c| {
        tmpfs_tmp(c);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
        });
    });
    let out = exec(&t, &[&id, "cat", "/proc/self/status"]);
    out.ok();
    assert_eq!(proc_status_field(&out.stdout, "Seccomp"), "2");
    let out = exec(&t, &[&id, "mkdir", "/tmp/d"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("Function not implemented"), "{out:#?}");
    // Also with a process.json and with flags that change the process.
    assert!(exec(
        &t,
        &[
            "-u",
            "1000:1000",
            "--cap",
            "CAP_NET_ADMIN",
            &id,
            "mkdir",
            "/tmp/e"
        ]
    )
    .stderr
    .contains("Function not implemented"));

    // Without linux.seccomp, exec has no filter.
    let (id2, _) = t.run_detached("d", SLEEPER, tmpfs_tmp);
    let out = exec(&t, &[&id2, "cat", "/proc/self/status"]);
    assert_eq!(proc_status_field(&out.stdout, "Seccomp"), "0");
    exec(&t, &[&id2, "mkdir", "/tmp/d"]).ok();
    t.force_delete(&id);
    t.force_delete(&id2);
}

#[test]
fn exec_of_a_missing_program_fails_and_leaves_nothing() {
    let Some(t) = Test::new("exec_missing") else {
        return;
    };
    let (id, init) = t.run_detached("c", SLEEPER, |_| {});
    let before = processes_in_cgroup(&id);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].0, init);
    // Worded as runc words them: docker and podman read 127 / 126 out of these.
    exec(&t, &[&id, "no-such-program", "arg"])
        .assert_exec_error(&[r#"exec: "no-such-program": executable file not found in $PATH"#]);
    exec(&t, &[&id, "/bin/no-such-program"]).assert_exec_error(&[
        r#"exec: "/bin/no-such-program": stat /bin/no-such-program: no such file or directory"#,
    ]);
    // A directory, or a file without an x bit, is not a program either.
    exec(&t, &[&id, "/dev"]).assert_exec_error(&[r#"exec: "/dev": permission denied"#]);
    exec(&t, &[&id, "/etc/passwd"])
        .assert_exec_error(&[r#"exec: "/etc/passwd": permission denied"#]);
    exec(&t, &["-d", &id, "no-such-program"]).assert_exec_error(&["no-such-program"]);
    // A pid file that cannot be written: an error naming it, and no process left.
    exec(
        &t,
        &["--pid-file", "/nonexistent/dir/pid", &id, "sleep", "100"],
    )
    .assert_exec_error(&["--pid-file /nonexistent/dir/pid", "No such file"]);
    let after = processes_in_cgroup(&id);
    assert_eq!(after, before, "an exec process was left behind");
    assert_eq!(t.status(&id), "running");
    t.force_delete(&id);
}

#[test]
fn foreground_exec_forwards_signals() {
    let Some(t) = Test::new("exec_signals") else {
        return;
    };
    let out = t.mkdir("out");
    let (id, _) = t.run_detached("c", SLEEPER, |c| bind_mount(c, &out, "/out", false));
    let script = "trap 'echo got-term; exit 9' TERM; echo ready > /out/ready-$0; while :; do sleep 0.1; done";
    for (tag, tty) in [("plain", false), ("tty", true)] {
        let mut args = vec!["exec"];
        if tty {
            args.push("-t");
        }
        args.extend_from_slice(&[&id, "sh", "-c", script, tag]);
        let r = Running::spawn(&mut t.command(&args));
        let ready = out.join(format!("ready-{tag}"));
        assert!(
            wait_until(Duration::from_secs(20), || ready.exists()),
            "{tag}: the exec'd shell never got ready"
        );
        unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) };
        let o = r.wait(TIMEOUT);
        assert_eq!(o.code, 9, "{tag}: {o:#?}");
        assert!(o.stdout.contains("got-term"), "{tag}: {o:#?}");
    }
    assert_eq!(t.status(&id), "running");
    t.force_delete(&id);
}

/// `--debug` shows what exec does, as runc's does (its nsexec lines): the namespaces it
/// joins, the process it started and how it ended; the program's own output is untouched.
#[test]
fn debug_output_of_exec() {
    let Some(t) = Test::new("exec_debug") else {
        return;
    };
    let (id, init) = t.run_detached("c", SLEEPER, |_| {});
    let out = t.strata(&["--debug", "exec", &id, "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert_eq!(out.stdout, "hi\n");
    let debug: Vec<&str> = out.stderr.lines().collect();
    assert!(
        debug.iter().all(|l| l.contains("level=debug")),
        "only debug lines: {out:#?}"
    );
    for needle in [
        format!("init=\"{init}\""),
        "joining the init's namespaces".into(),
        "process started".into(),
        "status=\"3\"".into(),
    ] {
        assert!(out.stderr.contains(&needle), "no {needle:?}: {out:#?}");
    }
    // Without --debug: nothing on stderr.
    let out = exec(&t, &[&id, "true"]);
    out.ok();
    assert_eq!(out.stderr, "");
    t.force_delete(&id);
}
