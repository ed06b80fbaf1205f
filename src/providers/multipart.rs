//! `multipart/mixed` bodies of HTTP messages, as Gmail's batch endpoint sends and answers them:
//! each part has its own headers (`Content-Type: application/http`, `Content-ID`) and holds one
//! whole HTTP request or response. Used by the Gmail adapter and by the sandbox that answers it.

use memchr::memmem;

/// Header lines as (name, value), in order.
pub type Headers = Vec<(String, String)>;

/// One part: its headers (names lower-cased) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The `boundary` parameter of a `multipart/…` Content-Type, unquoted.
pub fn boundary(content_type: &str) -> Option<&str> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
            .filter(|b| !b.is_empty())
    })
}

/// A body of `parts` between `--boundary` lines (RFC 2046), CRLF line ends.
pub fn encode(boundary: &str, parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        for (name, value) in &p.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&p.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// The parts of a multipart body; `None` when it has no closing delimiter or a part has no
/// header block. Bare LF line ends are accepted as well as CRLF.
pub fn decode(boundary: &str, body: &[u8]) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}");
    // A delimiter starts a line and is followed by `--`, padding or the line end.
    let starts: Vec<usize> = memmem::find_iter(body, delimiter.as_bytes())
        .filter(|&at| at == 0 || body[at - 1] == b'\n')
        .filter(|&at| {
            matches!(
                body.get(at + delimiter.len()),
                None | Some(b'-' | b'\r' | b'\n' | b' ' | b'\t')
            )
        })
        .collect();
    let mut parts = Vec::new();
    for (i, &from) in starts.iter().enumerate() {
        let after = from + delimiter.len();
        if body[after..].starts_with(b"--") {
            return Some(parts);
        }
        // An open part needs a delimiter after it; the line end before it belongs to it.
        let mut end = *starts.get(i + 1)?;
        if end > after && body[end - 1] == b'\n' {
            end -= 1;
            if end > after && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        let segment = skip_line_end(&body[after..end]);
        let (headers, content) = split_head(segment)?;
        parts.push(Part {
            headers,
            body: content.to_vec(),
        });
    }
    None
}

/// Drops the rest of a delimiter line (transport padding) and its line end.
fn skip_line_end(s: &[u8]) -> &[u8] {
    match memchr::memchr(b'\n', s) {
        Some(at) if s[..at].iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) => &s[at + 1..],
        _ => s,
    }
}

/// Header lines up to the first empty line, and what follows.
pub fn split_head(s: &[u8]) -> Option<(Headers, &[u8])> {
    let mut headers = Vec::new();
    let mut rest = s;
    loop {
        let at = memchr::memchr(b'\n', rest)?;
        let line = &rest[..at];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = &rest[at + 1..];
        if line.is_empty() {
            return Some((headers, rest));
        }
        let text = String::from_utf8_lossy(line);
        if let Some((name, value)) = text.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
}

/// An HTTP message inside a part: its first line, headers and body.
pub fn split_http(s: &[u8]) -> Option<(String, Headers, &[u8])> {
    let s = trim_leading_line_ends(s);
    let at = memchr::memchr(b'\n', s).unwrap_or(s.len());
    let first = String::from_utf8_lossy(s[..at].strip_suffix(b"\r").unwrap_or(&s[..at]))
        .trim()
        .to_string();
    let rest = s.get(at + 1..).unwrap_or_default();
    // A request with no headers and no body may end right after its first line.
    if rest.is_empty() {
        return Some((first, Vec::new(), rest));
    }
    let (headers, body) = split_head(rest)?;
    Some((first, headers, body))
}

fn trim_leading_line_ends(mut s: &[u8]) -> &[u8] {
    while let Some(rest) = s.strip_prefix(b"\r\n").or_else(|| s.strip_prefix(b"\n")) {
        s = rest;
    }
    s
}

/// The status code of `HTTP/1.1 200 OK`.
pub fn status_of(first_line: &str) -> Option<u16> {
    let mut words = first_line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_quoted_or_not() {
        assert_eq!(
            boundary("multipart/mixed; boundary=batch_foobarbaz"),
            Some("batch_foobarbaz")
        );
        assert_eq!(
            boundary("multipart/mixed; charset=utf-8; boundary=\"a b\""),
            Some("a b")
        );
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/mixed"), None);
    }

    /// The shape of Google's batch answer (developers.google.com/gmail/api/guides/batch).
    #[test]
    fn a_batch_answer_as_google_writes_it() {
        let body = "--batch_foobarbaz\r\n\
            Content-Type: application/http\r\n\
            Content-ID: <response-item1>\r\n\
            \r\n\
            HTTP/1.1 200 OK\r\n\
            Content-Type: application/json\r\n\
            Content-Length: 11\r\n\
            \r\n\
            {\"id\":\"a\"}\r\n\
            --batch_foobarbaz\r\n\
            Content-Type: application/http\r\n\
            Content-ID: <response-item2>\r\n\
            \r\n\
            HTTP/1.1 404 Not Found\r\n\
            Content-Type: application/json\r\n\
            \r\n\
            {\"error\":{\"code\":404}}\r\n\
            --batch_foobarbaz--\r\n";
        let parts = decode("batch_foobarbaz", body.as_bytes()).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].header("content-id"), Some("<response-item1>"));
        let (first, headers, inner) = split_http(&parts[0].body).expect("http");
        assert_eq!(status_of(&first), Some(200));
        assert_eq!(header(&headers, "Content-Type"), Some("application/json"));
        assert_eq!(inner, b"{\"id\":\"a\"}");
        let (first, _, inner) = split_http(&parts[1].body).expect("http");
        assert_eq!(status_of(&first), Some(404));
        assert_eq!(inner, b"{\"error\":{\"code\":404}}");
    }

    #[test]
    fn encode_and_decode_agree_and_bodies_may_hold_dashes() {
        let parts = vec![
            Part {
                headers: vec![("content-type".into(), "application/http".into())],
                body: b"GET /gmail/v1/users/me/messages/x?format=raw\r\n".to_vec(),
            },
            Part {
                headers: vec![("content-id".into(), "<item2>".into())],
                body: b"line one\r\n--not-the-boundary\r\n-- b".to_vec(),
            },
        ];
        let body = encode("b", &parts);
        assert_eq!(decode("b", &body), Some(parts));
    }

    #[test]
    fn unclosed_or_headless_bodies_are_refused() {
        assert_eq!(decode("b", b"--b\r\nContent-Type: x\r\n\r\nbody\r\n"), None);
        assert_eq!(decode("b", b"no delimiter at all"), None);
        assert_eq!(decode("b", b"--b--\r\n"), Some(Vec::new()));
    }

    #[test]
    fn a_request_line_alone_is_a_request() {
        let (first, headers, body) = split_http(b"\r\nGET /x?format=raw HTTP/1.1").expect("req");
        assert_eq!(first, "GET /x?format=raw HTTP/1.1");
        assert!(headers.is_empty() && body.is_empty());
    }
}
