//! Layer tar streams: written from a directory (an overlay upper or a rootfs), and unpacked
//! into a layer directory in overlay form.
// PLACEHOLDER until the layer branch lands: the agreed API, not implemented here.
use std::path::{Path, PathBuf};
pub enum Source {
    Upper,
    Tree,
}
#[derive(Clone, Copy)]
pub enum Times {
    Keep,
    Clamp(i64),
    Set(i64),
}
pub struct WriteOpts {
    pub source: Source,
    pub times: Times,
    pub copy_to: Option<PathBuf>,
}
pub struct WriteStats {
    pub entries: u64,
    pub file_bytes: u64,
}
pub fn write_tar<W: std::io::Write>(
    _dir: &Path,
    _out: W,
    _opts: &WriteOpts,
    _progress: &mut dyn FnMut(u64),
) -> anyhow::Result<(WriteStats, W)> {
    anyhow::bail!("layer writing lands with the layer branch")
}
pub struct UnpackOpts {
    pub lowers: Vec<PathBuf>,
}
pub struct UnpackStats {
    pub entries: u64,
    pub file_bytes: u64,
}
pub fn unpack<R: std::io::Read>(
    _r: R,
    _dir: &Path,
    _opts: &UnpackOpts,
) -> anyhow::Result<UnpackStats> {
    anyhow::bail!("layer unpacking lands with the layer branch")
}
