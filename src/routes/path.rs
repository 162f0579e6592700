//! Path validation and matching, per the Ingress spec's `pathType` rules.
//!
//! Matching works on raw bytes: nothing is percent-decoded, so `/a%2Fb` is one
//! path element, exactly as the backend will see it.
//!
//! Regex paths (`use-regex`, `rewrite-target`) follow ingress-nginx: nginx
//! writes each path of such a host as `location ~* "^PATH"`, so a pattern is
//! case-insensitive, anchored at the start only, and the locations are tried
//! in ingress-nginx's order (longest path first, then the greater string).

use std::sync::Arc;

use regex::{Regex, RegexBuilder};

use super::{PathType, RouteError};
use crate::kube::objects::SmolStr;
use crate::annotations::REGEX_SIZE_LIMIT;

/// How a compiled path matches. `ImplementationSpecific` compiles to
/// `Prefix`, so the two are one claim for conflict resolution: keeping both
/// would leave one of them silently unreachable. The order (Exact first) is
/// the tie-break between paths of equal length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum MatchKind {
    Exact,
    Prefix,
    /// A host in regex mode: every path of the host is a pattern.
    Regex,
}

/// A compiled path pattern; equal when the patterns are (the regex crate's
/// `Regex` has no equality of its own).
#[derive(Debug, Clone)]
pub(crate) struct PathRegex(pub(crate) Arc<Regex>);

impl PartialEq for PathRegex {
    fn eq(&self, other: &PathRegex) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PathRegex {}

/// A validated path as it is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathMatcher {
    /// For `Prefix`, trailing slashes are removed (so `/` becomes ""), which
    /// turns element-wise matching into one `starts_with` plus a boundary check.
    /// For `Regex`, the path as written. Inline up to 23 bytes, so a match
    /// reads it without following a pointer; and never the dangling pointer
    /// of an empty `String`, which `memcmp`'s masked load turned into a
    /// microcode assist (about 40 % of a lookup's time when matching `/`).
    pub(crate) pattern: SmolStr,
    pub(crate) kind: MatchKind,
    /// Set for `Regex` only.
    pub(crate) regex: Option<PathRegex>,
}

impl PathMatcher {
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchKind::Exact => path == self.pattern.as_str(),
            MatchKind::Prefix => prefix_matches(&self.pattern, path),
            MatchKind::Regex => self.regex.as_ref().is_some_and(|r| r.0.is_match(path)),
        }
    }

    /// The sort order of a host's paths, in which the first match wins. Plain
    /// paths: the longest first, and at equal length `Exact` before `Prefix`.
    /// Regex paths: ingress-nginx's location order (nginx tries regex
    /// locations in order), the longest path first and, at equal length, the
    /// greater string first.
    pub(crate) fn match_order(&self, other: &PathMatcher) -> std::cmp::Ordering {
        if self.kind == MatchKind::Regex && other.kind == MatchKind::Regex {
            return other.pattern.len().cmp(&self.pattern.len()).then_with(|| other.pattern.cmp(&self.pattern));
        }
        let precedence = |m: &PathMatcher| (std::cmp::Reverse(m.pattern.len()), m.kind);
        precedence(self).cmp(&precedence(other)).then_with(|| self.pattern.cmp(&other.pattern))
    }
}

/// Compiles a regex path as nginx's `location ~* "^PATH"`. The pattern must
/// be a regular expression on its own (balanced), so wrapping it in a group
/// cannot change its meaning: `/a)|(.*` is refused rather than unanchored.
pub fn compile_path_regex(path: &str) -> Result<Regex, String> {
    let build = |pattern: &str| RegexBuilder::new(pattern).case_insensitive(true).size_limit(REGEX_SIZE_LIMIT).build();
    build(path).map_err(|e| e.to_string())?;
    build(&format!("^(?:{path})")).map_err(|e| e.to_string())
}

/// Element-wise prefix match; `pattern` carries no trailing slash.
pub(crate) fn prefix_matches(pattern: &str, path: &str) -> bool {
    match path.as_bytes().get(pattern.len()) {
        _ if !path.starts_with(pattern) => false,
        None | Some(b'/') => true,
        Some(_) => false,
    }
}

/// The part of a request target that is matched: everything before `?`.
/// Callers pass the path alone, but a query that slips through must not make
/// an `Exact` route miss or let `?` act as a path element.
pub(crate) fn strip_query(path: &str) -> &str {
    match path.find('?') {
        Some(end) => &path[..end],
        None => path,
    }
}

/// Parses the `pathType` field; v1 requires it, so a missing one is invalid.
pub(crate) fn parse_path_type(path_type: Option<&str>) -> Result<PathType, RouteError> {
    match path_type {
        Some("Exact") => Ok(PathType::Exact),
        Some("Prefix") => Ok(PathType::Prefix),
        Some("ImplementationSpecific") => Ok(PathType::ImplementationSpecific),
        Some(other) => Err(RouteError::UnknownPathType(other.to_string())),
        None => Err(RouteError::MissingPathType),
    }
}

/// Sequences the API server refuses in `Exact` and `Prefix` paths; accepting
/// them here would route differently from what the backend receives after
/// its own normalisation.
const INVALID_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
const INVALID_SUFFIXES: [&str; 2] = ["/..", "/."];

/// Validates one Ingress path and compiles it. A missing path is allowed for
/// `ImplementationSpecific` only, where it means `/`, as the API server does.
pub(crate) fn compile_path(path: Option<&str>, path_type: PathType) -> Result<PathMatcher, RouteError> {
    let invalid = |reason: &'static str| RouteError::InvalidPath { path: path.unwrap_or("").to_string(), reason };
    let path = match (path, path_type) {
        (None | Some(""), PathType::ImplementationSpecific) => "/",
        (None | Some(""), _) => return Err(invalid("a path is required for Exact and Prefix")),
        (Some(p), _) => p,
    };
    if !path.starts_with('/') {
        return Err(invalid("it does not start with /"));
    }
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#') {
        return Err(invalid("it contains a space, a control character, ? or #"));
    }
    if path_type != PathType::ImplementationSpecific
        && (INVALID_SEQUENCES.iter().any(|s| path.contains(s)) || INVALID_SUFFIXES.iter().any(|s| path.ends_with(s)))
    {
        return Err(invalid("it contains //, /./, /../ or an encoded slash"));
    }
    Ok(match path_type {
        PathType::Exact => PathMatcher { pattern: SmolStr::new(path), kind: MatchKind::Exact, regex: None },
        PathType::Prefix | PathType::ImplementationSpecific => {
            PathMatcher { pattern: SmolStr::new(path.trim_end_matches('/')), kind: MatchKind::Prefix, regex: None }
        }
    })
}

/// Validates one Ingress path of a host in regex mode and compiles it as a
/// pattern, whatever its `pathType` (ingress-nginx writes every location of
/// such a host as a regex). `?` and `#` are pattern syntax here, but what
/// the plain rules refuse for `Exact` and `Prefix` stays refused.
pub(crate) fn compile_regex_path(path: Option<&str>, path_type: PathType) -> Result<PathMatcher, RouteError> {
    let written = match (path, path_type) {
        (None | Some(""), PathType::ImplementationSpecific) => "/",
        (Some(p), _) => p,
        (None, _) => "",
    };
    let invalid = |reason: &'static str| RouteError::InvalidPath { path: written.to_string(), reason };
    if written.is_empty() {
        return Err(invalid("a path is required for Exact and Prefix"));
    }
    if !written.starts_with('/') {
        return Err(invalid("it does not start with /"));
    }
    if written.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(invalid("it contains a space or a control character"));
    }
    if path_type != PathType::ImplementationSpecific
        && (INVALID_SEQUENCES.iter().any(|s| written.contains(s)) || INVALID_SUFFIXES.iter().any(|s| written.ends_with(s)))
    {
        return Err(invalid("it contains //, /./, /../ or an encoded slash"));
    }
    let regex = compile_path_regex(written).map_err(|error| RouteError::InvalidRegex { path: written.to_string(), error })?;
    Ok(PathMatcher { pattern: SmolStr::new(written), kind: MatchKind::Regex, regex: Some(PathRegex(Arc::new(regex))) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> PathMatcher {
        compile_path(Some(p), PathType::Prefix).expect("valid prefix")
    }

    #[test]
    fn prefix_is_element_wise() {
        let cases: &[(&str, &str, bool)] = &[
            ("/", "/", true),
            ("/", "/anything/at/all", true),
            ("/", "", true),
            ("/foo", "/foo", true),
            ("/foo", "/foo/", true),
            ("/foo", "/foo/bar", true),
            ("/foo", "/foobar", false),
            ("/foo", "/fo", false),
            ("/foo/", "/foo", true),
            ("/foo/", "/foo/bar", true),
            ("/foo/", "/foobar", false),
            ("/foo/bar", "/foo", false),
            ("/foo", "/FOO", false),
            ("/caf%C3%A9", "/café", false),
            ("/caf%C3%A9", "/caf%C3%A9/menu", true),
        ];
        for (pattern, path, expected) in cases {
            assert_eq!(prefix(pattern).matches(path), *expected, "Prefix {pattern} vs {path}");
        }
    }

    #[test]
    fn exact_is_the_whole_path_case_sensitive() {
        let exact = compile_path(Some("/foo"), PathType::Exact).expect("valid");
        assert!(exact.matches("/foo"));
        assert!(!exact.matches("/foo/"));
        assert!(!exact.matches("/Foo"));
        assert!(!exact.matches("/foo/bar"));
    }

    #[test]
    fn invalid_paths_are_refused() {
        for (path, path_type) in [
            (Some("foo"), PathType::Prefix),
            (Some(""), PathType::Exact),
            (None, PathType::Prefix),
            (Some("/a b"), PathType::Prefix),
            (Some("/a?b"), PathType::Exact),
            (Some("/a//b"), PathType::Prefix),
            (Some("/a/../b"), PathType::Exact),
            (Some("/a/.."), PathType::Prefix),
            (Some("/a%2fb"), PathType::Prefix),
            (Some("relative"), PathType::ImplementationSpecific),
        ] {
            assert!(compile_path(path, path_type).is_err(), "{path:?} {path_type:?} should be invalid");
        }
        let defaulted = compile_path(None, PathType::ImplementationSpecific).expect("defaults to /");
        assert!(defaulted.matches("/x"));
    }

    fn regex(p: &str) -> PathMatcher {
        compile_regex_path(Some(p), PathType::ImplementationSpecific).expect("valid regex path")
    }

    /// ingress-nginx's documented examples: case-insensitive, anchored at the
    /// start only, so a regex `/foo` also matches `/foobar`.
    #[test]
    fn regex_paths_are_case_insensitive_and_anchored_at_the_start_only() {
        let cases: &[(&str, &str, bool)] = &[
            ("/foo/.+", "/foo/bar", true),
            ("/foo/.+", "/FOO/bar", true),
            ("/foo/.+", "/foo/", false),
            ("/foo", "/foobar", true),
            ("/foo", "/x/foo", false),
            ("/foo/bar/[A-Z0-9]{3}", "/foo/bar/bar", true),
            ("/something(/|$)(.*)", "/something", true),
            ("/something(/|$)(.*)", "/something/new", true),
            ("/something(/|$)(.*)", "/somethingelse", false),
            ("/api/?", "/api", true),
            ("/a|/b", "/x/b", false),
            ("/", "/anything", true),
        ];
        for (pattern, path, expected) in cases {
            assert_eq!(regex(pattern).matches(path), *expected, "regex {pattern} vs {path}");
        }
    }

    #[test]
    fn bad_regex_paths_are_refused_with_the_reason() {
        for bad in ["/[", "/a)|(.*", "/(?<x>a", "/a(?=b)", "/a\\1", "/a b", "x(.*)"] {
            assert!(compile_regex_path(Some(bad), PathType::ImplementationSpecific).is_err(), "{bad:?} should be refused");
        }
        match compile_regex_path(Some("/(unclosed"), PathType::ImplementationSpecific) {
            Err(RouteError::InvalidRegex { path, error }) => assert!(path == "/(unclosed" && !error.is_empty()),
            other => panic!("expected InvalidRegex, got {other:?}"),
        }
        let huge = format!("/{}", "(a{100}){100}".repeat(3));
        assert!(compile_regex_path(Some(&huge), PathType::ImplementationSpecific).is_err(), "the size limit holds");
        assert!(compile_regex_path(Some("/a//b"), PathType::Prefix).is_err());
        assert_eq!(compile_regex_path(None, PathType::ImplementationSpecific).map(|m| m.pattern).ok().as_deref(), Some("/"));
    }

    /// ingress-nginx's documented order: `/foo/bar/[A-Z0-9]{3}` (longest)
    /// before `/foo/bar/bar` before `/foo/bar/.+`; equal lengths by the
    /// greater string first.
    #[test]
    fn regex_paths_sort_longest_first_then_greater_string() {
        let mut paths: Vec<PathMatcher> = ["/foo/bar/.+", "/foo/bar/bar", "/foo/bar/[A-Z0-9]{3}", "/a/x", "/a/y", "/"].iter().map(|p| regex(p)).collect();
        paths.sort_by(PathMatcher::match_order);
        let order: Vec<&str> = paths.iter().map(|m| m.pattern.as_str()).collect();
        assert_eq!(order, ["/foo/bar/[A-Z0-9]{3}", "/foo/bar/bar", "/foo/bar/.+", "/a/y", "/a/x", "/"]);
        let first = paths.iter().find(|m| m.matches("/foo/bar/bar")).map(|m| m.pattern.as_str());
        assert_eq!(first, Some("/foo/bar/[A-Z0-9]{3}"), "the documented surprise: the longer pattern wins");
    }

    #[test]
    fn path_types_parse_strictly() {
        assert_eq!(parse_path_type(Some("Exact")).ok(), Some(PathType::Exact));
        assert!(matches!(parse_path_type(None), Err(RouteError::MissingPathType)));
        assert!(matches!(parse_path_type(Some("exact")), Err(RouteError::UnknownPathType(_))));
    }

    #[test]
    fn query_is_not_part_of_the_path() {
        assert_eq!(strip_query("/a?b=c?d"), "/a");
        assert_eq!(strip_query("/a"), "/a");
        assert_eq!(strip_query("?"), "");
    }
}
