//! Container operations, one file each: create, start, run, exec, kill, delete, and the
//! status every command derives from the kernel rather than trusts from disk.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod start;
pub mod status;
pub mod update;

pub use create::{create, CreateOpts, Created};
pub use delete::delete;
pub use exec::{exec, ExecOpts};
pub use kill::kill;
pub use run::run;
pub use start::start;
pub use status::{oci_state, status, Status};
