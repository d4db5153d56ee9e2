//! The white paper's reference layout, ready to use or adjust: the
//! quickest way to try the crate, and what its own tests, examples and
//! benchmarks run on.

use super::{Appliance::Virtual, Core, Site, SurvivableCore, Topology, TopologyBuilder, Witness};
use crate::policy::QuorumMode;

/// Denver (main site: CM01a on `esxi-1`, CM01b on `esxi-3`), Paris (rank-1
/// survivable core: CM02a on `esxi-5`, CM02b on `esxi-7`) and a witness W1
/// in Kansas (`wit-1`); node ids 1 to 5 in that order, cluster id 2026.
/// Witness mode, default timers and hand-back policy: change them on the
/// returned builder before [`build`](TopologyBuilder::build).
///
/// ```
/// let topology = survivable_core::topology::denver_paris().build()?;
/// assert_eq!(topology.voters().len(), 5);
/// # Ok::<(), survivable_core::topology::TopologyError>(())
/// ```
pub fn denver_paris() -> TopologyBuilder {
    let mut b = denver_and_paris();
    b.site(Site::backup("kansas"))
        .witness(Witness::new(5, "W1", "kansas", "wit-1"));
    b
}

/// Denver's duplicated core and Paris's rank-1 survivable core, the part
/// both reference layouts share.
fn denver_and_paris() -> TopologyBuilder {
    let mut b = Topology::builder(2026);
    b.site(Site::main("denver"))
        .site(Site::backup("paris"))
        .core(
            Core::new("cm01", "denver")
                .member(1, "CM01a", "esxi-1", Virtual)
                .member(2, "CM01b", "esxi-3", Virtual),
        )
        .survivable_core(SurvivableCore::new(
            1,
            Core::new("cm02", "paris")
                .member(3, "CM02a", "esxi-5", Virtual)
                .member(4, "CM02b", "esxi-7", Virtual),
        ));
    b
}

/// [`denver_paris`] plus London, a rank-2 survivable core (CM03a on
/// `lon-1`, CM03b on `lon-2`, ids 6 and 7): seven voters.
pub fn denver_paris_london() -> TopologyBuilder {
    let mut b = denver_paris();
    b.site(Site::backup("london"))
        .survivable_core(SurvivableCore::new(
            2,
            Core::new("cm03", "london")
                .member(6, "CM03a", "lon-1", Virtual)
                .member(7, "CM03b", "lon-2", Virtual),
        ));
    b
}

/// The white paper's two-site layout in main-site mode: Denver (CM01a on
/// `esxi-1`, CM01b on `esxi-3`, and a tie-breaker TB on `esxi-9`, ids 1, 2
/// and 5) holds the voting majority; Paris (rank 1, CM02a on `esxi-5`,
/// CM02b on `esxi-7`, ids 3 and 4) replicates asynchronously. Cluster id 2026.
///
/// ```
/// use survivable_core::topology::{denver_paris_two_site, NodeId};
/// let t = survivable_core::topology::denver_paris_two_site().build()?;
/// assert_eq!(t.voters(), [NodeId(1), NodeId(2), NodeId(5)]);
/// assert_eq!(t.learners(), [NodeId(3), NodeId(4)]);
/// # Ok::<(), survivable_core::topology::TopologyError>(())
/// ```
pub fn denver_paris_two_site() -> TopologyBuilder {
    let mut b = denver_and_paris();
    b.mode(QuorumMode::MainSite)
        .witness(Witness::new(5, "TB", "denver", "esxi-9"));
    b
}

/// The two-site layout of [`denver_paris_two_site`] in DR auto-sync mode
/// ([`QuorumMode::DrAutoSync`]): the same members, all five voters; while
/// the sites talk every commit is on Denver and Paris (RPO 0), and a Paris
/// silent for `sync_wait` lets Denver commit alone. Cluster id 2026.
///
/// ```
/// use survivable_core::topology::NodeId;
/// let t = survivable_core::topology::denver_paris_dr().build()?;
/// assert_eq!(t.voters().len(), 5);
/// assert!(t.learners().is_empty());
/// # Ok::<(), survivable_core::topology::TopologyError>(())
/// ```
pub fn denver_paris_dr() -> TopologyBuilder {
    let mut b = denver_and_paris();
    b.mode(QuorumMode::DrAutoSync)
        .witness(Witness::new(5, "TB", "denver", "esxi-9"));
    b
}
