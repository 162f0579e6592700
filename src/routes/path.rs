//! Path validation and matching, per the Ingress spec's `pathType` rules.
//!
//! Matching works on raw bytes: nothing is percent-decoded, so `/a%2Fb` is one
//! path element, exactly as the backend will see it.

use super::{PathType, RouteError};

/// How a compiled path matches. `ImplementationSpecific` compiles to
/// `Prefix`, so the two are one claim for conflict resolution: keeping both
/// would leave one of them silently unreachable. The order (Exact first) is
/// the tie-break between paths of equal length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum MatchKind {
    Exact,
    Prefix,
}

/// A validated path as it is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathMatcher {
    /// For `Prefix`, trailing slashes are removed (so `/` becomes ""), which
    /// turns element-wise matching into one `starts_with` plus a boundary check.
    pub(crate) pattern: String,
    pub(crate) kind: MatchKind,
}

impl PathMatcher {
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchKind::Exact => path == self.pattern,
            MatchKind::Prefix => prefix_matches(&self.pattern, path),
        }
    }

    /// The sort order of a host's paths: the first match in this order is the
    /// longest path, and at equal length `Exact` comes before `Prefix`.
    pub(crate) fn precedence(&self) -> (std::cmp::Reverse<usize>, MatchKind) {
        (std::cmp::Reverse(self.pattern.len()), self.kind)
    }
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
        PathType::Exact => PathMatcher { pattern: path.to_string(), kind: MatchKind::Exact },
        PathType::Prefix | PathType::ImplementationSpecific => {
            PathMatcher { pattern: path.trim_end_matches('/').to_string(), kind: MatchKind::Prefix }
        }
    })
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
