//! Docker's variable substitution in Dockerfile words (BuildKit's `shell/lex.go`): `$VAR`, `${VAR:-w}`, quotes, escapes.

/// An expansion error, as docker words it: `failed to process "WORD": message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {message}")]
pub struct ExpandError {
    pub word: String,
    pub message: String,
}

/// One word expanded (ProcessWord): variables substituted, quotes and escapes removed,
/// spaces kept.
pub fn expand_word(
    word: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, ExpandError> {
    Lexer::new(word, vars, escape).run(word).map(|(s, _)| s)
}

/// Expanded and split into words (ProcessWords): unquoted spaces, including those coming
/// from variables' values, separate words (`EXPOSE $PORTS`).
pub fn expand_words(
    word: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(word, vars, escape).run(word).map(|(_, w)| w)
}

/// A heredoc body with expansion on (`<<EOF`, unquoted): only `$` forms and `\` escapes
/// are processed, quotes are the script's own (BuildKit's `SkipProcessQuotes`).
pub fn expand_heredoc(
    body: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut lx = Lexer::new(body, vars, '\\');
    lx.skip_quotes = true;
    lx.run(body).map(|(s, _)| s)
}

/// The variable names a word refers to, in order of first use, including those in
/// operators' words that a given set of values would not evaluate: the cache key of a
/// step depends on every build arg it may use.
pub fn variables_used(word: &str, escape: char) -> Vec<String> {
    let none = |_: &str| None;
    let mut lx = Lexer::new(word, &none, escape);
    lx.collect = true;
    let _ = lx.run(word);
    lx.used
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Fn(&str) -> Option<String>,
    skip_quotes: bool,
    /// Gathering names only: `${X?}` does not fail.
    collect: bool,
    used: Vec<String>,
}

type Res<T> = Result<T, String>;

/// Words as the shell splits them, with quoted text never split.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

impl<'a> Lexer<'a> {
    fn new(word: &str, vars: &'a dyn Fn(&str) -> Option<String>, escape: char) -> Self {
        Lexer {
            chars: word.chars().collect(),
            pos: 0,
            escape,
            vars,
            skip_quotes: false,
            collect: false,
            used: Vec::new(),
        }
    }

    fn run(&mut self, word: &str) -> Result<(String, Vec<String>), ExpandError> {
        self.until(None, false).map_err(|message| ExpandError {
            word: word.to_string(),
            message,
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += c.is_some() as usize;
        c
    }

    fn get(&mut self, name: &str) -> Option<String> {
        if !self.used.iter().any(|n| n == name) {
            self.used.push(name.to_string());
        }
        (self.vars)(name)
    }

    /// Processes up to `stop` (consumed) or the end; `raw_escapes` keeps escape characters
    /// (patterns of `#`, `%` and `/` need them).
    fn until(&mut self, stop: Option<char>, raw_escapes: bool) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            if c == '$' {
                let s = self.dollar()?;
                words.add_string(&s);
                result.push_str(&s);
            } else if !self.skip_quotes && (c == '\'' || c == '"') {
                let s = if c == '\'' {
                    self.single_quoted()?
                } else {
                    self.double_quoted()?
                };
                words.add_raw_string(&s);
                result.push_str(&s);
            } else {
                self.next();
                if c == self.escape {
                    if raw_escapes {
                        words.add_raw_char(c);
                        result.push(c);
                    }
                    let Some(d) = self.next() else { break };
                    words.add_raw_char(d);
                    result.push(d);
                } else {
                    words.add_char(c);
                    result.push(c);
                }
            }
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quoted(&mut self) -> Res<String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// Inside `"..."` the escape only escapes `"`, `$` and itself, as in the shell.
    fn double_quoted(&mut self) -> Res<String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => {
                    let s = self.dollar()?;
                    out.push_str(&s);
                }
                Some(_) => {
                    let mut c = self.next().unwrap_or_default();
                    if c == self.escape {
                        match self.peek() {
                            None => continue,
                            Some(d) if d == '"' || d == '$' || d == self.escape => {
                                c = self.next().unwrap_or_default();
                            }
                            _ => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !c.is_alphanumeric() && c != '_' {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }

    fn dollar(&mut self) -> Res<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.get(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.name();
        let Some(mut op) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut ops = op.to_string();
        let mut null_is_unset = false;
        match op {
            '}' => return Ok(self.get(&name).unwrap_or_default()),
            '/' => return self.replace(&name),
            ':' => {
                null_is_unset = true;
                op = self.next().unwrap_or_default();
                ops.push(op);
            }
            '+' | '-' | '?' | '#' | '%' => {}
            _ => return Err(format!("unsupported modifier ({ops}) in substitution")),
        }
        let (mut word, _) = self.until(Some('}'), op == '#' || op == '%').map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '}'".to_string()
            } else {
                e
            }
        })?;
        let value = self.get(&name);
        let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
        match op {
            '-' if unset => Ok(word),
            '-' => Ok(value.unwrap_or_default()),
            '+' if unset => Ok(String::new()),
            '+' => Ok(word),
            '?' if self.collect => Ok(String::new()),
            '?' if unset => {
                let default = if value.is_none() {
                    "is not allowed to be unset"
                } else {
                    "is not allowed to be empty"
                };
                let msg = if word.is_empty() { default } else { &word };
                Err(format!("{name}: {msg}"))
            }
            '?' => Ok(value.unwrap_or_default()),
            '#' | '%' => {
                let greedy = word.starts_with(op);
                if greedy {
                    word.remove(0);
                }
                let value = value.unwrap_or_default();
                let pat = Glob::new(&word)
                    .map_err(|e| format!("invalid pattern ({word}) in substitution: {e}"))?;
                Ok(if op == '#' {
                    pat.trim_prefix(&value, greedy)
                } else {
                    pat.trim_suffix(&value, greedy)
                })
            }
            _ => Err(format!("unsupported modifier ({ops}) in substitution")),
        }
    }

    /// `${VAR/pattern/replacement}` and `${VAR//pattern/replacement}` (all matches).
    fn replace(&mut self, name: &str) -> Res<String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let (pattern, _) = self.until(Some('/'), true).map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '/' in ${}".to_string()
            } else {
                e
            }
        })?;
        let (replacement, _) = self.until(Some('}'), true).map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '}'".to_string()
            } else {
                e
            }
        })?;
        let value = self.get(name).unwrap_or_default();
        let pat = Glob::new(&pattern)
            .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
        Ok(pat.replace(&value, &replacement, all))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Lit(char),
    Any,
    Star,
}

/// A `${VAR#pattern}` pattern: `*`, `?` and `\`-escaped literals (no brackets, as BuildKit).
struct Glob(Vec<Tok>);

impl Glob {
    fn new(pattern: &str) -> Result<Glob, String> {
        let mut toks = Vec::new();
        let mut it = pattern.chars().peekable();
        while let Some(c) = it.next() {
            toks.push(match c {
                '*' => Tok::Star,
                '?' => Tok::Any,
                // `\}` and `\/` only kept `}` and `/` from ending the `${}`.
                '\\' if matches!(it.peek(), Some('}' | '/')) => continue,
                '\\' => match it.next() {
                    Some(d @ ('*' | '?' | '\\')) => Tok::Lit(d),
                    Some(d) => return Err(format!("invalid escape '\\{d}'")),
                    None => return Err("invalid escape '\\'".into()),
                },
                c => Tok::Lit(c),
            });
        }
        Ok(Glob(toks))
    }

    fn matches(&self, s: &[char]) -> bool {
        fn go(t: &[Tok], s: &[char]) -> bool {
            match t.split_first() {
                None => s.is_empty(),
                Some((Tok::Star, rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
                Some((Tok::Any, rest)) => !s.is_empty() && go(rest, &s[1..]),
                Some((Tok::Lit(c), rest)) => s.first() == Some(c) && go(rest, &s[1..]),
            }
        }
        go(&self.0, s)
    }

    fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut lens: Vec<usize> = (0..=v.len()).collect();
        if longest {
            lens.reverse();
        }
        match lens.into_iter().find(|&n| self.matches(&v[..n])) {
            Some(n) => v[n..].iter().collect(),
            None => value.to_string(),
        }
    }

    fn trim_suffix(&self, value: &str, longest: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut starts: Vec<usize> = (0..=v.len()).rev().collect();
        if longest {
            starts.reverse();
        }
        match starts.into_iter().find(|&n| self.matches(&v[n..])) {
            Some(n) => v[..n].iter().collect(),
            None => value.to_string(),
        }
    }

    /// The leftmost, longest match (as bash), once or everywhere.
    fn replace(&self, value: &str, with: &str, all: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i <= v.len() {
            if !replaced || all {
                if let Some(end) = (i..=v.len()).rev().find(|&e| self.matches(&v[i..e])) {
                    out.push_str(with);
                    replaced = true;
                    if end > i {
                        i = end;
                        continue;
                    }
                }
            }
            if i < v.len() {
                out.push(v[i]);
            }
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests;
