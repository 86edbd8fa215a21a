//! Metadata-only instructions (ENV, LABEL, CMD, ENTRYPOINT, USER, EXPOSE, VOLUME,
//! STOPSIGNAL, SHELL, HEALTHCHECK, ONBUILD, MAINTAINER) applied to the image config, and
//! the `created_by` text BuildKit writes for every instruction, so `history` reads like
//! `docker history`.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::dockerfile::ast::{Command, Healthcheck, Kind};
use super::vars::Scope;
use crate::image::config::{container_config, object_at, port, set_env};

/// The shell of shell-form commands: the image's SHELL, else `/bin/sh -c`.
pub fn shell(cfg: &Value) -> Vec<String> {
    match cfg["config"]["Shell"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        _ => vec!["/bin/sh".into(), "-c".into()],
    }
}

/// A command as the image config and the runtime get it.
pub fn argv(cfg: &Value, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = shell(cfg);
            v.push(s.clone());
            v
        }
    }
}

/// Go's `%q` of a `[]string`, as BuildKit prints CMD and ENTRYPOINT: `["a" "b"]`.
fn go_quoted(v: &[String]) -> String {
    let q: Vec<String> = v.iter().map(|s| json!(s).to_string()).collect();
    format!("[{}]", q.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]`.
fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// `RUN` as BuildKit records it: the stage's build args (`|2 A=1 B=2`), then the command.
pub fn run_created_by(args: &[(String, String)], argv: &[String]) -> String {
    let mut parts = vec![];
    if !args.is_empty() {
        parts.push(format!("|{}", args.len()));
        parts.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(argv.iter().cloned());
    format!("RUN {} # buildkit", parts.join(" "))
}

/// What a metadata instruction did: its history text.
pub struct Applied {
    pub created_by: String,
}

/// Whether CMD was set in this stage (ENTRYPOINT resets an inherited CMD, as docker does).
#[derive(Default)]
pub struct StageFlags {
    pub cmd_set: bool,
}

/// Apply one metadata instruction; words are expanded with `scope` where docker expands
/// them (not in CMD, ENTRYPOINT, SHELL, HEALTHCHECK or ONBUILD).
pub fn apply(
    cfg: &mut Value,
    kind: &Kind,
    scope: &Scope<'_>,
    escape: char,
    flags: &mut StageFlags,
) -> Result<Applied> {
    let x = |w: &str| scope.expand(w, escape);
    let created_by = match kind {
        Kind::Env(pairs) => {
            let mut text = vec![];
            for (k, v) in pairs {
                let (k, v) = (x(k)?, x(v)?);
                set_env(container_config(cfg), &k, &v);
                text.push(format!("{k}={v}"));
            }
            format!("ENV {}", text.join(" "))
        }
        Kind::Label(pairs) => {
            let mut text = vec![];
            for (k, v) in pairs {
                let (k, v) = (x(k)?, x(v)?);
                object_at(container_config(cfg), "Labels").insert(k.clone(), json!(v));
                text.push(format!("{k}={v}"));
            }
            format!("LABEL {}", text.join(" "))
        }
        Kind::Expose(ports) => {
            let mut all = vec![];
            for p in ports {
                let p = x(p)?;
                for p in expose_ports(&p).with_context(|| format!("EXPOSE {p}"))? {
                    object_at(container_config(cfg), "ExposedPorts").insert(p.clone(), json!({}));
                    all.push(p);
                }
            }
            // BuildKit prints its list of ports with %v, in the order given.
            format!("EXPOSE [{}]", all.join(" "))
        }
        Kind::Volume(vols) => {
            let mut all = vec![];
            for v in vols {
                let v = x(v)?;
                if v.is_empty() {
                    bail!("VOLUME specified can not be an empty string");
                }
                object_at(container_config(cfg), "Volumes").insert(v.clone(), json!({}));
                all.push(v);
            }
            format!("VOLUME {}", go_list(&all))
        }
        Kind::User(u) => {
            let u = x(u)?;
            container_config(cfg).insert("User".into(), json!(u));
            format!("USER {u}")
        }
        Kind::StopSignal(s) => {
            let s = x(s)?;
            container_config(cfg).insert("StopSignal".into(), json!(s));
            format!("STOPSIGNAL {s}")
        }
        Kind::Cmd(c) => {
            let v = argv(cfg, c);
            container_config(cfg).insert("Cmd".into(), json!(v));
            flags.cmd_set = true;
            format!("CMD {}", go_quoted(&v))
        }
        Kind::Entrypoint(c) => {
            let v = argv(cfg, c);
            let cc = container_config(cfg);
            cc.insert("Entrypoint".into(), json!(v));
            if !flags.cmd_set {
                cc.remove("Cmd");
            }
            format!("ENTRYPOINT {}", go_quoted(&v))
        }
        Kind::Shell(v) => {
            if v.is_empty() {
                bail!("SHELL requires at least one argument");
            }
            container_config(cfg).insert("Shell".into(), json!(v));
            format!("SHELL {}", go_list(v))
        }
        Kind::Healthcheck(h) => {
            let v = healthcheck(h.as_ref())?;
            let text = healthcheck_text(&v);
            container_config(cfg).insert("Healthcheck".into(), v);
            text
        }
        Kind::Onbuild(t) => {
            let cc = container_config(cfg);
            match cc.get_mut("OnBuild").and_then(Value::as_array_mut) {
                Some(a) => a.push(json!(t)),
                None => {
                    cc.insert("OnBuild".into(), json!([t]));
                }
            }
            format!("ONBUILD {t}")
        }
        Kind::Maintainer(m) => {
            let m = x(m)?;
            cfg["author"] = json!(m);
            format!("MAINTAINER {m}")
        }
        other => bail!("not a metadata instruction: {other:?}"),
    };
    Ok(Applied { created_by })
}

/// The config's `Healthcheck`: durations in nanoseconds, as docker stores them.
fn healthcheck(h: Option<&Healthcheck>) -> Result<Value> {
    let Some(h) = h else {
        return Ok(json!({"Test": ["NONE"]}));
    };
    let mut v = json!({ "Test": h.test });
    for (key, d) in [
        ("Interval", &h.interval),
        ("Timeout", &h.timeout),
        ("StartPeriod", &h.start_period),
        ("StartInterval", &h.start_interval),
    ] {
        if let Some(d) = d {
            v[key] = json!(duration_ns(d).with_context(|| format!("HEALTHCHECK {key}"))?);
        }
    }
    if let Some(r) = h.retries {
        v["Retries"] = json!(r);
    }
    Ok(v)
}

// BuildKit prints the config's struct with %+v: `{Test:[CMD-SHELL x] Interval:30s
// Timeout:0s StartPeriod:0s StartInterval:0s Retries:3}` (NONE included).
fn healthcheck_text(v: &Value) -> String {
    let test: Vec<&str> = v["Test"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
        .collect();
    let d = |k: &str| go_duration(v[k].as_i64().unwrap_or(0));
    format!(
        "HEALTHCHECK {{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        test.join(" "),
        d("Interval"),
        d("Timeout"),
        d("StartPeriod"),
        d("StartInterval"),
        v["Retries"].as_u64().unwrap_or(0)
    )
}

/// The ports one EXPOSE word names, as BuildKit parses them: `[[ip:]host:]port[/proto]`,
/// the protocol lower-cased, a range expanded.
fn expose_ports(word: &str) -> Result<Vec<String>> {
    let container = word.rsplit(':').next().unwrap_or(word);
    let (num, proto) = container.split_once('/').unwrap_or((container, "tcp"));
    let proto = match proto.to_ascii_lowercase() {
        p if p.is_empty() => "tcp".to_string(),
        p => p,
    };
    let canon = port(&format!("{num}/{proto}"))?;
    let (num, proto) = canon.split_once('/').expect("port() gives NUM/PROTO");
    let (a, b) = num.split_once('-').unwrap_or((num, num));
    let (a, b): (u16, u16) = (a.parse()?, b.parse()?);
    if b < a {
        bail!("invalid range specified for port: {num}");
    }
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// A Go duration (`1m30s`, `500ms`, `2h`) in nanoseconds.
pub fn duration_ns(s: &str) -> Result<i64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        bail!("invalid duration {s:?}");
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .with_context(|| format!("invalid duration {s:?}: missing unit"))?;
        let num: f64 = rest[..n]
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => bail!("invalid duration {s:?}: unknown unit {other:?}"),
        };
        total += num * scale;
        rest = &rest[u..];
    }
    Ok(total as i64)
}

/// Go's `time.Duration.String()` for whole units (`1m30s`, `0s`, `500ms`).
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return match ns {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let s = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{:09}", frac);
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::build::vars::Args;

    fn run(kinds: &[Kind]) -> (Value, Vec<String>) {
        let mut cfg = crate::image::config::empty("t");
        let args = Args::default();
        let mut flags = StageFlags::default();
        let mut texts = vec![];
        for k in kinds {
            let scope = Scope::new(&cfg, &args);
            texts.push(
                apply(&mut cfg, k, &scope, '\\', &mut flags)
                    .unwrap()
                    .created_by,
            );
        }
        (cfg, texts)
    }

    #[test]
    fn history_text_is_buildkits() {
        let (cfg, t) = run(&[
            Kind::Env(vec![("A".into(), "b".into()), ("C".into(), "$A-x".into())]),
            Kind::Cmd(Command::Shell("echo hi".into())),
            Kind::Expose(vec!["80".into(), "53/udp".into()]),
            Kind::Volume(vec!["/data".into()]),
            Kind::Shell(vec!["/bin/ash".into(), "-c".into()]),
            Kind::Entrypoint(Command::Exec(vec!["/app".into()])),
            Kind::Healthcheck(Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: Some("30s".into()),
                retries: Some(3),
                ..Default::default()
            })),
        ]);
        // Words of one ENV see the env from before it, as in docker.
        assert_eq!(t[0], "ENV A=b C=-x");
        assert_eq!(t[1], r#"CMD ["/bin/sh" "-c" "echo hi"]"#);
        assert_eq!(t[2], "EXPOSE [80/tcp 53/udp]");
        assert_eq!(t[3], "VOLUME [/data]");
        assert_eq!(t[4], "SHELL [/bin/ash -c]");
        assert_eq!(t[5], r#"ENTRYPOINT ["/app"]"#);
        assert_eq!(
            t[6],
            "HEALTHCHECK {Test:[CMD-SHELL true] Interval:30s Timeout:0s StartPeriod:0s \
             StartInterval:0s Retries:3}"
        );
        let c = &cfg["config"];
        assert_eq!(c["Env"], json!(["A=b", "C=-x"]));
        // CMD was set in this stage: ENTRYPOINT keeps it.
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Healthcheck"]["Interval"], json!(30_000_000_000i64));
        assert_eq!(
            run_created_by(
                &[("V".into(), "1".into())],
                &["/bin/sh".into(), "-c".into(), "x".into()]
            ),
            "RUN |1 V=1 /bin/sh -c x # buildkit"
        );
    }

    #[test]
    fn entrypoint_resets_an_inherited_cmd() {
        let mut cfg = crate::image::config::empty("t");
        cfg["config"]["Cmd"] = json!(["sh"]);
        let args = Args::default();
        let scope = Scope::new(&cfg.clone(), &args);
        let k = Kind::Entrypoint(Command::Exec(vec!["/app".into()]));
        apply(&mut cfg, &k, &scope, '\\', &mut StageFlags::default()).unwrap();
        assert!(cfg["config"].get("Cmd").is_none());
    }

    #[test]
    fn expose_and_healthcheck_none_read_as_buildkit_writes_them() {
        let (cfg, t) = run(&[
            Kind::Expose(vec!["8000-8002/UDP".into(), "127.0.0.1:80:8080".into()]),
            Kind::Healthcheck(None),
        ]);
        assert_eq!(t[0], "EXPOSE [8000/udp 8001/udp 8002/udp 8080/tcp]");
        assert_eq!(
            cfg["config"]["ExposedPorts"],
            json!({"8000/udp": {}, "8001/udp": {}, "8002/udp": {}, "8080/tcp": {}})
        );
        assert_eq!(
            t[1],
            "HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s \
             Retries:0}"
        );
        assert!(expose_ports("9-8").is_err());
        assert!(expose_ports("80/icmp").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert!(duration_ns("5").is_err());
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(0), "0s");
    }
}
