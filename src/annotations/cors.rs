//! `enable-cors` and its `cors-*` settings, with ingress-nginx's defaults and
//! validation: what a response carries, and when ingressd answers an
//! OPTIONS request itself.
//!
//! As in ingress-nginx's template, CORS applies to a request when the allowed
//! origin is `*` or the request's Origin matches one of the listed origins;
//! an OPTIONS request it applies to is answered 204 without reaching the
//! backend, and other responses get the headers set (replacing the backend's).

use crate::kube::objects::StringMap;
use std::sync::OnceLock;

use regex::Regex;

use super::value;

const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
const DEFAULT_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
const DEFAULT_MAX_AGE: u64 = 1_728_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// `None` allows any origin (`*`); otherwise an Origin must match one of these.
    origins: Option<Vec<String>>,
    credentials: bool,
    methods: String,
    headers: String,
    expose: Option<String>,
    max_age: u64,
}

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("a valid built-in pattern"))
}

/// Go's `strconv.ParseBool`, which ingress-nginx reads booleans with.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl Cors {
    /// The CORS settings `annotations` ask for (`None` unless `enable-cors`
    /// is true); invalid values fall back to ingress-nginx's defaults and are
    /// reported in `problems`.
    pub fn from_annotations(annotations: &StringMap, problems: &mut Vec<String>) -> Option<Cors> {
        static ORIGIN: OnceLock<Regex> = OnceLock::new();
        static METHODS: OnceLock<Regex> = OnceLock::new();
        static HEADERS: OnceLock<Regex> = OnceLock::new();
        static EXPOSE: OnceLock<Regex> = OnceLock::new();
        match value(annotations, "enable-cors").map(|v| (v, parse_bool(v))) {
            Some((_, Some(true))) => {}
            Some((text, None)) => {
                problems.push(format!("enable-cors {text:?} is not a boolean; CORS stays off"));
                return None;
            }
            _ => return None,
        }
        let origins = match value(annotations, "cors-allow-origin") {
            None => None,
            Some(list) => {
                let mut allowed = Vec::new();
                let mut any = false;
                for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                    if origin == "*" {
                        any = true;
                        break;
                    }
                    if regex(&ORIGIN, r"^([a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|null)$").is_match(origin) {
                        allowed.push(origin.to_ascii_lowercase());
                    } else {
                        problems.push(format!("cors-allow-origin: {origin:?} is not an origin; skipped"));
                    }
                }
                (!any).then_some(allowed)
            }
        };
        let checked = |name: &str, cell: &'static OnceLock<Regex>, pattern: &str, problems: &mut Vec<String>| -> Option<String> {
            let text = value(annotations, name)?;
            if regex(cell, pattern).is_match(text) {
                Some(text.to_string())
            } else {
                problems.push(format!("{name} {text:?} is not valid; ingress-nginx's default is used"));
                None
            }
        };
        let methods = checked("cors-allow-methods", &METHODS, r"^([A-Za-z]+,?\s?)+$", problems).unwrap_or_else(|| DEFAULT_METHODS.into());
        let headers = checked("cors-allow-headers", &HEADERS, r"^[A-Za-z0-9\-_, ]*$", problems).unwrap_or_else(|| DEFAULT_HEADERS.into());
        let expose = checked("cors-expose-headers", &EXPOSE, r"^(([A-Za-z0-9\-_]+|\*),?\s?)+$", problems);
        let credentials = match value(annotations, "cors-allow-credentials") {
            None => true,
            Some(text) => parse_bool(text).unwrap_or_else(|| {
                problems.push(format!("cors-allow-credentials {text:?} is not a boolean; true is used"));
                true
            }),
        };
        let max_age = match value(annotations, "cors-max-age") {
            None => DEFAULT_MAX_AGE,
            Some(text) => text.trim().parse().unwrap_or_else(|_| {
                problems.push(format!("cors-max-age {text:?} is not a number of seconds; {DEFAULT_MAX_AGE} is used"));
                DEFAULT_MAX_AGE
            }),
        };
        Some(Cors { origins, credentials, methods, headers, expose, max_age })
    }

    /// The headers a response to a request from `origin` carries, or `None`
    /// when CORS does not apply to it (an origin not on the list, or none).
    pub fn response_headers(&self, origin: Option<&str>) -> Option<Vec<(&'static str, String)>> {
        let allow_origin = match &self.origins {
            None => "*".to_string(),
            Some(allowed) => {
                let origin = origin?;
                allowed.iter().any(|pattern| origin_matches(pattern, origin)).then(|| origin.to_string())?
            }
        };
        let mut headers = vec![("access-control-allow-origin", allow_origin)];
        if self.credentials {
            headers.push(("access-control-allow-credentials", "true".into()));
        }
        headers.push(("access-control-allow-methods", self.methods.clone()));
        headers.push(("access-control-allow-headers", self.headers.clone()));
        if let Some(expose) = &self.expose {
            headers.push(("access-control-expose-headers", expose.clone()));
        }
        headers.push(("access-control-max-age", self.max_age.to_string()));
        Some(headers)
    }
}

/// ingress-nginx's origin match: the whole Origin, case-insensitively; a
/// `*.` in the pattern stands for one label of letters, digits and dashes.
fn origin_matches(pattern: &str, origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    match pattern.split_once('*') {
        None => origin == pattern,
        Some((before, after)) => {
            let Some(label_and_rest) = origin.strip_prefix(before) else { return false };
            let label_len = label_and_rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'-').count();
            label_len > 0 && label_and_rest[label_len..] == *after
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(pairs: &[(&str, &str)]) -> (Option<Cors>, Vec<String>) {
        let map = crate::annotations::nginx_annotations(pairs);
        let mut problems = Vec::new();
        (Cors::from_annotations(&map, &mut problems), problems)
    }

    fn header(headers: &[(&'static str, String)], name: &str) -> Option<String> {
        headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn off_unless_enabled() {
        assert_eq!(cors(&[]).0, None);
        assert_eq!(cors(&[("cors-allow-origin", "https://a.test")]).0, None);
        assert_eq!(cors(&[("enable-cors", "false")]).0, None);
        let (off, problems) = cors(&[("enable-cors", "yes")]);
        assert_eq!((off, problems.len()), (None, 1));
        assert!(cors(&[("enable-cors", "True")]).0.is_some(), "Go's ParseBool spellings");
    }

    #[test]
    fn defaults_allow_any_origin_with_ingress_nginx_values() {
        let (cors, problems) = cors(&[("enable-cors", "true")]);
        let headers = cors.expect("enabled").response_headers(None).expect("applies without an Origin");
        assert!(problems.is_empty());
        assert_eq!(header(&headers, "access-control-allow-origin").as_deref(), Some("*"));
        assert_eq!(header(&headers, "access-control-allow-credentials").as_deref(), Some("true"));
        assert_eq!(header(&headers, "access-control-allow-methods").as_deref(), Some(DEFAULT_METHODS));
        assert_eq!(header(&headers, "access-control-allow-headers").as_deref(), Some(DEFAULT_HEADERS));
        assert_eq!(header(&headers, "access-control-max-age").as_deref(), Some("1728000"));
        assert_eq!(header(&headers, "access-control-expose-headers"), None);
    }

    #[test]
    fn listed_origins_are_echoed_and_others_get_nothing() {
        let (cors, problems) = cors(&[
            ("enable-cors", "true"),
            ("cors-allow-origin", "https://app.test, https://*.shop.test:8443, not an origin"),
            ("cors-allow-credentials", "false"),
            ("cors-expose-headers", "X-Total, X-Page"),
            ("cors-max-age", "60"),
        ]);
        let cors = cors.expect("enabled");
        assert_eq!(problems.len(), 1, "{problems:?}");
        let cases = [
            (Some("https://app.test"), true),
            (Some("HTTPS://APP.TEST"), true),
            (Some("https://a-1.shop.test:8443"), true),
            (Some("https://a.b.shop.test:8443"), false),
            (Some("https://.shop.test:8443"), false),
            (Some("https://shop.test:8443"), false),
            (Some("https://app.test.evil"), false),
            (Some("http://app.test"), false),
            (None, false),
        ];
        for (origin, applies) in cases {
            let headers = cors.response_headers(origin);
            assert_eq!(headers.is_some(), applies, "{origin:?}");
            if let Some(headers) = headers {
                assert_eq!(header(&headers, "access-control-allow-origin").as_deref(), origin);
                assert_eq!(header(&headers, "access-control-allow-credentials"), None);
                assert_eq!(header(&headers, "access-control-expose-headers").as_deref(), Some("X-Total, X-Page"));
                assert_eq!(header(&headers, "access-control-max-age").as_deref(), Some("60"));
            }
        }
    }

    #[test]
    fn invalid_values_fall_back_to_the_defaults() {
        let (cors, problems) = cors(&[
            ("enable-cors", "true"),
            ("cors-allow-methods", "GET;DROP"),
            ("cors-allow-headers", "X-A\r\nX-B: 1"),
            ("cors-expose-headers", "X-A;X-B"),
            ("cors-max-age", "soon"),
            ("cors-allow-credentials", "maybe"),
        ]);
        let headers = cors.expect("enabled").response_headers(None).expect("applies");
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert_eq!(header(&headers, "access-control-allow-methods").as_deref(), Some(DEFAULT_METHODS));
        assert_eq!(header(&headers, "access-control-allow-headers").as_deref(), Some(DEFAULT_HEADERS));
        assert_eq!(header(&headers, "access-control-expose-headers"), None);
        assert_eq!(header(&headers, "access-control-max-age").as_deref(), Some("1728000"));
        assert_eq!(header(&headers, "access-control-allow-credentials").as_deref(), Some("true"));
    }

    #[test]
    fn an_origin_list_with_nothing_valid_allows_no_origin() {
        let (cors, _) = cors(&[("enable-cors", "true"), ("cors-allow-origin", "javascript:alert(1)")]);
        assert_eq!(cors.expect("enabled").response_headers(Some("javascript:alert(1)")), None);
    }
}
