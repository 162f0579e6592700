//! The Prometheus text exposition format, as every metrics source writes it.
//!
//! One place for the `# HELP`/`# TYPE` header, sample lines and label
//! escaping, so every series on `/metrics` is announced and escaped alike.

use std::borrow::Cow;
use std::fmt::{Display, Write as _};

/// What a metric family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

/// Announces a metric family.
pub fn header(out: &mut String, name: &str, kind: Type, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {}\n", kind.as_str());
}

/// One sample line; label values are escaped.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, text)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape_label(text));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A family with one unlabelled sample.
pub fn single(out: &mut String, name: &str, kind: Type, help: &str, value: impl Display) {
    header(out, name, kind, help);
    sample(out, name, &[], value);
}

/// Escapes a label value as the format requires (backslash, quote, newline).
pub fn escape_label(value: &str) -> Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        Cow::Owned(value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut out = String::new();
        single(&mut out, "a_total", Type::Counter, "Things.", 3);
        header(&mut out, "b", Type::Gauge, "B.");
        sample(&mut out, "b", &[("host", "x\"y\\z\n"), ("k", "v")], 1.5);
        assert_eq!(
            out,
            "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n\
             # HELP b B.\n# TYPE b gauge\nb{host=\"x\\\"y\\\\z\\n\",k=\"v\"} 1.5\n"
        );
    }
}
