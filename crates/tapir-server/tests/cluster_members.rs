//! Cluster membership (ADR 0002) with real servers on a real PostgreSQL
//! (run under `scripts/with-postgres`): nodes sharing one configuration
//! split the lines between them, each line held by exactly one node, and a
//! node that stops hands its lines to the others at once; a bad
//! `[cluster]` section is refused at start.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use support::{Api, Phone, server_with};
use tapir_server::RunningServer;
use tapir_server::config::ClusterConfig;

fn cluster(node: &str, postgres: &str) -> ClusterConfig {
    ClusterConfig {
        node: node.into(),
        postgres: postgres.into(),
        nats: None,
        edge: None,
        secret: None,
        lease_secs: 1.5,
        round_secs: 0.2,
    }
}

async fn member(node: &str, postgres: &str) -> RunningServer {
    let c = cluster(node, postgres);
    server_with(move |cfg| cfg.cluster = Some(c)).await
}

/// `/healthz`'s cluster part: (serving, lines).
async fn health(server: &RunningServer) -> (bool, BTreeSet<String>) {
    let (status, body) = Api::new(server, None).get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let c = &body["cluster"];
    let lines = c["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    (c["serving"] == Value::Bool(true), lines)
}

/// Wait (bounded) until `check` holds for the members' health.
async fn until(
    servers: &[&RunningServer],
    what: &str,
    check: impl Fn(&[(bool, BTreeSet<String>)]) -> bool,
) -> Vec<(bool, BTreeSet<String>)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut seen = Vec::new();
        for s in servers {
            seen.push(health(s).await);
        }
        if check(&seen) {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const ALL: [&str; 5] = ["2001", "2002", "2003", "2004", "1001"];

fn all_lines() -> BTreeSet<String> {
    ALL.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn members_split_the_lines_and_a_leaving_node_hands_its_lines_over() {
    let Some(base) = tapir_store::testing::postgres_url("cluster members") else {
        return;
    };
    let url = tapir_store::testing::fresh_postgres_db(&base)
        .await
        .unwrap();
    let a = member("node-a", &url).await;
    let b = member("node-b", &url).await;
    let c = member("node-c", &url).await;
    // The first node to start takes every line; as the others join, it
    // hands each idle line to the node the rendezvous hash gives it.
    let names = ["node-a", "node-b", "node-c"].map(|n| tapir_cluster::NodeName::new(n).unwrap());
    let split = |live: &[tapir_cluster::NodeName]| -> Vec<BTreeSet<String>> {
        live.iter()
            .map(|n| {
                ALL.iter()
                    .filter(|l| tapir_cluster::preferred_node(l, live) == Some(n))
                    .map(|l| l.to_string())
                    .collect()
            })
            .collect()
    };
    let expected = split(&names);
    let seen = until(&[&a, &b, &c], "every line served by its node", |seen| {
        seen.iter().all(|(serving, _)| *serving)
            && seen.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>() == expected
    })
    .await;
    // Call ids are unique across the cluster: each node's start at its
    // own slot (2^44 apart), whatever its own store says.
    let mut firsts = Vec::new();
    for s in [&a, &b, &c] {
        let id = s.switch.with(|sw, _| sw.next_id()).await.unwrap();
        firsts.push(id >> 44);
    }
    firsts.sort();
    firsts.dedup();
    assert_eq!(firsts.len(), 3, "each node its own id range: {firsts:?}");
    // No line on two nodes (the sums above would also catch it).
    for (i, (_, x)) in seen.iter().enumerate() {
        for (_, y) in seen.iter().skip(i + 1) {
            assert!(x.is_disjoint(y), "{x:?} and {y:?} share a line");
        }
    }
    // The split is the rendezvous hash's, so more than one node serves.
    assert!(
        seen.iter().filter(|(_, l)| !l.is_empty()).count() >= 2,
        "{seen:?}"
    );
    let (_, c_lines) = seen[2].clone();
    // node-c stops: its lines go to the other two at once (its leases end
    // when it leaves; nobody waits for them to run out).
    c.shutdown().await;
    let expected = split(&names[..2]);
    let seen = until(&[&a, &b], "node-c's lines taken over", |seen| {
        let union: BTreeSet<String> = seen.iter().flat_map(|(_, l)| l.clone()).collect();
        union == all_lines() && seen.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>() == expected
    })
    .await;
    for line in &c_lines {
        assert!(
            seen.iter().any(|(_, l)| l.contains(line)),
            "{line} not taken over"
        );
    }
    // node-c comes back under the same name: it gets its lines again (they
    // are idle), and still no line is served twice.
    let c = member("node-c", &url).await;
    until(&[&a, &b, &c], "node-c back", |seen| {
        let total: usize = seen.iter().map(|(_, l)| l.len()).sum();
        total == ALL.len() && seen[2].1 == c_lines && seen[2].0
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test]
async fn a_bad_cluster_section_is_refused_at_start() {
    let mut config = tapir_server::Config::from_toml(support::CONFIG).unwrap();
    config.store.url = Some("sqlite::memory:".into());
    for (bad, says) in [
        (cluster("Node A", "postgres://127.0.0.1:1/x"), "node"),
        (cluster("a", "mysql://127.0.0.1/x"), "postgres"),
        (
            ClusterConfig {
                round_secs: 5.0,
                ..cluster("a", "postgres://127.0.0.1:1/x")
            },
            "round_secs",
        ),
    ] {
        let mut config = config.clone();
        config.cluster = Some(bad);
        let err = tapir_server::start(config).await.expect_err("refused");
        assert!(err.to_string().contains(says), "{err}");
    }
    // The TOML form parses into the same section.
    let text = format!(
        "{}\n[cluster]\nnode = \"n1\"\npostgres = \"postgres://127.0.0.1:1/x\"\n",
        support::CONFIG
    );
    let parsed = tapir_server::Config::from_toml(&text).unwrap();
    let c = parsed.cluster.unwrap();
    assert_eq!(
        (c.node.as_str(), c.lease_secs, c.round_secs),
        ("n1", 10.0, 2.0)
    );
}

/// Wrong digests for 1001 from 192.0.2.66 through the edge: that user at
/// that address is locked, not at the edge, so the real 1001 behind the
/// same edge still registers. A sender that is not the edge cannot borrow
/// the header to escape its own lock-out. And a node takes registrations
/// only for the lines it serves.
#[tokio::test]
async fn a_guesser_behind_the_edge_locks_itself_not_the_edge() {
    let Some(base) = tapir_store::testing::postgres_url("edge source trust") else {
        return;
    };
    let url = tapir_store::testing::fresh_postgres_db(&base)
        .await
        .unwrap();
    let edge_socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let edge = edge_socket.local_addr().unwrap();
    let mut c = cluster("node-a", &url);
    c.edge = Some(edge.to_string());
    let s = server_with(move |cfg| {
        cfg.cluster = Some(c);
        cfg.sip.listen = vec!["udp:127.0.0.1:0".into()];
        cfg.sip.digest_algorithms = vec!["MD5".into()];
    })
    .await;
    until(&[&s], "node-a serving every line", |seen| {
        seen[0].0 && seen[0].1 == all_lines()
    })
    .await;
    let sip = s.sip_addr.unwrap();
    let mut through_edge = Phone::on(edge_socket, sip);
    through_edge.extra = "X-Tapir-Source: 192.0.2.66:5060\r\n".into();
    let statuses = [
        through_edge.register_with("1001", "guess-1").await,
        through_edge.register_with("1001", "guess-2").await,
        through_edge.register_with("1001", "guess-3").await,
        through_edge.register_with("1001", "guess-4").await,
        through_edge.register_with("1001", "guess-5").await,
    ];
    assert_eq!(statuses, [401, 401, 401, 401, 403], "the guesser is locked");
    assert_eq!(through_edge.register_with("1001", "pw").await, 403);
    // The phone of 1001 behind the same edge is not.
    through_edge.extra = "X-Tapir-Source: 192.0.2.10:5060\r\n".into();
    assert_eq!(through_edge.register_with("1001", "pw").await, 200);
    // Not from the edge: the header is ignored, the sender's own address
    // is locked whatever it claims.
    let mut outsider = Phone::at("127.0.0.2", sip).await;
    for n in 0..5 {
        outsider.extra = format!("X-Tapir-Source: 192.0.2.{n}:5060\r\n");
        outsider.register_with("1001", "guess").await;
    }
    outsider.extra = "X-Tapir-Source: 192.0.2.11:5060\r\n".into();
    assert_eq!(outsider.register_with("1001", "pw").await, 403);
    // An address this node does not serve: 503 with Retry-After, no
    // challenge (the registrar never sees it).
    let mut stranger = Phone::at("127.0.0.3", sip).await;
    let (status, text) = stranger.register("9999", None).await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 2"),
        "{text}"
    );
    s.shutdown().await;
}
