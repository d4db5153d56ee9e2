//! `node run`: one member, driven by commands on stdin, answering with JSON
//! lines on stdout.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use survivable_core::node::Status;
use survivable_core::runtime::{start_member, Handle, Pending};
use survivable_core::sim::KvStore;
use survivable_core::{RestoreError, StateMachine};

use crate::config;

/// The replicated key-value state, readable by the control loop.
#[derive(Clone, Default)]
struct SharedKv(Arc<Mutex<KvStore>>);

impl StateMachine for SharedKv {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        self.0.lock().apply(index, command)
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.lock().snapshot()
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        self.0.lock().restore(snapshot)
    }
}

/// Logs to stderr, one line per record, with its key-value pairs and the
/// time in milliseconds since the UNIX epoch.
struct Stderr;

struct Line(String);

impl slog::Serializer for Line {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.push_str(&format!(" {key}={val}"));
        Ok(())
    }
}

impl slog::Drain for Stderr {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, r: &slog::Record<'_>, kv: &slog::OwnedKVList) -> Result<(), slog::Never> {
        use slog::KV as _;
        if r.level().is_at_least(slog::Level::Info) {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let mut line = Line(format!("{ms} {} {}", r.level().as_short_str(), r.msg()));
            let _ = r.kv().serialize(r, &mut line);
            let _ = kv.serialize(r, &mut line);
            eprintln!("{}", line.0);
        }
        Ok(())
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

type Out = Arc<Mutex<std::io::Stdout>>;

fn say(out: &Out, line: &str) {
    let mut o = out.lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// The status line; `refused`: envelopes the node refused so far.
fn status_json(s: &Status, refused: u64) -> String {
    let peers: Vec<String> = s
        .peers
        .iter()
        .map(|p| {
            format!(
                "{{\"id\":{},\"lag\":{},\"reachable\":{}}}",
                p.id.0, p.lag, p.reachable
            )
        })
        .collect();
    format!(
        "{{\"reply\":\"status\",\"id\":{},\"site\":{},\"role\":{},\"leader\":{},\"epoch\":{},\"term\":{},\"commit\":{},\"applied\":{},\"refused\":{refused},\"peers\":[{}]}}",
        s.id.0,
        quote(&s.site),
        quote(&format!("{:?}", s.role)),
        s.leader.map_or("null".into(), |l| l.0.to_string()),
        quote(&s.epoch.to_string()),
        s.term,
        s.commit,
        s.applied,
        peers.join(",")
    )
}

/// Proposals made and not yet answered, each with its tag.
type Waiting = Arc<Mutex<Vec<(String, Pending)>>>;

/// Runs the member of `path` until stdin ends.
pub(crate) fn run(path: &str) -> Result<(), String> {
    let cfg = config::load(path)?;
    let logger = slog::Logger::root(slog::Fuse(Stderr), slog::o!());
    let kv = SharedKv::default();
    let member = start_member(cfg, kv.clone(), &logger).map_err(|e| e.to_string())?;
    let handle = Arc::new(member.handle);
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    forward_events(&handle, &out);
    let waiting = await_proposals(&out);

    say(
        &out,
        &format!(
            "{{\"ready\":true,\"listen\":{}}}",
            quote(&member.local_addr.to_string())
        ),
    );
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        answer(&line, &handle, &kv, &out, &waiting);
    }
    handle.shutdown();
    Ok(())
}

/// Prints every event of the member, one JSON line each, on a thread of
/// its own.
fn forward_events(handle: &Handle, out: &Out) {
    let events = handle.events();
    let o = out.clone();
    thread::spawn(move || {
        for e in events {
            say(&o, &format!("{{\"event\":{}}}", quote(&format!("{e:?}"))));
        }
    });
}

/// Waits for proposal results without a thread per proposal: one thread
/// answers each proposal put on the returned list once its result is in.
fn await_proposals(out: &Out) -> Waiting {
    let waiting: Waiting = Arc::default();
    let (w, o) = (waiting.clone(), out.clone());
    thread::spawn(move || loop {
        let done: Vec<(String, _)> = {
            let mut list = w.lock();
            let mut done = Vec::new();
            list.retain(|(tag, p)| match p.try_result() {
                Some(r) => {
                    done.push((tag.clone(), r));
                    false
                }
                None => true,
            });
            done
        };
        for (tag, r) in done {
            let line = match r {
                Ok(a) => format!(
                    "{{\"reply\":\"propose\",\"tag\":{},\"ok\":true,\"index\":{},\"term\":{}}}",
                    quote(&tag),
                    a.index,
                    a.term
                ),
                Err(e) => format!(
                    "{{\"reply\":\"propose\",\"tag\":{},\"ok\":false,\"error\":{}}}",
                    quote(&tag),
                    quote(&e.to_string())
                ),
            };
            say(&o, &line);
        }
        thread::sleep(Duration::from_millis(1));
    });
    waiting
}

/// Answers one command line read from stdin.
fn answer(line: &str, handle: &Handle, kv: &SharedKv, out: &Out, waiting: &Waiting) {
    let (word, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    match word {
        "propose" => {
            let (tag, command) = rest.split_once(' ').unwrap_or((rest, ""));
            match handle.propose_async(command.as_bytes().to_vec()) {
                Ok(p) => waiting.lock().push((tag.to_string(), p)),
                Err(e) => say(
                    out,
                    &format!(
                        "{{\"reply\":\"propose\",\"tag\":{},\"ok\":false,\"error\":{}}}",
                        quote(tag),
                        quote(&e.to_string())
                    ),
                ),
            }
        }
        "status" => {
            let refused = handle.counters().rejected();
            say(out, &status_json(&handle.status(), refused));
        }
        "dump" => {
            // A linearizable read point first: the keys then include
            // every write acknowledged anywhere before the command.
            let line = match handle.read(Duration::from_secs(2)) {
                Ok(applied) => {
                    let keys: Vec<String> = kv.0.lock().map.keys().map(|k| quote(k)).collect();
                    format!(
                        "{{\"reply\":\"dump\",\"ok\":true,\"applied\":{applied},\"keys\":[{}]}}",
                        keys.join(",")
                    )
                }
                Err(e) => format!(
                    "{{\"reply\":\"dump\",\"ok\":false,\"error\":{}}}",
                    quote(&e.to_string())
                ),
            };
            say(out, &line);
        }
        "hand-back" => {
            let r = handle.hand_back().map_err(|e| e.to_string());
            say(
                out,
                &format!(
                    "{{\"reply\":\"hand-back\",\"ok\":{},\"error\":{}}}",
                    r.is_ok(),
                    quote(&r.err().unwrap_or_default())
                ),
            );
        }
        "" => {}
        other => say(
            out,
            &format!(
                "{{\"reply\":\"error\",\"error\":{}}}",
                quote(&format!("unknown command {other}"))
            ),
        ),
    }
}
