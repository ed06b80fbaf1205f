//! Signatures: the HTML allow-list they (and templates, and quoted originals) are cleaned with,
//! the `signature` choice of a send, and where the signature goes in the body.
//!
//! Order of an outgoing body: what the user (or the template) wrote, then the signature, then
//! the quoted original of a reply or forward. In the text part the signature follows the
//! conventional `-- ` line. A template fills the first part only, so it never replaces the
//! signature.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde_json::Value;

use super::template::escape_html;

// The read side's `web::sanitize` is not on main yet; until the lead unifies them, composing
// cleans with its own ammonia allow-list, kept conservative: formatting, links, images and
// tables; no scripts, styles sheets, forms, frames or event handlers; inline `style` limited to
// typographic and box properties.
fn cleaner() -> &'static ammonia::Builder<'static> {
    static CLEANER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    CLEANER.get_or_init(|| {
        let tags: HashSet<&str> = [
            "a",
            "abbr",
            "b",
            "blockquote",
            "br",
            "caption",
            "center",
            "code",
            "col",
            "colgroup",
            "dd",
            "del",
            "div",
            "dl",
            "dt",
            "em",
            "font",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "hr",
            "i",
            "img",
            "ins",
            "kbd",
            "li",
            "ol",
            "p",
            "pre",
            "q",
            "s",
            "small",
            "span",
            "strike",
            "strong",
            "sub",
            "sup",
            "table",
            "tbody",
            "td",
            "tfoot",
            "th",
            "thead",
            "tr",
            "u",
            "ul",
        ]
        .into_iter()
        .collect();
        let mut tag_attributes: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut attrs = |tag: &'static str, list: &[&'static str]| {
            tag_attributes.insert(tag, list.iter().copied().collect());
        };
        attrs("a", &["href", "title", "target"]);
        attrs("img", &["src", "alt", "title", "width", "height", "border"]);
        attrs(
            "table",
            &["width", "border", "cellpadding", "cellspacing", "bgcolor"],
        );
        attrs(
            "td",
            &[
                "colspan", "rowspan", "width", "height", "valign", "align", "bgcolor",
            ],
        );
        attrs(
            "th",
            &[
                "colspan", "rowspan", "width", "height", "valign", "align", "bgcolor",
            ],
        );
        attrs("font", &["color", "face", "size"]);
        attrs("col", &["width", "span"]);
        let style_properties: HashSet<&str> = [
            "color",
            "background-color",
            "font",
            "font-family",
            "font-size",
            "font-style",
            "font-weight",
            "line-height",
            "letter-spacing",
            "text-align",
            "text-decoration",
            "text-transform",
            "vertical-align",
            "white-space",
            "margin",
            "margin-top",
            "margin-right",
            "margin-bottom",
            "margin-left",
            "padding",
            "padding-top",
            "padding-right",
            "padding-bottom",
            "padding-left",
            "border",
            "border-top",
            "border-right",
            "border-bottom",
            "border-left",
            "border-color",
            "border-style",
            "border-width",
            "border-radius",
            "border-collapse",
            "width",
            "max-width",
            "height",
            "max-height",
        ]
        .into_iter()
        .collect();
        let mut b = ammonia::Builder::default();
        b.tags(tags)
            .tag_attributes(tag_attributes)
            .generic_attributes(
                ["style", "dir", "align", "title", "lang"]
                    .into_iter()
                    .collect(),
            )
            .filter_style_properties(style_properties)
            .url_schemes(
                ["http", "https", "mailto", "tel", "cid", "data"]
                    .into_iter()
                    .collect(),
            )
            .link_rel(Some("noopener noreferrer"))
            .strip_comments(true)
            .attribute_filter(|element, attribute, value| {
                let lower = value.trim().to_ascii_lowercase();
                match (element, attribute) {
                    // data: only for raster images (a logo pasted into a signature), never links.
                    (_, "href") if lower.starts_with("data:") => None,
                    ("img", "src") if lower.starts_with("data:") => {
                        let raster = [
                            "data:image/png",
                            "data:image/jpeg",
                            "data:image/gif",
                            "data:image/webp",
                        ]
                        .iter()
                        .any(|p| lower.starts_with(p));
                        raster.then_some(Cow::Borrowed(value))
                    }
                    (_, "src") if lower.starts_with("data:") => None,
                    // Old engines ran script from CSS: drop any declaration that could load or
                    // run something; the property allow-list then applies to the rest.
                    (_, "style") => {
                        let kept: Vec<&str> = value
                            .split(';')
                            .filter(|d| {
                                let d = d.to_ascii_lowercase();
                                !(d.contains("expression")
                                    || d.contains("javascript:")
                                    || d.contains("url(")
                                    || d.contains('\\'))
                            })
                            .collect();
                        Some(Cow::Owned(kept.join(";")))
                    }
                    _ => Some(Cow::Borrowed(value)),
                }
            });
        b
    })
}

/// HTML made safe to store and to show: the allow-list above.
pub fn sanitize_html(html: &str) -> String {
    cleaner().clean(html).to_string()
}

/// `signature` of a send: `true` or absent = the default signature (if the user has one),
/// `false` = none, a number (or numeric string) = that signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureChoice {
    Default,
    None,
    Id(i64),
}

impl SignatureChoice {
    pub fn from_value(v: Option<&Value>) -> Result<SignatureChoice, String> {
        let bad = || "signature must be true, false or a signature id".to_string();
        match v {
            None | Some(Value::Null) | Some(Value::Bool(true)) => Ok(SignatureChoice::Default),
            Some(Value::Bool(false)) => Ok(SignatureChoice::None),
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|i| *i > 0)
                .map(SignatureChoice::Id)
                .ok_or_else(bad),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|i| *i > 0)
                .map(SignatureChoice::Id)
                .ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }
}

/// A body in both forms; either may be missing on input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    pub html: Option<String>,
    pub text: Option<String>,
}

/// The quoted original of a reply or forward, in both forms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quote {
    pub html: String,
    pub text: String,
}

pub const SIGNATURE_SEPARATOR: &str = "-- ";

/// Body + signature + quote. With HTML anywhere the result has both forms (the text one built
/// here so it keeps the `-- ` line and the `> ` quoting); a text-only body stays text-only.
pub fn assemble(body: &Body, signature_html: Option<&str>, quote: Option<&Quote>) -> Body {
    let signature_html = signature_html.filter(|s| !s.trim().is_empty());
    let html_wanted = body.html.is_some();
    let user_text = match (&body.text, &body.html) {
        (Some(t), _) => t.clone(),
        (None, Some(h)) => crate::sync::parse::html_to_text(h),
        (None, None) => String::new(),
    };

    let mut text = user_text.trim_end().to_string();
    if let Some(sig) = signature_html {
        let sig_text = crate::sync::parse::html_to_text(sig);
        text.push_str(if text.is_empty() { "" } else { "\n\n" });
        text.push_str(SIGNATURE_SEPARATOR);
        text.push('\n');
        text.push_str(&sig_text);
    }
    if let Some(q) = quote {
        text.push_str(if text.is_empty() { "" } else { "\n\n" });
        text.push_str(&q.text);
    }

    let html = html_wanted.then(|| {
        let mut html = body.html.clone().unwrap_or_default();
        if let Some(sig) = signature_html {
            html.push_str("<br><div class=\"em-signature\">");
            html.push_str(sig);
            html.push_str("</div>");
        }
        if let Some(q) = quote {
            html.push_str("<br>");
            html.push_str(&q.html);
        }
        html
    });
    Body {
        html,
        text: Some(text),
    }
}

/// Text as HTML: escaped, line breaks kept.
pub fn text_to_html(text: &str) -> String {
    escape_html(text)
        .replace("\r\n", "\n")
        .replace('\n', "<br>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sanitizer_keeps_formatting_and_drops_script() {
        let dirty = "<div style=\"color: red; position: fixed; background: url(javascript:x)\" onclick=\"x()\">\
            <b>Zoë</b> <a href=\"https://x.test\" onmouseover=\"y()\">site</a> \
            <a href=\"javascript:alert(1)\">js</a> <a href=\"data:text/html,x\">data</a>\
            <img src=\"cid:logo\" alt=\"Logo\"><img src=\"data:image/png;base64,AAAA\">\
            <img src=\"data:image/svg+xml,<svg onload=x>\"><script>alert(1)</script>\
            <style>*{}</style><iframe src=\"https://x.test\"></iframe>\
            <table width=\"100\"><tr><td colspan=\"2\" style=\"padding: 4px\">c</td></tr></table>\
            <p style=\"width: expression(alert(1))\">e</p></div>";
        let clean = sanitize_html(dirty);
        for gone in [
            "onclick",
            "onmouseover",
            "javascript",
            "<script",
            "alert(1)</",
            "<style",
            "<iframe",
            "position",
            "data:text",
            "svg",
            "expression",
            "url(",
        ] {
            assert!(!clean.contains(gone), "{gone} in {clean}");
        }
        for kept in [
            "<b>Zoë</b>",
            "href=\"https://x.test\"",
            "rel=\"noopener noreferrer\"",
            "src=\"cid:logo\"",
            "src=\"data:image/png;base64,AAAA\"",
            "style=\"color:red\"",
            "colspan=\"2\"",
            "style=\"padding:4px\"",
            "<table width=\"100\">",
        ] {
            assert!(clean.contains(kept), "{kept} not in {clean}");
        }
    }

    #[test]
    fn choice_from_json() {
        assert_eq!(
            SignatureChoice::from_value(None),
            Ok(SignatureChoice::Default)
        );
        assert_eq!(
            SignatureChoice::from_value(Some(&json!(true))),
            Ok(SignatureChoice::Default)
        );
        assert_eq!(
            SignatureChoice::from_value(Some(&json!(false))),
            Ok(SignatureChoice::None)
        );
        assert_eq!(
            SignatureChoice::from_value(Some(&json!(7))),
            Ok(SignatureChoice::Id(7))
        );
        assert_eq!(
            SignatureChoice::from_value(Some(&json!("7"))),
            Ok(SignatureChoice::Id(7))
        );
        for bad in [json!(0), json!(-1), json!("x"), json!([1]), json!(1.5)] {
            assert!(SignatureChoice::from_value(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn signature_goes_between_body_and_quote() {
        let quote = Quote {
            html: "<div class=\"em-quote\">Q</div>".into(),
            text: "On Mon, Ann wrote:\n> hi".into(),
        };
        let out = assemble(
            &Body {
                html: Some("<p>Thanks!</p>".into()),
                text: None,
            },
            Some("<p>Zoë<br>ACME</p>"),
            Some(&quote),
        );
        assert_eq!(
            out.html.as_deref(),
            Some("<p>Thanks!</p><br><div class=\"em-signature\"><p>Zoë<br>ACME</p></div><br><div class=\"em-quote\">Q</div>")
        );
        assert_eq!(
            out.text.as_deref(),
            Some("Thanks!\n\n-- \nZoë\nACME\n\nOn Mon, Ann wrote:\n> hi")
        );
    }

    #[test]
    fn text_only_and_no_signature() {
        let out = assemble(
            &Body {
                html: None,
                text: Some("Plain body\n\n".into()),
            },
            Some("<b>Sig</b>"),
            None,
        );
        assert_eq!(out.html, None);
        assert_eq!(out.text.as_deref(), Some("Plain body\n\n-- \nSig"));
        let out = assemble(
            &Body {
                html: Some("<p>A</p>".into()),
                text: Some("A (text)".into()),
            },
            Some("   "),
            None,
        );
        assert_eq!(out.html.as_deref(), Some("<p>A</p>"));
        assert_eq!(out.text.as_deref(), Some("A (text)"));
        // Nothing written: the signature alone.
        let out = assemble(&Body::default(), Some("S"), None);
        assert_eq!(out.text.as_deref(), Some("-- \nS"));
        assert_eq!(text_to_html("a < b\nc"), "a &lt; b<br>c");
    }
}
