//! process.terminal: the pty master sent to a --console-socket (create and exec -t),
//! /dev/console, consoleSize, the foreground pty proxy of `run`, and the errors.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const READ: Duration = Duration::from_secs(20);

fn terminal(c: &mut Value) {
    c["process"]["terminal"] = json!(true);
}

/// A console socket listening at `<test dir>/<name>`.
fn listener(t: &Test, name: &str) -> (UnixListener, PathBuf) {
    let p = t.dir.join(name);
    (UnixListener::bind(&p).unwrap(), p)
}

/// Run strata `args` (which name the console socket) while accepting on `l`; returns the
/// "/dev/pts/N" name and master the container sent, and strata's output once it exits
/// (or, with `wait` false, the still running strata process).
fn with_console(t: &Test, l: &UnixListener, args: &[&str]) -> (String, OwnedFd, Running) {
    let mut r = Running::spawn(&mut t.command(args));
    let Some(s) = accept_until_exit(l, &mut r.child, READ) else {
        let out = r.wait(TIMEOUT);
        panic!("strata never connected to the console socket: {out:#?}");
    };
    let (data, master) = recv_with_fd(&s);
    let name = String::from_utf8(data).unwrap();
    (name, master, r)
}

#[track_caller]
fn assert_pty_master(name: &str, master: &OwnedFd) {
    assert!(
        name.starts_with("/dev/pts/") && name[9..].parse::<u32>().is_ok(),
        "console socket data {name:?} is not a /dev/pts/N name"
    );
    // A master answers TIOCGPTN with the number of its slave: the one named.
    let mut n: libc::c_uint = 0;
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    assert_eq!(
        r,
        0,
        "the fd sent ({}) is not a pty master",
        fd_link(master)
    );
    assert_eq!(
        name,
        format!("/dev/pts/{n}"),
        "the name sent is not the master's slave"
    );
}

#[test]
fn console_socket_gets_a_working_pty() {
    let Some(t) = Test::new("console") else {
        return;
    };
    let (l, sock) = listener(&t, "console.sock");
    let b = t.bundle("b", &["sh"], |c| {
        terminal(c);
        c["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    let id = t.id("c");
    let (name, master, r) = with_console(
        &t,
        &l,
        &[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
            "-b",
            b.to_str().unwrap(),
        ],
    );
    r.wait(TIMEOUT).ok();
    assert_pty_master(&name, &master);
    assert_eq!(t.status(&id), "created");
    t.strata(&["start", &id]).ok();

    // A shell on the other end: the echoed command line does not contain the answer.
    write_fd(&master, b"echo hello-$((6*7))\n");
    read_until(&master, "hello-42", READ);
    // stdio is the pty named in the message, and it is the controlling terminal.
    write_fd(
        &master,
        b"echo fd0=$(readlink /proc/self/fd/0) tty=$(tty) end-$((1+1))\n",
    );
    let text = read_until(&master, "end-2", READ);
    assert!(
        text.contains(&format!("fd0={name} tty={name} end-2")),
        "{text:?}"
    );
    // /dev/console is that pty too: what is written there comes out of the master.
    write_fd(
        &master,
        b"echo via-console-$((3*3)) > /dev/console; echo done-$((2+2))\n",
    );
    let text = read_until(&master, "done-4", READ);
    assert!(text.contains("via-console-9"), "{text:?}");
    write_fd(
        &master,
        b"stat -L -c con=%t:%T /dev/console /proc/self/fd/0; echo x-$((5+5))\n",
    );
    let text = read_until(&master, "x-10", READ);
    let cons: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("con="))
        .collect();
    assert_eq!(cons.len(), 2, "{text:?}");
    assert_eq!(
        cons[0], cons[1],
        "/dev/console is another device than stdin: {text:?}"
    );
    // process.consoleSize
    write_fd(&master, b"stty size\n");
    read_until(&master, "30 100", READ);
    // The shell exits with what we tell it; the container stops.
    write_fd(&master, b"exit 3\n");
    t.wait_status(&id, "stopped");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);
}

#[test]
fn run_detached_with_console_socket() {
    let Some(t) = Test::new("console_run_d") else {
        return;
    };
    let (l, sock) = listener(&t, "c.sock");
    let b = t.bundle("b", &["sh"], terminal);
    let id = t.id("c");
    let (name, master, r) = with_console(
        &t,
        &l,
        &[
            "run",
            "-d",
            "--console-socket",
            sock.to_str().unwrap(),
            &id,
            "-b",
            b.to_str().unwrap(),
        ],
    );
    r.wait(TIMEOUT).ok();
    assert_pty_master(&name, &master);
    assert_eq!(t.status(&id), "running");
    // Default size without consoleSize: the terminal still works, and the hostname is set.
    write_fd(&master, b"echo host-$(hostname)-$((1+6))\n");
    read_until(&master, "host-strata-7", READ);
    t.force_delete(&id);
}

#[test]
fn exec_tty_with_console_socket() {
    let Some(t) = Test::new("exec_tty") else {
        return;
    };
    let (id, _) = t.run_detached("c", "exec sleep 1000", |c| {
        c["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    let (l, sock) = listener(&t, "exec.sock");
    let sock = sock.to_str().unwrap();

    // Foreground exec: strata waits for the process and returns its exit code.
    let (name, master, r) =
        with_console(&t, &l, &["exec", "-t", "--console-socket", sock, &id, "sh"]);
    assert_pty_master(&name, &master);
    write_fd(&master, b"echo exec-hello-$((6*7)) $(tty)\n");
    let text = read_until(&master, &format!("exec-hello-42 {name}"), READ);
    // process.consoleSize of the container applies to exec'd processes too (as runc does).
    write_fd(&master, b"stty size\n");
    read_until(&master, "30 100", READ);
    write_fd(&master, b"exit 5\n");
    let out = r.wait(TIMEOUT);
    assert_eq!(out.code, 5, "{out:#?}; pty: {text:?}");

    // Detached exec: returns at once, the shell lives on the pty.
    let (name2, master2, r) = with_console(
        &t,
        &l,
        &["exec", "-d", "--tty", "--console-socket", sock, &id, "sh"],
    );
    r.wait(TIMEOUT).ok();
    assert_pty_master(&name2, &master2);
    write_fd(&master2, b"echo detached-$((2*21))\n");
    read_until(&master2, "detached-42", READ);
    // Still the container: its hostname, its pid 1.
    write_fd(
        &master2,
        b"echo h=$(hostname) init=$(cat /proc/1/cmdline | tr '\\0' ' ')end\n",
    );
    read_until(&master2, "h=strata init=sleep 1000 end", READ);
    write_fd(&master2, b"exit\n");
    t.force_delete(&id);
}

/// `script -qec CMD /dev/null`: CMD runs with a pty as its terminal; script returns
/// its exit code and copies its output.
/// script(1) (util-linux) gives the foreground tests a terminal; without it they SKIP.
fn have_script(test: &str) -> bool {
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: {test}: no script(1) on this host (util-linux) to give strata a terminal");
    }
    ok
}

fn under_script(t: &Test, args: &[&str], stdin: &str) -> Output {
    let mut cmd = format!("{} --root {}", STRATA, t.root.display());
    for a in args {
        cmd.push(' ');
        cmd.push_str(&format!("'{a}'"));
    }
    let p = t.dir.join(format!("stdin-{}", args.len()));
    std::fs::write(&p, stdin).unwrap();
    let f = std::fs::File::open(&p).unwrap();
    let r = Running::spawn_stdin(
        Command::new("script").args(["-qec", &cmd, "/dev/null"]),
        f.into(),
    );
    r.wait(TIMEOUT)
}

#[test]
fn foreground_run_proxies_the_terminal() {
    let Some(t) = Test::new("fg_run") else {
        return;
    };
    if !have_script("foreground_run_proxies_the_terminal") {
        return;
    }
    let b = t.bundle(
        "b",
        &[
            "sh",
            "-c",
            "tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; echo out-$((2*3)); exit 3",
        ],
        terminal,
    );
    let id = t.id("c");
    let out = under_script(&t, &["run", &id, "-b", b.to_str().unwrap()], "");
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.contains("out-6"), "{out:#?}");
    assert!(out.stdout.contains("both-ttys"), "{out:#?}");
    assert!(out.stdout.contains("/dev/pts/"), "{out:#?}");
    t.assert_no_leftovers(&id);

    // A program that is not there: the error, not a hang on the pty.
    let b3 = t.bundle("b3", &["no-such-program"], terminal);
    let id3 = t.id("c3");
    let out = under_script(&t, &["run", &id3, "-b", b3.to_str().unwrap()], "");
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("no-such-program"), "{out:#?}");
    t.assert_no_leftovers(&id3);

    // Input typed into our terminal reaches the container's shell.
    let b = t.bundle("b2", &["sh"], terminal);
    let id = t.id("c2");
    let out = under_script(
        &t,
        &["run", &id, "-b", b.to_str().unwrap()],
        "echo typed-$((3*3))\nexit 4\n",
    );
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(out.stdout.contains("typed-9"), "{out:#?}");
    t.assert_no_leftovers(&id);
}

#[test]
fn foreground_exec_tty_proxies_the_terminal() {
    let Some(t) = Test::new("fg_exec") else {
        return;
    };
    if !have_script("foreground_exec_tty_proxies_the_terminal") {
        return;
    }
    let (id, _) = t.run_detached("c", "exec sleep 1000", |_| {});
    let out = under_script(
        &t,
        &[
            "exec",
            "-t",
            &id,
            "sh",
            "-c",
            "tty; echo exec-out-$((4*4)); exit 6",
        ],
        "",
    );
    assert_eq!(out.code, 6, "{out:#?}");
    assert!(out.stdout.contains("exec-out-16"), "{out:#?}");
    assert!(out.stdout.contains("/dev/pts/"), "{out:#?}");
    t.force_delete(&id);
}

#[test]
fn terminal_errors() {
    let Some(t) = Test::new("term_errors") else {
        return;
    };
    // terminal without a console socket, detached.
    let b = t.bundle("tty", &["sh"], terminal);
    let id = t.id("nosock");
    t.strata(&["run", "-d", &id, "-b", b.to_str().unwrap()])
        .assert_error(&["--console-socket", "terminal"]);
    t.assert_no_leftovers(&id);
    t.strata(&["create", &id, "-b", b.to_str().unwrap()])
        .assert_error(&["--console-socket", "terminal"]);
    t.assert_no_leftovers(&id);

    // A console socket for a container without a terminal.
    let (_l, sock) = listener(&t, "c.sock");
    let b2 = t.bundle("notty", &["sh"], |_| {});
    let id = t.id("notty");
    t.strata(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
        "-b",
        b2.to_str().unwrap(),
    ])
    .assert_error(&["--console-socket", "terminal is false"]);
    t.assert_no_leftovers(&id);

    // A console socket path that does not exist.
    let missing = t.dir.join("missing.sock");
    let id = t.id("missing");
    t.strata(&[
        "create",
        "--console-socket",
        missing.to_str().unwrap(),
        &id,
        "-b",
        b.to_str().unwrap(),
    ])
    .assert_error(&["missing.sock"]);
    t.assert_no_leftovers(&id);
    t.strata(&[
        "run",
        "-d",
        "--console-socket",
        missing.to_str().unwrap(),
        &id,
        "-b",
        b.to_str().unwrap(),
    ])
    .assert_error(&["missing.sock"]);
    t.assert_no_leftovers(&id);

    // The same for exec.
    let (cid, _) = t.run_detached("c", "exec sleep 1000", |_| {});
    t.strata(&["exec", "-d", "-t", &cid, "sh"])
        .assert_exec_error(&["--console-socket"]);
    t.strata(&[
        "exec",
        "--console-socket",
        sock.to_str().unwrap(),
        &cid,
        "sh",
    ])
    .assert_exec_error(&["--console-socket", "terminal is false"]);
    t.strata(&[
        "exec",
        "-t",
        "--console-socket",
        missing.to_str().unwrap(),
        &cid,
        "sh",
    ])
    .assert_exec_error(&["missing.sock"]);
    let procs = processes_in_cgroup(&cid);
    assert_eq!(procs.len(), 1, "exec left processes behind: {procs:?}");
    t.force_delete(&cid);
}

#[test]
fn a_dev_console_symlink_in_the_image_is_refused() {
    let Some(t) = Test::new("console_link") else {
        return;
    };
    // No /dev tmpfs: the image's own /dev is used, and its /dev/console is a symlink to a
    // file the pty must never be bound over (CVE-2025-52565 class).
    let rootfs = t.rootfs_copy("rootfs");
    std::os::unix::fs::symlink("/etc/hostname", rootfs.join("dev/console")).unwrap();
    let before = std::fs::read_to_string(rootfs.join("etc/hostname")).unwrap();
    let (_l, sock) = listener(&t, "console.sock");
    let b = t.bundle("b", &["true"], |c| {
        terminal(c);
        set_root(c, &rootfs);
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev");
    });
    let id = t.id("c");
    t.strata(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
        "-b",
        b.to_str().unwrap(),
    ])
    .assert_error(&["/dev/console"]);
    t.assert_no_leftovers(&id);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/hostname")).unwrap(),
        before
    );
}

/// As runc makes them: the pty (run with a console socket, and `exec -t`) and piped stdio
/// belong to a non-root `process.user`, so it can reopen /dev/tty or /dev/stdout; the
/// pty keeps its group (tty, 5).
#[test]
fn terminal_and_stdio_belong_to_a_non_root_user() {
    let Some(t) = Test::new("tty_owner") else {
        return;
    };
    let (l, sock) = listener(&t, "console.sock");
    let sock = sock.to_str().unwrap();
    let b = t.bundle("b", &["sh"], |c| {
        terminal(c);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let id = t.id("c");
    let (_, master, r) = with_console(
        &t,
        &l,
        &[
            "run",
            "-d",
            "--console-socket",
            sock,
            &id,
            "-b",
            b.to_str().unwrap(),
        ],
    );
    r.wait(TIMEOUT).ok();
    write_fd(&master, b"echo owner-$(stat -c %u:%g $(tty))-end\n");
    read_until(&master, "owner-1000:5-end", READ);

    let (_, m2, r) = with_console(
        &t,
        &l,
        &[
            "exec",
            "-t",
            "-u",
            "1001",
            "--console-socket",
            sock,
            &id,
            "sh",
        ],
    );
    write_fd(&m2, b"echo owner-$(stat -c %u:%g $(tty))-end; exit\n");
    read_until(&m2, "owner-1001:5-end", READ);
    r.wait(TIMEOUT).ok();
    t.force_delete(&id);

    // Pipes (files here) given as stdio: reopened through /dev/stdout by uid 1000.
    let out = t.run(
        "p",
        &["sh", "-c", "echo via-dev-stdout > /dev/stdout"],
        |c| {
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        },
    );
    out.ok();
    assert_eq!(out.stdout, "via-dev-stdout\n");
}
