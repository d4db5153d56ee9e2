//! Bounded return of leadership (liveness; the
//! [manual](crate::manual::invariants#bounded-return-of-leadership)): after
//! every fault healed and the stability window passed, the main site leads
//! again within a bound.

use super::Violation;
use crate::topology::NodeId;

/// `leader`: who leads at the bound, and its site.
pub(crate) fn check(leader: Option<(NodeId, &str)>, main_site: &str) -> Option<Violation> {
    match leader {
        Some((_, site)) if site == main_site => None,
        other => Some(Violation::MainSiteNotLeading {
            leader: other.map(|(id, _)| id),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_outside_the_main_site_is_caught() {
        assert_eq!(check(Some((NodeId(1), "denver")), "denver"), None);
        assert!(check(Some((NodeId(3), "paris")), "denver").is_some());
        assert!(check(None, "denver").is_some());
    }
}
