//! CPU affinity of the processes we start: `process.execCPUAffinity` (`initial` while
//! the exec process joins the container, `final` once it is in its cgroups), and the
//! reset to the container's own CPUs otherwise, as runc 1.2 does.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Process;

/// The affinities an exec process asks for, parsed.
#[derive(Default)]
pub struct ExecAffinity {
    pub initial: Option<libc::cpu_set_t>,
    pub last: Option<libc::cpu_set_t>,
    /// The texts, for errors that name them.
    initial_text: String,
    last_text: String,
}

impl ExecAffinity {
    /// Parse `process.execCPUAffinity` (absent or empty strings mean: not set).
    pub fn of(p: &Process) -> Result<ExecAffinity> {
        let mut a = ExecAffinity::default();
        let Some(e) = p.exec_cpu_affinity() else {
            return Ok(a);
        };
        if let Some(t) = e.initial().as_deref().filter(|t| !t.is_empty()) {
            a.initial = Some(parse(t).with_context(|| field("initial", t))?);
            a.initial_text = t.to_string();
        }
        if let Some(t) = e.cpu_affinity_final().as_deref().filter(|t| !t.is_empty()) {
            a.last = Some(parse(t).with_context(|| field("final", t))?);
            a.last_text = t.to_string();
        }
        Ok(a)
    }

    /// Move us onto the `initial` CPUs until the returned guard drops: the exec process
    /// forked meanwhile inherits them from its birth, before it joins the container's
    /// cgroups.
    pub fn enter_initial(&self) -> Result<Option<Restore>> {
        let Some(set) = &self.initial else {
            return Ok(None);
        };
        let mut ours: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if unsafe { libc::sched_getaffinity(0, size, &mut ours) } != 0 {
            return Err(std::io::Error::last_os_error()).context("sched_getaffinity");
        }
        set_affinity(0, set).with_context(|| field("initial", &self.initial_text))?;
        Ok(Some(Restore(ours)))
    }

    /// Once `pid` is in the container's cgroups: `final`, or else every CPU, which the
    /// kernel narrows to the cgroup's cpuset (the caller's `taskset` does not leak in).
    pub fn apply_final(&self, pid: libc::pid_t) -> Result<()> {
        match &self.last {
            Some(set) => set_affinity(pid, set).with_context(|| field("final", &self.last_text)),
            None => reset(pid),
        }
    }
}

/// The CPUs `pid` may run on, as a list (`0,2,3`), for the debug log.
pub fn cpus_of(pid: libc::pid_t) -> String {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(pid, size, &mut set) } != 0 {
        return std::io::Error::last_os_error().to_string();
    }
    let cpus: Vec<String> = (0..libc::CPU_SETSIZE as usize)
        .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
        .map(|c| c.to_string())
        .collect();
    cpus.join(",")
}

/// Our own affinity from before `enter_initial`, set again on drop.
pub struct Restore(libc::cpu_set_t);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = set_affinity(0, &self.0);
    }
}

fn field(name: &str, text: &str) -> String {
    format!("process.execCPUAffinity.{name} {text:?}")
}

/// Give `pid` every CPU (the kernel keeps only those of its cpuset), as runc 1.2 does for
/// every container process: the runtime's own affinity is not the container's.
pub fn reset(pid: libc::pid_t) -> Result<()> {
    let mut all: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in 0..libc::CPU_SETSIZE as usize {
        unsafe { libc::CPU_SET(cpu, &mut all) };
    }
    set_affinity(pid, &all).context("reset the CPU affinity")
}

fn set_affinity(pid: libc::pid_t, set: &libc::cpu_set_t) -> Result<()> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_setaffinity(pid, size, set) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINVAL) {
            bail!("sched_setaffinity: none of these CPUs is online and in the container's cpuset");
        }
        return Err(e).context("sched_setaffinity");
    }
    Ok(())
}

/// A CPU list as the spec writes it: `0-3,7`.
pub fn parse(text: &str) -> Result<libc::cpu_set_t> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = libc::CPU_SETSIZE as usize - 1;
    let num = |s: &str| -> Result<usize> {
        let n: usize = s
            .parse()
            .with_context(|| format!("{s:?} is not a CPU number"))?;
        if n > max {
            bail!("CPU {n} is beyond the largest one supported ({max})");
        }
        Ok(n)
    };
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi {
            bail!("range {part:?} runs backwards");
        }
        for cpu in lo..=hi {
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn cpus(text: &str) -> Vec<usize> {
        let set = parse(text).unwrap();
        (0..64)
            .filter(|c| unsafe { libc::CPU_ISSET(*c, &set) })
            .collect()
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpus("0"), [0]);
        assert_eq!(cpus("0-3,7"), [0, 1, 2, 3, 7]);
        assert_eq!(cpus("1,1-2"), [1, 2]);
        for bad in ["", "a", "3-1", "1,", "-1", "1-", "5000"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
