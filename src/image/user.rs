//! `USER` of an image or `-u`: names resolved against the image's own /etc/passwd and
//! /etc/group, read from its layer dirs without following anything out of them.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::whiteout;
use crate::paths::Root;

/// The resolved identity of a container's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// From passwd, for $HOME when the image does not set it.
    pub home: Option<String>,
}

/// Resolve `user` (`""`, `uid`, `name`, `uid:gid`, `name:group`) against the image whose
/// layer dirs are `layers` (top-most first).
pub fn resolve(user: &str, layers: &[PathBuf]) -> Result<Identity> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let passwd = read_merged(layers, "etc/passwd")?.unwrap_or_default();
    let entry = passwd_entries(&passwd).find(|e| e.name == u || e.uid.to_string() == u);
    let uid = match (u.parse::<u32>(), &entry) {
        (Ok(n), _) => n,
        (Err(_), Some(e)) => e.uid,
        (Err(_), None) => bail!("unable to find user {u}: no matching entries in passwd file"),
    };
    let groups = read_merged(layers, "etc/group")?.unwrap_or_default();
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_entries(&groups)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .with_context(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
        None => entry.as_ref().map_or(0, |e| e.gid),
    };
    // Supplementary groups only when the user was looked up (as docker does).
    let additional_gids = match (&entry, g) {
        (Some(e), None) => group_entries(&groups)
            .filter(|gr| gr.gid != gid && gr.members.iter().any(|m| *m == e.name))
            .map(|gr| gr.gid)
            .collect(),
        _ => vec![],
    };
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.to_string()),
    })
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(s: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    s.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6).then_some(())?;
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(s: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    s.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3).then_some(())?;
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|x| !x.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

/// A small file as the merged view of `layers` shows it: from the top-most layer that
/// has it, unless a whiteout or an opaque parent above hides the ones below.
fn read_merged(layers: &[PathBuf], rel: &str) -> Result<Option<String>> {
    const MAX: u64 = 4 << 20;
    for dir in layers {
        let root = Root::open(dir).with_context(|| format!("open layer {}", dir.display()))?;
        match root.open_in(Path::new(rel), libc::O_RDONLY | libc::O_NOFOLLOW, false) {
            Ok(fd) => {
                let st = crate::paths::fstat(fd.as_raw_fd())?;
                if whiteout::is_overlay_whiteout(&st) || st.st_mode & libc::S_IFMT != libc::S_IFREG
                {
                    return Ok(None);
                }
                let mut s = String::new();
                std::fs::File::from(fd).take(MAX).read_to_string(&mut s)?;
                return Ok(Some(s));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            // A whiteout (a 0/0 device: ENXIO), a symlink, or unreadable: not a file here.
            Err(_) => return Ok(None),
        }
        if hidden_below(&root, rel) {
            return Ok(None);
        }
    }
    Ok(None)
}

// Does this layer end the lookup for `rel` (a parent made opaque or whited out here)?
fn hidden_below(root: &Root, rel: &str) -> bool {
    let mut p = PathBuf::new();
    for c in Path::new(rel).components() {
        p.push(c);
        let Ok(fd) = root.open_in(&p, libc::O_PATH | libc::O_NOFOLLOW, true) else {
            return false;
        };
        let Ok(st) = crate::paths::fstat(fd.as_raw_fd()) else {
            return false;
        };
        if whiteout::is_overlay_whiteout(&st) {
            return true;
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let Ok(dfd) = root.open_in(&p, libc::O_RDONLY | libc::O_DIRECTORY, true) else {
                return false;
            };
            if whiteout::is_opaque(dfd.as_raw_fd()).unwrap_or(false) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let t = std::env::temp_dir().join(format!("strata-user-{}", std::process::id()));
        let top = t.join("top");
        let bottom = t.join("bottom");
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(bottom.join("etc")).unwrap();
        std::fs::write(
            bottom.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            top.join("etc/group"),
            "root:x:0:\napp:x:1001:\nwheel:x:10:app,root\naudio:x:29:app\n",
        )
        .unwrap();
        let layers = vec![top.clone(), bottom.clone()];
        let id = resolve("app", &layers).unwrap();
        assert_eq!((id.uid, id.gid), (1000, 1001));
        assert_eq!(id.additional_gids, vec![10, 29]);
        assert_eq!(id.home.as_deref(), Some("/home/app"));
        assert_eq!(resolve("", &layers).unwrap().uid, 0);
        let n = resolve("1000:wheel", &layers).unwrap();
        assert_eq!((n.uid, n.gid), (1000, 10));
        assert_eq!(resolve("4242:7", &layers).unwrap().gid, 7);
        let e = resolve("nobody", &layers).unwrap_err().to_string();
        assert!(e.contains("unable to find user nobody"), "{e}");
        let e = format!("{:#}", resolve("app:nogroup", &layers).unwrap_err());
        assert!(e.contains("unable to find group nogroup"), "{e}");
        let _ = std::fs::remove_dir_all(&t);
    }
}
