//! Strata: a runc-compatible OCI container runtime (library half; the CLIs are thin).

pub mod capabilities;
pub mod cgroups;
pub mod cli;
pub mod console;
pub mod container;
pub mod devices;
pub mod exeseal;
pub mod fdpass;
pub mod features;
pub mod hooks;
pub mod image;
pub mod jsonpath;
pub mod logging;
pub mod lsm;
pub mod mounts;
pub mod namespaces;
pub mod paths;
pub mod process;
pub mod procfs;
pub mod resctrl;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
pub mod timefmt;
