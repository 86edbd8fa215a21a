//! One stage of a build, step by step: FROM, then each instruction looked up in the
//! cache by its key and, on a miss, run (RUN), copied (COPY, ADD, WORKDIR's mkdir) or
//! applied to the config; a step that changed files becomes one layer, published with
//! its cache entry in one locked step.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::cache::{self, Entry, KeyBuilder};
use super::context::clean_absolute;
use super::copy::ImageRoot;
use super::dockerfile::ast::{Command, Heredoc, Instruction, Kind};
use super::instructions::{self, StageFlags};
use super::run::{self, RunStep};
use super::vars::{Args, Scope};
use super::Builder;
use crate::image::commit::write_layer;
use crate::image::config::{self, History};
use crate::image::digest::Digest;
use crate::image::layerblob::NewLayer;
use crate::image::oci::Descriptor;
use crate::image::store::layers::{chain_ids, LayerInfo};
use crate::paths::Root;

/// BuildKit's history comment for Dockerfile steps.
const COMMENT: &str = "buildkit.dockerfile.v0";

/// The image a stage has built so far.
#[derive(Clone, Debug)]
pub struct State {
    pub config: Value,
    pub layers: Vec<Descriptor>,
    /// The cache key of the last step (the base image's ID for a fresh FROM).
    pub key: Digest,
    /// The image FROM named, if any (the built image's parent, for `history`).
    pub base: Option<Digest>,
}

/// A stage in progress: its state, its ARGs and whether CMD was set.
pub struct StageRun {
    pub state: State,
    pub args: Args,
    pub flags: StageFlags,
}

/// What a step changed in files, if anything: an upper dir to write as a layer.
pub(super) enum Change {
    None,
    Upper(PathBuf),
    /// A layer already written: its blob, and its layer dir (holding `diff/`).
    Layer(NewLayer, PathBuf),
}

impl Builder<'_> {
    /// The state `FROM name` starts from: scratch, an earlier stage, or an image (pulled
    /// if the store lacks it).
    pub fn from(&self, name: &str) -> Result<State> {
        if name == "scratch" {
            let mut k = KeyBuilder::new(&Digest::of(b"FROM scratch"));
            k.field(config::goarch().as_bytes());
            // BuildKit gives a scratch image the default PATH.
            let mut cfg = config::empty(&self.opts.layer.created);
            cfg["config"]["Env"] = json!([crate::image::bundle::DEFAULT_PATH]);
            return Ok(State {
                config: cfg,
                layers: vec![],
                key: k.finish(),
                base: None,
            });
        }
        if let Some(j) = self.stage_index(name) {
            return self.done[j]
                .clone()
                .with_context(|| format!("stage {name:?} has not been built before this one"));
        }
        let img = match crate::image::images::find(self.store, name) {
            Ok(i) => i,
            Err(_) => {
                self.say(&format!("pulling {name}"));
                let o = crate::image::registry::pull::PullOpts {
                    name: name.to_string(),
                    platform: None,
                    jobs: 4,
                    quiet: true,
                    conn: Default::default(),
                };
                crate::image::registry::pull::pull(self.store, &o).with_context(|| {
                    format!("FROM {name}: not in the store, and pulling it failed")
                })?;
                crate::image::images::find(self.store, name)?
            }
        };
        Ok(State {
            config: img.config.clone(),
            layers: img.manifest.layers.clone(),
            key: img.id().clone(),
            base: Some(img.id().clone()),
        })
    }

    /// Run one instruction of a stage.
    pub fn step(&mut self, s: &mut StageRun, ins: &Instruction) -> Result<()> {
        let esc = self.df.escape;
        match &ins.kind {
            Kind::Arg(decls) => {
                let mut text = vec![];
                for d in decls {
                    let scope = Scope::new(&s.state.config, &s.args);
                    let default = d
                        .default
                        .as_deref()
                        .map(|v| scope.expand(v, esc))
                        .transpose()?;
                    let value = self
                        .build_arg(&d.name)
                        .or_else(|| default.clone())
                        .or_else(|| self.global_args.get(&d.name).map(String::from));
                    s.args.set(&d.name, value);
                    text.push(match &default {
                        Some(v) => format!("{}={v}", d.name),
                        None => d.name.clone(),
                    });
                }
                self.meta(s, format!("ARG {}", text.join(" ")), |_| Ok(()))
            }
            Kind::Run {
                command,
                network,
                heredocs,
            } => self.run_step(s, command, network, heredocs),
            Kind::Copy(c) => self.copy_step(s, c, false),
            Kind::Add(c) => self.copy_step(s, c, true),
            Kind::Workdir(w) => self.workdir_step(s, w),
            other => {
                let mut cfg = s.state.config.clone();
                let scope = Scope::new(&s.state.config, &s.args);
                let applied = instructions::apply(&mut cfg, other, &scope, esc, &mut s.flags)?;
                self.meta(s, applied.created_by, move |c| {
                    *c = cfg;
                    Ok(())
                })
            }
        }
    }

    /// A metadata-only step: the config changed by `apply`, an empty-layer history entry.
    fn meta(
        &mut self,
        s: &mut StageRun,
        created_by: String,
        apply: impl FnOnce(&mut Value) -> Result<()>,
    ) -> Result<()> {
        let mut k = KeyBuilder::new(&s.state.key);
        k.field(created_by.as_bytes());
        let key = k.finish();
        if self.cached(s, &key) {
            return Ok(());
        }
        apply(&mut s.state.config)?;
        self.finish(s, key, created_by, Change::None)
    }

    /// Take the cached result of `key` if there is one (and the cache is on).
    pub(super) fn cached(&mut self, s: &mut StageRun, key: &Digest) -> bool {
        if self.opts.no_cache {
            return false;
        }
        match cache::lookup(self.store, key) {
            Some(e) => {
                s.state.config = e.config;
                s.state.layers = e.layers;
                s.state.key = key.clone();
                self.hits += 1;
                self.say(&format!("--> Using cache {}", &key.hex()[..12]));
                true
            }
            None => false,
        }
    }

    fn run_step(
        &mut self,
        s: &mut StageRun,
        command: &Command,
        network: &Option<String>,
        heredocs: &[Heredoc],
    ) -> Result<()> {
        // A lone heredoc starting with #! is a script run by its own interpreter, as
        // BuildKit runs it: written to a file the shell executes from /dev/pipes.
        let script = shebang_script(command, heredocs);
        let command = match &script {
            Some((name, _)) => Command::Shell(format!("{PIPES}/{name}")),
            None => with_heredocs(command, heredocs),
        };
        let argv = instructions::argv(&s.state.config, &command);
        let created_by = instructions::run_created_by(&s.args.listed(), &argv);
        let mut k = KeyBuilder::new(&s.state.key);
        k.field(created_by.as_bytes());
        if let Some((_, body)) = &script {
            k.field(body.as_bytes());
        }
        let key = k.finish();
        if self.cached(s, &key) {
            return Ok(());
        }
        let network_host = match network.as_deref() {
            None => self.opts.network_host,
            Some("host") => true,
            Some("none" | "default") => false,
            Some(other) => {
                bail!("RUN --network={other}: only none, default and host are supported")
            }
        };
        let dir = self.step_dir()?;
        let pipes = match &script {
            Some((name, body)) => Some(write_script(&dir, name, body)?),
            None => None,
        };
        let lowers = self.lowers(&s.state)?;
        let step = RunStep {
            argv,
            args: s.args.values(),
            network_host,
            quiet: self.opts.quiet,
            pipes,
        };
        self.containers += 1;
        run::run(self.rt, &dir, &s.state.config, &lowers, &step)?;
        self.finish(s, key, created_by, Change::Upper(dir.join("upper")))?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    fn workdir_step(&mut self, s: &mut StageRun, w: &str) -> Result<()> {
        let scope = Scope::new(&s.state.config, &s.args);
        let w = scope.expand(w, self.df.escape)?;
        let cur = s.state.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/");
        let path = clean_absolute(&if w.starts_with('/') {
            w.clone()
        } else {
            format!("{cur}/{w}")
        });
        let shown = path.to_string_lossy().into_owned();
        config::container_config(&mut s.state.config).insert("WorkingDir".into(), json!(shown));
        let created_by = format!("WORKDIR {shown}");
        let mut k = KeyBuilder::new(&s.state.key);
        k.field(created_by.as_bytes());
        let key = k.finish();
        if self.cached(s, &key) {
            return Ok(());
        }
        if path == Path::new("/") {
            return self.finish(s, key, created_by, Change::None);
        }
        let dir = self.step_dir()?;
        self.in_overlay(&s.state, &dir, |img| img.mkdir_all(&path).map(drop))?;
        self.finish(s, key, created_by, Change::Upper(dir.join("upper")))?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    /// Do `f` on a detached writable overlay of the state's layers whose upper dir is
    /// `dir/upper`; nothing stays mounted after.
    pub(super) fn in_overlay(
        &self,
        state: &State,
        dir: &Path,
        f: impl FnOnce(&ImageRoot) -> Result<()>,
    ) -> Result<()> {
        let mut lowers = self.lowers(state)?;
        for d in ["upper", "work", "empty"] {
            fs::create_dir_all(dir.join(d))?;
        }
        if lowers.is_empty() {
            lowers.push(dir.join("empty"));
        }
        let fds = open_dirs(&lowers)?;
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let up = open_dirs(&[dir.join("upper"), dir.join("work")])?;
        let m = crate::overlay::mount_writable(&borrowed, up[0].as_fd(), up[1].as_fd())?;
        let root = Root::open(Path::new(&format!("/proc/self/fd/{}", m.as_raw_fd())))?;
        f(&ImageRoot::new(root))
    }

    /// Layer dirs of a state, top-most first (unpacked from their blobs if missing).
    pub fn lowers(&self, state: &State) -> Result<Vec<PathBuf>> {
        let ids = crate::image::images::diff_ids(&state.config)?;
        let mut l = self.store.ensure_layers(&ids, &state.layers)?;
        l.reverse();
        Ok(l)
    }

    /// Close a step: its layer (when it changed files) and history entry, published with
    /// its cache entry under the store lock.
    pub(super) fn finish(
        &mut self,
        s: &mut StageRun,
        key: Digest,
        created_by: String,
        change: Change,
    ) -> Result<()> {
        let created = self.now();
        let mut h = History {
            created: created.clone(),
            created_by,
            comment: Some(COMMENT.into()),
            empty_layer: true,
            ..Default::default()
        };
        let cfg = &mut s.state.config;
        cfg["created"] = json!(created);
        let written = match change {
            Change::Upper(u) if !dir_is_empty(&u)? => {
                let layer_dir = u.with_file_name("layer");
                let new = write_layer(&u, &layer_dir, &self.tmp.path, &self.opts.layer)?;
                Some((new, layer_dir))
            }
            Change::Layer(new, layer_dir) => Some((new, layer_dir)),
            _ => None,
        };
        let Some((new, layer_dir)) = written else {
            config::add_history(cfg, &h);
            s.state.key = key.clone();
            let l = self.store.lock()?;
            return cache::save(
                &l,
                &key,
                &Entry {
                    config: s.state.config.clone(),
                    layers: s.state.layers.clone(),
                },
            );
        };
        h.empty_layer = false;
        config::add_layer(cfg, &new.diff_id, &h);
        let mut ids = crate::image::images::diff_ids(cfg)?;
        let parent = chain_ids(&ids[..ids.len() - 1]).pop();
        let chain = chain_ids(&ids).pop().expect("a layer was just added");
        ids.clear();
        s.state.layers.push(new.descriptor());
        s.state.key = key.clone();
        let info = LayerInfo {
            diff_id: new.diff_id.clone(),
            chain_id: chain,
            parent,
            size: new.tar_size,
        };
        let l = self.store.lock()?;
        l.publish_blobs(&[&new.blob])?;
        l.publish_layer(&layer_dir, &info)?;
        cache::save(
            &l,
            &key,
            &Entry {
                config: s.state.config.clone(),
                layers: s.state.layers.clone(),
            },
        )
    }
}

/// Where a RUN's shebang heredoc is mounted (read-only), as BuildKit mounts it.
const PIPES: &str = "/dev/pipes";

/// Whether the RUN is a lone heredoc (`RUN <<EOF`) whose body starts with `#!`: its
/// (name, body), taken as written (BuildKit expands no variables in it).
fn shebang_script(c: &Command, docs: &[Heredoc]) -> Option<(String, String)> {
    let Command::Shell(text) = c else {
        return None;
    };
    let [d] = docs else {
        return None;
    };
    let body = d.content();
    (lone_heredoc(text, &d.name) && body.starts_with("#!"))
        .then(|| (d.name.clone(), body.into_owned()))
}

/// The script as an executable file in `dir/pipes`, the dir to mount at PIPES.
fn write_script(dir: &Path, name: &str, body: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let pipes = dir.join("pipes");
    fs::create_dir(&pipes)?;
    let f = pipes.join(name);
    fs::write(&f, body).with_context(|| format!("write {}", f.display()))?;
    fs::set_permissions(&f, fs::Permissions::from_mode(0o755))?;
    Ok(pipes)
}

fn lone_heredoc(text: &str, name: &str) -> bool {
    text.trim()
        .trim_start_matches("<<")
        .trim_start_matches('-')
        .trim_matches(['"', '\''])
        == name
}

/// A shell-form RUN with heredocs: a lone `<<EOF` runs the body as the script; otherwise
/// the shell gets the heredoc text itself, as BuildKit does.
fn with_heredocs(c: &Command, docs: &[Heredoc]) -> Command {
    let Command::Shell(text) = c else {
        return c.clone();
    };
    if docs.is_empty() {
        return c.clone();
    }
    if docs.len() == 1 && lone_heredoc(text, &docs[0].name) {
        return Command::Shell(docs[0].content().into_owned());
    }
    let mut s = text.clone();
    for d in docs {
        s.push('\n');
        s.push_str(&d.body);
        if !d.body.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&d.name);
    }
    Command::Shell(s)
}

pub(super) fn open_dirs(dirs: &[PathBuf]) -> Result<Vec<OwnedFd>> {
    dirs.iter()
        .map(|d| crate::image::store::open_dir(d).with_context(|| format!("open {}", d.display())))
        .collect()
}

fn dir_is_empty(p: &Path) -> Result<bool> {
    Ok(fs::read_dir(p)
        .with_context(|| format!("read {}", p.display()))?
        .next()
        .is_none())
}
