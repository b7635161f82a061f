//! Parse speed of a typical INVITE.
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use tapir_sip::msg::Message;

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY\r\n\
Supported: replaces, timer\r\n\
User-Agent: tapir-bench/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 142\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

fn parse_invite(c: &mut Criterion) {
    let datagram = Bytes::from_static(INVITE.as_bytes());
    c.bench_function("parse INVITE + read Via/From/To/Call-ID/CSeq", |b| {
        b.iter(|| {
            let message =
                Message::parse_datagram(black_box(datagram.clone())).expect("valid INVITE");
            let via = message
                .top_via()
                .ok()
                .flatten()
                .map(|v| v.branch().map(str::len));
            let from = message
                .from_header()
                .ok()
                .flatten()
                .map(|f| f.tag().map(str::len));
            let to = message.to_header().ok().flatten().map(|t| t.uri_text.len());
            let call_id = message.call_id().ok().flatten().map(str::len);
            let cseq = message.cseq().ok().flatten().map(|c| c.number);
            black_box((via, from, to, call_id, cseq))
        })
    });
    c.bench_function("parse INVITE only", |b| {
        b.iter(|| Message::parse_datagram(black_box(datagram.clone())).expect("valid INVITE"))
    });
}

criterion_group!(benches, parse_invite);
criterion_main!(benches);
