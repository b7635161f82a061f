//! The cluster's lease table on a real PostgreSQL (run under
//! `scripts/with-postgres`): claims, renewals, fencing by epoch, hand-over,
//! leaving, and the edge's lookup.

#![allow(clippy::unwrap_used)]

use std::time::Duration;
use tapir_store::cluster::{ClusterTables, NodeRow};
use tapir_store::testing::{fresh_postgres_db, postgres_url};

fn node(name: &str) -> NodeRow {
    NodeRow {
        name: name.to_owned(),
        sip_uri: format!("sip:127.0.0.1:5{}", name.len()),
        http_url: format!("http://{name}.invalid"),
    }
}

async fn tables() -> Option<ClusterTables> {
    let base = postgres_url("cluster lease table")?;
    let url = fresh_postgres_db(&base).await.unwrap();
    Some(ClusterTables::open(&url).await.unwrap())
}

fn lines(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn only_one_node_wins_a_line_claimed_at_once() {
    let Some(t) = tables().await else { return };
    let wanted = lines(&["1001", "1002", "1003"]);
    let lease = Duration::from_secs(10);
    let (a, b) = tokio::join!(t.claim("a", &wanted, lease), t.claim("b", &wanted, lease));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 3, "a won {a:?}, b won {b:?}");
    for (line, epoch) in a.iter().chain(b.iter()) {
        assert_eq!(*epoch, 1, "{line}");
    }
    // A second claim of a held, unexpired line wins nothing.
    let again = t.claim("c", &wanted, lease).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    let rows = t.leases().await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| !r.expired && (r.node == "a" || r.node == "b"))
    );
}

#[tokio::test]
async fn a_node_that_lost_its_lease_can_neither_renew_nor_release_it() {
    let Some(t) = tables().await else { return };
    let line = lines(&["2001"]);
    let won = t
        .claim("old", &line, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(won, vec![("2001".to_owned(), 1)]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Expired: the old node's renewal fails, the new node's claim wins
    // with a higher epoch.
    let renewed = t.renew("old", &won, Duration::from_secs(10)).await.unwrap();
    assert!(
        renewed.is_empty(),
        "an expired lease was renewed: {renewed:?}"
    );
    let taken = t
        .claim("new", &line, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(taken, vec![("2001".to_owned(), 2)]);
    // The old node, with its old epoch, touches nothing.
    assert!(
        t.renew("old", &won, Duration::from_secs(10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(t.release("old", &won).await.unwrap(), 0);
    // Even with the new epoch, a renewal names the holder.
    assert!(
        t.renew("old", &taken, Duration::from_secs(10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        t.renew("new", &taken, Duration::from_secs(10))
            .await
            .unwrap(),
        taken
    );
    let rows = t.leases().await.unwrap();
    assert_eq!(rows[0].node, "new");
    assert_eq!(rows[0].epoch, 2);
    assert!(!rows[0].expired);
}

#[tokio::test]
async fn a_released_line_is_claimed_by_the_next_node_at_once() {
    let Some(t) = tables().await else { return };
    let lease = Duration::from_secs(10);
    let won = t.claim("a", &lines(&["3001"]), lease).await.unwrap();
    assert_eq!(t.release("a", &won).await.unwrap(), 1);
    assert!(t.leases().await.unwrap()[0].expired);
    let taken = t.claim("b", &lines(&["3001"]), lease).await.unwrap();
    assert_eq!(taken, vec![("3001".to_owned(), 2)]);
}

#[tokio::test]
async fn the_edge_finds_the_serving_node_of_an_address_until_its_lease_ends() {
    let Some(t) = tables().await else { return };
    let a = node("a");
    t.heartbeat(&a).await.unwrap();
    t.heartbeat(&node("bb")).await.unwrap();
    t.publish_addresses(&[
        ("4001".to_owned(), "4001".to_owned()),
        ("4002".to_owned(), "4001".to_owned()),
    ])
    .await
    .unwrap();
    assert_eq!(
        t.serving_node("4002").await.unwrap(),
        None,
        "not claimed yet"
    );
    t.claim("a", &lines(&["4001"]), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(t.serving_node("4001").await.unwrap(), Some(a.clone()));
    assert_eq!(t.serving_node("4002").await.unwrap(), Some(a.clone()));
    assert_eq!(t.serving_node("9999").await.unwrap(), None);
    let live = t.live_nodes(Duration::from_secs(10)).await.unwrap();
    assert_eq!(live.len(), 2);
    // Leaving ends the leases and the heartbeat at once.
    t.leave("a").await.unwrap();
    assert_eq!(t.serving_node("4001").await.unwrap(), None);
    let live = t.live_nodes(Duration::from_secs(10)).await.unwrap();
    assert_eq!(live, vec![node("bb")]);
    let taken = t
        .claim("bb", &lines(&["4001"]), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(taken, vec![("4001".to_owned(), 2)]);
}

#[tokio::test]
async fn nodes_starting_at_once_create_the_tables_once() {
    let Some(base) = postgres_url("cluster tables created at once") else {
        return;
    };
    let url = fresh_postgres_db(&base).await.unwrap();
    let (a, b, c) = tokio::join!(
        ClusterTables::open(&url),
        ClusterTables::open(&url),
        ClusterTables::open(&url)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
}

#[tokio::test]
async fn registrations_are_written_only_under_the_lease_that_covers_them() {
    let Some(t) = tables().await else { return };
    let lease = Duration::from_secs(10);
    let won = t.claim("a", &lines(&["5001"]), lease).await.unwrap();
    let epoch = won[0].1;
    assert!(
        t.save_registration("a", "5001", epoch, "5001", Some("[1]"))
            .await
            .unwrap()
    );
    // Another node, or a stale epoch, writes nothing.
    assert!(
        !t.save_registration("b", "5001", epoch, "5001", Some("[2]"))
            .await
            .unwrap()
    );
    assert!(
        !t.save_registration("a", "5001", epoch + 1, "5001", Some("[3]"))
            .await
            .unwrap()
    );
    assert!(
        t.save_registration("a", "5001", epoch, "5001", None)
            .await
            .unwrap()
    );
    let saved = t.registrations(&lines(&["5001", "5002"])).await.unwrap();
    assert!(saved.is_empty(), "deleted under the lease: {saved:?}");
    assert!(
        t.save_registration("a", "5001", epoch, "5001", Some("[4]"))
            .await
            .unwrap()
    );
    // The lease moves: the old holder can neither change nor delete it.
    t.release("a", &won).await.unwrap();
    let taken = t.claim("b", &lines(&["5001"]), lease).await.unwrap();
    assert!(
        !t.save_registration("a", "5001", epoch, "5001", None)
            .await
            .unwrap()
    );
    assert_eq!(
        t.registrations(&lines(&["5001"])).await.unwrap(),
        vec![("5001".to_owned(), "[4]".to_owned())]
    );
    assert!(
        t.save_registration("b", "5001", taken[0].1, "5001", Some("[5]"))
            .await
            .unwrap()
    );
    assert_eq!(
        t.registrations(&lines(&["5001"])).await.unwrap()[0].1,
        "[5]"
    );
}

#[tokio::test]
async fn each_node_name_gets_its_own_slot_for_ever() {
    let Some(t) = tables().await else { return };
    let (a, b, c) = tokio::join!(t.slot("a"), t.slot("b"), t.slot("c"));
    let mut slots = vec![a.unwrap(), b.unwrap(), c.unwrap()];
    let again = t.slot("b").await.unwrap();
    assert_eq!(again, slots[1], "a name keeps its slot");
    slots.sort();
    assert_eq!(slots, vec![1, 2, 3], "joined at once, still distinct");
    t.leave("b").await.unwrap();
    assert_eq!(t.slot("b").await.unwrap(), again, "kept after leaving");
}

#[tokio::test]
async fn a_nodes_calls_in_progress_are_replaced_each_save_and_taken_once() {
    let Some(t) = tables().await else { return };
    let call = |n: i64, parties: &[&str]| (n, lines(parties), format!("{{\"record\":{n}}}"));
    t.save_open_calls(
        "a",
        &[call(1, &["1001", "1002"]), call(2, &["1003", "+4930555"])],
    )
    .await
    .unwrap();
    t.save_open_calls("b", &[call(1, &["1004"])]).await.unwrap();
    // A save replaces the node's whole set.
    t.save_open_calls(
        "a",
        &[call(2, &["1003", "+4930555"]), call(3, &["1002", "1005"])],
    )
    .await
    .unwrap();
    // Taken by an address of the lines claimed: each record once.
    let taken = t
        .take_open_calls("a", Some(&lines(&["1002"])))
        .await
        .unwrap();
    assert_eq!(taken, vec!["{\"record\":3}".to_string()]);
    assert!(
        t.take_open_calls("a", Some(&lines(&["1002"])))
            .await
            .unwrap()
            .is_empty()
    );
    // Another node's rows are not touched; the rest of a's go with `None`.
    assert_eq!(
        t.take_open_calls("a", None).await.unwrap(),
        vec!["{\"record\":2}".to_string()]
    );
    assert_eq!(
        t.take_open_calls("b", None).await.unwrap(),
        vec!["{\"record\":1}".to_string()]
    );
    t.save_open_calls("a", &[]).await.unwrap();
    assert!(t.take_open_calls("a", None).await.unwrap().is_empty());
}
