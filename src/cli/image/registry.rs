//! Registry verbs: pull, push, login, logout.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use super::Ctx;
use crate::image::registry::hub::registry_name;
use crate::image::registry::login;
use crate::image::registry::pull::{self, PullOpts};
use crate::image::registry::push::{self, PushOpts};
use crate::image::registry::ConnOpts;

/// How to reach the registry: shared by every registry verb.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnArgs {
    /// Verify the registry's TLS certificate; false also allows plain HTTP [default: true,
    /// but localhost may speak plain HTTP]
    #[arg(long = "tls-verify", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// A directory of CA certificates (*.crt) to trust for the registry
    #[arg(long = "cert-dir")]
    pub cert_dir: Option<PathBuf>,
    /// The credentials file [default: $REGISTRY_AUTH_FILE, else podman's auth.json and
    /// ~/.docker/config.json]
    #[arg(long)]
    pub authfile: Option<PathBuf>,
}

impl ConnArgs {
    fn opts(&self) -> ConnOpts {
        ConnOpts {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            authfile: self.authfile.clone(),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// NAME[:TAG|@DIGEST]; a name without a registry is docker.io's (busybox =
    /// docker.io/library/busybox:latest)
    pub name: String,
    /// os/arch[/variant] to pick from a multi-platform image [default: this machine's]
    #[arg(long)]
    pub platform: Option<String>,
    /// Layers downloaded at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Print only the image's name
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn pull(ctx: &Ctx, a: PullArgs) -> Result<i32> {
    let p = pull::pull(
        &ctx.store,
        &PullOpts {
            name: a.name,
            platform: a.platform,
            jobs: a.jobs.into(),
            quiet: a.quiet,
            conn: a.conn.opts(),
        },
    )?;
    pull::report(&p, a.quiet);
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The image: a name or ID in the store
    pub image: String,
    /// Where to push it [default: IMAGE, when it is a name]
    pub dest: Option<String>,
    /// Blobs uploaded at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Print only the digest line
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn push(ctx: &Ctx, a: PushArgs) -> Result<i32> {
    let p = push::push(
        &ctx.store,
        &PushOpts {
            image: a.image,
            dest: a.dest,
            jobs: a.jobs.into(),
            quiet: a.quiet,
            conn: a.conn.opts(),
        },
    )?;
    push::report(&p);
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The registry (host[:port]) [default: docker.io]
    pub registry: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (visible to other users in ps: prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

pub fn login(a: LoginArgs) -> Result<i32> {
    let registry = registry_name(a.registry.as_deref().unwrap_or("docker.io"));
    let user = match a.username {
        Some(u) => u,
        None => prompt("Username: ", true)?,
    };
    let pass = match (a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are exclusive"),
        (Some(p), false) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => prompt("Password: ", false)?,
    };
    if user.is_empty() || pass.is_empty() {
        bail!("login {registry}: a user name and a password are needed");
    }
    let file = login::login(&registry, &user, &pass, &a.conn.opts())
        .with_context(|| format!("login {registry}"))?;
    eprintln!("Credentials saved in {}", file.display());
    println!("Login Succeeded");
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// The registry [default: docker.io]
    pub registry: Option<String>,
    /// The credentials file [default: every one login or docker and podman use]
    #[arg(long)]
    pub authfile: Option<PathBuf>,
}

pub fn logout(a: LogoutArgs) -> Result<i32> {
    let registry = registry_name(a.registry.as_deref().unwrap_or("docker.io"));
    login::logout(&registry, a.authfile.as_deref())
        .with_context(|| format!("logout {registry}"))?;
    println!("Removed login credentials for {registry}");
    Ok(0)
}

/// Ask on the terminal (the password without echo); a pipe must give flags instead.
fn prompt(what: &str, echo: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("not a terminal: give -u and --password-stdin");
    }
    eprint!("{what}");
    std::io::stderr().flush()?;
    let _quiet = (!echo).then(NoEcho::new);
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if !echo {
        eprintln!();
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The terminal's echo off while it lives.
struct NoEcho(Option<libc::termios>);

impl NoEcho {
    fn new() -> NoEcho {
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return NoEcho(None);
        }
        let mut quiet = t;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
        NoEcho(Some(t))
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}
