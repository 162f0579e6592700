//! Which annotation each NUL-separated value of a fuzz input sets, in order:
//! shared by the fuzz targets and by `tests/it/fuzz_seeds.rs`, which checks
//! that the seeds written in this order still configure what they claim.

/// `auth_limits`: external auth and rate limits.
pub const AUTH_LIMITS: [&str; 12] = [
    "auth-url",
    "auth-method",
    "auth-response-headers",
    "auth-request-redirect",
    "auth-signin",
    "auth-cache-key",
    "auth-cache-duration",
    "limit-rps",
    "limit-rpm",
    "limit-connections",
    "limit-burst-multiplier",
    "limit-whitelist",
];

/// `balance_annotations`: balancing, affinity and backend TLS.
pub const BALANCE: [&str; 12] = [
    "affinity",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-max-age",
    "session-cookie-samesite",
    "upstream-hash-by",
    "load-balance",
    "proxy-next-upstream-tries",
    "backend-protocol",
    "proxy-ssl-verify",
    "proxy-ssl-name",
    "proxy-ssl-secret",
];
