//! A fast hash for keys that come from Kubernetes objects, never from
//! clients: hosts in the route table, namespaces and names in the request
//! metrics. SipHash's flooding protection buys nothing for such keys, and a
//! request pays for every hash it computes.

use std::hash::{BuildHasherDefault, Hasher};

/// FxHash's step (rotate, xor, multiply) on eight bytes at a time, then a
/// murmur3 finaliser so the top bits and the low bits both depend on every byte.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

/// For `HashMap<K, V, BuildFastHasher>`.
pub type BuildFastHasher = BuildHasherDefault<FastHasher>;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some((word, tail)) = rest.split_first_chunk::<8>() {
            self.add(u64::from_le_bytes(*word));
            rest = tail;
        }
        if !rest.is_empty() {
            self.add(partial_word(rest));
        }
        // The length keeps "a" and "a\0" apart.
        self.add(bytes.len() as u64);
    }

    fn finish(&self) -> u64 {
        let mut hash = self.hash;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }
}

/// One to seven bytes as a little-endian word padded with zeros, from two
/// overlapping loads (or three bytes) rather than a copy into a zeroed word:
/// that copy is a `memcpy` call of variable length, more than the rest of a
/// short name's hash.
fn partial_word(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    if let (Some(first), Some(last)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        u64::from(u32::from_le_bytes(*first)) | u64::from(u32::from_le_bytes(*last)) << (8 * (len - 4))
    } else if let (Some(&first), Some(&middle), Some(&last)) = (bytes.first(), bytes.get(len / 2), bytes.last()) {
        u64::from(first) | u64::from(middle) << (8 * (len / 2)) | u64::from(last) << (8 * (len - 1))
    } else {
        0
    }
}

/// One byte string hashed with no `Hash` framing around it, for a table
/// that probes by the hash itself (the route table's host map, on every
/// request).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_differ_only_in_length_or_trailing_zeros_hash_apart() {
        let keys: [&[u8]; 6] = [b"", b"a", b"a\0", b"a\0\0\0\0\0\0\0", b"abcdefgh", b"abcdefgh\0"];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(hash_bytes(a), hash_bytes(b), "{a:?} and {b:?}");
            }
        }
    }

    /// Hashes stay those of every eight bytes read as a little-endian word,
    /// the last one padded with zeros.
    #[test]
    fn words_are_the_bytes_zero_padded_little_endian() {
        let bytes: Vec<u8> = (1..=40u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..=bytes.len() {
            let mut expected = FastHasher::default();
            for chunk in bytes[..len].chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                expected.add(u64::from_le_bytes(word));
            }
            expected.add(len as u64);
            assert_eq!(hash_bytes(&bytes[..len]), expected.finish(), "{len} bytes");
        }
    }

    #[test]
    fn both_ends_of_the_hash_spread_over_similar_keys() {
        let hashes: Vec<u64> = (0..4096).map(|i| hash_bytes(format!("host-{i}.example.com").as_bytes())).collect();
        let top: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 56).collect();
        let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0xff).collect();
        assert_eq!(top.len(), 256, "every top byte value is reached");
        assert_eq!(low.len(), 256, "every low byte value is reached");
    }
}
