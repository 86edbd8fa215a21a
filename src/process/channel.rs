//! The init → parent message channel: "ready", "run the runtime's hooks", an fd for
//! the parent (the seccomp listener), the init's pid when it was forked again, "build
//! my idmapped mounts" (answered the other way, one tree fd each), or an error the user
//! must see, and "my user namespace is made, write its id maps".
//!
//! It is a CLOEXEC unix socket (fds can ride along), so a successful execve closes it:
//! EOF after "ready" means the user's program is running.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const READY: u8 = b'R';
const ERROR: u8 = b'E';
const FD: u8 = b'F';
const HOOKS: u8 = b'H';
const PID: u8 = b'P';
const IDMAP: u8 = b'I';
const TREE: u8 = b'T';
const USERNS: u8 = b'U';

/// What the parent heard from the init.
#[derive(Debug)]
pub enum Msg {
    Ready,
    /// Run the prestart and createRuntime hooks, then send a byte on "go".
    Hooks,
    Error(String),
    /// An fd the parent must pass on (the seccomp notify listener).
    Fd(OwnedFd),
    /// The init forked the real init (pid in the parent's pid namespace) and exited.
    Pid(libc::pid_t),
    /// Build the idmapped trees (see `mounts::idmap`) and send them back with `send_tree`.
    Idmap,
    /// The init made its user namespace itself (see `NsPlan::unshare_user`): write the maps.
    Userns,
    /// The init died or exec'd without another word.
    Eof,
}

/// The channel: (parent's end, child's end).
pub fn channel() -> std::io::Result<(OwnedFd, OwnedFd)> {
    crate::fdpass::socketpair()
}

/// Both ends of a CLOEXEC pipe.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn write_all(fd: &OwnedFd, buf: &[u8]) -> bool {
    let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) });
    f.write_all(buf).is_ok()
}

/// Child side.
pub fn send_ready(fd: &OwnedFd) {
    write_all(fd, &[READY]);
}

/// Child side: hand `fd` to the parent.
pub fn send_fd(chan: &OwnedFd, fd: std::os::fd::RawFd) -> std::io::Result<()> {
    crate::fdpass::send(chan.as_raw_fd(), &[FD], fd)
}

/// Child side: the pid of the process that carries on as the init.
pub fn send_pid(fd: &OwnedFd, pid: libc::pid_t) -> bool {
    let mut buf = [PID; 5];
    buf[1..].copy_from_slice(&pid.to_le_bytes());
    write_all(fd, &buf)
}

/// Child side: ask for the idmapped trees and receive `n` of them, in mount order.
pub fn request_trees(chan: &OwnedFd, n: usize) -> std::io::Result<Vec<OwnedFd>> {
    if !write_all(chan, &[IDMAP]) {
        return Err(std::io::Error::last_os_error());
    }
    (0..n)
        .map(|_| {
            let mut tag = [0u8; 1];
            match crate::fdpass::recv(chan.as_raw_fd(), &mut tag)? {
                (1, Some(fd)) if tag[0] == TREE => Ok(fd),
                _ => Err(std::io::Error::other("the runtime sent no idmapped tree")),
            }
        })
        .collect()
}

/// Parent side: one idmapped tree for the init.
pub fn send_tree(chan: &OwnedFd, tree: &OwnedFd) -> std::io::Result<()> {
    crate::fdpass::send(chan.as_raw_fd(), &[TREE], tree.as_raw_fd())
}

/// Child side: the user namespace is made and waits for its id maps.
pub fn send_userns(fd: &OwnedFd) {
    write_all(fd, &[USERNS]);
}

/// Child side: ask the parent to run its hooks.
pub fn send_hooks(fd: &OwnedFd) {
    write_all(fd, &[HOOKS]);
}

/// Child side: one error, length-prefixed so it cannot be confused with a later message.
/// False if nobody is listening any more.
pub fn send_error(fd: &OwnedFd, msg: &str) -> bool {
    let mut buf = Vec::with_capacity(msg.len() + 5);
    buf.push(ERROR);
    buf.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    buf.extend_from_slice(msg.as_bytes());
    write_all(fd, &buf)
}

/// Parent side: the next message.
pub fn recv(chan: &OwnedFd) -> Msg {
    let mut f =
        std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(chan.as_raw_fd()) });
    let mut tag = [0u8; 1];
    let fd = match crate::fdpass::recv(chan.as_raw_fd(), &mut tag) {
        Ok((1, fd)) => fd,
        _ => return Msg::Eof,
    };
    match tag[0] {
        READY => Msg::Ready,
        FD => match fd {
            Some(fd) => Msg::Fd(fd),
            None => Msg::Error("container init sent no fd with its fd message".into()),
        },
        HOOKS => Msg::Hooks,
        IDMAP => Msg::Idmap,
        USERNS => Msg::Userns,
        PID => {
            let mut b = [0u8; 4];
            match f.read_exact(&mut b) {
                Ok(()) => Msg::Pid(libc::pid_t::from_le_bytes(b)),
                Err(_) => Msg::Error("container init sent a truncated pid".into()),
            }
        }
        ERROR => {
            let mut len = [0u8; 4];
            if f.read_exact(&mut len).is_err() {
                return Msg::Error("container init failed (truncated error)".into());
            }
            let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
            let _ = f.read_exact(&mut buf);
            Msg::Error(String::from_utf8_lossy(&buf).into_owned())
        }
        _ => Msg::Error("container init sent a garbled message".into()),
    }
}

/// Parent side: the next message, unless one of the signals `sfd` (a signalfd) watches
/// comes first; then `Err(signal)`. A hung setup (a seccomp agent that never answers, a
/// hook) can then still be stopped with SIGTERM although every signal is blocked.
pub fn recv_or_signal(chan: &OwnedFd, sfd: &OwnedFd) -> Result<Msg, i32> {
    let mut fds = [
        libc::pollfd {
            fd: chan.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            continue;
        }
        if fds[1].revents & libc::POLLIN != 0 {
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let n = std::mem::size_of_val(&si);
            unsafe { libc::read(sfd.as_raw_fd(), &mut si as *mut _ as *mut libc::c_void, n) };
            return Err(si.ssi_signo as i32);
        }
        if fds[0].revents != 0 {
            return Ok(recv(chan));
        }
    }
}

/// A signalfd for the signals that mean "give up" (the caller has them blocked).
pub fn stop_signals() -> std::io::Result<OwnedFd> {
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::sigaddset(&mut set, s);
        }
    }
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
