//! The cgroup v2 half of device control: the eBPF program built from the folded rules,
//! and the bpf(2) calls that load it and attach it in place of our previous one.

use super::*;

// ---- eBPF program --------------------------------------------------------------------

/// struct bpf_insn: opcode, dst/src register nibbles, jump offset, immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Insn {
    pub(super) code: u8,
    pub(super) regs: u8,
    pub(super) off: i16,
    pub(super) imm: i32,
}

pub(super) const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
pub(super) const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub(super) const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
pub(super) const MOV32_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
pub(super) const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
pub(super) const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
pub(super) const JSET_K: u8 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
pub(super) const JA: u8 = 0x05; // BPF_JMP | BPF_JA
pub(super) const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Registers: r1 = ctx on entry (then scratch), r2 = type, r3 = access, r4 = major, r5 = minor.
pub(super) const R0: u8 = 0;
pub(super) const R1: u8 = 1;
pub(super) const R2: u8 = 2;
pub(super) const R3: u8 = 3;
pub(super) const R4: u8 = 4;
pub(super) const R5: u8 = 5;

pub(super) const DEV_BLOCK: i32 = 1; // BPF_DEVCG_DEV_BLOCK
pub(super) const DEV_CHAR: i32 = 2; // BPF_DEVCG_DEV_CHAR

pub(super) fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    // The register bitfields are laid out by the compiler's bitfield order: dst in the
    // low nibble on little-endian, in the high nibble on big-endian.
    let regs = if cfg!(target_endian = "little") {
        dst | (src << 4)
    } else {
        (dst << 4) | src
    };
    Insn {
        code,
        regs,
        off,
        imm,
    }
}

/// The filter: decode struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
/// (access_type = access << 16 | type), then one block per exception that returns the
/// non-default verdict when it matches, then the default. Exceptions never conflict
/// (they all carry the same verdict), so their order does not matter.
pub(super) fn program(p: &Policy) -> Vec<Insn> {
    let mut out = vec![
        ins(LDX_W, R2, R1, 0, 0),
        ins(AND32_K, R2, 0, 0, 0xffff),
        ins(LDX_W, R3, R1, 0, 0),
        ins(RSH32_K, R3, 0, 0, 16),
        ins(LDX_W, R4, R1, 4, 0),
        ins(LDX_W, R5, R1, 8, 0),
    ];
    let verdict = !p.default_allow as i32;
    for e in &p.exceptions {
        // (insn, jumps to the next block): offsets are patched once the block is complete.
        let mut b: Vec<(Insn, bool)> = Vec::new();
        let t = if e.kind == Kind::Block {
            DEV_BLOCK
        } else {
            DEV_CHAR
        };
        b.push((ins(JNE_K, R2, 0, 0, t), true));
        if e.access != ACC_ALL {
            if p.default_allow {
                // A deny exception matches if it shares any requested access.
                b.push((ins(JSET_K, R3, 0, 1, e.access as i32), false));
                b.push((ins(JA, 0, 0, 0, 0), true));
            } else {
                // An allow exception matches only if it grants every requested access.
                b.push((ins(JSET_K, R3, 0, 0, i32::from(!e.access)), true));
            }
        }
        for (reg, val) in [(R4, e.major), (R5, e.minor)] {
            let Some(v) = val else { continue };
            match i32::try_from(v) {
                Ok(imm) => b.push((ins(JNE_K, reg, 0, 0, imm), true)),
                // A 64-bit compare sign-extends the immediate; put large values in a
                // register with a zero-extending 32-bit move instead.
                Err(_) => {
                    b.push((ins(MOV32_K, R1, 0, 0, v as i32), false));
                    b.push((ins(JNE_X, reg, R1, 0, 0), true));
                }
            }
        }
        b.push((ins(MOV32_K, R0, 0, 0, verdict), false));
        b.push((ins(EXIT, 0, 0, 0, 0), false));
        let len = b.len();
        for (j, (mut insn, to_next)) in b.into_iter().enumerate() {
            if to_next {
                insn.off = (len - j - 1) as i16;
            }
            out.push(insn);
        }
    }
    out.push(ins(MOV32_K, R0, 0, 0, p.default_allow as i32));
    out.push(ins(EXIT, 0, 0, 0, 0));
    out
}

// ---- bpf(2) --------------------------------------------------------------------------

pub(super) const BPF_PROG_LOAD: libc::c_long = 5;
pub(super) const BPF_PROG_ATTACH: libc::c_long = 8;
pub(super) const BPF_PROG_DETACH: libc::c_long = 9;
pub(super) const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
pub(super) const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
pub(super) const BPF_PROG_QUERY: libc::c_long = 16;
pub(super) const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub(super) const BPF_CGROUP_DEVICE: u32 = 6;
pub(super) const BPF_F_ALLOW_MULTI: u32 = 2;
pub(super) const BPF_F_REPLACE: u32 = 4;
pub(super) const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// How we recognise our own program among those attached (alnum, '_' or '.', < 16 bytes).
pub(super) const PROG_NAME: &[u8] = b"strata_devices";

/// union bpf_attr for BPF_PROG_LOAD, up to expected_attach_type.
#[repr(C)]
#[derive(Default)]
pub(super) struct LoadAttr {
    pub(super) prog_type: u32,
    pub(super) insn_cnt: u32,
    pub(super) insns: u64,
    pub(super) license: u64,
    pub(super) log_level: u32,
    pub(super) log_size: u32,
    pub(super) log_buf: u64,
    pub(super) kern_version: u32,
    pub(super) prog_flags: u32,
    pub(super) prog_name: [u8; 16],
    pub(super) prog_ifindex: u32,
    pub(super) expected_attach_type: u32,
}

/// union bpf_attr for BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
pub(super) struct AttachAttr {
    pub(super) target_fd: u32,
    pub(super) attach_bpf_fd: u32,
    pub(super) attach_type: u32,
    pub(super) attach_flags: u32,
    pub(super) replace_bpf_fd: u32,
    pub(super) _pad: u32,
}

/// union bpf_attr for BPF_PROG_QUERY, up to prog_cnt.
#[repr(C)]
#[derive(Default)]
pub(super) struct QueryAttr {
    pub(super) target_fd: u32,
    pub(super) attach_type: u32,
    pub(super) query_flags: u32,
    pub(super) attach_flags: u32,
    pub(super) prog_ids: u64,
    pub(super) prog_cnt: u32,
    pub(super) _pad: u32,
}

/// union bpf_attr for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
pub(super) struct GetFdAttr {
    pub(super) prog_id: u32,
    pub(super) next_id: u32,
    pub(super) open_flags: u32,
    pub(super) _pad: u32,
}

/// union bpf_attr for BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
#[derive(Default)]
pub(super) struct InfoAttr {
    pub(super) bpf_fd: u32,
    pub(super) info_len: u32,
    pub(super) info: u64,
}

/// The start of struct bpf_prog_info, up to name (the kernel fills min(ours, its) bytes).
#[repr(C)]
#[derive(Default)]
pub(super) struct ProgInfo {
    pub(super) typ: u32,
    pub(super) id: u32,
    pub(super) tag: [u8; 8],
    pub(super) jited_prog_len: u32,
    pub(super) xlated_prog_len: u32,
    pub(super) jited_prog_insns: u64,
    pub(super) xlated_prog_insns: u64,
    pub(super) load_time: u64,
    pub(super) created_by_uid: u32,
    pub(super) nr_map_ids: u32,
    pub(super) map_ids: u64,
    pub(super) name: [u8; 16],
}

pub(super) fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, fully initialised #[repr(C)] prefix of union bpf_attr, and
    // every pointer inside it points at memory that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub(super) fn fd_from(r: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us (bpf fds are always O_CLOEXEC).
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

pub(super) fn open_cgroup2(dir: &Path) -> Result<OwnedFd> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .with_context(|| format!("{}: path contains a NUL byte", dir.display()))?;
    // SAFETY: plain open(2) of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("open {}", dir.display()));
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: statfs is plain data, written by fstatfs.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("statfs {}", dir.display()));
    }
    // Checked because attaching to a v1 or non-cgroup dir fails with a bare EBADF.
    if st.f_type as i64 != CGROUP2_SUPER_MAGIC {
        bail!(
            "{} is not a cgroup2 directory (device filters attach to cgroup2 only)",
            dir.display()
        );
    }
    Ok(fd)
}

pub(super) fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let license = b"Apache\0";
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let attr = |log: Option<&mut Vec<u8>>| {
        let mut a = LoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            ..Default::default()
        };
        if let Some(buf) = log {
            a.log_level = 1;
            a.log_size = buf.len() as u32;
            a.log_buf = buf.as_mut_ptr() as u64;
        }
        a
    };
    let err = match bpf(BPF_PROG_LOAD, &mut attr(None)) {
        Ok(fd) => return Ok(fd_from(fd)),
        Err(e) => e,
    };
    if err.raw_os_error() == Some(libc::EPERM) {
        // Before 5.11 programs are charged to RLIMIT_MEMLOCK. Raise it only for the load
        // and put it back, so the container init (forked from us) does not inherit it.
        if let Some(fd) = with_memlock_unlimited(|| bpf(BPF_PROG_LOAD, &mut attr(None)))? {
            return Ok(fd_from(fd));
        }
        return Err(err).context("needs CAP_SYS_ADMIN (or CAP_BPF)");
    }
    // Load again with the verifier log on, only to explain the failure.
    let mut log = vec![0u8; 1 << 16];
    let _ = bpf(BPF_PROG_LOAD, &mut attr(Some(&mut log)));
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    // The verdict is at the end of the log; keep the error on one line.
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(err.into());
    }
    let tail = lines[lines.len().saturating_sub(8)..].join(" | ");
    Err(err).context(format!("verifier: {tail}"))
}

/// Run `f` with RLIMIT_MEMLOCK raised to infinity; None if it still failed with EPERM.
pub(super) fn with_memlock_unlimited(
    mut f: impl FnMut() -> io::Result<libc::c_long>,
) -> Result<Option<libc::c_long>> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) } != 0 {
        return Ok(None);
    }
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } != 0 {
        return Ok(None);
    }
    let r = f();
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) };
    match r {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Fds of the programs strata attached to this cgroup before (by name).
pub(super) fn our_programs(cg: &OwnedFd) -> io::Result<Vec<OwnedFd>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut q = QueryAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut q) {
            Ok(_) => {
                ids.truncate(q.prog_cnt as usize);
                break;
            }
            // ENOSPC: more programs than room; prog_cnt now says how many.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && q.prog_cnt as usize > ids.len() => {
                ids = vec![0; q.prog_cnt as usize];
            }
            Err(e) => return Err(e),
        }
    }
    let mut ours = Vec::new();
    for id in ids {
        let mut g = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut g) {
            Ok(fd) => fd_from(fd),
            // Detached meanwhile, or hidden from us by an LSM: not ours to replace.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EPERM | libc::EACCES)
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let mut info = ProgInfo::default();
        let mut a = InfoAttr {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<ProgInfo>() as u32,
            info: &mut info as *mut ProgInfo as u64,
        };
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
        let end = info.name.iter().position(|&b| b == 0).unwrap_or(16);
        if &info.name[..end] == PROG_NAME {
            ours.push(fd);
        }
    }
    Ok(ours)
}

pub(super) fn attach(cg: &OwnedFd, prog: &OwnedFd, replace: Option<&OwnedFd>) -> io::Result<()> {
    let mut a = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    if let Some(old) = replace {
        a.attach_flags |= BPF_F_REPLACE;
        a.replace_bpf_fd = old.as_raw_fd() as u32;
    }
    bpf(BPF_PROG_ATTACH, &mut a).map(|_| ())
}

pub(super) fn detach(cg: &OwnedFd, prog: &OwnedFd) -> io::Result<()> {
    let mut a = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut a).map(|_| ())
}
