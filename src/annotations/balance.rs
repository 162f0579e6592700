//! Which endpoint a request goes to: `affinity: cookie` with the
//! `session-cookie-*` settings, `upstream-hash-by`, `load-balance`, and how
//! many endpoints one request may try (`proxy-next-upstream-tries`).
//!
//! ingress-nginx's precedence: cookie affinity, else `upstream-hash-by`,
//! else `load-balance` (round robin here). Parsing is pure; the choice per
//! request is made in the proxy's `balance` step.

use crate::kube::objects::StringMap;

use super::cors::parse_bool;
use super::value;

/// ingress-nginx's default cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";

/// The most endpoints one request tries, whatever `proxy-next-upstream-tries`
/// says (nginx's `0`, unlimited, means this many).
pub const MAX_TRIES_LIMIT: usize = 16;

/// How a route picks the endpoint for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `affinity: cookie`: the cookie names the endpoint.
    Cookie(Affinity),
    /// `upstream-hash-by`: a request value picks the endpoint by consistent hashing.
    Hash(HashKey),
}

/// The sticky cookie as ingress-nginx sets it: `HttpOnly`, `Secure` on TLS
/// requests (or always with `session-cookie-secure`), and the attributes below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    pub name: String,
    /// `None`: the path of the matched Ingress rule, as ingress-nginx does.
    pub path: Option<String>,
    pub domain: Option<String>,
    /// `Max-Age`, in seconds.
    pub max_age: Option<u64>,
    /// `Expires`: this many seconds after the response.
    pub expires: Option<u64>,
    pub samesite: Option<SameSite>,
    /// `Secure` even on plain-HTTP requests.
    pub secure: bool,
    /// A request whose cookie's endpoint failed gets a new cookie for the endpoint that answered.
    pub change_on_failure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    None,
    Lax,
    Strict,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::None => "None",
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }
}

/// An `upstream-hash-by` template: literal text and nginx variables, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashKey {
    pub parts: Vec<HashPart>,
}

/// The nginx variables `upstream-hash-by` may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPart {
    Literal(String),
    /// `$request_uri`: the path and query as the client sent them.
    RequestUri,
    /// `$remote_addr`: the client's address, without port.
    RemoteAddr,
    /// `$host`: the Host without port, lower-case.
    Host,
    /// `$http_NAME`: a request header; `_` in NAME matches `-`, case-insensitively.
    Header(String),
    /// `$cookie_NAME`: a request cookie, by its exact name.
    Cookie(String),
    /// `$arg_NAME`: a query argument, as sent (not decoded), by its exact name.
    Arg(String),
}

/// What an Ingress's balancing annotations ask for; `None` fields keep the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balance {
    pub selection: Option<Selection>,
    /// `proxy-next-upstream-tries`, at most [`MAX_TRIES_LIMIT`].
    pub tries: Option<usize>,
}

impl Balance {
    /// `None` when the annotations ask for round robin with the default tries.
    pub fn from_annotations(annotations: &StringMap, problems: &mut Vec<String>) -> Option<Balance> {
        let mut balance = Balance { selection: None, tries: tries(annotations, problems) };
        if let Some(mode) = value(annotations, "load-balance") {
            match mode.trim() {
                "round_robin" => {}
                "ewma" => problems.push("load-balance \"ewma\" is not implemented; round robin is used".to_string()),
                other => problems.push(format!("load-balance {other:?} is not round_robin or ewma; round robin is used")),
            }
        }
        let hash = value(annotations, "upstream-hash-by").filter(|t| !t.trim().is_empty()).and_then(|text| match parse_hash_key(text) {
            Ok(key) => Some(key),
            Err(why) => {
                problems.push(format!("upstream-hash-by {text:?} ignored: {why}; round robin is used"));
                None
            }
        });
        balance.selection = match value(annotations, "affinity").map(str::trim) {
            Some("cookie") => Some(Selection::Cookie(affinity(annotations, problems))),
            Some(other) => {
                problems.push(format!("affinity {other:?} ignored: only \"cookie\" exists"));
                hash.map(Selection::Hash)
            }
            None => hash.map(Selection::Hash),
        };
        (balance != Balance::default()).then_some(balance)
    }
}

/// `proxy-next-upstream-tries`: a whole number; `0` (nginx: unlimited) and
/// anything above [`MAX_TRIES_LIMIT`] mean that limit.
fn tries(annotations: &StringMap, problems: &mut Vec<String>) -> Option<usize> {
    let text = value(annotations, "proxy-next-upstream-tries")?;
    match text.trim().parse::<u64>() {
        Ok(0) => Some(MAX_TRIES_LIMIT),
        Ok(n) => Some(usize::try_from(n).unwrap_or(MAX_TRIES_LIMIT).min(MAX_TRIES_LIMIT)),
        Err(_) => {
            problems.push(format!("proxy-next-upstream-tries {text:?} ignored: not a whole number; 3 tries"));
            None
        }
    }
}

/// `affinity: cookie` with no `session-cookie-*` set: ingress-nginx's cookie name, nothing else.
impl Default for Affinity {
    fn default() -> Affinity {
        Affinity {
            name: DEFAULT_COOKIE_NAME.to_string(),
            path: None,
            domain: None,
            max_age: None,
            expires: None,
            samesite: None,
            secure: false,
            change_on_failure: false,
        }
    }
}

fn affinity(annotations: &StringMap, problems: &mut Vec<String>) -> Affinity {
    let mut affinity = Affinity::default();
    if let Some(name) = value(annotations, "session-cookie-name") {
        match check_cookie_name(name) {
            Ok(()) => affinity.name = name.to_string(),
            Err(why) => problems.push(format!("session-cookie-name {name:?} ignored: {why}; {DEFAULT_COOKIE_NAME} is used")),
        }
    }
    for (name, slot) in [("session-cookie-path", &mut affinity.path), ("session-cookie-domain", &mut affinity.domain)] {
        if let Some(text) = value(annotations, name) {
            match check_attribute(text) {
                Ok(()) => *slot = Some(text.to_string()),
                Err(why) => problems.push(format!("{name} {text:?} ignored: {why}")),
            }
        }
    }
    for (name, slot) in [("session-cookie-max-age", &mut affinity.max_age), ("session-cookie-expires", &mut affinity.expires)] {
        if let Some(text) = value(annotations, name) {
            match text.trim().parse::<u64>() {
                Ok(seconds) => *slot = Some(seconds),
                Err(_) => problems.push(format!("{name} {text:?} ignored: not a whole number of seconds")),
            }
        }
    }
    if let Some(text) = value(annotations, "session-cookie-samesite") {
        match parse_samesite(text) {
            Some(samesite) => affinity.samesite = Some(samesite),
            None => problems.push(format!("session-cookie-samesite {text:?} ignored: not None, Lax or Strict")),
        }
    }
    for (name, slot) in [("session-cookie-secure", &mut affinity.secure), ("session-cookie-change-on-failure", &mut affinity.change_on_failure)] {
        if let Some(text) = value(annotations, name) {
            match parse_bool(text) {
                Some(on) => *slot = on,
                None => problems.push(format!("{name} {text:?} ignored: not a boolean")),
            }
        }
    }
    affinity
}

fn parse_samesite(text: &str) -> Option<SameSite> {
    match text.trim().to_ascii_lowercase().as_str() {
        "none" => Some(SameSite::None),
        "lax" => Some(SameSite::Lax),
        "strict" => Some(SameSite::Strict),
        _ => None,
    }
}

/// A cookie name is an RFC 6265 token.
fn check_cookie_name(name: &str) -> Result<(), &'static str> {
    let separator = |b: u8| b"()<>@,;:\\\"/[]?={} \t".contains(&b);
    if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic() || separator(b)) {
        return Err("not a cookie name (a token without separators)");
    }
    Ok(())
}

/// A cookie attribute value: printable ASCII without `;`.
fn check_attribute(text: &str) -> Result<(), &'static str> {
    if text.is_empty() || text.bytes().any(|b| !b.is_ascii_graphic() || b == b';') {
        return Err("empty, or holds white space, control bytes or ';'");
    }
    Ok(())
}

/// Parses an `upstream-hash-by` template: `$request_uri`, `$remote_addr`,
/// `$host`, `$http_NAME`, `$cookie_NAME`, `$arg_NAME` and `${...}` forms of
/// them, mixed with literal text. Any other variable refuses the template:
/// hashing on a variable ingressd cannot evaluate would send every request
/// to one endpoint.
pub fn parse_hash_key(text: &str) -> Result<HashKey, String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(at) = rest.find('$') else {
            parts.push(HashPart::Literal(rest.to_string()));
            break;
        };
        if at > 0 {
            parts.push(HashPart::Literal(rest[..at].to_string()));
        }
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or("an unclosed ${")?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        parts.push(hash_variable(name)?);
        rest = tail;
    }
    if !parts.iter().any(|p| !matches!(p, HashPart::Literal(_))) {
        return Err("no variable: every request would go to one endpoint".to_string());
    }
    Ok(HashKey { parts })
}

fn hash_variable(name: &str) -> Result<HashPart, String> {
    let named = |prefix: &str| name.strip_prefix(prefix).filter(|n| !n.is_empty()).map(str::to_string);
    match name {
        "request_uri" => Ok(HashPart::RequestUri),
        "remote_addr" | "binary_remote_addr" => Ok(HashPart::RemoteAddr),
        "host" => Ok(HashPart::Host),
        _ => {
            if let Some(header) = named("http_") {
                Ok(HashPart::Header(header.to_ascii_lowercase()))
            } else if let Some(cookie) = named("cookie_") {
                Ok(HashPart::Cookie(cookie))
            } else if let Some(arg) = named("arg_") {
                Ok(HashPart::Arg(arg))
            } else {
                Err(format!("${name} is not one of $request_uri, $remote_addr, $host, $http_NAME, $cookie_NAME, $arg_NAME"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        crate::annotations::nginx_annotations(pairs)
    }

    fn parse(pairs: &[(&str, &str)]) -> (Option<Balance>, Vec<String>) {
        let mut problems = Vec::new();
        (Balance::from_annotations(&map(pairs), &mut problems), problems)
    }

    #[test]
    fn cookie_affinity_with_ingress_nginx_defaults_and_examples() {
        let (balance, problems) = parse(&[("affinity", "cookie")]);
        assert!(problems.is_empty());
        let Some(Selection::Cookie(affinity)) = balance.and_then(|b| b.selection) else { panic!("cookie affinity") };
        assert_eq!(affinity.name, "INGRESSCOOKIE");
        assert_eq!((affinity.path, affinity.max_age, affinity.expires, affinity.samesite, affinity.secure), (None, None, None, None, false));

        // ingress-nginx's e2e example.
        let (balance, problems) = parse(&[
            ("affinity", "cookie"),
            ("session-cookie-name", "foobar"),
            ("session-cookie-secure", "true"),
            ("session-cookie-path", "/foobar"),
            ("session-cookie-domain", "foo.localhost"),
            ("session-cookie-samesite", "None"),
            ("session-cookie-max-age", "42"),
            ("session-cookie-expires", "172800"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let Some(Selection::Cookie(affinity)) = balance.and_then(|b| b.selection) else { panic!("cookie affinity") };
        assert_eq!(affinity.name, "foobar");
        assert_eq!(affinity.path.as_deref(), Some("/foobar"));
        assert_eq!(affinity.domain.as_deref(), Some("foo.localhost"));
        assert_eq!((affinity.max_age, affinity.expires), (Some(42), Some(172800)));
        assert_eq!(affinity.samesite, Some(SameSite::None));
        assert!(affinity.secure);
    }

    #[test]
    fn bad_cookie_settings_are_reported_and_left_out() {
        let (balance, problems) = parse(&[
            ("affinity", "cookie"),
            ("session-cookie-name", "a b"),
            ("session-cookie-path", "/x; Domain=evil"),
            ("session-cookie-max-age", "1h"),
            ("session-cookie-samesite", "sometimes"),
        ]);
        assert_eq!(problems.len(), 4, "{problems:?}");
        let Some(Selection::Cookie(affinity)) = balance.and_then(|b| b.selection) else { panic!("still cookie affinity") };
        assert_eq!((affinity.name.as_str(), affinity.path, affinity.max_age, affinity.samesite), ("INGRESSCOOKIE", None, None, None));
        let (balance, problems) = parse(&[("affinity", "ip")]);
        assert_eq!((balance, problems.len()), (None, 1));
    }

    #[test]
    fn hash_keys_from_the_documented_variables() {
        let cases: &[(&str, Result<Vec<HashPart>, ()>)] = &[
            ("$request_uri", Ok(vec![HashPart::RequestUri])),
            ("$remote_addr", Ok(vec![HashPart::RemoteAddr])),
            ("$http_x_user_id", Ok(vec![HashPart::Header("x_user_id".into())])),
            ("$cookie_session", Ok(vec![HashPart::Cookie("session".into())])),
            ("$arg_tenant", Ok(vec![HashPart::Arg("tenant".into())])),
            ("$host$request_uri", Ok(vec![HashPart::Host, HashPart::RequestUri])),
            ("t-${arg_id}-x", Ok(vec![HashPart::Literal("t-".into()), HashPart::Arg("id".into()), HashPart::Literal("-x".into())])),
            ("$request_id", Err(())),
            ("$http_", Err(())),
            ("constant", Err(())),
            ("${arg_id", Err(())),
        ];
        for (text, expected) in cases {
            let parsed = parse_hash_key(text).map(|k| k.parts).map_err(|_| ());
            assert_eq!(&parsed, expected, "{text}");
        }
    }

    #[test]
    fn affinity_wins_over_hash_and_load_balance_values() {
        let (balance, _) = parse(&[("affinity", "cookie"), ("upstream-hash-by", "$request_uri")]);
        assert!(matches!(balance.and_then(|b| b.selection), Some(Selection::Cookie(_))));
        let (balance, problems) = parse(&[("upstream-hash-by", "$request_uri"), ("load-balance", "ewma")]);
        assert!(matches!(balance.and_then(|b| b.selection), Some(Selection::Hash(_))));
        assert_eq!(problems.len(), 1, "ewma falls back to round robin with a warning");
        assert_eq!(parse(&[("load-balance", "round_robin")]), (None, vec![]));
        assert_eq!(parse(&[("upstream-hash-by", "$nope")]).0, None);
    }

    #[test]
    fn tries_as_ingress_nginx_counts_them() {
        for (text, expected, problems) in [("1", Some(1), 0), ("5", Some(5), 0), ("0", Some(MAX_TRIES_LIMIT), 0), ("100", Some(MAX_TRIES_LIMIT), 0), ("-1", None, 1), ("x", None, 1)] {
            let (balance, found) = parse(&[("proxy-next-upstream-tries", text)]);
            assert_eq!(balance.and_then(|b| b.tries), expected, "{text}");
            assert_eq!(found.len(), problems, "{text}");
        }
    }
}
