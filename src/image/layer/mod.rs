//! Layer tar streams: written from a directory (an overlay upper or a tree) and unpacked into a layer directory in overlay form.

mod attrs;
mod copy;
mod header;
mod limits;
mod lowers;
mod names;
mod pax;
pub mod placed;
pub(crate) mod reader;
pub(crate) mod sys;
mod unpack;
mod write;

pub use lowers::Gate;
pub use unpack::{unpack, UnpackOpts, UnpackStats};
pub use write::{write_tar, Source, Times, WriteOpts, WriteStats};
