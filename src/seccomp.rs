//! `linux.seccomp`: compiled to a BPF program with libseccomp in the parent, so that the
//! child only makes one seccomp(2) call, as late as it can.

mod enosys;

use anyhow::{bail, Context, Result};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const FLAG_TSYNC: libc::c_ulong = 1;
const FLAG_LOG: libc::c_ulong = 2;
const FLAG_SPEC_ALLOW: libc::c_ulong = 4;
const FLAG_NEW_LISTENER: libc::c_ulong = 8;
const FLAG_TSYNC_ESRCH: libc::c_ulong = 16;
const FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 32;
const MAX_ARGS: usize = 6;

/// A compiled filter, ready to load.
#[derive(Debug)]
pub struct Filter {
    /// `struct sock_filter` entries, as libseccomp exported them.
    prog: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
    /// Where the SCMP_ACT_NOTIFY listener fd goes, with the metadata it is sent with.
    pub listener: Option<(PathBuf, String)>,
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    use LinuxSeccompAction::*;
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match a {
        ScmpActKill | ScmpActKillThread => ScmpAction::KillThread,
        ScmpActKillProcess => ScmpAction::KillProcess,
        ScmpActTrap => ScmpAction::Trap,
        ScmpActErrno => {
            if errno > u16::MAX as u32 {
                bail!("errnoRet {errno} is out of range (0..65535)");
            }
            ScmpAction::Errno(errno as i32)
        }
        ScmpActTrace => ScmpAction::Trace(errno.min(u16::MAX as u32) as u16),
        ScmpActLog => ScmpAction::Log,
        ScmpActAllow => ScmpAction::Allow,
        ScmpActNotify => ScmpAction::Notify,
    })
}

fn compare(index: usize, op: LinuxSeccompOperator, value: u64, two: Option<u64>) -> ScmpArgCompare {
    use LinuxSeccompOperator::*;
    let op_ = match op {
        ScmpCmpNe => ScmpCompareOp::NotEqual,
        ScmpCmpLt => ScmpCompareOp::Less,
        ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        ScmpCmpEq => ScmpCompareOp::Equal,
        ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        ScmpCmpGt => ScmpCompareOp::Greater,
        // The spec's value is the mask and valueTwo the datum (as in runc).
        ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value),
    };
    let datum = if op == ScmpCmpMaskedEq {
        two.unwrap_or(0)
    } else {
        value
    };
    ScmpArgCompare::new(index as u32, op_, datum)
}

/// Compile `linux.seccomp`. Errors name the field and value at fault.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let f = "config.json: linux.seccomp";
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        bail!("{f}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action");
    }
    let default = action(s.default_action(), s.default_errno_ret())
        .with_context(|| format!("{f}.defaultErrnoRet"))?;
    let mut ctx = ScmpFilterContext::new(default).context("libseccomp: new filter")?;
    for arch in s.architectures().iter().flatten() {
        let name = serde_json::to_value(arch)?;
        let name = name.as_str().unwrap_or_default();
        let a = ScmpArch::from_str(name)
            .with_context(|| format!("{f}.architectures: unknown architecture {name:?}"))?;
        ctx.add_arch(a)
            .with_context(|| format!("{f}.architectures: {name}: libseccomp refused it"))?;
    }
    let mut notify = false;
    for (i, call) in s.syscalls().iter().flatten().enumerate() {
        let act = action(call.action(), call.errno_ret())
            .with_context(|| format!("{f}.syscalls[{i}].errnoRet"))?;
        // libseccomp refuses a rule whose action is the default; it would change nothing.
        if act == default {
            continue;
        }
        notify |= act == ScmpAction::Notify;
        let mut per_index = [0usize; MAX_ARGS];
        let mut conds = Vec::new();
        for (j, a) in call.args().iter().flatten().enumerate() {
            if a.index() >= MAX_ARGS {
                bail!(
                    "{f}.syscalls[{i}].args[{j}].index {}: a syscall has only {MAX_ARGS} arguments",
                    a.index()
                );
            }
            per_index[a.index()] += 1;
            conds.push(compare(a.index(), a.op(), a.value(), a.value_two()));
        }
        for name in call.names() {
            if act == ScmpAction::Notify && (name == "write" || name == "sendmsg") {
                // The runtime itself writes after the filter is loaded, and sends the
                // listener fd with sendmsg: notified, that call would wait forever for
                // an agent that cannot have the fd yet.
                bail!("{f}.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for {name:?}");
            }
            // Names this libseccomp (or arch) does not know are skipped, as runc does: a
            // profile written for a newer kernel must still work on an older one.
            let Ok(nr) = libseccomp::ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "seccomp: unknown syscall, skipped");
                continue;
            };
            let res = if conds.is_empty() {
                ctx.add_rule(act, nr)
            } else if per_index.iter().any(|&n| n > 1) {
                // Two conditions on one argument can never both hold: runc reads them
                // as alternatives, one rule each.
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, nr, &[*c]).map(|_| ()))
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, nr, &conds)
            };
            res.with_context(|| format!("{f}.syscalls[{i}]: rule for {name:?}"))?;
        }
    }
    let mut flags = 0;
    for fl in s.flags().iter().flatten() {
        flags |= match fl {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    let listener = match (notify, s.listener_path()) {
        (true, Some(p)) if !p.as_os_str().is_empty() => {
            flags |= FLAG_NEW_LISTENER;
            if flags & FLAG_TSYNC != 0 {
                flags |= FLAG_TSYNC_ESRCH;
            }
            Some((p.clone(), s.listener_metadata().clone().unwrap_or_default()))
        }
        (true, _) => bail!("{f}.listenerPath: SCMP_ACT_NOTIFY needs a listener path"),
        (false, _) => None,
    };
    if flags & FLAG_WAIT_KILLABLE_RECV != 0 && flags & FLAG_NEW_LISTENER == 0 {
        // The kernel only accepts it with a listener; without one it means nothing.
        flags &= !FLAG_WAIT_KILLABLE_RECV;
    }
    // runc's -ENOSYS stub first: syscalls newer than the profile fail with ENOSYS.
    let mut prog = enosys::stub(s).with_context(|| format!("{f}: the ENOSYS stub"))?;
    prog.extend(export(&ctx)?);
    // BPF_MAXINSNS: the kernel refuses longer programs with a bare EINVAL.
    if prog.len() > 4096 {
        bail!(
            "{f}: the profile compiles to {} BPF instructions, over the kernel's 4096",
            prog.len()
        );
    }
    Ok(Filter {
        prog,
        flags,
        listener,
    })
}

// libseccomp 2.5 can only export to an fd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let fd = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd for the seccomp program");
    }
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).context("libseccomp: export BPF")?;
    file.rewind()?;
    let mut raw = Vec::new();
    file.read_to_end(&mut raw)?;
    let n = std::mem::size_of::<libc::sock_filter>();
    Ok(raw
        .chunks_exact(n)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

impl Filter {
    /// Load the filter into this process; with a NOTIFY rule, returns the listener fd.
    /// Allocates nothing, so it is safe right before execve.
    pub fn load(&self) -> std::io::Result<Option<RawFd>> {
        let prog = libc::sock_fprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr() as *mut libc::sock_filter,
        };
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((self.flags & FLAG_NEW_LISTENER != 0).then_some(r as RawFd))
    }
}

/// Hand a notify listener fd to the agent at `path`, with runc's ContainerProcessState
/// JSON as the message it rides on (what seccomp agents written for runc expect).
pub fn send_listener(
    path: &Path,
    metadata: &str,
    fd: &OwnedFd,
    pid: i32,
    state: &crate::hooks::State,
) -> Result<()> {
    let msg = serde_json::json!({
        "ociVersion": "1.2.0",
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": state,
    });
    let sock = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("config.json: linux.seccomp.listenerPath {}", path.display()))?;
    crate::fdpass::send(sock.as_raw_fd(), &serde_json::to_vec(&msg)?, fd.as_raw_fd())
        .with_context(|| format!("send the seccomp fd to {}", path.display()))
}
