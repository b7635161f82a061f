//! The little SDP tapir needs to anchor audio (RFC 4566, RFC 3264): read the
//! far end's audio address, codecs and direction, and write tapir's own
//! offer or answer. A fuller offer/answer model belongs to `tapir-media`;
//! this one covers G.711 and RFC 4733 events, which every SIP phone speaks.

use std::net::{IpAddr, SocketAddr};
use tapir_core::Direction;

/// What the far end's SDP says about its audio stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteAudio {
    /// Where it wants RTP (None when it put the stream on hold with 0.0.0.0 or port 0).
    pub rtp: Option<SocketAddr>,
    /// Payload types it offers or accepted, in its order of preference.
    pub payload_types: Vec<u8>,
    /// The telephone-event payload type, if any.
    pub telephone_event: Option<u8>,
    /// The direction it asked for.
    pub direction: Direction,
    /// True when it sends nothing: `sendonly`, `inactive` or a null address
    /// means the far end has put the call on hold (`recvonly` does not).
    pub holds: bool,
}

/// Why an SDP body could not be used (the SIP layer answers 488).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No `m=audio` line.
    #[error("the SDP offers no audio stream")]
    NoAudio,
    /// A line could not be read.
    #[error("malformed SDP line: {0}")]
    Malformed(&'static str),
}

/// Read the audio part of an SDP body.
pub fn parse_remote(body: &[u8]) -> Result<RemoteAudio, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8"))?;
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut pts = Vec::new();
    let mut te = None;
    let mut session_dir = None;
    let mut media_dir = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            in_audio = rest.starts_with("audio ") && !seen_audio;
            if in_audio {
                seen_audio = true;
                let mut f = rest.split_whitespace();
                let _ = f.next();
                port = Some(
                    f.next()
                        .and_then(|p| p.split('/').next())
                        .and_then(|p| p.parse().ok())
                        .ok_or(SdpError::Malformed("m= port"))?,
                );
                let _proto = f.next().ok_or(SdpError::Malformed("m= protocol"))?;
                pts = f.filter_map(|p| p.parse::<u8>().ok()).collect();
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("c=") {
            let ip = rest
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse::<IpAddr>().ok())
                .ok_or(SdpError::Malformed("c= address"))?;
            if in_audio {
                media_ip = Some(ip);
            } else if !seen_audio {
                session_ip = Some(ip);
            }
            continue;
        }
        if let Some(attr) = line.strip_prefix("a=") {
            let dir = match attr {
                "sendrecv" => Some(Direction::SendRecv),
                "sendonly" => Some(Direction::SendOnly),
                "inactive" => Some(Direction::Inactive),
                "recvonly" => Some(Direction::SendRecv),
                _ => None,
            };
            let held = matches!(attr, "sendonly" | "inactive");
            if let Some(d) = dir {
                let slot = if in_audio {
                    &mut media_dir
                } else {
                    &mut session_dir
                };
                *slot = Some((d, held, attr == "recvonly"));
            }
            if in_audio
                && let Some(map) = attr.strip_prefix("rtpmap:")
                && map.to_ascii_lowercase().contains("telephone-event/8000")
            {
                te = map.split_whitespace().next().and_then(|p| p.parse().ok());
            }
        }
    }
    if !seen_audio {
        return Err(SdpError::NoAudio);
    }
    let ip = media_ip
        .or(session_ip)
        .ok_or(SdpError::Malformed("no c= line"))?;
    let port = port.unwrap_or(0);
    let (direction, dir_holds, recvonly) =
        media_dir
            .or(session_dir)
            .unwrap_or((Direction::SendRecv, false, false));
    let null = ip.is_unspecified() || port == 0;
    let _ = recvonly;
    Ok(RemoteAudio {
        rtp: (!null).then(|| SocketAddr::new(ip, port)),
        payload_types: pts,
        telephone_event: te,
        direction,
        holds: dir_holds || null,
    })
}

/// tapir's own SDP for a leg: G.711 µ-law and A-law plus RFC 4733 events at
/// `rtp`, with `direction`. `version` must grow with every new offer.
pub fn local(session: u64, version: u64, rtp: SocketAddr, direction: Direction) -> String {
    let dir = match direction {
        Direction::SendRecv => "sendrecv",
        Direction::SendOnly => "sendonly",
        Direction::Inactive => "inactive",
    };
    format!(
        "{}m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={dir}\r\n",
        session_header(session, version, rtp),
        port = rtp.port()
    )
}

/// The session part of tapir's SDP (v=, o=, s=, c=, t=) for audio at `rtp`.
fn session_header(session: u64, version: u64, rtp: SocketAddr) -> String {
    let (family, ip) = match rtp.ip() {
        IpAddr::V4(ip) => ("IP4", ip.to_string()),
        IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };
    format!(
        "v=0\r\no=tapir {session} {version} IN {family} {ip}\r\ns=tapir\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
    )
}

/// tapir's answer to `offer`: only the G.711 codec tapir picked from the
/// offer (RFC 3264 §6: an answer lists a subset of what was offered) and the
/// offer's telephone-event type. `None` when the offer has no G.711.
pub fn answer(
    session: u64,
    version: u64,
    rtp: SocketAddr,
    direction: Direction,
    offer: &RemoteAudio,
) -> Option<String> {
    let codec = chosen_codec(offer)?;
    // To a device that holds (sendonly) tapir answers recvonly, as phones
    // expect (RFC 3264 §6.1); inactive stays inactive.
    let dir = match (direction, offer.direction) {
        (Direction::Inactive, Direction::SendOnly) => "recvonly",
        (Direction::SendRecv, _) => "sendrecv",
        (Direction::SendOnly, _) => "sendonly",
        (Direction::Inactive, _) => "inactive",
    };
    let name = if codec == 0 { "PCMU" } else { "PCMA" };
    let mut out = session_header(session, version, rtp);
    match offer.telephone_event {
        Some(te) => out.push_str(&format!(
            "m=audio {port} RTP/AVP {codec} {te}\r\na=rtpmap:{codec} {name}/8000\r\n\
             a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n",
            port = rtp.port()
        )),
        None => out.push_str(&format!(
            "m=audio {port} RTP/AVP {codec}\r\na=rtpmap:{codec} {name}/8000\r\n",
            port = rtp.port()
        )),
    }
    out.push_str(&format!("a=ptime:20\r\na={dir}\r\n"));
    Some(out)
}

/// The G.711 payload type tapir uses with this far end: the first of 0
/// (µ-law) and 8 (A-law) in its list.
pub fn chosen_codec(remote: &RemoteAudio) -> Option<u8> {
    remote
        .payload_types
        .iter()
        .copied()
        .find(|pt| *pt == 0 || *pt == 8)
}

/// The direction to answer with when the far end offered `offered`.
pub fn answer_direction(remote: &RemoteAudio) -> Direction {
    match remote.direction {
        Direction::SendOnly | Direction::Inactive => Direction::Inactive,
        Direction::SendRecv => Direction::SendRecv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PJSIP_OFFER: &str = "v=0\r\no=- 3912 3912 IN IP4 127.0.0.1\r\ns=pjmedia\r\nb=AS:84\r\nt=0 0\r\na=X-nat:0\r\nm=audio 4000 RTP/AVP 96 9 8 0 101\r\nc=IN IP4 127.0.0.1\r\nb=TIAS:64000\r\na=rtcp:4001 IN IP4 127.0.0.1\r\na=sendrecv\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

    #[test]
    fn reads_a_pjsip_offer() {
        let r = parse_remote(PJSIP_OFFER.as_bytes()).unwrap();
        assert_eq!(r.rtp, Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(r.payload_types, vec![96, 9, 8, 0, 101]);
        assert_eq!(r.telephone_event, Some(101));
        assert_eq!(r.direction, Direction::SendRecv);
        assert!(!r.holds);
    }

    #[test]
    fn reads_hold_forms() {
        let sendonly = PJSIP_OFFER.replace("a=sendrecv", "a=sendonly");
        let r = parse_remote(sendonly.as_bytes()).unwrap();
        assert!(r.holds);
        assert_eq!(answer_direction(&r), Direction::Inactive);
        let null = PJSIP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let r = parse_remote(null.as_bytes()).unwrap();
        assert!(r.holds);
        assert_eq!(r.rtp, None);
        let recvonly = PJSIP_OFFER.replace("a=sendrecv", "a=recvonly");
        assert!(!parse_remote(recvonly.as_bytes()).unwrap().holds);
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert_eq!(parse_remote(b"v=0\r\n"), Err(SdpError::NoAudio));
        assert!(parse_remote(b"m=audio x RTP/AVP 0\r\n").is_err());
        assert!(parse_remote(&[0xff, 0xfe]).is_err());
        assert!(
            parse_remote(b"m=audio 4000 RTP/AVP 0\r\n").is_err(),
            "no c= line"
        );
    }

    #[test]
    fn answers_with_a_subset_of_the_offer() {
        let offer = parse_remote(PJSIP_OFFER.as_bytes()).unwrap();
        let a = answer(
            1,
            2,
            "127.0.0.1:20000".parse().unwrap(),
            Direction::SendRecv,
            &offer,
        )
        .unwrap();
        let r = parse_remote(a.as_bytes()).unwrap();
        assert_eq!(
            r.payload_types,
            vec![8, 101],
            "PCMA comes first in the offer"
        );
        assert_eq!(r.telephone_event, Some(101));
        let no_g711 = PJSIP_OFFER.replace("96 9 8 0 101", "96 9");
        let offer = parse_remote(no_g711.as_bytes()).unwrap();
        assert!(
            answer(
                1,
                2,
                "127.0.0.1:20000".parse().unwrap(),
                Direction::SendRecv,
                &offer
            )
            .is_none()
        );
    }

    #[test]
    fn writes_an_offer_it_can_read_back() {
        let s = local(
            7,
            2,
            "127.0.0.1:20000".parse().unwrap(),
            Direction::SendOnly,
        );
        let r = parse_remote(s.as_bytes()).unwrap();
        assert_eq!(r.rtp, Some("127.0.0.1:20000".parse().unwrap()));
        assert_eq!(r.payload_types, vec![0, 8, 101]);
        assert!(r.holds);
        assert!(s.contains("o=tapir 7 2 IN IP4 127.0.0.1"));
    }
}
