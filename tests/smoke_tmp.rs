use std::time::Duration;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::topology::{
    Appliance::Virtual, Core, NodeId, Site, SurvivableCore, Topology, Witness,
};

#[test]
fn smoke() {
    let t = Topology::builder(7)
        .site(Site::main("denver"))
        .site(Site::backup("paris"))
        .site(Site::backup("kansas"))
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
        ))
        .witness(Witness::new(5, "W1", "kansas", "wit-1"))
        .build()
        .unwrap()
        .shared();
    let mut sim = Sim::builder(t).seed(1).build(|_| KvStore::default());
    sim.run_for(Duration::from_secs(1));
    println!("leader {:?} at {}", sim.leader(), sim.now_ms());
    for i in 0..10 {
        let l = sim.leader().unwrap();
        sim.propose(l, format!("set k{i} v").into_bytes()).unwrap();
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_for(Duration::from_millis(500));
    println!("commits {}", sim.commits().len());
    let t0 = sim.now_us();
    sim.crash(NodeId(1));
    for i in 0..30 {
        let _ = sim.propose(NodeId(2), format!("set x{i} v").into_bytes());
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_secs(1));
    println!("leader {:?}", sim.leader());
    for l in sim
        .trace()
        .iter()
        .filter(|l| l.parse::<u64>().is_err())
        .skip(0)
        .take(60)
    {
        println!("{l}");
    }
    let first = sim
        .commits()
        .iter()
        .filter(|c| c.done_us > t0)
        .map(|c| c.done_us - t0)
        .min();
    println!(
        "first commit after crash: {:?} us; commits {}",
        first,
        sim.commits().len()
    );
    println!("violations {:?}", sim.violations());
    // geo
    let t1 = sim.now_us();
    sim.isolate_site("denver");
    for i in 0..400 {
        let _ = sim.propose(NodeId(3), format!("set y{i} v").into_bytes());
        sim.run_for(Duration::from_millis(10));
    }
    println!("leader after isolation {:?}", sim.leader());
    let first = sim
        .commits()
        .iter()
        .filter(|c| c.done_us > t1 && c.outcome.id.node == NodeId(3))
        .map(|c| c.done_us - t1)
        .min();
    println!("first commit after isolation: {:?} us", first);
    sim.heal();
    sim.run_for(Duration::from_secs(8));
    println!("leader after heal {:?}", sim.leader());
    for l in sim
        .trace()
        .iter()
        .filter(|l| l.contains("HandBack") || l.contains("BecameLeader"))
    {
        println!("{l}");
    }
    println!(
        "violations {:?} {:?}",
        sim.violations(),
        sim.check_converged()
    );
    println!(
        "pending at 3: {}",
        sim.node(NodeId(3)).unwrap().pending_proposals()
    );
}
