//! `{{variable}}` templates for subjects and bodies.
//!
//! Syntax: `{{name}}`, `{{ name }}` (spaces inside the braces are fine), nested keys with dots
//! (`{{recipient.name}}`, `{{order.customer.city}}`); a key is letters, digits, `_` and `-`,
//! not starting with a digit or `-`. `\{{` writes a literal `{{`. Anything else between braces
//! is left as it is.
//!
//! Values: from the request's `variables`, plus `recipient` (`name`, `email`, merged over a
//! `recipient` object in `variables`) and `user` (`nickname`, `email`: the current user, which
//! `variables` cannot override). Strings as they are, numbers and booleans as JSON writes them,
//! `null` as nothing. In HTML they are HTML-escaped; in the subject and text as they are.
//! An unknown variable (or an object/array value) stays in the output exactly as written and is
//! reported, so nothing is silently dropped.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Values HTML-escaped (`<`, `>`, `&`, `"`, `'`).
    Html,
    /// Values as they are (subject, text).
    None,
}

/// The recipient a message is rendered for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientValues {
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The current user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserValues {
    pub nickname: Option<String>,
    pub email: Option<String>,
}

/// What placeholders are looked up in.
#[derive(Debug, Clone, Default)]
pub struct Context {
    root: Map<String, Value>,
}

impl Context {
    pub fn new(
        variables: Option<&Map<String, Value>>,
        recipient: &RecipientValues,
        user: &UserValues,
    ) -> Context {
        let mut root = variables.cloned().unwrap_or_default();
        let mut rec = match root.remove("recipient") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if let Some(n) = &recipient.name {
            rec.insert("name".into(), Value::String(n.clone()));
        }
        if let Some(e) = &recipient.email {
            rec.insert("email".into(), Value::String(e.clone()));
        }
        if !rec.is_empty() {
            root.insert("recipient".into(), Value::Object(rec));
        }
        // The user's own values come from the sidecar's caller, never from `variables`.
        root.remove("user");
        let mut u = Map::new();
        if let Some(n) = &user.nickname {
            u.insert("nickname".into(), Value::String(n.clone()));
        }
        if let Some(e) = &user.email {
            u.insert("email".into(), Value::String(e.clone()));
        }
        if !u.is_empty() {
            root.insert("user".into(), Value::Object(u));
        }
        Context { root }
    }

    fn lookup(&self, path: &str) -> Option<String> {
        let mut parts = path.split('.');
        let mut cur = self.root.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_object()?.get(p)?;
        }
        match cur {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => Some(String::new()),
            Value::Array(_) | Value::Object(_) => None,
        }
    }
}

/// One rendered text and the variables it did not know, in order of first appearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub output: String,
    pub missing: Vec<String>,
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|seg| {
            seg.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && seg
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn render(template: &str, ctx: &Context, escape: Escape) -> Rendered {
    let mut out = String::with_capacity(template.len());
    let mut missing: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        // `\{{` is a literal `{{`.
        if rest[..open].ends_with('\\') {
            out.push_str(&rest[..open - 1]);
            out.push_str("{{");
            rest = &rest[open + 2..];
            continue;
        }
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let key = after[..close].trim();
        let written = &rest[open..open + 2 + close + 2];
        if valid_key(key) {
            match ctx.lookup(key) {
                Some(v) => match escape {
                    Escape::Html => out.push_str(&escape_html(&v)),
                    Escape::None => out.push_str(&v),
                },
                None => {
                    out.push_str(written);
                    if !missing.iter().any(|m| m == key) {
                        missing.push(key.to_string());
                    }
                }
            }
            rest = &after[close + 2..];
        } else {
            // Not a placeholder: keep one brace and look again from the next (`{{{a}}}`).
            out.push('{');
            rest = &rest[open + 1..];
        }
    }
    out.push_str(rest);
    Rendered {
        output: out,
        missing,
    }
}

/// Template HTML cleaned like a signature, placeholders kept as written: they are masked with
/// plain tokens first, because the CSS filter would otherwise cut `{{colour}}` out of a `style`.
pub fn sanitize_template_html(html: &str) -> String {
    let nonce = crate::crypto::random_token(6)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let mut masked = String::with_capacity(html.len());
    let mut originals: Vec<&str> = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        let end = open + 2 + close + 2;
        masked.push_str(&rest[..open]);
        masked.push_str(&format!("emtpl{nonce}x{}x", originals.len()));
        originals.push(&rest[open..end]);
        rest = &rest[end..];
    }
    masked.push_str(rest);
    let mut clean = super::signature::sanitize_html(&masked);
    // Highest index first, so `…x1x` is not taken for the start of `…x12x`.
    for (i, original) in originals.iter().enumerate().rev() {
        let token = format!("emtpl{nonce}x{i}x");
        clean = clean.replace(&token, &escape_placeholder(original));
    }
    clean
}

/// `{{ a }}` as it may appear inside HTML: only `&`, `<`, `>` and `"` need care, and keys
/// contain none of them; whatever else was between the braces is escaped.
fn escape_placeholder(p: &str) -> String {
    p.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A message's template parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateParts {
    pub subject: String,
    pub html: String,
    /// Rendered on its own when given; otherwise the text comes from the rendered HTML.
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMessage {
    pub subject: String,
    pub html: String,
    pub text: String,
    pub missing: Vec<String>,
}

pub fn render_message(parts: &TemplateParts, ctx: &Context) -> RenderedMessage {
    let subject = render(&parts.subject, ctx, Escape::None);
    let html = render(&parts.html, ctx, Escape::Html);
    let text = match &parts.text {
        Some(t) => render(t, ctx, Escape::None),
        None => Rendered {
            output: crate::sync::parse::html_to_text(&html.output),
            missing: Vec::new(),
        },
    };
    let mut missing = subject.missing;
    for m in html.missing.into_iter().chain(text.missing) {
        if !missing.contains(&m) {
            missing.push(m);
        }
    }
    RenderedMessage {
        subject: subject.output,
        html: html.output,
        text: text.output,
        missing,
    }
}

/// The 400 a send answers when variables are missing and the caller did not allow it.
pub fn missing_error(missing: &[String]) -> Option<crate::error::ApiError> {
    if missing.is_empty() {
        return None;
    }
    Some(crate::error::ApiError::invalid(format!(
        "Unknown template variables: {}; pass them in variables, or send with allowMissingVariables: true",
        missing
            .iter()
            .map(|m| format!("{{{{{m}}}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(vars: Value) -> Context {
        Context::new(
            vars.as_object(),
            &RecipientValues {
                name: Some("Ann <Lee>".into()),
                email: Some("ann@x.test".into()),
            },
            &UserValues {
                nickname: Some("Zoë".into()),
                email: Some("zoe@x.test".into()),
            },
        )
    }

    #[test]
    fn fills_variables_recipient_user_and_nested_keys() {
        let c = ctx(json!({
            "company": "ACME & Co",
            "order": {"id": 42, "paid": true, "customer": {"city": "Köln"}, "note": null},
            "recipient": {"company": "Globex", "name": "overridden"},
            "user": {"email": "spoof@x.test"},
        }));
        let r = render(
            "Hi {{recipient.name}} ({{ recipient.email }}) of {{recipient.company}}: order \
             {{order.id}} paid={{order.paid}} city={{  order.customer.city  }} note=[{{order.note}}] \
             from {{user.nickname}} <{{user.email}}> at {{company}}",
            &c,
            Escape::None,
        );
        assert_eq!(
            r.output,
            "Hi Ann <Lee> (ann@x.test) of Globex: order 42 paid=true city=Köln note=[] \
             from Zoë <zoe@x.test> at ACME & Co"
        );
        assert!(r.missing.is_empty());
    }

    #[test]
    fn html_escapes_values_not_the_template() {
        let c = ctx(json!({"x": "<script>alert('1')</script> & \"q\""}));
        let r = render(
            "<p title=\"{{x}}\">{{x}} / {{recipient.name}}</p>",
            &c,
            Escape::Html,
        );
        assert_eq!(
            r.output,
            "<p title=\"&lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt; &amp; &quot;q&quot;\">\
             &lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt; &amp; &quot;q&quot; / Ann &lt;Lee&gt;</p>"
        );
    }

    #[test]
    fn unknown_variables_stay_visible_and_are_reported_once() {
        let c = ctx(json!({"obj": {"a": 1}, "list": [1]}));
        let r = render(
            "A {{ missing }} B {{missing}} C {{obj}} D {{list}} E {{obj.b}} F {{recipient.phone}}",
            &c,
            Escape::Html,
        );
        assert_eq!(
            r.output,
            "A {{ missing }} B {{missing}} C {{obj}} D {{list}} E {{obj.b}} F {{recipient.phone}}"
        );
        assert_eq!(
            r.missing,
            vec!["missing", "obj", "list", "obj.b", "recipient.phone"]
        );
    }

    #[test]
    fn escapes_and_non_placeholders() {
        let c = ctx(json!({"a": "A"}));
        let cases = [
            ("\\{{a}} {{a}}", "{{a}} A"),
            ("{{ not a key }} {{a}}", "{{ not a key }} A"),
            ("{{}} {{1abc}} {{a.}}", "{{}} {{1abc}} {{a.}}"),
            ("open {{a", "open {{a"),
            ("{{{a}}}", "{A}"),
            ("{ {a} }", "{ {a} }"),
            ("no braces", "no braces"),
            ("ünï {{a}} ✓", "ünï A ✓"),
        ];
        for (t, want) in cases {
            let r = render(t, &c, Escape::None);
            assert_eq!(r.output, want, "{t}");
            assert!(r.missing.is_empty(), "{t}: {:?}", r.missing);
        }
    }

    #[test]
    fn sanitizing_keeps_placeholders_everywhere() {
        let html = "<p style=\"color: {{colour}}; font-size: 12px\" onclick=\"x()\">Hi {{ recipient.name }}</p>\
            <a href=\"https://x.test/?u={{user.email}}&amp;n={{recipient.name}}\">{{ label }}</a>\
            <img src=\"{{logo}}\" alt=\"{{alt}}\"><script>{{evil}}</script>{{ <b>odd</b> }}";
        let clean = sanitize_template_html(html);
        assert_eq!(
            clean,
            "<p style=\"color:{{colour}};font-size:12px\">Hi {{ recipient.name }}</p>\
             <a href=\"https://x.test/?u={{user.email}}&amp;n={{recipient.name}}\" rel=\"noopener noreferrer\">{{ label }}</a>\
             <img src=\"{{logo}}\" alt=\"{{alt}}\">{{ &lt;b&gt;odd&lt;/b&gt; }}"
        );
        let c = ctx(json!({"colour": "red", "label": "L", "logo": "cid:l", "alt": "A"}));
        let r = render(&clean, &c, Escape::Html);
        assert!(r.output.contains("style=\"color:red;"), "{}", r.output);
        assert!(
            r.output.contains("?u=zoe@x.test&amp;n=Ann &lt;Lee&gt;"),
            "{}",
            r.output
        );
        assert!(!r.output.contains("evil"));
    }

    #[test]
    fn whole_message() {
        let c = ctx(json!({"first": "Bob & Co"}));
        let m = render_message(
            &TemplateParts {
                subject: "Hello {{first}} {{nope}}".into(),
                html: "<p>Dear {{first}},</p><p>{{other}}</p>".into(),
                text: None,
            },
            &c,
        );
        assert_eq!(m.subject, "Hello Bob & Co {{nope}}");
        assert_eq!(m.html, "<p>Dear Bob &amp; Co,</p><p>{{other}}</p>");
        assert_eq!(m.text, "Dear Bob & Co,\n{{other}}");
        assert_eq!(m.missing, vec!["nope", "other"]);
        let err = missing_error(&m.missing).expect("error");
        assert!(
            err.message.contains("{{nope}}, {{other}}"),
            "{}",
            err.message
        );
        assert!(missing_error(&[]).is_none());

        let with_text = render_message(
            &TemplateParts {
                subject: String::new(),
                html: "<p>{{first}}</p>".into(),
                text: Some("T {{first}} {{t}}".into()),
            },
            &c,
        );
        assert_eq!(with_text.text, "T Bob & Co {{t}}");
        assert_eq!(with_text.missing, vec!["t"]);
    }
}
