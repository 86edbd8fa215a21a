use super::*;
use crate::image::build::dockerfile::ast::{ArgDecl, Command, Healthcheck, Heredoc, Kind};

fn kinds(text: &str) -> Vec<Kind> {
    parse(text).unwrap().stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect()
}

fn one(text: &str) -> Kind {
    let mut k = kinds(&format!("FROM scratch\n{text}"));
    assert_eq!(k.len(), 1, "{k:?}");
    k.remove(0)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn shell(s: &str) -> Command {
    Command::Shell(s.into())
}

fn exec(v: &[&str]) -> Command {
    Command::Exec(v.iter().map(|s| s.to_string()).collect())
}

fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(cmd: Command) -> Kind {
    Kind::Run {
        command: cmd,
        network: None,
        heredocs: vec![],
    }
}

#[test]
fn stages_and_global_args() {
    let d = parse("ARG V=3.19\nARG A B=b\nFROM alpine:${V} AS Build\nRUN true\nfrom --platform=$BUILDPLATFORM scratch\nCOPY --from=build /a /b\n").unwrap();
    assert_eq!(
        d.global_args,
        vec![
            ArgDecl {
                name: "V".into(),
                default: Some("3.19".into())
            },
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("b".into())
            },
        ]
    );
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].base, "alpine:${V}");
    assert_eq!(d.stages[0].name.as_deref(), Some("build"));
    assert_eq!(d.stages[0].pos, Pos { line: 3, column: 1 });
    assert_eq!(d.stages[1].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(d.stages[1].name, None);
    assert_eq!(d.stages[1].pos.line, 5);
    assert_eq!(d.stages[0].instructions[0].pos, Pos { line: 4, column: 1 });
    assert_eq!(d.escape, '\\');
}

#[test]
fn from_errors() {
    assert_eq!(
        err("FROM"),
        "Dockerfile:1:1: FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a b"),
        "Dockerfile:1:6: FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a to b"),
        "Dockerfile:1:6: FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a AS 1x"),
        "Dockerfile:1:11: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
    );
    assert_eq!(err("FROM --plat=x a"), "Dockerfile:1:6: Unknown flag: plat");
    assert_eq!(
        err("FROM --platform a"),
        "Dockerfile:1:6: Missing a value on flag: platform"
    );
    let d = parse("FROM a as my-stage.1_x").unwrap();
    assert_eq!(d.stages[0].name.as_deref(), Some("my-stage.1_x"));
}

#[test]
fn before_from_and_empty() {
    assert_eq!(
        err("# c\n\nRUN x\nFROM a"),
        "Dockerfile:3:1: no build stage in current context (RUN before the first FROM)"
    );
    assert_eq!(err(""), "Dockerfile:1:1: file with no instructions");
    assert_eq!(
        err("# only\n\n"),
        "Dockerfile:2:1: file with no instructions"
    );
    assert_eq!(
        err("ARG A\n"),
        "Dockerfile:1:1: dockerfile contains no stages to build"
    );
}

#[test]
fn unknown_instruction() {
    assert_eq!(
        err("FROM a\n  FOO bar"),
        "Dockerfile:2:3: unknown instruction: FOO"
    );
    assert_eq!(
        err("FROM a\nrun[\"x\"]"),
        "Dockerfile:2:1: unknown instruction: run[\"x\"]"
    );
}

#[test]
fn case_insensitive_names() {
    assert_eq!(one("rUn echo hi"), run(shell("echo hi")));
    assert_eq!(one("Workdir /x"), Kind::Workdir("/x".into()));
}

#[test]
fn run_forms() {
    assert_eq!(one("RUN echo \"a b\"  c"), run(shell("echo \"a b\"  c")));
    assert_eq!(one("RUN [\"echo\", \"a b\"]"), run(exec(&["echo", "a b"])));
    assert_eq!(one("RUN   [ \"echo\" ]  "), run(exec(&["echo"])));
    // Not JSON: falls back to the shell form, as docker.
    assert_eq!(one("RUN [ -f x ] && y"), run(shell("[ -f x ] && y")));
    assert_eq!(one("RUN [\"a\", 'b']"), run(shell("[\"a\", 'b']")));
    assert_eq!(
        err("FROM a\nRUN [\"a\", 1]"),
        "Dockerfile:2:5: when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(
        err("FROM a\nRUN"),
        "Dockerfile:2:1: RUN requires at least one argument"
    );
    assert_eq!(
        one("RUN --network=none make"),
        Kind::Run {
            command: shell("make"),
            network: Some("none".into()),
            heredocs: vec![]
        }
    );
    assert_eq!(
        err("FROM a\nRUN --network=x y"),
        "Dockerfile:2:5: unsupported network mode \"x\""
    );
    assert_eq!(
        err("FROM a\nRUN --mount=type=cache,target=/c make"),
        "Dockerfile:2:5: RUN --mount is not supported yet"
    );
    assert_eq!(
        err("FROM a\nRUN --network=host --bogus make"),
        "Dockerfile:2:20: Unknown flag: bogus"
    );
    assert_eq!(
        err("FROM a\nRUN --network=host --network=none x"),
        "Dockerfile:2:20: Duplicate flag specified: network"
    );
    // `--` ends the flags; a later `--x` is the command's.
    assert_eq!(one("RUN -- --version"), run(shell("--version")));
    assert_eq!(one("RUN ls --all"), run(shell("ls --all")));
}

#[test]
fn flags_are_unquoted() {
    let Kind::Copy(c) = one("COPY --chown=\"a b\" --chmod='7''55' x y") else {
        panic!()
    };
    assert_eq!(c.chown.as_deref(), Some("a b"));
    assert_eq!(c.chmod.as_deref(), Some("755"));
}

#[test]
fn copy_and_add() {
    let Kind::Copy(c) = one("COPY --from=build --link a b  /dest/") else {
        panic!()
    };
    assert_eq!(c.sources, vec!["a", "b"]);
    assert_eq!(c.dest, "/dest/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert!(c.link);
    let Kind::Copy(c) = one("COPY --link=false [\"a b\", \"/d\"]") else {
        panic!()
    };
    assert_eq!(
        (c.sources, c.dest, c.link),
        (vec!["a b".to_string()], "/d".to_string(), false)
    );
    let Kind::Add(c) = one("ADD --chown=1:1 https://x/y.tgz /") else {
        panic!()
    };
    assert_eq!(c.chown.as_deref(), Some("1:1"));
    assert_eq!(
        err("FROM a\nCOPY x"),
        "Dockerfile:2:6: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        err("FROM a\nADD --from=x a b"),
        "Dockerfile:2:5: Unknown flag: from"
    );
    assert_eq!(
        err("FROM a\nADD --checksum=sha256:0 a b"),
        "Dockerfile:2:5: ADD --checksum is not supported yet"
    );
    assert_eq!(
        err("FROM a\nCOPY --link=maybe a b"),
        "Dockerfile:2:6: Expecting boolean value for flag link, not: maybe"
    );
    assert_eq!(
        err("FROM a\nCOPY --link= a b"),
        "Dockerfile:2:6: Missing a value on flag: link"
    );
}

#[test]
fn env_and_label() {
    assert_eq!(
        one("ENV A=1 B=\"two words\" C=x\\ y D="),
        Kind::Env(kv(&[
            ("A", "1"),
            ("B", "\"two words\""),
            ("C", "x\\ y"),
            ("D", "")
        ]))
    );
    assert_eq!(one("ENV A  b c  d"), Kind::Env(kv(&[("A", "b c  d")])));
    assert_eq!(
        one("LABEL \"com.x\"=\"a b\" v=1"),
        Kind::Label(kv(&[("\"com.x\"", "\"a b\""), ("v", "1")]))
    );
    assert_eq!(
        one("LABEL maintainer me"),
        Kind::Label(kv(&[("maintainer", "me")]))
    );
    assert_eq!(
        err("FROM a\nENV"),
        "Dockerfile:2:1: ENV requires at least one argument"
    );
    assert_eq!(
        err("FROM a\nENV A"),
        "Dockerfile:2:5: ENV must have two arguments"
    );
    assert_eq!(
        err("FROM a\nENV =x"),
        "Dockerfile:2:5: ENV names can not be blank"
    );
    assert_eq!(
        err("FROM a\nENV A=1 B"),
        "Dockerfile:2:9: Syntax error - can't find = in \"B\". Must be of the form: name=value"
    );
    assert_eq!(
        err("FROM a\nLABEL x"),
        "Dockerfile:2:7: LABEL must have two arguments"
    );
}

#[test]
fn arg() {
    assert_eq!(
        one("ARG A B=\"x y\" C="),
        Kind::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("\"x y\"".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some(String::new())
            },
        ])
    );
    assert_eq!(
        err("FROM a\nARG"),
        "Dockerfile:2:1: ARG requires at least one argument"
    );
    assert_eq!(
        err("FROM a\nARG =v"),
        "Dockerfile:2:5: ARG names can not be blank"
    );
}

#[test]
fn simple_instructions() {
    assert_eq!(one("WORKDIR /a b"), Kind::Workdir("/a b".into()));
    assert_eq!(one("USER app:app"), Kind::User("app:app".into()));
    assert_eq!(
        one("STOPSIGNAL SIGKILL"),
        Kind::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        one("MAINTAINER Me <me@x>"),
        Kind::Maintainer("Me <me@x>".into())
    );
    assert_eq!(
        err("FROM a\nWORKDIR"),
        "Dockerfile:2:1: WORKDIR requires exactly one argument"
    );
    assert_eq!(
        err("FROM a\nUSER  "),
        "Dockerfile:2:1: USER requires exactly one argument"
    );
    assert_eq!(
        err("FROM a\nUSER --x=1 a"),
        "Dockerfile:2:6: Unknown flag: x"
    );
}

#[test]
fn cmd_entrypoint() {
    assert_eq!(one("CMD [\"a\",\"b\"]"), Kind::Cmd(exec(&["a", "b"])));
    assert_eq!(one("CMD echo $HOME"), Kind::Cmd(shell("echo $HOME")));
    assert_eq!(
        one("ENTRYPOINT [\"/init\"]"),
        Kind::Entrypoint(exec(&["/init"]))
    );
    assert_eq!(one("ENTRYPOINT"), Kind::Entrypoint(exec(&[])));
    assert_eq!(one("CMD []"), Kind::Cmd(exec(&[])));
    // As docker: a leading `--word` is a flag of the instruction.
    assert_eq!(
        err("FROM a\nCMD --version"),
        "Dockerfile:2:5: Unknown flag: version"
    );
}

#[test]
fn expose_volume() {
    assert_eq!(
        one("EXPOSE 80/tcp  443 ${P}"),
        Kind::Expose(vec!["80/tcp".into(), "443".into(), "${P}".into()])
    );
    assert_eq!(
        one("VOLUME /a /b"),
        Kind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        one("VOLUME [\"/a b\", \"/c\"]"),
        Kind::Volume(vec!["/a b".into(), "/c".into()])
    );
    assert_eq!(
        err("FROM a\nEXPOSE"),
        "Dockerfile:2:1: EXPOSE requires at least one argument"
    );
    assert_eq!(
        err("FROM a\nVOLUME [\" \"]"),
        "Dockerfile:2:8: VOLUME specified can not be an empty string"
    );
    assert_eq!(
        err("FROM a\nVOLUME []"),
        "Dockerfile:2:1: VOLUME requires at least one argument"
    );
}

#[test]
fn shell_instruction() {
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-c\"]"),
        Kind::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert_eq!(
        err("FROM a\nSHELL /bin/bash -c"),
        "Dockerfile:2:7: SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        err("FROM a\nSHELL []"),
        "Dockerfile:2:1: SHELL requires at least one argument"
    );
    assert_eq!(
        err("FROM a\nSHELL"),
        "Dockerfile:2:1: SHELL requires at least one argument"
    );
}

#[test]
fn healthcheck() {
    assert_eq!(one("HEALTHCHECK NONE"), Kind::Healthcheck(None));
    assert_eq!(
        one("HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --start-interval=2s --retries=3 CMD curl -f http://x/ || exit 1"),
        Kind::Healthcheck(Some(Healthcheck {
            test: vec!["CMD-SHELL".into(), "curl -f http://x/ || exit 1".into()],
            interval: Some("5m".into()),
            timeout: Some("3s".into()),
            start_period: Some("1m30s".into()),
            start_interval: Some("2s".into()),
            retries: Some(3),
        }))
    );
    assert_eq!(
        one("HEALTHCHECK cmd [\"/check\", \"-q\"]"),
        Kind::Healthcheck(Some(Healthcheck {
            test: vec!["CMD".into(), "/check".into(), "-q".into()],
            ..Default::default()
        }))
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK"),
        "Dockerfile:2:1: HEALTHCHECK requires at least one argument"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK NONE x"),
        "Dockerfile:2:18: HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK RUN x"),
        "Dockerfile:2:13: Unknown type \"RUN\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK CMD"),
        "Dockerfile:2:13: Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK --interval=5 CMD x"),
        "Dockerfile:2:13: time: invalid duration \"5\""
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK --timeout=10us CMD x"),
        "Dockerfile:2:13: Interval \"timeout\" cannot be less than 1ms"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK --retries=0 CMD x"),
        "Dockerfile:2:13: --retries must be at least 1 (not 0)"
    );
    assert_eq!(
        err("FROM a\nHEALTHCHECK --bad=1 CMD x"),
        "Dockerfile:2:13: Unknown flag: bad"
    );
}

#[test]
fn onbuild() {
    assert_eq!(
        one("ONBUILD RUN echo  hi"),
        Kind::Onbuild("RUN echo  hi".into())
    );
    assert_eq!(
        one("onbuild add . /src"),
        Kind::Onbuild("add . /src".into())
    );
    assert_eq!(
        err("FROM a\nONBUILD ONBUILD RUN x"),
        "Dockerfile:2:9: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        err("FROM a\nONBUILD FROM x"),
        "Dockerfile:2:9: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("FROM a\nONBUILD maintainer x"),
        "Dockerfile:2:9: MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("FROM a\nONBUILD"),
        "Dockerfile:2:1: ONBUILD requires at least one argument"
    );
    // The trigger itself is checked, with positions in the ONBUILD line.
    assert_eq!(
        err("FROM a\nONBUILD COPY --bad=1 a b"),
        "Dockerfile:2:14: Unknown flag: bad"
    );
    assert_eq!(
        err("FROM a\nONBUILD BOGUS x"),
        "Dockerfile:2:9: unknown instruction: BOGUS"
    );
}

#[test]
fn onbuild_heredoc_expression() {
    assert_eq!(
        one("ONBUILD RUN <<EOF\necho hi\nEOF"),
        Kind::Onbuild("RUN <<EOF\necho hi\nEOF".into())
    );
    let t = parse_triggers(&["RUN <<EOF\necho hi\nEOF".into(), "ENV A=b".into()]).unwrap();
    assert_eq!(t.len(), 2);
    let Kind::Run { heredocs, .. } = &t[0].kind else {
        panic!()
    };
    assert_eq!(heredocs[0].body, "echo hi\n");
    assert_eq!(t[1].kind, Kind::Env(kv(&[("A", "b")])));
    assert!(parse_triggers(&["FROM x".into()]).is_err());
}

#[test]
fn directives() {
    let d =
        parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN a `\n  b\nRUN c\\d").unwrap();
    assert_eq!(d.escape, '`');
    let k: Vec<_> = d.stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect();
    assert_eq!(k, vec![run(shell("a   b")), run(shell("c\\d"))]);
    let d = parse("#ESCAPE = \\ \nFROM a").unwrap();
    assert_eq!(d.escape, '\\');
    // After a comment, an empty line or an instruction, `# escape=` is only a comment.
    for text in [
        "# hi\n# escape=`\nFROM a",
        "\n# escape=`\nFROM a",
        "FROM a\n# escape=`",
    ] {
        assert_eq!(parse(text).unwrap().escape, '\\', "{text:?}");
    }
    // An unknown directive is a comment, and ends the directives.
    assert_eq!(parse("# foo=bar\n# escape=`\nFROM a").unwrap().escape, '\\');
    assert_eq!(
        err("# escape=x\nFROM a"),
        "Dockerfile:1:1: invalid escape token 'x' does not match ` or \\"
    );
    assert_eq!(
        err("# escape=`\n # escape=`\nFROM a"),
        "Dockerfile:2:2: only one escape parser directive can be used"
    );
    assert_eq!(
        err("# syntax=a\n# syntax=b\nFROM a"),
        "Dockerfile:2:1: only one syntax parser directive can be used"
    );
    // A BOM before the directives is skipped.
    assert_eq!(parse("\u{feff}# escape=`\nFROM a").unwrap().escape, '`');
}

#[test]
fn continuations() {
    // Continuation lines keep their indentation, the escape and blanks after it go.
    assert_eq!(one("RUN a \\\n    b \\  \n\tc"), run(shell("a     b \tc")));
    // Comments and empty lines inside a continuation are dropped.
    assert_eq!(one("RUN a \\\n# c1\n  # c2\n\n   \nb"), run(shell("a b")));
    // An escaped escape at the end does not continue the line.
    assert_eq!(
        kinds("FROM x\nRUN a \\\\\nRUN b"),
        vec![run(shell("a \\\\")), run(shell("b"))]
    );
    // A lone escape continues.
    assert_eq!(one("RUN a\\\n\\\nb"), run(shell("ab")));
    // At the end of the file, the line stands as it is.
    assert_eq!(one("RUN a \\"), run(shell("a")));
    // Continued instruction name and flags.
    let Kind::Copy(c) = one("CO\\\nPY --fr\\\nom=x a \\\n b") else {
        panic!()
    };
    assert_eq!(
        (c.from.as_deref(), c.sources, c.dest),
        (Some("x"), vec!["a".to_string()], "b".to_string())
    );
    // CRLF line endings.
    assert_eq!(
        kinds("FROM x\r\nRUN a \\\r\n b\r\nRUN c\r\n"),
        vec![run(shell("a  b")), run(shell("c"))]
    );
    // `#` inside an instruction is not a comment.
    assert_eq!(one("RUN echo # hi"), run(shell("echo # hi")));
}

#[test]
fn original_and_positions() {
    let d = parse("FROM a\n\n  RUN   echo \\\n   hi  \nENV A=1").unwrap();
    let i = &d.stages[0].instructions;
    assert_eq!(i[0].original, "RUN   echo    hi");
    assert_eq!(i[0].pos, Pos { line: 3, column: 3 });
    assert_eq!(i[1].pos, Pos { line: 5, column: 1 });
    // An error on a continuation line points there.
    assert_eq!(
        err("FROM a\nRUN --network=host \\\n  --nope x"),
        "Dockerfile:3:3: Unknown flag: nope"
    );
    assert_eq!(
        err("FROM a\nENV A=1 \\\n  B"),
        "Dockerfile:3:3: Syntax error - can't find = in \"B\". Must be of the form: name=value"
    );
}

#[test]
fn error_file_name() {
    let e = parse("FROM a\nBAD")
        .unwrap_err()
        .with_file("build/Containerfile");
    assert_eq!(
        e.to_string(),
        "build/Containerfile:2:1: unknown instruction: BAD"
    );
    assert_eq!(e.pos(), Pos { line: 2, column: 1 });
}

fn heredoc(name: &str, body: &str, expand: bool, chomp: bool) -> Heredoc {
    Heredoc {
        name: name.into(),
        body: body.into(),
        expand,
        chomp_tabs: chomp,
    }
}

#[test]
fn run_heredocs() {
    let k = kinds("FROM a\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\nRUN true");
    assert_eq!(
        k[0],
        Kind::Run {
            command: shell("<<EOF"),
            network: None,
            heredocs: vec![heredoc(
                "EOF",
                "#!/usr/bin/env python3\nprint(1)\n",
                true,
                false
            )],
        }
    );
    assert_eq!(k[1], run(shell("true")));
    // Two heredocs on a line, quoted (no expansion) and chomped.
    let Kind::Run {
        heredocs, command, ..
    } = one("RUN cat <<'A' <<-\"B\" > /f\n$x\nA\n\t\tb\n\tB")
    else {
        panic!()
    };
    assert_eq!(command, shell("cat <<'A' <<-\"B\" > /f"));
    assert_eq!(
        heredocs,
        vec![
            heredoc("A", "$x\n", false, false),
            heredoc("B", "\t\tb\n", false, true)
        ]
    );
    assert_eq!(heredocs[1].content(), "b\n");
    assert_eq!(heredocs[0].content(), "$x\n");
    // Partly quoted delimiters also turn expansion off; a file descriptor may lead.
    let Kind::Run { heredocs, .. } = one("RUN 3<<E\"O\"F cat\nx\nEOF") else {
        panic!()
    };
    assert_eq!(heredocs, vec![heredoc("EOF", "x\n", false, false)]);
    // Body lines are kept verbatim: comments, blank lines, trailing escapes, CRLF.
    let Kind::Run { heredocs, .. } = one("RUN <<EOF\n# not a comment\n\nline \\\r\nEOF\r\n") else {
        panic!()
    };
    assert_eq!(heredocs[0].body, "# not a comment\n\nline \\\r\n");
    // The terminator must be the whole line (without `-`, indentation counts).
    let Kind::Run { heredocs, .. } = one("RUN <<EOF\n EOF\nEOFX\nEOF") else {
        panic!()
    };
    assert_eq!(heredocs[0].body, " EOF\nEOFX\n");
    // A heredoc after a continuation.
    let Kind::Run {
        heredocs, command, ..
    } = one("RUN python3 \\\n  <<EOF\nprint(2)\nEOF")
    else {
        panic!()
    };
    assert_eq!(command, shell("python3   <<EOF"));
    assert_eq!(heredocs[0].body, "print(2)\n");
    // No heredoc: JSON form, `<<` inside a word, a bare `<<`.
    assert_eq!(
        one("RUN [\"cat\", \"<<EOF\"]"),
        run(exec(&["cat", "<<EOF"]))
    );
    assert_eq!(one("RUN echo a<<b"), run(shell("echo a<<b")));
    assert_eq!(one("RUN echo << x"), run(shell("echo << x")));
    // Only RUN, COPY and ADD take heredocs.
    assert_eq!(
        err("FROM a\nCMD cat <<EOF\nx\nEOF"),
        "Dockerfile:3:1: unknown instruction: x"
    );
}

#[test]
fn copy_heredocs() {
    let Kind::Copy(c) = one("COPY --chmod=755 <<EOF <<-'two' /dest/\necho $A\nEOF\n\tx\n\ttwo")
    else {
        panic!()
    };
    assert_eq!(c.sources, vec!["<<EOF", "<<two"]);
    assert_eq!(c.dest, "/dest/");
    assert_eq!(
        c.heredocs,
        vec![
            heredoc("EOF", "echo $A\n", true, false),
            heredoc("two", "\tx\n", false, true)
        ]
    );
    assert_eq!(
        err("FROM a\nCOPY a <<EOF\nx\nEOF"),
        "Dockerfile:2:8: COPY cannot accept a heredoc as a destination"
    );
}

#[test]
fn heredoc_errors() {
    assert_eq!(
        err("FROM a\nRUN cat <<EOF\nno end\n"),
        "Dockerfile:2:9: unterminated heredoc EOF"
    );
    assert_eq!(
        err("FROM a\nRUN cat <<A <<B\nA\nb"),
        "Dockerfile:2:13: unterminated heredoc B"
    );
}
