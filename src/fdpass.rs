//! Passing file descriptors over unix sockets (SCM_RIGHTS): the console master to a
//! `--console-socket`, the seccomp listener to its agent, fds from the init to us; and
//! keeping every other fd from crossing an execve.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Send `data` (at least one byte) with `fd` attached. Allocates nothing, so the child
/// may use it right before execve.
pub fn send(sock: RawFd, data: &[u8], fd: RawFd) -> io::Result<()> {
    send_fds(sock, data, &[fd])
}

/// Most fds one message carries: one per cgroup hierarchy fits with room to spare.
pub const MAX_FDS: usize = 16;

/// Send `data` (at least one byte) with up to [`MAX_FDS`] fds attached (none: a plain
/// write). Allocates nothing.
pub fn send_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::other(format!(
            "{} fds in one message",
            fds.len()
        )));
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let bytes = std::mem::size_of_val(fds);
    // Room for one cmsg with MAX_FDS ints, aligned as CMSG_SPACE wants.
    let mut cbuf = [0u64; 2 + MAX_FDS / 2];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes as u32) } as _;
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes as u32) as _;
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned((libc::CMSG_DATA(c) as *mut RawFd).add(i), *fd);
            }
        }
    }
    loop {
        let r = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Receive up to `buf.len()` bytes and the fd sent with them, if any (made CLOEXEC).
/// Returns 0 bytes at EOF.
pub fn recv(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    // A second fd in one message would be a protocol error: dropped (closed), not leaked.
    let (n, fds) = recv_fds(sock, buf)?;
    Ok((n, fds.into_iter().next()))
}

/// Receive up to `buf.len()` bytes and every fd sent with them (made CLOEXEC; more than
/// [`MAX_FDS`] are closed by the kernel, which truncates the control data). Returns 0
/// bytes at EOF.
pub fn recv_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 2 + MAX_FDS / 2];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    let n = loop {
        let r = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            break r as usize;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..k {
                    let p = (libc::CMSG_DATA(c) as *const RawFd).add(i);
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p)));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, fds))
}

/// A connected CLOEXEC unix stream socketpair.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Mark every fd from `first` up close-on-exec: whatever we inherited or opened stays
/// ours. Async-signal-safe (no allocation): callable between fork and exec.
pub fn cloexec_from(first: u32) {
    const CLOSE_RANGE_CLOEXEC: u32 = 4;
    if unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) } == 0 {
        return;
    }
    // Not /proc/self/fd: after pivot_root that is whatever the image put at /proc.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let max = lim.rlim_cur.min(1 << 20) as i32;
    for fd in first as i32..max {
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}
