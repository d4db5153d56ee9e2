use super::*;
use crate::topology::Appliance::Virtual;
use crate::topology::{denver_paris, denver_paris_london, Failure};

fn london() -> Core {
    Core::new("cm03", "london")
        .member(6, "CM03a", "l-1", Virtual)
        .member(7, "CM03b", "l-2", Virtual)
}

fn rank_of(t: &Topology, id: u64) -> u32 {
    t.member(NodeId(id)).unwrap().preference()
}

#[test]
fn the_builder_rebuilds_a_topology_as_it_was() {
    for b in [denver_paris(), denver_paris_london()] {
        let t = b.build().unwrap();
        let again = TopologyBuilder::of(&t).build().unwrap();
        assert_eq!(again.members, t.members);
        assert_eq!(again.fingerprint(), t.fingerprint());
    }
}

#[test]
fn a_survivable_core_is_added_in_a_new_site_at_a_rank() {
    let t = denver_paris().build().unwrap();
    let t = t
        .apply(&TopologyChange::AddSite {
            name: "london".into(),
        })
        .unwrap();
    let add = TopologyChange::AddSurvivableCore {
        rank: 1,
        core: london(),
        addresses: [(NodeId(6), "l1:7000".to_string())].into(),
    };
    let next = t.apply(&add).unwrap();
    assert_eq!(next.version(), 2);
    // Added at rank 1: Paris moves down to rank 2.
    assert_eq!((rank_of(&next, 6), rank_of(&next, 3)), (1, 2));
    assert_eq!(next.address(NodeId(6)), Some("l1:7000"));
    let moves = ConfMoves::between(&t, &next);
    assert_eq!(moves.add_voters, vec![NodeId(6), NodeId(7)]);
    assert!(moves.remove.is_empty() && moves.add_learners.is_empty());
    // The report of the new topology is there before proposing.
    let report = t.preview(&add).unwrap();
    assert!(report.scenarios.iter().any(|r| r.failure
        == Failure::Core {
            core: "cm03".into()
        }));
}

#[test]
fn ranks_move_as_a_list_and_a_gap_is_refused() {
    let t = denver_paris_london().build().unwrap();
    assert_eq!((rank_of(&t, 3), rank_of(&t, 6)), (1, 2));
    let swapped = t
        .apply(&TopologyChange::SetRank {
            core: "cm03".into(),
            rank: 1,
        })
        .unwrap();
    assert_eq!((rank_of(&swapped, 3), rank_of(&swapped, 6)), (2, 1));
    assert!(ConfMoves::between(&t, &swapped).is_empty());
    for rank in [0, 3] {
        assert_eq!(
            t.apply(&TopologyChange::SetRank {
                core: "cm03".into(),
                rank
            })
            .unwrap_err(),
            TopologyError::RankGap {
                core: "cm03".into(),
                rank,
                max: 2
            }
        );
    }
    assert!(matches!(
        t.apply(&TopologyChange::SetRank {
            core: "cm02".into(),
            rank: 1
        }),
        Err(TopologyError::NoChange { .. })
    ));
    assert_eq!(
        t.apply(&TopologyChange::SetRank {
            core: "cm01".into(),
            rank: 1
        })
        .unwrap_err(),
        TopologyError::NotSurvivable {
            core: "cm01".into()
        }
    );
    // Removing rank 1 moves London up to 1.
    let removed = t
        .apply(&TopologyChange::RemoveSurvivableCore {
            core: "cm02".into(),
        })
        .unwrap();
    assert_eq!(rank_of(&removed, 6), 1);
    assert_eq!(
        ConfMoves::between(&t, &removed).remove,
        vec![NodeId(3), NodeId(4)]
    );
}

#[test]
fn a_pair_on_one_host_is_refused_as_the_builder_refuses_it() {
    let t = denver_paris().build().unwrap();
    let t = t
        .apply(&TopologyChange::AddSite {
            name: "london".into(),
        })
        .unwrap();
    let core = Core::new("cm03", "london")
        .member(6, "CM03a", "l-1", Virtual)
        .member(7, "CM03b", "l-1", Virtual);
    let err = t
        .apply(&TopologyChange::AddSurvivableCore {
            rank: 2,
            core,
            addresses: BTreeMap::new(),
        })
        .unwrap_err();
    assert!(matches!(err, TopologyError::PairSharesHost { ref host, .. } if host == "l-1"));
    assert!(err.to_string().contains("separate physical hosts"));
}

#[test]
fn witnesses_are_removed_and_added() {
    let t = denver_paris().build().unwrap();
    let without = t
        .apply(&TopologyChange::RemoveMember { id: NodeId(5) })
        .unwrap();
    assert_eq!(without.voters().len(), 4);
    assert_eq!(ConfMoves::between(&t, &without).remove, vec![NodeId(5)]);
    let w = Witness::new(9, "W2", "kansas", "wit-2");
    let with = without
        .apply(&TopologyChange::AddWitness {
            witness: w,
            address: Some("w2:7000".into()),
        })
        .unwrap();
    assert_eq!(with.version(), 2);
    assert_eq!(
        ConfMoves::between(&without, &with).add_voters,
        vec![NodeId(9)]
    );
    // A core member cannot leave its pair alone.
    assert!(matches!(
        t.apply(&TopologyChange::RemoveMember { id: NodeId(2) }),
        Err(TopologyError::NotAPair { count: 1, .. })
    ));
    assert_eq!(
        t.apply(&TopologyChange::RemoveMember { id: NodeId(42) })
            .unwrap_err(),
        TopologyError::UnknownMember {
            id: NodeId(42),
            what: "the change"
        }
    );
}

#[test]
fn a_replacement_takes_the_place_and_keeps_anti_affinity() {
    let t = denver_paris().build().unwrap();
    let spec = |host: &str| MemberSpec {
        id: NodeId(8),
        name: "CM01c".into(),
        host: host.into(),
        appliance: Virtual,
    };
    let change = |host| TopologyChange::ReplaceMember {
        old: NodeId(1),
        new: spec(host),
        address: None,
    };
    let next = t.apply(&change("esxi-4")).unwrap();
    let m = next.member(NodeId(8)).unwrap();
    assert_eq!((m.position(), m.site.as_str()), (0, "denver"));
    let moves = ConfMoves::between(&t, &next);
    assert_eq!(
        (moves.add_voters, moves.remove),
        (vec![NodeId(8)], vec![NodeId(1)])
    );
    assert!(matches!(
        t.apply(&change("esxi-3")),
        Err(TopologyError::PairSharesHost { .. })
    ));
}

#[test]
fn addresses_are_set_moved_and_checked() {
    let mut b = denver_paris();
    b.address(1, "a:1");
    let t = b.build().unwrap();
    assert_eq!(t.address(NodeId(1)), Some("a:1"));
    let moved = t
        .apply(&TopologyChange::SetAddress {
            id: NodeId(1),
            address: "b:1".into(),
        })
        .unwrap();
    assert_eq!(moved.address(NodeId(1)), Some("b:1"));
    assert!(ConfMoves::between(&t, &moved).is_empty());
    assert!(matches!(
        moved.apply(&TopologyChange::SetAddress {
            id: NodeId(1),
            address: "b:1".into()
        }),
        Err(TopologyError::NoChange { .. })
    ));
    b.address(42, "x:1");
    assert_eq!(
        b.build().unwrap_err(),
        TopologyError::UnknownMember {
            id: NodeId(42),
            what: "an address"
        }
    );
    let mut b = denver_paris();
    b.address(2, " ");
    assert_eq!(
        b.build().unwrap_err(),
        TopologyError::EmptyAddress { id: NodeId(2) }
    );
}

#[test]
fn main_site_mode_adds_survivable_members_as_learners() {
    let t = crate::topology::denver_paris_two_site().build().unwrap();
    let t2 = t
        .apply(&TopologyChange::AddSite {
            name: "london".into(),
        })
        .unwrap();
    let next = t2
        .apply(&TopologyChange::AddSurvivableCore {
            rank: 2,
            core: london(),
            addresses: BTreeMap::new(),
        })
        .unwrap();
    let moves = ConfMoves::between(&t2, &next);
    assert_eq!(moves.add_learners, vec![NodeId(6), NodeId(7)]);
    assert!(moves.add_voters.is_empty());
}

#[test]
fn removed_ids_are_remembered_and_never_reused() {
    let t = denver_paris().build().unwrap();
    assert!(t.removed_ids().is_empty());
    let spare = |id: u64| MemberSpec {
        id: NodeId(id),
        name: format!("n{id}"),
        host: format!("h{id}"),
        appliance: Virtual,
    };
    let replaced = t
        .apply(&TopologyChange::ReplaceMember {
            old: NodeId(1),
            new: spare(8),
            address: None,
        })
        .unwrap();
    // The new member holds the old one's slot; the old id is remembered.
    assert_eq!(
        replaced.member(NodeId(8)).unwrap().role,
        t.member(NodeId(1)).unwrap().role
    );
    assert!(replaced.is_removed(NodeId(1)) && !replaced.is_removed(NodeId(8)));
    // Given back to a new member, in any way: refused, naming the id.
    let back = TopologyChange::ReplaceMember {
        old: NodeId(8),
        new: spare(1),
        address: None,
    };
    let err = replaced.apply(&back).unwrap_err();
    assert_eq!(err, TopologyError::IdRemoved { id: NodeId(1) });
    assert!(err.to_string().contains("pick a new id"));
    let witness = TopologyChange::AddWitness {
        witness: Witness::new(1, "W9", "paris", "h9"),
        address: None,
    };
    assert_eq!(
        replaced.apply(&witness).err(),
        Some(TopologyError::IdRemoved { id: NodeId(1) })
    );
    // A removed witness and a removed core's members are remembered too,
    // and carried from version to version.
    let no_witness = replaced
        .apply(&TopologyChange::RemoveMember { id: NodeId(5) })
        .unwrap();
    let removed: Vec<NodeId> = no_witness.removed_ids().iter().copied().collect();
    assert_eq!(removed, vec![NodeId(1), NodeId(5)]);
    let no_paris = replaced
        .apply(&TopologyChange::RemoveSurvivableCore {
            core: "cm02".into(),
        })
        .unwrap();
    let removed: Vec<NodeId> = no_paris.removed_ids().iter().copied().collect();
    assert_eq!(removed, vec![NodeId(1), NodeId(3), NodeId(4)]);
    // The fingerprint does not cover them: files never list them.
    assert_eq!(
        TopologyBuilder::of(&no_paris)
            .build()
            .unwrap()
            .fingerprint(),
        no_paris.fingerprint()
    );
}
