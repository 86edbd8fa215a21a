//! `--log`, `--log-format text|json`, `--debug`: tracing events written in logrus's shape,
//! which is what containerd's shim parses out of the runtime's log file.

use std::fmt;
use std::fs::OpenOptions;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

struct Logrus {
    json: bool,
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        if f.name() == "message" {
            self.msg = format!("{v:?}");
        } else {
            self.extra.push((f.name().to_string(), format!("{v:?}")));
        }
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            self.msg = v.to_string();
        } else {
            self.extra.push((f.name().to_string(), v.to_string()));
        }
    }
}

impl<S, N> FormatEvent<S, N> for Logrus
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        e: &Event<'_>,
    ) -> fmt::Result {
        let mut f = Fields::default();
        e.record(&mut f);
        let level = match *e.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let time = crate::timefmt::now_rfc3339_nanos();
        if self.json {
            let mut m = serde_json::Map::new();
            for (k, v) in f.extra {
                m.insert(k, v.into());
            }
            m.insert("level".into(), level.into());
            m.insert("msg".into(), f.msg.into());
            m.insert("time".into(), time.into());
            writeln!(w, "{}", serde_json::Value::Object(m))
        } else {
            write!(w, "time={time:?} level={level} msg={:?}", f.msg)?;
            for (k, v) in f.extra {
                write!(w, " {k}={v:?}")?;
            }
            writeln!(w)
        }
    }
}

/// Install the logger. Returns true if log lines go to a file (so errors must also be
/// printed on stderr for the user).
pub fn init(log: Option<&std::path::Path>, format: LogFormat, debug: bool) -> anyhow::Result<bool> {
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let ev = Logrus {
        json: format == LogFormat::Json,
    };
    match log {
        Some(p) => {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("--log {}: {e}", p.display()))?;
            let sub = tracing_subscriber::fmt()
                .with_max_level(level)
                .event_format(ev)
                .with_writer(Mutex::new(f))
                .finish();
            let _ = tracing::subscriber::set_global_default(sub);
            Ok(true)
        }
        None if debug => {
            let sub = tracing_subscriber::fmt()
                .with_max_level(level)
                .event_format(ev)
                .with_writer(std::io::stderr)
                .finish();
            let _ = tracing::subscriber::set_global_default(sub);
            Ok(false)
        }
        None => Ok(false),
    }
}

/// A warning the user must hear of: into the log if there is one (containerd reads it),
/// else on stderr (without a subscriber, tracing would drop it).
pub fn warn(msg: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{msg}");
    } else {
        eprintln!("strata: warning: {msg}");
    }
}
