//! The container root as an overlayfs of layer dirs.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fmt::Display;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::mounts::fdmount::{mount_at, move_onto, new_fs, FsContext};
use crate::mounts::options::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use crate::paths::{fd_path, fstat, openat};

/// config.json annotation: the read-only layers, top-most first, separated by ':'.
pub const LOWERDIR: &str = "org.strata.overlay.lowerdir";
/// config.json annotation: the container's read-write layer.
pub const UPPERDIR: &str = "org.strata.overlay.upperdir";
/// config.json annotation: overlayfs's work dir (default: `work` beside the upper dir).
pub const WORKDIR: &str = "org.strata.overlay.workdir";

/// The annotations and what they mean, for `strata features`.
pub const ANNOTATIONS: [(&str, &str); 3] = [
    (
        LOWERDIR,
        "read-only layer dirs, top-most first, separated by ':', each absolute or relative \
         to the bundle: the root is an overlay of them mounted on root.path",
    ),
    (
        UPPERDIR,
        "the container's read-write layer (absolute or relative to the bundle); needs \
         org.strata.overlay.lowerdir",
    ),
    (
        WORKDIR,
        "overlayfs work dir on the upper dir's filesystem; default: work beside the \
         upper dir, created with mode 0700",
    ),
];

/// The kernel's limit on lower layers (OVL_MAX_STACK).
const MAX_LOWERS: usize = 500;

/// No redirects, no metadata-only copy-ups, no index: every change is a whole file,
/// directory, whiteout or opaque dir in the upper dir itself, so the upper dir alone
/// describes the change (a commit walks the upper, never the lowers).
const OPTIONS: [(&CStr, &CStr); 3] = [
    (c"redirect_dir", c"off"),
    (c"metacopy", c"off"),
    (c"index", c"off"),
];

// Set by `STRATA_NO_LOWERDIR_PLUS=1` (and tests): act as on a kernel before 6.8.
static NO_LOWERDIR_PLUS: AtomicBool = AtomicBool::new(false);

/// Build overlays as on kernels without `lowerdir+` (before 6.8), to test that path.
pub fn disable_lowerdir_plus() {
    NO_LOWERDIR_PLUS.store(true, Ordering::Relaxed);
}

/// A layer dir named by an annotation: its canonical path, and an O_PATH fd that pins
/// the directory that was checked (its inode cannot be reused while the fd is open).
pub struct Dir {
    pub annotation: &'static str,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// The upper layer and overlayfs's work dir beside it (same filesystem).
pub struct Upper {
    pub dir: Dir,
    pub work: Dir,
}

/// The root's layers, opened and checked by `create` before the clone.
pub struct Layers {
    /// Top-most first.
    pub lowers: Vec<Dir>,
    /// None: a read-only root of just the lowers.
    pub upper: Option<Upper>,
    /// The work dir if we made it: a failed create removes it again.
    pub made_workdir: Option<PathBuf>,
}

impl Layers {
    /// The layers config.json's annotations ask for; None for a plain rootfs.
    pub fn from_annotations(
        annotations: &HashMap<String, String>,
        bundle: &Path,
    ) -> Result<Option<Layers>> {
        let get = |k: &str| annotations.get(k).map(String::as_str);
        let (upper, work) = (get(UPPERDIR), get(WORKDIR));
        let Some(lower) = get(LOWERDIR) else {
            if upper.is_some() {
                bail!("{UPPERDIR} is set but {LOWERDIR} is not: an overlay root needs at least one lower layer");
            }
            if work.is_some() {
                bail!("{WORKDIR} is set but {UPPERDIR} and {LOWERDIR} are not");
            }
            return Ok(None);
        };
        if work.is_some() && upper.is_none() {
            bail!("{WORKDIR} is set but {UPPERDIR} is not: a read-only overlay has no work dir");
        }
        available().context(LOWERDIR)?;
        let lowers = lower_names(lower)?
            .into_iter()
            .map(|n| open_dir(LOWERDIR, &resolve(bundle, n)))
            .collect::<Result<Vec<_>>>()?;
        let mut layers = Layers {
            lowers,
            upper: None,
            made_workdir: None,
        };
        if let Some(u) = upper {
            let (upper, made) = open_upper(
                &resolve(bundle, u),
                work.map(|w| resolve(bundle, w)),
                &layers.lowers,
            )?;
            layers.upper = Some(upper);
            layers.made_workdir = made;
        }
        Ok(Some(layers))
    }

    /// Open every layer again in the caller's mount namespace and check that each is
    /// the directory the parent checked. overlayfs only takes layers mounted in the
    /// mounter's own namespace (or detached): the parent's fds, opened in the host's
    /// namespace, are refused in the init's (EINVAL at FSCONFIG_CMD_CREATE).
    fn reopen(&self) -> Result<Vec<OwnedFd>> {
        let upper = self.upper.iter().flat_map(|u| [&u.dir, &u.work]);
        self.lowers
            .iter()
            .chain(upper)
            .map(|d| {
                let fd = open_nofollow(&d.path)
                    .with_context(|| format!("{} {}", d.annotation, d.path.display()))?;
                let (a, b) = (fstat(fd.as_raw_fd())?, fstat(d.fd.as_raw_fd())?);
                if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
                    bail!(
                        "{} {}: replaced after it was checked",
                        d.annotation,
                        d.path.display()
                    );
                }
                Ok(fd)
            })
            .collect()
    }
}

/// Where the annotations put the upper dir and the work dir, if they name an upper dir
/// (the default work dir needs the upper dir to exist, to find its parent).
pub fn upper_and_work(
    annotations: &HashMap<String, String>,
    bundle: &Path,
) -> Option<[PathBuf; 2]> {
    let upper = resolve(bundle, annotations.get(UPPERDIR)?);
    let work = match annotations.get(WORKDIR) {
        Some(w) => resolve(bundle, w),
        None => std::fs::canonicalize(&upper).ok()?.parent()?.join("work"),
    };
    Some([upper, work])
}

/// Ok if the kernel has overlayfs (fsopen loads the module if need be).
pub fn available() -> Result<()> {
    fs_context().map(drop)
}

fn fs_context() -> Result<FsContext> {
    FsContext::open(c"overlay").map_err(fsopen_error)
}

fn fsopen_error(e: io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::ENODEV) {
        anyhow!("overlayfs is not available in this kernel (modprobe overlay?)")
    } else {
        anyhow!(e).context("fsopen(\"overlay\")")
    }
}

fn resolve(bundle: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        bundle.join(p)
    }
}

/// The lowerdir annotation's elements; ':' always separates (the fds we hand the
/// kernel make any other byte safe, ',' and '\\' included).
fn lower_names(s: &str) -> Result<Vec<&str>> {
    let names: Vec<&str> = s.split(':').collect();
    if let Some(i) = names.iter().position(|n| n.is_empty()) {
        bail!(
            "{LOWERDIR} {s:?}: element {} is empty (layers are separated by one ':')",
            i + 1
        );
    }
    if names.len() > MAX_LOWERS {
        bail!(
            "{LOWERDIR}: {} layers, but overlayfs takes at most {MAX_LOWERS}",
            names.len()
        );
    }
    Ok(names)
}

fn open_nofollow(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    openat(
        libc::AT_FDCWD,
        &c,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY,
        0,
    )
}

/// Canonicalize `path` (symlinks followed once, here), then open the result without
/// following anything: the fd is what gets checked and mounted.
fn open_dir(annotation: &'static str, path: &Path) -> Result<Dir> {
    let canon =
        std::fs::canonicalize(path).map_err(|e| anyhow!("{annotation} {}: {e}", path.display()))?;
    let fd = open_nofollow(&canon).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTDIR) => anyhow!("{annotation} {}: not a directory", path.display()),
        _ => anyhow!("{annotation} {}: {e}", path.display()),
    })?;
    Ok(Dir {
        annotation,
        path: canon,
        fd,
    })
}

/// The upper dir and its work dir (made if missing: returned as the second value, and
/// removed again here if a check fails).
fn open_upper(
    path: &Path,
    work: Option<PathBuf>,
    lowers: &[Dir],
) -> Result<(Upper, Option<PathBuf>)> {
    let dir = open_dir(UPPERDIR, path)?;
    let work = match work {
        Some(w) => w,
        None => dir
            .path
            .parent()
            .with_context(|| {
                format!(
                    "{UPPERDIR} {}: has no parent for the default work dir (set {WORKDIR})",
                    path.display()
                )
            })?
            .join("work"),
    };
    let made = match std::fs::DirBuilder::new().mode(0o700).create(&work) {
        Ok(()) => Some(work.clone()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
        Err(e) => bail!("{WORKDIR} {}: create: {e}", work.display()),
    };
    let checked = open_dir(WORKDIR, &work).and_then(|w| {
        let (u, s) = (fstat(dir.fd.as_raw_fd())?, fstat(w.fd.as_raw_fd())?);
        if u.st_dev != s.st_dev {
            bail!(
                "{WORKDIR} {}: not on the filesystem of {UPPERDIR} {} (overlayfs needs both on one)",
                work.display(),
                path.display()
            );
        }
        disjoint(&dir, &w, lowers)?;
        Ok(w)
    });
    match checked {
        Ok(work) => Ok((Upper { dir, work }, made)),
        Err(e) => {
            if let Some(m) = &made {
                let _ = std::fs::remove_dir(m);
            }
            Err(e)
        }
    }
}

/// The upper and work dirs may neither contain each other nor overlap a lower layer
/// (overlayfs refuses that too, but says why only in the kernel log).
fn disjoint(upper: &Dir, work: &Dir, lowers: &[Dir]) -> Result<()> {
    let nested = |a: &Dir, b: &Dir| a.path.starts_with(&b.path) || b.path.starts_with(&a.path);
    for (a, b) in
        std::iter::once((upper, work)).chain(lowers.iter().flat_map(|l| [(upper, l), (work, l)]))
    {
        if nested(a, b) {
            bail!(
                "{} {} and {} {}: one contains the other (overlayfs layers must be disjoint)",
                a.annotation,
                a.path.display(),
                b.annotation,
                b.path.display()
            );
        }
    }
    Ok(())
}

/// In the init, in its own mount namespace (already a slave of the host's): mount the
/// overlay of `layers` on `target` (root.path).
pub fn mount_root(layers: &Layers, target: BorrowedFd<'_>) -> Result<()> {
    let fds = layers.reopen()?;
    let names = layers
        .lowers
        .iter()
        .chain(layers.upper.iter().flat_map(|u| [&u.dir, &u.work]))
        .map(|d| format!("{} {}", d.annotation, d.path.display()));
    let mut named: Vec<(RawFd, String)> = fds.iter().map(|f| f.as_raw_fd()).zip(names).collect();
    let upper = match layers.upper {
        Some(_) => {
            let work = named.pop().context("work dir fd")?;
            let dir = named.pop().context("upper dir fd")?;
            Some([dir, work])
        }
        None => None,
    };
    let stack = Stack::new(named, upper)?;
    if !NO_LOWERDIR_PLUS.load(Ordering::Relaxed) {
        if let Some(m) = stack.mount_plus(0)? {
            return move_onto(m.as_raw_fd(), target.as_raw_fd())
                .context("attach the overlay on root.path");
        }
    }
    stack.mount_classic(target.as_raw_fd())
}

/// A detached, read-only overlay of `lowers` (top-most first; at least one) with the
/// container options (redirect_dir=off, metacopy=off, index=off): usable through the
/// returned fd (openat on it), visible in no mount namespace, gone when the fd closes.
///
/// The fds must be open in the caller's mount namespace (or be detached mounts). A lone
/// lower gets an empty read-only tmpfs below it: without an upper dir, overlayfs (6.18
/// still) wants at least two lowers. Without `lowerdir+` (before 6.8) the lowers go in
/// one `lowerdir` string of fd numbers, which fsconfig caps at 255 bytes (some 60 layers).
pub fn mount_readonly(lowers: &[BorrowedFd<'_>]) -> Result<OwnedFd> {
    if lowers.is_empty() {
        bail!("a read-only overlay needs at least one lower layer");
    }
    mount_detached(
        lowers,
        None,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )
}

/// A detached, writable overlay of `lowers` (top-most first; at least one) over `upper`
/// and its `work` dir, with the container options: the image tool's in-process steps
/// (a build's COPY) write through it, the upper dir keeps the change as a container's
/// would, and nothing is mounted anywhere: it is gone when the fd closes.
pub fn mount_writable(
    lowers: &[BorrowedFd<'_>],
    upper: BorrowedFd<'_>,
    work: BorrowedFd<'_>,
) -> Result<OwnedFd> {
    if lowers.is_empty() {
        bail!("a writable overlay needs at least one lower layer");
    }
    let upper = [
        (upper.as_raw_fd(), "the upper dir".to_string()),
        (work.as_raw_fd(), "the work dir".to_string()),
    ];
    mount_detached(lowers, Some(upper), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
}

fn mount_detached(
    lowers: &[BorrowedFd<'_>],
    upper: Option<[(RawFd, String); 2]>,
    attrs: u64,
) -> Result<OwnedFd> {
    if lowers.len() > MAX_LOWERS {
        bail!(
            "{} lower layers, but overlayfs takes at most {MAX_LOWERS}",
            lowers.len()
        );
    }
    let named = lowers
        .iter()
        .enumerate()
        .map(|(i, fd)| (fd.as_raw_fd(), format!("lower layer {}", i + 1)))
        .collect();
    let stack = Stack::new(named, upper)?;
    if !NO_LOWERDIR_PLUS.load(Ordering::Relaxed) {
        if let Some(m) = stack.mount_plus(attrs)? {
            return Ok(m);
        }
    }
    stack.mount_relative(attrs)
}

/// The layers as the kernel gets them: fds, each with how an error names it.
struct Stack {
    /// Top-most first.
    lowers: Vec<(RawFd, String)>,
    /// The upper dir and the work dir.
    upper: Option<[(RawFd, String); 2]>,
    /// The empty bottom layer of a lone lower, open until the overlay is made.
    _floor: Option<OwnedFd>,
}

impl Stack {
    fn new(mut lowers: Vec<(RawFd, String)>, upper: Option<[(RawFd, String); 2]>) -> Result<Stack> {
        let floor = if upper.is_none() && lowers.len() == 1 {
            let t = new_fs(c"tmpfs", &[(c"size", c"0")], MOUNT_ATTR_RDONLY)
                .context("an empty tmpfs below the single lower layer")?;
            lowers.push((t.as_raw_fd(), "the empty bottom layer".into()));
            Some(t)
        } else {
            None
        };
        Ok(Stack {
            lowers,
            upper,
            _floor: floor,
        })
    }

    /// fsopen, the options, then one `lowerdir+` per layer (any number, no length limit:
    /// each is a short /proc/self/fd path), `upperdir` and `workdir` the same way.
    /// None when the kernel has no `lowerdir+` (before 6.8: an unknown key, EINVAL).
    fn mount_plus(&self, attrs: u64) -> Result<Option<OwnedFd>> {
        let fs = fs_context()?;
        set_options(&fs)?;
        for (i, (fd, name)) in self.lowers.iter().enumerate() {
            match fs.set_string(c"lowerdir+", &fd_path(*fd)) {
                Ok(()) => {}
                Err(e) if i == 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                    let said = fs.messages();
                    if said.is_empty() || said.contains("Unknown parameter") {
                        return Ok(None);
                    }
                    return Err(anyhow!(e).context(format!("overlay: {name}: {said}")));
                }
                Err(e) => return Err(kernel_error(&fs, e, format!("overlay: {name}"))),
            }
        }
        for (key, (fd, name)) in [c"upperdir", c"workdir"]
            .into_iter()
            .zip(self.upper.iter().flatten())
        {
            fs.set_string(key, &fd_path(*fd))
                .map_err(|e| kernel_error(&fs, e, format!("overlay: {name}")))?;
        }
        fs.create()
            .map_err(|e| kernel_error(&fs, e, self.describe()))?;
        Ok(Some(fs.mount(attrs).context("fsmount overlay")?))
    }

    /// Before `lowerdir+`, the container's root: mount(2), whose data may fill a page, of
    /// fd numbers relative to /proc/self/fd ("lowerdir=3:4:5"; 500 layers fit).
    fn mount_classic(&self, target: RawFd) -> Result<()> {
        let data = format!("{},{}", options_text(), self.relative_names());
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        if data.len() >= page {
            bail!(
                "overlay: {} layers do not fit in one page of mount options",
                self.lowers.len()
            );
        }
        let data = CString::new(data)?;
        in_proc_fd_dir(|| {
            mount_at(Some(c"overlay"), target, Some(c"overlay"), 0, Some(&data))
                .with_context(|| self.describe())
        })
    }

    /// Before `lowerdir+`, detached: the same relative names in one fsconfig string.
    fn mount_relative(&self, attrs: u64) -> Result<OwnedFd> {
        let lowers = self.relative_lowers();
        if lowers.len() > 255 {
            bail!(
                "overlay: {} lower layers do not fit in one fsconfig value on a kernel without lowerdir+ (Linux 6.8)",
                self.lowers.len()
            );
        }
        let lowers = CString::new(lowers)?;
        // The cwd is per process: move only this thread's, on a thread of its own.
        std::thread::scope(|s| {
            s.spawn(|| {
                if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
                    return Err(io::Error::last_os_error()).context("unshare(CLONE_FS)");
                }
                in_proc_fd_dir(|| {
                    let fs = fs_context()?;
                    set_options(&fs)?;
                    fs.set_string(c"lowerdir", &lowers)
                        .map_err(|e| kernel_error(&fs, e, self.describe()))?;
                    for (key, (fd, _)) in [c"upperdir", c"workdir"]
                        .into_iter()
                        .zip(self.upper.iter().flatten())
                    {
                        fs.set_string(key, &CString::new(fd.to_string())?)
                            .map_err(|e| kernel_error(&fs, e, self.describe()))?;
                    }
                    fs.create()
                        .map_err(|e| kernel_error(&fs, e, self.describe()))?;
                    fs.mount(attrs).context("fsmount overlay")
                })
            })
            .join()
            .map_err(|_| anyhow!("overlay: the mounting thread panicked"))?
        })
    }

    fn relative_lowers(&self) -> String {
        let fds: Vec<String> = self.lowers.iter().map(|(fd, _)| fd.to_string()).collect();
        fds.join(":")
    }

    fn relative_names(&self) -> String {
        let mut s = format!("lowerdir={}", self.relative_lowers());
        if let Some([(u, _), (w, _)]) = &self.upper {
            s.push_str(&format!(",upperdir={u},workdir={w}"));
        }
        s
    }

    /// What an error about the whole overlay names.
    fn describe(&self) -> String {
        match &self.upper {
            Some([(_, u), _]) => format!("mount overlay ({} lower layers, {u})", self.lowers.len()),
            None => format!("mount overlay ({} lower layers)", self.lowers.len()),
        }
    }
}

fn set_options(fs: &FsContext) -> Result<()> {
    for (k, v) in OPTIONS {
        fs.set_string(k, v)
            .map_err(|e| kernel_error(fs, e, format!("overlay option {k:?}={v:?}")))?;
    }
    Ok(())
}

fn options_text() -> String {
    let o: Vec<String> = OPTIONS
        .iter()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    o.join(",")
}

/// `e` with `what` and anything the kernel logged about it.
fn kernel_error(fs: &FsContext, e: io::Error, what: impl Display) -> anyhow::Error {
    let said = fs.messages();
    if said.is_empty() {
        anyhow!(e).context(what.to_string())
    } else {
        anyhow!(e).context(format!("{what}: {said}"))
    }
}

/// Run `f` with /proc/self/fd as the cwd, where an fd's number names its file in a few
/// bytes; then go back.
fn in_proc_fd_dir<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let back = openat(libc::AT_FDCWD, c".", libc::O_PATH | libc::O_DIRECTORY, 0)
        .context("open the cwd")?;
    if unsafe { libc::chdir(c"/proc/self/fd".as_ptr()) } != 0 {
        return Err(io::Error::last_os_error()).context("chdir /proc/self/fd");
    }
    let r = f();
    if unsafe { libc::fchdir(back.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error()).context("chdir back from /proc/self/fd");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_overlayfs_is_explained() {
        let e = fsopen_error(io::Error::from_raw_os_error(libc::ENODEV));
        assert_eq!(
            e.to_string(),
            "overlayfs is not available in this kernel (modprobe overlay?)"
        );
        let e = fsopen_error(io::Error::from_raw_os_error(libc::EPERM));
        assert!(format!("{e:#}").contains("fsopen"), "{e:#}");
    }

    #[test]
    fn lower_names_are_checked() {
        assert_eq!(lower_names("a:/b:c,d").unwrap(), ["a", "/b", "c,d"]);
        for bad in ["a::b", ":a", "a:", ""] {
            let e = lower_names(bad).unwrap_err().to_string();
            assert!(e.contains(LOWERDIR) && e.contains("is empty"), "{e}");
        }
        let many = vec!["l"; MAX_LOWERS + 1].join(":");
        assert!(lower_names(&many)
            .unwrap_err()
            .to_string()
            .contains("at most 500"));
    }

    #[test]
    fn annotations_without_lowers() {
        let b = Path::new("/nonexistent-bundle");
        let ann = |kv: &[(&str, &str)]| -> HashMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(Layers::from_annotations(&ann(&[]), b).unwrap().is_none());
        let e = Layers::from_annotations(&ann(&[(UPPERDIR, "u")]), b)
            .err()
            .unwrap();
        assert!(e.to_string().contains("needs at least one lower"), "{e}");
        let e = Layers::from_annotations(&ann(&[(LOWERDIR, "l"), (WORKDIR, "w")]), b)
            .err()
            .unwrap();
        assert!(e.to_string().contains(UPPERDIR), "{e}");
    }

    #[test]
    fn classic_data_is_short() {
        let s = Stack {
            lowers: (3..503).map(|fd| (fd, String::new())).collect(),
            upper: Some([(503, String::new()), (504, String::new())]),
            _floor: None,
        };
        let data = format!("{},{}", options_text(), s.relative_names());
        assert!(data.starts_with("redirect_dir=off,metacopy=off,index=off,lowerdir=3:4:"));
        assert!(data.ends_with(":502,upperdir=503,workdir=504"), "{data}");
        assert!(data.len() < 4096, "{}", data.len());
    }
}
