use std::io::Write;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use http::uri::Scheme;
use http::{HeaderMap, HeaderValue, Method, Uri, Version, header};

use crate::Error;
use crate::client::amended::AmendedRequest;
use crate::ext::{AuthorityExt, MethodExt, SchemeExt, list_has, map_has};
use crate::util::Writer;

use super::state::SendRequest;
use super::{BodyState, Call, CloseReason, RequestPhase, SendRequestResult};

impl Call<SendRequest> {
    /// Write the request to the buffer.
    ///
    /// Writes incrementally, it can be called repeatedly in situations where the output
    /// buffer is small.
    ///
    /// This includes the first row, i.e. `GET / HTTP/1.1` and all headers.
    /// The output buffer needs to be large enough for the longest row.
    ///
    /// Example:
    ///
    /// ```text
    /// POST /bar HTTP/1.1\r\n
    /// Host: my.server.test\r\n
    /// User-Agent: myspecialthing\r\n
    /// \r\n
    /// <body data>
    /// ```
    ///
    /// The buffer would need to be at least 28 bytes big, since the `User-Agent` row is
    /// 28 bytes long.
    ///
    /// If the output is too small for the longest line, the result is an `OutputOverflow` error.
    ///
    /// The `Ok(usize)` is the number of bytes of the `output` buffer that was used.
    pub fn write(&mut self, output: &mut [u8]) -> Result<usize, Error> {
        self.maybe_analyze_request()?;

        let mut w = Writer::new(output);
        try_write_prelude(&self.inner.request, &mut self.inner.state, &mut w)?;

        let output_used = w.len();

        Ok(output_used)
    }

    /// The configured method.
    pub fn method(&self) -> &Method {
        self.inner.request.method()
    }

    /// The uri being requested.
    pub fn uri(&self) -> &Uri {
        self.inner.request.uri()
    }

    /// Version of the request.
    ///
    /// This can only be 1.0 or 1.1.
    pub fn version(&self) -> Version {
        self.inner.request.version()
    }

    /// The configured headers.
    pub fn headers_map(&mut self) -> Result<HeaderMap, Error> {
        self.maybe_analyze_request()?;
        let mut map = HeaderMap::new();
        for (k, v) in self.inner.request.headers() {
            map.insert(k, v.clone());
        }
        Ok(map)
    }

    /// Check whether the entire request has been sent.
    ///
    /// This is useful when the output buffer is small and we need to repeatedly
    /// call `write()` to send the entire request.
    pub fn can_proceed(&self) -> bool {
        !self.inner.state.phase.is_prelude()
    }

    /// Attempt to proceed from this state to the next.
    ///
    /// Returns `None` if the entire request has not been sent. It is guaranteed that if
    /// `can_proceed()` returns `true`, this will return `Some`.
    pub fn proceed(mut self) -> Result<Option<SendRequestResult>, Error> {
        if !self.can_proceed() {
            return Ok(None);
        }

        if self.inner.state.writer.has_body() {
            if self.inner.await_100_continue {
                Ok(Some(SendRequestResult::Await100(Call::wrap(self.inner))))
            } else {
                // TODO(martin): is this needed?
                self.maybe_analyze_request()?;
                let call = Call::wrap(self.inner);
                Ok(Some(SendRequestResult::SendBody(call)))
            }
        } else {
            let call = Call::wrap(self.inner);
            Ok(Some(SendRequestResult::RecvResponse(call)))
        }
    }

    pub(crate) fn maybe_analyze_request(&mut self) -> Result<(), Error> {
        if self.inner.analyzed {
            return Ok(());
        }

        let info = self.inner.request.analyze(
            self.inner.state.writer,
            self.inner.state.allow_non_standard_methods,
        )?;

        let method = self.inner.request.method();
        let send_body = (method.allow_request_body() || self.inner.force_send_body)
            && info.body_mode.has_body();

        if !send_body && info.body_mode.has_body() {
            return Err(Error::BodyNotAllowed);
        }

        // A request's own `Connection: close` is found in the pass above,
        // which visits every header anyway; the release looked it up in
        // the map when the call was made. Nothing reads the reasons
        // before the request is written, and a header added since is
        // marked by `Call::header` already.
        let reason = CloseReason::ClientConnectionClose;
        if info.has_close && !self.inner.close_reason.contains(&reason) {
            self.inner.close_reason.push(reason);
        }

        // Only a request that sends a body waits for `100 Continue`, so
        // only such a request looks up its Expect lines: the release
        // looked them up when the call was made, a map lookup that every
        // GET paid for nothing. The request's own headers, as before.
        if send_body {
            let request = &self.inner.request;
            self.inner.await_100_continue =
                map_has(request.original_request_headers(), header::EXPECT, "100-continue")
                    || request.lines().is_some_and(|lines| {
                        lines.get_all("expect").any(|value| list_has(value, "100-continue"))
                    });
        }

        if !info.req_host_header && method != Method::CONNECT {
            if let Some(host) = self.inner.request.uri().host() {
                // User did not set a host header, and there is one in uri, we set that.
                // We need an owned value to set the host header.

                // This might append the port if it differs from the scheme default.
                let value = maybe_with_port(host, self.inner.request.uri())?;

                self.inner.request.set_header(header::HOST, value)?;
            }
        }

        if let Some(auth) = self.inner.request.uri().authority() {
            if self.inner.request.method() != Method::CONNECT {
                if auth.userinfo().is_some() && !info.req_auth_header {
                    let user = auth.username().unwrap_or_default();
                    let pass = auth.password().unwrap_or_default();
                    let creds = BASE64_STANDARD.encode(format!("{}:{}", user, pass));
                    let auth = format!("Basic {}", creds);
                    self.inner.request.set_header(header::AUTHORIZATION, auth)?;
                }
            } else if !info.req_host_header {
                self.inner
                    .request
                    .set_header(header::HOST, auth.clone().as_str())?;
            }
        }

        if !info.req_body_header && info.body_mode.has_body() {
            // User did not set a body header, we set one.
            let header = info.body_mode.body_header();
            self.inner.request.set_header(header.0, header.1)?;
        }

        self.inner.state.writer = info.body_mode;

        self.inner.analyzed = true;
        Ok(())
    }
}

fn maybe_with_port(host: &str, uri: &Uri) -> Result<HeaderValue, Error> {
    fn from_str(src: &str) -> Result<HeaderValue, Error> {
        HeaderValue::from_str(src).map_err(|e| Error::BadHeader(e.to_string()))
    }

    if let Some(port) = uri.port() {
        let scheme = uri.scheme().unwrap_or(&Scheme::HTTP);
        if let Some(scheme_default) = scheme.default_port() {
            if port != scheme_default {
                // This allocates, so we only do it if we absolutely have to.
                let host_port = format!("{}:{}", host, port);
                return from_str(&host_port);
            }
        }
    }

    // Fall back on no port (without allocating).
    from_str(host)
}

fn try_write_prelude(
    request: &AmendedRequest,
    state: &mut BodyState,
    w: &mut Writer,
) -> Result<(), Error> {
    let at_start = w.len();

    loop {
        if try_write_prelude_part(request, state, w) {
            continue;
        }

        let written = w.len() - at_start;

        if written > 0 || state.phase.is_body() {
            return Ok(());
        } else {
            return Err(Error::OutputOverflow);
        }
    }
}

fn try_write_prelude_part(request: &AmendedRequest, state: &mut BodyState, w: &mut Writer) -> bool {
    match &mut state.phase {
        RequestPhase::Line => {
            let success = do_write_send_line(request.prelude(), w);
            if success {
                state.phase = RequestPhase::Headers(0);
            }
            success
        }

        RequestPhase::Headers(index) => {
            let header_count = request.headers_len();
            let has_lines = request.lines().is_some_and(|lines| !lines.is_empty());

            if header_count > 0 {
                let headers = request.all_headers().skip(*index);
                do_write_headers(headers, index, header_count - 1, !has_lines, w);
            }

            if *index == header_count {
                if has_lines {
                    state.phase = RequestPhase::Lines(0);
                    return true;
                }
                state.phase = RequestPhase::Body;
            }
            false
        }

        RequestPhase::Lines(index) => {
            let lines = request.lines().map(|lines| (lines.encoded(), lines));
            let Some((encoded, lines)) = lines else {
                state.phase = RequestPhase::Body;
                return false;
            };
            // Usually the rest of the lines and the blank line go out in
            // one copy; line by line only when they do not fit.
            let start = index.checked_sub(1).map_or(0, |last| lines.encoded_end(last));
            let whole = encoded.is_some_and(|bytes| w.try_put([&bytes[start..], b"\r\n"]));
            if !whole {
                let last_index = lines.len() - 1;
                do_write_headers(lines.iter().skip(*index), index, last_index, true, w);
                if *index <= last_index {
                    return false;
                }
            }
            state.phase = RequestPhase::Body;
            false
        }

        // We're past the header.
        _ => false,
    }
}

fn do_write_send_line(line: (&Method, &str, Version), w: &mut Writer) -> bool {
    // Ensure origin-form request-target starts with "/" when only a query is present
    // per RFC 9112 §3.2.1 (@https://datatracker.ietf.org/doc/html/rfc9112#section-3.2.1).
    let need_initial_slash = line.1.starts_with('?');
    let slash = if need_initial_slash { "/" } else { "" };

    // The pieces are copied as they are: formatting them through core::fmt
    // cost more than the rest of the request head.
    match version_str(line.2) {
        Some(version) => w.try_put([
            line.0.as_str().as_bytes(),
            b" ",
            slash.as_bytes(),
            line.1.as_bytes(),
            b" ",
            version.as_bytes(),
            b"\r\n",
        ]),
        None => w.try_write(|w| {
            w.write_all(line.0.as_str().as_bytes())?;
            w.write_all(b" ")?;
            w.write_all(slash.as_bytes())?;
            w.write_all(line.1.as_bytes())?;
            write!(w, " {:?}\r\n", line.2)
        }),
    }
}

/// What `{:?}` writes for the versions it knows, without core::fmt.
fn version_str(version: Version) -> Option<&'static str> {
    Some(match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => return None,
    })
}

/// Writes the lines that fit; the last one ends the head when `ends_head`
/// (no header lines follow), going out together with the blank line.
fn do_write_headers<'a, I, N, V>(headers: I, index: &mut usize, last_index: usize, ends_head: bool, w: &mut Writer)
where
    I: Iterator<Item = (&'a N, &'a V)>,
    N: AsRef<[u8]> + ?Sized + 'a,
    V: AsRef<[u8]> + ?Sized + 'a,
{
    for h in headers {
        let end: &[u8] = if ends_head && *index == last_index { b"\r\n\r\n" } else { b"\r\n" };
        let success = w.try_put([h.0.as_ref(), b": ", h.1.as_ref(), end]);

        if success {
            *index += 1;
        } else {
            break;
        }
    }
}
