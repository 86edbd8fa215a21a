//! Which functions of a binary run, in the order they first run, across every process the
//! command forks and re-execs: an int3 on each function's first byte, undone at its first
//! hit. Feeds the linker's symbol-ordering file (bundles/order/make.sh). std only, built
//! with plain rustc: a maintainer's tool, not part of the product.
//!
//! usage: fntrace BINARY SYMBOLS OUT -- COMMAND ARGS...
//!   BINARY   the (unstripped) ELF the command runs, or re-execs a copy of; matched in
//!            /proc/PID/maps by file name
//!   SYMBOLS  `nm --defined-only BINARY` output
//!   OUT      written: the names of the functions that ran (every alias), first run first
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io::Write;
use std::os::raw::{c_int, c_long, c_ulong};

extern "C" {
    fn ptrace(req: c_int, ...) -> c_long;
    fn waitpid(pid: c_int, st: *mut c_int, opt: c_int) -> c_int;
    fn fork() -> c_int;
    fn execvp(f: *const i8, a: *const *const i8) -> c_int;
    fn raise(s: c_int) -> c_int;
    fn personality(p: c_ulong) -> c_int;
    fn __errno_location() -> *mut c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
}
const TRACEME: c_int = 0;
const PEEKTEXT: c_int = 1;
const PEEKUSER: c_int = 3;
const POKETEXT: c_int = 4;
const POKEUSER: c_int = 6;
const CONT: c_int = 7;
const DETACH: c_int = 17;
const SETOPTIONS: c_int = 0x4200;
const OPTIONS: c_long = 2 | 4 | 8 | 0x10 | 0x100000; // fork, vfork, clone, exec, exitkill
const WALL: c_int = 0x4000_0000;
const ADDR_NO_RANDOMIZE: c_ulong = 0x0040000;
const RIP: c_long = 16 * 8; // offsetof(struct user_regs_struct, rip), x86_64
const SIGTRAP: c_int = 5;
const SIGSTOP: c_int = 19;
const EVENT_EXEC: c_int = 4;

fn die(msg: String) -> ! {
    eprintln!("fntrace: {msg}");
    std::process::exit(2)
}

/// The executable segments of an ELF64 file: (file offset, vaddr, size).
fn exec_segments(elf: &[u8]) -> Vec<(u64, u64, u64)> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 {
        die("BINARY is not a 64-bit ELF file".into());
    }
    let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54), u16_at(56));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&p| u32::from_le_bytes(elf[p..p + 4].try_into().unwrap()) == 1) // PT_LOAD
        .filter(|&p| elf[p + 4] & 1 != 0) // PF_X
        .map(|p| (u64_at(p + 8), u64_at(p + 16), u64_at(p + 32)))
        .collect()
}

/// Function entry file offsets -> their names, from nm's text symbols.
fn functions(nm: &str, segs: &[(u64, u64, u64)]) -> HashMap<u64, Vec<String>> {
    let mut f: HashMap<u64, Vec<String>> = HashMap::new();
    for l in nm.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let [addr, kind, name] = w[..] else { continue };
        if !matches!(kind, "t" | "T" | "w" | "W") {
            continue;
        }
        let Ok(va) = u64::from_str_radix(addr, 16) else { continue };
        if let Some(&(off, v, _)) = segs.iter().find(|s| va >= s.1 && va < s.1 + s.2) {
            f.entry(va - v + off).or_default().push(name.to_string());
        }
    }
    f
}

/// Executable mappings of the binary in a process: (start, end, file offset).
fn text_maps(pid: i32, name: &str) -> Vec<(u64, u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || !f[1].contains('x') || !f[5].ends_with(name) {
                return None;
            }
            let (a, b) = f[0].split_once('-')?;
            let h = |x: &str| u64::from_str_radix(x, 16).ok();
            Some((h(a)?, h(b)?, h(f[2])?))
        })
        .collect()
}

fn peek(pid: i32, addr: u64) -> Option<u64> {
    unsafe { *__errno_location() = 0 };
    let v = unsafe { ptrace(PEEKTEXT, pid, addr, 0usize) };
    (v != -1 || unsafe { *__errno_location() } == 0).then_some(v as u64)
}

fn set_low_byte(pid: i32, addr: u64, byte: u8) {
    if let Some(w) = peek(pid, addr) {
        unsafe { ptrace(POKETEXT, pid, addr, (w & !0xff) | byte as u64) };
    }
}

struct Tracer {
    name: String,
    entries: Vec<u64>,
    ran: HashSet<u64>,
    order: Vec<u64>,
    /// Runtime address -> (file offset, original byte) for every image armed so far. ASLR
    /// is off, so a fork or a re-exec'd copy has each function at the same address.
    armed: HashMap<u64, (u64, u8)>,
}

impl Tracer {
    /// An int3 on every function that has not run yet, in a freshly exec'd image.
    fn arm(&mut self, pid: i32) {
        let maps = text_maps(pid, &self.name);
        for &off in &self.entries {
            if self.ran.contains(&off) {
                continue;
            }
            let Some(&(start, end, moff)) =
                maps.iter().find(|m| off >= m.2 && off < m.2 + (m.1 - m.0))
            else {
                continue;
            };
            let addr = start + off - moff;
            if addr + 8 > end {
                continue;
            }
            if let Some(w) = peek(pid, addr) {
                self.armed.insert(addr, (off, w as u8));
                unsafe { ptrace(POKETEXT, pid, addr, (w & !0xff) | 0xcc) };
            }
        }
    }

    /// Puts back every byte we changed in a process we are about to let go.
    fn disarm(&self, pid: i32) {
        for (&addr, &(_, orig)) in &self.armed {
            if peek(pid, addr).is_some_and(|w| w as u8 == 0xcc) {
                set_low_byte(pid, addr, orig);
            }
        }
    }

    /// A SIGTRAP just past one of our int3s: note the function, put its byte back, step
    /// back onto it. False for any other SIGTRAP (delivered as it came).
    fn on_trap(&mut self, pid: i32) -> bool {
        let rip = unsafe { ptrace(PEEKUSER, pid, RIP, 0usize) } as u64;
        let Some(&(off, orig)) = self.armed.get(&rip.wrapping_sub(1)) else {
            return false;
        };
        set_low_byte(pid, rip - 1, orig);
        unsafe { ptrace(POKEUSER, pid, RIP, rip - 1) };
        if self.ran.insert(off) {
            self.order.push(off);
        }
        true
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 || args[4] != "--" {
        die("usage: fntrace BINARY SYMBOLS OUT -- COMMAND ARGS...".into());
    }
    let elf = std::fs::read(&args[1]).unwrap_or_else(|e| die(format!("{}: {e}", args[1])));
    let nm = std::fs::read_to_string(&args[2]).unwrap_or_else(|e| die(format!("{}: {e}", args[2])));
    let names = functions(&nm, &exec_segments(&elf));
    if names.is_empty() {
        die(format!("{}: no function symbols (stripped?)", args[2]));
    }
    let file_name = args[1].rsplit('/').next().unwrap().to_string();
    let mut t = Tracer {
        name: file_name,
        entries: names.keys().copied().collect(),
        ran: HashSet::new(),
        order: vec![],
        armed: HashMap::new(),
    };
    let cmd: Vec<CString> = args[5..].iter().map(|a| CString::new(a.as_str()).unwrap()).collect();
    let mut argv: Vec<*const i8> = cmd.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let child = unsafe { fork() };
    if child == 0 {
        unsafe {
            ptrace(TRACEME, 0, 0usize, 0usize);
            personality(ADDR_NO_RANDOMIZE);
            raise(SIGSTOP);
            execvp(argv[0], argv.as_ptr());
        }
        std::process::exit(127);
    }
    let mut st: c_int = 0;
    unsafe { waitpid(child, &mut st, WALL) };
    unsafe { ptrace(SETOPTIONS, child, 0usize, OPTIONS) };
    unsafe { ptrace(CONT, child, 0usize, 0usize) };
    let mut live: HashSet<i32> = HashSet::from([child]);
    let mut status = -1;
    let mut draining = false;
    while !live.is_empty() {
        let pid = unsafe { waitpid(-1, &mut st, WALL) };
        if pid < 0 {
            break;
        }
        if st & 0xff != 0x7f {
            // exited, or killed by a signal
            live.remove(&pid);
            if pid == child {
                // What it leaves running (create's init, run -d's container) runs on
                // without us: each is stopped, cleaned of our int3s and let go.
                status = st;
                for &p in &live {
                    unsafe { kill(p, SIGSTOP) };
                }
                draining = true;
            }
            continue;
        }
        live.insert(pid); // a new child's first stop may come before its parent's event
        let (sig, event) = ((st >> 8) & 0xff, st >> 16);
        let mut deliver = 0;
        if draining && (sig, event) == (SIGSTOP, 0) {
            t.disarm(pid);
            unsafe { ptrace(DETACH, pid, 0usize, 0usize) };
            live.remove(&pid);
            continue;
        }
        match (sig, event) {
            (SIGTRAP, EVENT_EXEC) if text_maps(pid, &t.name).is_empty() => {
                // The container's own program: not ours to trace.
                unsafe { ptrace(DETACH, pid, 0usize, 0usize) };
                live.remove(&pid);
                continue;
            }
            (SIGTRAP, EVENT_EXEC) => t.arm(pid),
            (SIGTRAP, 0) if !t.on_trap(pid) => deliver = SIGTRAP,
            (SIGSTOP, 0) | (SIGTRAP, _) => {} // a new child's stop; fork/clone events
            (s, 0) => deliver = s,
            _ => {}
        }
        unsafe { ptrace(CONT, pid, 0usize, deliver as c_long) };
    }
    let mut out = std::fs::File::create(&args[3]).unwrap_or_else(|e| die(format!("{}: {e}", args[3])));
    for off in &t.order {
        for n in &names[off] {
            writeln!(out, "{n}").unwrap();
        }
    }
    eprintln!("fntrace: {} functions ran; status {status:#x}", t.order.len());
    std::process::exit(if status == 0 { 0 } else { 1 });
}
