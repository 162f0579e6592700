//! `canary` and its `canary-by-*` and `canary-weight*` settings: when a
//! request to a host+path goes to the canary Ingress's backend instead of
//! the main one, decided as ingress-nginx's balancer does it
//! (`route_to_alternative_balancer`): the header first, then the cookie,
//! then the weight.

use std::cell::Cell;
use std::hash::BuildHasher;

use regex::{Regex, RegexBuilder};

use super::cors::parse_bool;
use super::value;
use crate::kube::objects::StringMap;

/// How one canary Ingress takes traffic from the main one.
#[derive(Debug, Clone)]
pub struct CanaryRule {
    header: Option<HeaderRule>,
    /// `canary-by-cookie`: the cookie's name.
    cookie: Option<String>,
    /// `canary-weight`, out of `total`.
    weight: u32,
    /// `canary-weight-total`; ingress-nginx uses it only above 100.
    total: u32,
}

#[derive(Debug, Clone)]
struct HeaderRule {
    /// `canary-by-header`, compared as nginx's `$http_NAME`: any case, `-` and `_` alike.
    name: String,
    matcher: HeaderMatch,
}

#[derive(Debug, Clone)]
enum HeaderMatch {
    /// No value or pattern: `always` takes the canary, `never` the main backend.
    AlwaysNever,
    /// `canary-by-header-value`: this exact value takes the canary.
    Value(String),
    /// `canary-by-header-pattern`: a value it matches (anywhere, case-sensitive,
    /// as `ngx.re.match`) takes the canary.
    Pattern(Regex),
}

/// Whether an Ingress is a canary: its rules then shadow other Ingresses'
/// paths instead of claiming them, and its `defaultBackend` claims nothing.
pub fn is_canary(annotations: &StringMap) -> bool {
    value(annotations, "canary").and_then(parse_bool) == Some(true)
}

impl CanaryRule {
    /// The canary rule `annotations` set (`None` unless `canary` is true),
    /// and a description of every value that had to be left out. As in
    /// ingress-nginx, a bad number counts as 0 (weight) or 100 (total), and
    /// `canary-by-*` settings without `canary: "true"` do nothing.
    pub fn from_annotations(annotations: &StringMap) -> (Option<CanaryRule>, Vec<String>) {
        let mut problems = Vec::new();
        let enabled = match value(annotations, "canary") {
            None => false,
            Some(text) => parse_bool(text).unwrap_or_else(|| {
                problems.push(format!("canary {text:?} is not a boolean; the Ingress is not a canary"));
                false
            }),
        };
        let text = |name| value(annotations, name).filter(|v| !v.is_empty());
        if !enabled {
            let configured = ["canary-by-header", "canary-by-header-value", "canary-by-header-pattern", "canary-by-cookie", "canary-weight"];
            if let Some(name) = configured.into_iter().find(|name| text(name).is_some()) {
                problems.push(format!("{name} ignored: the Ingress is not marked canary: \"true\""));
            }
            return (None, problems);
        }
        let mut number = |name, default: u32| match text(name).map(|t| t.trim().parse::<u32>()) {
            None => default,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                problems.push(format!("{name} {:?} is not a whole number; {default} applies", text(name).unwrap_or_default()));
                default
            }
        };
        let weight = number("canary-weight", 0);
        let total = number("canary-weight-total", 100).max(100);
        let header = text("canary-by-header").map(|name| {
            let matcher = if let Some(wanted) = text("canary-by-header-value") {
                HeaderMatch::Value(wanted.to_string())
            } else if let Some(pattern) = text("canary-by-header-pattern") {
                match RegexBuilder::new(pattern).size_limit(super::REGEX_SIZE_LIMIT).build() {
                    Ok(regex) => HeaderMatch::Pattern(regex),
                    Err(error) => {
                        problems.push(format!("canary-by-header-pattern {pattern:?} ignored: {error}; only always and never apply"));
                        HeaderMatch::AlwaysNever
                    }
                }
            } else {
                HeaderMatch::AlwaysNever
            };
            HeaderRule { name: name.to_string(), matcher }
        });
        let cookie = text("canary-by-cookie").map(str::to_string);
        (Some(CanaryRule { header, cookie, weight, total }), problems)
    }

    /// Whether a request goes to the canary. `headers` gives the request's
    /// headers (called at most twice); `roll(total)` draws uniformly from
    /// 1..=total and is called only when neither header nor cookie decided.
    pub fn wants_canary<'h, I>(&self, headers: impl Fn() -> I, roll: impl FnOnce(u32) -> u32) -> bool
    where
        I: Iterator<Item = (&'h str, &'h str)>,
    {
        if let Some(rule) = &self.header {
            if let Some((_, found)) = headers().find(|(name, _)| same_variable_name(name, &rule.name)) {
                match &rule.matcher {
                    HeaderMatch::Value(wanted) if found == wanted => return true,
                    HeaderMatch::Pattern(pattern) if pattern.is_match(found) => return true,
                    HeaderMatch::AlwaysNever if found == "always" => return true,
                    HeaderMatch::AlwaysNever if found == "never" => return false,
                    _ => {}
                }
            }
        }
        if let Some(name) = &self.cookie {
            let cookies = headers().filter(|(header, _)| header.eq_ignore_ascii_case("cookie")).map(|(_, v)| v);
            match cookie_value(cookies, name) {
                Some("always") => return true,
                Some("never") => return false,
                _ => {}
            }
        }
        self.weight > 0 && roll(self.total) <= self.weight
    }
}

/// A uniform draw from 1..=total (`math.random(total)`): a per-thread
/// xorshift generator seeded once per thread from std's random hasher keys,
/// so the weighted choice neither allocates nor locks.
pub fn roll(total: u32) -> u32 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(std::collections::hash_map::RandomState::new().hash_one(std::thread::current().id()) | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (((x >> 32) * u64::from(total)) >> 32) as u32 + 1
    })
}

/// nginx's header variables: `$http_x_canary` reads `X-Canary`, `x_canary`…
fn same_variable_name(header: &str, wanted: &str) -> bool {
    let fold = |b: u8| if b == b'-' { b'_' } else { b.to_ascii_lowercase() };
    header.len() == wanted.len() && header.bytes().zip(wanted.bytes()).all(|(a, b)| fold(a) == fold(b))
}

/// The first value of the cookie `name` (nginx's `$cookie_NAME`: the name
/// in any case) in the request's Cookie headers.
fn cookie_value<'h>(headers: impl Iterator<Item = &'h str>, name: &str) -> Option<&'h str> {
    for header in headers {
        for pair in header.split(';') {
            if let Some((key, value)) = pair.split_once('=') {
                if key.trim().eq_ignore_ascii_case(name) {
                    return Some(value.trim());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pairs: &[(&str, &str)]) -> (Option<CanaryRule>, Vec<String>) {
        let map: StringMap = crate::annotations::nginx_annotations(pairs);
        CanaryRule::from_annotations(&map)
    }

    fn decide(rule: &CanaryRule, headers: &[(&str, &str)], roll: u32) -> bool {
        rule.wants_canary(|| headers.iter().copied(), |total| roll.min(total))
    }

    /// ingress-nginx's canary documentation and e2e cases: header, then
    /// cookie, then weight.
    #[test]
    fn header_then_cookie_then_weight() {
        let (by_header, problems) = rule(&[("canary", "true"), ("canary-by-header", "X-Canary"), ("canary-by-cookie", "canary_c"), ("canary-weight", "50")]);
        let by_header = by_header.expect("a canary");
        assert!(problems.is_empty());
        let cases: &[(&crate::annotations::Pairs, u32, bool)] = &[
            (&[("x-canary", "always")], 100, true),
            (&[("X_CANARY", "always")], 100, true),
            (&[("X-Canary", "never"), ("Cookie", "canary_c=always")], 1, false),
            (&[("X-Canary", "other"), ("Cookie", "canary_c=always")], 100, true),
            (&[("Cookie", "a=b; canary_c=never")], 1, false),
            (&[("Cookie", "a=b"), ("Cookie", "CANARY_C=always")], 100, true),
            (&[("Cookie", "canary_c=maybe")], 50, true),
            (&[("Cookie", "canary_c=maybe")], 51, false),
            (&[], 1, true),
            (&[], 100, false),
        ];
        for (headers, roll, expected) in cases {
            assert_eq!(decide(&by_header, headers, *roll), *expected, "{headers:?} roll {roll}");
        }
    }

    #[test]
    fn header_value_and_pattern_fall_through_when_they_do_not_match() {
        let (valued, _) = rule(&[("canary", "true"), ("canary-by-header", "X-Region"), ("canary-by-header-value", "eu"), ("canary-by-header-pattern", "^u")]);
        let valued = valued.expect("a canary");
        assert!(decide(&valued, &[("X-Region", "eu")], 100));
        assert!(!decide(&valued, &[("X-Region", "us")], 100), "the value wins over the pattern");
        assert!(!decide(&valued, &[("X-Region", "always")], 100), "with a value, always is just another value");
        let (patterned, _) = rule(&[("canary", "true"), ("canary-by-header", "X-Region"), ("canary-by-header-pattern", "east|west"), ("canary-weight", "100")]);
        let patterned = patterned.expect("a canary");
        assert!(decide(&patterned, &[("X-Region", "us-east-1")], 100));
        assert!(decide(&patterned, &[("X-Region", "never")], 100), "not matching falls through to the weight");
        let (bad, problems) = rule(&[("canary", "true"), ("canary-by-header", "X-Region"), ("canary-by-header-pattern", "(")]);
        assert_eq!(problems.len(), 1);
        assert!(decide(&bad.expect("still a canary"), &[("X-Region", "always")], 100));
    }

    #[test]
    fn weights_and_totals() {
        let cases: &[(&crate::annotations::Pairs, u32, bool, usize)] = &[
            // (annotations, roll, canary, problems)
            (&[("canary", "true")], 1, false, 0),
            (&[("canary", "true"), ("canary-weight", "0")], 1, false, 0),
            (&[("canary", "true"), ("canary-weight", "100")], 100, true, 0),
            (&[("canary", "true"), ("canary-weight", "10"), ("canary-weight-total", "1000")], 10, true, 0),
            (&[("canary", "true"), ("canary-weight", "10"), ("canary-weight-total", "1000")], 11, false, 0),
            (&[("canary", "true"), ("canary-weight", "10"), ("canary-weight-total", "20")], 11, false, 0),
            (&[("canary", "true"), ("canary-weight", "ten")], 1, false, 1),
            (&[("canary", "true"), ("canary-weight", "-5")], 1, false, 1),
        ];
        for (pairs, roll, expected, problems) in cases {
            let (found, reported) = rule(pairs);
            assert_eq!(decide(&found.expect("a canary"), &[], *roll), *expected, "{pairs:?} roll {roll}");
            assert_eq!(reported.len(), *problems, "{pairs:?}");
        }
    }

    #[test]
    fn rolls_stay_in_range_and_spread() {
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let drawn = roll(10);
            assert!((1..=10).contains(&drawn), "{drawn}");
            seen[drawn as usize - 1] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        assert_eq!(roll(1), 1);
    }

    #[test]
    fn settings_without_canary_true_do_nothing() {
        assert!(rule(&[]).0.is_none());
        let (found, problems) = rule(&[("canary-weight", "50")]);
        assert!(found.is_none());
        assert_eq!(problems.len(), 1);
        let (found, problems) = rule(&[("canary", "false"), ("canary-by-header", "X")]);
        assert!(found.is_none() && problems.len() == 1);
        let (found, problems) = rule(&[("canary", "maybe")]);
        assert!(found.is_none() && problems.len() == 1);
    }
}
