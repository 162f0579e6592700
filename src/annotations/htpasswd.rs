//! htpasswd files as nginx's `auth_basic_user_file` reads them, and the
//! password hashes people actually have in them: bcrypt (`$2y$`, `$2b$`,
//! `$2a$`), Apache's MD5 (`$apr1$`, and the same algorithm under crypt's
//! `$1$`), and `{SHA}`.
//!
//! Pure: [`parse`] turns text into [`Credentials`] and reports the lines it
//! could not use; [`Hash::verify`] checks one password. Both run on input
//! from Secrets, so neither panics on any input (a fuzz target checks it),
//! and no message echoes a hash or a password.
//!
//! The hashes come from well-kept crates (`bcrypt`, RustCrypto's `md-5`,
//! ring's SHA-1); only the apr1 rounds over MD5 are written here, since no
//! maintained crate offers them.

use std::collections::HashMap;

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// One user's stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum Hash {
    /// A bcrypt hash as written (`$2y$10$` + 53 characters).
    Bcrypt(String),
    /// MD5-crypt: `magic` is `$apr1$` or `$1$`; `digest` the 22 characters
    /// after the salt.
    Md5Crypt { magic: &'static str, salt: String, digest: String },
    /// `{SHA}`: the SHA-1 of the password.
    Sha1([u8; 20]),
}

impl std::fmt::Debug for Hash {
    /// Names the scheme only: hashes stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scheme())
    }
}

impl Hash {
    /// Recognises one stored hash; `Err` says why it is unusable.
    pub fn parse(text: &str) -> Result<Hash, &'static str> {
        if let Some(rest) = ["$2y$", "$2b$", "$2a$"].iter().find_map(|p| text.strip_prefix(p)) {
            let (cost, body) = rest.split_at_checked(2).ok_or("bcrypt hash too short")?;
            let cost_ok = cost.bytes().all(|b| b.is_ascii_digit()) && (4..=31).contains(&cost.parse::<u32>().unwrap_or(0));
            let body = body.strip_prefix('$').filter(|b| b.len() == 53 && b.bytes().all(is_crypt64));
            return match (cost_ok, body) {
                (true, Some(_)) => Ok(Hash::Bcrypt(text.to_string())),
                (false, _) => Err("bcrypt cost is not 04 to 31"),
                (true, None) => Err("bcrypt hash is not 53 characters of bcrypt base64 after the cost"),
            };
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = text.strip_prefix(magic) {
                let (salt, digest) = rest.split_once('$').ok_or("MD5 hash has no salt")?;
                if salt.len() > 8 || !salt.bytes().all(is_crypt64) {
                    return Err("MD5 salt is not up to 8 characters of crypt base64");
                }
                if digest.len() != 22 || !digest.bytes().all(is_crypt64) {
                    return Err("MD5 hash is not 22 characters of crypt base64");
                }
                return Ok(Hash::Md5Crypt { magic, salt: salt.to_string(), digest: digest.to_string() });
            }
        }
        if let Some(encoded) = text.strip_prefix("{SHA}") {
            let bytes = crate::base64::decode(encoded).map_err(|_| "{SHA} hash is not base64")?;
            return bytes.try_into().map(Hash::Sha1).map_err(|_| "{SHA} hash is not 20 bytes");
        }
        if text.starts_with("$5$") || text.starts_with("$6$") || text.starts_with("{SSHA}") || text.starts_with("{PLAIN}") {
            return Err("unsupported hash scheme (use bcrypt, apr1 or {SHA})");
        }
        Err("not a bcrypt, apr1-MD5 or {SHA} hash (DES crypt and plain text are not accepted)")
    }

    /// The scheme's name, for logs.
    pub fn scheme(&self) -> &'static str {
        match self {
            Hash::Bcrypt(_) => "bcrypt",
            Hash::Md5Crypt { magic: "$1$", .. } => "md5-crypt",
            Hash::Md5Crypt { .. } => "apr1",
            Hash::Sha1(_) => "{SHA}",
        }
    }

    /// Whether `password` matches, compared in constant time. bcrypt is
    /// slow by design: callers cache its successes ([`super::basic_auth`]).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Bcrypt(stored) => bcrypt::verify(password, stored).unwrap_or(false),
            Hash::Md5Crypt { magic, salt, digest } => {
                let computed = md5_crypt(password, magic.as_bytes(), salt.as_bytes());
                bool::from(computed.as_bytes().ct_eq(digest.as_bytes()))
            }
            Hash::Sha1(stored) => {
                let computed = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, password);
                bool::from(computed.as_ref().ct_eq(stored.as_slice()))
            }
        }
    }
}

/// Users and their hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    users: HashMap<String, Hash>,
}

impl Credentials {
    pub fn get(&self, user: &str) -> Option<&Hash> {
        self.users.get(user)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Adds a user unless it is already there: like nginx, which stops at
    /// the first line naming the user, the first one wins.
    pub fn insert(&mut self, user: &str, hash: Hash) -> bool {
        if self.users.contains_key(user) {
            return false;
        }
        self.users.insert(user.to_string(), hash);
        true
    }
}

/// A line that could not be used: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    pub line: usize,
    pub why: &'static str,
}

/// Reads an htpasswd file: `user:hash` lines (anything after a second `:`
/// is a comment, as Apache writes it); blank lines and `#` comments are
/// skipped; CRLF line ends are accepted. A user named twice keeps its first
/// line, as nginx matches the first.
pub fn parse(text: &str) -> (Credentials, Vec<LineProblem>) {
    let mut credentials = Credentials::default();
    let mut problems = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let problem = |why| LineProblem { line: index + 1, why };
        match parse_line(line) {
            Ok((user, hash)) => {
                if !credentials.insert(user, hash) {
                    problems.push(problem("user already defined on an earlier line; the first wins"));
                }
            }
            Err(why) => problems.push(problem(why)),
        }
    }
    (credentials, problems)
}

/// One `user:hash[:comment]` line.
pub fn parse_line(line: &str) -> Result<(&str, Hash), &'static str> {
    let (user, rest) = line.split_once(':').ok_or("no ':' between user and hash")?;
    check_user(user)?;
    let hash = rest.split(':').next().unwrap_or(rest);
    Ok((user, Hash::parse(hash)?))
}

/// A user name as a Basic credential can carry it: not empty, no control
/// bytes (a `:` never reaches here).
pub fn check_user(user: &str) -> Result<(), &'static str> {
    if user.is_empty() {
        return Err("empty user name");
    }
    if user.chars().any(char::is_control) {
        return Err("control characters in the user name");
    }
    Ok(())
}

/// The alphabet of crypt's base64: `./0-9A-Za-z`.
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn is_crypt64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'/'
}

/// Poul-Henning Kamp's MD5-crypt, which Apache's `$apr1$` runs with a
/// different magic string: 1000 rounds of MD5 over the password and salt.
/// Returns the 22-character digest that follows the salt.
pub fn md5_crypt(password: &[u8], magic: &[u8], salt: &[u8]) -> String {
    let salt = &salt[..salt.len().min(8)];
    let alternate = Md5::new().chain_update(password).chain_update(salt).chain_update(password).finalize();
    let mut context = Md5::new().chain_update(password).chain_update(magic).chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let take = left.min(16);
        context.update(&alternate[..take]);
        left -= take;
    }
    let mut bits = password.len();
    while bits != 0 {
        // The C original feeds the byte at index 0 of either a zeroed
        // buffer or the password.
        if bits & 1 == 1 {
            context.update([0u8]);
        } else {
            context.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest: [u8; 16] = context.finalize().into();
    for round in 0..1000 {
        let mut context = Md5::new();
        if round & 1 == 1 {
            context.update(password);
        } else {
            context.update(digest);
        }
        if round % 3 != 0 {
            context.update(salt);
        }
        if round % 7 != 0 {
            context.update(password);
        }
        if round & 1 == 1 {
            context.update(digest);
        } else {
            context.update(password);
        }
        digest = context.finalize().into();
    }
    let mut out = String::with_capacity(22);
    let mut push = |value: u32, count: usize| {
        let mut value = value;
        for _ in 0..count {
            out.push(char::from(CRYPT64[(value & 0x3f) as usize]));
            value >>= 6;
        }
    };
    let d = |i: usize| u32::from(digest[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push((d(a) << 16) | (d(b) << 8) | d(c), 4);
    }
    push(d(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `htpasswd -nbB -C 4`, `htpasswd -nbm`, `htpasswd -nbs` and
    /// `openssl passwd -1`.
    const FILE: &str = "\
alice:$2y$04$o2P9Du.ks7G/TXJuQGbFbew9S/KvYiGKkD9IDaQ3qzXoYlgEEhEny
bob:$apr1$qGqYkezf$jZBKz0HpSDf4vAQWYU7kQ.
carol:{SHA}QY7lFvHLCVxQ/y8Qp2GSiJwoHzo=\r
# a comment line

dave:$1$abc$BXBqpb9BZcZhXLgbee.0s/:a trailing comment field
";

    #[test]
    fn each_hash_scheme_accepts_its_password_and_nothing_else() {
        let (credentials, problems) = parse(FILE);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(credentials.len(), 4);
        for (user, password, scheme) in [("alice", "secret1", "bcrypt"), ("bob", "secret2", "apr1"), ("carol", "secret3", "{SHA}"), ("dave", "password", "md5-crypt")] {
            let hash = credentials.get(user).expect(user);
            assert_eq!(hash.scheme(), scheme);
            assert!(hash.verify(password.as_bytes()), "{user}");
            for wrong in ["", "secret", "Secret1", "secret1 ", "password1"] {
                assert!(!hash.verify(wrong.as_bytes()), "{user} accepted {wrong:?}");
            }
        }
    }

    #[test]
    fn bcrypt_variants_2a_2b_2y_verify_alike() {
        // OpenBSD's test vector for "U*U".
        let body = "05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let hash = Hash::parse(&format!("{prefix}{body}")).expect(prefix);
            assert!(hash.verify(b"U*U"), "{prefix}");
            assert!(!hash.verify(b"U*V"), "{prefix}");
        }
    }

    #[test]
    fn md5_crypt_matches_openssl_and_apache() {
        assert_eq!(md5_crypt(b"password", b"$apr1$", b"r31eRBq0"), "t/uMYpmBRAFDhmQxW//wz.");
        assert_eq!(md5_crypt(b"password", b"$1$", b"abc"), "BXBqpb9BZcZhXLgbee.0s/");
        assert_eq!(md5_crypt(b"", b"$apr1$", b"").len(), 22, "an empty password and salt still hash");
    }

    #[test]
    fn unusable_lines_are_reported_with_their_number_and_never_echoed() {
        let text = "\
nocolon
:$apr1$qGqYkezf$jZBKz0HpSDf4vAQWYU7kQ.
erin:plaintext
frank:{SHA}notbase64!
gina:{SHA}c2hvcnQ=
hank:$2y$03$o2P9Du.ks7G/TXJuQGbFbew9S/KvYiGKkD9IDaQ3qzXoYlgEEhEny
ivan:$2y$04$short
judy:$apr1$toolongsalt$jZBKz0HpSDf4vAQWYU7kQ.
kim:$6$salt$abcdef
bob:$apr1$qGqYkezf$jZBKz0HpSDf4vAQWYU7kQ.
bob:{SHA}QY7lFvHLCVxQ/y8Qp2GSiJwoHzo=
";
        let (credentials, problems) = parse(text);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 9, 11]);
        assert_eq!(credentials.len(), 1);
        assert_eq!(credentials.get("bob").map(Hash::scheme), Some("apr1"), "the first line of a user wins");
        for problem in &problems {
            assert!(!problem.why.contains("plaintext") && !problem.why.contains("QY7l"), "{problem:?}");
        }
        assert_eq!(format!("{:?}", credentials.get("bob")), "Some(apr1)", "Debug never shows a hash");
    }

    #[test]
    fn nothing_usable_gives_empty_credentials() {
        for text in ["", "\n\n", "# only a comment\n", "x:y\n"] {
            assert!(parse(text).0.is_empty(), "{text:?}");
        }
    }
}
