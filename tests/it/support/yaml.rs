//! A reader for the subset of YAML the manifests are written in, so tests can
//! check them without a YAML dependency.
//!
//! Accepted: block maps, block lists (`- ` items, also `- key: value` maps
//! inside items), plain and quoted scalars on one line, `---` between
//! documents, and `#` comments. Anything else (flow collections, anchors,
//! aliases, tags, block scalars, multi-line scalars, tabs, directives) is
//! refused with the line number: if a manifest needs more, it should be
//! noticed here and not misread.
#![allow(dead_code)]

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An absent value (`key:` with nothing under it, `~` or `null`).
    Null,
    /// Scalars keep their text; plain `80` and quoted `"80"` both read as "80".
    Scalar(String),
    List(Vec<Value>),
    /// Keys in document order.
    Map(Vec<(String, Value)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows map keys; `None` as soon as one is missing.
    pub fn at(&self, path: &[&str]) -> Option<&Value> {
        path.iter().try_fold(self, |value, key| value.get(key))
    }

    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path).and_then(Value::as_str)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A list's items; an absent value reads as an empty list.
    pub fn items(&self) -> &[Value] {
        match self {
            Value::List(items) => items,
            _ => &[],
        }
    }

    pub fn list_at(&self, path: &[&str]) -> &[Value] {
        self.at(path).map(Value::items).unwrap_or(&[])
    }
}

/// One meaningful line: its number (1-based), indentation and text without
/// the comment.
#[derive(Debug, Clone)]
struct Line {
    number: usize,
    indent: usize,
    text: String,
}

fn error<T>(line: usize, message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError { line, message: message.into() })
}

/// Cuts a `#` comment that starts the line or follows whitespace, outside quotes.
fn strip_comment(text: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (at, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') && (previous == ' ' || previous == '-' || previous == ':') => quote = Some(c),
            None if c == '#' && previous == ' ' => return &text[..at],
            None => {}
        }
        previous = c;
    }
    text
}

/// Splits the text into documents of meaningful lines.
fn documents(text: &str) -> Result<Vec<Vec<Line>>, YamlError> {
    let mut docs = vec![Vec::new()];
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        if raw.starts_with("---") && raw[3..].trim().is_empty() {
            docs.push(Vec::new());
            continue;
        }
        if raw.starts_with('%') || raw.trim_end() == "..." {
            return error(number, "directives and document end markers are not supported");
        }
        let content = strip_comment(raw).trim_end();
        if content.trim().is_empty() {
            continue;
        }
        let indent = content.len() - content.trim_start_matches(' ').len();
        if content[indent..].starts_with('\t') {
            return error(number, "tab in indentation");
        }
        let last = docs.len() - 1;
        docs[last].push(Line { number, indent, text: content[indent..].to_string() });
    }
    Ok(docs.into_iter().filter(|d| !d.is_empty()).collect())
}

/// Parses every non-empty document in `text`.
pub fn parse(text: &str) -> Result<Vec<Value>, YamlError> {
    documents(text)?
        .into_iter()
        .map(|mut lines| {
            let mut parser = Parser { lines: &mut lines, next: 0 };
            let indent = parser.lines[0].indent;
            let value = parser.node(indent)?;
            match parser.lines.get(parser.next) {
                Some(line) => error(line.number, "unexpected indentation"),
                None => Ok(value),
            }
        })
        .collect()
}

struct Parser<'a> {
    lines: &'a mut Vec<Line>,
    next: usize,
}

fn is_list_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Line> {
        self.lines.get(self.next)
    }

    /// A list or a map whose first line is the next one, at exactly `indent`.
    fn node(&mut self, indent: usize) -> Result<Value, YamlError> {
        match self.peek() {
            Some(line) if line.indent == indent && is_list_item(&line.text) => self.list(indent),
            Some(line) if line.indent == indent => self.map(indent),
            Some(line) => error(line.number, "unexpected indentation"),
            None => Ok(Value::Null),
        }
    }

    fn list(&mut self, indent: usize) -> Result<Value, YamlError> {
        let mut items = Vec::new();
        while let Some(line) = self.peek().cloned() {
            if line.indent != indent || !is_list_item(&line.text) {
                break;
            }
            let rest = line.text[1..].trim_start();
            if rest.is_empty() {
                self.next += 1;
                items.push(match self.peek() {
                    Some(child) if child.indent > indent => {
                        let child_indent = child.indent;
                        self.node(child_indent)?
                    }
                    _ => Value::Null,
                });
            } else if is_list_item(rest) || split_key(rest, line.number)?.is_some() {
                // `- key: value` or `- - x`: the item is a collection that
                // starts on this line, at the column of its first character.
                let item_indent = indent + (line.text.len() - rest.len());
                self.lines[self.next] = Line { number: line.number, indent: item_indent, text: rest.to_string() };
                items.push(self.node(item_indent)?);
            } else {
                self.next += 1;
                items.push(scalar(rest, line.number)?);
                self.refuse_continuation(indent)?;
            }
        }
        Ok(Value::List(items))
    }

    fn map(&mut self, indent: usize) -> Result<Value, YamlError> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some(line) = self.peek().cloned() {
            if line.indent != indent || is_list_item(&line.text) {
                break;
            }
            let Some((key, rest)) = split_key(&line.text, line.number)? else {
                return error(line.number, format!("expected `key: value`, found {:?}", line.text));
            };
            if entries.iter().any(|(k, _)| *k == key) {
                return error(line.number, format!("duplicate key {key:?}"));
            }
            self.next += 1;
            let value = if rest.is_empty() {
                match self.peek() {
                    Some(child) if child.indent > indent => {
                        let child_indent = child.indent;
                        self.node(child_indent)?
                    }
                    // A list may sit at its key's own indentation.
                    Some(child) if child.indent == indent && is_list_item(&child.text) => self.list(indent)?,
                    _ => Value::Null,
                }
            } else {
                let value = scalar(&rest, line.number)?;
                self.refuse_continuation(indent)?;
                value
            };
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }

    /// A deeper line after a scalar would be a multi-line scalar: not supported.
    fn refuse_continuation(&self, indent: usize) -> Result<(), YamlError> {
        match self.peek() {
            Some(line) if line.indent > indent => error(line.number, "multi-line scalars are not supported"),
            _ => Ok(()),
        }
    }
}

/// `key: rest` or `key:` → `Some((key, rest))`; a line without a mapping colon → `None`.
fn split_key(text: &str, line: usize) -> Result<Option<(String, String)>, YamlError> {
    if text.starts_with('?') {
        return error(line, "complex keys are not supported");
    }
    if text.starts_with('"') || text.starts_with('\'') {
        let (key, after) = quoted(text, line)?;
        return match after.strip_prefix(':') {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => Ok(Some((key, rest.trim().to_string()))),
            _ => Ok(None),
        };
    }
    let colon = text.find(": ").or_else(|| text.ends_with(':').then(|| text.len() - 1));
    Ok(colon.map(|at| (text[..at].trim_end().to_string(), text[at + 1..].trim().to_string())))
}

/// A quoted scalar at the start of `text`: its value and what follows it.
fn quoted(text: &str, line: usize) -> Result<(String, &str), YamlError> {
    let quote = text.chars().next().unwrap_or('"');
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match (quote, c) {
            ('\'', '\'') => {
                if text[at + 1..].starts_with('\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Ok((out, &text[at + 1..]));
                }
            }
            ('"', '"') => return Ok((out, &text[at + 1..])),
            ('"', '\\') => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '/')) => out.push('/'),
                other => return error(line, format!("unsupported escape {other:?}")),
            },
            _ => out.push(c),
        }
    }
    error(line, "unterminated quoted string")
}

fn scalar(text: &str, line: usize) -> Result<Value, YamlError> {
    if text.starts_with('"') || text.starts_with('\'') {
        let (value, after) = quoted(text, line)?;
        if !after.trim().is_empty() {
            return error(line, format!("text after a quoted string: {after:?}"));
        }
        return Ok(Value::Scalar(value));
    }
    match text.chars().next() {
        Some('{') | Some('[') => return error(line, "flow collections are not supported"),
        Some('&') | Some('*') => return error(line, "anchors and aliases are not supported"),
        Some('!') => return error(line, "tags are not supported"),
        Some('|') | Some('>') => return error(line, "block scalars are not supported"),
        Some('@') | Some('`') | Some('%') => return error(line, "reserved indicator at the start of a scalar"),
        _ => {}
    }
    if text.contains(": ") {
        return error(line, format!("ambiguous plain scalar {text:?} (quote it)"));
    }
    match text {
        "~" | "null" | "Null" | "NULL" => Ok(Value::Null),
        _ => Ok(Value::Scalar(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        let mut docs = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0)
    }

    fn s(text: &str) -> Value {
        Value::Scalar(text.to_string())
    }

    #[test]
    fn nested_maps_lists_and_scalars() {
        let doc = one(
            "# head\nkind: DaemonSet # trailing\nspec:\n  args:\n    - --a=1\n    - \"quoted # not a comment\"\n  items:\n  - name: x\n    port: 80\n  -\n    name: y\n  empty:\n  label: \"\"\n  single: 'it''s'\n",
        );
        assert_eq!(doc.str_at(&["kind"]), Some("DaemonSet"));
        assert_eq!(doc.list_at(&["spec", "args"]), &[s("--a=1"), s("quoted # not a comment")]);
        let items = doc.list_at(&["spec", "items"]);
        assert_eq!(items[0], Value::Map(vec![("name".into(), s("x")), ("port".into(), s("80"))]));
        assert_eq!(items[1].str_at(&["name"]), Some("y"));
        assert_eq!(doc.at(&["spec", "empty"]), Some(&Value::Null));
        assert_eq!(doc.str_at(&["spec", "label"]), Some(""));
        assert_eq!(doc.str_at(&["spec", "single"]), Some("it's"));
    }

    #[test]
    fn documents_are_split_and_empty_ones_dropped() {
        let docs = parse("---\na: 1\n---\n# only a comment\n---\nb:\n  - - x\n    - y\n").expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].list_at(&["b"])[0], Value::List(vec![s("x"), s("y")]));
    }

    #[test]
    fn anything_outside_the_subset_is_refused_with_its_line() {
        for (text, line, words) in [
            ("a: {b: 1}\n", 1, "flow"),
            ("a: [1, 2]\n", 1, "flow"),
            ("a: &x 1\n", 1, "anchors"),
            ("a: *x\n", 1, "anchors"),
            ("a: !!str 1\n", 1, "tags"),
            ("a: |\n  text\n", 1, "block scalars"),
            ("a: one\n  two\n", 2, "multi-line"),
            ("a:\n\t- b\n", 2, "tab"),
            ("a: 1\na: 2\n", 2, "duplicate"),
            ("a:\n    b: 1\n  c: 2\n", 3, "indentation"),
            ("a: \"open\n", 1, "unterminated"),
            ("just text\n", 1, "key: value"),
            ("? complex\n", 1, "complex"),
            ("a: b: c\n", 1, "ambiguous"),
        ] {
            match parse(text) {
                Ok(v) => panic!("{text:?} was accepted as {v:?}"),
                Err(e) => {
                    assert_eq!(e.line, line, "{text:?}: {e}");
                    assert!(e.message.contains(words), "{text:?}: {e}");
                }
            }
        }
    }
}
