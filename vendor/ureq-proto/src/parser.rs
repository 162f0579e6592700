use std::mem::MaybeUninit;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use httparse::Status;

use crate::Error;

/// Parse bytes into a complete response.
///
/// Complete means that the last HTTP header is followed by an `\r\n`.
///
/// If the result is `None`, the bytes did not contain a full response. That
/// typically means you need to read more bytes and append to the in input buffer
/// before trying again.
///
/// The first `usize` in the resulting pair, is the number of bytes required from
/// the input buffer to form the response.
///
/// The const `N` is the number of headers to max expect. If the input has more
/// headers than `N` you get an error [`Error::HttpParseTooManyHeaders`].
pub fn try_parse_response<const N: usize>(
    input: &[u8],
) -> Result<Option<(usize, Response<()>)>, Error> {
    let Some((input_used, version, status, headers)) = parse_response_head::<N, _>(input, header_map)? else {
        return Ok(None);
    };
    Ok(Some((input_used, response(version, status, headers))))
}

/// As [`try_parse_response`], with the headers as lines instead of in the
/// response's map, which is left empty.
#[cfg(feature = "client")]
pub(crate) fn try_parse_response_lines<const N: usize>(
    input: &[u8],
) -> Result<Option<(usize, Response<()>, crate::header_lines::HeaderLines)>, Error> {
    let Some((input_used, version, status, lines)) = parse_response_head::<N, _>(input, crate::header_lines::HeaderLines::parsed)? else {
        return Ok(None);
    };
    Ok(Some((input_used, response(version, status, HeaderMap::new()), lines)))
}

/// Parses a complete response head, its headers made into `T` by `fields`
/// from the head's bytes and httparse's headers.
fn parse_response_head<const N: usize, T>(
    input: &[u8],
    fields: impl FnOnce(&[u8], &[httparse::Header<'_>]) -> Result<T, Error>,
) -> Result<Option<(usize, Version, StatusCode, T)>, Error> {
    // Left uninitialised: httparse fills only the slots it parses, and
    // setting all N (4 KiB for 128) cost more than parsing a short head.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; N];

    let mut res = httparse::Response::new(&mut []);

    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        input,
        &mut headers,
    );

    let maybe_input_used = match parsed {
        Ok(v) => v,
        Err(e) => {
            return Err(if e == httparse::Error::TooManyHeaders {
                // For expect-100 we use this value to detect that the server
                // sent a regular response instead of a 100-continue.
                Error::HttpParseTooManyHeaders
            } else {
                e.into()
            });
        }
    };

    let Status::Complete(input_used) = maybe_input_used else {
        return Ok(None);
    };

    let version = {
        // unwrap: Looking at the impl of parse(), version cannot be None.
        let v = res.version.unwrap_or(1);
        match v {
            0 => Version::HTTP_10,
            1 => Version::HTTP_11,
            _ => return Err(Error::UnsupportedVersion),
        }
    };

    let status = {
        // unwrap: Looking at the impl of parse(), code cannot be None.
        let v = res.code.unwrap_or(000);
        status_code(v)?
    };

    let fields = fields(&input[..input_used], res.headers)?;

    Ok(Some((input_used, version, status, fields)))
}

/// Heads up to this long are copied into the allocation that holds their
/// shared count (`Bytes::from_owner`): one allocation where a copied
/// `Bytes` takes two (its buffer, then its shared count on the first
/// slice). With the count and the length the allocation stays within 1 KiB,
/// glibc's per-thread cache's largest size.
const INLINE_HEAD: usize = 1008;

/// A head copied inline, in a buffer of `N` bytes.
struct InlineHead<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> AsRef<[u8]> for InlineHead<N> {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// One shared copy of `head`, inline in a buffer of the first size that
/// holds it: the buffer is zeroed, filled and moved into its allocation,
/// so a usual head of a few hundred bytes should not pay for 1 KiB three
/// times.
fn shared_copy(head: &[u8]) -> Bytes {
    match head.len() {
        0..=240 => inline_copy::<240>(head),
        241..=496 => inline_copy::<496>(head),
        497..=INLINE_HEAD => inline_copy::<INLINE_HEAD>(head),
        _ => Bytes::copy_from_slice(head),
    }
}

fn inline_copy<const N: usize>(head: &[u8]) -> Bytes {
    let mut bytes = [0; N];
    bytes[..head.len()].copy_from_slice(head);
    Bytes::from_owner(InlineHead {
        len: head.len(),
        bytes,
    })
}

fn response(version: Version, status: StatusCode, headers: HeaderMap) -> Response<()> {
    let mut response = Response::new(());
    *response.version_mut() = version;
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The parsed headers as a map sized for them up front, every value a slice
/// of one shared copy of `head` (which holds them all): one allocation for
/// the head instead of one per value, and no map growth or builder step per
/// header. The values are checked as `HeaderValue::from_bytes` checks them.
fn header_map(head: &[u8], headers: &[httparse::Header<'_>]) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::with_capacity(headers.len());
    if headers.is_empty() {
        return Ok(map);
    }
    let shared = shared_copy(head);
    let head_start = head.as_ptr() as usize;
    for h in headers {
        let name = match known_name(h.name.as_bytes()) {
            Some(name) => name,
            None => HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|e| Error::HttpParseFail(e.to_string()))?,
        };
        // Where the value sits in `head`, if it does: httparse's values
        // always do, except that an empty one may point anywhere.
        let offset = (h.value.as_ptr() as usize).wrapping_sub(head_start);
        let end = offset.wrapping_add(h.value.len());
        let value = if !h.value.is_empty() && offset < end && end <= head.len() {
            HeaderValue::from_maybe_shared(shared.slice(offset..end))
        } else {
            HeaderValue::from_bytes(h.value)
        }
        .map_err(|e| Error::HttpParseFail(e.to_string()))?;
        map.append(name, value);
    }
    Ok(map)
}

/// The header a response's name is, if it is one that most responses carry,
/// the same `HeaderName::from_bytes` makes of it. `from_bytes` lower-cases
/// the name into a scratch buffer through a table and then matches it
/// against every standard name of its length: for nginx's eight headers a
/// fifth of building the map. Here the length and first letter pick one
/// candidate, compared eight bytes at a time.
fn known_name(name: &[u8]) -> Option<HeaderName> {
    use http::header;
    let candidate = match (name.len(), name.first()? | 0x20) {
        (4, b'd') => header::DATE,
        (4, b'e') => header::ETAG,
        (4, b'v') => header::VARY,
        (6, b's') => header::SERVER,
        (7, b'e') => header::EXPIRES,
        (8, b'l') => header::LOCATION,
        (10, b'c') => header::CONNECTION,
        (10, b's') => header::SET_COOKIE,
        (12, b'c') => header::CONTENT_TYPE,
        (13, b'a') => header::ACCEPT_RANGES,
        (13, b'c') => header::CACHE_CONTROL,
        (13, b'l') => header::LAST_MODIFIED,
        (14, b'c') => header::CONTENT_LENGTH,
        (16, b'c') => header::CONTENT_ENCODING,
        (17, b't') => header::TRANSFER_ENCODING,
        _ => return None,
    };
    same_but_case(name, candidate.as_str().as_bytes()).then_some(candidate)
}

/// Whether `name`, a header name as httparse hands it out (token bytes
/// only), is `lower` but for ASCII case. Setting bit 5 lower-cases a
/// letter; `lower` holds letters, digits and `-`, which have it set, and
/// the only other bytes mapped onto those are control bytes, never in a
/// token.
fn same_but_case(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    if name.len() != lower.len() {
        return false;
    }
    let word = |bytes: &[u8]| {
        let mut word = [0; 8];
        word.copy_from_slice(bytes);
        u64::from_le_bytes(word)
    };
    let (names, lowers) = (name.chunks_exact(8), lower.chunks_exact(8));
    let (name_rest, lower_rest) = (names.remainder(), lowers.remainder());
    names.zip(lowers).all(|(name, lower)| word(name) | CASE == word(lower))
        && name_rest.iter().zip(lower_rest).all(|(name, lower)| name | 0x20 == *lower)
}

/// Convert a status code parsed by httparse into a [`StatusCode`].
///
/// httparse accepts any three ASCII digits, but [`StatusCode`] only allows
/// `100..=999`. Anything below 100 is a protocol error, not a panic.
fn status_code(v: u16) -> Result<StatusCode, Error> {
    StatusCode::from_u16(v)
        .map_err(|_| Error::HttpParseFail(format!("invalid status code: {:03}", v)))
}

/// Try parsing as much as possible of a response.
///
/// To get a result we need at least the complete initial status row,
/// but we don't need complete headers.
///
/// The const `N` is the number of headers to max expect. If the input has more
/// headers than `N` you get an error [`Error::HttpParseTooManyHeaders`].
pub fn try_parse_partial_response<const N: usize>(
    input: &[u8],
) -> Result<Option<Response<()>>, Error> {
    let mut headers = vec![httparse::EMPTY_HEADER; N]; // 100 headers ~3kb

    let mut res = httparse::Response::new(&mut headers);

    match res.parse(input) {
        Ok(_) => {}
        Err(e) => {
            return Err(if e == httparse::Error::TooManyHeaders {
                // For expect-100 we use this value to detect that the server
                // sent a regular response instead of a 100-continue.
                Error::HttpParseTooManyHeaders
            } else {
                e.into()
            });
        }
    };

    let version = {
        match res.version {
            Some(0) => Version::HTTP_10,
            Some(1) => Version::HTTP_11,
            _ => return Ok(None),
        }
    };

    let status = {
        let v = match res.code {
            Some(v) => v,
            None => return Ok(None),
        };
        status_code(v)?
    };

    // On a partial parse, httparse leaves the unparsed slots as
    // EMPTY_HEADER. A parsed header always has a non-empty name, since
    // the first byte of a header line must be a token character. The
    // value however can legitimately be empty, so only the name tells
    // us where the parsed headers end.
    let parsed = res.headers.iter().take_while(|h| !h.name.is_empty()).count();
    let headers = header_map(input, &res.headers[..parsed])?;

    Ok(Some(response(version, status, headers)))
}

/// Parse bytes into a complete request.
///
/// Complete means that the last HTTP header is followed by an `\r\n`.
///
/// If the result is `None`, the bytes did not contain a full request. That
/// typically means you need to read more bytes and append to the in input buffer
/// before trying again.
///
/// The first `usize` in the resulting pair, is the number of bytes required from
/// the input buffer to form the request.
///
/// The const `N` is the number of headers to max expect. If the input has more
/// headers than `N` you get an error [`Error::HttpParseTooManyHeaders`].
pub fn try_parse_request<const N: usize>(
    input: &[u8],
) -> Result<Option<(usize, Request<()>)>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; N]; // 100 headers ~3kb

    let mut req = httparse::Request::new(&mut headers);

    let maybe_input_used = match req.parse(input) {
        Ok(v) => v,
        Err(e) => {
            return Err(if e == httparse::Error::TooManyHeaders {
                // For expect-100 we use this value to detect that the server
                // sent a regular response instead of a 100-continue.
                Error::HttpParseTooManyHeaders
            } else {
                e.into()
            });
        }
    };

    let Status::Complete(input_used) = maybe_input_used else {
        return Ok(None);
    };

    let version = {
        // unwrap: Looking at the impl of parse(), version cannot be None.
        let v = req.version.unwrap_or(1);
        match v {
            0 => Version::HTTP_10,
            1 => Version::HTTP_11,
            _ => return Err(Error::UnsupportedVersion),
        }
    };

    let method = {
        // unwrap: Looking at the impl of parse(), method cannot be None.
        let v = req.method.unwrap_or("GET");
        // unwrap: Looking at the impl of parse(), method will be something.
        Method::from_bytes(v.as_bytes()).unwrap_or_default()
    };

    let uri = req.path.unwrap_or("/");

    let mut builder = Request::builder().uri(uri).version(version).method(method);

    for h in req.headers {
        builder = builder.header(h.name, h.value);
    }

    let request = builder
        .body(())
        .map_err(|e| Error::HttpParseFail(e.to_string()))?;

    Ok(Some((input_used, request)))
}

#[cfg(test)]
mod test {
    use crate::parser::{try_parse_partial_response, try_parse_request, try_parse_response};

    #[test]
    fn ensure_no_half_response() {
        let bytes = "HTTP/1.1 200 OK\r\n\
            Content-Type: text/plain\r\n\
            Content-Length: 100\r\n\r\n";

        try_parse_response::<0>(bytes.as_bytes()).expect_err("too many headers");
    }

    #[test]
    fn error_on_invalid_authority() {
        let bytes = "GET example\".com HTTP/1.1\r\n\r\n";
        try_parse_request::<0>(bytes.as_bytes()).expect_err("invalid URI character");
    }

    // httparse accepts any three ASCII digits as a status code, but
    // http::StatusCode only allows 100..=999. Codes below 100 must
    // surface as an error rather than a panic (or a bogus 200).
    // https://github.com/algesten/ureq-proto/issues/34

    #[test]
    fn error_on_invalid_status_code() {
        let bytes = "HTTP/1.1 000 NOK\r\n\r\n";
        try_parse_response::<20>(bytes.as_bytes()).expect_err("invalid status code");

        let bytes = "HTTP/1.1 099 NOK\r\n\r\n";
        try_parse_response::<20>(bytes.as_bytes()).expect_err("invalid status code");
    }

    #[test]
    fn error_on_invalid_status_code_partial() {
        let bytes = "HTTP/1.1 000 NOK\r\n";
        try_parse_partial_response::<20>(bytes.as_bytes()).expect_err("invalid status code");
    }

    fn response_with_header_name_len(len: usize) -> String {
        format!("HTTP/1.1 200 OK\r\n{}: x\r\n\r\n", "a".repeat(len))
    }

    #[test]
    fn error_on_too_long_header_name() {
        let bytes = response_with_header_name_len(65_535);
        try_parse_response::<20>(bytes.as_bytes()).expect("longest valid name");

        let bytes = response_with_header_name_len(65_536);
        try_parse_response::<20>(bytes.as_bytes()).expect_err("too long header name");
    }

    #[test]
    fn error_on_too_long_header_name_partial() {
        let bytes = response_with_header_name_len(65_535);
        try_parse_partial_response::<20>(bytes.as_bytes()).expect("longest valid name");

        let bytes = response_with_header_name_len(65_536);
        try_parse_partial_response::<20>(bytes.as_bytes()).expect_err("too long header name");
    }

    #[test]
    fn partial_response_keeps_headers_after_empty_value() {
        // An empty header value is legal. The partial parser must not
        // mistake it for the end of the parsed headers and drop the rest.
        let bytes = "HTTP/1.1 302 Found\r\n\
            X-Empty:\r\n\
            Location: http://example.com/\r\n";

        let res = try_parse_partial_response::<20>(bytes.as_bytes())
            .expect("parse ok")
            .expect("status line complete");

        assert_eq!(res.status().as_u16(), 302);
        assert_eq!(res.headers().get("x-empty").expect("x-empty present"), "");
        assert_eq!(
            res.headers().get("location").expect("location present"),
            "http://example.com/"
        );
    }

    #[test]
    fn boundary_status_codes_parse() {
        let bytes = "HTTP/1.1 100 Continue\r\n\r\n";
        let (_, res) = try_parse_response::<20>(bytes.as_bytes())
            .expect("parse ok")
            .expect("complete");
        assert_eq!(res.status().as_u16(), 100);

        let bytes = "HTTP/1.1 999 Whatever\r\n\r\n";
        let (_, res) = try_parse_response::<20>(bytes.as_bytes())
            .expect("parse ok")
            .expect("complete");
        assert_eq!(res.status().as_u16(), 999);
    }
}
