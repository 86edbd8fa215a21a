//! `.dockerignore` for the build context: which context paths COPY and ADD never see.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::context::{clean_relative, component_match};

/// The patterns of one `.dockerignore`, in order (the last match decides).
#[derive(Clone, Debug, Default)]
pub struct Ignore {
    rules: Vec<(bool, Vec<Vec<u8>>)>,
}

impl Ignore {
    /// Parse a `.dockerignore`: one pattern a line, `#` comments, `!` exceptions, `**`.
    pub fn parse(text: &str) -> Ignore {
        let mut rules = vec![];
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (keep, pat) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let Some(clean) = clean_relative(pat) else {
                continue;
            };
            let comps = clean.iter().map(|c| c.as_bytes().to_vec()).collect();
            rules.push((keep, comps));
        }
        Ignore { rules }
    }

    /// Whether the context path `rel` is excluded: by a pattern matching it or one of its
    /// parents, unless a later `!` pattern matches it.
    pub fn excluded(&self, rel: &Path) -> bool {
        let comps: Vec<&[u8]> = rel.iter().map(OsStr::as_bytes).collect();
        if comps.is_empty() {
            return false;
        }
        let mut out = false;
        for (keep, pat) in &self.rules {
            let hit = (1..=comps.len()).any(|n| matches(pat, &comps[..n]));
            if hit {
                out = !keep;
            }
        }
        out
    }
}

fn matches(pat: &[Vec<u8>], path: &[&[u8]]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p.as_slice() == b"**" => {
            (0..=path.len()).any(|skip| matches(rest, &path[skip..]))
        }
        Some((p, rest)) => match path.split_first() {
            Some((c, more)) => component_match(p, c) && matches(rest, more),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules() {
        let i = Ignore::parse("# c\n*.log\n!keep.log\nbuild/\n**/tmp\n");
        assert!(i.excluded(Path::new("a.log")));
        assert!(!i.excluded(Path::new("keep.log")));
        assert!(i.excluded(Path::new("build/x/y")));
        assert!(i.excluded(Path::new("src/deep/tmp/f")));
        assert!(!i.excluded(Path::new("src/a.rs")));
        assert!(!i.excluded(Path::new("dir/a.log")));
    }
}
