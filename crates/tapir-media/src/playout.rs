//! The conference mixer's per-participant playout queue: received packets
//! are decoded and ordered by (extended) sequence number, duplicates and
//! packets that arrive after their turn are dropped, and the mixer pulls
//! exactly one 20 ms frame per tick. Playout starts once 40 ms are buffered
//! (re-primed after an underrun) and the queue is capped at 200 ms, so a
//! participant whose clock runs fast loses the oldest audio instead of
//! drifting into ever more delay.
//!
//! Loss: when the packet due next is missing but later ones are queued, its
//! 20 ms are concealed by repeating the last frame played at half the
//! level, then a quarter, then an eighth (at most [`MAX_CONCEALED`] frames
//! in a row); after that the gap is skipped. The stream keeps its timing
//! and a lost packet is heard as a fade, not a click or a jump. A packet
//! that arrives after its turn was concealed is dropped as late.

use crate::g711::Law;
use crate::tone::FRAME_SAMPLES;
use std::collections::{BTreeMap, VecDeque};

/// Samples buffered before playout starts (40 ms).
pub const PRIME_SAMPLES: usize = 2 * FRAME_SAMPLES;
/// Most samples kept (200 ms).
pub const MAX_SAMPLES: usize = 10 * FRAME_SAMPLES;
/// Most consecutive frames concealed for lost packets (60 ms).
pub const MAX_CONCEALED: u8 = 3;

/// One participant's queue.
#[derive(Debug, Default)]
pub struct Playout {
    pending: BTreeMap<u64, Vec<i16>>,
    pending_samples: usize,
    ready: VecDeque<i16>,
    ssrc: Option<u32>,
    highest: Option<u64>,
    /// Packets below this extended sequence number have been played.
    next: Option<u64>,
    primed: bool,
    /// The last frame played (the source of concealment).
    last: Vec<i16>,
    /// Frames concealed in a row.
    concealed: u8,
}

impl Playout {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything (the participant left, or its stream restarted).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Samples buffered (decoded, not yet played).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.ready.len() + self.pending_samples
    }

    /// Adds a received G.711 packet.
    pub fn push(&mut self, ssrc: u32, seq: u16, law: Law, payload: &[u8]) {
        if self.ssrc != Some(ssrc) {
            self.clear();
            self.ssrc = Some(ssrc);
        }
        // Extend the 16-bit sequence number around the highest seen; start
        // far from zero so early reordering cannot underflow.
        let ext = match self.highest {
            None => (1u64 << 32) + u64::from(seq),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                h.saturating_add_signed(delta)
            }
        };
        if self.next.is_some_and(|n| ext < n) || self.pending.contains_key(&ext) {
            return; // late or duplicate
        }
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        let mut pcm = Vec::with_capacity(payload.len());
        law.decode(payload, &mut pcm);
        self.pending_samples += pcm.len();
        self.pending.insert(ext, pcm);
        while self.buffered() > MAX_SAMPLES {
            if !self.ready.is_empty() {
                let excess = (self.buffered() - MAX_SAMPLES).min(self.ready.len());
                self.ready.drain(..excess);
            } else if let Some((k, v)) = self.pending.pop_first() {
                self.pending_samples -= v.len();
                self.next = Some(k + 1);
            } else {
                break;
            }
        }
    }

    /// Fills `out` (one frame) with the next audio, zeros where there is
    /// none; returns whether any audio was played.
    pub fn pop_frame(&mut self, out: &mut [i16]) -> bool {
        out.fill(0);
        if !self.primed {
            if self.buffered() < PRIME_SAMPLES {
                return false;
            }
            self.primed = true;
        }
        if self.ready.is_empty()
            && let (Some(next), Some((&first, _))) = (self.next, self.pending.first_key_value())
            && first > next
            && self.concealed < MAX_CONCEALED
            && self.last.len() == out.len()
        {
            // Packet `next` is lost (later ones are here): conceal it.
            self.concealed += 1;
            self.next = Some(next + 1);
            for (dst, s) in out.iter_mut().zip(self.last.iter_mut()) {
                *s /= 2;
                *dst = *s;
            }
            return true;
        }
        while self.ready.len() < out.len() {
            let Some((k, v)) = self.pending.pop_first() else {
                break;
            };
            self.pending_samples -= v.len();
            self.next = Some(k + 1);
            self.ready.extend(v);
        }
        let take = self.ready.len().min(out.len());
        if take < out.len() {
            self.primed = false;
        }
        for (dst, s) in out.iter_mut().zip(self.ready.drain(..take)) {
            *dst = s;
        }
        if take == out.len() {
            self.concealed = 0;
            self.last.clear();
            self.last.extend_from_slice(out);
        }
        take > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(v: u8) -> Vec<u8> {
        // µ-law codes whose decoded values are distinct per packet.
        vec![v; FRAME_SAMPLES]
    }

    fn play(p: &mut Playout) -> Option<i16> {
        let mut f = [0i16; FRAME_SAMPLES];
        p.pop_frame(&mut f).then_some(f[0])
    }

    fn val(code: u8) -> Option<i16> {
        Some(Law::Ulaw.decode_sample(code))
    }

    #[test]
    fn reorders_and_drops_duplicates_and_late_packets() {
        let mut p = Playout::new();
        p.push(1, 11, Law::Ulaw, &pkt(0x11));
        assert_eq!(play(&mut p), None, "not primed with 20 ms");
        p.push(1, 10, Law::Ulaw, &pkt(0x10));
        p.push(1, 10, Law::Ulaw, &pkt(0x10)); // duplicate
        p.push(1, 12, Law::Ulaw, &pkt(0x12));
        assert_eq!(p.buffered(), 3 * FRAME_SAMPLES);
        assert_eq!(play(&mut p), val(0x10));
        assert_eq!(play(&mut p), val(0x11));
        p.push(1, 9, Law::Ulaw, &pkt(0x09)); // late
        assert_eq!(play(&mut p), val(0x12));
        assert_eq!(play(&mut p), None, "underrun");
    }

    #[test]
    fn a_lost_packet_is_concealed_with_a_fade_and_timing_is_kept() {
        let mut p = Playout::new();
        for (seq, code) in [(1u16, 0x10u8), (2, 0x11), (4, 0x13), (5, 0x14)] {
            p.push(1, seq, Law::Ulaw, &pkt(code));
        }
        assert_eq!(play(&mut p), val(0x10));
        assert_eq!(play(&mut p), val(0x11));
        let half = val(0x11).map(|v| v / 2);
        assert_eq!(play(&mut p), half, "packet 3 concealed at half level");
        p.push(1, 3, Law::Ulaw, &pkt(0x12)); // after its turn: dropped
        assert_eq!(play(&mut p), val(0x13), "then the stream goes on in time");
        assert_eq!(play(&mut p), val(0x14));
        assert_eq!(play(&mut p), None, "underrun: nothing to conceal from");
    }

    #[test]
    fn a_long_gap_is_concealed_for_60_ms_then_skipped() {
        let mut p = Playout::new();
        p.push(1, 1, Law::Ulaw, &pkt(0x10));
        p.push(1, 2, Law::Ulaw, &pkt(0x11));
        p.push(1, 20, Law::Ulaw, &pkt(0x20));
        assert_eq!(play(&mut p), val(0x10));
        assert_eq!(play(&mut p), val(0x11));
        let v = val(0x11).expect("a value");
        assert_eq!(play(&mut p), Some(v / 2));
        assert_eq!(play(&mut p), Some(v / 2 / 2));
        assert_eq!(play(&mut p), Some(v / 2 / 2 / 2));
        assert_eq!(play(&mut p), val(0x20), "gap skipped after 3 frames");
    }

    #[test]
    fn sequence_wrap_and_new_ssrc() {
        let mut p = Playout::new();
        p.push(7, 65535, Law::Ulaw, &pkt(0x20));
        p.push(7, 0, Law::Ulaw, &pkt(0x21));
        assert_eq!(play(&mut p), val(0x20));
        assert_eq!(play(&mut p), val(0x21));
        p.push(8, 100, Law::Ulaw, &pkt(0x30));
        p.push(8, 101, Law::Ulaw, &pkt(0x31));
        assert_eq!(play(&mut p), val(0x30), "new stream restarts the queue");
    }

    #[test]
    fn capped_at_200ms_and_odd_packet_sizes() {
        let mut p = Playout::new();
        for s in 0..30u16 {
            p.push(1, s, Law::Ulaw, &pkt(s as u8));
        }
        assert!(p.buffered() <= MAX_SAMPLES);
        assert_eq!(play(&mut p), val(20), "oldest dropped");
        // 30 ms packets are split across 20 ms frames.
        let mut p = Playout::new();
        p.push(2, 1, Law::Alaw, &[0xd5; 240]);
        p.push(2, 2, Law::Alaw, &[0xd5; 240]);
        let mut f = [1i16; FRAME_SAMPLES];
        assert!(p.pop_frame(&mut f));
        assert!(p.pop_frame(&mut f));
        assert!(p.pop_frame(&mut f));
        assert!(!p.pop_frame(&mut f));
        p.push(2, 3, Law::Alaw, &[]);
        assert!(!p.pop_frame(&mut f));
    }
}
