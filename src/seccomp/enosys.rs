//! runc's -ENOSYS stub: a syscall newer than the newest one a profile names fails with
//! ENOSYS, not the default errno, so that programs fall back (clone3 → clone, faccessat2
//! → faccessat) instead of failing on EPERM.

use anyhow::{bail, Result};
use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};
use std::str::FromStr;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const RET_ERRNO: u32 = 0x0005_0000;
/// x32 syscalls are x86_64 ones with this bit set in their number.
const X32_BIT: u32 = 0x4000_0000;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// The kernel's AUDIT_ARCH_* of an architecture (x32 shares x86_64's); None for those
/// runc makes no stub for either.
fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::Native => return audit_arch(ScmpArch::native()),
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::X8664 | ScmpArch::X32 => AUDIT_ARCH_X86_64,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Aarch64 => 0xC000_00B7,
        ScmpArch::Mips => 0x0000_0008,
        ScmpArch::Mipsel => 0x4000_0008,
        ScmpArch::Mips64 => 0x8000_0008,
        ScmpArch::Mipsel64 => 0xC000_0008,
        ScmpArch::Mips64N32 => 0xA000_0008,
        ScmpArch::Mipsel64N32 => 0xE000_0008,
        ScmpArch::Ppc => 0x0000_0014,
        ScmpArch::Ppc64 => 0x8000_0015,
        ScmpArch::Ppc64Le => 0xC000_0015,
        ScmpArch::S390 => 0x0000_0016,
        ScmpArch::S390X => 0x8000_0016,
        ScmpArch::Riscv64 => 0xC000_00F3,
        _ => return None,
    })
}

/// Where a jump goes.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction of this section.
    Next,
    /// Instruction `n` of this section.
    At(usize),
    /// The next section (or the filter, after the last one).
    NextSection,
    Enosys,
    Filter,
}

enum Ins {
    Ld(u32),
    Jump(u16, u32, To, To),
}

/// The stub to put before libseccomp's program (empty when none is needed): runc's rules.
/// None for an allowing default (Allow, Log, Trace: a tracer handles new syscalls) or a
/// default that already is ENOSYS. The newest syscall of each architecture is the highest
/// number any rule names, whatever its action; a profile without architectures is for
/// the native one (runc makes no stub then; nothing else about it differs).
pub fn stub(s: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>> {
    use LinuxSeccompAction::*;
    let default = s.default_action();
    let errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
    if matches!(default, ScmpActAllow | ScmpActLog | ScmpActTrace)
        || (default == ScmpActErrno && errno == libc::ENOSYS as u32)
    {
        return Ok(vec![]);
    }
    let mut arches: Vec<ScmpArch> = vec![];
    for a in s.architectures().iter().flatten() {
        let name = serde_json::to_value(a)?;
        if let Ok(a) = ScmpArch::from_str(name.as_str().unwrap_or_default()) {
            let a = if a == ScmpArch::Native {
                ScmpArch::native()
            } else {
                a
            };
            if !arches.contains(&a) {
                arches.push(a);
            }
        }
    }
    if arches.is_empty() {
        arches.push(ScmpArch::native());
    }
    // (audit arch, [(arch, newest syscall number)]), x86_64 and x32 in one.
    let mut groups: Vec<(u32, Vec<(ScmpArch, u32)>)> = vec![];
    for a in arches {
        let Some(audit) = audit_arch(a) else { continue };
        let newest = s
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names())
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, a).ok())
            .map(i32::from)
            .filter(|&n| n >= 0)
            .max();
        let Some(newest) = newest else { continue };
        match groups.iter_mut().find(|g| g.0 == audit) {
            Some(g) => g.1.push((a, newest as u32)),
            None => groups.push((audit, vec![(a, newest as u32)])),
        }
    }
    if groups.is_empty() {
        return Ok(vec![]);
    }
    let sections: Vec<Vec<Ins>> = groups.iter().map(|(audit, g)| section(*audit, g)).collect();
    assemble(&sections)
}

fn section(audit: u32, newest: &[(ScmpArch, u32)]) -> Vec<Ins> {
    use Ins::*;
    let mut s = vec![
        Jump(JEQ_K, audit, To::Next, To::NextSection),
        Ld(0), // seccomp_data.nr
    ];
    let last = |a: ScmpArch| newest.iter().find(|n| n.0 == a).map(|n| n.1);
    if audit == AUDIT_ARCH_X86_64 {
        match (last(ScmpArch::X8664), last(ScmpArch::X32)) {
            (Some(l64), Some(l32)) => {
                let x32 = s.len() + 2;
                s.push(Jump(JSET_K, X32_BIT, To::At(x32), To::Next));
                s.push(Jump(JGT_K, l64, To::Enosys, To::Filter));
                s.push(Jump(JGT_K, l32, To::Enosys, To::Filter));
            }
            (Some(l64), None) => {
                s.push(Jump(JSET_K, X32_BIT, To::Filter, To::Next));
                s.push(Jump(JGT_K, l64, To::Enosys, To::Filter));
            }
            (None, Some(l32)) => {
                s.push(Jump(JSET_K, X32_BIT, To::Next, To::Filter));
                s.push(Jump(JGT_K, l32, To::Enosys, To::Filter));
            }
            (None, None) => {}
        }
        return s;
    }
    let l = newest[0].1;
    if matches!(newest[0].0, ScmpArch::S390 | ScmpArch::S390X) {
        // Syscall 0 multiplexes numbers the kernel does not know on s390(x).
        s.push(Jump(JEQ_K, 0, To::Enosys, To::Next));
    }
    s.push(Jump(JGT_K, l, To::Enosys, To::Filter));
    s
}

/// Lay the sections out, then the ENOSYS return; the filter follows right after.
fn assemble(sections: &[Vec<Ins>]) -> Result<Vec<libc::sock_filter>> {
    let mut starts = vec![1]; // after the load of the architecture
    for s in sections {
        starts.push(starts.last().unwrap() + s.len());
    }
    let enosys = *starts.last().unwrap();
    let filter = enosys + 1;
    let mut out = vec![libc::sock_filter {
        code: LD_W_ABS,
        jt: 0,
        jf: 0,
        k: 4, // seccomp_data.arch
    }];
    for (i, s) in sections.iter().enumerate() {
        for (j, ins) in s.iter().enumerate() {
            let pos = starts[i] + j;
            let target = |t: To| -> Result<u8> {
                let abs = match t {
                    To::Next => pos + 1,
                    To::At(n) => starts[i] + n,
                    To::NextSection => starts[i + 1],
                    To::Enosys => enosys,
                    To::Filter => filter,
                };
                let off = abs - (pos + 1);
                u8::try_from(off).or_else(|_| bail!("seccomp ENOSYS stub: jump of {off} too long"))
            };
            out.push(match *ins {
                Ins::Ld(k) => libc::sock_filter {
                    code: LD_W_ABS,
                    jt: 0,
                    jf: 0,
                    k,
                },
                Ins::Jump(code, k, t, f) => libc::sock_filter {
                    code,
                    jt: target(t)?,
                    jf: target(f)?,
                    k,
                },
            });
        }
    }
    out.push(libc::sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: RET_ERRNO | libc::ENOSYS as u32,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(j: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn when_runc_makes_a_stub() {
        let rules =
            serde_json::json!([{"names": ["read", "close_range"], "action": "SCMP_ACT_ALLOW"}]);
        for (default, errno, want) in [
            ("SCMP_ACT_ERRNO", None, true),
            ("SCMP_ACT_ERRNO", Some(1), true),
            ("SCMP_ACT_ERRNO", Some(38), false),
            ("SCMP_ACT_KILL", None, true),
            ("SCMP_ACT_ALLOW", None, false),
            ("SCMP_ACT_LOG", None, false),
            ("SCMP_ACT_TRACE", None, false),
        ] {
            let mut p = serde_json::json!({"defaultAction": default, "syscalls": rules});
            if let Some(e) = errno {
                p["defaultErrnoRet"] = e.into();
            }
            let s = stub(&profile(p)).unwrap();
            assert_eq!(!s.is_empty(), want, "{default} {errno:?}");
        }
    }

    #[test]
    fn x86_64_and_x32_each_get_their_newest_syscall() {
        let s = stub(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["read", "close_range"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        // ld arch; x86_64: jeq, ld nr, jset, jgt, jgt; x86: jeq, ld nr, jgt; ret ENOSYS.
        assert_eq!(s.len(), 1 + 5 + 3 + 1);
        assert_eq!(s[1].k, AUDIT_ARCH_X86_64);
        assert_eq!(s[4].k, 436, "close_range on x86_64");
        assert_eq!(s[5].k, X32_BIT | 436, "close_range on x32");
        assert_eq!(s[9].k, RET_ERRNO | libc::ENOSYS as u32);
        // The jgt of x86_64 jumps to the ENOSYS return at 9, or past it to the filter.
        assert_eq!(
            (4 + 1 + s[4].jt as usize, 4 + 1 + s[4].jf as usize),
            (9, 10)
        );
    }
}
