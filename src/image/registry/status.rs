//! docker's per-layer progress for pull and push: on a terminal one live line per layer
//! (`Downloading [==>   ]  1.2MB/3.4MB`, `Pull complete`), piped one plain line per
//! change of state, nothing with `-q`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::image::digest::Digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Terminal,
    Plain,
    Quiet,
}

impl Mode {
    /// Live lines on a terminal (stdout, where docker writes them), plain lines when
    /// piped, nothing when quiet.
    pub fn pick(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Plain
        }
    }
}

/// The lines of one pull or push, one per layer, keyed by blob digest.
pub struct Board {
    mode: Mode,
    multi: Option<MultiProgress>,
    bars: HashMap<Digest, ProgressBar>,
    /// The last state printed per layer (plain mode prints changes only).
    last: Mutex<HashMap<Digest, String>>,
}

impl Board {
    pub fn new(mode: Mode) -> Board {
        let multi = (mode == Mode::Terminal)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(10)));
        Board {
            mode,
            multi,
            bars: HashMap::new(),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// A line of the layer `d`, shown from now on, starting with `state`.
    pub fn add(&mut self, d: &Digest, state: &str) {
        if let Some(m) = &self.multi {
            let bar = m.add(ProgressBar::new(0));
            if let Ok(s) = ProgressStyle::with_template("{prefix}: {msg}") {
                bar.set_style(s);
            }
            bar.set_prefix(id(d).to_string());
            self.bars.insert(d.clone(), bar);
        }
        self.set(d, state);
    }

    /// The layer's state: `Waiting`, `Verifying Checksum`, `Pull complete`, …
    pub fn set(&self, d: &Digest, state: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Terminal => {
                if let Some(b) = self.bars.get(d) {
                    b.set_message(state.to_string());
                }
            }
            Mode::Plain => {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                if last.get(d).map(String::as_str) != Some(state) {
                    last.insert(d.clone(), state.to_string());
                    println!("{}: {state}", id(d));
                }
            }
        }
    }

    /// `Downloading [==>    ]  1.2MB/3.4MB` on a terminal; a plain `Downloading` once.
    pub fn bytes(&self, d: &Digest, what: &str, done: u64, total: u64) {
        match self.mode {
            Mode::Terminal => {
                if let Some(b) = self.bars.get(d) {
                    b.set_message(format!("{what} {}", bar(done, total)));
                }
            }
            _ => self.set(d, what),
        }
    }

    /// The live line of layer `d` alone, for a transfer that outlives a borrow of the
    /// board (byte counts show on a terminal only; states go through `set`).
    pub fn meter(&self, d: &Digest, what: &'static str, total: u64) -> Meter {
        Meter {
            bar: self.bars.get(d).cloned(),
            what,
            total,
        }
    }

    /// A line of its own (above the layers on a terminal).
    pub fn line(&self, s: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None if self.mode == Mode::Plain => println!("{s}"),
            None => {}
        }
    }

    /// Leave the layers' last states on the screen.
    pub fn finish(&self) {
        for b in self.bars.values() {
            b.finish();
        }
        if !self.bars.is_empty() {
            // indicatif leaves the cursor at the end of the last line.
            println!();
        }
        let _ = std::io::stdout().flush();
    }
}

/// A layer's byte count on a terminal: `Pushing [==>   ]  1.2MB/3.4MB`.
pub struct Meter {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
}

impl Meter {
    pub fn show(&self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{} {}", self.what, bar(done, self.total)));
        }
    }
}

/// docker's short layer ID: 12 hex digits of the blob digest.
pub fn id(d: &Digest) -> &str {
    &d.hex()[..12]
}

/// `[=====>       ]  1.2MB/3.4MB`, as docker draws it (50 columns).
fn bar(done: u64, total: u64) -> String {
    const W: u64 = 50;
    let filled = (done.min(total) * W).checked_div(total).unwrap_or(0);
    let mut s = String::with_capacity(80);
    s.push('[');
    for i in 0..W {
        s.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    s.push_str(&format!("] {:>8}/{}", size(done), size(total)));
    s
}

/// docker's sizes: decimal units, three significant digits.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[u]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars() {
        assert_eq!(size(999), "999B");
        assert_eq!(size(1_234_567), "1.235MB");
        assert_eq!(size(3_000_000), "3MB");
        let b = bar(25, 100);
        assert!(b.starts_with("[============>"), "{b}");
        assert!(b.ends_with("25B/100B"), "{b}");
        assert!(bar(0, 0).starts_with("[>"));
    }
}
