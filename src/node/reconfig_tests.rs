use super::*;
use crate::topology::{denver_paris, Witness};

#[test]
fn one_conf_change_carries_the_moves_and_the_topology() {
    let t = denver_paris().build().unwrap();
    let next = t
        .apply(&TopologyChange::ReplaceMember {
            old: NodeId(5),
            new: Witness::new(9, "W2", "kansas", "wit-2").member,
            address: Some("w2:1".into()),
        })
        .unwrap();
    let moves = ConfMoves::between(&t, &next);
    let cc = conf_change(&moves, &TopologyRecord::from(&next));
    let kinds: Vec<(ConfChangeType, u64)> = (cc.changes.iter())
        .map(|c| (c.get_change_type(), c.node_id))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ConfChangeType::AddNode, 9),
            (ConfChangeType::RemoveNode, 5)
        ]
    );
    // Two changes: raft enters joint consensus and leaves it by itself.
    assert_eq!(cc.enter_joint(), Some(true));
    let rec = <TopologyRecord as prost::Message>::decode(&cc.context[..]).unwrap();
    assert_eq!(rec.version, 1);
    assert_eq!(moved(&t, &next), vec![NodeId(9)]);
}

#[test]
fn moved_names_set_and_changed_addresses_only() {
    let mut b = denver_paris();
    b.address(1, "a:1").address(2, "b:1");
    let t = b.build().unwrap();
    let next = t
        .apply(&TopologyChange::SetAddress {
            id: NodeId(2),
            address: "b:2".into(),
        })
        .unwrap();
    assert_eq!(moved(&t, &next), vec![NodeId(2)]);
    assert_eq!(moved(&next, &next), Vec::<NodeId>::new());
}
