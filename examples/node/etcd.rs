//! `node bench --against etcd`: the same throughput measurement against a
//! three-member etcd cluster, in the same run, and the ratio ours/etcd.
//!
//! When `etcd` is on `PATH`, three members are started on loopback, each
//! with its own data directory (etcd syncs its WAL on every commit, always),
//! plaintext between members and clients (wiring TLS for etcd is left out;
//! every line says `"etcd_tls":false`). 1, 16 and 64 clients, each on its
//! own keep-alive HTTP/1.1 connection to the leader, put and wait back to
//! back for `--secs`, through etcd's v3 JSON gateway (`POST /v3/kv/put`,
//! base64 key and value), the same keys and values as our proposers write
//! (key `w<client>-<n % 1000>`, value `<n>`: our command is
//! `set <key> <value>`). The client is a few lines over `TcpStream`: the
//! requests are fixed, and a dependency would not earn its place. Ours
//! proposes in the leader's process, while etcd's clients pay a loopback
//! HTTP round trip and the gateway's JSON-to-gRPC hop: the ratio leans our
//! way by that much.
//!
//! Every etcd process runs under a small `sh` that holds this process's
//! pipe: whatever way this process ends (an error, a panic, a signal, even
//! SIGKILL), the pipe closes and the shell stops its etcd and removes its
//! data directory; an orderly end also waits for them and removes the
//! run's directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use survivable_core::transport::free_loopback_addr;

/// Our throughput for one transport and number of proposers:
/// (`tls`, proposers, commits per second).
pub(crate) type Ours = (bool, usize, f64);

/// Where `etcd` is on `PATH`, if it is.
fn etcd_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A synchronous HTTP/1.1 keep-alive connection for fixed JSON requests.
struct Http {
    conn: BufReader<TcpStream>,
    host: SocketAddr,
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

impl Http {
    fn connect(host: SocketAddr) -> std::io::Result<Self> {
        let s = TcpStream::connect_timeout(&host, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            conn: BufReader::new(s),
            host,
        })
    }

    /// `POST path` with a JSON `body`: the status code and the body.
    fn post(&mut self, path: &str, body: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.conn.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        if self.conn.read_line(&mut line)? == 0 {
            return Err(bad("connection closed"));
        }
        let code = (line.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("no status line"))?;
        let (mut len, mut chunked) = (None, false);
        loop {
            line.clear();
            if self.conn.read_line(&mut line)? == 0 {
                return Err(bad("connection closed in the headers"));
            }
            let h = line.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            } else if h.starts_with("transfer-encoding:") && h.contains("chunked") {
                chunked = true;
            }
        }
        let body = match (len, chunked) {
            (Some(n), false) => {
                let mut b = vec![0; n];
                self.conn.read_exact(&mut b)?;
                b
            }
            (_, true) => self.chunks()?,
            (None, false) => return Err(bad("neither a length nor chunks")),
        };
        Ok((code, body))
    }

    fn chunks(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.conn.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("chunk size"))?;
            let mut chunk = vec![0; size + 2]; // and its CRLF
            self.conn.read_exact(&mut chunk)?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

/// Three etcd members; dropping it stops them and removes their data.
struct Etcd {
    dir: PathBuf,
    /// The `sh` holding each member (its stdin is our pipe).
    shells: Vec<Child>,
    clients: Vec<SocketAddr>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for s in &mut self.shells {
            s.stdin = None; // the shell stops its etcd and removes its data
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for s in &mut self.shells {
            while Instant::now() < deadline && matches!(s.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shell around one member: it ignores the terminal's signals (this
/// process decides), starts etcd, and once its stdin closes stops etcd and
/// removes the member's data directory.
const SHELL: &str = r#"trap '' INT TERM HUP
"$0" "$@" 2>>"$ETCD_LOG" & e=$!
while read -r _; do :; done
kill -9 "$e" 2>/dev/null; wait "$e"; rm -rf "$ETCD_DATA" "$ETCD_LOG"
rmdir "${ETCD_DATA%/*}" 2>/dev/null"#;

/// Starts the three members in `dir` and waits for a leader.
fn start(etcd: &Path, dir: &Path) -> Result<Etcd, String> {
    let addrs = |_| free_loopback_addr().map_err(|e| e.to_string());
    let peers: Vec<SocketAddr> = (0..3).map(addrs).collect::<Result<_, _>>()?;
    let clients: Vec<SocketAddr> = (0..3).map(addrs).collect::<Result<_, _>>()?;
    let cluster: Vec<String> = (0..3)
        .map(|i| format!("e{i}=http://{}", peers[i]))
        .collect();
    let mut e = Etcd {
        dir: dir.to_path_buf(),
        shells: Vec::new(),
        clients: clients.clone(),
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for i in 0..3 {
        let data = dir.join(format!("e{i}"));
        let child = Command::new("sh")
            .arg("-c")
            .arg(SHELL)
            .arg(etcd)
            .args(["--name", &format!("e{i}"), "--logger", "zap"])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-peer-urls",
                &format!("http://{}", peers[i]),
                "--initial-advertise-peer-urls",
                &format!("http://{}", peers[i]),
                "--listen-client-urls",
                &format!("http://{}", clients[i]),
                "--advertise-client-urls",
                &format!("http://{}", clients[i]),
                "--initial-cluster",
                &cluster.join(","),
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                &format!("sc-bench-{}", std::process::id()),
            ])
            .env("ETCD_LOG", dir.join(format!("e{i}.log")))
            .env("ETCD_DATA", &data)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting etcd: {e}"))?;
        e.shells.push(child);
    }
    Ok(e)
}

impl Etcd {
    /// The leader's client address, once the three answer and agree.
    fn leader(&self, limit: Duration) -> Result<SocketAddr, String> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(a) = self.clients.iter().find(|&&a| is_leader(a)) {
                return Ok(*a);
            }
            thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("e0.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        Err(format!(
            "etcd elected no leader in {} s; the end of member e0's log: {}",
            limit.as_secs(),
            tail.join(" | ")
        ))
    }
}

/// Whether the member serving clients at `a` says it leads.
fn is_leader(a: SocketAddr) -> bool {
    let Ok((200, body)) = Http::connect(a).and_then(|mut h| h.post("/v3/maintenance/status", "{}"))
    else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let me = v["header"]["member_id"].as_str();
    me.is_some() && me == v["leader"].as_str()
}

/// One client's puts until `stop`: latencies (µs) and errors.
fn client(at: SocketAddr, w: usize, stop: &AtomicBool) -> (Vec<u64>, u64) {
    let (mut lat, mut errors, mut n) = (Vec::new(), 0u64, 0u64);
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        let h = match conn.as_mut() {
            Some(h) => h,
            None => match Http::connect(at) {
                Ok(h) => conn.insert(h),
                Err(_) => {
                    errors += 1;
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let key = format!("w{w}-{}", n % 1000);
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key.as_bytes()),
            base64(n.to_string().as_bytes())
        );
        let t = Instant::now();
        match h.post("/v3/kv/put", &body) {
            Ok((200, _)) => lat.push(t.elapsed().as_micros() as u64),
            Ok(_) => errors += 1,
            Err(_) => {
                errors += 1;
                conn = None;
            }
        }
        n += 1;
    }
    (lat, errors)
}

/// `clients` clients put back to back for `secs`: puts, puts per second,
/// p50 and p99 (ms), errors.
fn load(at: SocketAddr, clients: usize, secs: u64) -> (usize, f64, f64, f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let stop = stop.clone();
            thread::spawn(move || client(at, w, &stop))
        })
        .collect();
    thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.join().unwrap_or_default();
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(i.min(lat.len().saturating_sub(1)))
            .map_or(0.0, |&us| us as f64 / 1000.0)
    };
    (
        lat.len(),
        lat.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        errors,
    )
}

fn version(etcd: &Path) -> String {
    let out = Command::new(etcd).arg("--version").output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map_or_else(|| "unknown".into(), |v| v.trim().to_string())
}

/// Runs etcd at 1, 16 and 64 clients for `secs` each and prints its
/// figures and the ratio ours/etcd for each of `ours`.
pub(crate) fn against(secs: u64, json: bool, ours: &[Ours]) -> Result<(), String> {
    let Some(etcd) = etcd_on_path() else {
        let how = "install etcd 3.4 or later and put `etcd` on PATH (Debian: apt-get install etcd-server etcd-client)";
        if json {
            println!("{{\"bench\":\"against_etcd\",\"skipped\":true,\"reason\":\"etcd is not on PATH\",\"install\":\"{how}\"}}");
        } else {
            println!("against etcd: skipped, etcd is not on PATH; {how}");
        }
        return Ok(());
    };
    let v = version(&etcd);
    let dir = std::env::temp_dir().join(format!("sc-bench-etcd-{}", std::process::id()));
    let cluster = start(&etcd, &dir)?;
    let at = cluster.leader(Duration::from_secs(20))?;
    let mut rates = Vec::new();
    for clients in [1usize, 16, 64] {
        let (puts, rate, p50, p99, errors) = load(at, clients, secs);
        rates.push((clients, rate));
        if json {
            println!("{{\"bench\":\"throughput\",\"system\":\"etcd\",\"version\":\"{v}\",\"api\":\"v3 json gateway, http/1.1 keep-alive\",\"etcd_tls\":false,\"members\":3,\"fsync\":true,\"clients\":{clients},\"commits\":{puts},\"commits_per_s\":{rate:.0},\"p50_ms\":{p50:.2},\"p99_ms\":{p99:.2},\"errors\":{errors}}}");
        } else {
            println!("throughput, etcd {v}, plaintext, 3 members, fsync on, {clients:>2} clients: {rate:>7.0} puts/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {errors} errors");
        }
    }
    drop(cluster);
    for &(tls, proposers, ours) in ours {
        let Some(&(_, theirs)) = rates.iter().find(|(c, _)| *c == proposers) else {
            continue;
        };
        let label = if tls { "tls" } else { "plaintext" };
        let ratio = if theirs > 0.0 { ours / theirs } else { 0.0 };
        if json {
            println!("{{\"bench\":\"against_etcd\",\"concurrency\":{proposers},\"ours_transport\":\"{label}\",\"etcd_tls\":false,\"ours_commits_per_s\":{ours:.0},\"etcd_commits_per_s\":{theirs:.0},\"ratio\":{ratio:.2}}}");
        } else {
            println!("ours/etcd, {proposers:>2} concurrent: {ours:>7.0} ({label}) / {theirs:>7.0} (etcd, plaintext) = {ratio:.2}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"w12-345"), "dzEyLTM0NQ==");
    }
}
