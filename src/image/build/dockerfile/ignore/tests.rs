use super::*;

fn m(text: &str) -> Matcher {
    Matcher::parse(text).unwrap()
}

/// patternmatcher's `TestMatches` table (trailing `/` on paths is cleaned away here).
#[test]
fn patternmatcher_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "file/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/**", "dir/file", true),
        ("**/**", "dir/file/", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/file/", true),
        ("dir/**", "dir/dir2/file", true),
        ("dir/**", "dir/dir2/file/", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file/", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        // A matching directory takes everything beneath it.
        ("dir", "dir/a/b/c", true),
        ("d?r", "dir/a", true),
        ("*/b", "a/b/c", true),
        ("*", "a/b", true),
        ("a", "ab", false),
        ("a/b", "a", false),
        ("*.go", "a/b.go", false),
        ("\\*", "*", true),
        // A leading `**` glued to literal text is a plain suffix, as patternmatcher.
        ("**foo", "xfoo", true),
        ("**foo", "a/b/xfoo", true),
        ("**foo*", "xfoo", false),
        ("**foo*", "a/foo1", true),
        ("\\*", "a", false),
    ];
    for (pattern, path, want) in cases {
        assert_eq!(m(pattern).excluded(path), *want, "{pattern:?} on {path:?}");
    }
}

#[test]
fn file_syntax() {
    let mx = m("\u{feff}# comment\n  # not a comment: a pattern\n\n   \n/abs\n./dot/\nx/../y\n  spaced  \n!  keep\n");
    assert_eq!(
        mx.patterns(),
        [
            "# not a comment: a pattern",
            "abs",
            "dot",
            "y",
            "spaced",
            "!keep"
        ]
    );
    assert!(mx.excluded("abs/f"));
    assert!(mx.excluded("dot"));
    assert!(mx.excluded("y"));
    assert!(!mx.excluded("x"));
    assert!(!mx.excluded("# comment"));
    assert!(mx.excluded("# not a comment: a pattern"));
    assert!(m("").is_empty());
    assert!(!m("a").excluded("."));
    assert!(!m("*").excluded(""));
    // Paths are cleaned too.
    assert!(m("a/b").excluded("./a//b/"));
}

#[test]
fn exceptions() {
    let mx = m("*.md\n!README*.md\nREADME-secret.md");
    assert!(mx.excluded("CHANGES.md"));
    assert!(!mx.excluded("README.md"));
    assert!(!mx.excluded("README-x.md"));
    assert!(mx.excluded("README-secret.md"));
    assert!(!mx.excluded("docs/a.md"), "* does not cross /");

    // Everything but src, and inside src not the tests.
    let mx = m("*\n!src\nsrc/**/*_test.go\n");
    assert!(mx.excluded("Makefile"));
    assert!(mx.excluded("vendor/x/y"));
    assert!(!mx.excluded("src"));
    assert!(!mx.excluded("src/a/b.go"));
    assert!(mx.excluded("src/a/b_test.go"));
    assert!(mx.excluded("src/b_test.go"));

    // An exception re-includes a file beneath an excluded directory.
    let mx = m("docs\n!docs/keep.txt");
    assert!(mx.excluded("docs"));
    assert!(mx.excluded("docs/other.txt"));
    assert!(!mx.excluded("docs/keep.txt"));

    // docker's documented example.
    let mx = m("*/temp*\n*/*/temp*\ntemp?");
    assert!(mx.excluded("somedir/temporary.txt"));
    assert!(mx.excluded("somedir/temp"));
    assert!(mx.excluded("somedir/subdir/temporary.txt"));
    assert!(mx.excluded("tempa"));
    assert!(!mx.excluded("temp"));
    assert!(!mx.excluded("temporary.txt"));
    assert!(!mx.excluded("a/b/c/temp"));
}

#[test]
fn skipping_directories() {
    let mx = m("node_modules\n.git\nbuild\n!build/keep\n*/cache\n");
    assert!(mx.skip_dir("node_modules"));
    assert!(mx.skip_dir(".git"));
    assert!(mx.skip_dir("a/cache"));
    assert!(!mx.skip_dir("src"), "not excluded");
    assert!(!mx.skip_dir("build"), "an exception reaches inside");
    assert!(!mx.excluded("build/keep"));
    assert!(mx.excluded("build/other"));
    // A `**` exception may reach anywhere, even node_modules/x/cache/important.
    let mx = m("node_modules\n!**/cache/important");
    assert!(!mx.skip_dir("node_modules"));
    assert!(!mx.excluded("node_modules/x/cache/important"));
    assert!(mx.excluded("node_modules/x/other"));

    let mx = m("vendor\n!*/keep\n!other/x");
    assert!(!mx.skip_dir("vendor"), "`*/keep` may match vendor/keep");
    assert!(mx.skip_dir("vendor/sub"), "but nothing under vendor/sub");
    assert!(!mx.excluded("vendor/keep"));
    assert!(m("a\n!a[0-9]/x").skip_dir("a"));
    assert!(!m("a\n![a-c]/x").skip_dir("a"));
}

#[test]
fn errors() {
    assert_eq!(
        Matcher::parse("ok\n!\n").unwrap_err().to_string(),
        ".dockerignore:2: illegal exclusion pattern: \"!\""
    );
    assert_eq!(
        Matcher::parse("a\n\nb[c\n").unwrap_err().to_string(),
        ".dockerignore:3: syntax error in pattern \"b[c\""
    );
    assert!(Matcher::parse("[z-a]").is_err());
}

#[test]
fn from_file() {
    let dir = std::env::temp_dir().join(format!("strata-ignore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Matcher::from_file(&dir).unwrap().is_empty());
    std::fs::write(dir.join(".dockerignore"), "target\n!target/keep\n").unwrap();
    let mx = Matcher::from_file(&dir).unwrap();
    assert!(mx.excluded("target/debug"));
    assert!(!mx.excluded("target/keep"));
    std::fs::remove_dir_all(&dir).unwrap();
}
