//! Attributes the init sets on itself before execve: I/O priority, scheduler, personality,
//! NUMA memory policy, a new time namespace with its clock offsets, and LSM exec labels.
//!
//! Everything is checked and converted in the parent ([`Attrs::plan`], errors name the
//! config.json field); the init only makes the syscalls ([`Attrs::enter_time_ns`] early,
//! [`Attrs::apply`] right before it changes identity).

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    IOPriorityClass, LinuxMemoryPolicy, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Process, Scheduler, Spec,
};

use crate::lsm::ExecLabels;
use crate::namespaces::NsPlan;

/// The kernel's `struct sched_attr` (SCHED_ATTR_SIZE_VER0, 48 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// set_mempolicy(2) arguments.
#[derive(Debug)]
pub struct MemPolicy {
    mode: libc::c_int,
    mask: Vec<libc::c_ulong>,
}

/// What the init applies to itself; the default applies nothing.
#[derive(Debug, Default)]
pub struct Attrs {
    /// IOPRIO_PRIO_VALUE(class, level).
    ioprio: Option<libc::c_int>,
    sched: Option<SchedAttr>,
    personality: Option<libc::c_ulong>,
    mempolicy: Option<MemPolicy>,
    /// Some(text for /proc/self/timens_offsets) when the init makes a new time namespace.
    time_ns: Option<String>,
    lsm: ExecLabels,
}

const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;

impl Attrs {
    /// Check and convert the fields; `ns` says whether a new time namespace is made.
    pub fn plan(spec: &Spec, ns: &NsPlan) -> Result<Attrs> {
        let p = spec.process().as_ref().context("process missing")?;
        let linux = spec.linux().clone().unwrap_or_default();
        // Not a process attribute, but a config check of the same kind: fail closed.
        crate::resctrl::check(linux.intel_rdt().as_ref())?;
        let personality = match linux.personality() {
            None => None,
            Some(per) => {
                if per.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                    bail!("config.json: linux.personality.flags {:?}: not supported (the runtime-spec defines no flags yet)", per.flags().as_ref().unwrap());
                }
                Some(match per.domain() {
                    LinuxPersonalityDomain::PerLinux => 0x0000,
                    LinuxPersonalityDomain::PerLinux32 => 0x0008,
                })
            }
        };
        Ok(Attrs {
            ioprio: ioprio(p)?,
            sched: p.scheduler().as_ref().map(sched_attr).transpose()?,
            personality,
            mempolicy: linux.memory_policy().as_ref().map(mempolicy).transpose()?,
            time_ns: time_offsets(spec, ns)?,
            lsm: ExecLabels::plan(p)?,
        })
    }

    /// In the init, before anything else: unshare the time namespace and set its offsets.
    /// The init itself stays in the old one; its program enters the new one at execve
    /// (the kernel moves a task into its `time_for_children` namespace on exec; the
    /// tests check it through /proc/uptime).
    pub fn enter_time_ns(&self, user_ns: bool) -> Result<()> {
        let Some(offsets) = &self.time_ns else {
            return Ok(());
        };
        if self.time_offsets_by_parent(user_ns).is_some() {
            return Ok(()); // made early, see `unshare_time_ns`
        }
        self.unshare_time_ns()?;
        // Offsets can only be set before any process has entered the namespace: now.
        if !offsets.is_empty() {
            std::fs::write("/proc/self/timens_offsets", offsets).with_context(|| {
                format!("linux.timeOffsets: write {offsets:?} to /proc/self/timens_offsets")
            })?;
        }
        Ok(())
    }

    /// The offsets the parent writes into /proc/<init>/timens_offsets: in a user
    /// namespace the non-dumpable init cannot open its own (the file belongs to the host's
    /// root), and the kernel checks CAP_SYS_TIME against the opener of the file.
    pub fn time_offsets_by_parent(&self, user_ns: bool) -> Option<&str> {
        self.time_ns.as_deref().filter(|o| user_ns && !o.is_empty())
    }

    /// Make the new time namespace for the init's children. With offsets for the parent
    /// to write, right after the user namespace and before anything forks: a process
    /// that enters the namespace (a fork now would) freezes its offsets.
    pub fn unshare_time_ns(&self) -> Result<()> {
        if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
            return Err(std::io::Error::last_os_error()).context("unshare time namespace");
        }
        Ok(())
    }

    /// In the init, after pivot_root and before the uid and capabilities change.
    pub fn apply(&self) -> Result<()> {
        if let Some(v) = self.ioprio {
            if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, v) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("process.ioPriority: ioprio_set");
            }
        }
        if let Some(m) = &self.mempolicy {
            let (ptr, maxnode) = if m.mask.is_empty() {
                (std::ptr::null(), 0)
            } else {
                // The kernel reads maxnode - 1 bits.
                (m.mask.as_ptr(), m.mask.len() as libc::c_ulong * 64 + 1)
            };
            if unsafe { libc::syscall(libc::SYS_set_mempolicy, m.mode, ptr, maxnode) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("linux.memoryPolicy: set_mempolicy");
            }
        }
        if let Some(per) = self.personality {
            if unsafe { libc::personality(per) } == -1 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("linux.personality: personality({per:#x})"));
            }
        }
        if let Some(a) = &self.sched {
            if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, a as *const SchedAttr, 0) } != 0 {
                let e = std::io::Error::last_os_error();
                // With CONFIG_RT_GROUP_SCHED a new cpu cgroup has no realtime budget.
                let hint = if e.raw_os_error() == Some(libc::EPERM) && matches!(a.policy, 1 | 2) {
                    " (a realtime policy needs realtime time in the container's cpu cgroup: set linux.resources.cpu.realtimeRuntime)"
                } else {
                    ""
                };
                return Err(e)
                    .with_context(|| format!("process.scheduler: sched_setattr({a:?}){hint}"));
            }
        }
        self.lsm.apply()
    }
}

fn ioprio(p: &Process) -> Result<Option<libc::c_int>> {
    let Some(io) = p.io_priority() else {
        return Ok(None);
    };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = io.priority();
    if !(0..=7).contains(&level) {
        bail!("config.json: process.ioPriority.priority {level}: must be 0..7");
    }
    Ok(Some(class << IOPRIO_CLASS_SHIFT | level as libc::c_int))
}

/// runc's checks: nice in -20..19, a priority only for FIFO/RR, runtime/deadline/period
/// only for DEADLINE.
fn sched_attr(s: &Scheduler) -> Result<SchedAttr> {
    use LinuxSchedulerPolicy::*;
    let policy = *s.policy();
    let name = policy.to_string();
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!("config.json: process.scheduler.nice {nice}: must be -20..19");
    }
    let priority = s.priority().unwrap_or(0);
    if priority != 0 && !matches!(policy, SchedFifo | SchedRr) {
        bail!("config.json: process.scheduler.priority {priority}: only SCHED_FIFO and SCHED_RR take a priority (policy is {name})");
    }
    if priority < 0 {
        bail!("config.json: process.scheduler.priority {priority}: must not be negative");
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy != SchedDeadline && (runtime != 0 || deadline != 0 || period != 0) {
        bail!("config.json: process.scheduler: runtime, deadline and period are only for SCHED_DEADLINE (policy is {name})");
    }
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: match policy {
            SchedOther => 0,
            SchedFifo => 1,
            SchedRr => 2,
            SchedBatch => 3,
            SchedIso => 4,
            SchedIdle => 5,
            SchedDeadline => 6,
        },
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
    })
}

fn mempolicy(m: &LinuxMemoryPolicy) -> Result<MemPolicy> {
    use MemoryPolicyModeType::*;
    let mode = m.mode();
    let nodes = m.nodes().as_deref().unwrap_or("").trim();
    let mask = parse_nodes(nodes)
        .with_context(|| format!("config.json: linux.memoryPolicy.nodes {nodes:?}"))?;
    match mode {
        MpolDefault | MpolLocal if !mask.is_empty() => {
            bail!("config.json: linux.memoryPolicy.nodes {nodes:?}: {mode} takes no nodes")
        }
        MpolBind | MpolInterleave | MpolWeightedInterleave | MpolPreferredMany
            if mask.is_empty() =>
        {
            bail!("config.json: linux.memoryPolicy.nodes: {mode} needs at least one node")
        }
        _ => {}
    }
    let mut flags = 0;
    for f in m.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let base = match mode {
        MpolDefault => 0,
        MpolPreferred => 1,
        MpolBind => 2,
        MpolInterleave => 3,
        MpolLocal => 4,
        MpolPreferredMany => 5,
        MpolWeightedInterleave => 6,
    };
    Ok(MemPolicy {
        mode: base | flags,
        mask,
    })
}

/// "0-3,7" → a node bitmask of unsigned longs (empty for "").
fn parse_nodes(s: &str) -> Result<Vec<libc::c_ulong>> {
    const MAX_NODES: u32 = 1024;
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (
            a.trim()
                .parse()
                .with_context(|| format!("bad node {a:?}"))?,
            b.trim()
                .parse()
                .with_context(|| format!("bad node {b:?}"))?,
        );
        if a > b || b >= MAX_NODES {
            bail!("bad node range {part:?}");
        }
        for n in a..=b {
            let w = (n / 64) as usize;
            if mask.len() <= w {
                mask.resize(w + 1, 0);
            }
            mask[w] |= 1 << (n % 64);
        }
    }
    Ok(mask)
}

/// The timens_offsets text, if the init makes a new time namespace (offsets need one).
fn time_offsets(spec: &Spec, ns: &NsPlan) -> Result<Option<String>> {
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone())
        .unwrap_or_default();
    if !offsets.is_empty() && !ns.new_time {
        bail!("config.json: linux.timeOffsets: needs a new time namespace (add {{\"type\": \"time\"}} without a path to linux.namespaces)");
    }
    if !ns.new_time {
        return Ok(None);
    }
    let mut text = String::new();
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by_key(|(k, _)| k.as_str());
    for (clock, off) in clocks {
        if clock != "monotonic" && clock != "boottime" {
            bail!(
                "config.json: linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)"
            );
        }
        let nanos = off.nanosecs().unwrap_or(0);
        if nanos >= 1_000_000_000 {
            bail!(
                "config.json: linux.timeOffsets.{clock}.nanosecs {nanos}: must be below 1000000000"
            );
        }
        text.push_str(&format!("{clock} {} {nanos}\n", off.secs().unwrap_or(0)));
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    #[test]
    fn nodes() {
        assert_eq!(super::parse_nodes("").unwrap(), Vec::<libc::c_ulong>::new());
        assert_eq!(super::parse_nodes("0-2,5").unwrap(), vec![0b100111]);
        assert_eq!(super::parse_nodes("64").unwrap(), vec![0, 1]);
        assert!(super::parse_nodes("3-1").is_err());
        assert!(super::parse_nodes("x").is_err());
    }

    #[test]
    fn sched_attr_is_ver0() {
        assert_eq!(std::mem::size_of::<super::SchedAttr>(), 48);
    }
}
