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
use support::sip::{Peer, digest, header, register, sdp, status};
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

const SECRET: &str = "the-cluster-secret-of-this-test";

/// One INVITE from `from` to `to`, sent from `peer` with `extra` headers.
fn invite_text(peer: &Peer, call_id: &str, from: &str, to: &str, extra: &str) -> String {
    let local = peer.addr();
    format!(
        "INVITE sip:{to}@127.0.0.1 SIP/2.0\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id}\n\
         Max-Forwards: 70\n\
         From: <sip:{from}@tapir.test>;tag=f-{call_id}\n\
         To: <sip:{to}@tapir.test>\n\
         Call-ID: {call_id}\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:{from}@{local}>\n{extra}\
         Content-Type: application/sdp\n\n{sdp}",
        sdp = sdp(40_300),
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Calls between nodes (ADR 0002): two members behind one edge (this
/// test's socket) split the phone lines. A phone of node A calling a line
/// node B serves becomes an INVITE to the edge, for that line, marked
/// with a mark the cluster's secret verifies; the edge's refusal is the
/// caller's. A marked INVITE from the edge rings B's phone without a
/// challenge. A forged, stale or misplaced mark, or a mark from anywhere
/// but the edge, buys nothing.
#[tokio::test]
async fn calls_between_nodes_go_through_the_edge_with_a_mark_only_the_cluster_can_make() {
    let Some(base) = tapir_store::testing::postgres_url("calls between nodes") else {
        return;
    };
    let url = tapir_store::testing::fresh_postgres_db(&base)
        .await
        .unwrap();
    let edge = Peer::on(
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        "127.0.0.1:9".parse().unwrap(),
    );
    let phones = ["1101", "1102", "1103", "1104", "1105", "1106"];
    let start = |node: &'static str| {
        let mut c = cluster(node, &url);
        c.edge = Some(edge.addr().to_string());
        c.secret = Some(SECRET.into());
        server_with(move |cfg| {
            cfg.cluster = Some(c);
            cfg.sip.listen = vec!["udp:127.0.0.1:0".into()];
            cfg.sip.digest_algorithms = vec!["MD5".into()];
            for p in phones {
                let mut line = cfg.lines[4].clone();
                line.address = p.into();
                line.password = Some(format!("pw-{p}"));
                cfg.lines.push(line);
            }
        })
    };
    let a = start("node-a").await;
    let b = start("node-b").await;
    let seen = until(&[&a, &b], "the lines split", |seen| {
        seen.iter().all(|(serving, l)| *serving && !l.is_empty())
            && seen.iter().map(|(_, l)| l.len()).sum::<usize>() == ALL.len() + phones.len()
    })
    .await;
    let on = |i: usize| {
        phones
            .iter()
            .copied()
            .find(|p| seen[i].1.contains(*p))
            .unwrap_or_else(|| panic!("no phone line on node {i}: {seen:?}"))
    };
    let (la, lb) = (on(0), on(1));
    let (sip_a, sip_b) = (a.sip_addr.unwrap(), b.sip_addr.unwrap());
    let mark_b = tapir_cluster::NodeMark::new(
        tapir_cluster::NodeName::new("node-b").unwrap(),
        SECRET.as_bytes(),
    )
    .unwrap();

    // Outbound: A's phone calls B's line; A sends it to the edge, marked.
    let phone_a = Peer::bind(sip_a).await;
    register(&phone_a, la, &format!("pw-{la}")).await;
    let first = phone_a
        .request(&invite_text(&phone_a, "out-1", la, lb, ""))
        .await;
    assert_eq!(status(&first), 407, "{first}");
    let auth = digest(
        &first,
        la,
        &format!("pw-{la}"),
        "INVITE",
        &format!("sip:{lb}@127.0.0.1"),
    );
    phone_a
        .send(&invite_text(
            &phone_a,
            "out-2",
            la,
            lb,
            &format!("Proxy-Authorization: {auth}\n"),
        ))
        .await;
    let relayed = edge
        .next("A's INVITE to the edge", |t| t.starts_with("INVITE "))
        .await;
    assert!(
        relayed.starts_with(&format!("INVITE sip:{lb}@{} ", edge.addr())),
        "{relayed}"
    );
    let marked = header(&relayed, "X-Tapir-Node");
    let by = mark_b
        .verify(&marked, &header(&relayed, "Call-ID"), unix_now())
        .unwrap_or_else(|e| panic!("{e}: {marked}"));
    assert_eq!(
        (by.node.as_str(), by.from.as_str(), by.hops),
        ("node-a", la, 0)
    );
    // B's line is busy: the caller hears busy tone from A (early media,
    // as on one node), with no forwarding applied on A.
    let edge_to_a = Peer::on(edge.socket, sip_a);
    edge_to_a.respond(&relayed, 486, "busy-b", "\n").await;
    let busy = phone_a
        .next("the caller's busy tone", |t| {
            status(t) == 183 && header(t, "Call-ID") == "out-2"
        })
        .await;
    assert!(busy.contains("m=audio"), "{busy}");
    let edge = Peer::on(edge_to_a.socket, sip_b);

    // Inbound: a marked INVITE from the edge rings B's phone, unchallenged.
    let phone_b = Peer::bind(sip_b).await;
    register(&phone_b, lb, &format!("pw-{lb}")).await;
    let mark_a = tapir_cluster::NodeMark::new(
        tapir_cluster::NodeName::new("node-a").unwrap(),
        SECRET.as_bytes(),
    )
    .unwrap();
    let node_invite = |call_id: &str, to: &str, mark: String| {
        invite_text(&edge, call_id, la, to, &format!("X-Tapir-Node: {mark}\n"))
    };
    let good = mark_a.sign("in-1", la, 0, unix_now()).unwrap();
    edge.send(&node_invite("in-1", lb, good.clone())).await;
    let ringing = phone_b
        .next("B's phone rings", |t| t.starts_with("INVITE "))
        .await;
    assert!(
        header(&ringing, "From").contains(&format!("sip:{la}@")),
        "{ringing}"
    );
    phone_b.respond(&ringing, 486, "busy-phone", "\n").await;
    let refused = edge
        .next("B's answer to the edge", |t| {
            status(t) >= 400 && header(t, "Call-ID") == "in-1"
        })
        .await;
    assert_eq!(status(&refused), 486, "{refused}");

    // A mark for another call, a forged or stale one: 403, nothing rings.
    let other_call = mark_a.sign("another-call", la, 0, unix_now()).unwrap();
    let stale = mark_a.sign("in-4", la, 0, unix_now() - 120).unwrap();
    let forged = good.replace(&good[good.len() - 8..], "00000000");
    for (call_id, mark) in [("in-2", other_call), ("in-3", forged), ("in-4", stale)] {
        let r = edge.request(&node_invite(call_id, lb, mark)).await;
        assert_eq!(status(&r), 403, "{call_id}: {r}");
    }
    // A believed mark for a line B does not serve: 503, retry elsewhere.
    let misplaced = mark_a.sign("in-5", la, 0, unix_now()).unwrap();
    let r = edge.request(&node_invite("in-5", la, misplaced)).await;
    assert_eq!(status(&r), 503, "{r}");
    // The same good mark straight from a stranger (not the edge): a
    // device's request, challenged.
    let stranger = Peer::bind(sip_b).await;
    let good = mark_a.sign("in-6", la, 0, unix_now()).unwrap();
    let r = stranger
        .request(&invite_text(
            &stranger,
            "in-6",
            lb,
            lb,
            &format!("X-Tapir-Node: {good}\n"),
        ))
        .await;
    assert_eq!(status(&r), 407, "{r}");
    assert!(
        phone_b
            .next_within(Duration::from_millis(300), |t| t.starts_with("INVITE "))
            .await
            .is_none(),
        "nothing else rang B's phone"
    );
    a.shutdown().await;
    b.shutdown().await;
}
