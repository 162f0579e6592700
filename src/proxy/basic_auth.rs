//! The basic-auth step, after the policy phase: a route whose Ingress asks
//! for `auth-type: basic` lets a request through only with a valid
//! `Authorization: Basic` credential, and does not forward that header (as
//! ingress-nginx's `proxy_set_header Authorization ""`).
//!
//! bcrypt is slow by design (tens of milliseconds per check), so its
//! successes are remembered in a bounded in-memory set. An entry is a keyed
//! digest (HMAC-SHA256 under a key drawn at start) of the stored hash
//! together with the supplied password: a hit needs that very password
//! against that very hash, so a cached success never lets another password
//! through, and the set holds nothing a memory dump could turn back into a
//! password. Failures are not remembered.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};

use ring::hmac;

use crate::annotations::basic_auth::BasicAuth;
use crate::annotations::htpasswd::Hash;
use crate::base64;

/// Most bcrypt successes remembered; the oldest is forgotten first.
const CACHE_ENTRIES: usize = 4096;

/// What the step decided.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A valid credential: forward, without the Authorization header.
    Pass,
    /// 401 with `WWW-Authenticate` carrying the realm.
    Challenge,
    /// 503: authentication is asked for but could not be set up.
    Unavailable,
}

/// Checks the `Authorization` headers of a request against `auth`.
pub(super) fn check<'a>(auth: &BasicAuth, mut authorization: impl Iterator<Item = &'a str>) -> Verdict {
    let BasicAuth::Required { credentials, .. } = auth else { return Verdict::Unavailable };
    // Two credentials are ambiguous: nginx would read the first, a backend the last.
    let (Some(header), None) = (authorization.next(), authorization.next()) else { return Verdict::Challenge };
    let Some((user, password)) = decode(header) else { return Verdict::Challenge };
    match credentials.get(&user) {
        Some(hash) if verify(hash, &password) => Verdict::Pass,
        _ => Verdict::Challenge,
    }
}

/// The `WWW-Authenticate` value for a challenge.
pub(super) fn challenge(auth: &BasicAuth) -> String {
    match auth {
        BasicAuth::Required { realm, .. } => format!("Basic realm=\"{realm}\""),
        BasicAuth::Unavailable => "Basic realm=\"\"".to_string(),
    }
}

/// `Basic base64(user:password)` → user and password. The scheme is
/// case-insensitive; the user ends at the first `:`.
fn decode(header: &str) -> Option<(String, Vec<u8>)> {
    let header = header.trim();
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

fn verify(hash: &Hash, password: &[u8]) -> bool {
    let Hash::Bcrypt(stored) = hash else { return hash.verify(password) };
    let cache = cache();
    let entry = cache.entry(stored, password);
    if cache.contains(&entry) {
        return true;
    }
    let ok = hash.verify(password);
    if ok {
        cache.insert(entry);
    }
    ok
}

/// The remembered digests, and their order of arrival.
type Remembered = (HashSet<[u8; 32]>, VecDeque<[u8; 32]>);

/// Remembered bcrypt successes: keyed digests, bounded, oldest out first.
pub(super) struct VerifiedCache {
    key: hmac::Key,
    entries: Mutex<Remembered>,
    capacity: usize,
}

fn cache() -> &'static VerifiedCache {
    static CACHE: OnceLock<VerifiedCache> = OnceLock::new();
    CACHE.get_or_init(|| VerifiedCache::new(CACHE_ENTRIES))
}

impl VerifiedCache {
    pub(super) fn new(capacity: usize) -> VerifiedCache {
        match hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new()) {
            Ok(key) => VerifiedCache { key, entries: Mutex::default(), capacity },
            Err(_) => {
                // Only speed suffers: every bcrypt check is then done in full.
                log::warn!("basic auth: no system randomness for the bcrypt cache key; successes are not cached");
                VerifiedCache { key: hmac::Key::new(hmac::HMAC_SHA256, &[]), entries: Mutex::default(), capacity: 0 }
            }
        }
    }

    /// The digest of a hash and a password; lengths keep the two apart.
    pub(super) fn entry(&self, stored: &str, password: &[u8]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(&(stored.len() as u64).to_be_bytes());
        context.update(stored.as_bytes());
        context.update(password);
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    pub(super) fn contains(&self, entry: &[u8; 32]) -> bool {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).0.contains(entry)
    }

    pub(super) fn insert(&self, entry: [u8; 32]) {
        if self.capacity == 0 {
            return;
        }
        let mut guard = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if !set.insert(entry) {
            return;
        }
        order.push_back(entry);
        while order.len() > self.capacity {
            if let Some(oldest) = order.pop_front() {
                set.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::htpasswd;

    const FILE: &str = "\
alice:$2y$04$o2P9Du.ks7G/TXJuQGbFbew9S/KvYiGKkD9IDaQ3qzXoYlgEEhEny
bob:$apr1$qGqYkezf$jZBKz0HpSDf4vAQWYU7kQ.
carol:{SHA}QY7lFvHLCVxQ/y8Qp2GSiJwoHzo=
";

    fn auth() -> BasicAuth {
        BasicAuth::Required { realm: "shop".into(), credentials: htpasswd::parse(FILE).0 }
    }

    #[test]
    fn credentials_table() {
        // base64 of "alice:secret1", "bob:secret2", "carol:secret3", "alice:wrong",
        // "nobody:secret1", "alice" (no colon), "carol:secret3:x".
        let cases: &[(&[&str], Verdict)] = &[
            (&["Basic YWxpY2U6c2VjcmV0MQ=="], Verdict::Pass),
            (&["basic YWxpY2U6c2VjcmV0MQ=="], Verdict::Pass),
            (&["Basic Ym9iOnNlY3JldDI="], Verdict::Pass),
            (&["Basic Y2Fyb2w6c2VjcmV0Mw=="], Verdict::Pass),
            (&["Basic YWxpY2U6d3Jvbmc="], Verdict::Challenge),
            (&["Basic bm9ib2R5OnNlY3JldDE="], Verdict::Challenge),
            (&["Basic YWxpY2U="], Verdict::Challenge),
            (&["Basic Y2Fyb2w6c2VjcmV0Mzp4"], Verdict::Challenge),
            (&["Bearer YWxpY2U6c2VjcmV0MQ=="], Verdict::Challenge),
            (&["Basic !!!"], Verdict::Challenge),
            (&["Basic"], Verdict::Challenge),
            (&[], Verdict::Challenge),
            (&["Basic YWxpY2U6c2VjcmV0MQ==", "Basic YWxpY2U6c2VjcmV0MQ=="], Verdict::Challenge),
        ];
        let auth = auth();
        for (headers, verdict) in cases {
            assert_eq!(check(&auth, headers.iter().copied()), *verdict, "{headers:?}");
        }
        assert_eq!(check(&BasicAuth::Unavailable, ["Basic YWxpY2U6c2VjcmV0MQ=="].into_iter()), Verdict::Unavailable);
        assert_eq!(challenge(&auth), "Basic realm=\"shop\"");
    }

    #[test]
    fn a_remembered_success_is_bound_to_its_password_and_hash() {
        let cache = VerifiedCache::new(2);
        let hash = "$2y$04$o2P9Du.ks7G/TXJuQGbFbew9S/KvYiGKkD9IDaQ3qzXoYlgEEhEny";
        cache.insert(cache.entry(hash, b"secret1"));
        assert!(cache.contains(&cache.entry(hash, b"secret1")));
        assert!(!cache.contains(&cache.entry(hash, b"secret2")), "another password must miss");
        assert!(!cache.contains(&cache.entry("$2y$04$other", b"secret1")), "another hash must miss");
        assert_ne!(cache.entry("ab", b"c"), cache.entry("a", b"bc"), "hash and password stay apart");
        let other = VerifiedCache::new(2);
        assert_ne!(cache.entry(hash, b"secret1"), other.entry(hash, b"secret1"), "the key is per cache");
        for password in [&b"a"[..], b"b", b"c"] {
            cache.insert(cache.entry(hash, password));
        }
        assert_eq!(cache.len(), 2, "bounded");
        assert!(!cache.contains(&cache.entry(hash, b"secret1")), "the oldest went first");
        assert!(cache.contains(&cache.entry(hash, b"c")));
    }
}
