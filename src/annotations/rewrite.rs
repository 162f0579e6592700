//! `use-regex` and `rewrite-target`: how an Ingress's paths match, and the
//! path its requests reach the backend with.
//!
//! ingress-nginx writes `rewrite "(?i)PATH" TARGET break;` into the location:
//! nginx replaces the whole path with TARGET, in which `$1`…`$9` are the
//! path pattern's capture groups, and keeps the query string (after TARGET's
//! own arguments when TARGET has a `?`). A host with one such Ingress has
//! every path in regex mode (see `routes::path`).

use regex::Captures;

use super::cors::parse_bool;
use super::value;
use crate::kube::objects::StringMap;

/// What an Ingress's annotations say about its paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathOptions {
    /// `use-regex: "true"`.
    pub use_regex: bool,
    pub rewrite_target: Option<RewriteTarget>,
}

impl PathOptions {
    /// The path options `annotations` ask for, and a description of every
    /// value that had to be left out.
    pub fn from_annotations(annotations: &StringMap) -> (PathOptions, Vec<String>) {
        let mut problems = Vec::new();
        let mut options = PathOptions::default();
        if let Some(text) = value(annotations, "use-regex") {
            match parse_bool(text) {
                Some(on) => options.use_regex = on,
                None => problems.push(format!("use-regex {text:?} is not a boolean; paths match as plain paths")),
            }
        }
        if let Some(text) = value(annotations, "rewrite-target") {
            match RewriteTarget::parse(text) {
                Ok(target) => options.rewrite_target = Some(target),
                Err(why) => problems.push(format!("rewrite-target {text:?} ignored: {why}")),
            }
        }
        (options, problems)
    }

    /// Whether a path written as `path` puts its host in regex mode:
    /// `use-regex`, or a rewrite to anything but the path itself
    /// (ingress-nginx's `needsRewrite`).
    pub fn regex_for(&self, path: &str) -> bool {
        self.use_regex || self.rewrite_for(path).is_some()
    }

    /// The rewrite a path written as `path` gets: none when the target is
    /// the path itself, as in ingress-nginx's template.
    pub fn rewrite_for(&self, path: &str) -> Option<&RewriteTarget> {
        self.rewrite_target.as_ref().filter(|target| target.0 != path)
    }
}

/// A validated `rewrite-target` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteTarget(String);

impl RewriteTarget {
    /// A target is a path (possibly with a query) made of `$1`…`$9` and
    /// text; it must be safe to send in a request line. nginx turns a target
    /// starting with `http://` or `https://` into a redirect, which ingressd
    /// does not do: such a target is refused (`permanent-redirect` says it).
    pub fn parse(text: &str) -> Result<RewriteTarget, &'static str> {
        if text.is_empty() {
            return Err("it is empty");
        }
        if text.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'#') {
            return Err("it contains a space, a control character or #");
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("$scheme") {
            return Err("a target that is a URL makes nginx redirect; use permanent-redirect or temporal-redirect");
        }
        if !text.starts_with('/') && !text.starts_with('$') {
            return Err("it must start with / or a capture group such as $1");
        }
        Ok(RewriteTarget(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path and query the backend receives for a request whose path
    /// matched with `captures` and whose query is `query` (without `?`).
    /// A missing group expands to nothing; `$` not followed by a digit 1-9
    /// stays as written. The query is kept: after the target's own
    /// arguments when it has some, unless it ends with `?` (nginx's rule).
    pub fn expand(&self, captures: &Captures<'_>, query: Option<&str>) -> String {
        self.expand_with(|group| captures.get(group).map_or("", |m| m.as_str()), query)
    }

    /// [`Self::expand`] with the capture groups given by a function (the
    /// fuzz target and the tables use it without a regex).
    pub fn expand_with<'c>(&self, group: impl Fn(usize) -> &'c str, query: Option<&str>) -> String {
        let template = self.0.as_bytes();
        let mut out = String::with_capacity(self.0.len() + 32);
        let mut literal_from = 0;
        let mut i = 0;
        while i < template.len() {
            match (template[i], template.get(i + 1)) {
                (b'$', Some(digit @ b'1'..=b'9')) => {
                    out.push_str(&self.0[literal_from..i]);
                    out.push_str(group(usize::from(digit - b'0')));
                    i += 2;
                    literal_from = i;
                }
                _ => i += 1,
            }
        }
        out.push_str(&self.0[literal_from..]);
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        let query = query.filter(|q| !q.is_empty());
        match (out.find('?'), query) {
            (Some(at), _) if at + 1 == out.len() => {
                out.pop();
            }
            (Some(_), Some(query)) => {
                out.push('&');
                out.push_str(query);
            }
            (None, Some(query)) => {
                out.push('?');
                out.push_str(query);
            }
            (_, None) => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::compile_path_regex;

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        crate::annotations::nginx_annotations(pairs)
    }

    /// Rewrites the way ingress-nginx's rewrite documentation and e2e tests show them.
    #[test]
    fn documented_rewrites() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // (path pattern, target, request path and query, sent upstream)
            ("/something(/|$)(.*)", "/$2", "/something", "/"),
            ("/something(/|$)(.*)", "/$2", "/something/", "/"),
            ("/something(/|$)(.*)", "/$2", "/something/new", "/new"),
            ("/something(/|$)(.*)", "/$2", "/SOMETHING/new?a=1", "/new?a=1"),
            ("/api(/|$)(.*)", "/v2/$2?from=api", "/api/users?id=7", "/v2/users?from=api&id=7"),
            ("/api(/|$)(.*)", "/v2/$2?", "/api/users?id=7", "/v2/users"),
            ("/something", "/", "/something/deep/path?q", "/?q"),
            ("/foo/(.*)/(.*)", "/$2/$1", "/foo/a/b", "/b/a"),
            ("/foo(.*)", "/x$9y$1", "/foo123", "/xy123"),
            ("/foo(.*)", "$1", "/foo/bar", "/bar"),
            ("/foo(.*)", "$1", "/foo", "/"),
            ("/cost", "/$price/$0", "/cost", "/$price/$0"),
        ];
        for (pattern, target, request, expected) in cases {
            let regex = compile_path_regex(pattern).expect("valid pattern");
            let (path, query) = match request.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (*request, None),
            };
            let captures = regex.captures(path).expect("the path matches");
            let target = RewriteTarget::parse(target).expect("valid target");
            assert_eq!(target.expand(&captures, query), *expected, "{pattern} -> {target:?} for {request}");
        }
    }

    #[test]
    fn targets_are_validated() {
        for good in ["/", "/$1", "$2", "/a/b?c=d", "/$1?"] {
            assert!(RewriteTarget::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "http://x.test/$1", "HTTPS://x", "$scheme://x", "relative", "/a b", "/a\r\nX: y", "/a#frag"] {
            assert!(RewriteTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn regex_mode_comes_from_use_regex_or_a_rewrite_that_changes_the_path() {
        let cases: &[(&crate::annotations::Pairs, &str, bool, bool, usize)] = &[
            // (annotations, path, regex mode, rewrites, problems)
            (&[], "/a", false, false, 0),
            (&[("use-regex", "true")], "/a", true, false, 0),
            (&[("use-regex", "false")], "/a", false, false, 0),
            (&[("use-regex", "yes")], "/a", false, false, 1),
            (&[("rewrite-target", "/")], "/a", true, true, 0),
            (&[("rewrite-target", "/a")], "/a", false, false, 0),
            (&[("rewrite-target", "/a"), ("use-regex", "true")], "/a", true, false, 0),
            (&[("rewrite-target", "https://elsewhere.test/")], "/a", false, false, 1),
        ];
        for (pairs, path, regex, rewrites, problems) in cases {
            let (options, found) = PathOptions::from_annotations(&map(pairs));
            assert_eq!(options.regex_for(path), *regex, "{pairs:?}");
            assert_eq!(options.rewrite_for(path).is_some(), *rewrites, "{pairs:?}");
            assert_eq!(found.len(), *problems, "{pairs:?}: {found:?}");
        }
    }
}
