//! Busy lamp cost, without sockets: the sans-IO B2BUA and the switch with
//! `WATCHERS` phones each watching 20 addresses (`Event: dialog`; phone `i`
//! watches the callees `i .. i+20` of 1,000, so each callee has 20
//! watchers), then `CALLS` calls to the callees, each ringing, answered and
//! hung up, with the simulated clock moving 100 ms between steps so that
//! per-watcher coalescing (250 ms) merges what falls within it. Every NOTIFY
//! is parsed and answered 200 by the simulated watcher.
//!
//! It reports NOTIFYs per call, NOTIFYs per second of one core and the CPU
//! time per NOTIFY (tapir's work and the watchers' parsing together), and
//! the same call load with nobody watching, for the cost to calls.
//!
//! `cargo run --release -p tapir-b2bua --example blf_load [WATCHERS] [CALLS]`

#![allow(missing_docs, clippy::unwrap_used)]

use bytes::Bytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tapir_b2bua::pump::Wire;
use tapir_b2bua::{B2bua, Config, ContactTarget, Directory, MediaPorts, SipTransport};
use tapir_core::{LineConfig, Switch, Timestamp};
use tapir_sip::msg::{HeaderName, Message};

const TAPIR: &str = "127.0.0.1:5060";
const CALLER: &str = "127.0.0.1:5001";
const CALLEE: &str = "127.0.0.1:5002";
const WATCHER: &str = "127.0.0.1:5003";
/// How many callees (watched addresses).
const CALLEES: usize = 1_000;
/// Addresses each watcher watches.
const KEYS: usize = 20;

/// Every phone admitted as its From user, callees at one address.
struct Phones;

impl Directory for Phones {
    fn register(&mut self, _: Instant, r: &Message, _: SocketAddr, _: SipTransport) -> Message {
        r.response_builder(200, None, Some("reg")).build()
    }
    fn admit(&mut self, _: Instant, r: &Message, _: SocketAddr) -> Result<String, Box<Message>> {
        let from = r
            .from_header()
            .ok()
            .flatten()
            .map(|f| f.uri_text.to_string());
        let user = from
            .as_deref()
            .and_then(|u| u.strip_prefix("sip:"))
            .and_then(|u| u.split('@').next())
            .unwrap_or_default();
        Ok(user.to_string())
    }
    fn contacts(&self, _: Instant, address: &str) -> Vec<ContactTarget> {
        address
            .starts_with('4')
            .then(|| ContactTarget::direct(CALLEE.parse().unwrap(), SipTransport::Udp))
            .into_iter()
            .collect()
    }
}

struct Ports;

impl MediaPorts for Ports {
    fn open(&mut self, leg: tapir_core::LegId) -> Option<SocketAddr> {
        Some(SocketAddr::from((
            [127, 0, 0, 1],
            20_000 + (leg.0 % 20_000) as u16,
        )))
    }
}

struct World {
    b2b: B2bua,
    switch: Switch,
    start: Instant,
    now: Instant,
    sent: Vec<(SocketAddr, Message)>,
    notifies: usize,
}

impl World {
    fn pump(&mut self) {
        let ts = Timestamp(1_000_000 + self.now.duration_since(self.start).as_millis() as u64);
        let mut wire = Sent(&mut self.sent);
        tapir_b2bua::pump::pump(
            &mut self.switch,
            Some(&mut self.b2b),
            self.now,
            ts,
            &mut wire,
        )
        .unwrap();
        self.answer_notifies();
    }

    fn send(&mut self, from: &str, text: String) {
        let data = Bytes::from(text.replace('\n', "\r\n"));
        self.b2b
            .handle_datagram(self.now, from.parse().unwrap(), data);
        self.pump();
    }

    /// The watcher answers every NOTIFY 200 (bounded rounds).
    fn answer_notifies(&mut self) {
        let watcher: SocketAddr = WATCHER.parse().unwrap();
        for _ in 0..100 {
            let (mine, rest): (Vec<_>, Vec<_>) = self
                .sent
                .drain(..)
                .partition(|(to, m)| *to == watcher && m.method().is_some());
            self.sent = rest;
            if mine.is_empty() {
                return;
            }
            for (_, n) in mine {
                self.notifies += 1;
                let ok = n.response_builder(200, None, None).build();
                self.b2b.handle_datagram(self.now, watcher, ok.to_bytes());
                let ts =
                    Timestamp(1_000_000 + self.now.duration_since(self.start).as_millis() as u64);
                tapir_b2bua::pump::pump(
                    &mut self.switch,
                    Some(&mut self.b2b),
                    self.now,
                    ts,
                    &mut Sent(&mut self.sent),
                )
                .unwrap();
            }
        }
    }

    /// Let `ms` pass on the simulated clock, firing timers due on the way.
    fn advance(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        for _ in 0..100_000 {
            match self.b2b.poll_timeout() {
                Some(at) if at <= end => {
                    self.now = at.max(self.now);
                    self.b2b.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn take(&mut self, to: &str) -> Vec<Message> {
        let to: SocketAddr = to.parse().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = self.sent.drain(..).partition(|(t, _)| *t == to);
        self.sent = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }
}

struct Sent<'a>(&'a mut Vec<(SocketAddr, Message)>);

impl Wire for Sent<'_> {
    fn send(&mut self, to: SocketAddr, data: Bytes) {
        self.0.push((to, Message::parse_datagram(data).unwrap()));
    }
    fn media(&mut self, _: tapir_b2bua::MediaCommand) {}
    fn connect(&mut self, _: SocketAddr, _: SipTransport) {}
}

const SDP: &str = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0\na=sendrecv\n";

fn callee(n: usize) -> usize {
    400_000 + n % CALLEES
}

fn subscribe(watcher: usize, target: usize) -> String {
    format!(
        "SUBSCRIBE sip:{target}@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {WATCHER};branch=z9hG4bK-s{watcher}-{target};rport\n\
         Max-Forwards: 70\nFrom: <sip:5{watcher:05}@127.0.0.1>;tag=w{watcher}\nTo: <sip:{target}@127.0.0.1>\n\
         Call-ID: blf-{watcher}-{target}\nCSeq: 1 SUBSCRIBE\nContact: <sip:5{watcher:05}@{WATCHER}>\n\
         Event: dialog\nExpires: 3600\nContent-Length: 0\n\n"
    )
}

fn invite(n: usize) -> String {
    let sdp = SDP.replace('\n', "\r\n");
    let b = callee(n);
    format!(
        "INVITE sip:{b}@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-i{n};rport\n\
         Max-Forwards: 70\nFrom: <sip:300000@127.0.0.1>;tag=a{n}\nTo: <sip:{b}@127.0.0.1>\n\
         Call-ID: load-{n}\nCSeq: 1 INVITE\nContact: <sip:300000@{CALLER}>\n\
         Content-Type: application/sdp\nContent-Length: {}\n\n{}",
        sdp.len(),
        SDP
    )
}

fn bye(n: usize, to_tag: &str) -> String {
    let b = callee(n);
    format!(
        "BYE sip:tapir@{TAPIR} SIP/2.0\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-bye{n};rport\n\
         Max-Forwards: 70\nFrom: <sip:300000@127.0.0.1>;tag=a{n}\nTo: <sip:{b}@127.0.0.1>;tag={to_tag}\n\
         Call-ID: load-{n}\nCSeq: 2 BYE\nContent-Length: 0\n\n"
    )
}

fn respond(req: &Message, code: u16, sdp: bool) -> String {
    let mut r = req
        .response_builder(code, None, Some("b1"))
        .header(HeaderName::Contact, format!("<sip:callee@{CALLEE}>"));
    if sdp {
        r = r.body(
            "application/sdp",
            Bytes::from(SDP.replace("4000", "4002").replace('\n', "\r\n")),
        );
    }
    String::from_utf8(r.build().to_bytes().to_vec())
        .unwrap()
        .replace("\r\n", "\n")
}

/// One call to callee `n`: rings, answered, hung up by the caller.
fn call(w: &mut World, n: usize) {
    w.send(CALLER, invite(n));
    let to_b = w.take(CALLEE).pop().expect("tapir invites the callee");
    w.advance(100);
    w.send(CALLEE, respond(&to_b, 180, false));
    w.advance(100);
    w.send(CALLEE, respond(&to_b, 200, true));
    w.take(CALLEE);
    let ok = w
        .take(CALLER)
        .into_iter()
        .rfind(|m| m.status_code() == Some(200))
        .expect("200 to the caller");
    let tag = ok.to_header().unwrap().unwrap().tag().unwrap().to_string();
    w.advance(100);
    w.send(CALLER, bye(n, &tag));
    let bye = w.take(CALLEE).pop().expect("BYE to the callee");
    w.send(CALLEE, respond(&bye, 200, false));
    w.take(CALLER);
    w.advance(300);
}

fn cpu_time() -> Duration {
    // utime + stime of this process, from /proc (Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|x| x.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn world() -> World {
    let mut switch = Switch::default();
    switch.add_line(LineConfig::phone("300000")).unwrap();
    if let Some(line) = switch.line_of("300000") {
        let mut cfg = switch.line_config(line).unwrap();
        cfg.max_calls = 100;
        switch.update_line(line, cfg).unwrap();
    }
    for n in 0..CALLEES {
        switch
            .add_line(LineConfig::phone(&callee(n).to_string()))
            .unwrap();
    }
    let cfg = Config::new(TAPIR.parse().unwrap(), "127.0.0.1");
    let now = Instant::now();
    World {
        b2b: B2bua::new(cfg, Box::new(Phones), Box::new(Ports)),
        switch,
        start: now,
        now,
        sent: Vec::new(),
        notifies: 0,
    }
}

/// Runs `calls` calls; returns (wall, CPU, NOTIFYs).
fn run(w: &mut World, calls: usize) -> (Duration, Duration, usize) {
    let before = w.notifies;
    let cpu0 = cpu_time();
    let wall0 = Instant::now();
    for n in 0..calls {
        call(w, n);
    }
    (wall0.elapsed(), cpu_time() - cpu0, w.notifies - before)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let watchers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);

    let mut quiet = world();
    let (q_wall, q_cpu, _) = run(&mut quiet, calls);

    let mut w = world();
    let sub0 = Instant::now();
    for i in 0..watchers {
        for k in 0..KEYS {
            w.send(WATCHER, subscribe(i, callee(i + k)));
        }
        w.take(WATCHER);
    }
    let subscribing = sub0.elapsed();
    assert_eq!(w.b2b.subscription_count(), watchers * KEYS);
    w.notifies = 0;
    let (wall, cpu, notifies) = run(&mut w, calls);
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    println!(
        "tapir busy lamps, sans-IO: {watchers} watchers x {KEYS} addresses ({} subscriptions), {calls} calls to {CALLEES} callees",
        watchers * KEYS
    );
    println!(
        "  subscribe  {:.1} us per SUBSCRIBE (with its first NOTIFY answered)",
        per(subscribing, watchers * KEYS)
    );
    println!(
        "  NOTIFYs    {notifies} ({:.1} per call), {:.0} per second of one core (wall)",
        notifies as f64 / calls as f64,
        notifies as f64 / wall.as_secs_f64()
    );
    println!(
        "  CPU        {:.1} us per NOTIFY (tapir and the watchers' parsing; process accounting, 10 ms ticks)",
        per(cpu.saturating_sub(q_cpu), notifies)
    );
    println!(
        "  calls      {:.1} us per call watched, {:.1} us per call with nobody watching (wall)",
        per(wall, calls),
        per(q_wall, calls)
    );
}
