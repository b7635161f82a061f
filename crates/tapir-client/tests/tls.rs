//! The client over `https://` and `wss://`: a TLS front (tokio-rustls with a
//! certificate made here by rcgen) relays to a real tapir server on
//! 127.0.0.1; the client trusts the certificate through
//! `root_certificate_pem`, and refuses the server without it.

#![allow(clippy::unwrap_used, missing_docs)]

use base64::Engine;
use std::sync::Arc;
use std::time::Duration;
use tapir_client::{Client, ClientError, EventKind, Privilege};
use tapir_server::Config;
use tokio_rustls::rustls;

const WAIT: Duration = Duration::from_secs(5);

const CONFIG: &str = r#"
[sip]
listen = []
[http]
listen = "127.0.0.1:0"
admin_token = "admin-secret"
[[lines]]
address = "2001"
kind = "routepoint"
[[apps]]
name = "alpha"
token = "tok-alpha"
lines = ["2001"]
"#;

/// PEM text of a DER certificate.
fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A TLS front on 127.0.0.1 for `to`; returns its port and the certificate's PEM.
async fn tls_front(to: std::net::SocketAddr) -> (u16, String, tokio::task::JoinHandle<()>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    (port, pem(&cert_der), task)
}

#[tokio::test]
async fn https_and_wss_with_a_private_root() {
    let mut config = Config::from_toml(CONFIG).unwrap();
    config.store.url = Some("sqlite::memory:".into());
    let s = tokio::time::timeout(WAIT, tapir_server::start(config))
        .await
        .unwrap()
        .unwrap();
    let (port, cert_pem, front) = tls_front(s.http_addr).await;
    let base = format!("https://localhost:{port}");

    let client = Client::builder(&base)
        .token("tok-alpha")
        .root_certificate_pem(cert_pem)
        .build()
        .unwrap();
    client.health().await.unwrap();
    let mut lines = client.lines().await.unwrap();
    assert_eq!(lines[0].address(), "2001");
    lines[0].open(&[Privilege::Owner], &[]).await.unwrap();
    let mut events = client.events(0);
    let first = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(first.kind, EventKind::LineState { ref state, .. } if state == "open"),
        "{first:?}"
    );
    let mut call = client.address("2001").dialtone().await.unwrap();
    call.drop().await.unwrap();

    // Without the private root, the server's certificate is refused.
    let stranger = Client::new(&base, "tok-alpha").unwrap();
    let e = stranger.lines().await.unwrap_err();
    assert!(matches!(e, ClientError::Http(_)), "{e:?}");
    let mut refused = stranger.events_with(
        0,
        tapir_client::EventsOptions {
            max_retries: 1,
            backoff: Duration::from_millis(10),
            ..Default::default()
        },
    );
    let e = tokio::time::timeout(WAIT, refused.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, ClientError::WebSocket(_)), "{e:?}");
    front.abort();
    s.shutdown().await;
}
