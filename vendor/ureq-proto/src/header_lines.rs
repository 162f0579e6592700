//! Header lines kept as the bytes they travel in, for a caller that only
//! passes headers through (a reverse proxy): building an `http::HeaderMap`
//! hashes every name, checks every value a second time and allocates a
//! bucket for each, to be walked once and dropped. A request carrying
//! `HeaderLines` in its extensions sends them after its map's headers in one
//! copy, and its response's headers come back as `HeaderLines`
//! (`Call::take_header_lines`), in order, with only the headers the protocol
//! itself reads in the response's map.

use crate::Error;

/// Where a line's name and value sit in the bytes.
#[derive(Clone, Copy, Debug)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// Header lines in the order they are sent or arrived. Names are lower case,
/// as `http::HeaderName` keeps them, so a head goes out byte for byte as the
/// map would have written it.
#[derive(Clone, Debug)]
pub struct HeaderLines {
    bytes: Vec<u8>,
    spans: Vec<Span>,
    /// The bytes are exactly the lines, `name: value\r\n` each (built by
    /// `push`), so they are written in one copy. A parsed response's bytes
    /// are its whole head.
    encoded: bool,
}

impl Default for HeaderLines {
    fn default() -> Self {
        HeaderLines::with_capacity(0, 0)
    }
}

impl HeaderLines {
    /// Room for `lines` lines of `bytes` bytes in all, names, values and
    /// separators.
    pub fn with_capacity(lines: usize, bytes: usize) -> Self {
        HeaderLines {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(lines),
            encoded: true,
        }
    }

    /// Appends a line. The name and value are checked as
    /// `HeaderName::from_bytes` and `HeaderValue::from_bytes` check them,
    /// so no line can end the head early or split into two.
    pub fn push(&mut self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        if !self.encoded {
            return Err(Error::BadHeader("a parsed head's lines take no more lines".to_string()));
        }
        if name.is_empty() {
            return Err(Error::BadHeader("empty header name".to_string()));
        }
        if !is_value(value) {
            return Err(Error::BadHeader("invalid header value".to_string()));
        }
        let name_start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        // A name already in lower-case letters, digits and `-` (a caller's
        // usual name) is taken as it is, checked many bytes at a time;
        // any other is checked and lower-cased byte by byte.
        let plain = name.iter().fold(true, |plain, &b| plain & matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
        let mut token = true;
        if !plain {
            for b in &mut self.bytes[name_start..] {
                let lower = TOKEN_LOWER[usize::from(*b)];
                token &= lower != 0;
                *b = lower;
            }
        }
        if !token {
            self.bytes.truncate(name_start);
            return Err(Error::BadHeader(format!("invalid header name: {:?}", String::from_utf8_lossy(name))));
        }
        self.bytes.extend_from_slice(b": ");
        let value_start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.bytes.extend_from_slice(b"\r\n");
        self.spans.push(Span {
            name: (name_start as u32, (name_start + name.len()) as u32),
            value: (value_start as u32, (value_start + value.len()) as u32),
        });
        Ok(())
    }

    /// The lines of a parsed head (`head` holds every name and value);
    /// names are lower-cased in the copy. The values are not checked again:
    /// httparse takes in a value exactly the bytes `HeaderValue` accepts
    /// (tab, 0x20 to 0x7e, 0x80 to 0xff; a test holds it to that).
    pub(crate) fn parsed(head: &[u8], headers: &[httparse::Header<'_>]) -> Result<Self, Error> {
        let mut bytes = head.to_vec();
        let head_start = head.as_ptr() as usize;
        let mut spans = Vec::with_capacity(headers.len());
        for h in headers {
            let name = range_in(head_start, head.len(), h.name.as_bytes())?;
            // An empty value may point anywhere: it is kept as an empty
            // range right after its name.
            let value = if h.value.is_empty() {
                (name.1, name.1)
            } else {
                range_in(head_start, head.len(), h.value)?
            };
            bytes[name.0 as usize..name.1 as usize].make_ascii_lowercase();
            spans.push(Span { name, value });
        }
        Ok(HeaderLines {
            bytes,
            spans,
            encoded: false,
        })
    }

    /// The number of lines.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The lines as (name, value), in order. Names are token bytes in lower
    /// case (ASCII), given as bytes: a `str` would cost a UTF-8 check of
    /// every name on every pass over them.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|span| (self.slice(span.name), self.slice(span.value)))
    }

    /// The values of the lines named `name` (given in lower case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> NamedValues<'a> {
        NamedValues {
            lines: self,
            spans: self.spans.iter(),
            name: name.as_bytes(),
        }
    }

    /// These lines but those named one of `names` (given in lower case).
    pub(crate) fn without(&self, names: &[&str]) -> HeaderLines {
        let mut kept = HeaderLines::with_capacity(self.len(), self.bytes.len());
        for (name, value) in self.iter() {
            if !names.iter().any(|dropped| dropped.as_bytes() == name) {
                // Checked when these lines were made.
                let _ = kept.push(name, value);
            }
        }
        kept
    }

    /// The lines as they go on the wire, if they were built to be sent.
    pub(crate) fn encoded(&self) -> Option<&[u8]> {
        self.encoded.then_some(self.bytes.as_slice())
    }

    /// Where line `index` ends in the encoded bytes.
    pub(crate) fn encoded_end(&self, index: usize) -> usize {
        self.spans[index].value.1 as usize + 2
    }

    fn slice(&self, (start, end): (u32, u32)) -> &[u8] {
        &self.bytes[start as usize..end as usize]
    }
}

/// The values of the lines of one name (`HeaderLines::get_all`).
pub struct NamedValues<'a> {
    lines: &'a HeaderLines,
    spans: std::slice::Iter<'a, Span>,
    name: &'a [u8],
}

impl<'a> Iterator for NamedValues<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let lines = self.lines;
        let name = self.name;
        self.spans
            .find(|span| lines.slice(span.name) == name)
            .map(|span| lines.slice(span.value))
    }
}

/// Where `part`, a slice httparse took from the head, sits in it.
fn range_in(head_start: usize, head_len: usize, part: &[u8]) -> Result<(u32, u32), Error> {
    let start = (part.as_ptr() as usize).wrapping_sub(head_start);
    let end = start.wrapping_add(part.len());
    if start > end || end > head_len || end > u32::MAX as usize {
        return Err(Error::HttpParseFail("header outside its head".to_string()));
    }
    Ok((start as u32, end as u32))
}

/// Each RFC 9110 `tchar` (what `http::HeaderName` accepts) lower-cased,
/// every other byte 0.
const TOKEN_LOWER: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let symbol = matches!(byte, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        if byte.is_ascii_alphanumeric() || symbol {
            table[b] = byte.to_ascii_lowercase();
        }
        b += 1;
    }
    table
};

/// Whether `http::HeaderValue::from_bytes` accepts `value`: no control byte
/// but tab, no DEL. Eight bytes are tested at a time; only a word that
/// holds a byte below 0x20 (a tab, or a bad byte) or a DEL is looked at
/// byte by byte.
fn is_value(value: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let byte_ok = |&b: &u8| b >= 32 && b != 127 || b == b'\t';
    let mut words = value.chunks_exact(8);
    let mut suspect = false;
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A high bit for each byte below 0x20, and for each DEL (the
        // classic "has a byte less than n" and "has a zero byte" tests).
        let below_space = x.wrapping_sub(0x20 * ONES) & !x & HIGHS;
        let del = x ^ (0x7f * ONES);
        let has_del = del.wrapping_sub(ONES) & !del & HIGHS;
        suspect |= below_space | has_del != 0;
    }
    if suspect && !value.iter().all(byte_ok) {
        return false;
    }
    words.remainder().iter().all(byte_ok)
}

#[cfg(test)]
mod tests {
    use super::HeaderLines;

    #[test]
    fn pushed_lines_are_their_wire_bytes() {
        let mut lines = HeaderLines::with_capacity(2, 64);
        lines.push(b"X-One", b"a b").unwrap();
        lines.push(b"x-two", b"").unwrap();
        assert_eq!(lines.encoded(), Some(&b"x-one: a b\r\nx-two: \r\n"[..]));
        let pairs: Vec<_> = lines.iter().collect();
        assert_eq!(pairs, [(&b"x-one"[..], &b"a b"[..]), (&b"x-two"[..], &b""[..])]);
        assert_eq!(lines.encoded_end(0), 12);
    }

    #[test]
    fn value_bytes_are_judged_as_header_value_judges_them() {
        let byte_ok = |b: u8| b >= 32 && b != 127 || b == b'\t';
        for b in 0..=255u8 {
            for at in [0, 3, 7, 8, 12] {
                let mut value = vec![b'a'; 13];
                value[at] = b;
                assert_eq!(super::is_value(&value), byte_ok(b), "byte {b} at {at}");
            }
        }
    }

    #[test]
    fn a_parsed_value_holds_only_bytes_header_value_accepts() {
        for b in 0..=255u8 {
            let mut input = b"HTTP/1.1 200 OK\r\nx-a: a".to_vec();
            input.push(b);
            input.extend_from_slice(b"b\r\n\r\n");
            let parsed = crate::parser::try_parse_response_lines::<4>(&input);
            let accepted = matches!(&parsed, Ok(Some((_, _, lines))) if lines.len() == 1);
            let wanted = b >= 32 && b != 127 || b == b'\t';
            // A line end splits the value; any other byte is taken whole
            // or refused, as `HeaderValue` takes or refuses it.
            if b != b'\r' && b != b'\n' {
                assert_eq!(accepted, wanted, "byte {b}");
            }
            if let Ok(Some((_, _, lines))) = parsed {
                assert!(lines.iter().all(|(_, value)| super::is_value(value)), "byte {b}");
            }
        }
    }

    #[test]
    fn lines_that_could_split_or_end_a_head_are_refused() {
        let mut lines = HeaderLines::default();
        for (name, value) in [
            (&b"x"[..], &b"a\r\nx: b"[..]),
            (b"x", b"a\nb"),
            (b"x", b"\0"),
            (b"x y", b"v"),
            (b"x:", b"v"),
            (b"", b"v"),
            (b"x\r\n", b"v"),
        ] {
            assert!(lines.push(name, value).is_err(), "{name:?}: {value:?}");
        }
        assert!(lines.is_empty());
        assert_eq!(lines.encoded(), Some(&b""[..]));
    }

    #[cfg(feature = "client")]
    mod through_a_call {
        use http::{Request, StatusCode};

        use super::HeaderLines;
        use crate::client::state::RecvResponse;
        use crate::client::{Call, RecvResponseResult, SendRequestResult};
        use crate::{BodyMode, Error};

        fn lines(pairs: &[(&str, &str)]) -> HeaderLines {
            let mut lines = HeaderLines::default();
            for (name, value) in pairs {
                lines.push(name.as_bytes(), value.as_bytes()).unwrap();
            }
            lines
        }

        fn request(builder: http::request::Builder, pairs: &[(&str, &str)]) -> Request<()> {
            let mut request = builder.body(()).unwrap();
            request.extensions_mut().insert(lines(pairs));
            request
        }

        /// The head the call writes through an output of `size` bytes.
        fn head(request: Request<()>, size: usize) -> (String, Option<SendRequestResult>) {
            let mut call = Call::new(request).unwrap().proceed();
            let mut head = Vec::new();
            while !call.can_proceed() {
                let mut output = vec![0; size];
                let n = call.write(&mut output).unwrap();
                head.extend_from_slice(&output[..n]);
            }
            (String::from_utf8(head).unwrap(), call.proceed().unwrap())
        }

        #[test]
        fn lines_follow_the_map_in_their_order_and_decide_host_and_length() {
            let builder = Request::post("http://10.0.0.1:8080/p?q").header("x-map", "m");
            let pairs = [("Host", "shop.example"), ("x-a", "1"), ("x-b", ""), ("x-a", "3"), ("content-length", "5")];
            let expected = "POST /p?q HTTP/1.1\r\nx-map: m\r\nhost: shop.example\r\nx-a: 1\r\nx-b: \r\nx-a: 3\r\ncontent-length: 5\r\n\r\n";
            // Whole, then through outputs just big enough for the longest
            // line and anything between.
            for size in [1024, 29, 30, 31, 40, 57] {
                let (written, next) = head(request(Request::post("http://10.0.0.1:8080/p?q").header("x-map", "m"), &pairs), size);
                assert_eq!(written, expected, "output of {size} bytes");
                assert!(matches!(next, Some(SendRequestResult::SendBody(_))), "a sized body follows");
            }
            let (written, _) = head(request(builder, &pairs), 1024);
            assert!(!written.contains("host: 10.0.0.1"), "the lines' Host is the only one");
        }

        #[test]
        fn lines_alone_make_the_whole_head() {
            let (written, next) = head(request(Request::get("http://10.0.0.1/"), &[("host", "a")]), 1024);
            assert_eq!(written, "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
            assert!(matches!(next, Some(SendRequestResult::RecvResponse(_))));
        }

        #[test]
        fn lines_are_checked_as_the_map_is() {
            let twice = [("host", "a"), ("host", "b")];
            let mut call = Call::new(request(Request::get("http://10.0.0.1/"), &twice)).unwrap().proceed();
            assert!(matches!(call.write(&mut [0; 1024]), Err(Error::TooManyHostHeaders)));
            let expect = [("host", "a"), ("expect", "100-continue"), ("content-length", "1")];
            let (_, next) = head(request(Request::post("http://10.0.0.1/"), &expect), 1024);
            assert!(matches!(next, Some(SendRequestResult::Await100(_))));
        }

        #[test]
        fn lines_handed_to_the_call_go_out_as_extension_lines_do() {
            let mut call = Call::new(Request::get("http://10.0.0.1/").body(()).unwrap()).unwrap();
            call.set_header_lines(lines(&[("host", "a"), ("x-a", "1")]));
            let mut call = call.proceed();
            let mut output = [0; 1024];
            let n = call.write(&mut output).unwrap();
            assert_eq!(&output[..n], b"GET / HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n\r\n");
        }

        #[test]
        fn a_redirect_keeps_the_lines_the_map_would_keep() {
            let pairs = [("host", "a"), ("cookie", "c=1"), ("authorization", "Basic eA=="), ("x-a", "1")];
            let mut call = receiving(&pairs);
            let input = b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.2/next\r\nContent-Length: 0\r\n\r\n";
            call.try_response(input, false).unwrap().1.expect("a whole head");
            assert!(call.take_header_lines().is_some());
            let Some(RecvResponseResult::Redirect(mut redirect)) = call.proceed() else { panic!("a redirect") };
            let next = redirect.as_new_call(crate::client::RedirectAuthHeaders::Never).unwrap().expect("followed");
            let mut next = next.proceed();
            let mut output = [0; 1024];
            let n = next.write(&mut output).unwrap();
            assert_eq!(&output[..n], b"GET /next HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n\r\n");
        }

        fn receiving(pairs: &[(&str, &str)]) -> Call<RecvResponse> {
            let (_, next) = head(request(Request::get("http://10.0.0.1/"), pairs), 1024);
            let Some(SendRequestResult::RecvResponse(call)) = next else { panic!("a GET receives next") };
            call
        }

        #[test]
        fn a_response_comes_back_as_lines_in_order() {
            let mut call = receiving(&[("host", "a")]);
            let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nX-Empty:\r\nContent-Length: 3\r\nset-cookie: b=2\r\n\r\nabc";
            let (used, response) = call.try_response(input, false).unwrap();
            let response = response.expect("a whole head");
            assert_eq!(used, input.len() - 3);
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.headers().is_empty(), "the map holds none of them");
            let lines = call.take_header_lines().expect("lines");
            let got: Vec<(&[u8], &[u8])> = lines.iter().collect();
            let want: [(&[u8], &[u8]); 5] =
                [(b"content-type", b"text/plain"), (b"set-cookie", b"a=1"), (b"x-empty", b""), (b"content-length", b"3"), (b"set-cookie", b"b=2")];
            assert_eq!(got, want);
            let Some(RecvResponseResult::RecvBody(body)) = call.proceed() else { panic!("a body follows") };
            assert_eq!(body.body_mode(), BodyMode::LengthDelimited(3));
        }

        #[test]
        fn a_responses_lines_decide_its_framing_and_reuse() {
            let mut call = receiving(&[("host", "a")]);
            let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 9\r\n\r\n";
            call.try_response(input, false).unwrap().1.expect("a whole head");
            let Some(RecvResponseResult::RecvBody(body)) = call.proceed() else { panic!("a body follows") };
            assert_eq!(body.body_mode(), BodyMode::Chunked);

            let mut call = receiving(&[("host", "a")]);
            let input = b"HTTP/1.1 204 No Content\r\nConnection: Close\r\n\r\n";
            call.try_response(input, false).unwrap().1.expect("a whole head");
            let Some(RecvResponseResult::Cleanup(done)) = call.proceed() else { panic!("no body") };
            assert!(done.must_close_connection());

            let mut call = receiving(&[("host", "a")]);
            let input = b"HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n";
            assert!(matches!(call.try_response(input, false), Err(Error::HeadersWith100)));
        }
    }
}
