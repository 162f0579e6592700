//! A request's head as read: its target and each header's name and value are ranges of one
//! string. A request used to own a `String` for its target, an `AsciiString` for each header
//! name and each value, and a `Vec` of them: eight allocations and frees, about 1,200
//! instructions, for a request with three headers; now it is the text and the ranges.

use std::fmt::{self, Display, Formatter};
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use crate::Header;

/// The largest buffers `SpareHead` keeps: one large head does not make its connection
/// hold as much for good.
const SPARE_TEXT_MOST: usize = 4096;
const SPARE_HEADERS_MOST: usize = 64;

/// A connection's head buffers between requests: a dropped request gives its head's text
/// and ranges back, emptied, and the connection reads its next head into them, where a
/// new text and list per request cost two allocations and two frees, about 300
/// instructions. A request still alive when the next head is read (answered on another
/// thread) leaves it to allocate its own.
#[derive(Default)]
pub(crate) struct SpareHead(Mutex<Option<(Vec<u8>, Vec<HeaderSpan>)>>);

impl SpareHead {
    pub(crate) fn take(&self) -> Option<(Vec<u8>, Vec<HeaderSpan>)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn put(&self, head: RequestHead) {
        let (mut text, mut headers) = (head.text.into_bytes(), head.headers);
        if text.capacity() > SPARE_TEXT_MOST || headers.capacity() > SPARE_HEADERS_MOST {
            return;
        }
        text.clear();
        headers.clear();
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((text, headers));
    }
}

/// Where one header's name and value are in `RequestHead::text`.
#[derive(Clone, Debug)]
pub(crate) struct HeaderSpan {
    pub(crate) name: Range<usize>,
    pub(crate) value: Range<usize>,
}

pub(crate) struct RequestHead {
    /// ASCII: the head's lines as read (a request's), or its target and headers back to
    /// back (`TestRequest`'s).
    text: String,
    target: Range<usize>,
    headers: Vec<HeaderSpan>,
}

impl RequestHead {
    /// `target` and the spans are ranges of `text` on character boundaries.
    pub(crate) fn new(text: String, target: Range<usize>, headers: Vec<HeaderSpan>) -> Self {
        RequestHead {
            text,
            target,
            headers,
        }
    }

    /// Gives the head's buffers to `spare`, leaving an empty head (which allocated nothing).
    pub(crate) fn give_back(&mut self, spare: &SpareHead) {
        let empty = RequestHead::new(String::new(), 0..0, Vec::new());
        spare.put(std::mem::replace(self, empty));
    }

    /// A head of `target` and `headers`, for a request made up rather than read.
    pub(crate) fn from_parts(target: &str, headers: &[Header]) -> Self {
        let mut text = String::from(target);
        let spans = headers
            .iter()
            .map(|header| {
                let name_start = text.len();
                text.push_str(header.field.as_str().as_str());
                let value_start = text.len();
                text.push_str(header.value.as_str());
                HeaderSpan {
                    name: name_start..value_start,
                    value: value_start..text.len(),
                }
            })
            .collect();
        RequestHead::new(text, 0..target.len(), spans)
    }

    pub(crate) fn target(&self) -> &str {
        self.text.get(self.target.clone()).unwrap_or("")
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn spans(&self) -> &[HeaderSpan] {
        &self.headers
    }

    pub(crate) fn headers(&self) -> RequestHeaders<'_> {
        RequestHeaders {
            text: &self.text,
            spans: &self.headers,
        }
    }
}

/// The headers of a request, in the order received: `Request::headers`.
#[derive(Clone, Copy)]
pub struct RequestHeaders<'a> {
    text: &'a str,
    spans: &'a [HeaderSpan],
}

impl<'a> RequestHeaders<'a> {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn iter(&self) -> RequestHeadersIter<'a> {
        RequestHeadersIter {
            text: self.text,
            spans: self.spans.iter(),
        }
    }

    /// The first header named `name` (in any case).
    pub fn find(&self, name: &str) -> Option<RequestHeader<'a>> {
        self.iter().find(|header| header.field.equiv(name))
    }
}

impl fmt::Debug for RequestHeaders<'_> {
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        formatter.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for RequestHeaders<'a> {
    type Item = RequestHeader<'a>;
    type IntoIter = RequestHeadersIter<'a>;

    fn into_iter(self) -> RequestHeadersIter<'a> {
        self.iter()
    }
}

#[derive(Clone)]
pub struct RequestHeadersIter<'a> {
    text: &'a str,
    spans: std::slice::Iter<'a, HeaderSpan>,
}

impl<'a> RequestHeadersIter<'a> {
    fn header(&self, span: &HeaderSpan) -> RequestHeader<'a> {
        RequestHeader {
            field: FieldName(self.text.get(span.name.clone()).unwrap_or("")),
            value: FieldValue(self.text.get(span.value.clone()).unwrap_or("")),
        }
    }
}

impl<'a> Iterator for RequestHeadersIter<'a> {
    type Item = RequestHeader<'a>;

    fn next(&mut self) -> Option<RequestHeader<'a>> {
        let span = self.spans.next()?;
        Some(self.header(span))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for RequestHeadersIter<'_> {}

impl DoubleEndedIterator for RequestHeadersIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let span = self.spans.next_back()?;
        Some(self.header(span))
    }
}

/// One header of a request, borrowed from its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    pub field: FieldName<'a>,
    pub value: FieldValue<'a>,
}

impl Display for RequestHeader<'_> {
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.value)
    }
}

/// A request header's name as sent; compared without regard to case.
#[derive(Clone, Copy, Debug)]
pub struct FieldName<'a>(&'a str);

impl<'a> FieldName<'a> {
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    pub fn equiv(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl PartialEq for FieldName<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.equiv(other.0)
    }
}

impl Eq for FieldName<'_> {}

impl Display for FieldName<'_> {
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.0)
    }
}

/// A request header's value, without the whitespace around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldValue<'a>(&'a str);

impl<'a> FieldValue<'a> {
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0.as_bytes()
    }
}

impl PartialEq<str> for FieldValue<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for FieldValue<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Display for FieldValue<'_> {
    fn fmt(&self, formatter: &mut Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.0)
    }
}
