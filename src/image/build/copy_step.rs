//! COPY and ADD as build steps: the instruction expanded into a plan (sources matched,
//! destination, owner and mode), its cache key (the step's text and a checksum of what it
//! copies), and on a miss the copy into a writable overlay of the stage's layers.

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use super::cache::KeyBuilder;
use super::context::{clean_absolute, Matched, Source};
use super::copy::{self, Attrs, Dest, ImageRoot};
use super::dockerfile::ast::CopyArgs;
use super::stage::{open_dirs, Change, StageRun, State};
use super::vars::Scope;
use super::Builder;
use crate::image::digest::Digest;

/// One COPY or ADD, expanded and resolved.
struct Plan {
    add: bool,
    /// Heredoc sources: (name, body).
    docs: Vec<(String, String)>,
    source: Source,
    matched: Vec<Matched>,
    dest: Dest,
    attrs: Attrs,
    chown: Option<String>,
    created_by: String,
}

impl Builder<'_> {
    pub(super) fn copy_step(&mut self, s: &mut StageRun, c: &CopyArgs, add: bool) -> Result<()> {
        let (plan, key) = self.copy_plan(s, c, add)?;
        if self.cached(s, &key) {
            return Ok(());
        }
        let dir = self.step_dir()?;
        let mut attrs = plan.attrs;
        if let Some(spec) = &plan.chown {
            attrs.owner = Some(self.owner(&s.state, spec)?);
        }
        self.in_overlay(&s.state, &dir, |img| {
            copy_all(img, &plan, attrs, &dir.join("archives"))
        })?;
        self.finish(s, key, plan.created_by, Change::Upper(dir.join("upper")))?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    /// Expand the instruction, match its sources and compute its cache key.
    fn copy_plan(&self, s: &StageRun, c: &CopyArgs, add: bool) -> Result<(Plan, Digest)> {
        let verb = if add { "ADD" } else { "COPY" };
        let scope = Scope::new(&s.state.config, &s.args);
        let esc = self.df.escape;
        let x = |w: &str| scope.expand(w, esc);
        let from = c.from.as_deref().map(x).transpose()?;
        let chown = c.chown.as_deref().map(x).transpose()?;
        let chmod = c.chmod.as_deref().map(x).transpose()?;
        let mode = chmod
            .as_deref()
            .map(|m| {
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .with_context(|| format!("--chmod={m}: not an octal mode"))
            })
            .transpose()?;
        let dest_word = x(&c.dest)?;
        let workdir = s.state.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_string();
        let dest_abs = if dest_word.starts_with('/') {
            dest_word.clone()
        } else {
            format!("{workdir}/{dest_word}")
        };
        // Sources: heredocs by name, else paths of the context or of --from.
        let (mut docs, mut paths) = (vec![], vec![]);
        for src in &c.sources {
            let doc = src
                .strip_prefix("<<")
                .and_then(|n| c.heredocs.iter().find(|h| h.name == n));
            match doc {
                Some(h) => {
                    let body = match h.expand {
                        true => scope.expand_heredoc(&h.content())?,
                        false => h.content().into_owned(),
                    };
                    docs.push((h.name.clone(), body));
                }
                None => paths.push(x(src)?),
            }
        }
        if add {
            if let Some(u) = paths
                .iter()
                .find(|p| p.contains("://") || p.starts_with("git@"))
            {
                bail!("ADD {u}: remote sources are not supported (builds have no network); download it into the context");
            }
        }
        let (source, from_key) = self.copy_source(from.as_deref())?;
        let mut matched: Vec<Matched> = vec![];
        let mut wildcard = false;
        for p in &paths {
            wildcard |= p.contains(['*', '?', '[']);
            matched.extend(source.resolve(p)?);
        }
        let many = matched.len() + docs.len() > 1 || wildcard;
        if many && !dest_word.ends_with('/') {
            bail!("{verb} with more than one source file: the destination {dest_word:?} must be a directory and end with a /");
        }
        let dest = Dest {
            path: clean_absolute(&dest_abs),
            is_dir: dest_word.ends_with('/') || many,
        };
        // The cache key: the step as written, then what it copies.
        let mut text = vec![verb.to_string()];
        text.extend(c.sources.iter().map(|s| {
            if s.starts_with("<<") {
                s.clone()
            } else {
                x(s).unwrap_or_else(|_| s.clone())
            }
        }));
        text.push(dest_word.clone());
        let created_by = format!("{} # buildkit", text.join(" "));
        let mut h = Sha256::new();
        for m in &matched {
            source.checksum(m, &mut h)?;
        }
        for (_, body) in &docs {
            h.update(body.as_bytes());
        }
        let mut k = KeyBuilder::new(&s.state.key);
        k.field(created_by.as_bytes())
            .field(&h.finalize())
            .field(format!("{chown:?} {chmod:?} {from:?}").as_bytes())
            .field(
                from_key
                    .as_ref()
                    .map_or(&b""[..], |d| d.as_str().as_bytes()),
            );
        let key = k.finish();
        let owner = match chown {
            Some(_) => None,
            None if source.ignore.is_some() => Some((0, 0)),
            None => None,
        };
        let plan = Plan {
            add,
            docs,
            source,
            matched,
            dest,
            attrs: Attrs { owner, mode },
            chown,
            created_by,
        };
        Ok((plan, key))
    }

    /// Where COPY reads: the context, an earlier stage's filesystem, or an image's; and
    /// the key that identifies a stage's or image's content.
    fn copy_source(&self, from: Option<&str>) -> Result<(Source, Option<Digest>)> {
        let Some(from) = from else {
            return Ok((self.context()?, None));
        };
        let state = match self.stage_index(from) {
            Some(j) => self.done[j]
                .clone()
                .with_context(|| format!("--from={from}: that stage was not built"))?,
            None => self
                .from(from)
                .with_context(|| format!("--from={from}: no stage and no image of that name"))?,
        };
        let what = format!("--from={from}");
        let lowers = self.lowers(&state)?;
        if lowers.is_empty() {
            let empty = self.step_dir()?;
            return Ok((Source::open(&empty, None, &what)?, Some(state.key)));
        }
        let fds = open_dirs(&lowers)?;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let m = crate::overlay::mount_readonly(&borrowed)
            .with_context(|| format!("{what}: mount its layers"))?;
        Ok((Source::of_mount(m, &what)?, Some(state.key)))
    }

    /// `--chown=user[:group]`: names looked up in the image's /etc/passwd and /etc/group;
    /// a user alone gives the group of the same number, as docker does.
    fn owner(&self, state: &State, spec: &str) -> Result<(u32, u32)> {
        let lowers = self.lowers(state)?;
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let id = crate::image::user::resolve(spec, &lowers)
            .with_context(|| format!("--chown={spec}"))?;
        let gid = match (g, u.parse::<u32>()) {
            (Some(_), _) => id.gid,
            (None, _) => id.uid,
        };
        Ok((id.uid, gid))
    }
}

/// Heredocs, then each matched source (an ADDed tar unpacked into `staging` first).
fn copy_all(img: &ImageRoot, p: &Plan, attrs: Attrs, staging: &std::path::Path) -> Result<()> {
    for (name, body) in &p.docs {
        let target = match p.dest.is_dir {
            true => p.dest.path.join(name),
            false => p.dest.path.clone(),
        };
        img.write(&target, body.as_bytes(), attrs)?;
    }
    for (i, m) in p.matched.iter().enumerate() {
        if !(p.add && !m.is_dir && copy::is_archive(&p.source, &m.rel)) {
            img.copy(&p.source, m, &p.dest, attrs)?;
            continue;
        }
        let into = staging.join(i.to_string());
        fs::create_dir_all(&into)?;
        copy::unpack_archive(&p.source, &m.rel, &into)?;
        let tree = Source::open(&into, None, &format!("archive {}", m.rel.display()))?;
        let all = Matched {
            rel: PathBuf::new(),
            is_dir: true,
        };
        let d = Dest {
            path: p.dest.path.clone(),
            is_dir: true,
        };
        // An archive keeps its own owners and modes, as docker's ADD does.
        let keep = Attrs {
            owner: None,
            mode: None,
        };
        img.copy(&tree, &all, &d, keep)?;
    }
    Ok(())
}
