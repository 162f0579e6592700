//! A received head's header fields as the protocol reads them: from its
//! `http::HeaderMap`, or from its `HeaderLines` when the caller takes a
//! response's headers as lines and its map is left empty.

use http::{HeaderMap, HeaderValue};

use crate::header_lines::HeaderLines;

#[derive(Clone, Copy)]
pub(crate) enum Fields<'a> {
    Map(&'a HeaderMap),
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    Lines(&'a HeaderLines),
}

impl<'a> Fields<'a> {
    /// The values of the fields named `name` (lower case), in order.
    pub(crate) fn values(self, name: &'static str) -> impl Iterator<Item = &'a [u8]> {
        let (map, lines) = match self {
            Fields::Map(map) => (Some(map.get_all(name).iter()), None),
            Fields::Lines(lines) => (None, Some(lines.get_all(name))),
        };
        let map = map.into_iter().flatten().map(HeaderValue::as_bytes);
        map.chain(lines.into_iter().flatten())
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
