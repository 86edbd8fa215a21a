//! linux.seccomp: actions, errno values, argument conditions, unknown names, the notify
//! listener protocol, and that only the user's program runs under the filter.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

/// Set linux.seccomp to `defaultAction` with these syscall rules.
fn seccomp(c: &mut Value, default: &str, syscalls: Value) {
    c["linux"]["seccomp"] = json!({"defaultAction": default, "syscalls": syscalls});
}

/// Allow everything but `rules` (the usual shape for a deny-list).
fn deny(rules: Value) -> impl FnOnce(&mut Value) {
    move |c: &mut Value| {
        tmpfs_tmp(c);
        seccomp(c, "SCMP_ACT_ALLOW", rules);
    }
}

/// Capabilities of the base config plus CAP_SYS_ADMIN, so that what a filter refuses is
/// not refused for want of a capability anyway.
fn with_sys_admin(c: &mut Value) {
    let caps = json!([
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_ADMIN"
    ]);
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] = caps.clone();
    }
}

/// Every x86_64 syscall name but mkdir and mkdirat (names another arch lacks are skipped).
const ALL_BUT_MKDIR: &str = "
    read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction 
    rt_sigprocmask rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select sched_yield 
    mremap msync mincore madvise shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm 
    setitimer getpid sendfile socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind 
    listen getsockname getpeername socketpair setsockopt getsockopt clone fork vfork execve exit 
    wait4 kill uname semget semop semctl shmdt msgget msgsnd msgrcv msgctl fcntl flock fsync 
    fdatasync truncate ftruncate getdents getcwd chdir fchdir rename rmdir creat link unlink 
    symlink readlink chmod fchmod chown fchown lchown umask gettimeofday getrlimit getrusage 
    sysinfo times ptrace getuid syslog getgid setuid setgid geteuid getegid setpgid getppid 
    getpgrp setsid setreuid setregid getgroups setgroups setresuid getresuid setresgid getresgid 
    getpgid setfsuid setfsgid getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo 
    rt_sigsuspend sigaltstack utime mknod uselib personality ustat statfs fstatfs sysfs 
    getpriority setpriority sched_setparam sched_getparam sched_setscheduler sched_getscheduler 
    sched_get_priority_max sched_get_priority_min sched_rr_get_interval mlock munlock mlockall 
    munlockall vhangup modify_ldt pivot_root _sysctl prctl arch_prctl adjtimex setrlimit chroot 
    sync acct settimeofday mount umount2 swapon swapoff reboot sethostname setdomainname iopl 
    ioperm create_module init_module delete_module get_kernel_syms query_module quotactl 
    nfsservctl getpmsg putpmsg afs_syscall tuxcall security gettid readahead setxattr lsetxattr 
    fsetxattr getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr removexattr 
    lremovexattr fremovexattr tkill time futex sched_setaffinity sched_getaffinity set_thread_area 
    io_setup io_destroy io_getevents io_submit io_cancel get_thread_area lookup_dcookie 
    epoll_create epoll_ctl_old epoll_wait_old remap_file_pages getdents64 set_tid_address 
    restart_syscall semtimedop fadvise64 timer_create timer_settime timer_gettime timer_getoverrun 
    timer_delete clock_settime clock_gettime clock_getres clock_nanosleep exit_group epoll_wait 
    epoll_ctl tgkill utimes vserver mbind set_mempolicy get_mempolicy mq_open mq_unlink 
    mq_timedsend mq_timedreceive mq_notify mq_getsetattr kexec_load waitid add_key request_key 
    keyctl ioprio_set ioprio_get inotify_init inotify_add_watch inotify_rm_watch migrate_pages 
    openat mknodat fchownat futimesat newfstatat unlinkat renameat linkat symlinkat readlinkat 
    fchmodat faccessat pselect6 ppoll unshare set_robust_list get_robust_list splice tee 
    sync_file_range vmsplice move_pages utimensat epoll_pwait signalfd timerfd_create eventfd 
    fallocate timerfd_settime timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 dup3 pipe2 
    inotify_init1 preadv pwritev rt_tgsigqueueinfo perf_event_open recvmmsg fanotify_init 
    fanotify_mark prlimit64 name_to_handle_at open_by_handle_at clock_adjtime syncfs sendmmsg 
    setns getcpu process_vm_readv process_vm_writev kcmp finit_module sched_setattr sched_getattr 
    renameat2 seccomp getrandom memfd_create kexec_file_load bpf execveat userfaultfd membarrier 
    mlock2 copy_file_range preadv2 pwritev2 pkey_mprotect pkey_alloc pkey_free statx io_pgetevents 
    rseq pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree move_mount 
    fsopen fsconfig fsmount fspick pidfd_open clone3 close_range openat2 pidfd_getfd faccessat2 
    process_madvise epoll_pwait2 mount_setattr quotactl_fd landlock_create_ruleset 
    landlock_add_rule landlock_restrict_self memfd_secret process_mrelease futex_waitv 
    set_mempolicy_home_node";

#[test]
fn errno_rules_block_syscalls_for_the_program() {
    let Some(t) = Test::new("sc_errno") else {
        return;
    };
    let script =
        "unshare -m true && echo unshared; mount -t tmpfs none /mnt && echo mounted; echo end";
    // Control: with CAP_SYS_ADMIN and no filter, both work.
    let out = t.run("nofilter", &["sh", "-c", script], with_sys_admin);
    out.ok();
    assert_eq!(out.stdout, "unshared\nmounted\nend\n", "{out:#?}");

    let rules = json!([{"names": ["unshare", "mount", "keyctl"], "action": "SCMP_ACT_ERRNO"}]);
    for nnp in [true, false] {
        let out = t.run(
            &format!("filter-{nnp}"),
            &[
                "sh",
                "-c",
                &format!("{script}; grep Seccomp: /proc/self/status"),
            ],
            |c| {
                deny(rules.clone())(c);
                with_sys_admin(c);
                c["process"]["noNewPrivileges"] = json!(nnp);
            },
        );
        out.ok();
        assert_eq!(out.stdout, "end\nSeccomp:\t2\n", "nnp {nnp}: {out:#?}");
        // (busybox mount words EPERM its own way)
        assert!(
            out.stderr
                .contains("unshare: unshare(0x20000): Operation not permitted"),
            "nnp {nnp}: {out:#?}"
        );
        assert!(
            out.stderr.contains("mount: permission denied"),
            "nnp {nnp}: {out:#?}"
        );
    }
}

#[test]
fn errno_ret_and_default_errno_ret() {
    let Some(t) = Test::new("sc_errnoret") else {
        return;
    };
    // errnoRet on a rule.
    let out = t.run(
        "rule",
        &["sh", "-c", "mkdir /tmp/d; echo rc=$?"],
        deny(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}])),
    );
    out.ok();
    assert_eq!(out.stdout, "rc=1\n");
    assert!(out.stderr.contains("Function not implemented"), "{out:#?}");

    // defaultErrnoRet: an allow-list (every syscall but mkdir) with an errno default.
    let names: Vec<&str> = ALL_BUT_MKDIR.split_whitespace().collect();
    let out = t.run(
        "default",
        &[
            "sh",
            "-c",
            "echo before; mkdir /tmp/d; echo rc=$?; grep Seccomp: /proc/self/status",
        ],
        |c| {
            tmpfs_tmp(c);
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 18,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
            });
        },
    );
    out.ok();
    assert_eq!(out.stdout, "before\nrc=1\nSeccomp:\t2\n", "{out:#?}");
    assert!(out.stderr.contains("Invalid cross-device link"), "{out:#?}");

    // Without errnoRet, ERRNO means EPERM.
    let out = t.run(
        "eperm",
        &["sh", "-c", "mkdir /tmp/d"],
        deny(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])),
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Operation not permitted"), "{out:#?}");

    // An errnoRet out of range is a config error.
    let b = t.bundle(
        "range",
        &["true"],
        deny(json!([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}])),
    );
    create_fails(&t, &t.id("range"), &b, &["errnoRet", "70000"]);
}

#[test]
fn argument_conditions() {
    let Some(t) = Test::new("sc_args") else {
        return;
    };
    // kill(pid, sig) is refused only for sig == SIGUSR1 (arg 1).
    let kill_script =
        "trap '' USR1; kill -USR1 $$; echo usr1=$?; kill -0 $$; echo zero=$?; trap '' USR2; kill -USR2 $$; echo usr2=$?";
    let out = t.run("kill-nofilter", &["sh", "-c", kill_script], |_| {});
    out.ok();
    assert_eq!(out.stdout, "usr1=0\nzero=0\nusr2=0\n", "{out:#?}");
    let out = t.run(
        "kill",
        &["sh", "-c", kill_script],
        deny(json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                     "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}])),
    );
    out.ok();
    assert_eq!(out.stdout, "usr1=1\nzero=0\nusr2=0\n", "{out:#?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:#?}");

    // MASKED_EQ (value is the mask, valueTwo the datum): open with O_TRUNC is refused,
    // so `>` fails where `>>` works.
    const O_TRUNC: u64 = libc::O_TRUNC as u64;
    let trunc = |index: u32| json!({"index": index, "value": O_TRUNC, "valueTwo": O_TRUNC, "op": "SCMP_CMP_MASKED_EQ"});
    let out = t.run(
        "masked",
        &["sh", "-c", "echo a >> /tmp/f; echo append=$?; echo b > /tmp/f; echo trunc=$?; cat /tmp/f"],
        deny(json!([
            {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "args": [trunc(2)]},
            {"names": ["open", "creat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "args": [trunc(1)]}
        ])),
    );
    out.ok();
    assert_eq!(out.stdout, "append=0\ntrunc=1\na\n", "{out:#?}");
    assert!(out.stderr.contains("Function not implemented"), "{out:#?}");

    // Two conditions on one argument are alternatives (as runc reads them): USR1 or USR2.
    let out = t.run(
        "either",
        &["sh", "-c", kill_script],
        deny(json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                     "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"},
                              {"index": 1, "value": 12, "op": "SCMP_CMP_EQ"}]}])),
    );
    out.ok();
    assert_eq!(out.stdout, "usr1=1\nzero=0\nusr2=1\n", "{out:#?}");

    // Conditions on two arguments must both hold: kill(1, SIGUSR1) only... here pid is
    // $$ (not 1), so nothing is refused.
    let out = t.run(
        "both",
        &["sh", "-c", kill_script],
        deny(json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                     "args": [{"index": 0, "value": 999999, "op": "SCMP_CMP_EQ"},
                              {"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}])),
    );
    out.ok();
    assert_eq!(out.stdout, "usr1=0\nzero=0\nusr2=0\n", "{out:#?}");

    // An argument index past the sixth is a config error.
    let b = t.bundle(
        "index",
        &["true"],
        deny(json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}])),
    );
    create_fails(&t, &t.id("index"), &b, &["index", "6"]);
}

#[test]
fn kill_process_action() {
    let Some(t) = Test::new("sc_kill") else {
        return;
    };
    let rules = json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]);
    // The program itself (pid 1 of its namespace) dies of SIGSYS.
    let out = t.run("direct", &["mkdir", "/tmp/d"], deny(rules.clone()));
    assert_eq!(out.code, 128 + libc::SIGSYS, "{out:#?}");
    // A child of the shell dies of it; the shell goes on.
    let out = t.run(
        "child",
        &["sh", "-c", "echo before; mkdir /tmp/d; echo rc=$?"],
        deny(rules),
    );
    out.ok();
    assert_eq!(
        out.stdout,
        format!("before\nrc={}\n", 128 + libc::SIGSYS),
        "{out:#?}"
    );
    // SCMP_ACT_KILL (thread) in a single-threaded program: the same.
    let out = t.run(
        "thread",
        &["mkdir", "/tmp/d"],
        deny(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}])),
    );
    assert_eq!(out.code, 128 + libc::SIGSYS, "{out:#?}");
}

#[test]
fn unknown_names_are_skipped_and_bad_actions_refused() {
    let Some(t) = Test::new("sc_unknown") else {
        return;
    };
    let out = t.run(
        "names",
        &["sh", "-c", "mkdir /tmp/d; echo rc=$?"],
        deny(
            json!([{"names": ["no_such_syscall_xyz", "mkdir", "mkdirat", "another_made_up_one"],
                     "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]),
        ),
    );
    out.ok();
    assert_eq!(out.stdout, "rc=1\n");
    assert!(out.stderr.contains("Function not implemented"), "{out:#?}");

    for (tag, edit, needles) in [
        (
            "action",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]}),
            vec!["config.json", "SCMP_ACT_BOGUS"],
        ),
        (
            "default",
            json!({"defaultAction": "SCMP_ACT_NOPE"}),
            vec!["config.json", "SCMP_ACT_NOPE"],
        ),
        (
            "op",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                   "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}),
            vec!["config.json", "SCMP_CMP_SOMETIMES"],
        ),
        (
            "arch",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]}),
            vec!["config.json", "SCMP_ARCH_PDP11"],
        ),
    ] {
        let b = t.bundle(tag, &["true"], |c| c["linux"]["seccomp"] = edit);
        create_fails(&t, &t.id(tag), &b, &needles);
    }
}

#[test]
fn other_actions_and_flags() {
    let Some(t) = Test::new("sc_actions") else {
        return;
    };
    let mk = |action: &str| deny(json!([{"names": ["mkdir", "mkdirat"], "action": action}]));
    // TRAP: SIGSYS, which the program does not handle.
    let out = t.run("trap", &["mkdir", "/tmp/d"], mk("SCMP_ACT_TRAP"));
    assert_eq!(out.code, 128 + libc::SIGSYS, "{out:#?}");
    // LOG: allowed (and logged).
    let out = t.run(
        "log",
        &["sh", "-c", "mkdir /tmp/d && echo made"],
        mk("SCMP_ACT_LOG"),
    );
    out.ok();
    assert_eq!(out.stdout, "made\n");
    // TRACE without a tracer: the syscall fails with ENOSYS.
    let out = t.run(
        "trace",
        &["sh", "-c", "mkdir /tmp/d; echo rc=$?"],
        mk("SCMP_ACT_TRACE"),
    );
    out.ok();
    assert_eq!(out.stdout, "rc=1\n");
    assert!(out.stderr.contains("Function not implemented"), "{out:#?}");
    // Filter flags are accepted and the filter still works.
    let out = t.run("flags", &["sh", "-c", "mkdir /tmp/d; echo rc=$?"], |c| {
        mk("SCMP_ACT_ERRNO")(c);
        c["linux"]["seccomp"]["flags"] = json!([
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
        ]);
    });
    out.ok();
    assert_eq!(out.stdout, "rc=1\n");
    assert!(out.stderr.contains("Operation not permitted"), "{out:#?}");
}

/// Parts of a seccomp_notif (struct seccomp_notif, 80 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

// _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp)
const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xc018_2101;

/// Wait (with a deadline) for one notification on a seccomp listener fd.
fn notif_recv(fd: &OwnedFd) -> Notif {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let r = unsafe { libc::poll(&mut p, 1, 20_000) };
    assert_eq!(r, 1, "no seccomp notification came");
    let mut n = Notif::default();
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut n) };
    assert_eq!(
        r,
        0,
        "SECCOMP_IOCTL_NOTIF_RECV: {}",
        std::io::Error::last_os_error()
    );
    n
}

fn notify_profile(listener: &std::path::Path) -> impl FnOnce(&mut Value) + '_ {
    move |c: &mut Value| {
        tmpfs_tmp(c);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": listener,
            "listenerMetadata": "meta-data-42",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    }
}

/// Accept the agent connection of the running strata `r` and return its JSON and fd.
fn agent(l: &UnixListener, r: &mut Running) -> (Value, OwnedFd) {
    let s = accept_until_exit(l, &mut r.child, Duration::from_secs(20))
        .expect("strata never connected to the seccomp listener path");
    let (data, fd) = recv_with_fd(&s);
    let v: Value = serde_json::from_slice(&data).unwrap_or_else(|e| {
        panic!(
            "agent message is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&data)
        )
    });
    (v, fd)
}

#[test]
fn notify_hands_the_listener_to_the_agent() {
    let Some(t) = Test::new("sc_notify") else {
        return;
    };
    let lp = t.dir.join("agent.sock");
    let l = UnixListener::bind(&lp).unwrap();
    let b = t.bundle("b", &["mkdir", "/tmp/d"], notify_profile(&lp));
    let id = t.id("c");
    let mut r = Running::spawn(&mut t.command(&["run", &id, "-b", b.to_str().unwrap()]));
    let (msg, fd) = agent(&l, &mut r);
    assert_eq!(fd_link(&fd), "anon_inode:seccomp notify", "{msg}");
    assert_eq!(msg["fds"], json!(["seccompFd"]), "{msg}");
    assert_eq!(msg["metadata"], "meta-data-42", "{msg}");
    assert!(msg["ociVersion"].is_string(), "{msg}");
    let st = &msg["state"];
    assert_eq!(st["id"], id.as_str(), "{msg}");
    assert_eq!(st["status"], "creating", "{msg}");
    assert_eq!(st["bundle"], b.to_str().unwrap(), "{msg}");
    let pid = msg["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0, "{msg}");
    assert_eq!(st["pid"], pid, "{msg}");
    // The pid is the init's (on the host), in the container's cgroup.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    assert!(cg.contains(&id), "pid {pid} is not the container's: {cg}");

    // Answer mkdir with EXDEV: the program sees our answer.
    let n = notif_recv(&fd);
    assert_eq!(n.pid as i32, pid, "{n:?}");
    assert!(
        n.nr as i64 == libc::SYS_mkdir || n.nr as i64 == libc::SYS_mkdirat,
        "notified for syscall {} instead of mkdir: {n:?}",
        n.nr
    );
    let resp = NotifResp {
        id: n.id,
        val: 0,
        error: -libc::EXDEV,
        flags: 0,
    };
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, &resp) };
    assert_eq!(
        rc,
        0,
        "SECCOMP_IOCTL_NOTIF_SEND: {}",
        std::io::Error::last_os_error()
    );
    let out = r.wait(TIMEOUT);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("Invalid cross-device link"), "{out:#?}");
    t.assert_no_leftovers(&id);
}

#[test]
fn notify_without_an_agent_answer_fails_with_enosys() {
    let Some(t) = Test::new("sc_notify_close") else {
        return;
    };
    let lp = t.dir.join("agent.sock");
    let l = UnixListener::bind(&lp).unwrap();
    let b = t.bundle(
        "b",
        &[
            "sh",
            "-c",
            "mkdir /tmp/d; echo rc=$?; grep Seccomp: /proc/self/status",
        ],
        notify_profile(&lp),
    );
    let id = t.id("c");
    let mut r = Running::spawn(&mut t.command(&["create", &id, "-b", b.to_str().unwrap()]));
    let (msg, fd) = agent(&l, &mut r);
    r.wait(TIMEOUT).ok();
    assert_eq!(fd_link(&fd), "anon_inode:seccomp notify");
    assert_eq!(msg["pid"], t.pid(&id), "{msg}");
    // With the listener closed, the notified syscall fails with ENOSYS.
    drop(fd);
    t.strata(&["start", &id]).ok();
    t.wait_status(&id, "stopped");
    t.strata(&["delete", &id]).ok();
    t.assert_no_leftovers(&id);

    // Same with run, whose output we can read.
    let mut r = Running::spawn(&mut t.command(&["run", &t.id("r"), "-b", b.to_str().unwrap()]));
    let (_, fd) = agent(&l, &mut r);
    drop(fd);
    let out = r.wait(TIMEOUT);
    out.ok();
    assert_eq!(out.stdout, "rc=1\nSeccomp:\t2\n", "{out:#?}");
    assert!(out.stderr.contains("Function not implemented"), "{out:#?}");
    t.assert_no_leftovers(&t.id("r"));
}

#[test]
fn notify_for_exec() {
    let Some(t) = Test::new("sc_notify_exec") else {
        return;
    };
    let lp = t.dir.join("agent.sock");
    let l = UnixListener::bind(&lp).unwrap();
    let b = t.bundle("b", &["sleep", "1000"], notify_profile(&lp));
    let id = t.id("c");
    let mut r = Running::spawn(&mut t.command(&["run", "-d", &id, "-b", b.to_str().unwrap()]));
    let (_, fd) = agent(&l, &mut r);
    r.wait(TIMEOUT).ok();
    drop(fd);
    let init = t.pid(&id);
    let mut r = Running::spawn(&mut t.command(&["exec", &id, "mkdir", "/tmp/e"]));
    let (msg, fd) = agent(&l, &mut r);
    assert_eq!(fd_link(&fd), "anon_inode:seccomp notify");
    assert_eq!(msg["state"]["id"], id.as_str(), "{msg}");
    assert_eq!(msg["state"]["status"], "running", "{msg}");
    assert_eq!(msg["state"]["pid"], init, "{msg}");
    let pid = msg["pid"].as_i64().unwrap() as i32;
    assert_ne!(pid, init, "{msg}");
    let n = notif_recv(&fd);
    assert_eq!(n.pid as i32, pid, "{n:?}");
    let resp = NotifResp {
        id: n.id,
        val: 0,
        error: -libc::EXDEV,
        flags: 0,
    };
    assert_eq!(
        unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, &resp) },
        0
    );
    let out = r.wait(TIMEOUT);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("Invalid cross-device link"), "{out:#?}");
    t.force_delete(&id);
}

#[test]
fn notify_needs_a_listener_path() {
    let Some(t) = Test::new("sc_notify_nopath") else {
        return;
    };
    let b = t.bundle("b", &["true"], |c| {
        seccomp(
            c,
            "SCMP_ACT_ALLOW",
            json!([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]),
        )
    });
    create_fails(&t, &t.id("c"), &b, &["listenerPath"]);
    // An agent that is not there: the error names the path, nothing is left.
    let missing = t.dir.join("no-agent.sock");
    let b = t.bundle("b2", &["true"], notify_profile(&missing));
    create_fails(&t, &t.id("d"), &b, &["no-agent.sock"]);
    // The runtime writes, and sends the listener with sendmsg, after the filter is in:
    // notifying those would hang it.
    for name in ["write", "sendmsg"] {
        let b = t.bundle(&format!("b-{name}"), &["true"], |c| {
            notify_profile(&t.dir.join("agent.sock"))(c);
            c["linux"]["seccomp"]["syscalls"][0]["names"] = json!(["mkdir", name]);
        });
        create_fails(&t, &t.id(name), &b, &["SCMP_ACT_NOTIFY", name]);
    }
    // NOTIFY as the default action is refused.
    let b = t.bundle("b3", &["true"], |c| {
        seccomp(c, "SCMP_ACT_NOTIFY", json!([]))
    });
    create_fails(&t, &t.id("e"), &b, &["defaultAction"]);
}

#[test]
fn filter_applies_to_the_program_not_the_runtime() {
    let Some(t) = Test::new("sc_late") else {
        return;
    };
    // The runtime sets the hostname and joins a session keyring before the filter; the
    // program cannot do either.
    let rules = json!([{"names": ["sethostname", "setdomainname", "keyctl", "add_key"],
                        "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]);
    for nnp in [true, false] {
        let out = t.run(
            &format!("c-{nnp}"),
            &["sh", "-c", "hostname; hostname other; echo rc=$?; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"],
            |c| {
                deny(rules.clone())(c);
                with_sys_admin(c);
                c["process"]["noNewPrivileges"] = json!(nnp);
                c["domainname"] = json!("example.org");
            },
        );
        out.ok();
        let nnp_bit = if nnp { 1 } else { 0 };
        assert_eq!(
            out.stdout,
            format!("strata\nrc=1\nNoNewPrivs:\t{nnp_bit}\nSeccomp:\t2\n"),
            "nnp {nnp}: {out:#?}"
        );
        assert!(
            out.stderr.contains("Function not implemented"),
            "nnp {nnp}: {out:#?}"
        );
    }
    // A profile that refuses what only the runtime does after the filter would break
    // the container; one that allows everything still shows filter mode.
    let out = t.run("allow", &["grep", "Seccomp:", "/proc/self/status"], |c| {
        seccomp(c, "SCMP_ACT_ALLOW", json!([]))
    });
    out.ok();
    assert_eq!(out.stdout, "Seccomp:\t2\n");
    let out = t.run("none", &["grep", "Seccomp:", "/proc/self/status"], |_| {});
    out.ok();
    assert_eq!(out.stdout, "Seccomp:\t0\n");
}

#[test]
fn a_hung_setup_can_still_be_stopped_with_sigterm() {
    let Some(t) = Test::new("sc_hang") else {
        return;
    };
    let lp = t.dir.join("agent.sock");
    let l = UnixListener::bind(&lp).unwrap();
    // NOTIFY on capset, which the init calls after loading the filter (noNewPrivileges
    // false: the filter goes in before the capabilities drop). The agent takes the fd and
    // never answers, so the init waits forever.
    let b = t.bundle("b", &["true"], |c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": lp,
            "syscalls": [{"names": ["capset"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let id = t.id("c");
    let mut r = Running::spawn(&mut t.command(&["create", &id, "-b", b.to_str().unwrap()]));
    let (_msg, fd) = agent(&l, &mut r);
    // The init is now stuck in capset, and create waits on it.
    assert!(process_alive(r.child.id() as i32));
    unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) };
    let out = r.wait(TIMEOUT);
    out.assert_error(&["interrupted by signal 15"]);
    drop(fd);
    t.assert_no_leftovers(&id);
}

/// runc's ENOSYS stub: with a non-allowing default, a syscall newer than the newest one
/// the profile names fails with ENOSYS (so programs fall back, as glibc does from
/// faccessat2 to faccessat), whatever `defaultErrnoRet` says; an older unlisted one gets
/// the default errno. The program is the host's perl (its /usr bound in, its /lib and
/// /lib64 as they are on the host), as busybox cannot make an arbitrary syscall.
#[test]
fn syscalls_newer_than_the_profile_fail_with_enosys() {
    use libseccomp::{ScmpArch, ScmpSyscall};
    let Some(t) = Test::new("seccomp_enosys") else {
        return;
    };
    if !std::path::Path::new("/usr/bin/perl").is_file() {
        eprintln!(
            "SKIP: syscalls_newer_than_the_profile_fail_with_enosys: no /usr/bin/perl on the host"
        );
        return;
    }
    let nr = |name: &str| ScmpSyscall::from_name(name).ok().map(i32::from);
    let (Some(newest), Some(denied), Some(newer)) =
        (nr("close_range"), nr("getppid"), nr("faccessat2"))
    else {
        eprintln!("SKIP: syscalls_newer_than_the_profile_fail_with_enosys: this libseccomp does not know close_range or faccessat2");
        return;
    };
    assert!(newer > newest, "faccessat2 must come after close_range");
    // Every syscall up to close_range but getppid.
    let allowed: Vec<String> = (0..=newest)
        .filter(|&n| n != denied)
        .filter_map(|n| {
            ScmpSyscall::from(n)
                .get_name_by_arch(ScmpArch::native())
                .ok()
        })
        .collect();
    let script = format!(
        "my $p = qq(/); syscall({denied}); print $!+0, qq(\\n); $!=0; syscall({newer}, -100, $p, 0, 0); print $!+0, qq(\\n);"
    );
    let rootfs = t.rootfs_copy("rootfs");
    let mut binds = vec!["/usr".to_string()];
    for d in ["lib", "lib64", "lib32"] {
        let host = std::path::Path::new("/").join(d);
        match std::fs::read_link(&host) {
            Ok(l) => std::os::unix::fs::symlink(l, rootfs.join(d)).unwrap(),
            Err(_) if host.is_dir() => binds.push(host.display().to_string()),
            Err(_) => {}
        }
    }
    for errno in [None, Some(1)] {
        let out = t.run("c", &["/usr/bin/perl", "-e", &script], |c| {
            set_root(c, &rootfs);
            for b in &binds {
                bind_mount(c, std::path::Path::new(b), b, true);
            }
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
            });
            if let Some(e) = errno {
                c["linux"]["seccomp"]["defaultErrnoRet"] = json!(e);
            }
        });
        out.ok();
        assert_eq!(
            out.lines(),
            [libc::EPERM.to_string(), libc::ENOSYS.to_string()],
            "defaultErrnoRet {errno:?}: {out:#?}"
        );
    }
}
