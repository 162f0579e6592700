//! `auth-url` and its companions: before a request is forwarded, ingressd
//! asks an authentication service (oauth2-proxy, usually) whether it may
//! pass, as ingress-nginx's `auth_request` location does.
//!
//! These annotations protect a service, so they fail closed: an `auth-url`,
//! `auth-method` or `auth-response-headers` that does not parse makes the
//! Ingress answer 503 rather than serve unauthenticated. Settings that only
//! shape the answer (`auth-signin`, the cache) are left out with a warning.

use std::borrow::Cow;
use std::time::Duration;

use crate::kube::objects::StringMap;
use crate::uri_escape::escape_uri_component;

use super::value;

/// What `auth-url` asks of an Ingress's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalAuth {
    Check(Box<AuthCheck>),
    /// The annotations could not be read; every request answers 503.
    Broken(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCheck {
    /// `auth-url` as written; it may hold nginx variables (`$host`…).
    pub url: String,
    /// `auth-method`; `None` sends GET (and leaves out X-Original-URI and
    /// X-Scheme, as ingress-nginx does).
    pub method: Option<String>,
    /// `auth-response-headers`, lower-case: copied from a 2xx answer onto
    /// the forwarded request, replacing what the client sent.
    pub response_headers: Vec<String>,
    /// `auth-request-redirect`: the X-Auth-Request-Redirect value
    /// (default: the request URI).
    pub request_redirect: Option<String>,
    /// `auth-signin`: a 401 becomes a 302 to this URL.
    pub signin: Option<String>,
    /// `auth-signin-redirect-param` (default `rd`).
    pub signin_redirect_param: String,
    /// `auth-cache-key` with `auth-cache-duration`.
    pub cache: Option<AuthCache>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCache {
    /// nginx variables naming what makes two requests the same to the auth
    /// service (`$http_authorization`, `$cookie__oauth2_proxy`…).
    pub key: String,
    /// How long answers are kept, by status; the first rule naming a status wins.
    pub rules: Vec<CacheRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRule {
    /// Statuses this rule covers; empty means any status.
    pub statuses: Vec<u16>,
    pub keep: Duration,
}

impl AuthCache {
    /// How long an answer with `status` is kept, if at all.
    pub fn keep_for(&self, status: u16) -> Option<Duration> {
        self.rules.iter().find(|rule| rule.statuses.is_empty() || rule.statuses.contains(&status)).map(|rule| rule.keep)
    }
}

/// ingress-nginx's default `auth-cache-duration`.
const DEFAULT_CACHE_DURATION: &str = "200 202 401 5m";

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"];

impl ExternalAuth {
    /// The external auth `annotations` ask for, `None` without `auth-url`.
    pub fn from_annotations(annotations: &StringMap, problems: &mut Vec<String>) -> Option<ExternalAuth> {
        let url = value(annotations, "auth-url")?.trim();
        let broken = |why: String, problems: &mut Vec<String>| {
            problems.push(format!("{why}; every request to this Ingress answers 503"));
            Some(ExternalAuth::Broken(why))
        };
        if let Err(why) = check_url(url) {
            return broken(format!("auth-url {:?} refused: {why}", url_for_log(url)), problems);
        }
        let method = match value(annotations, "auth-method").map(str::trim) {
            None | Some("") => None,
            Some(m) if METHODS.contains(&m) => Some(m.to_string()),
            Some(m) => return broken(format!("auth-method {m:?} refused: not one of {}", METHODS.join(", ")), problems),
        };
        let mut response_headers = Vec::new();
        for name in value(annotations, "auth-response-headers").unwrap_or("").split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return broken(format!("auth-response-headers entry {name:?} refused: not a header name"), problems);
            }
            response_headers.push(name.to_ascii_lowercase());
        }
        let request_redirect = match value(annotations, "auth-request-redirect") {
            Some(text) if header_safe(text) => Some(text.to_string()),
            Some(text) => return broken(format!("auth-request-redirect {text:?} refused: control or non-ASCII bytes"), problems),
            None => None,
        };
        let signin = value(annotations, "auth-signin").map(str::trim).filter(|s| !s.is_empty()).and_then(|s| match check_signin(s) {
            Ok(()) => Some(s.to_string()),
            Err(why) => {
                problems.push(format!("auth-signin {s:?} ignored: {why}; a 401 from the auth service is answered as is"));
                None
            }
        });
        let signin_redirect_param = match value(annotations, "auth-signin-redirect-param").map(str::trim) {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => p.to_string(),
            Some(p) => {
                problems.push(format!("auth-signin-redirect-param {p:?} ignored: not a plain parameter name; rd is used"));
                "rd".to_string()
            }
            None => "rd".to_string(),
        };
        let cache = value(annotations, "auth-cache-key").map(str::trim).filter(|k| !k.is_empty()).and_then(|key| {
            if let Some(unknown) = variables(key).find(|name| !known_variable(name)) {
                problems.push(format!("auth-cache-key {key:?} ignored: ${unknown} is not a variable ingressd knows; answers are not cached"));
                return None;
            }
            let durations = value(annotations, "auth-cache-duration").unwrap_or("");
            let rules = parse_cache_durations(durations).unwrap_or_else(|| {
                problems.push(format!("auth-cache-duration {durations:?} ignored: not `[status ...] time`; {DEFAULT_CACHE_DURATION} applies"));
                parse_cache_durations(DEFAULT_CACHE_DURATION).unwrap_or_default()
            });
            Some(AuthCache { key: key.to_string(), rules })
        });
        Some(ExternalAuth::Check(Box::new(AuthCheck { url: url.to_string(), method, response_headers, request_redirect, signin, signin_redirect_param, cache })))
    }
}

/// An absolute http URL with a host, and nothing that could split a header.
/// https is refused for now: the auth client has no trust roots to verify
/// a server with, and sending credentials to an unverified server is worse
/// than answering 503.
fn check_url(url: &str) -> Result<(), &'static str> {
    if !header_safe(url) || url.contains(' ') {
        return Err("white space, control or non-ASCII bytes");
    }
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("http://") {
        rest
    } else if lower.starts_with("https://") {
        return Err("https auth services are not supported yet");
    } else {
        return Err("not an absolute http URL");
    };
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return Err("no host");
    }
    if authority(rest).contains('@') {
        return Err("user information (user:password@) in the URL; nginx does not send it either");
    }
    Ok(())
}

/// The authority of a URL's text after `scheme://`: up to the first `/`,
/// `?` or `#`, so an `@` in a path or query is not user information.
pub(crate) fn authority(rest: &str) -> &str {
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// An auth-url as its warnings name it: user information masked and the
/// query left out, since a password or an API key may sit there and the log
/// must not carry either; the scheme, host and path are what an operator
/// needs to find the Ingress and the service.
pub fn url_for_log(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    let hidden = if without_query.len() < url.len() { "?…" } else { "" };
    let userinfo_end = without_query.split_once("://").and_then(|(scheme, rest)| Some((scheme, rest, authority(rest).rfind('@')?)));
    match userinfo_end {
        Some((scheme, rest, at)) => format!("{scheme}://***{}{hidden}", &rest[at..]),
        None => format!("{without_query}{hidden}"),
    }
}

/// An absolute http or https URL: it becomes a Location header.
fn check_signin(url: &str) -> Result<(), &'static str> {
    if !header_safe(url) || url.contains(' ') {
        return Err("white space, control or non-ASCII bytes");
    }
    let lower = url.to_ascii_lowercase();
    match lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) {
        Some(rest) if !rest.is_empty() && !rest.starts_with(['/', '?', '#']) => Ok(()),
        _ => Err("not an absolute http or https URL"),
    }
}

fn header_safe(text: &str) -> bool {
    !text.bytes().any(|b| b.is_ascii_control() || !b.is_ascii())
}

/// `auth-cache-duration`: comma-separated `[status ...] time [time ...]`
/// rules, as nginx's `proxy_cache_valid` (statuses default to 200, 301 and
/// 302; `any` covers every status); `None` when any rule is malformed.
pub fn parse_cache_durations(text: &str) -> Option<Vec<CacheRule>> {
    let mut rules = Vec::new();
    for rule in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let mut statuses = Vec::new();
        let mut any = false;
        let mut keep = Duration::ZERO;
        let mut seen_time = false;
        for word in rule.split_whitespace() {
            if word == "any" && !seen_time {
                any = true;
            } else if word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit()) && !seen_time {
                statuses.push(word.parse().ok()?);
            } else {
                keep += parse_nginx_time(word)?;
                seen_time = true;
            }
        }
        if !seen_time {
            return None;
        }
        if any {
            statuses.clear();
        } else if statuses.is_empty() {
            statuses = vec![200, 301, 302];
        }
        rules.push(CacheRule { statuses, keep });
    }
    if rules.is_empty() {
        return parse_cache_durations(DEFAULT_CACHE_DURATION);
    }
    Some(rules)
}

/// One nginx time word: digits and a unit (`ms`, `s`, `m`, `h`, `d`, `w`, `M`, `y`).
fn parse_nginx_time(word: &str) -> Option<Duration> {
    let split = word.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = word.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let seconds = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "M" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(seconds)?))
}

/// The request as nginx variables see it.
pub struct Variables<'a> {
    pub scheme: &'a str,
    /// The Host as sent, port included (`$http_host`).
    pub http_host: &'a str,
    pub request_uri: &'a str,
    pub remote_addr: &'a str,
    /// The client's headers.
    pub headers: &'a [(&'a str, &'a str)],
}

const SIMPLE_VARIABLES: &[&str] = &["scheme", "pass_access_scheme", "host", "http_host", "request_uri", "escaped_request_uri", "uri", "args", "remote_addr"];

fn known_variable(name: &str) -> bool {
    SIMPLE_VARIABLES.contains(&name) || name.strip_prefix("http_").is_some_and(|h| !h.is_empty()) || name.strip_prefix("cookie_").is_some_and(|c| !c.is_empty())
}

/// The names of the `$variables` in `text`.
fn variables(text: &str) -> impl Iterator<Item = &str> {
    text.split('$').skip(1).map(|tail| &tail[..tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len())]).filter(|n| !n.is_empty())
}

impl Variables<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let (path, query) = self.request_uri.split_once('?').unwrap_or((self.request_uri, ""));
        let header = |wanted: &str| {
            let mut values = self.headers.iter().filter(|(n, _)| n.len() == wanted.len() && n.bytes().zip(wanted.bytes()).all(|(a, b)| a.to_ascii_lowercase() == if b == b'_' { b'-' } else { b }));
            values.next().map(|(_, v)| *v)
        };
        Some(match name {
            "scheme" | "pass_access_scheme" => Cow::Borrowed(self.scheme),
            "host" => Cow::Owned(crate::hostname::normalize_host(self.http_host)),
            "http_host" => Cow::Borrowed(self.http_host),
            "request_uri" => Cow::Borrowed(self.request_uri),
            "escaped_request_uri" => Cow::Owned(escape_uri_component(self.request_uri)),
            "uri" => Cow::Borrowed(path),
            "args" => Cow::Borrowed(query),
            "remote_addr" => Cow::Borrowed(self.remote_addr),
            _ => {
                if let Some(cookie) = name.strip_prefix("cookie_") {
                    let cookies = self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("cookie")).flat_map(|(_, v)| v.split(';'));
                    let found = cookies.filter_map(|pair| pair.trim().split_once('=')).find(|(n, _)| *n == cookie).map(|(_, v)| v);
                    Cow::Borrowed(found.unwrap_or(""))
                } else {
                    Cow::Borrowed(header(name.strip_prefix("http_")?).unwrap_or(""))
                }
            }
        })
    }

    /// `text` with every variable ingressd knows replaced by its value, as
    /// nginx expands them; unknown `$names` stay as written.
    pub fn expand(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 32);
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let tail = &rest[at + 1..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            match self.get(&tail[..end]).filter(|_| end > 0) {
                Some(value) => out.push_str(&value),
                None => out.push_str(&rest[at..at + 1 + end]),
            }
            rest = &tail[end..];
        }
        out.push_str(rest);
        out
    }
}

/// The URL a 401 redirects to: `signin` plus `param=` the original URL,
/// unless `signin` already carries `param` (ingress-nginx's `buildAuthSignURL`);
/// variables in `signin` are expanded.
pub fn signin_location(signin: &str, param: &str, vars: &Variables<'_>) -> String {
    let query = signin.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or(q));
    let has_param = query.is_some_and(|q| q.split('&').any(|pair| pair.split('=').next() == Some(param)));
    let original = format!("{}://{}{}", vars.scheme, vars.http_host, escape_uri_component(vars.request_uri));
    let signin = vars.expand(signin);
    match (query, has_param) {
        (_, true) => signin,
        (Some(q), false) if !q.is_empty() => format!("{signin}&{param}={original}"),
        _ => format!("{signin}?{param}={original}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        crate::annotations::nginx_annotations(pairs)
    }

    fn parse(pairs: &[(&str, &str)]) -> (Option<ExternalAuth>, Vec<String>) {
        let mut problems = Vec::new();
        (ExternalAuth::from_annotations(&map(pairs), &mut problems), problems)
    }

    #[test]
    fn bad_auth_settings_fail_closed_and_cosmetic_ones_are_left_out() {
        let broken = |pairs: &[(&str, &str)]| matches!(parse(pairs).0, Some(ExternalAuth::Broken(_)));
        assert!(parse(&[]).0.is_none());
        assert!(parse(&[("auth-method", "POST")]).0.is_none(), "no auth-url, no check");
        for bad in ["oauth2-proxy/auth", "ftp://a.test/", "http:///path", "http://a.test/\r\nX: y", "https://auth.example.com/", "http://user:hunter2@auth.test/"] {
            assert!(broken(&[("auth-url", bad)]), "{bad:?}");
        }
        let (_, problems) = parse(&[("auth-url", "http://user:hunter2@auth.test/check?to=a@b")]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("\"http://***@auth.test/check?…\""), "{problems:?}");
        assert!(!problems.iter().any(|p| p.contains("hunter2")), "the password stays out of the log: {problems:?}");
        assert!(!broken(&[("auth-url", "http://auth.test/check?to=a@b")]), "an @ after the authority is the path's or query's");
        assert!(broken(&[("auth-url", "http://a.test"), ("auth-method", "get")]));
        assert!(broken(&[("auth-url", "http://a.test"), ("auth-response-headers", "X-User, X User")]));
        let (auth, problems) = parse(&[
            ("auth-url", "http://oauth2-proxy.auth.svc.cluster.local/oauth2/auth"),
            ("auth-method", "POST"),
            ("auth-response-headers", "X-Auth-Request-User, X-Auth-Request-Email,"),
            ("auth-signin", "not a url"),
            ("auth-cache-key", "$remote_user$no_such_variable"),
        ]);
        let Some(ExternalAuth::Check(check)) = auth else { panic!("a check: {problems:?}") };
        assert_eq!(check.method.as_deref(), Some("POST"));
        assert_eq!(check.response_headers, ["x-auth-request-user", "x-auth-request-email"]);
        assert_eq!((check.signin, check.cache, problems.len()), (None, None, 2), "{problems:?}");
    }

    #[test]
    fn an_auth_url_is_logged_without_credentials_or_query() {
        for (url, logged) in [
            ("http://auth.test/check", "http://auth.test/check"),
            ("http://auth.test/check?apikey=s3cret#x", "http://auth.test/check?…"),
            ("http://user:s3cret@auth.test:9000/check", "http://***@auth.test:9000/check"),
            ("http://u:s3cret@auth.test?k=s3cret", "http://***@auth.test?…"),
            ("http://auth.test/$host?user=$remote_user", "http://auth.test/$host?…"),
            ("not a url?s3cret", "not a url?…"),
        ] {
            assert_eq!(url_for_log(url), logged, "{url}");
        }
    }

    #[test]
    fn cache_durations_as_proxy_cache_valid_reads_them() {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let rule = |statuses: &[u16], keep| CacheRule { statuses: statuses.to_vec(), keep };
        let cases: &[(&str, Option<Vec<CacheRule>>)] = &[
            ("", Some(vec![rule(&[200, 202, 401], minutes(5))])),
            ("200 202 401 5m", Some(vec![rule(&[200, 202, 401], minutes(5))])),
            ("10m", Some(vec![rule(&[200, 301, 302], minutes(10))])),
            ("200 1h 30m, 401 30s", Some(vec![rule(&[200], minutes(90)), rule(&[401], Duration::from_secs(30))])),
            ("any 1m", Some(vec![rule(&[], minutes(1))])),
            ("200 500ms", Some(vec![rule(&[200], Duration::from_millis(500))])),
            ("200", None),
            ("200 5 minutes", None),
            ("5m 200", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_cache_durations(text), *expected, "{text:?}");
        }
        let cache = AuthCache { key: "$http_authorization".into(), rules: parse_cache_durations("200 1m, any 5s").unwrap_or_default() };
        assert_eq!((cache.keep_for(200), cache.keep_for(403)), (Some(minutes(1)), Some(Duration::from_secs(5))));
    }

    #[test]
    fn variables_expand_as_nginx_does() {
        let headers = [("Authorization", "Bearer t"), ("Cookie", "a=1; _oauth2_proxy=s3cr3t"), ("X-Custom-Id", "7")];
        let vars = Variables { scheme: "https", http_host: "Dash.example.com:8443", request_uri: "/a b?x=1&y=2", remote_addr: "10.0.0.1", headers: &headers };
        let cases = [
            ("$http_authorization", "Bearer t"),
            ("$cookie__oauth2_proxy|$cookie_a|$cookie_none", "s3cr3t|1|"),
            ("$http_x_custom_id$remote_addr", "710.0.0.1"),
            ("https://$host/oauth2/start?rd=$escaped_request_uri", "https://dash.example.com/oauth2/start?rd=%2Fa%20b%3Fx%3D1%26y%3D2"),
            ("$scheme://$http_host$request_uri", "https://Dash.example.com:8443/a b?x=1&y=2"),
            ("$uri|$args|$unknown|$|$$host", "/a b|x=1&y=2|$unknown|$|$dash.example.com"),
        ];
        for (text, expected) in cases {
            assert_eq!(vars.expand(text), expected, "{text:?}");
        }
    }

    #[test]
    fn signin_appends_the_original_url_unless_it_has_the_parameter() {
        let vars = Variables { scheme: "https", http_host: "app.test", request_uri: "/p?q=1", remote_addr: "", headers: &[] };
        let cases = [
            ("https://auth.test/oauth2/start", "https://auth.test/oauth2/start?rd=https://app.test%2Fp%3Fq%3D1"),
            ("https://auth.test/start?x=1", "https://auth.test/start?x=1&rd=https://app.test%2Fp%3Fq%3D1"),
            ("https://$host/oauth2/start?rd=$escaped_request_uri", "https://app.test/oauth2/start?rd=%2Fp%3Fq%3D1"),
        ];
        for (signin, expected) in cases {
            assert_eq!(signin_location(signin, "rd", &vars), expected, "{signin:?}");
        }
    }
}
