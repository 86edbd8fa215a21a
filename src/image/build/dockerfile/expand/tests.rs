use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn word(w: &str, vars: &HashMap<String, String>) -> Result<String, ExpandError> {
    expand_word(w, &|n| vars.get(n).cloned(), '\\')
}

/// BuildKit's `envVarTest` table (the Unix and all-platform rows).
const ENV_VAR_TEST: &str = r#"
A|hello                    |     hello
A|he'll'o                  |     hello
A|he'llo                   |     error
A|he\'llo                  |     he'llo
A|he\\'llo                 |     error
A|abc\tdef                 |     abctdef
A|"abc\tdef"               |     abc\tdef
A|"abc\\tdef"              |     abc\tdef
A|'abc\tdef'               |     abc\tdef
A|hello\                   |     hello
A|hello\\                  |     hello\
A|"hello                   |     error
A|"hello\"                 |     error
A|"hel'lo"                 |     hel'lo
A|'hello                   |     error
A|'hello\'                 |     hello\
A|'hello\there'            |     hello\there
A|'hello\\there'           |     hello\\there
A|"''"                     |     ''
A|$.                       |     $.
A|$1                       |
A|he$1x                    |     hex
A|he$.x                    |     he$.x
U|he$pwd.                  |     he.
A|he$PWD                   |     he/home
A|he\$PWD                  |     he$PWD
A|he\\$PWD                 |     he\/home
A|"he\$PWD"                |     he$PWD
A|"he\\$PWD"               |     he\/home
A|\${}                     |     ${}
A|\${}aaa                  |     ${}aaa
A|he\${}                   |     he${}
A|he\${}xx                 |     he${}xx
A|${}                      |     error
A|${}aaa                   |     error
A|he${}                    |     error
A|he${}xx                  |     error
A|he${hi}                  |     he
A|he${hi}xx                |     hexx
A|he${PWD}                 |     he/home
A|he${.}                   |     error
A|he${XXX:-000}xx          |     he000xx
A|he${PWD:-000}xx          |     he/homexx
A|he${XXX:-$PWD}xx         |     he/homexx
A|he${XXX:-${PWD:-yyy}}xx  |     he/homexx
A|he${XXX:-${YYY:-yyy}}xx  |     heyyyxx
A|he${XXX:YYY}             |     error
A|he${XXX:+${PWD}}xx       |     hexx
A|he${PWD:+${XXX}}xx       |     hexx
A|he${PWD:+${SHELL}}xx     |     hebashxx
A|he${XXX:+000}xx          |     hexx
A|he${PWD:+000}xx          |     he000xx
A|'he${XX}'                |     he${XX}
A|"he${PWD}"               |     he/home
A|"he'$PWD'"               |     he'/home'
A|"$PWD"                   |     /home
A|'$PWD'                   |     $PWD
A|'\$PWD'                  |     \$PWD
A|'"hello"'                |     "hello"
A|he\$PWD                  |     he$PWD
A|"he\$PWD"                |     he$PWD
A|'he\$PWD'                |     he\$PWD
A|he${PWD                  |     error
A|he${PWD:=000}xx          |     error
A|he${PWD:+${PWD}:}xx      |     he/home:xx
A|he${XXX:-\$PWD:}xx       |     he$PWD:xx
A|he${XXX:-\${PWD}z}xx     |     he${PWDz}xx
A|안녕하세요                 |     안녕하세요
A|안'녕'하세요               |     안녕하세요
A|안'녕하세요                |     error
A|안녕\'하세요               |     안녕'하세요
A|안\\'녕하세요              |     error
A|안녕\t하세요               |     안녕t하세요
A|"안녕\t하세요"             |     안녕\t하세요
A|'안녕\t하세요              |     error
A|안녕하세요\                |     안녕하세요
A|안녕하세요\\               |     안녕하세요\
A|"안녕하세요                |     error
A|"안녕하세요\"              |     error
A|"안녕'하세요"              |     안녕'하세요
A|'안녕하세요                |     error
A|'안녕하세요\'              |     안녕하세요\
A|안녕$1x                    |     안녕x
A|안녕$.x                    |     안녕$.x
A|안녕$PWD                   |     안녕/home
A|안녕\$PWD                  |     안녕$PWD
A|안녕\\$PWD                 |     안녕\/home
A|안녕${}                    |     error
A|안녕${hi}xx                |     안녕xx
A|안녕${XXX:-${YYY:-yyy}}xx  |     안녕yyyxx
A|$KOREAN                    |     한국어
A|안녕$KOREAN                |     안녕한국어
A|${{aaa}                   |     error
A|${aaa}}                   |     }
A|${aaa                     |     error
A|${{aaa:-bbb}              |     error
A|${aaa:-bbb}}              |     bbb}
A|${aaa:-bbb                |     error
A|${aaa:-bbb}               |     bbb
A|${aaa:-${bbb:-ccc}}       |     ccc
A|${aaa:-bbb ${foo}         |     error
A|${aaa:-bbb {foo}          |     bbb {foo
A|${:}                      |     error
A|${:-bbb}                  |     error
A|${:+bbb}                  |     error
"#;

#[test]
fn buildkit_env_var_table() {
    let vars = env(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]);
    for row in ENV_VAR_TEST.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = row.split('|').collect();
        let (source, expected) = (cols[1].trim(), cols[2].trim());
        let got = word(source, &vars);
        if expected == "error" {
            assert!(got.is_err(), "{source:?} gave {got:?}");
        } else {
            assert_eq!(got.as_deref(), Ok(expected), "{source:?}");
        }
    }
}

#[test]
fn buildkit_words_table() {
    let mut vars = HashMap::new();
    let words = |w: &str, vars: &HashMap<String, String>| {
        expand_words(w, &|n| vars.get(n).cloned(), '\\').unwrap_or_else(|_| vec!["error".into()])
    };
    assert_eq!(words("hello", &vars), ["hello"]);
    assert_eq!(words("hello${hi}bye", &vars), ["hellobye"]);
    vars.insert("hi".to_string(), "hi".to_string());
    assert_eq!(words("hello${hi}bye", &vars), ["hellohibye"]);
    vars.insert("space".into(), "abc  def".into());
    assert_eq!(words("hello${space}bye", &vars), ["helloabc", "defbye"]);
    assert_eq!(words("hello\"${space}\"bye", &vars), ["helloabc  defbye"]);
    assert_eq!(
        words("hello \"${space}\"bye", &vars),
        ["hello", "abc  defbye"]
    );
    vars.insert("leading".into(), "  ab c".into());
    assert_eq!(words("hello${leading}def", &vars), ["hello", "ab", "cdef"]);
    assert_eq!(
        words("hello\"${leading}\" def", &vars),
        ["hello  ab c", "def"]
    );
    assert_eq!(words("hello\"${leading}\"", &vars), ["hello  ab c"]);
    assert_eq!(words("hello${leading}", &vars), ["hello", "ab", "c"]);
    vars.insert("trailing".into(), "ab c   ".into());
    assert_eq!(words("hello${trailing}", &vars), ["helloab", "c"]);
    assert_eq!(words("hello${trailing}d", &vars), ["helloab", "c", "d"]);
    assert_eq!(words("hello\"${trailing}\"d", &vars), ["helloab c   d"]);
    assert_eq!(words("hel\"lo${trailing}\"", &vars), ["helloab c   "]);
    assert_eq!(words("hello\" there  \"", &vars), ["hello there  "]);
    assert_eq!(words("hello there     ", &vars), ["hello", "there"]);
    assert_eq!(words("hello\\ there", &vars), ["hello there"]);
    assert_eq!(words("hello\" there", &vars), ["error"]);
    assert_eq!(words("hello\\\" there", &vars), ["hello\"", "there"]);
    assert_eq!(words("'' \"\" a", &vars), ["a"]);
}

type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

/// BuildKit's `TestProcessWithMatches` and `TestShellParserMandatoryEnvVars` cases.
#[test]
fn operators() {
    let cases: &[Case] = &[
        ("x ${UNUSED}", &[("DUMMY", "dummy")], Some("x ")),
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("xxx  ccc")),
        ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("xxx bbb ccc")),
        ("${FOO:-}", &[], Some("")),
        ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("aaa bbb ")),
        ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", &[("FOO", "xxx"), ("BAR", "")], Some("aaa  ")),
        ("${FOO?aaa}", &[("FOO", "xxx")], Some("xxx")),
        ("${BAR?bbb}", &[("BAR", "")], Some("")),
        ("${BAZ?ccc}", &[], None),
        ("${FOO:?aaa}", &[("FOO", "xxx")], Some("xxx")),
        ("${BAR:?bbb}", &[("BAR", "")], None),
        ("${BAZ:?}", &[], None),
        ("${FOO=aaa}", &[("FOO", "xxx")], None),
        ("${FOO=}", &[], None),
        ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", &[("FOO", "()[]{}^$.*?|\\x")], Some("x")),
        ("${FOO%%\\**}", &[("FOO", "xx**")], Some("xx")),
        ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y")),
        ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], Some("xyy")),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "")], Some("xxyy")),
        ("${FOO#}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy")),
        ("${FOO##}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO#?\\?}", &[("FOO", "???y")], Some("?y")),
        ("${ABC:-.}${FOO%x}${ABC:-.}", &[("FOO", "xxyy")], Some(".xxyy.")),
        ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], Some("a")),
        ("${FOO%}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO%y*}", &[("FOO", "xxyy")], Some("xxy")),
        ("${FOO%%y*}", &[("FOO", "xxyy")], Some("xx")),
        ("${FOO%%$BAR}", &[("FOO", "xxyy"), ("BAR", "")], Some("xxyy")),
        ("${FOO#\\x}", &[("FOO", "xxyy")], None),
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
            Some("/foo.*/*.txt - /foo..*.txt"),
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            Some("/tmp/bar.txt - /bar.txt"),
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("REPLACEMENT", "/")],
            Some("/foo/b/c.txt - /foo/c.txt"),
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[("FOO", "http://google.de"), ("NEEDLE", "http://"), ("REPLACEMENT", "https://")],
            Some("https://google.de"),
        ),
        ("${FOO//\\//\\/}", &[("FOO", "/tmp/foo.txt")], Some("\\/tmp\\/foo.txt")),
        ("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], Some("wwxxyy")),
        ("${FOO//ww}", &[("FOO", "xxyy")], None),
        ("${FOO//}", &[("FOO", "xxyy")], None),
        ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO///}", &[], Some("")),
        ("${VAR:?message here$ARG}", &[("VAR", "plain"), ("ARG", "x")], Some("plain")),
        ("${VAR?message here$ARG}", &[("VAR", ""), ("ARG", "x")], Some("")),
        (
            "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            &[("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")],
            Some("something-v1.2.3.linux-arm-v7.tar.gz"),
        ),
        (
            "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            &[("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "amd64"), ("TARGETVARIANT", "")],
            Some("something-v1.2.3.linux-amd64.tar.gz"),
        ),
    ];
    for (input, vars, expected) in cases {
        let got = word(input, &env(vars));
        match expected {
            Some(e) => assert_eq!(got.as_deref(), Ok(*e), "{input:?}"),
            None => assert!(got.is_err(), "{input:?} gave {got:?}"),
        }
    }
}

#[test]
fn error_messages() {
    let vars = env(&[("VAR", ""), ("ARG", "x")]);
    let e = word("${VAR:?message here$ARG}", &vars).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to process \"${VAR:?message here$ARG}\": VAR: message herex"
    );
    let e = word("${NOPE?message here$ARG}", &vars).unwrap_err();
    assert_eq!(e.message, "NOPE: message herex");
    assert_eq!(
        word("${VAR:?}", &vars).unwrap_err().message,
        "VAR: is not allowed to be empty"
    );
    assert_eq!(
        word("${X?}", &vars).unwrap_err().message,
        "X: is not allowed to be unset"
    );
    assert_eq!(
        word("${X", &vars).unwrap_err().message,
        "syntax error: missing '}'"
    );
    assert_eq!(
        word("${X:-a", &vars).unwrap_err().message,
        "syntax error: missing '}'"
    );
    assert_eq!(
        word("${}", &vars).unwrap_err().message,
        "syntax error: bad substitution"
    );
    assert_eq!(
        word("${X=a}", &vars).unwrap_err().message,
        "unsupported modifier (=) in substitution"
    );
    assert_eq!(
        word("${X:=a}", &vars).unwrap_err().message,
        "unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        word("${X/a", &vars).unwrap_err().message,
        "syntax error: missing '/' in ${}"
    );
    assert_eq!(
        word("'a", &vars).unwrap_err().message,
        "unexpected end of statement while looking for matching single-quote"
    );
    assert_eq!(
        word("\"a", &vars).unwrap_err().message,
        "unexpected end of statement while looking for matching double-quote"
    );
}

#[test]
fn backtick_escape() {
    let vars = env(&[("A", "1")]);
    let w = |s: &str| expand_word(s, &|n| vars.get(n).cloned(), '`');
    assert_eq!(w("c:\\dir\\$A").unwrap(), "c:\\dir\\1");
    assert_eq!(w("`$A").unwrap(), "$A");
    assert_eq!(w("\"a`\"b\"").unwrap(), "a\"b");
    assert_eq!(w("a` b").unwrap(), "a b");
    assert_eq!(
        expand_words("a` b $A", &|n| vars.get(n).cloned(), '`').unwrap(),
        ["a b", "1"]
    );
}

#[test]
fn heredoc_bodies_keep_quotes() {
    let vars = env(&[("A", "x y"), ("B", "")]);
    let got = expand_heredoc("echo \"$A\" '${A}' \\$A ${B:-d}\n", &|n| {
        vars.get(n).cloned()
    })
    .unwrap();
    assert_eq!(got, "echo \"x y\" 'x y' $A d\n");
}

#[test]
fn names_used() {
    assert_eq!(variables_used("plain", '\\'), Vec::<String>::new());
    assert_eq!(
        variables_used(
            "$A ${B:-$C} \"${D}\" '$E' \\$F ${G:+${H}} ${I?}${J#$K} ${L/$M/$N} $A",
            '\\'
        ),
        ["A", "C", "B", "D", "H", "G", "I", "K", "J", "M", "N", "L"]
    );
    assert_eq!(variables_used("`$A $B", '`'), ["B"]);
    // A syntax error still reports what came before it.
    assert_eq!(variables_used("$A ${", '\\'), ["A"]);
}
