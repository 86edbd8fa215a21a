//! COPY and ADD as build steps: the instruction expanded into a plan (sources matched and
//! scanned, destination, owner and mode), its cache key (the step's text and a checksum of
//! what it copies, file contents remembered by inode in `sums`), and on a miss the layer
//! written straight from the sources (`placement`), or, for what only a real copy can
//! show (an ADDed archive, odd destinations), the copy into a writable overlay of the
//! stage's layers.

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use super::cache::{self, KeyBuilder};
use super::context::{clean_absolute, Matched, Scan, Source};
use super::copy::{self, Attrs, Dest, ImageRoot};
use super::dockerfile::ast::CopyArgs;
use super::placement::Placement;
use super::stage::{open_dirs, Change, StageRun, State};
use super::sums;
use super::vars::Scope;
use super::Builder;
use crate::image::digest::Digest;
use crate::image::layer::placed::{self, Dir, Node};
use crate::image::layerblob;
use crate::image::progress::Progress;
use crate::paths::Root;

/// One COPY or ADD, expanded and resolved.
struct Plan {
    add: bool,
    /// Heredoc sources: (name, body).
    docs: Vec<(String, String)>,
    source: Source,
    matched: Vec<Matched>,
    /// Each matched source's scanned tree (taken by `place`).
    nodes: Vec<Node>,
    scan: Scan,
    dest: Dest,
    attrs: Attrs,
    /// --chown, --chmod and --from as given, for the key.
    flags: String,
    /// The content identity of --from's stage or image.
    from_key: Option<Digest>,
    chown: Option<String>,
    created_by: String,
}

impl Builder<'_> {
    pub(super) fn copy_step(&mut self, s: &mut StageRun, c: &CopyArgs, add: bool) -> Result<()> {
        let mut plan = self.copy_plan(s, c, add)?;
        plan.scan.recall(&mut self.sums, &plan.source);
        let shape = self.copy_shape(s, &plan);
        if !self.opts.no_cache && cache::has_shape(self.store, &shape) {
            plan.scan.fill(&plan.source, &mut self.sums)?;
            let key = self.copy_key(s, &plan)?;
            if self.cached(s, &key) {
                return Ok(());
            }
        }
        let dir = self.step_dir()?;
        let mut attrs = plan.attrs;
        if let Some(spec) = &plan.chown {
            attrs.owner = Some(self.owner(&s.state, spec)?);
        }
        let change = match self.place(&s.state, &mut plan, attrs)? {
            Some(tree) => {
                let read_at = sums::now_ns();
                let layer = self.write_placed(&tree, &mut plan, &dir)?;
                plan.scan.learnt(&plan.source, &mut self.sums, read_at);
                layer
            }
            None => {
                plan.scan.fill(&plan.source, &mut self.sums)?;
                self.in_overlay(&s.state, &dir, |img| {
                    copy_all(img, &plan, attrs, &dir.join("archives"))
                })?;
                Change::Upper(dir.join("upper"))
            }
        };
        // A no-op unless some source was not read on the way (an empty plan).
        plan.scan.fill(&plan.source, &mut self.sums)?;
        let key = self.copy_key(s, &plan)?;
        let created_by = plan.created_by.clone();
        self.finish(s, key, created_by, change)?;
        cache::save_shape(self.store, &shape)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    /// The key without what the step reads (see `cache::has_shape`).
    fn copy_shape(&self, s: &StageRun, p: &Plan) -> Digest {
        let mut k = KeyBuilder::new(&s.state.key);
        k.field(b"shape")
            .field(p.created_by.as_bytes())
            .field(p.flags.as_bytes())
            .field(
                p.from_key
                    .as_ref()
                    .map_or(&b""[..], |d| d.as_str().as_bytes()),
            );
        k.finish()
    }

    /// The step's cache key: the step as written, the checksum of what it copies, its
    /// flags and the identity of its --from.
    fn copy_key(&self, s: &StageRun, p: &Plan) -> Result<Digest> {
        let mut h = Sha256::new();
        h.update(p.scan.checksum()?);
        for (_, body) in &p.docs {
            h.update(body.as_bytes());
        }
        let mut k = KeyBuilder::new(&s.state.key);
        k.field(p.created_by.as_bytes())
            .field(&h.finalize())
            .field(p.flags.as_bytes())
            .field(
                p.from_key
                    .as_ref()
                    .map_or(&b""[..], |d| d.as_str().as_bytes()),
            );
        Ok(k.finish())
    }

    /// The plan as a tree of what lands where, if it can be written directly.
    fn place(&self, state: &State, p: &mut Plan, a: Attrs) -> Result<Option<Dir>> {
        if p.add
            && p.matched
                .iter()
                .any(|m| !m.is_dir && copy::is_archive(&p.source, &m.rel))
        {
            return Ok(None);
        }
        let lowers = self.lowers(state)?;
        let mount = match lowers.is_empty() {
            true => None,
            false => {
                let fds = open_dirs(&lowers)?;
                let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
                Some(
                    crate::overlay::mount_readonly(&borrowed)
                        .context("mount the stage's layers")?,
                )
            }
        };
        let root = mount
            .as_ref()
            .map(|m| Root::open(Path::new(&format!("/proc/self/fd/{}", m.as_raw_fd()))))
            .transpose()?;
        let now = sums::now_ns() / 1_000_000_000;
        let mut pl = Placement::new(root.as_ref(), now);
        for (name, body) in &p.docs {
            if !pl.doc(&p.dest, name, body.as_bytes(), a)? {
                return Ok(None);
            }
        }
        for (m, node) in p.matched.iter().zip(std::mem::take(&mut p.nodes)) {
            if !pl.source(m, node, &p.dest, a)? {
                return Ok(None);
            }
        }
        Ok(Some(pl.finish()))
    }

    /// Write a placed tree as the step's layer (`dir/layer`), reading each source once.
    fn write_placed(&self, tree: &Dir, p: &mut Plan, dir: &Path) -> Result<Change> {
        if tree.children.is_empty() {
            return Ok(Change::None);
        }
        let o = &self.opts.layer;
        let layer_dir = dir.join("layer");
        fs::create_dir_all(layer_dir.join("diff"))?;
        let mut sink = layerblob::start(&self.tmp.path, &o.compress)?;
        let progress = Progress::new("copy", None, o.quiet);
        let now = sums::now_ns() / 1_000_000_000;
        let po = placed::PlacedOpts {
            copy_to: Some(&layer_dir.join("diff")),
            times: o.times,
            now,
        };
        placed::write_placed(
            tree,
            &p.source.root,
            &mut sink,
            &po,
            &mut p.scan.digests,
            &mut |n| progress.inc(n),
        )?;
        progress.done();
        let new = layerblob::finish(sink, o.compress.compression)?;
        Ok(Change::Layer(new, layer_dir))
    }

    /// Expand the instruction, match its sources and compute its cache key.
    fn copy_plan(&self, s: &StageRun, c: &CopyArgs, add: bool) -> Result<Plan> {
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
        let mut scan = Scan::default();
        let nodes = matched
            .iter()
            .map(|m| source.scan(m, &mut scan))
            .collect::<Result<Vec<_>>>()?;
        let owner = match chown {
            Some(_) => None,
            None if source.is_context() => Some((0, 0)),
            None => None,
        };
        Ok(Plan {
            add,
            docs,
            source,
            matched,
            nodes,
            scan,
            dest,
            attrs: Attrs { owner, mode },
            flags: format!("{chown:?} {chmod:?} {from:?}"),
            from_key,
            chown,
            created_by,
        })
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
