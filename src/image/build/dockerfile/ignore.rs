//! `.dockerignore`: which context paths the build does not see, by moby's patternmatcher rules.

use std::path::Path;

/// A bad pattern or an unreadable `.dockerignore`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore:{line}: {message}")]
pub struct IgnoreError {
    /// 1-based line of the pattern; 0 when the file itself could not be read.
    pub line: usize,
    pub message: String,
}

/// The patterns of a `.dockerignore`, in order: a later pattern overrides an earlier one,
/// `!pattern` re-includes. As with BuildKit, the Dockerfile and `.dockerignore` get no
/// special case: the builder reads the Dockerfile directly, and COPY/ADD see them only if
/// the patterns let them through.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

#[derive(Clone, Debug)]
struct Pattern {
    text: String,
    exclusion: bool,
    toks: Vec<Tok>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Lit(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run without `/`.
    Star,
    /// `**/` (or `**` before more pattern): any number of leading directories, even none.
    Dirs,
    /// `**` at the end: anything.
    Rest,
    /// A leading `**` glued to a literal (`**foo`): anything, `/` included, as
    /// patternmatcher's suffix match.
    Any,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Matcher {
    /// Reads `<ctx_dir>/.dockerignore`; no file means nothing is ignored.
    pub fn from_file(ctx_dir: &Path) -> Result<Matcher, IgnoreError> {
        match std::fs::read_to_string(ctx_dir.join(".dockerignore")) {
            Ok(text) => Matcher::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Matcher::default()),
            Err(e) => Err(IgnoreError {
                line: 0,
                message: format!("reading {}: {e}", ctx_dir.join(".dockerignore").display()),
            }),
        }
    }

    /// The text of a `.dockerignore`: `#` comments (only at the start of a line), blank
    /// lines, patterns cleaned as paths (`./a/` is `a`, a leading `/` is dropped).
    pub fn parse(text: &str) -> Result<Matcher, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exclusion, rest) = match line.strip_prefix('!') {
                Some(r) => (true, r.trim()),
                None => (false, line),
            };
            let err = |message: String| IgnoreError {
                line: i + 1,
                message,
            };
            if exclusion && rest.is_empty() {
                return Err(err("illegal exclusion pattern: \"!\"".into()));
            }
            let mut text = clean(rest);
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
            let toks = compile(&text).map_err(|e| err(format!("{e} in pattern {text:?}")))?;
            patterns.push(Pattern {
                text,
                exclusion,
                toks,
            });
        }
        Ok(Matcher { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The cleaned patterns, `!` kept, as docker reports them.
    pub fn patterns(&self) -> Vec<String> {
        let bang = |p: &Pattern| if p.exclusion { "!" } else { "" };
        self.patterns
            .iter()
            .map(|p| format!("{}{}", bang(p), p.text))
            .collect()
    }

    /// Whether `rel_path` (relative to the context, `/`-separated) is left out. A pattern
    /// that matches a directory leaves out everything beneath it, unless a later `!`
    /// pattern takes a path back (patternmatcher's `MatchesOrParentMatches`).
    pub fn excluded(&self, rel_path: &str) -> bool {
        let path = normalize(rel_path);
        if path.is_empty() || path == "." {
            return false;
        }
        let path: Vec<char> = path.chars().collect();
        let parents: Vec<usize> = (0..path.len()).filter(|&i| path[i] == '/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let hit = full_match(&p.toks, &path)
                || parents.iter().any(|&end| full_match(&p.toks, &path[..end]));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a walk can skip directory `rel_dir` whole: it is left out and no `!`
    /// pattern could take back anything beneath it.
    pub fn skip_dir(&self, rel_dir: &str) -> bool {
        if !self.excluded(rel_dir) {
            return false;
        }
        let mut under: Vec<char> = normalize(rel_dir).chars().collect();
        under.push('/');
        !self
            .patterns
            .iter()
            .any(|p| p.exclusion && prefix_match(&p.toks, &under))
    }
}

fn normalize(p: &str) -> String {
    let c = clean(p);
    c.trim_start_matches('/').to_string()
}

/// Go's `filepath.Clean` for `/` paths.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn compile(pattern: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                let literal_rest = !chars[i..].iter().any(|c| "*?[\\".contains(*c));
                toks.push(if i == chars.len() {
                    Tok::Rest
                } else if i == 2 && literal_rest {
                    Tok::Any
                } else {
                    Tok::Dirs
                });
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            '\\' => match chars.get(i) {
                Some(&d) => {
                    toks.push(Tok::Lit(d));
                    i += 1;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let Some(&lo) = chars.get(i) else {
                        return Err("syntax error".into());
                    };
                    i += 1;
                    if lo == ']' && !ranges.is_empty() {
                        break;
                    }
                    let lo = if lo == '\\' {
                        i += 1;
                        *chars.get(i - 1).ok_or("syntax error")?
                    } else {
                        lo
                    };
                    let hi = if chars.get(i) == Some(&'-')
                        && chars.get(i + 1).is_some_and(|c| *c != ']')
                    {
                        i += 2;
                        chars[i - 1]
                    } else {
                        lo
                    };
                    if hi < lo {
                        return Err("syntax error".into());
                    }
                    ranges.push((lo, hi));
                }
                toks.push(Tok::Class { negated, ranges });
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

fn one_char(t: &Tok, c: char) -> bool {
    match t {
        Tok::Lit(l) => *l == c,
        Tok::One => c != '/',
        Tok::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
        _ => false,
    }
}

/// The whole of `s` matches.
fn full_match(toks: &[Tok], s: &[char]) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((Tok::Rest, _)) => true,
        Some((Tok::Star, rest)) => {
            let run = s.iter().position(|c| *c == '/').unwrap_or(s.len());
            (0..=run).any(|i| full_match(rest, &s[i..]))
        }
        Some((Tok::Any, rest)) => (0..=s.len()).any(|i| full_match(rest, &s[i..])),
        Some((Tok::Dirs, rest)) => {
            full_match(rest, s)
                || (0..s.len()).any(|i| s[i] == '/' && full_match(rest, &s[i + 1..]))
        }
        Some((t, rest)) => s.first().is_some_and(|c| one_char(t, *c)) && full_match(rest, &s[1..]),
    }
}

/// Some continuation of `s` could match: `s` is a prefix of a matching path.
fn prefix_match(toks: &[Tok], s: &[char]) -> bool {
    if s.is_empty() {
        return true;
    }
    match toks.split_first() {
        None => false,
        Some((Tok::Rest, _)) => true,
        Some((Tok::Star, rest)) => {
            let run = s.iter().position(|c| *c == '/');
            match run {
                None => true,
                Some(run) => (0..=run).any(|i| prefix_match(rest, &s[i..])),
            }
        }
        // `.*/` may run past the end of `s`.
        Some((Tok::Dirs | Tok::Any, _)) => true,
        Some((t, rest)) => one_char(t, s[0]) && prefix_match(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests;
