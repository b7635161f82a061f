//! Signalling cost of a B2BUA call, without sockets or media: the sans-IO
//! B2BUA and the switch carry `CALLS` calls between pairs of phones (caller
//! 3xxxxx calls callee 4xxxxx; two calls per phone, as phones with call
//! waiting hold them), with INVITE and SDP, 100, INVITE to the callee, 180,
//! 200 and ACK both ways, keep them all established, then hang each up with a
//! BYE.
//!
//! It reports the heap bytes each established call holds in the B2BUA and the
//! switch (a counting allocator, so the figure is exact) and the CPU time per
//! call of the whole set-up and tear-down, phones' parsing included.
//!
//! `cargo run --release -p tapir-b2bua --example signalling_load [CALLS]`

// The counting allocator below is the only unsafe code: a GlobalAlloc must be.
#![allow(missing_docs, clippy::unwrap_used, unsafe_code)]

use bytes::Bytes;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};
use tapir_b2bua::pump::Wire;
use tapir_b2bua::{B2bua, Config, ContactTarget, Directory, MediaPorts, SipTransport};
use tapir_core::{LineConfig, Switch, Timestamp};
use tapir_sip::msg::{HeaderName, Message};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const TAPIR: &str = "127.0.0.1:5060";
const CALLER: &str = "127.0.0.1:5001";
const CALLEE: &str = "127.0.0.1:5002";

/// Both phones, admitted without a challenge (digest cost is not signalling
/// state; the SIPp benchmark measures it).
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
    to_caller: Vec<Message>,
    to_callee: Vec<Message>,
}

impl World {
    fn pump(&mut self) {
        let ts = Timestamp(1_000_000 + self.now.duration_since(self.start).as_millis() as u64);
        let mut wire = SentTo {
            to_caller: &mut self.to_caller,
            to_callee: &mut self.to_callee,
        };
        tapir_b2bua::pump::pump(
            &mut self.switch,
            Some(&mut self.b2b),
            self.now,
            ts,
            &mut wire,
        )
        .unwrap();
    }

    fn send(&mut self, from: &str, text: String) {
        let data = Bytes::from(text.replace('\n', "\r\n"));
        self.b2b
            .handle_datagram(self.now, from.parse().unwrap(), data);
        self.pump();
    }
}

/// What tapir sends, per phone (media work and connections are not part
/// of the figure).
struct SentTo<'a> {
    to_caller: &'a mut Vec<Message>,
    to_callee: &'a mut Vec<Message>,
}

impl Wire for SentTo<'_> {
    fn send(&mut self, to: SocketAddr, data: Bytes) {
        let m = Message::parse_datagram(data).unwrap();
        if to == CALLER.parse().unwrap() {
            self.to_caller.push(m);
        } else {
            self.to_callee.push(m);
        }
    }
    fn media(&mut self, _: tapir_b2bua::MediaCommand) {}
    fn connect(&mut self, _: SocketAddr, _: SipTransport) {}
}

const SDP: &str = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0\na=sendrecv\n";

/// The caller and callee of call `n`: two calls per phone.
fn pair(n: usize) -> (usize, usize) {
    (300_000 + n / 2, 400_000 + n / 2)
}

fn invite(n: usize) -> String {
    let sdp = SDP.replace('\n', "\r\n");
    let (a, b) = pair(n);
    format!(
        "INVITE sip:{b}@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-i{n};rport\n\
         Max-Forwards: 70\nFrom: <sip:{a}@127.0.0.1>;tag=a{n}\nTo: <sip:{b}@127.0.0.1>\n\
         Call-ID: load-{n}\nCSeq: 1 INVITE\nContact: <sip:{a}@{CALLER}>\n\
         Content-Type: application/sdp\nContent-Length: {}\n\n{}",
        sdp.len(),
        SDP
    )
}

fn in_dialog(method: &str, n: usize, cseq: u32, to_tag: &str) -> String {
    let (a, b) = pair(n);
    format!(
        "{method} sip:tapir@{TAPIR} SIP/2.0\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{method}{n};rport\n\
         Max-Forwards: 70\nFrom: <sip:{a}@127.0.0.1>;tag=a{n}\nTo: <sip:{b}@127.0.0.1>;tag={to_tag}\n\
         Call-ID: load-{n}\nCSeq: {cseq} {method}\nContact: <sip:{a}@{CALLER}>\nContent-Length: 0\n\n"
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

/// Sets up call `n` and returns tapir's To tag towards the caller.
fn establish(w: &mut World, n: usize) -> String {
    w.send(CALLER, invite(n));
    let to_b = w.to_callee.pop().expect("tapir invites the callee");
    w.to_callee.clear();
    w.send(CALLEE, respond(&to_b, 180, false));
    w.send(CALLEE, respond(&to_b, 200, true));
    w.to_callee.clear();
    let ok = w
        .to_caller
        .drain(..)
        .rfind(|m| m.status_code() == Some(200))
        .expect("200 to the caller");
    let tag = ok.to_header().unwrap().unwrap().tag().unwrap().to_string();
    w.send(CALLER, in_dialog("ACK", n, 1, &tag));
    tag
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

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut switch = Switch::default();
    for n in (0..calls + 2).step_by(2) {
        let (a, b) = pair(n);
        for address in [a, b] {
            let mut line = LineConfig::phone(&address.to_string());
            line.max_calls = 2;
            switch.add_line(line).unwrap();
        }
    }
    let cfg = Config::new(TAPIR.parse().unwrap(), "127.0.0.1");
    let now = Instant::now();
    let mut w = World {
        b2b: B2bua::new(cfg, Box::new(Phones), Box::new(Ports)),
        switch,
        start: now,
        now,
        to_caller: Vec::new(),
        to_callee: Vec::new(),
    };
    // Warm up (first allocations of maps and buffers), then measure.
    let warm = establish(&mut w, calls + 1);
    let _ = warm;
    let before = LIVE.load(Ordering::Relaxed);
    let cpu0 = cpu_time();
    let wall0 = Instant::now();
    let mut tags = Vec::with_capacity(calls);
    for n in 0..calls {
        tags.push(establish(&mut w, n));
    }
    let set_up = wall0.elapsed();
    let tags_bytes = (tags.capacity() * std::mem::size_of::<String>()
        + tags.iter().map(String::capacity).sum::<usize>()) as isize;
    let held = LIVE.load(Ordering::Relaxed) - before - tags_bytes;
    let live_calls = w.switch.all_calls().len() / 2;
    let wall1 = Instant::now();
    for (n, tag) in tags.iter().enumerate() {
        w.send(CALLER, in_dialog("BYE", n, 2, tag));
        let bye = w.to_callee.pop().expect("BYE to the callee");
        w.to_callee.clear();
        w.to_caller.clear();
        w.send(CALLEE, respond(&bye, 200, false));
    }
    let torn_down = wall1.elapsed();
    let cpu = cpu_time() - cpu0;
    println!(
        "tapir B2BUA + switch, sans-IO, {calls} calls between {} pairs of phones (release build)",
        calls.div_ceil(2)
    );
    println!(
        "  memory   {:.0} bytes of heap per established call ({live_calls} calls up)",
        held as f64 / calls as f64
    );
    println!(
        "  time     {:.1} us per call set-up, {:.1} us per tear-down (wall, one core)",
        set_up.as_secs_f64() * 1e6 / calls as f64,
        torn_down.as_secs_f64() * 1e6 / calls as f64
    );
    println!(
        "  CPU      {:.1} us per call in all (process accounting, 10 ms ticks), simulated phones' parsing included",
        cpu.as_secs_f64() * 1e6 / calls as f64
    );
}
