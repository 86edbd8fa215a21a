//! Word-level scanning of one instruction line: its name, `--flags`, words, JSON arrays, heredoc markers.

/// Docker splits instruction arguments on these (its `[\t\v\f\r ]+`), not on every Unicode space.
pub(super) fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// A `--name[=value]` flag; `off` is its byte offset in the scanned text.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Flag {
    pub name: String,
    pub value: Option<String>,
    pub off: usize,
}

/// An instruction line cut into its name, flags and the rest (all offsets local to `line`).
#[derive(Debug)]
pub(super) struct Split<'a> {
    pub name: &'a str,
    pub flags: Vec<Flag>,
    pub args: &'a str,
}

pub(super) fn split_command(line: &str) -> Split<'_> {
    let lead = line.len() - line.trim_start().len();
    let body = line.trim();
    let name_end = body.find(is_blank).unwrap_or(body.len());
    let name = &body[..name_end];
    let rest_off = lead + name_end;
    let (flags, args_local) = extract_flags(&line[rest_off..lead + body.len()]);
    let flags = flags
        .into_iter()
        .map(|f| Flag {
            off: f.off + rest_off,
            ..f
        })
        .collect();
    let after = &line[rest_off + args_local..lead + body.len()];
    Split {
        name,
        flags,
        args: after.trim(),
    }
}

/// Leading `--flag` words, unquoted as docker does (always with `\`, whatever the escape
/// directive); returns them and the offset where the arguments start.
fn extract_flags(s: &str) -> (Vec<Flag>, usize) {
    let b: Vec<(usize, char)> = s.char_indices().collect();
    let n = b.len();
    let mut flags = Vec::new();
    let mut i = 0;
    loop {
        while i < n && b[i].1.is_whitespace() {
            i += 1;
        }
        if i == n {
            return (flags, s.len());
        }
        if !(b[i].1 == '-' && i + 1 < n && b[i + 1].1 == '-') {
            return (flags, b[i].0);
        }
        let start = b[i].0;
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut blank_ok = false;
        while i < n {
            let c = b[i].1;
            if quote.is_none() && c.is_whitespace() {
                break;
            }
            if let Some(q) = quote {
                if c == q {
                    quote = None;
                    i += 1;
                    continue;
                }
            } else if c == '\'' || c == '"' {
                quote = Some(c);
                blank_ok = true;
                i += 1;
                continue;
            }
            if c == '\\' {
                if i + 1 == n {
                    quote = None;
                    i += 1;
                    continue;
                }
                i += 1;
                word.push(b[i].1);
                i += 1;
                continue;
            }
            word.push(c);
            i += 1;
        }
        if word == "--" {
            return (flags, if i == n { s.len() } else { b[i].0 });
        }
        if blank_ok || !word.is_empty() {
            let bare = word.strip_prefix("--").unwrap_or(&word);
            let (name, value) = match bare.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (bare.to_string(), None),
            };
            flags.push(Flag {
                name,
                value,
                off: start,
            });
        }
    }
}

/// Words for `ENV`, `LABEL` and `ARG`: split on spaces outside quotes, with the quotes and
/// escapes kept (expansion removes them later), as docker's `parseWords`.
pub(super) fn quoted_words(rest: &str, escape: char) -> Vec<(usize, String)> {
    let b: Vec<(usize, char)> = rest.char_indices().collect();
    let n = b.len();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut start = 0;
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut i = 0;
    while i < n {
        let c = b[i].1;
        if !in_word {
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            in_word = true;
            start = b[i].0;
        }
        match quote {
            None => {
                if c.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push((start, std::mem::take(&mut word)));
                    }
                    in_word = false;
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    if i + 1 == n {
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                }
                word.push(b[i].1);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    if i + 1 == n {
                        quote = None;
                        i += 1;
                        continue;
                    }
                    word.push(c);
                    i += 1;
                }
                word.push(b[i].1);
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push((start, word));
    }
    words
}

/// Words split on docker's blanks, no quote handling (`FROM`, `EXPOSE`, `COPY` sources).
pub(super) fn blank_words(rest: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in rest.char_indices() {
        match (is_blank(c), start) {
            (true, Some(s)) => {
                out.push((s, &rest[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &rest[s..]));
    }
    out
}

pub(super) const NOT_STRINGS: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// `Ok(None)` when `rest` is not a JSON array (docker then falls back to the shell form);
/// an error only for an array holding something else than strings.
pub(super) fn json_array(rest: &str) -> Result<Option<Vec<String>>, &'static str> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(NOT_STRINGS),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Ok(None),
    }
}

/// A `<<NAME` word of a RUN/COPY/ADD line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Marker {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
    pub off: usize,
}

/// The heredoc markers of a line, in order; words are split shell-wise with quotes and
/// escapes kept (docker lexes the whole line this way, always with `\`).
pub(super) fn heredoc_markers(line: &str) -> Vec<Marker> {
    raw_shell_words(line)
        .into_iter()
        .filter_map(|(off, w)| marker(&w).map(|m| Marker { off, ..m }))
        .collect()
}

/// `[fd]<<[-]word` as docker's `^(\d*)<<(-?)([^<]*)$`, the word unquoted; `None` otherwise.
pub(super) fn marker(word: &str) -> Option<Marker> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let plain = unquote(rest, false)?;
    let raw = unquote(rest, true)?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Some(Marker {
        expand: quotes(&plain) == quotes(&raw),
        name: plain,
        chomp,
        off: 0,
    })
}

/// One shell word with quotes removed (or kept, `keep_quotes`) and `\` escapes applied;
/// `None` when it is not exactly one word or a quote is left open.
fn unquote(s: &str, keep_quotes: bool) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                if keep_quotes {
                    out.push(c);
                }
                loop {
                    let d = chars.next()?;
                    if d == c {
                        break;
                    }
                    if c == '"' && d == '\\' && matches!(chars.peek(), Some('"' | '$' | '\\')) {
                        out.push(chars.next()?);
                        continue;
                    }
                    out.push(d);
                }
                if keep_quotes {
                    out.push(c);
                }
            }
            '\\' => {
                if let Some(d) = chars.next() {
                    out.push(d);
                }
            }
            c if c.is_whitespace() => return None,
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Shell words with quotes and escapes left in; empty when a quote is left open (docker's
/// lexer then fails and finds no heredoc).
fn raw_shell_words(line: &str) -> Vec<(usize, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut start = None;
    let mut it = line.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                words.push((s, std::mem::take(&mut word)));
            }
            continue;
        }
        start.get_or_insert(i);
        word.push(c);
        match c {
            '\\' => {
                if let Some((_, d)) = it.next() {
                    word.push(d);
                }
            }
            '\'' | '"' => loop {
                let Some((_, d)) = it.next() else {
                    return Vec::new();
                };
                word.push(d);
                if d == c {
                    break;
                }
                if c == '"' && d == '\\' {
                    if let Some((_, e)) = it.next() {
                        word.push(e);
                    }
                }
            },
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, word));
    }
    words
}
