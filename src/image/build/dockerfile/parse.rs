//! The Dockerfile parser: directives, continuations, heredocs and instructions, by BuildKit's rules.

mod instruction;
#[cfg(test)]
mod tests;
mod words;

use std::borrow::Cow;

use super::ast::{Dockerfile, Heredoc, Instruction, Pos, Stage};
use instruction::Parsed;

/// A Dockerfile error at a place in the file, shown as `Dockerfile:LINE:COLUMN: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ParseError {
    /// `Dockerfile` unless the caller names the file with [`ParseError::with_file`].
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ParseError {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        ParseError {
            file: "Dockerfile".into(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = file.into();
        self
    }

    pub fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }
}

impl Heredoc {
    /// The body as the file or script gets it: with `<<-`, leading tabs are removed from
    /// every line, as the shell does.
    pub fn content(&self) -> Cow<'_, str> {
        if !self.chomp_tabs {
            return Cow::Borrowed(&self.body);
        }
        Cow::Owned(
            self.body
                .split_inclusive('\n')
                .map(|l| l.trim_start_matches('\t'))
                .collect(),
        )
    }
}

/// Parses a whole Dockerfile. Nothing is expanded: words keep their `$VAR`s, quotes and
/// escapes, for [`super::expand`] at build time.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let (escape, lines) = logical_lines(text)?;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for (line, heredocs) in lines {
        let pos = line.start;
        match instruction::build(&line, escape, heredocs)? {
            Parsed::From {
                base,
                name,
                platform,
            } => stages.push(Stage {
                base,
                name,
                platform,
                pos,
                instructions: Vec::new(),
            }),
            Parsed::Instr(kind) => {
                let instr = Instruction {
                    kind,
                    original: line.text.trim().to_string(),
                    pos,
                };
                if let Some(stage) = stages.last_mut() {
                    stage.instructions.push(instr);
                } else if let super::ast::Kind::Arg(args) = instr.kind {
                    global_args.extend(args);
                } else {
                    let name = words::split_command(&line.text).name.to_uppercase();
                    return Err(ParseError::new(
                        pos,
                        format!("no build stage in current context ({name} before the first FROM)"),
                    ));
                }
            }
        }
    }
    if stages.is_empty() {
        let end = Pos {
            line: text.lines().count().max(1),
            column: 1,
        };
        return Err(ParseError::new(
            end,
            "dockerfile contains no stages to build",
        ));
    }
    Ok(Dockerfile {
        global_args,
        stages,
        escape,
    })
}

/// Parses `ONBUILD` triggers as an image config keeps them (`RUN echo hi`, heredoc bodies
/// appended), for the stage that uses that image as its base. `FROM` is refused there.
pub fn parse_triggers(triggers: &[String]) -> Result<Vec<Instruction>, ParseError> {
    let text = triggers.join("\n");
    let (escape, lines) = logical_lines(&text)?;
    let mut out = Vec::new();
    for (line, heredocs) in lines {
        match instruction::build(&line, escape, heredocs)? {
            Parsed::From { .. } => {
                return Err(ParseError::new(
                    line.start,
                    "FROM isn't allowed as an ONBUILD trigger",
                ))
            }
            Parsed::Instr(kind) => out.push(Instruction {
                kind,
                original: line.text.trim().to_string(),
                pos: line.start,
            }),
        }
    }
    Ok(out)
}

/// One instruction with its continuation lines joined, and where each piece came from.
#[derive(Debug)]
pub(super) struct Logical {
    pub text: String,
    pub start: Pos,
    /// (offset in `text`, line, column of that offset's character)
    segments: Vec<(usize, usize, usize)>,
}

impl Logical {
    /// The source position of byte `off` of `text`.
    pub fn pos_at(&self, off: usize) -> Pos {
        let i = self.segments.partition_point(|s| s.0 <= off).max(1) - 1;
        let (seg_off, line, col) = self.segments[i];
        let upto = off.min(self.text.len()).max(seg_off);
        Pos {
            line,
            column: col + self.text[seg_off..upto].chars().count(),
        }
    }

    /// The offset of `sub`, a slice of `text`.
    pub fn off_of(&self, sub: &str) -> usize {
        let off = (sub.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
        if off <= self.text.len() {
            off
        } else {
            0
        }
    }

    /// The source position of `sub`, a slice of `text`.
    pub fn pos_of(&self, sub: &str) -> Pos {
        self.pos_at(self.off_of(sub))
    }

    fn push(&mut self, piece: &str, line: usize, col: usize) {
        self.segments.push((self.text.len(), line, col));
        self.text.push_str(piece);
    }
}

/// The parser directives at the top (`# escape=`, `# syntax=`); they stop at the first
/// line that is not one, and each may appear once.
struct Directives {
    escape: char,
    done: bool,
    seen: Vec<String>,
}

impl Directives {
    fn check(&mut self, line: &str, pos: Pos) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(ParseError::new(
                pos,
                format!("only one {key} parser directive can be used"),
            ));
        }
        if key == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(ParseError::new(
                        pos,
                        format!("invalid escape token '{value}' does not match ` or \\"),
                    ))
                }
            };
        }
        self.seen.push(key);
        Ok(())
    }
}

/// `#\s*key\s*=\s*value\s*` with a key of `[a-zA-Z][a-zA-Z0-9]*`.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = &rest[..key_end];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[key_end..].trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

/// Strips a trailing escape character (and blanks after it) that continues the line;
/// an escaped escape (`\\`) at the end does not continue it.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, false);
    };
    if before.is_empty() || !before.ends_with(escape) {
        (before, true)
    } else {
        (line, false)
    }
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn col_after(line: &str, byte: usize) -> usize {
    line[..byte].chars().count() + 1
}

type LogicalLines = Vec<(Logical, Vec<Heredoc>)>;

/// Joins continuation lines, drops comments and blank lines, and collects the heredoc
/// bodies that follow RUN/COPY/ADD lines, as BuildKit's parser does.
fn logical_lines(text: &str) -> Result<(char, LogicalLines), ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let src: Vec<&str> = text.split_inclusive('\n').collect();
    let mut d = Directives {
        escape: '\\',
        done: false,
        seen: Vec::new(),
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let lineno = i + 1;
        let content = trim_newline(src[i]);
        i += 1;
        let trimmed = content.trim_start();
        let col = col_after(content, content.len() - trimmed.len());
        d.check(
            trimmed,
            Pos {
                line: lineno,
                column: col,
            },
        )?;
        if trimmed.starts_with('#') {
            continue;
        }
        let (piece, mut more) = trim_continuation(trimmed, d.escape);
        if !more && piece.is_empty() {
            continue;
        }
        let start = Pos {
            line: lineno,
            column: col,
        };
        let mut logical = Logical {
            text: String::new(),
            start,
            segments: Vec::new(),
        };
        logical.push(piece, lineno, col);
        while more && i < src.len() {
            let lineno = i + 1;
            let content = trim_newline(src[i]);
            i += 1;
            d.check(
                content,
                Pos {
                    line: lineno,
                    column: 1,
                },
            )?;
            let trimmed = content.trim_start();
            // Comments and blank lines inside a continuation are dropped, and do not end it.
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            let (piece, m) = trim_continuation(content, d.escape);
            more = m;
            logical.push(piece, lineno, 1);
        }
        let mut heredocs = Vec::new();
        for m in instruction::heredoc_markers(&logical) {
            let mut body = String::new();
            let mut done = false;
            while i < src.len() {
                let raw = src[i];
                i += 1;
                let mut end = trim_newline(raw);
                if m.chomp {
                    end = end.trim_start_matches('\t');
                }
                if end == m.name {
                    done = true;
                    break;
                }
                body.push_str(raw);
            }
            if !done {
                return Err(ParseError::new(
                    logical.pos_at(m.off),
                    format!("unterminated heredoc {}", m.name),
                ));
            }
            heredocs.push(Heredoc {
                name: m.name,
                body,
                expand: m.expand,
                chomp_tabs: m.chomp,
            });
        }
        out.push((logical, heredocs));
    }
    if out.is_empty() {
        let end = Pos {
            line: src.len().max(1),
            column: 1,
        };
        return Err(ParseError::new(end, "file with no instructions"));
    }
    Ok((d.escape, out))
}
