//! `build`: a Dockerfile run as the run / modify / commit loop, with a step cache.
//!
//! The target stage and the stages it needs (FROM another stage, COPY --from) are built
//! in file order; every other stage is skipped. Each step is looked up in the cache
//! (`cache`) and otherwise run (`run`), copied (`copy`) or applied to the config
//! (`instructions`) by `stage`; the result is published as one image under the tags
//! given, and only then: a failure tags nothing and leaves no container or mount.

pub mod cache;
pub mod context;
pub mod copy;
pub mod copy_step;
pub mod dockerfile;
pub mod instructions;
pub mod interrupt;
pub mod placement;
pub mod run;
pub mod stage;
pub mod sums;
pub mod vars;

use anyhow::{bail, Context as _, Result};
use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use context::Source;
use dockerfile::ast::{Dockerfile, Kind};
use stage::{StageRun, State};
use vars::{Args, Scope};

use crate::image::digest::Digest;
use crate::image::layerblob::LayerOpts;
use crate::image::publish::{publish, NewImage};
use crate::image::reference::Reference;
use crate::image::runtime::Runtime;
use crate::image::store::{Store, TmpDir};

pub struct BuildOpts {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile; `<context>/Dockerfile` when None.
    pub dockerfile: Option<PathBuf>,
    pub tags: Vec<Reference>,
    /// `--build-arg K=V`, in order (a later one wins).
    pub build_args: Vec<(String, String)>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// RUN with the host's network (default: none, a loopback of its own).
    pub network_host: bool,
    pub quiet: bool,
    pub layer: LayerOpts,
}

/// What a build did.
#[derive(Debug)]
pub struct Built {
    pub id: Digest,
    /// Steps taken from the cache, and containers run.
    pub cache_hits: usize,
    pub containers: usize,
}

/// The state of one build: shared by its stages.
pub struct Builder<'a> {
    pub store: &'a Store,
    pub rt: &'a Runtime,
    pub opts: &'a BuildOpts,
    pub df: Dockerfile,
    /// The final state of each stage built so far.
    pub done: Vec<Option<State>>,
    pub global_args: Args,
    pub tmp: TmpDir,
    pub hits: usize,
    pub containers: usize,
    /// Context files' checksums by inode, loaded once per build.
    pub sums: sums::Sums,
    steps: usize,
}

/// Build; returns the new image's ID.
pub fn build(store: &Store, rt: &Runtime, o: &BuildOpts) -> Result<Built> {
    let path = o
        .dockerfile
        .clone()
        .unwrap_or_else(|| o.context.join("Dockerfile"));
    let text = fs::read_to_string(&path)
        .with_context(|| format!("read the Dockerfile {}", path.display()))?;
    if !o.context.is_dir() {
        bail!("build context {}: not a directory", o.context.display());
    }
    let shown = path
        .file_name()
        .map_or("Dockerfile".into(), |n| n.to_string_lossy().into_owned());
    let df = dockerfile::parse(&text).map_err(|e| e.with_file(shown.clone()))?;
    let _signals = interrupt::Handlers::install();
    // What the build creates is what docker creates: dirs 0755, files as their modes say.
    unsafe { libc::umask(0o022) };
    let mut b = Builder {
        store,
        rt,
        opts: o,
        done: vec![None; df.stages.len()],
        global_args: Args::default(),
        tmp: store.tmpdir()?,
        hits: 0,
        containers: 0,
        sums: sums::Sums::load(store),
        steps: 0,
        df,
    };
    let target = b.target()?;
    b.global_args = b.globals()?;
    let needed = b.needed(target)?;
    for i in 0..b.df.stages.len() {
        if needed.contains(&i) {
            let st = b.stage(i, &shown)?;
            b.done[i] = Some(st);
        }
    }
    b.warn_unused_args();
    // Only a cache: a failure to keep the sums costs a re-read next time.
    if let Err(e) = b.sums.save(store) {
        eprintln!("strata-image: warning: keep the build context's checksums: {e:#}");
    }
    let fin = b.done[target].clone().expect("the target was built");
    interrupt::check()?;
    let id = publish(
        store,
        &b.tmp,
        NewImage {
            config: fin.config,
            layers: fin.layers,
            new_blobs: vec![],
            new_layer: None,
            name: o.tags.first().cloned(),
            parent: fin.base,
        },
    )?;
    for t in o.tags.iter().skip(1) {
        crate::image::names::tag(store, id.as_str(), &t.full())?;
    }
    Ok(Built {
        id,
        cache_hits: b.hits,
        containers: b.containers,
    })
}

impl Builder<'_> {
    fn say(&self, s: &str) {
        if !self.opts.quiet {
            eprintln!("{s}");
        }
    }

    fn now(&self) -> String {
        self.opts.layer.created.clone()
    }

    fn build_arg(&self, k: &str) -> Option<String> {
        self.opts
            .build_args
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    }

    /// The ARGs before the first FROM, with the platform ARGs BuildKit predefines.
    fn globals(&self) -> Result<Args> {
        let mut a = Args::default();
        let platform = format!("linux/{}", crate::image::config::goarch());
        for (k, v) in [
            ("BUILDPLATFORM", platform.clone()),
            ("TARGETPLATFORM", platform),
            ("BUILDOS", "linux".into()),
            ("TARGETOS", "linux".into()),
            ("BUILDARCH", crate::image::config::goarch().into()),
            ("TARGETARCH", crate::image::config::goarch().into()),
        ] {
            a.set(k, Some(v));
        }
        for d in &self.df.global_args {
            let scope = Scope::new(&serde_json::Value::Null, &a);
            let default = d
                .default
                .as_deref()
                .map(|v| scope.expand(v, self.df.escape))
                .transpose()?;
            a.set(&d.name, self.build_arg(&d.name).or(default));
        }
        Ok(a)
    }

    /// A stage by `AS` name (docker compares lower-cased) or by number.
    fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name.parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.df.stages.len())
            })
    }

    fn target(&self) -> Result<usize> {
        match &self.opts.target {
            None => Ok(self.df.stages.len() - 1),
            Some(t) => self
                .df
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
                .with_context(|| {
                    let names: Vec<&str> = self
                        .df
                        .stages
                        .iter()
                        .filter_map(|s| s.name.as_deref())
                        .collect();
                    format!(
                        "target stage {t:?} could not be found (stages: {})",
                        names.join(", ")
                    )
                }),
        }
    }

    /// A stage's FROM, expanded with the global ARGs.
    fn base_of(&self, i: usize) -> Result<String> {
        let s = &self.df.stages[i];
        let scope = Scope::new(&serde_json::Value::Null, &self.global_args);
        let base = scope.expand(&s.base, self.df.escape)?;
        if base.is_empty() {
            bail!(
                "Dockerfile:{}:{}: FROM {:?} expands to an empty name",
                s.pos.line,
                s.pos.column,
                s.base
            );
        }
        Ok(base)
    }

    /// The stages the target needs, itself included: FROM another stage and COPY --from.
    fn needed(&self, target: usize) -> Result<HashSet<usize>> {
        let mut need = HashSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !need.insert(i) {
                continue;
            }
            let mut deps = vec![self.base_of(i)?];
            for ins in &self.df.stages[i].instructions {
                if let Kind::Copy(c) | Kind::Add(c) = &ins.kind {
                    if let Some(f) = &c.from {
                        let scope = Scope::new(&serde_json::Value::Null, &self.global_args);
                        deps.push(scope.expand(f, self.df.escape)?);
                    }
                }
            }
            for d in deps {
                if let Some(j) = self.stage_index(&d) {
                    if j >= i {
                        let s = &self.df.stages[i];
                        bail!(
                            "Dockerfile:{}:{}: stage {d:?} is used before (or by) its own definition",
                            s.pos.line,
                            s.pos.column
                        );
                    }
                    todo.push(j);
                }
            }
        }
        Ok(need)
    }

    fn stage(&mut self, i: usize, file: &str) -> Result<State> {
        let total: usize = self.df.stages[i].instructions.len() + 1;
        let s = self.df.stages[i].clone();
        let base = self.base_of(i)?;
        self.steps += 1;
        self.say(&format!("[stage {i}] STEP 1/{total}: FROM {base}"));
        let at = |p: dockerfile::ast::Pos| format!("{file}:{}:{}", p.line, p.column);
        let state = self
            .from(&base)
            .with_context(|| format!("{}: FROM {base}", at(s.pos)))?;
        let mut run = StageRun {
            state,
            args: Args::default(),
            flags: Default::default(),
        };
        // The base's ONBUILD triggers run first, as docker runs them, and are not
        // inherited further.
        for ins in self.triggers(&mut run.state, &base)? {
            interrupt::check()?;
            self.say(&format!("[stage {i}] ONBUILD {}", ins.original));
            self.step(&mut run, &ins)
                .with_context(|| format!("{}: ONBUILD {}", at(s.pos), ins.original))?;
        }
        for (n, ins) in s.instructions.iter().enumerate() {
            interrupt::check()?;
            self.steps += 1;
            self.say(&format!(
                "[stage {i}] STEP {}/{total}: {}",
                n + 2,
                ins.original
            ));
            self.step(&mut run, ins)
                .with_context(|| format!("{}: {}", at(ins.pos), ins.original))?;
        }
        Ok(run.state)
    }

    /// The ONBUILD triggers of the state FROM gave, taken out of its config.
    fn triggers(&self, state: &mut State, base: &str) -> Result<Vec<dockerfile::ast::Instruction>> {
        let Some(list) = state.config["config"]
            .as_object_mut()
            .and_then(|c| c.remove("OnBuild"))
        else {
            return Ok(vec![]);
        };
        let texts: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        dockerfile::parse::parse_triggers(&texts)
            .map_err(|e| anyhow::anyhow!(e.with_file(format!("ONBUILD of {base}"))))
    }

    /// The build context as COPY sees it (`.dockerignore` applied).
    fn context(&self) -> Result<Source> {
        let ig = dockerfile::ignore::Matcher::from_file(&self.opts.context)?;
        Source::open(&self.opts.context, Some(ig), "the build context")
    }

    /// A fresh dir for one step's files, under the build's temp dir.
    fn step_dir(&self) -> Result<PathBuf> {
        let d = self
            .tmp
            .path
            .join(format!("step-{}", crate::image::store::random_hex(4)));
        fs::create_dir(&d).with_context(|| format!("create {}", d.display()))?;
        Ok(d)
    }

    fn warn_unused_args(&self) {
        let declared: HashSet<&str> = self
            .df
            .global_args
            .iter()
            .map(|a| a.name.as_str())
            .chain(self.df.stages.iter().flat_map(|s| {
                s.instructions.iter().flat_map(|i| match &i.kind {
                    Kind::Arg(d) => d.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                    _ => vec![],
                })
            }))
            .collect();
        let unused: Vec<&str> = self
            .opts
            .build_args
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !declared.contains(k))
            .collect();
        if !unused.is_empty() {
            eprintln!(
                "strata-image: warning: build-args [{}] were not consumed",
                unused.join(" ")
            );
        }
    }
}
