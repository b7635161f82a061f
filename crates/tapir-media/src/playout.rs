//! The conference mixer's per-participant playout queue: received packets
//! are decoded and ordered by (extended) sequence number, duplicates and
//! packets that arrive after their turn are dropped, and the mixer pulls
//! exactly one 20 ms frame per tick. Playout starts once 40 ms are buffered
//! (re-primed after an underrun) and the queue is capped at 200 ms, so a
//! participant whose clock runs fast loses the oldest audio instead of
//! drifting into ever more delay.

use crate::g711::Law;
use crate::tone::FRAME_SAMPLES;
use std::collections::{BTreeMap, VecDeque};

/// Samples buffered before playout starts (40 ms).
pub const PRIME_SAMPLES: usize = 2 * FRAME_SAMPLES;
/// Most samples kept (200 ms).
pub const MAX_SAMPLES: usize = 10 * FRAME_SAMPLES;

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
