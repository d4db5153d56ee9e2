//! Inputs shared by the decision tests of the node's files.

use crate::policy::TickTimers;
use crate::topology::{Appliance, Member, MemberSpec, NodeId, Role};

/// 10 ms ticks; election timeout 20 ticks, failover 5, survivable cores
/// after 200 (+50 per rank).
pub(super) fn timers() -> TickTimers {
    TickTimers {
        tick_ms: 10,
        heartbeat: 2,
        election: 20,
        failover: 5,
        survivable_after: 200,
        rank_step: 50,
        sync_wait: 400,
    }
}

fn member(id: u64, site: &str, role: Role) -> Member {
    Member {
        spec: MemberSpec {
            id: NodeId(id),
            name: format!("n{id}"),
            host: format!("h{id}"),
            appliance: Appliance::Dedicated,
        },
        site: site.into(),
        role,
    }
}

/// A member of the main site's core `cm`.
pub(super) fn main_core(id: u64, position: usize) -> Member {
    member(
        id,
        "denver",
        Role::MainCore {
            core: "cm".into(),
            position,
        },
    )
}

/// A member of the survivable core of rank `rank` (core `s<rank>`).
pub(super) fn survivable(id: u64, rank: u32, position: usize) -> Member {
    member(
        id,
        &format!("site{rank}"),
        Role::Survivable {
            core: format!("s{rank}"),
            rank,
            position,
        },
    )
}

/// A witness.
pub(super) fn witness(id: u64) -> Member {
    member(id, "kansas", Role::Witness)
}
