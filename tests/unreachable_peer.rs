//! A peer that is down is logged as unreachable (rate-limited), not as a
//! refusal.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use survivable_core::topology::NodeId;
use survivable_core::transport::{free_loopback_addr, TcpConfig, TcpTransport, TransportSecurity};

/// Keeps every record as `LEVEL message`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl slog::Drain for Capture {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, r: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let line = format!("{} {}", r.level().as_short_str(), r.msg());
        self.0.lock().unwrap().push(line);
        Ok(())
    }
}

#[test]
fn a_down_peer_is_logged_as_unreachable_at_a_falling_rate() {
    // Nothing listens at the peer's address: every TCP connect is refused.
    let down = free_loopback_addr().unwrap();
    let cfg = TcpConfig::new(
        7,
        NodeId(1),
        free_loopback_addr().unwrap(),
        BTreeMap::from([(NodeId(2), down)]),
        TransportSecurity::InsecurePlaintextLoopbackOnly,
    );
    let capture = Capture::default();
    let logger = slog::Logger::root(capture.clone(), slog::o!());
    let (inbound, _rx) = crossbeam_channel::bounded::<survivable_core::wire::Envelope>(16);
    let t = TcpTransport::start(cfg, inbound, logger).unwrap();
    // The back-off starts at 20 ms and doubles up to 1 s: 6 attempts take
    // about 20+40+...+640 ms; the 30 s only bound a hang on a loaded host.
    let start = Instant::now();
    while t.stats().connect_failures < 6 {
        assert!(start.elapsed() < Duration::from_secs(30), "{:?}", t.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The lines first, then the count the bound is computed from: taken
    // the other way round, attempts made in between (the test thread
    // stalled) add lines the older count does not allow for.
    let lines = capture.0.lock().unwrap().clone();
    let failures = t.stats().connect_failures;
    drop(t);
    let unreachable = lines
        .iter()
        .filter(|l| l.contains("peer unreachable"))
        .count();
    assert!(failures >= 6, "{failures} attempts: {lines:#?}");
    assert!(unreachable >= 1, "{lines:#?}");
    // Logged at the 1st, 2nd, 4th, ... attempt only.
    let bound = (u64::BITS - failures.leading_zeros()) as usize;
    assert!(
        unreachable <= bound,
        "{unreachable} lines for {failures} attempts: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("refused")),
        "a down peer is not a refusal: {lines:#?}"
    );
}
