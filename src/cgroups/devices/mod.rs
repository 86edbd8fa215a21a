//! Device access for a container's cgroup (`linux.resources.devices`): cgroup v1 through
//! `devices.allow` / `devices.deny`, cgroup2 through an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program that we assemble and load ourselves (no libbpf, no cilium).
//!
//! Semantics. Rules apply in order from "deny everything". Before touching the kernel, the
//! rules are validated and folded exactly as the v1 devices controller folds them (which is
//! also what runc's emulator does before it builds its v2 program): an `a` rule resets the
//! whole list to allow-all or deny-all; any other rule adds an exception to that default or
//! removes (part of) an exception with the *same* type:major:minor. The v2 program then
//! checks the folded exceptions, so one config behaves the same on v1 and v2 and the same
//! as under runc. For the usual configs (deny all, then allows; or allow all, then denies)
//! this is the same as "last matching rule wins". Where the two differ, v1 wins: a rule
//! that would remove only part of an earlier wildcard exception (deny c 1:1 after allow
//! c *:*) is refused, as runc refuses it, because v1 would silently ignore it; and a
//! wildcard removal does not touch narrower exceptions made before it (allow c 1:3 then
//! deny c *:* leaves 1:3 allowed, as on v1).

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

mod ebpf;
use ebpf::*;

/// runc's default allow rules (mknod c/b *:*, null, random, full, tty, zero, urandom, pts 136:*, ptmx, tun 10:200); the deny-all they sit on is implied by apply_v1/apply_v2.
pub fn default_rules() -> Vec<LinuxDeviceCgroup> {
    // The deny-all is not in the list: both apply_* start from it anyway, and leaving it
    // out lets a caller append these after the config's own rules, as runc does, without
    // wiping them.
    let c = |major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("static device rule")
    };
    let mut block_mknod = c(None, None, "m");
    block_mknod.set_typ(Some(LinuxDeviceType::B));
    vec![
        c(None, None, "m"),
        block_mknod,
        c(Some(1), Some(3), "rwm"),    // /dev/null
        c(Some(1), Some(8), "rwm"),    // /dev/random
        c(Some(1), Some(7), "rwm"),    // /dev/full
        c(Some(5), Some(0), "rwm"),    // /dev/tty
        c(Some(1), Some(5), "rwm"),    // /dev/zero
        c(Some(1), Some(9), "rwm"),    // /dev/urandom
        c(Some(136), None, "rwm"),     // /dev/pts/*
        c(Some(5), Some(2), "rwm"),    // /dev/ptmx
        c(Some(10), Some(200), "rwm"), // /dev/net/tun (runc re-added it in 1.2.4)
    ]
}

/// Apply `rules` on a v1 devices cgroup dir: "a" to devices.deny first (as runc does), then each rule to devices.allow or devices.deny in order.
pub fn apply_v1(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    // Validate (and refuse what v1 would silently ignore) before writing anything, so a
    // bad config never leaves a half-applied list behind.
    let (parsed, _) = fold(rules)?;
    let deny_path = dir.join("devices.deny");
    let allow_path = dir.join("devices.allow");
    let open = |p: &Path| {
        OpenOptions::new()
            .write(true)
            .open(p)
            .with_context(|| format!("open {}", p.display()))
    };
    let mut deny = open(&deny_path)?;
    let mut allow = open(&allow_path)?;
    // The kernel refuses an "a" rule on a cgroup that has children (EINVAL); say so,
    // because the bare errno gives no hint.
    write_line(&mut deny, "a").with_context(|| {
        format!(
            "reset to deny-all: write \"a\" to {} (EINVAL here means the cgroup already has child cgroups)",
            deny_path.display()
        )
    })?;
    for (i, r) in parsed.iter().enumerate() {
        let line = r.v1_line();
        let (f, p) = if r.allow {
            (&mut allow, &allow_path)
        } else {
            (&mut deny, &deny_path)
        };
        write_line(f, &line).with_context(|| {
            format!("{}: write {line:?} to {}", label(i, &rules[i]), p.display())
        })?;
    }
    Ok(())
}

/// Attach to the cgroup2 dir an eBPF device filter implementing `rules` from deny-all, replacing the one strata attached before; it stays attached after we exit.
pub fn apply_v2(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    // Choice: attach with BPF_F_ALLOW_MULTI, identifying our earlier program by its name
    // (PROG_NAME). With exactly one of ours attached, swap it atomically with
    // BPF_F_REPLACE (5.6+); otherwise (none, several, or an old kernel) attach the new one
    // first and only then detach ours, so there is never a moment without a filter (while
    // both are attached the kernel requires both to allow). Programs that others attached
    // are left alone: they can only restrict further, and removing them could open devices
    // someone else meant to close. Plain BPF_PROG_ATTACH (not a bpf_link) makes the cgroup
    // hold the program, so it outlives our fds and this process.
    let (_, policy) = fold(rules)?;
    let insns = program(&policy);
    let cg = open_cgroup2(dir)?;
    let prog = load(&insns).with_context(|| {
        format!(
            "load the device filter for {} (BPF_PROG_LOAD)",
            dir.display()
        )
    })?;
    let ours = our_programs(&cg)
        .with_context(|| format!("list device filters on {} (BPF_PROG_QUERY)", dir.display()))?;
    if let [old] = ours.as_slice() {
        match attach(&cg, &prog, Some(old)) {
            Ok(()) => return Ok(()),
            // No BPF_F_REPLACE before 5.6: fall through to attach + detach.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "replace the device filter on {} (BPF_PROG_ATTACH, BPF_F_REPLACE)",
                        dir.display()
                    )
                })
            }
        }
    }
    attach(&cg, &prog, None).with_context(|| {
        format!(
            "attach the device filter to {} (BPF_PROG_ATTACH, BPF_F_ALLOW_MULTI; EPERM here can mean a program attached without BPF_F_ALLOW_MULTI is present)",
            dir.display()
        )
    })?;
    for old in &ours {
        detach(&cg, old).with_context(|| {
            format!(
                "detach the previous device filter from {} (BPF_PROG_DETACH; the new one is attached, both now apply)",
                dir.display()
            )
        })?;
    }
    Ok(())
}

// ---- rules -------------------------------------------------------------------------

const ACC_MKNOD: u8 = 1;
const ACC_READ: u8 = 2;
const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// A cgroup device type; `All` only exists in rules (it resets the list), never in exceptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    All,
    Char,
    Block,
}

/// One validated rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    allow: bool,
    kind: Kind,
    major: Option<u32>,
    minor: Option<u32>,
    access: u8,
}

impl Rule {
    /// The line v1's devices.allow / devices.deny parse; access is rewritten canonically
    /// because the kernel reads at most three access letters ("rrwm" would lose the m).
    fn v1_line(&self) -> String {
        let t = match self.kind {
            // The kernel ignores the rest of an "a" line.
            Kind::All => return "a".into(),
            Kind::Char => 'c',
            Kind::Block => 'b',
        };
        format!(
            "{t} {}:{} {}",
            num(self.major),
            num(self.minor),
            access_str(self.access)
        )
    }
}

fn num(n: Option<u32>) -> String {
    n.map_or_else(|| "*".into(), |n| n.to_string())
}

fn access_str(a: u8) -> String {
    let mut s = String::new();
    for (bit, ch) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if a & bit != 0 {
            s.push(ch);
        }
    }
    s
}

/// `linux.resources.devices[2]: "c 1:3 rwx"`: how every error names its rule.
fn label(i: usize, r: &LinuxDeviceCgroup) -> String {
    format!("linux.resources.devices[{i}]: \"{r}\"")
}

fn parse(i: usize, r: &LinuxDeviceCgroup) -> Result<Rule> {
    let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => Kind::All,
        LinuxDeviceType::C => Kind::Char,
        LinuxDeviceType::B => Kind::Block,
        t => bail!(
            "{}: type {:?} is not allowed in a device cgroup rule (only a, c or b)",
            label(i, r),
            t.as_str()
        ),
    };
    let number = |what: &str, v: Option<i64>| -> Result<Option<u32>> {
        match v {
            None => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                anyhow::anyhow!(
                    "{}: invalid {what} {n} (0 to {}, or leave it out for any)",
                    label(i, r),
                    u32::MAX
                )
            }),
        }
    };
    let major = number("major", r.major())?;
    let minor = number("minor", r.minor())?;
    // runc refuses an empty access too: the kernel would record a rule granting nothing.
    let text = r.access().as_deref().unwrap_or("");
    if text.is_empty() {
        bail!(
            "{}: access is empty (a combination of r, w and m)",
            label(i, r)
        );
    }
    let mut access = 0;
    for ch in text.chars() {
        access |= match ch {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => bail!(
                "{}: invalid access {text:?} (a combination of r, w and m)",
                label(i, r)
            ),
        };
    }
    Ok(Rule {
        allow: r.allow(),
        kind,
        major,
        minor,
        access,
    })
}

/// One entry of the folded list: an exception to the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Exception {
    kind: Kind,
    major: Option<u32>,
    minor: Option<u32>,
    access: u8,
}

/// The folded rules: what v1's devices.list would hold (default + exceptions, in order).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Policy {
    default_allow: bool,
    exceptions: Vec<Exception>,
}

/// Validate every rule, then fold them as v1 does; errors name the rule.
fn fold(rules: &[LinuxDeviceCgroup]) -> Result<(Vec<Rule>, Policy)> {
    let parsed = rules
        .iter()
        .enumerate()
        .map(|(i, r)| parse(i, r))
        .collect::<Result<Vec<_>>>()?;
    let mut p = Policy {
        default_allow: false,
        exceptions: Vec::new(),
    };
    for (i, r) in parsed.iter().enumerate() {
        if r.kind == Kind::All {
            p.default_allow = r.allow;
            p.exceptions.clear();
            continue;
        }
        let same = |e: &Exception| e.kind == r.kind && e.major == r.major && e.minor == r.minor;
        if r.allow != p.default_allow {
            match p.exceptions.iter_mut().find(|e| same(e)) {
                Some(e) => e.access |= r.access,
                None => p.exceptions.push(Exception {
                    kind: r.kind,
                    major: r.major,
                    minor: r.minor,
                    access: r.access,
                }),
            }
            continue;
        }
        // Removing: v1 only edits the exception with exactly this type:major:minor. If a
        // broader wildcard exception also covers these accesses, v1 would keep granting
        // (or denying) them silently; refuse, as runc does.
        if let Some(w) = p.exceptions.iter().find(|e| {
            e.kind == r.kind
                && !same(e)
                && (e.major.is_none() || e.major == r.major)
                && (e.minor.is_none() || e.minor == r.minor)
                && e.access & r.access != 0
        }) {
            let what = Rule {
                allow: !r.allow,
                kind: w.kind,
                major: w.major,
                minor: w.minor,
                access: w.access,
            };
            bail!(
                "{}: cannot punch a hole in the earlier wildcard rule \"{}\" (cgroup v1 would ignore this rule; narrow the wildcard instead)",
                label(i, &rules[i]),
                what.v1_line()
            );
        }
        if let Some(pos) = p.exceptions.iter().position(same) {
            p.exceptions[pos].access &= !r.access;
            if p.exceptions[pos].access == 0 {
                p.exceptions.remove(pos);
            }
        }
    }
    Ok((parsed, p))
}

impl Policy {
    /// The kernel's v1 decision for one access (reference for the eBPF program's tests):
    /// in deny-default mode one exception must grant all requested accesses; in
    /// allow-default mode no exception may deny any of them.
    #[cfg(test)]
    fn allows(&self, kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        let hits = self.exceptions.iter().filter(|e| {
            e.kind == kind
                && e.major.is_none_or(|m| m == major)
                && e.minor.is_none_or(|m| m == minor)
        });
        if self.default_allow {
            !hits.into_iter().any(|e| e.access & access != 0)
        } else {
            hits.into_iter().any(|e| access & !e.access == 0)
        }
    }
}

fn write_line(f: &mut File, line: &str) -> io::Result<()> {
    // One write per rule: the kernel parses each write(2) as one rule.
    let n = f.write(line.as_bytes())?;
    if n != line.len() {
        return Err(io::Error::other(format!(
            "short write ({n} of {})",
            line.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(
        allow: bool,
        t: &str,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut x = LinuxDeviceCgroup::default();
        x.set_allow(allow);
        x.set_typ(Some(t.parse().unwrap()));
        x.set_major(major);
        x.set_minor(minor);
        x.set_access(Some(access.into()));
        x
    }

    /// Run the program on one access, as the kernel would (only the opcodes we emit).
    fn run(prog: &[Insn], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        let t: u64 = if kind == Kind::Block { 1 } else { 2 };
        let ctx = [(u64::from(access) << 16 | t) as u32, major, minor];
        let mut reg = [0u64; 11];
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "program loops");
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm64 = i.imm as i64 as u64;
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as isize + i.off as isize) as usize;
                }
            };
            match i.code {
                LDX_W => {
                    assert_eq!(src, 1);
                    reg[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                AND32_K => reg[dst] = (reg[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => reg[dst] = ((reg[dst] as u32) >> i.imm) as u64,
                MOV32_K => reg[dst] = i.imm as u32 as u64,
                JNE_K => jump(reg[dst] != imm64, &mut pc),
                JNE_X => jump(reg[dst] != reg[src], &mut pc),
                JSET_K => jump(reg[dst] & imm64 != 0, &mut pc),
                JA => jump(true, &mut pc),
                EXIT => return reg[0] == 1,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    /// The program agrees with the v1 fold on every probe.
    fn check(rules: &[LinuxDeviceCgroup]) {
        let (_, p) = fold(rules).unwrap();
        let prog = program(&p);
        for kind in [Kind::Char, Kind::Block] {
            for major in [0, 1, 5, 7, 10, 136, 4000, u32::MAX - 1] {
                for minor in [0, 1, 2, 3, 5, 200, 237, u32::MAX - 1] {
                    for access in 1..=7u8 {
                        assert_eq!(
                            run(&prog, kind, major, minor, access),
                            p.allows(kind, major, minor, access),
                            "{kind:?} {major}:{minor} access {access} under {p:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn default_rules_fold_to_the_allow_list() {
        let (_, p) = fold(&default_rules()).unwrap();
        assert!(!p.default_allow);
        let lines: Vec<String> = p
            .exceptions
            .iter()
            .map(|e| {
                Rule {
                    allow: true,
                    kind: e.kind,
                    major: e.major,
                    minor: e.minor,
                    access: e.access,
                }
                .v1_line()
            })
            .collect();
        assert_eq!(lines[0], "c *:* m");
        assert_eq!(lines[1], "b *:* m");
        assert!(lines.contains(&"c 136:* rwm".to_string()));
        assert_eq!(lines.len(), 11);
        assert!(p.allows(Kind::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(p.allows(Kind::Char, 10, 237, ACC_MKNOD));
        assert!(!p.allows(Kind::Char, 10, 237, ACC_READ));
        assert!(
            !p.allows(Kind::Char, 5, 1, ACC_READ),
            "no /dev/console by default"
        );
        assert!(!p.allows(Kind::Block, 7, 0, ACC_READ));
        check(&default_rules());
    }

    #[test]
    fn program_matches_fold() {
        let big = i64::from(u32::MAX - 1);
        check(&[]);
        check(&[r(true, "a", None, None, "rwm")]);
        check(&[
            r(true, "a", None, None, "rwm"),
            r(false, "c", Some(1), Some(3), "w"),
        ]);
        check(&[
            r(true, "a", None, None, "rwm"),
            r(false, "b", None, None, "rw"),
            r(false, "c", Some(136), None, "m"),
        ]);
        check(&[
            r(false, "a", None, None, "rwm"),
            r(true, "c", Some(1), Some(3), "r"),
            r(true, "c", Some(1), Some(3), "w"),
            r(true, "b", Some(7), None, "rm"),
            r(true, "c", Some(big), Some(big), "rwm"),
            r(false, "c", Some(1), Some(3), "r"),
        ]);
        let mut more = default_rules();
        more.push(r(true, "c", Some(10), Some(237), "r"));
        check(&more);
    }

    #[test]
    fn fold_follows_v1() {
        // An "a" rule resets whatever came before.
        let (_, p) = fold(&[
            r(true, "c", Some(1), Some(3), "rwm"),
            r(false, "a", None, None, "rwm"),
        ])
        .unwrap();
        assert!(p.exceptions.is_empty() && !p.default_allow);
        // Removing part of an exact exception keeps the rest.
        let (_, p) = fold(&[
            r(true, "c", Some(1), Some(3), "rwm"),
            r(false, "c", Some(1), Some(3), "w"),
        ])
        .unwrap();
        assert_eq!(p.exceptions[0].access, ACC_READ | ACC_MKNOD);
        // A wildcard removal leaves narrower exceptions alone, as v1 does.
        let (_, p) = fold(&[
            r(true, "c", Some(1), Some(3), "rwm"),
            r(true, "c", None, None, "rwm"),
            r(false, "c", None, None, "rwm"),
        ])
        .unwrap();
        assert!(p.allows(Kind::Char, 1, 3, ACC_READ) && !p.allows(Kind::Char, 1, 4, ACC_READ));
        // A deny that shares no access with the wildcard is fine.
        fold(&[
            r(true, "c", None, None, "m"),
            r(false, "c", Some(1), Some(1), "r"),
        ])
        .unwrap();
    }

    #[test]
    fn load_failure_carries_the_verifier_log() {
        if unsafe { libc::geteuid() } != 0 {
            println!("SKIP: not root");
            return;
        }
        // exit without setting r0: the verifier must refuse it and say why.
        let e = load(&[ins(EXIT, 0, 0, 0, 0)]).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("verifier:") && e.contains("R0"), "{e}");
    }

    #[test]
    fn instruction_layout() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(std::mem::size_of::<LoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<ProgInfo>(), 80);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_cnt), 24);
        assert!(PROG_NAME.len() < 16);
    }
}
