//! The lease rules, checked without a store.

use super::*;

fn node(name: &str) -> NodeName {
    NodeName::new(name).expect("valid name")
}

fn lines(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("line-{i}")).collect()
}

fn lease(name: &str, epoch: i64, expired: bool) -> Lease {
    Lease {
        node: node(name),
        epoch,
        expired,
    }
}

#[test]
fn node_names_are_checked() {
    assert!(NodeName::new("node-1").is_ok());
    assert_eq!(NodeName::new(""), Err(NodeNameError::Length));
    assert_eq!(NodeName::new(&"a".repeat(33)), Err(NodeNameError::Length));
    assert_eq!(NodeName::new("Node1"), Err(NodeNameError::Character));
    assert_eq!(NodeName::new("a.b"), Err(NodeNameError::Character));
    assert_eq!(NodeName::new("a b"), Err(NodeNameError::Character));
}

#[test]
fn every_node_computes_the_same_owner_whatever_the_order() {
    let a = [node("a"), node("b"), node("c")];
    let b = [node("c"), node("a"), node("b")];
    for line in lines(200) {
        assert_eq!(preferred_node(&line, &a), preferred_node(&line, &b));
    }
    assert_eq!(preferred_node("x", &[]), None);
}

#[test]
fn lines_spread_over_the_nodes() {
    let nodes = [node("n1"), node("n2"), node("n3")];
    let mut count = BTreeMap::new();
    for line in lines(3000) {
        let owner = preferred_node(&line, &nodes).expect("a live node");
        *count.entry(owner.clone()).or_insert(0) += 1;
    }
    for n in &nodes {
        let c = count.get(n).copied().unwrap_or(0);
        assert!((800..1200).contains(&c), "{n} serves {c} of 3000");
    }
}

#[test]
fn a_node_leaving_moves_only_its_own_lines() {
    let all = [node("n1"), node("n2"), node("n3")];
    let left = [node("n1"), node("n3")];
    let mut moved = 0;
    for line in lines(1000) {
        let before = preferred_node(&line, &all).expect("live");
        let after = preferred_node(&line, &left).expect("live");
        if before.as_str() == "n2" {
            moved += 1;
            assert_ne!(after.as_str(), "n2");
        } else {
            assert_eq!(before, after, "{line} moved though its node stayed");
        }
    }
    assert!(moved > 0);
}

#[test]
fn a_round_claims_free_and_expired_lines_it_wins_and_waits_for_live_leases() {
    let me = node("n1");
    let other = node("n2");
    let live = vec![me.clone(), other.clone()];
    let all = lines(60);
    let mine: Vec<&String> = all
        .iter()
        .filter(|l| preferred_node(l, &live) == Some(&me))
        .collect();
    let theirs: Vec<&String> = all
        .iter()
        .filter(|l| preferred_node(l, &live) == Some(&other))
        .collect();
    assert!(mine.len() >= 3 && !theirs.is_empty());
    let mut leases = BTreeMap::new();
    // mine[0]: never claimed; mine[1]: expired from n2; mine[2]: live on n2.
    leases.insert(mine[1].clone(), lease("n2", 4, true));
    leases.insert(mine[2].clone(), lease("n2", 7, false));
    // One of theirs, expired: n2 claims it, not n1.
    leases.insert(theirs[0].clone(), lease("n2", 2, true));
    let snapshot = Snapshot { live, leases };
    let plan = plan_round(&me, all.iter().map(String::as_str), &snapshot, |_| false);
    assert!(plan.claim.contains(mine[0]));
    assert!(plan.claim.contains(mine[1]));
    assert!(
        !plan.claim.contains(mine[2]),
        "a live lease of another node is waited for"
    );
    assert!(!plan.claim.contains(theirs[0]));
    assert!(plan.renew.is_empty() && plan.hand_over.is_empty());
    assert_eq!(plan.claim.len(), mine.len() - 1);
}

#[test]
fn a_round_renews_its_leases_and_hands_over_idle_lines_another_node_wins() {
    let me = node("n1");
    let newcomer = node("n2");
    let all = lines(40);
    // n1 held everything while alone; n2 has joined.
    let leases: BTreeMap<String, Lease> = all
        .iter()
        .map(|l| (l.clone(), lease("n1", 1, false)))
        .collect();
    let snapshot = Snapshot {
        live: vec![me.clone(), newcomer.clone()],
        leases,
    };
    let busy_line = all
        .iter()
        .find(|l| preferred_node(l, &snapshot.live) == Some(&newcomer))
        .expect("n2 wins some line")
        .clone();
    let plan = plan_round(&me, all.iter().map(String::as_str), &snapshot, |l| {
        l == busy_line
    });
    assert!(plan.claim.is_empty());
    for (line, epoch) in &plan.hand_over {
        assert_eq!(*epoch, 1);
        assert_eq!(preferred_node(line, &snapshot.live), Some(&newcomer));
        assert_ne!(
            *line, busy_line,
            "a line with a call in progress is never handed over"
        );
    }
    assert!(plan.renew.contains(&(busy_line.clone(), 1)));
    assert_eq!(plan.renew.len() + plan.hand_over.len(), all.len());
    assert!(!plan.hand_over.is_empty());
}

#[test]
fn a_node_whose_own_lease_expired_claims_it_again_with_a_new_epoch() {
    let me = node("n1");
    let mut leases = BTreeMap::new();
    leases.insert("line-0".to_owned(), lease("n1", 3, true));
    let snapshot = Snapshot {
        live: vec![me.clone()],
        leases,
    };
    let plan = plan_round(&me, ["line-0"], &snapshot, |_| true);
    assert_eq!(plan.claim, vec!["line-0".to_owned()]);
    assert!(
        plan.renew.is_empty(),
        "an expired lease is claimed, never renewed"
    );
}

#[test]
fn the_fence_stops_a_node_before_its_lease_can_expire() {
    let lease = Duration::from_secs(10);
    let mut fence = Fence::new(lease);
    let t0 = Instant::now();
    assert!(
        !fence.may_serve(t0),
        "nothing served before the first renewal"
    );
    fence.renewed(t0);
    assert!(fence.may_serve(t0 + Duration::from_secs(7)));
    assert!(!fence.may_serve(t0 + Duration::from_secs(8)));
    assert!(fence.stop_after() < lease);
    // An older round finishing late does not move the fence back.
    fence.renewed(t0 + Duration::from_secs(5));
    fence.renewed(t0 + Duration::from_secs(1));
    assert!(fence.may_serve(t0 + Duration::from_secs(12)));
    assert!(!fence.may_serve(t0 + Duration::from_secs(13)));
}
