//! Giving back the room of collections that a burst grew.
//!
//! A hash map or a queue keeps the room its busiest moment needed. After an
//! overload burst tapir's transaction, dialog and timer tables held about
//! 150 MiB of empty room for as long as anyone watched; [`Shrink`] lets the
//! machines give it back once they are quiet again.

use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};

/// A collection whose spare room can be given back.
pub trait Shrink {
    /// Gives back the room when the collection holds far fewer entries
    /// than it has room for (under a quarter, beyond a small floor).
    fn shrink_when_sparse(&mut self);
}

/// Whether `capacity` is sparse for `len` entries.
fn sparse(len: usize, capacity: usize) -> bool {
    capacity > len.saturating_mul(4).saturating_add(64)
}

impl<K: Eq + Hash, V, S: BuildHasher> Shrink for HashMap<K, V, S> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

impl<T: Eq + Hash, S: BuildHasher> Shrink for HashSet<T, S> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

impl<T: Ord> Shrink for BinaryHeap<T> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

impl<T> Shrink for VecDeque<T> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

impl<T> Shrink for Vec<T> {
    fn shrink_when_sparse(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_map_gives_back_its_room_and_a_full_one_keeps_it() {
        let mut m: HashMap<u32, [u8; 64]> = (0..10_000).map(|k| (k, [0; 64])).collect();
        m.shrink_when_sparse();
        let full = m.capacity();
        assert!(full >= 10_000);
        m.retain(|k, _| *k < 10);
        m.shrink_when_sparse();
        assert!(m.capacity() < 1_000, "capacity {}", m.capacity());
        assert_eq!(m.len(), 10);
        let mut v: Vec<u8> = Vec::with_capacity(50);
        v.shrink_when_sparse();
        assert_eq!(v.capacity(), 50, "small collections keep their room");
    }
}
