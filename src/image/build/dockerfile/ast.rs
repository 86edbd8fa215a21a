//! The parsed Dockerfile: stages of instructions, each with its source line, before any
//! variable is expanded (expansion needs the build's args and env at that step).

/// Where an instruction starts in the Dockerfile (1-based), for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A whole Dockerfile.
#[derive(Clone, Debug, PartialEq)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM` (usable in `FROM` lines only, as docker).
    pub global_args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
    /// The escape character (`# escape=` directive; `\` by default).
    pub escape: char,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// The `FROM` argument, unexpanded (`alpine:${V}`, `scratch`, another stage's name).
    pub base: String,
    /// `AS name`, lower-cased as docker does.
    pub name: Option<String>,
    /// `FROM --platform=...`, unexpanded.
    pub platform: Option<String>,
    pub pos: Pos,
    pub instructions: Vec<Instruction>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ArgDecl {
    pub name: String,
    /// The default, unexpanded.
    pub default: Option<String>,
}

/// Shell form (one string, run by `SHELL`) or exec form (a JSON array).
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// A heredoc body (`<<EOF` ... `EOF`), kept verbatim; `expand` is false when the
/// delimiter was quoted (`<<'EOF'`), as in the shell.
#[derive(Clone, Debug, PartialEq)]
pub struct Heredoc {
    pub name: String,
    pub body: String,
    pub expand: bool,
    pub chomp_tabs: bool,
}

/// `COPY`/`ADD` flags and operands. With heredocs, a source named `<<EOF` refers to the
/// heredoc of that name.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CopyArgs {
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Run {
        command: Command,
        /// `--network=...` on the RUN line, if any.
        network: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Copy(CopyArgs),
    Add(CopyArgs),
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    Workdir(String),
    User(String),
    Cmd(Command),
    Entrypoint(Command),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Shell(Vec<String>),
    /// `HEALTHCHECK NONE` is `None`; otherwise the test and the flags as docker keeps them.
    Healthcheck(Option<Healthcheck>),
    /// The trigger instruction's text, as docker stores it (`RUN echo hi`).
    Onbuild(String),
    Maintainer(String),
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Healthcheck {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`, as in the image config.
    pub test: Vec<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Instruction {
    pub kind: Kind,
    /// The instruction as written, continuations joined (for history's `created_by` and
    /// the cache key).
    pub original: String,
    pub pos: Pos,
}
