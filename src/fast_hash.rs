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
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
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

/// The hash of one byte string.
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

    #[test]
    fn both_ends_of_the_hash_spread_over_similar_keys() {
        let hashes: Vec<u64> = (0..4096).map(|i| hash_bytes(format!("host-{i}.example.com").as_bytes())).collect();
        let top: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 56).collect();
        let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0xff).collect();
        assert_eq!(top.len(), 256, "every top byte value is reached");
        assert_eq!(low.len(), 256, "every low byte value is reached");
    }
}
