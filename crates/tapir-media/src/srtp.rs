//! SRTP keyed by SDES (RFC 4568 `a=crypto`, RFC 3711): the crypto attribute,
//! key generation, and per-leg protect/unprotect contexts for the engine.
//!
//! The cipher work is `webrtc-srtp` (pure Rust, AES-CM with HMAC-SHA1);
//! this module only keeps what tapir needs: the two AES_CM_128 suites every
//! SIP phone offers, one master key per direction, no MKI, no lifetimes.
//! Packets are length-checked before they reach the library (its SRTCP path
//! indexes past a 4-byte header and past the SRTCP index, so tapir checks
//! both lengths before handing it RTCP; and since it returns an SRTCP packet
//! whose E flag is clear without checking its tag, tapir refuses those: it
//! never negotiates unencrypted SRTCP).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
#[cfg(feature = "engine")]
use webrtc_srtp::context::Context;
#[cfg(feature = "engine")]
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Master key (16 bytes) followed by master salt (14 bytes).
pub const KEY_SALT_LEN: usize = 30;

/// An SRTP crypto suite tapir accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80` (the default everywhere).
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`.
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// The SDP name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite of an SDP name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(SrtpSuite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(SrtpSuite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    #[cfg(feature = "engine")]
    fn profile(self) -> ProtectionProfile {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// One `a=crypto` attribute that tapir can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoAttr {
    /// The tag (the answer repeats the chosen offer's tag).
    pub tag: u32,
    /// The suite.
    pub suite: SrtpSuite,
    /// The sender's master key and salt.
    pub key: [u8; KEY_SALT_LEN],
}

impl CryptoAttr {
    /// Parses the value of an `a=crypto:` attribute; `None` when it is
    /// malformed or uses something tapir does not support (another suite,
    /// several keys, an MKI, session parameters).
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let mut f = value.split_ascii_whitespace();
        let tag = f.next()?.parse().ok()?;
        let suite = SrtpSuite::from_name(f.next()?)?;
        let key_params = f.next()?;
        if f.next().is_some() || key_params.contains(';') {
            return None;
        }
        let inline = key_params.strip_prefix("inline:")?;
        let mut parts = inline.split('|');
        let b64 = parts.next()?;
        for p in parts {
            // A lifetime is fine; an MKI ("n:len") is not supported.
            if p.contains(':') {
                return None;
            }
        }
        let bytes = STANDARD
            .decode(b64)
            .or_else(|_| STANDARD_NO_PAD.decode(b64))
            .ok()?;
        let key = <[u8; KEY_SALT_LEN]>::try_from(bytes.as_slice()).ok()?;
        Some(Self { tag, suite, key })
    }

    /// The attribute value (`<tag> <suite> inline:<base64>`).
    #[must_use]
    pub fn to_value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            STANDARD.encode(self.key)
        )
    }
}

/// Fresh random keying material.
///
/// # Errors
/// When the operating system has no randomness to give.
pub fn generate_key() -> Result<[u8; KEY_SALT_LEN], getrandom::Error> {
    let mut k = [0u8; KEY_SALT_LEN];
    getrandom::fill(&mut k)?;
    Ok(k)
}

/// The negotiated SRTP of one leg.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The suite.
    pub suite: SrtpSuite,
    /// tapir's key: what tapir encrypts with (it put it in its SDP).
    pub local: [u8; KEY_SALT_LEN],
    /// The peer's key: what tapir decrypts with.
    pub remote: [u8; KEY_SALT_LEN],
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys.
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Why SRTP could not be set up or a packet could not be (un)protected.
#[cfg(feature = "engine")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SRTP: {0}")]
pub struct SrtpError(String);

/// Protect/unprotect state of one leg (one context per direction).
#[cfg(feature = "engine")]
pub struct SrtpSession {
    tx: Context,
    rx: Context,
    tag_len: usize,
}

#[cfg(feature = "engine")]
impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession").finish_non_exhaustive()
    }
}

#[cfg(feature = "engine")]
fn context(
    key: &[u8; KEY_SALT_LEN],
    suite: SrtpSuite,
    replay_window: Option<usize>,
) -> Result<Context, SrtpError> {
    let (k, s) = key.split_at(16);
    let replay = replay_window.map(webrtc_srtp::option::srtp_replay_protection);
    let replay_rtcp = replay_window.map(webrtc_srtp::option::srtcp_replay_protection);
    Context::new(k, s, suite.profile(), replay, replay_rtcp).map_err(|e| SrtpError(e.to_string()))
}

#[cfg(feature = "engine")]
impl SrtpSession {
    /// Contexts for `keys`.
    ///
    /// # Errors
    /// If the library refuses the key material.
    pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        Ok(Self {
            tx: context(&keys.local, keys.suite, None)?,
            rx: context(&keys.remote, keys.suite, Some(128))?,
            tag_len: match keys.suite {
                SrtpSuite::AesCm128HmacSha1_80 => 10,
                SrtpSuite::AesCm128HmacSha1_32 => 4,
            },
        })
    }

    /// Encrypts and authenticates an RTP packet tapir sends.
    ///
    /// # Errors
    /// For a packet that is not RTP.
    pub fn protect(&mut self, rtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        crate::rtp::RtpPacket::parse(rtp).map_err(|e| SrtpError(e.to_string()))?;
        self.tx
            .encrypt_rtp(rtp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError(e.to_string()))
    }

    /// Authenticates and decrypts a received SRTP packet (replays and
    /// forgeries are errors).
    ///
    /// # Errors
    /// For anything that does not authenticate.
    pub fn unprotect(&mut self, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if crate::rtp::is_rtcp(srtp) {
            return Err(SrtpError("SRTCP is not handled".into()));
        }
        let header = crate::rtp::RtpPacket::parse(srtp).map_err(|e| SrtpError(e.to_string()))?;
        if header.payload.len() < self.tag_len {
            return Err(SrtpError("shorter than the authentication tag".into()));
        }
        self.rx
            .decrypt_rtp(srtp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError(e.to_string()))
    }

    /// Encrypts and authenticates an RTCP compound packet tapir sends
    /// (SRTCP, RFC 3711 §3.4).
    ///
    /// # Errors
    /// For a packet shorter than an RTCP header with its SSRC.
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if rtcp.len() < 8 || !crate::rtp::is_rtcp(rtcp) {
            return Err(SrtpError("not an RTCP packet".into()));
        }
        self.tx
            .encrypt_rtcp(rtcp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError(e.to_string()))
    }

    /// Authenticates and decrypts a received SRTCP packet.
    ///
    /// # Errors
    /// For anything that does not authenticate, replays, and packets without
    /// the encryption flag.
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        // Header and SSRC, the E flag + SRTCP index, the tag (80 bits for
        // SRTCP with either suite, RFC 4568 §6.2).
        const SRTCP_TAG_LEN: usize = 10;
        let Some(index_at) = srtcp.len().checked_sub(4 + SRTCP_TAG_LEN) else {
            return Err(SrtpError("shorter than the SRTCP trailer".into()));
        };
        if index_at < 8 || !crate::rtp::is_rtcp(srtcp) {
            return Err(SrtpError("not an SRTCP packet".into()));
        }
        if srtcp.get(index_at).is_none_or(|b| b & 0x80 == 0) {
            return Err(SrtpError("unencrypted SRTCP is not accepted".into()));
        }
        self.rx
            .decrypt_rtcp(srtcp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_attribute_parse_and_write() {
        // RFC 4568 §4 example key.
        let v =
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";
        assert_eq!(CryptoAttr::parse(v), None, "MKI is not supported");
        let v = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20";
        let c = CryptoAttr::parse(v).expect("parse");
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(&c.key[..3], b"=-n");
        let back = CryptoAttr::parse(&c.to_value()).expect("reparse");
        assert_eq!(back, c);
        for bad in [
            "",
            "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_256_CM_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:short",
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
            "1 AES_CM_128_HMAC_SHA1_80 PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP",
        ] {
            assert_eq!(CryptoAttr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    #[cfg(feature = "engine")]
    fn protect_unprotect_round_trip_and_tamper() {
        let a = generate_key().expect("rng");
        let b = generate_key().expect("rng");
        assert_ne!(a, b);
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let mut alice = SrtpSession::new(&SrtpKeys {
                suite,
                local: a,
                remote: b,
            })
            .expect("ctx");
            let mut bob = SrtpSession::new(&SrtpKeys {
                suite,
                local: b,
                remote: a,
            })
            .expect("ctx");
            let mut pkt = Vec::new();
            crate::rtp::write_packet(&mut pkt, false, 0, 7, 160, 99, &[0x55; 160]);
            let wire = alice.protect(&pkt).expect("protect");
            assert_ne!(wire[12..172], pkt[12..]);
            assert_eq!(bob.unprotect(&wire).expect("unprotect"), pkt);
            assert!(bob.unprotect(&wire).is_err(), "replay refused");
            let mut forged = alice
                .protect(&{
                    let mut p = Vec::new();
                    crate::rtp::write_packet(&mut p, false, 0, 8, 320, 99, &[0x55; 160]);
                    p
                })
                .expect("protect");
            forged[20] ^= 1;
            assert!(bob.unprotect(&forged).is_err(), "forgery refused");
            assert!(bob.unprotect(&pkt).is_err(), "plain RTP refused");
            for junk in [
                &[][..],
                &[0x80; 4][..],
                &[0x80, 200, 0, 0][..],
                &[0x80; 14][..],
            ] {
                assert!(bob.unprotect(junk).is_err());
            }
            assert!(alice.protect(&[1, 2, 3]).is_err());
        }
    }

    #[test]
    #[cfg(feature = "engine")]
    fn srtcp_round_trip_replay_forgery_and_unencrypted() {
        let (a, b) = (generate_key().expect("rng"), generate_key().expect("rng"));
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let mut alice = SrtpSession::new(&SrtpKeys {
                suite,
                local: a,
                remote: b,
            })
            .expect("ctx");
            let mut bob = SrtpSession::new(&SrtpKeys {
                suite,
                local: b,
                remote: a,
            })
            .expect("ctx");
            let mut report = Vec::new();
            crate::rtcp::write_report(&mut report, 77, None, None, "alice");
            let wire = alice.protect_rtcp(&report).expect("protect");
            assert_ne!(wire, report);
            assert_eq!(bob.unprotect_rtcp(&wire).expect("unprotect"), report);
            assert!(bob.unprotect_rtcp(&wire).is_err(), "replay refused");
            let mut forged = alice.protect_rtcp(&report).expect("protect");
            forged[9] ^= 1;
            assert!(bob.unprotect_rtcp(&forged).is_err(), "forgery refused");
            // The E flag cleared: the library would skip the tag check.
            let mut clear = alice.protect_rtcp(&report).expect("protect");
            let at = clear.len() - 14;
            clear[at] &= 0x7f;
            assert!(bob.unprotect_rtcp(&clear).is_err(), "unencrypted refused");
            assert!(bob.unprotect_rtcp(&report).is_err(), "plain RTCP refused");
            for junk in [&[][..], &[0x80, 200, 0, 0][..], &[0x80; 21][..]] {
                assert!(bob.unprotect_rtcp(junk).is_err());
            }
            assert!(alice.protect_rtcp(&[0x80, 201, 0, 0]).is_err());
        }
    }

    #[test]
    fn keys_are_not_printed() {
        let k = SrtpKeys {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            local: [7; 30],
            remote: [9; 30],
        };
        assert!(!format!("{k:?}").contains('7'));
    }
}
