//! A received head's header fields as the protocol reads them: from its
//! `http::HeaderMap`, or from its `HeaderLines` when the caller takes a
//! response's headers as lines and its map is left empty.

use http::{HeaderMap, HeaderValue};

use crate::header_lines::{HeaderLines, NamedValues};

#[derive(Clone, Copy)]
pub(crate) enum Fields<'a> {
    Map(&'a HeaderMap),
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    Lines(&'a HeaderLines),
}

impl<'a> Fields<'a> {
    /// The values of the fields named `name` (lower case), in order.
    pub(crate) fn values(self, name: &'static str) -> Values<'a> {
        match self {
            Fields::Map(map) => Values::Map(map.get_all(name).iter()),
            Fields::Lines(lines) => Values::Lines(lines.get_all(name)),
        }
    }

    /// Whether there are no fields at all.
    #[cfg(feature = "client")]
    pub(crate) fn is_empty(self) -> bool {
        match self {
            Fields::Map(map) => map.is_empty(),
            Fields::Lines(lines) => lines.is_empty(),
        }
    }
}

/// The values of one name, from either kind of head.
pub(crate) enum Values<'a> {
    Map(http::header::ValueIter<'a, HeaderValue>),
    Lines(NamedValues<'a>),
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Values::Map(values) => values.next().map(HeaderValue::as_bytes),
            Values::Lines(values) => values.next(),
        }
    }
}
