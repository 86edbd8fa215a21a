//! One logical line to an instruction: flags checked, arguments split, docker's errors.

use super::words::{self, blank_words, json_array, quoted_words, Flag, Marker, Split};
use super::{Logical, ParseError};
use crate::image::build::dockerfile::ast::{
    ArgDecl, Command, CopyArgs, Healthcheck, Heredoc, Kind, Pos,
};

/// A `FROM` starts a stage; anything else is an instruction of the current one.
#[derive(Debug)]
pub(super) enum Parsed {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Instr(Kind),
}

/// Heredoc markers of the line, if its instruction (or ONBUILD's trigger) can take them:
/// RUN, COPY and ADD in shell form.
pub(super) fn heredoc_markers(line: &Logical) -> Vec<Marker> {
    let mut split = words::split_command(&line.text);
    if split.name.eq_ignore_ascii_case("onbuild") {
        split = words::split_command(split.args);
    }
    let name = split.name.to_ascii_lowercase();
    if !matches!(name.as_str(), "run" | "copy" | "add") || !split.args.contains("<<") {
        return Vec::new();
    }
    if !matches!(json_array(split.args), Ok(None)) {
        return Vec::new();
    }
    words::heredoc_markers(&line.text)
}

pub(super) fn build(
    line: &Logical,
    escape: char,
    heredocs: Vec<Heredoc>,
) -> Result<Parsed, ParseError> {
    build_at(line, &line.text, escape, heredocs)
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    Str,
}

struct Ctx<'a> {
    line: &'a Logical,
    split: Split<'a>,
    /// Offset of the instruction text in the logical line (non-zero for ONBUILD's trigger).
    base: usize,
    escape: char,
    upper: String,
}

impl Ctx<'_> {
    fn pos(&self) -> Pos {
        self.line.pos_at(self.base)
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.pos(), msg)
    }

    fn err_at(&self, sub: &str, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.line.pos_of(sub), msg)
    }

    /// At the arguments, or at the instruction when there are none.
    fn err_args(&self, msg: impl Into<String>) -> ParseError {
        if self.split.args.is_empty() {
            self.err(msg)
        } else {
            self.err_at(self.split.args, msg)
        }
    }

    fn flag_err(&self, f: &Flag, msg: String) -> ParseError {
        ParseError::new(self.line.pos_at(self.base + f.off), msg)
    }

    /// Checks the flags against the instruction's; `unsupported` are docker's flags that
    /// this builder does not implement.
    fn flags(
        &self,
        known: &[(&'static str, FlagKind)],
        unsupported: &[&str],
    ) -> Result<Vec<(&'static str, String)>, ParseError> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for f in &self.split.flags {
            let Some(&(name, kind)) = known.iter().find(|(n, _)| *n == f.name) else {
                if unsupported.contains(&f.name.as_str()) {
                    let msg = format!("{} --{} is not supported yet", self.upper, f.name);
                    return Err(self.flag_err(f, msg));
                }
                return Err(self.flag_err(f, format!("Unknown flag: {}", f.name)));
            };
            if out.iter().any(|(n, _)| *n == name) {
                return Err(self.flag_err(f, format!("Duplicate flag specified: {name}")));
            }
            let value = match (kind, &f.value) {
                (FlagKind::Str, Some(v)) => v.clone(),
                (FlagKind::Str, None) => {
                    return Err(self.flag_err(f, format!("Missing a value on flag: {name}")))
                }
                (FlagKind::Bool, None) => "true".into(),
                (FlagKind::Bool, Some(v)) if v.is_empty() => {
                    return Err(self.flag_err(f, format!("Missing a value on flag: {name}")))
                }
                (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    b @ ("true" | "false") => b.to_string(),
                    _ => {
                        let msg = format!("Expecting boolean value for flag {name}, not: {v}");
                        return Err(self.flag_err(f, msg));
                    }
                },
            };
            out.push((name, value));
        }
        Ok(out)
    }

    fn no_flags(&self) -> Result<(), ParseError> {
        self.flags(&[], &[]).map(|_| ())
    }

    fn one_arg(&self) -> Result<String, ParseError> {
        self.no_flags()?;
        if self.split.args.is_empty() {
            return Err(self.err(format!("{} requires exactly one argument", self.upper)));
        }
        Ok(self.split.args.to_string())
    }

    fn at_least_one(&self) -> ParseError {
        self.err(format!("{} requires at least one argument", self.upper))
    }

    /// JSON array → exec form; anything else → shell form, as docker's `parseMaybeJSON`.
    fn command(&self, args: &str) -> Result<Command, ParseError> {
        match json_array(args) {
            Ok(Some(v)) => Ok(Command::Exec(v)),
            Ok(None) => Ok(Command::Shell(args.to_string())),
            Err(e) => Err(self.err_at(args, e)),
        }
    }
}

fn get(flags: &[(&'static str, String)], name: &str) -> Option<String> {
    flags
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.clone())
}

fn build_at(
    line: &Logical,
    text: &str,
    escape: char,
    heredocs: Vec<Heredoc>,
) -> Result<Parsed, ParseError> {
    let split = words::split_command(text);
    let upper = split.name.to_ascii_uppercase();
    let c = Ctx {
        line,
        base: line.off_of(text),
        split,
        escape,
        upper,
    };
    let args = c.split.args;
    let kind = match c.upper.as_str() {
        "FROM" => return from(&c),
        "RUN" => run(&c, heredocs)?,
        "COPY" => Kind::Copy(copy(&c, heredocs)?),
        "ADD" => Kind::Add(copy(&c, heredocs)?),
        "ENV" => Kind::Env(name_values(&c)?),
        "LABEL" => Kind::Label(name_values(&c)?),
        "ARG" => Kind::Arg(arg(&c)?),
        "WORKDIR" => Kind::Workdir(c.one_arg()?),
        "USER" => Kind::User(c.one_arg()?),
        "STOPSIGNAL" => Kind::StopSignal(c.one_arg()?),
        "MAINTAINER" => Kind::Maintainer(c.one_arg()?),
        "CMD" | "ENTRYPOINT" => {
            c.no_flags()?;
            // An empty CMD/ENTRYPOINT clears it; docker would make it a bare `sh -c`.
            let cmd = if args.is_empty() {
                Command::Exec(Vec::new())
            } else {
                c.command(args)?
            };
            if c.upper == "CMD" {
                Kind::Cmd(cmd)
            } else {
                Kind::Entrypoint(cmd)
            }
        }
        "EXPOSE" => {
            c.no_flags()?;
            let ports: Vec<String> = blank_words(args).iter().map(|w| w.1.into()).collect();
            if ports.is_empty() {
                return Err(c.at_least_one());
            }
            Kind::Expose(ports)
        }
        "VOLUME" => Kind::Volume(volume(&c)?),
        "SHELL" => {
            c.no_flags()?;
            match c.command(args)? {
                Command::Exec(v) if v.is_empty() => return Err(c.at_least_one()),
                Command::Exec(v) => Kind::Shell(v),
                Command::Shell(_) if args.is_empty() => return Err(c.at_least_one()),
                Command::Shell(_) => {
                    return Err(c.err_args("SHELL requires the arguments to be in JSON form"))
                }
            }
        }
        "HEALTHCHECK" => Kind::Healthcheck(healthcheck(&c)?),
        "ONBUILD" => onbuild(&c, heredocs)?,
        _ => {
            return Err(c.err(format!("unknown instruction: {}", c.split.name)));
        }
    };
    Ok(Parsed::Instr(kind))
}

fn from(c: &Ctx) -> Result<Parsed, ParseError> {
    let flags = c.flags(&[("platform", FlagKind::Str)], &[])?;
    let args = blank_words(c.split.args);
    let name = match args.as_slice() {
        [_] => None,
        [_, (_, kw), (_, name)] if kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            if !valid_stage_name(&lower) {
                return Err(c.err_at(
                    name,
                    format!(
                        "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                    ),
                ));
            }
            Some(lower)
        }
        _ => return Err(c.err_args("FROM requires either one or three arguments")),
    };
    Ok(Parsed::From {
        base: args[0].1.to_string(),
        name,
        platform: get(&flags, "platform"),
    })
}

/// Docker's `^[a-z][a-z0-9-_\.]*$`.
fn valid_stage_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn run(c: &Ctx, heredocs: Vec<Heredoc>) -> Result<Kind, ParseError> {
    let flags = c.flags(
        &[("network", FlagKind::Str)],
        &["mount", "security", "device"],
    )?;
    let network = get(&flags, "network");
    if let Some(n) = &network {
        if !matches!(n.as_str(), "default" | "none" | "host") {
            let f = c.split.flags.iter().find(|f| f.name == "network").unwrap();
            return Err(c.flag_err(f, format!("unsupported network mode {n:?}")));
        }
    }
    if c.split.args.is_empty() {
        return Err(c.at_least_one());
    }
    Ok(Kind::Run {
        command: c.command(c.split.args)?,
        network,
        heredocs,
    })
}

fn copy(c: &Ctx, heredocs: Vec<Heredoc>) -> Result<CopyArgs, ParseError> {
    let is_copy = c.upper == "COPY";
    let flags = if is_copy {
        c.flags(
            &[
                ("from", FlagKind::Str),
                ("chown", FlagKind::Str),
                ("chmod", FlagKind::Str),
                ("link", FlagKind::Bool),
            ],
            &["parents", "exclude"],
        )?
    } else {
        c.flags(
            &[
                ("chown", FlagKind::Str),
                ("chmod", FlagKind::Str),
                ("link", FlagKind::Bool),
            ],
            &["checksum", "keep-git-dir", "exclude", "unpack"],
        )?
    };
    let args = c.split.args;
    let (mut list, json): (Vec<(Option<&str>, String)>, bool) = match json_array(args) {
        Ok(Some(v)) => (v.into_iter().map(|s| (None, s)).collect(), true),
        Ok(None) => (
            blank_words(args)
                .into_iter()
                .map(|(_, w)| (Some(w), w.to_string()))
                .collect(),
            false,
        ),
        Err(e) => return Err(c.err_at(args, e)),
    };
    if list.len() < 2 {
        return Err(c.err_args(format!(
            "{} requires at least two arguments, but only one was provided. Destination could not be determined",
            c.upper
        )));
    }
    let (dest_at, dest) = list.pop().unwrap();
    if !json && words::marker(&dest).is_some() {
        let msg = format!("{} cannot accept a heredoc as a destination", c.upper);
        return Err(match dest_at {
            Some(at) => c.err_at(at, msg),
            None => c.err_args(msg),
        });
    }
    let sources = list
        .into_iter()
        .map(|(_, s)| match words::marker(&s) {
            // Canonical `<<NAME`, whatever the quoting or `-`, to find the heredoc by name.
            Some(m) if !json && heredocs.iter().any(|h| h.name == m.name) => {
                format!("<<{}", m.name)
            }
            _ => s,
        })
        .collect();
    Ok(CopyArgs {
        sources,
        dest,
        from: get(&flags, "from"),
        chown: get(&flags, "chown"),
        chmod: get(&flags, "chmod"),
        link: get(&flags, "link").as_deref() == Some("true"),
        heredocs,
    })
}

/// `ENV`/`LABEL`: `k=v k2="v 2"`, or the legacy `k v` (everything after the key is the
/// value). Keys and values stay raw, to be expanded as words.
fn name_values(c: &Ctx) -> Result<Vec<(String, String)>, ParseError> {
    c.no_flags()?;
    let args = c.split.args;
    let list = quoted_words(args, c.escape);
    let Some((_, first)) = list.first() else {
        return Err(c.at_least_one());
    };
    let blank = || c.err_args(format!("{} names can not be blank", c.upper));
    if !first.contains('=') {
        let key_end = args.find(words::is_blank).unwrap_or(args.len());
        let value = args[key_end..].trim_start_matches(words::is_blank);
        if value.is_empty() {
            return Err(c.err_args(format!("{} must have two arguments", c.upper)));
        }
        return Ok(vec![(args[..key_end].to_string(), value.to_string())]);
    }
    let mut out = Vec::new();
    for (off, word) in list {
        let Some((k, v)) = word.split_once('=') else {
            return Err(ParseError::new(
                c.line.pos_at(c.line.off_of(args) + off),
                format!("Syntax error - can't find = in {word:?}. Must be of the form: name=value"),
            ));
        };
        if k.is_empty() {
            return Err(blank());
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

fn arg(c: &Ctx) -> Result<Vec<ArgDecl>, ParseError> {
    c.no_flags()?;
    let list = quoted_words(c.split.args, c.escape);
    if list.is_empty() {
        return Err(c.at_least_one());
    }
    list.into_iter()
        .map(|(_, w)| match w.split_once('=') {
            Some(("", _)) => Err(c.err_args("ARG names can not be blank")),
            Some((k, v)) => Ok(ArgDecl {
                name: k.to_string(),
                default: Some(v.to_string()),
            }),
            None => Ok(ArgDecl {
                name: w,
                default: None,
            }),
        })
        .collect()
}

fn volume(c: &Ctx) -> Result<Vec<String>, ParseError> {
    c.no_flags()?;
    let args = c.split.args;
    let list: Vec<String> = match json_array(args) {
        Ok(Some(v)) => v,
        Ok(None) => blank_words(args).iter().map(|w| w.1.to_string()).collect(),
        Err(e) => return Err(c.err_at(args, e)),
    };
    if list.is_empty() {
        return Err(c.at_least_one());
    }
    list.into_iter()
        .map(|v| {
            let v = v.trim();
            if v.is_empty() {
                Err(c.err_args("VOLUME specified can not be an empty string"))
            } else {
                Ok(v.to_string())
            }
        })
        .collect()
}

fn healthcheck(c: &Ctx) -> Result<Option<Healthcheck>, ParseError> {
    let args = c.split.args;
    if args.is_empty() {
        return Err(c.at_least_one());
    }
    let typ_end = args.find(char::is_whitespace).unwrap_or(args.len());
    let typ = args[..typ_end].to_ascii_uppercase();
    let rest = args[typ_end..].trim_start();
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(c.err_at(rest, "HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(None);
    }
    let names = ["interval", "timeout", "start-period", "start-interval"];
    let mut known: Vec<(&'static str, FlagKind)> =
        names.iter().map(|n| (*n, FlagKind::Str)).collect();
    known.push(("retries", FlagKind::Str));
    let flags = c.flags(&known, &[])?;
    if typ != "CMD" {
        return Err(c.err_args(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)")));
    }
    let test = match c.command(rest)? {
        Command::Exec(v) if !v.is_empty() => [vec!["CMD".to_string()], v].concat(),
        Command::Shell(s) if !s.is_empty() => vec!["CMD-SHELL".to_string(), s],
        _ => return Err(c.err_args("Missing command after HEALTHCHECK CMD")),
    };
    for name in names {
        if let Some(v) = get(&flags, name) {
            let f = c.split.flags.iter().find(|f| f.name == name).unwrap();
            match go_duration_nanos(&v) {
                None => return Err(c.flag_err(f, format!("time: invalid duration {v:?}"))),
                Some(d) if d != 0.0 && d < 1e6 => {
                    let msg = format!("Interval {name:?} cannot be less than 1ms");
                    return Err(c.flag_err(f, msg));
                }
                _ => {}
            }
        }
    }
    let retries = match get(&flags, "retries") {
        None => None,
        Some(v) => {
            let f = c.split.flags.iter().find(|f| f.name == "retries").unwrap();
            let n: i64 = v.parse().map_err(|_| {
                c.flag_err(
                    f,
                    format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
                )
            })?;
            if n < 1 {
                return Err(c.flag_err(f, format!("--retries must be at least 1 (not {n})")));
            }
            Some(
                u32::try_from(n)
                    .map_err(|_| c.flag_err(f, format!("--retries {n} is out of range")))?,
            )
        }
    };
    Ok(Some(Healthcheck {
        test,
        interval: get(&flags, "interval"),
        timeout: get(&flags, "timeout"),
        start_period: get(&flags, "start-period"),
        start_interval: get(&flags, "start-interval"),
        retries,
    }))
}

/// Go's `time.ParseDuration` (`1m30s`, `1.5h`, `300ms`, `0`), in nanoseconds.
pub(crate) fn go_duration_nanos(s: &str) -> Option<f64> {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    if s == "0" {
        return Some(0.0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Some(total)
}

/// The trigger is checked now (docker only checks its name), so that a bad trigger fails
/// the build that writes it, not the builds that use the image.
fn onbuild(c: &Ctx, heredocs: Vec<Heredoc>) -> Result<Kind, ParseError> {
    c.no_flags()?;
    let trigger = c.split.args;
    if trigger.is_empty() {
        return Err(c.at_least_one());
    }
    let name = words::split_command(trigger).name.to_ascii_uppercase();
    match name.as_str() {
        "ONBUILD" => {
            return Err(c.err_at(
                trigger,
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ))
        }
        "MAINTAINER" | "FROM" => {
            return Err(c.err_at(
                trigger,
                format!("{name} isn't allowed as an ONBUILD trigger"),
            ))
        }
        _ => {}
    }
    let mut expression = trigger.to_string();
    for h in &heredocs {
        expression.push('\n');
        expression.push_str(&h.body);
        expression.push_str(&h.name);
    }
    build_at(c.line, trigger, c.escape, heredocs)?;
    Ok(Kind::Onbuild(expression))
}
