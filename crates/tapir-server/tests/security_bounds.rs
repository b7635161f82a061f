//! Security regression tests of issue 12's bounds (findings 6 and 7), each
//! against a real server on loopback:
//!
//! - digest guessing locks the guesser (one user at one address), not every
//!   phone behind the address; spraying many users locks the address; an
//!   exempt network is never locked;
//! - the generated TLS private key is 0600 in a 0700 directory, and one an
//!   older tapir left readable is restricted at start;
//! - names with CR/LF, a 100 KB address and a 1 MB dial string are refused
//!   (`400 invalparam`), through the API and in the configuration file;
//! - idle and slowloris HTTP connections are closed after the idle timeout,
//!   and connections over the cap are refused.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use std::net::SocketAddr;
use support::{Api, Phone, server_with};
use tapir_server::RunningServer;

/// A server with SIP over UDP and phones 1001 (`pw`) and 1002 (`pw-1002`).
async fn sip_server(change: impl FnOnce(&mut tapir_server::Config)) -> (RunningServer, SocketAddr) {
    let s = server_with(|c| {
        c.sip.listen = vec!["udp:127.0.0.1:0".into()];
        c.sip.digest_algorithms = vec!["MD5".into()];
        change(c);
    })
    .await;
    let admin = Api::new(&s, Some("admin-secret"));
    let (status, body) = admin
        .post(
            "/v1/admin/lines",
            json!({"address": "1002", "password": "pw-1002"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sip = s.sip_addr.unwrap();
    (s, sip)
}

#[tokio::test]
async fn wrong_passwords_for_one_user_do_not_lock_another_user_at_that_source() {
    let (_s, sip) = sip_server(|_| {}).await;
    // A phone with a stale password, behind the office's one address.
    let mut stale = Phone::at("127.0.0.1", sip).await;
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..6 {
            out.push(stale.register_with("1001", "stale").await);
        }
        out
    };
    assert_eq!(statuses, [401, 401, 401, 401, 403, 403], "{statuses:?}");
    // Its user is locked at this address, even with the right password...
    assert_eq!(stale.register_with("1001", "pw").await, 403);
    // ...but the phone next to it, same address, registers.
    let mut neighbour = Phone::at("127.0.0.1", sip).await;
    assert_eq!(neighbour.register_with("1002", "pw-1002").await, 200);
    // And the locked user from another address too.
    let mut elsewhere = Phone::at("127.0.0.2", sip).await;
    assert_eq!(elsewhere.register_with("1001", "pw").await, 200);
}

#[tokio::test]
async fn spraying_many_users_from_one_source_locks_the_source() {
    let (_s, sip) = sip_server(|_| {}).await;
    let mut sprayer = Phone::at("127.0.0.1", sip).await;
    let mut statuses = Vec::new();
    for n in 0..30 {
        statuses.push(sprayer.register_with(&format!("90{n:02}"), "123456").await);
    }
    assert!(statuses[..29].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[29], 403);
    // Every user at that address is refused now, before any challenge.
    let mut same_address = Phone::at("127.0.0.1", sip).await;
    assert_eq!(same_address.register("1002", None).await.0, 403);
    // Other addresses are not.
    let mut elsewhere = Phone::at("127.0.0.2", sip).await;
    assert_eq!(elsewhere.register_with("1002", "pw-1002").await, 200);
}

#[tokio::test]
async fn an_exempt_source_is_never_locked() {
    let (_s, sip) = sip_server(|c| c.sip.lockout_exempt = vec!["127.0.0.0/8".into()]).await;
    let mut phone = Phone::at("127.0.0.1", sip).await;
    for n in 0..40 {
        assert_eq!(phone.register_with("1001", "wrong").await, 401, "{n}");
        assert_eq!(
            phone.register_with(&format!("90{n:02}"), "x").await,
            401,
            "{n}"
        );
    }
    assert_eq!(phone.register_with("1001", "pw").await, 200);
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn the_tls_private_key_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    let start = |dir: std::path::PathBuf| {
        server_with(move |c| {
            c.data_dir = dir;
            c.sip.listen = vec!["udp:127.0.0.1:0".into(), "tls:127.0.0.1:0".into()];
        })
    };
    let s = start(dir.clone()).await;
    assert!(s.sip_tls_addr.is_some());
    let key = dir.join("tls").join("key.der");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir.join("tls")), 0o700);
    s.shutdown().await;
    // A key an older tapir left world-readable is fixed at the next start.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.join("tls"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = start(dir.clone()).await;
    assert!(s.sip_tls_addr.is_some());
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir.join("tls")), 0o700);
    s.shutdown().await;
}

/// The status and error code of a JSON request.
async fn refused(api: &Api, method: &str, path: &str, body: serde_json::Value) -> (u16, String) {
    let (status, reply) = match method {
        "POST" => api.post(path, body).await,
        "PUT" => api.put(path, body).await,
        _ => unreachable!(),
    };
    let code = reply["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, code)
}

#[tokio::test]
async fn a_line_name_with_a_line_break_is_refused() {
    let s = server_with(|_| {}).await;
    let admin = Api::new(&s, Some("admin-secret"));
    let evil = "Evil\r\nX-Injected: yes";
    let new_line = json!({"address": "3001", "password": "pw-3001", "name": evil});
    assert_eq!(
        refused(&admin, "POST", "/v1/admin/lines", new_line).await,
        (400, "invalparam".into())
    );
    let renamed = json!({"address": "1001", "password": "pw", "name": evil});
    assert_eq!(
        refused(&admin, "PUT", "/v1/admin/lines/1001", renamed).await,
        (400, "invalparam".into())
    );
    for group in ["sales\nX: y", "sales\u{0}"] {
        let grouped = json!({"address": "1001", "password": "pw", "pickup_group": group});
        assert_eq!(
            refused(&admin, "PUT", "/v1/admin/lines/1001", grouped).await,
            (400, "invalparam".into())
        );
    }
    // Nothing was changed.
    let (_, line) = admin.get("/v1/admin/lines/1001").await;
    assert!(line["name"].is_null(), "{line}");
    assert_eq!(admin.get("/v1/admin/lines/3001").await.0, 404);

    // A configuration file with such a name does not start.
    let mut config = tapir_server::Config::from_toml(support::CONFIG).unwrap();
    config.store.url = Some("sqlite::memory:".into());
    config.lines[0].name = Some(evil.into());
    let started = tapir_server::start(config).await;
    let Err(error) = started else {
        panic!("a name with CR/LF must not start");
    };
    assert!(error.to_string().contains("control character"), "{error}");
}

#[tokio::test]
async fn an_oversized_address_or_dial_string_is_refused() {
    let s = server_with(|_| {}).await;
    let admin = Api::new(&s, Some("admin-secret"));
    let huge_address = "1".repeat(100 * 1024);
    let new_line = json!({"address": huge_address, "password": "pw-x"});
    assert_eq!(
        refused(&admin, "POST", "/v1/admin/lines", new_line).await,
        (400, "invalparam".into())
    );
    let alpha = Api::new(&s, Some("tok-alpha"));
    alpha.open("2001", &["owner"]).await;
    let huge_dial = "1".repeat(1024 * 1024);
    let call = json!({"from": "2001", "to": huge_dial});
    assert_eq!(
        refused(&alpha, "POST", "/v1/calls", call).await,
        (400, "invalparam".into())
    );
    // Forwarding to a 1 MB destination, too.
    let rules = json!({"rules": [{"mode": "unconditional", "to": "1".repeat(1024 * 1024)}]});
    assert_eq!(
        refused(&alpha, "PUT", "/v1/addresses/2001/forwarding", rules).await,
        (400, "invalparam".into())
    );
    // Sensible values still pass.
    let ok = json!({"address": "3002", "password": "pw-3002", "name": "Zoë Müller"});
    assert_eq!(admin.post("/v1/admin/lines", ok).await.0, 201);
}

/// Reads from `stream` until it closes (EOF or an error) or `limit` passes:
/// what it read, and whether it closed.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&seen).into_owned(), closed)
}

#[tokio::test]
async fn idle_and_slow_http_connections_are_closed_and_the_cap_refuses_more() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let wait = std::time::Duration::from_secs(10);
    let s = server_with(|c| {
        c.http.idle_timeout_secs = 2;
        c.http.max_connections = 3;
    })
    .await;
    let addr = s.http_addr;
    // Two idle connections and one slowloris client fill the cap.
    let mut idle = vec![
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Let the server accept all three before the fourth arrives.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The fourth is refused at once.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let (said, closed) = read_until_closed(&mut extra, wait).await;
    assert!(closed, "a connection over the cap must be closed");
    assert!(said.starts_with("HTTP/1.1 503"), "{said:?}");
    // The slowloris client keeps dribbling header bytes; it is still cut.
    let dribble = async {
        for _ in 0..60 {
            if slow.write_all(b"X").await.is_err() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        false
    };
    let slow_closed = dribble.await;
    assert!(slow_closed, "a slowloris connection must be closed");
    // The idle ones are closed too.
    for stream in &mut idle {
        let (said, closed) = read_until_closed(stream, wait).await;
        assert!(closed, "an idle connection must be closed");
        assert!(said.is_empty(), "{said:?}");
    }
    // Their places are free again: the API answers.
    let (status, _) = Api::new(&s, None).get("/healthz").await;
    assert_eq!(status, 200);
}
