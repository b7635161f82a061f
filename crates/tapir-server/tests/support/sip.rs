//! Raw SIP for the security and admission tests: header readers, SDP,
//! [`wire`] framing, a UDP [`Peer`] that sends, waits (bounded) and answers,
//! and digest registration. A stranger's packets are written by hand on
//! purpose, so that tests can forge what no SIP stack would send.

use super::{WAIT, param};
use std::net::SocketAddr;
use tapir_sip::auth::{Algorithm, DigestInput};
use tokio::net::UdpSocket;

/// The value of header `name` in SIP text (the first one), or "".
pub fn header(text: &str, name: &str) -> String {
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (h, v) = l.split_once(':')?;
            h.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// The `tag` parameter of a From or To value.
pub fn tag_of(value: &str) -> String {
    value
        .split(';')
        .find_map(|p| p.trim().strip_prefix("tag="))
        .unwrap_or_default()
        .to_string()
}

/// The status code of a response, 0 for a request.
pub fn status(text: &str) -> u16 {
    text.strip_prefix("SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// An SDP offer or answer of G.711 µ-law from 127.0.0.1:`port`.
pub fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=sendrecv\r\n"
    )
}

/// The audio port of an SDP body in SIP text.
pub fn sdp_port(text: &str) -> u16 {
    text.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no SDP in {text}"))
}

/// CRLF line ends and a correct Content-Length for SIP text written with
/// `\n` and a body after the blank line.
pub fn wire(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let head = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let body = body.replace('\n', "\r\n").replace("\r\r\n", "\r\n");
    format!("{head}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
}

/// A SIP user agent on a UDP socket of its own.
pub struct Peer {
    pub socket: UdpSocket,
    pub server: SocketAddr,
}

impl Peer {
    pub async fn bind(server: SocketAddr) -> Peer {
        Peer::on(UdpSocket::bind("127.0.0.1:0").await.unwrap(), server)
    }

    pub fn on(socket: UdpSocket, server: SocketAddr) -> Peer {
        Peer { socket, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub async fn send(&self, text: &str) {
        self.socket
            .send_to(wire(text).as_bytes(), self.server)
            .await
            .unwrap();
    }

    /// The next message that `pick` accepts, within the bound; messages it
    /// refuses are skipped.
    pub async fn next(&self, what: &str, pick: impl Fn(&str) -> bool) -> String {
        self.next_within(WAIT, pick)
            .await
            .unwrap_or_else(|| panic!("{what} did not reach {}", self.addr()))
    }

    pub async fn next_within(
        &self,
        bound: std::time::Duration,
        pick: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + bound;
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf))
                .await
                .ok()?
                .unwrap();
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if pick(&text) {
                return Some(text);
            }
        }
    }

    /// Send a request and return its final response.
    pub async fn request(&self, text: &str) -> String {
        self.send(text).await;
        let branch = header(&wire(text), "Via");
        self.next("a final response", |t| {
            status(t) >= 200 && header(t, "Via") == branch
        })
        .await
    }

    /// The response `code` (with `to_tag` and extra header lines and body)
    /// to request text, sent back to tapir.
    pub async fn respond(&self, request: &str, code: u16, to_tag: &str, extra: &str) {
        let to = header(request, "To");
        let to = if to.contains("tag=") {
            to
        } else {
            format!("{to};tag={to_tag}")
        };
        let vias: String = request
            .lines()
            .take_while(|l| !l.is_empty())
            .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let reason = match code {
            200 => "OK",
            180 => "Ringing",
            _ => "Whatever",
        };
        let text = format!(
            "SIP/2.0 {code} {reason}\n{vias}From: {}\nTo: {to}\nCall-ID: {}\nCSeq: {}\n{extra}",
            header(request, "From"),
            header(request, "Call-ID"),
            header(request, "CSeq"),
        );
        self.send(&text).await;
    }
}

/// The `Proxy-Authorization` / `Authorization` value answering the MD5
/// challenge in `challenge` for `method` on `uri`.
pub fn digest(challenge: &str, user: &str, password: &str, method: &str, uri: &str) -> String {
    let line = challenge
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("www-authenticate:") || l.starts_with("proxy-authenticate:")
        })
        .find(|l| param(l, "algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5")))
        .expect("an MD5 challenge");
    let realm = param(line, "realm").unwrap();
    let nonce = param(line, "nonce").unwrap();
    let response = DigestInput {
        algorithm: Algorithm::Md5,
        username: user,
        realm: &realm,
        password,
        method,
        uri,
        nonce: &nonce,
        nonce_count: "00000001",
        cnonce: "c0ffee",
        qop: "auth",
    }
    .response();
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
    )
}

/// Phone `user` registers from `phone` with its password.
pub async fn register(phone: &Peer, user: &str, password: &str) {
    let local = phone.addr();
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-reg{cseq}-{user}\n\
             Max-Forwards: 70\n\
             From: <sip:{user}@127.0.0.1>;tag=r{user}\n\
             To: <sip:{user}@127.0.0.1>\n\
             Call-ID: reg-{user}-{port}\n\
             CSeq: {cseq} REGISTER\n\
             Contact: <sip:{user}@{local}>\n\
             Expires: 300\n{auth}\n",
            port = local.port()
        )
    };
    let challenge = phone.request(&register(1, "")).await;
    assert_eq!(status(&challenge), 401, "{challenge}");
    let auth = digest(&challenge, user, password, "REGISTER", "sip:127.0.0.1");
    let ok = phone
        .request(&register(2, &format!("Authorization: {auth}\n")))
        .await;
    assert_eq!(status(&ok), 200, "{ok}");
}
