//! SIP over TCP and TLS cannot hold tapir's file descriptors (issue 12,
//! findings 7 and 6 "resource bounds"): connections beyond `[sip]
//! tcp_max_connections` (in all) and `tcp_max_connections_per_source` (from
//! one address) are closed at once; a connection that carries no complete
//! SIP message for `tcp_idle_timeout`, including one that trickles a message
//! a byte at a time (slowloris), is closed; a TLS handshake that does not end
//! within `tls_handshake_timeout` is cut. A connection a registration or a
//! dialog still uses is kept however quiet it is. Before these bounds,
//! every such connection stayed open for as long as its peer liked.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::sip::digest;
use tapir_server::{Config, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A tapir serving SIP over UDP, TCP and TLS on port 0, with `change`.
async fn sip_server(data: &tempfile::TempDir, change: impl FnOnce(&mut Config)) -> RunningServer {
    let dir = data.path().to_path_buf();
    support::server_with(move |c| {
        c.data_dir = dir;
        c.sip.listen = vec![
            "udp:127.0.0.1:0".into(),
            "tcp:127.0.0.1:0".into(),
            "tls:127.0.0.1:0".into(),
        ];
        let extra = Config::from_toml(
            "[[lines]]\naddress = \"1002\"\nkind = \"phone\"\npassword = \"pw2\"\n",
        )
        .unwrap();
        c.lines.extend(extra.lines);
        change(c);
    })
    .await
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    tokio::time::timeout(support::WAIT, socket.connect(to))
        .await
        .unwrap()
        .unwrap()
}

/// An OPTIONS request over a stream from `local`.
fn options(local: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:tapir@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKsec{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:tapir@127.0.0.1>\r\n\
         Call-ID: security-loop-{n}-{}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        local.port()
    )
}

/// tapir answers a request on `stream`: the connection is served.
async fn served(stream: &mut TcpStream, n: u32) -> bool {
    let request = options(stream.local_addr().unwrap(), n);
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(support::WAIT, stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => buf.starts_with(b"SIP/2.0 "),
        _ => false,
    }
}

/// tapir closes `stream` within `within` (it reads end-of-stream or an
/// error); what tapir sends before is skipped.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Read from `stream` until the text read holds a response with status
/// `code`; returns all that was read.
async fn read_until_status(stream: &mut TcpStream, code: u16) -> String {
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let mut text = String::new();
    let mut buf = vec![0u8; 8192];
    let wanted = format!("SIP/2.0 {code} ");
    while !text.contains(&wanted) || !text.ends_with("\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {code} over TCP: {text}"))
            .unwrap();
        assert!(n > 0, "tapir closed the connection: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

/// Phone 1001 registers over `stream` (digest, password `pw`).
async fn register_over(stream: &mut TcpStream) {
    let local = stream.local_addr().unwrap();
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-treg{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=treg\r\nTo: <sip:1001@127.0.0.1>\r\n\
             Call-ID: treg-{port}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:1001@{local};transport=tcp>\r\nExpires: 300\r\n{auth}\
             Content-Length: 0\r\n\r\n",
            port = local.port()
        )
    };
    stream.write_all(register(1, "").as_bytes()).await.unwrap();
    let challenge = read_until_status(stream, 401).await;
    let auth = digest(&challenge, "1001", "pw", "REGISTER", "sip:127.0.0.1");
    stream
        .write_all(register(2, &format!("Authorization: {auth}\r\n")).as_bytes())
        .await
        .unwrap();
    read_until_status(stream, 200).await;
}

#[tokio::test]
async fn connections_beyond_the_caps_are_closed_at_once() {
    let data = tempfile::tempdir().unwrap();
    let server = sip_server(&data, |c| {
        c.sip.tcp_max_connections = 3;
        c.sip.tcp_max_connections_per_source = 2;
    })
    .await;
    let tcp = server.sip_tcp_addr.unwrap();
    let mut a1 = connect_from([127, 0, 0, 1], tcp).await;
    let mut a2 = connect_from([127, 0, 0, 1], tcp).await;
    assert!(
        served(&mut a1, 1).await,
        "first connection from 127.0.0.1 is served"
    );
    assert!(
        served(&mut a2, 2).await,
        "second connection from 127.0.0.1 is served"
    );
    let mut a3 = connect_from([127, 0, 0, 1], tcp).await;
    assert!(
        closed_within(&mut a3, support::WAIT).await,
        "a third connection from 127.0.0.1 is over the per-source cap and closed"
    );
    let mut b1 = connect_from([127, 0, 0, 2], tcp).await;
    assert!(served(&mut b1, 3).await, "another source still gets in");
    // The TLS listener shares the caps.
    let mut c1 = connect_from([127, 0, 0, 3], server.sip_tls_addr.unwrap()).await;
    assert!(
        closed_within(&mut c1, support::WAIT).await,
        "a fourth connection in all is over the total cap and closed"
    );
    // A connection that ends gives its place back.
    drop(a1);
    let mut admitted = false;
    for n in 0..40 {
        let mut c = connect_from([127, 0, 0, 3], tcp).await;
        if served(&mut c, 10 + n).await {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        admitted,
        "a place freed by a closed connection is taken again"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn idle_and_slowloris_connections_are_closed() {
    let data = tempfile::tempdir().unwrap();
    let server = sip_server(&data, |c| c.sip.tcp_idle_timeout = 1).await;
    let tcp = server.sip_tcp_addr.unwrap();
    let mut idle = connect_from([127, 0, 0, 1], tcp).await;
    let mut slow = connect_from([127, 0, 0, 1], tcp).await;
    let mut busy = connect_from([127, 0, 0, 1], tcp).await;
    // The slowloris peer starts a request and adds a byte every 200 ms;
    // the busy one sends a whole request every 400 ms.
    let head = options(slow.local_addr().unwrap(), 1);
    slow.write_all(&head.as_bytes()[..40]).await.unwrap();
    let mut slow_closed = false;
    let mut busy_served = 0;
    for i in 0..20u32 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !slow_closed
            && (slow.write_all(b"X").await.is_err()
                || closed_within(&mut slow, Duration::from_millis(1)).await)
        {
            slow_closed = true;
        }
        if i % 2 == 0 && served(&mut busy, 100 + i).await {
            busy_served += 1;
        }
    }
    assert!(
        slow_closed,
        "a connection trickling one request is closed as idle"
    );
    assert_eq!(
        busy_served, 10,
        "a connection that carries requests stays open meanwhile"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)).await,
        "a connection that sends nothing is closed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_is_cut() {
    let data = tempfile::tempdir().unwrap();
    // The idle timeout is long: only the handshake timeout can cut it.
    let server = sip_server(&data, |c| {
        c.sip.tls_handshake_timeout = 1;
        c.sip.tcp_idle_timeout = 3600;
    })
    .await;
    let tls = server.sip_tls_addr.unwrap();
    let mut silent = connect_from([127, 0, 0, 1], tls).await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(10)).await,
        "a TLS connection that never sends its ClientHello is closed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_quiet_connection_a_registration_or_a_call_uses_is_kept() {
    let data = tempfile::tempdir().unwrap();
    let server = sip_server(&data, |c| c.sip.tcp_idle_timeout = 1).await;
    let tcp = server.sip_tcp_addr.unwrap();
    let sip = server.sip_addr.unwrap();
    // 1001 registers over TCP and then says nothing.
    let mut registered = connect_from([127, 0, 0, 1], tcp).await;
    register_over(&mut registered).await;
    // 1002 registers over UDP and never answers: a call to it rings on.
    let mut callee = support::Phone::at("127.0.0.1", sip).await;
    assert_eq!(callee.register_with("1002", "pw2").await, 200);
    // A caller (1001 again, not registered on this connection) calls 1002
    // over a connection of its own, then says nothing either.
    let mut calling = connect_from([127, 0, 0, 2], tcp).await;
    let local = calling.local_addr().unwrap();
    let invite = |cseq: u32, auth: &str| {
        let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                    m=audio 40000 RTP/AVP 0\r\na=sendrecv\r\n";
        format!(
            "INVITE sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-tinv{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=tcall\r\nTo: <sip:1002@127.0.0.1>\r\n\
             Call-ID: tcall-{port}\r\nCSeq: {cseq} INVITE\r\n\
             Contact: <sip:1001@{local};transport=tcp>\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len(),
            port = local.port()
        )
    };
    calling.write_all(invite(1, "").as_bytes()).await.unwrap();
    let challenge = read_until_status(&mut calling, 407).await;
    let to = challenge
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap()
        .to_string();
    calling
        .write_all(
            format!(
                "ACK sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-tinv1\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=tcall\r\n{to}\r\n\
                 Call-ID: tcall-{port}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                port = local.port()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let auth = digest(&challenge, "1001", "pw", "INVITE", "sip:1002@127.0.0.1");
    calling
        .write_all(invite(2, &format!("Proxy-Authorization: {auth}\r\n")).as_bytes())
        .await
        .unwrap();
    read_until_status(&mut calling, 100).await;
    // A connection nobody uses, opened now, for comparison.
    let mut unused = connect_from([127, 0, 0, 3], tcp).await;
    assert!(
        closed_within(&mut unused, Duration::from_secs(10)).await,
        "an unused quiet connection is closed after the idle timeout"
    );
    // Both others have been quiet for longer than the idle timeout by now.
    assert!(
        !closed_within(&mut registered, Duration::from_secs(2)).await,
        "the connection a registration reaches its phone over is kept"
    );
    assert!(
        !closed_within(&mut calling, Duration::from_secs(1)).await,
        "the connection a call runs over is kept"
    );
    server.shutdown().await;
}
