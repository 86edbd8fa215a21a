//! process.terminal: a pty made inside the container, its master sent over a unix socket
//! (runc's `--console-socket` protocol), or proxied to our own terminal in the foreground.

use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::process::user::os;

const PTMX_MAJOR: u32 = 5;
const PTMX_MINOR: u32 = 2;

/// Child side, inside the container's mount namespace: open a pty from the container's
/// devpts, send the master (named by its /dev/pts path, as runc does) over `sock`, and
/// make the slave our controlling terminal and stdio. `bind_console`: the init also
/// shows it at /dev/console.
pub fn attach(sock: RawFd, size: Option<(u16, u16)>, bind_console: bool) -> Result<()> {
    let master = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(std::io::Error::last_os_error()).context("open /dev/ptmx in the container");
    }
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // In a running container /dev/ptmx is the container's to replace: accept only a ptmx.
    let st = crate::paths::fstat(master.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || libc::major(st.st_rdev) != PTMX_MAJOR
        || libc::minor(st.st_rdev) != PTMX_MINOR
    {
        bail!("/dev/ptmx in the container is not the pty multiplexer");
    }
    let unlock: libc::c_int = 0;
    os(
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) },
        "unlock pty",
    )?;
    let mut n: libc::c_uint = 0;
    os(
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) },
        "pty number",
    )?;
    // The peer by fd, not by /dev/pts/N path: nothing in between can swap it.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(std::io::Error::last_os_error()).context("open the pty slave");
    }
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((h, w)) = size {
        set_size(master.as_raw_fd(), h, w)?;
    }
    let name = format!("/dev/pts/{n}");
    if bind_console {
        bind_dev_console(&slave)?;
    }
    crate::fdpass::send(sock, name.as_bytes(), master.as_raw_fd())
        .context("send the pty master to the console socket")?;
    drop(master);
    unsafe {
        libc::setsid();
        os(
            libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0),
            "set controlling terminal",
        )?;
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(std::io::Error::last_os_error()).context("pty as stdio");
            }
        }
    }
    Ok(())
}

fn bind_dev_console(slave: &OwnedFd) -> Result<()> {
    // runc's /dev/console: a file to bind the pty onto, by fd at both ends, never
    // through a path that a symlink in the image could redirect (CVE-2025-52565).
    let mut fd = unsafe {
        libc::open(
            c"/dev/console".as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
        fd = unsafe {
            libc::open(
                c"/dev/console".as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600,
            )
        };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("open /dev/console");
    }
    let target = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = crate::paths::fstat(target.as_raw_fd())?;
    if !matches!(st.st_mode & libc::S_IFMT, libc::S_IFREG | libc::S_IFCHR) {
        bail!("/dev/console in the container is neither a file nor a device (a symlink?)");
    }
    let tree = crate::mounts::fdmount::clone_tree(slave.as_raw_fd(), false)
        .context("bind the pty onto /dev/console")?;
    crate::mounts::fdmount::move_onto(tree.as_raw_fd(), target.as_raw_fd())
        .context("bind the pty onto /dev/console")?;
    Ok(())
}

fn set_size(fd: RawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    os(
        unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) },
        "process.consoleSize",
    )
}

/// Parent side: connect to `--console-socket` before the clone, so a bad path fails early.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("--console-socket {}", path.display()))?;
    Ok(s.into())
}

/// Parent side: the master a child sent over our end of an internal socketpair.
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 64];
    match crate::fdpass::recv(sock.as_raw_fd(), &mut buf)? {
        (_, Some(fd)) => Ok(fd),
        _ => bail!("the container did not send its pty"),
    }
}

/// Copy the caller's window size to the pty.
fn copy_size(master: RawFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // A caller without a real size (0x0) keeps process.consoleSize.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
        unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
    }
}

/// Restores the caller's terminal mode when dropped.
struct RawMode(Option<libc::termios>);

impl RawMode {
    fn enter() -> RawMode {
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::isatty(0) } != 1 || unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return RawMode(None);
        }
        let mut raw = t;
        unsafe {
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSANOW, &raw);
        }
        RawMode(Some(t))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Foreground with a terminal: our stdin/stdout ↔ the pty, signals forwarded to `pid`
/// (SIGWINCH resizes instead), until `pid` exits. Every signal must already be blocked
/// (as `create` and `exec` leave them). Returns the exit code.
pub fn proxy(master: OwnedFd, pid: libc::pid_t) -> i32 {
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigfillset(&mut all) };
    let sfd = unsafe { libc::signalfd(-1, &all, libc::SFD_CLOEXEC) };
    let _raw = RawMode::enter();
    let m = master.as_raw_fd();
    copy_size(m);
    let mut stdin_open = true;
    let mut master_open = true;
    let mut code = None;
    let mut buf = [0u8; 8192];
    loop {
        if code.is_some() {
            // Exited: print what is left in the pty, without waiting for other holders.
            unsafe { libc::fcntl(m, libc::F_SETFL, libc::O_NONBLOCK) };
            while master_open {
                let n = unsafe { libc::read(m, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                if n <= 0 || !write_all(1, &buf[..n as usize]) {
                    master_open = false;
                }
            }
            break;
        }
        let mut fds = [
            libc::pollfd {
                fd: sfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if master_open { m } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } < 0 {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let n = std::mem::size_of_val(&si);
            if unsafe { libc::read(sfd, &mut si as *mut _ as *mut libc::c_void, n) } == n as isize {
                match si.ssi_signo as i32 {
                    libc::SIGCHLD => {
                        let mut status = 0;
                        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                            code = Some(crate::signal::exit_code(status));
                        }
                    }
                    libc::SIGWINCH => copy_size(m),
                    sig => unsafe {
                        libc::kill(pid, sig);
                    },
                }
            }
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let n = unsafe { libc::read(0, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
            if n <= 0 || !write_all(m, &buf[..n as usize]) {
                stdin_open = false;
            }
        }
        if fds[2].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let n = unsafe { libc::read(m, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
            // EIO once every slave fd is closed.
            if n <= 0 || !write_all(1, &buf[..n as usize]) {
                master_open = false;
            }
        }
    }
    unsafe { libc::close(sfd) };
    code.unwrap_or(255)
}

/// (the child's end, our end) of the console socket, checked against process.terminal
/// as runc does.
pub fn socket_ends(
    terminal: bool,
    path: Option<&Path>,
    foreground: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    match (terminal, path) {
        (true, Some(p)) => Ok((Some(connect(p)?), None)),
        (true, None) if foreground => {
            let (ours, child) = crate::fdpass::socketpair()?;
            Ok((Some(child), Some(ours)))
        }
        (true, None) => bail!("process.terminal is true: a detached container needs --console-socket to receive its terminal"),
        (false, Some(_)) => bail!("--console-socket given but process.terminal is false: there is no terminal to send"),
        (false, None) => Ok((None, None)),
    }
}
