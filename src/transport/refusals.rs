//! What happens to a refusal besides its counter: the last few are kept,
//! typed, for operators and tests ([`StatsHandle::recent_refusals`](super::StatsHandle::recent_refusals)),
//! and each is logged with the peer's address and the reason, but at most
//! once per [`LOG_WINDOW`] for each (peer IP address, member,
//! [kind](super::ConnectionError::kind)): a peer that keeps being refused,
//! or an attacker who can reach the port, cannot make the member write
//! unbounded logs. The member is part of the key when it is known (the
//! member dialled; the member a caller's certificate names, once its
//! handshake passed; with plaintext, the member its hello names), so a
//! flood from one address, anonymous or in one member's name, never hides
//! another member's refusals, even when members share an address (one
//! host, a relay, NAT). The next line logged for the same key says how
//! many were left out (`suppressed=`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use slog::Logger;

use super::ConnectionError;
use crate::topology::NodeId;

/// At most one log line per (peer IP address, member, kind) in this window.
pub(crate) const LOG_WINDOW: Duration = Duration::from_secs(10);
/// Refusals kept for [`Refusals::recent`].
const RECENT: usize = 64;
/// Keys the limiter tracks at once; past that, new keys are suppressed
/// (and counted) until old ones expire.
const MAX_KEYS: usize = 1024;

/// The rate limiter: when a refusal may be logged.
#[derive(Debug)]
pub(super) struct Limiter {
    window: Duration,
    seen: HashMap<Key, Slot>,
    /// Refusals left out because the table was full.
    overflow: u64,
}

/// What a log line is limited by: the peer's IP address, the member on
/// the other end when known, and the kind of refusal.
type Key = (IpAddr, Option<NodeId>, &'static str);

#[derive(Debug, Clone, Copy)]
struct Slot {
    logged_at: Instant,
    suppressed: u64,
}

/// A log line to write: how many of the same key were left out since the
/// last one, and how many others were left out without being reported
/// under their own key (the table was full, or their key was forgotten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Admitted {
    pub(super) suppressed: u64,
    pub(super) untracked: u64,
}

impl Limiter {
    pub(super) fn new(window: Duration) -> Self {
        Self {
            window,
            seen: HashMap::new(),
            overflow: 0,
        }
    }

    /// Whether a refusal of `kind` from `ip` (member `who`, when known)
    /// at `now` is logged.
    pub(super) fn admit(
        &mut self,
        ip: IpAddr,
        who: Option<NodeId>,
        kind: &'static str,
        now: Instant,
    ) -> Option<Admitted> {
        let key = (ip, who, kind);
        let window = self.window;
        let due = |s: &Slot| now.saturating_duration_since(s.logged_at) >= window;
        if !self.seen.contains_key(&key) && self.seen.len() >= MAX_KEYS {
            // Forget keys whose window passed; what they left out is
            // reported as untracked.
            let mut lost = 0;
            self.seen.retain(|_, s| {
                let keep = !due(s);
                if !keep {
                    lost += s.suppressed;
                }
                keep
            });
            self.overflow += lost;
            if self.seen.len() >= MAX_KEYS {
                self.overflow += 1;
                return None;
            }
        }
        let untracked = std::mem::take(&mut self.overflow);
        match self.seen.get_mut(&key) {
            Some(s) if due(s) => {
                let suppressed = s.suppressed;
                *s = Slot {
                    logged_at: now,
                    suppressed: 0,
                };
                Some(Admitted {
                    suppressed,
                    untracked,
                })
            }
            Some(s) => {
                s.suppressed += 1;
                self.overflow = untracked;
                None
            }
            None => {
                let slot = Slot {
                    logged_at: now,
                    suppressed: 0,
                };
                self.seen.insert(key, slot);
                Some(Admitted {
                    suppressed: 0,
                    untracked,
                })
            }
        }
    }
}

/// The recent refusals and the log limiter of one transport.
#[derive(Debug)]
pub(crate) struct Refusals {
    inner: Mutex<(VecDeque<ConnectionError>, Limiter)>,
}

impl Default for Refusals {
    fn default() -> Self {
        Self {
            inner: Mutex::new((VecDeque::new(), Limiter::new(LOG_WINDOW))),
        }
    }
}

impl Refusals {
    /// Keeps `e` and logs it as `what` unless the limiter says not now;
    /// `who` is the member on the other end, when known.
    pub(super) fn record(
        &self,
        logger: &Logger,
        what: &'static str,
        e: &ConnectionError,
        who: Option<NodeId>,
    ) {
        let admitted = {
            let mut inner = self.inner.lock();
            if inner.0.len() == RECENT {
                inner.0.pop_front();
            }
            inner.0.push_back(e.clone());
            inner.1.admit(e.peer().ip(), who, e.kind(), Instant::now())
        };
        if let Some(a) = admitted {
            let member = who.map_or_else(|| "unknown".to_string(), |n| n.to_string());
            slog::warn!(logger, "{}", what;
                "peer" => %e.peer(), "member" => member, "kind" => e.kind(), "reason" => %e,
                "suppressed" => a.suppressed, "untracked" => a.untracked);
        }
    }

    /// The refusals kept, oldest first.
    pub(super) fn recent(&self) -> Vec<ConnectionError> {
        self.inner.lock().0.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_and_window_with_the_count_left_out() {
        let mut l = Limiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = Admitted {
            suppressed: 0,
            untracked: 0,
        };
        assert_eq!(l.admit(a, None, "tls-expired", t0), Some(first));
        for s in 1..100 {
            assert_eq!(
                l.admit(a, None, "tls-expired", t0 + Duration::from_millis(s)),
                None
            );
        }
        // Another kind, another address: their own lines.
        assert_eq!(l.admit(a, None, "spoofed", t0), Some(first));
        assert_eq!(l.admit(b, None, "tls-expired", t0), Some(first));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            l.admit(a, None, "tls-expired", later),
            Some(Admitted {
                suppressed: 99,
                untracked: 0
            })
        );
        assert_eq!(l.admit(a, None, "tls-expired", later), None);
    }

    /// A flood from one address, anonymous or in one member's name, does
    /// not hide the refusals of another member at the same address.
    #[test]
    fn members_at_one_address_are_limited_apart() {
        let mut l = Limiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let first = Some(Admitted {
            suppressed: 0,
            untracked: 0,
        });
        let (stolen, real) = (Some(NodeId(2)), Some(NodeId(3)));
        for who in [None, stolen] {
            assert_eq!(l.admit(lo, who, "spoofed", t0), first);
            for s in 1..1000 {
                let at = t0 + Duration::from_millis(s);
                assert_eq!(l.admit(lo, who, "spoofed", at), None);
            }
        }
        let at = t0 + Duration::from_secs(1);
        assert_eq!(l.admit(lo, real, "spoofed", at), first);
        assert_eq!(l.admit(lo, real, "spoofed", at), None);
    }

    #[test]
    fn the_table_is_bounded_and_what_it_cannot_track_is_counted() {
        let mut l = Limiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..MAX_KEYS as u32 {
            assert!(l
                .admit(IpAddr::from(i.to_be_bytes()), None, "x", t0)
                .is_some());
        }
        let new: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(l.admit(new, None, "x", t0), None);
        assert_eq!(l.admit(new, None, "x", t0), None);
        assert_eq!(l.seen.len(), MAX_KEYS);
        // Once the old keys' window passed, they make room.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            l.admit(new, None, "x", later),
            Some(Admitted {
                suppressed: 0,
                untracked: 2
            })
        );
        assert!(l.seen.len() <= MAX_KEYS);
    }
}
