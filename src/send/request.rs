//! The values of a send (`mailMessages:send`, and a draft's fields) parsed at the edge, and the
//! pure pipeline from a parsed request plus what the database holds (source message, signature,
//! template, uploaded files) to an [`OutgoingMessage`]. The send action only has to load those,
//! call [`assemble`], build the MIME and hand it to the provider.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::address::{parse_field, AddressErrors, Mailbox, Recipients};
use super::compose::{Composed, Mode};
use super::mime::{Attachment, InlineImage, OutgoingMessage};
use super::signature::{assemble as assemble_body, Body, SignatureChoice};
use super::template::{render_message, Context, RecipientValues, TemplateParts, UserValues};

pub const MAX_SUBJECT_CHARS: usize = 998;
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// An attachment named in the request: an upload (`12` or `{"uploadId": 12}`), shown inline
/// when it has a `contentId` (`{"uploadId": 13, "contentId": "logo"}` for `<img src="cid:logo">`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentSpec {
    pub upload_id: i64,
    pub content_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AttachmentObject {
    upload_id: Value,
    #[serde(default)]
    content_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawValues {
    account_id: Option<Value>,
    from: Option<Value>,
    to: Option<Value>,
    cc: Option<Value>,
    bcc: Option<Value>,
    reply_to: Option<Value>,
    subject: Option<String>,
    html: Option<String>,
    text: Option<String>,
    attachments: Option<Vec<Value>>,
    mode: Option<String>,
    source_message_id: Option<Value>,
    draft_id: Option<Value>,
    signature: Option<Value>,
    template_id: Option<Value>,
    variables: Option<Map<String, Value>>,
    #[serde(default)]
    allow_missing_variables: bool,
    idempotency_key: Option<String>,
}

/// A send request, every field checked. Recipients left out (`None`) are filled by a reply's
/// composition; given ones (even empty) are used as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    pub account_id: i64,
    pub from: Option<Mailbox>,
    pub to: Option<Vec<Mailbox>>,
    pub cc: Option<Vec<Mailbox>>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub attachments: Vec<AttachmentSpec>,
    /// `None` for a new message.
    pub mode: Option<Mode>,
    pub source_message_id: Option<i64>,
    pub draft_id: Option<i64>,
    pub signature: SignatureChoice,
    pub template_id: Option<i64>,
    pub variables: Option<Map<String, Value>>,
    pub allow_missing_variables: bool,
    pub idempotency_key: Option<String>,
}

fn id_value(field: &str, v: &Value, errors: &mut Vec<String>) -> Option<i64> {
    let id = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .filter(|i| *i > 0);
    if id.is_none() {
        errors.push(format!("{field} must be a record id, got {v}"));
    }
    id
}

fn optional_id(field: &str, v: Option<&Value>, errors: &mut Vec<String>) -> Option<i64> {
    match v {
        None | Some(Value::Null) => None,
        Some(v) => id_value(field, v, errors),
    }
}

/// Parses `values`, reporting every problem at once (addresses of all fields included) as one
/// message: `to[1]: "x" is not an email address (…); accountId is required`.
pub fn parse(values: &Value) -> Result<SendRequest, AddressErrors> {
    let v = if values.is_null() {
        Value::Object(Map::new())
    } else {
        values.clone()
    };
    let raw: RawValues = serde_json::from_value(v)
        .map_err(|e| AddressErrors(vec![format!("Invalid values: {e}")]))?;
    let mut errors = Vec::new();

    let account_id = match &raw.account_id {
        None | Some(Value::Null) => {
            errors.push("accountId is required".to_string());
            None
        }
        Some(v) => id_value("accountId", v, &mut errors),
    };
    let mut field = |name: &str, value: Option<&Value>| match parse_field(name, value) {
        Ok(list) => list,
        Err(e) => {
            errors.extend(e.0);
            Vec::new()
        }
    };
    let given = |v: &Option<Value>| v.as_ref().filter(|v| !v.is_null()).is_some();
    let from = field("from", raw.from.as_ref());
    let to = field("to", raw.to.as_ref());
    let cc = field("cc", raw.cc.as_ref());
    let bcc = field("bcc", raw.bcc.as_ref());
    let reply_to = field("replyTo", raw.reply_to.as_ref());
    if from.len() > 1 {
        errors.push("from must be one address".into());
    }

    let mode = match raw.mode.as_deref() {
        None => None,
        Some(m) => match Mode::parse(m) {
            Ok(mode) => mode,
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    let source_message_id = optional_id(
        "sourceMessageId",
        raw.source_message_id.as_ref(),
        &mut errors,
    );
    match (mode, source_message_id) {
        (Some(_), None) => {
            errors.push("sourceMessageId is required for reply, replyAll and forward".into())
        }
        (None, Some(_)) => {
            errors.push("sourceMessageId needs mode reply, replyAll or forward".into())
        }
        _ => {}
    }
    let draft_id = optional_id("draftId", raw.draft_id.as_ref(), &mut errors);
    let template_id = optional_id("templateId", raw.template_id.as_ref(), &mut errors);

    if let Some(s) = &raw.subject {
        if s.chars().any(|c| c == '\r' || c == '\n') {
            errors.push("subject must be one line".into());
        } else if s.chars().count() > MAX_SUBJECT_CHARS {
            errors.push(format!(
                "subject is longer than {MAX_SUBJECT_CHARS} characters"
            ));
        }
    }
    let signature = SignatureChoice::from_value(raw.signature.as_ref()).unwrap_or_else(|e| {
        errors.push(e);
        SignatureChoice::None
    });

    let mut attachments = Vec::new();
    for (i, a) in raw.attachments.iter().flatten().enumerate() {
        let at = format!("attachments[{i}]");
        match a {
            Value::Object(_) => match serde_json::from_value::<AttachmentObject>(a.clone()) {
                Ok(obj) => {
                    let content_id = obj
                        .content_id
                        .map(|c| c.trim().trim_matches(['<', '>']).to_string());
                    if content_id
                        .as_deref()
                        .is_some_and(|c| c.is_empty() || c.chars().any(|ch| !ch.is_ascii_graphic()))
                    {
                        errors.push(format!(
                            "{at}.contentId must be printable ASCII without spaces"
                        ));
                    }
                    if let Some(upload_id) =
                        id_value(&format!("{at}.uploadId"), &obj.upload_id, &mut errors)
                    {
                        attachments.push(AttachmentSpec {
                            upload_id,
                            content_id,
                        });
                    }
                }
                Err(e) => errors.push(format!(
                    "{at}: expected {{\"uploadId\", \"contentId\"?}}: {e}"
                )),
            },
            other => {
                if let Some(upload_id) = id_value(&at, other, &mut errors) {
                    attachments.push(AttachmentSpec {
                        upload_id,
                        content_id: None,
                    });
                }
            }
        }
    }

    let idempotency_key = match raw.idempotency_key.map(|k| k.trim().to_string()) {
        Some(k) if k.is_empty() => None,
        Some(k) if k.len() > MAX_IDEMPOTENCY_KEY || k.chars().any(char::is_control) => {
            errors.push(format!(
                "idempotencyKey must be at most {MAX_IDEMPOTENCY_KEY} characters without control characters"
            ));
            None
        }
        other => other,
    };

    // Dedupe across the fields as a send would see them.
    let mut r = Recipients {
        to,
        cc,
        bcc,
        reply_to,
    };
    r.dedupe();
    if r.count() > super::address::MAX_RECIPIENTS {
        errors.push(format!(
            "{} recipients: at most {} per message",
            r.count(),
            super::address::MAX_RECIPIENTS
        ));
    }

    if !errors.is_empty() {
        return Err(AddressErrors(errors));
    }
    Ok(SendRequest {
        account_id: account_id.unwrap_or_default(),
        from: from.into_iter().next(),
        to: given(&raw.to).then_some(r.to),
        cc: given(&raw.cc).then_some(r.cc),
        bcc: r.bcc,
        reply_to: r.reply_to,
        subject: raw.subject,
        html: raw.html,
        text: raw.text,
        attachments,
        mode,
        source_message_id,
        draft_id,
        signature,
        template_id,
        variables: raw.variables,
        allow_missing_variables: raw.allow_missing_variables,
        idempotency_key,
    })
}

/// What the send action loaded for a request.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The identity to send as (the account's address or a verified alias), already checked.
    pub from: Option<Mailbox>,
    /// The reply/forward composition of the source, when `mode` is set.
    pub composed: Option<Composed>,
    /// The resolved signature's HTML, if any.
    pub signature_html: Option<String>,
    pub template: Option<TemplateParts>,
    pub user: UserValues,
    /// The uploads of `attachments`, in order, with their bytes.
    pub files: Vec<(AttachmentSpec, Attachment)>,
    /// Forwarded attachments fetched from the provider.
    pub forwarded: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssembleError {
    /// Nobody to send to.
    NoRecipients,
    NoSender,
    /// Template variables without a value, and the request did not allow that.
    MissingVariables(Vec<String>),
}

impl From<AssembleError> for crate::error::ApiError {
    fn from(e: AssembleError) -> Self {
        match e {
            AssembleError::NoRecipients => {
                crate::error::ApiError::invalid("Add at least one recipient in to, cc or bcc")
            }
            AssembleError::NoSender => crate::error::ApiError::invalid("from is required"),
            AssembleError::MissingVariables(m) => super::template::missing_error(&m)
                .unwrap_or_else(|| crate::error::ApiError::invalid("Unknown template variables")),
        }
    }
}

/// Request + inputs → the message: recipients (given, else the composition's), subject (given,
/// else the template's, else the composition's), body (template or given, then signature, then
/// the quote), threading headers, attachments and inline images. Returns the message and the
/// template variables that had no value (empty when allowed and none missing).
pub fn assemble(
    req: &SendRequest,
    inputs: Inputs,
    require_recipients: bool,
) -> Result<(OutgoingMessage, Vec<String>), AssembleError> {
    let from = inputs
        .from
        .or_else(|| req.from.clone())
        .ok_or(AssembleError::NoSender)?;
    let mut m = OutgoingMessage::new(from);
    let composed = inputs.composed.as_ref();
    m.to = req
        .to
        .clone()
        .or_else(|| composed.map(|c| c.to.clone()))
        .unwrap_or_default();
    m.cc = req
        .cc
        .clone()
        .or_else(|| composed.map(|c| c.cc.clone()))
        .unwrap_or_default();
    m.bcc = req.bcc.clone();
    m.reply_to = req.reply_to.clone();
    let mut recipients = Recipients {
        to: std::mem::take(&mut m.to),
        cc: std::mem::take(&mut m.cc),
        bcc: std::mem::take(&mut m.bcc),
        reply_to: std::mem::take(&mut m.reply_to),
    };
    recipients.dedupe();
    m.to = recipients.to;
    m.cc = recipients.cc;
    m.bcc = recipients.bcc;
    m.reply_to = recipients.reply_to;
    if require_recipients && m.to.is_empty() && m.cc.is_empty() && m.bcc.is_empty() {
        return Err(AssembleError::NoRecipients);
    }

    // The template renders for the first recipient (a mass mail renders once per recipient).
    let first = m.to.first().or(m.cc.first()).or(m.bcc.first());
    let mut missing = Vec::new();
    let mut body = Body {
        html: req.html.clone(),
        text: req.text.clone(),
    };
    let mut subject = req.subject.clone();
    if let Some(t) = &inputs.template {
        let ctx = Context::new(
            req.variables.as_ref(),
            &RecipientValues {
                name: first.and_then(|f| f.name.clone()),
                email: first.map(|f| f.address.to_unicode()),
            },
            &inputs.user,
        );
        let r = render_message(t, &ctx);
        missing = r.missing;
        if subject.is_none() {
            subject = Some(r.subject);
        }
        if body.html.is_none() && body.text.is_none() {
            body = Body {
                html: (!r.html.is_empty()).then_some(r.html),
                text: t.text.as_ref().map(|_| r.text),
            };
        }
    }
    if !missing.is_empty() && !req.allow_missing_variables {
        return Err(AssembleError::MissingVariables(missing));
    }
    m.subject = subject
        .or_else(|| composed.map(|c| c.subject.clone()))
        .unwrap_or_default();
    let body = assemble_body(
        &body,
        inputs.signature_html.as_deref(),
        composed.map(|c| &c.quote),
    );
    m.html = body.html;
    m.text = body.text;
    if let Some(c) = composed {
        m.in_reply_to = c.in_reply_to.clone();
        m.references = c.references.clone();
    }
    for (spec, file) in inputs.files {
        match spec.content_id {
            Some(cid) => m.inline_images.push(InlineImage {
                content_id: cid,
                content_type: file.content_type,
                bytes: file.bytes,
                filename: Some(file.filename),
            }),
            None => m.attachments.push(file),
        }
    }
    m.attachments.extend(inputs.forwarded);
    Ok((m, missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::address::EmailAddress;
    use crate::send::signature::Quote;
    use serde_json::json;

    fn mb(name: Option<&str>, a: &str) -> Mailbox {
        Mailbox::new(name, EmailAddress::parse(a).expect("address"))
    }

    #[test]
    fn parses_a_full_request() {
        let r = parse(&json!({
            "accountId": "3",
            "from": "Me <me@x.test>",
            "to": ["Ann <ann@x.test>", "bob@x.test"],
            "cc": ["ANN@x.test", "carol@x.test"],
            "bcc": [{"address": "dave@x.test"}],
            "replyTo": "r@x.test",
            "subject": "Hi",
            "html": "<p>x</p>",
            "attachments": [12, {"uploadId": "13", "contentId": "<logo>"}],
            "mode": "reply",
            "sourceMessageId": 40,
            "signature": false,
            "templateId": 5,
            "variables": {"a": 1},
            "allowMissingVariables": true,
            "idempotencyKey": " k1 ",
        }))
        .expect("valid");
        assert_eq!(r.account_id, 3);
        assert_eq!(
            r.from.as_ref().map(|f| f.address.as_str()),
            Some("me@x.test")
        );
        assert_eq!(r.to.as_ref().map(Vec::len), Some(2));
        let cc: Vec<&str> = r.cc.iter().flatten().map(|m| m.address.as_str()).collect();
        assert_eq!(cc, vec!["carol@x.test"], "deduped against to");
        assert_eq!(r.bcc.len(), 1);
        assert_eq!(r.reply_to.len(), 1);
        assert_eq!(
            r.attachments,
            vec![
                AttachmentSpec {
                    upload_id: 12,
                    content_id: None
                },
                AttachmentSpec {
                    upload_id: 13,
                    content_id: Some("logo".into())
                },
            ]
        );
        assert_eq!(r.mode, Some(Mode::Reply));
        assert_eq!(r.source_message_id, Some(40));
        assert_eq!(r.signature, SignatureChoice::None);
        assert_eq!(r.template_id, Some(5));
        assert!(r.allow_missing_variables);
        assert_eq!(r.idempotency_key.as_deref(), Some("k1"));
        // Left out means "fill from the source"; given empty means none.
        let r = parse(&json!({"accountId": 1, "to": [], "mode": "forward", "sourceMessageId": 2}))
            .expect("valid");
        assert_eq!(r.to, Some(vec![]));
        assert_eq!(r.cc, None);
        assert_eq!(r.signature, SignatureChoice::Default);
    }

    #[test]
    fn reports_every_problem() {
        let err = parse(&json!({
            "to": ["ok@x.test", "bob@"],
            "from": ["a@x.test", "b@x.test"],
            "mode": "replyall",
            "sourceMessageId": "x",
            "subject": "two\nlines",
            "signature": "yes",
            "attachments": [0, {"uploadId": 1, "contentId": "has space"}, {"id": 1}],
            "idempotencyKey": "k".repeat(300),
        }))
        .expect_err("bad");
        let text = err.to_string();
        for want in [
            "accountId is required",
            "to[1]: \"bob@\" is not an email address",
            "from must be one address",
            "mode \"replyall\" is not one of",
            "sourceMessageId must be a record id",
            "subject must be one line",
            "signature must be true, false or a signature id",
            "attachments[0] must be a record id",
            "attachments[1].contentId",
            "attachments[2]: expected",
            "idempotencyKey must be at most 200",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        assert!(parse(&json!({"accountId": 1, "colour": "red"}))
            .expect_err("unknown")
            .to_string()
            .contains("colour"));
        assert!(parse(&json!({"accountId": 1, "sourceMessageId": 2}))
            .expect_err("no mode")
            .to_string()
            .contains("needs mode"));
        assert!(parse(&json!({"accountId": 1, "mode": "reply"}))
            .expect_err("no source")
            .to_string()
            .contains("sourceMessageId is required"));
    }

    fn composed() -> Composed {
        Composed {
            to: vec![mb(Some("Ann"), "ann@x.test")],
            cc: vec![mb(None, "carol@x.test")],
            subject: "Re: Plans".into(),
            in_reply_to: Some("m1@x.test".into()),
            references: vec!["m0@x.test".into(), "m1@x.test".into()],
            thread_id: "t1".into(),
            quote: Quote {
                html: "<div class=\"em-quote\">Q</div>".into(),
                text: "On …, Ann wrote:\n> plans".into(),
            },
            attachments: vec![],
            identity: None,
        }
    }

    #[test]
    fn a_reply_fills_what_the_request_left_out() {
        let req = parse(&json!({"accountId": 1, "html": "<p>Sounds good</p>", "mode": "replyAll", "sourceMessageId": 9}))
            .expect("valid");
        let (m, missing) = assemble(
            &req,
            Inputs {
                from: Some(mb(Some("Me"), "me@x.test")),
                composed: Some(composed()),
                signature_html: Some("<p>Me</p>".into()),
                ..Inputs::default()
            },
            true,
        )
        .expect("assembled");
        assert!(missing.is_empty());
        assert_eq!(m.to[0].address.as_str(), "ann@x.test");
        assert_eq!(m.cc[0].address.as_str(), "carol@x.test");
        assert_eq!(m.subject, "Re: Plans");
        assert_eq!(m.in_reply_to.as_deref(), Some("m1@x.test"));
        assert_eq!(m.references.len(), 2);
        assert_eq!(
            m.html.as_deref(),
            Some("<p>Sounds good</p><br><div class=\"em-signature\"><p>Me</p></div><br><div class=\"em-quote\">Q</div>")
        );
        assert_eq!(
            m.text.as_deref(),
            Some("Sounds good\n\n-- \nMe\n\nOn …, Ann wrote:\n> plans")
        );
        let raw = m.build(true).expect("mime");
        let p = crate::sync::parse::parse(&raw);
        assert_eq!(p.in_reply_to.as_deref(), Some("<m1@x.test>"));
    }

    #[test]
    fn templates_render_for_the_first_recipient_and_keep_the_signature() {
        let req = parse(&json!({"accountId": 1, "to": ["Ann Lee <ann@x.test>"], "variables": {"day": "Monday"}}))
            .expect("valid");
        let template = TemplateParts {
            subject: "See you {{day}}, {{recipient.name}}".into(),
            html: "<p>Hi {{recipient.name}} from {{user.nickname}}</p>".into(),
            text: None,
        };
        let inputs = Inputs {
            from: Some(mb(None, "me@x.test")),
            signature_html: Some("<p>Sig</p>".into()),
            template: Some(template.clone()),
            user: UserValues {
                nickname: Some("Zoë".into()),
                email: None,
            },
            files: vec![
                (
                    AttachmentSpec {
                        upload_id: 1,
                        content_id: None,
                    },
                    Attachment {
                        filename: "a.pdf".into(),
                        content_type: "application/pdf".into(),
                        bytes: vec![1],
                    },
                ),
                (
                    AttachmentSpec {
                        upload_id: 2,
                        content_id: Some("logo".into()),
                    },
                    Attachment {
                        filename: "logo.png".into(),
                        content_type: "image/png".into(),
                        bytes: vec![2],
                    },
                ),
            ],
            ..Inputs::default()
        };
        let (m, _) = assemble(&req, inputs.clone(), true).expect("assembled");
        assert_eq!(m.subject, "See you Monday, Ann Lee");
        assert_eq!(
            m.html.as_deref(),
            Some("<p>Hi Ann Lee from Zoë</p><br><div class=\"em-signature\"><p>Sig</p></div>")
        );
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.inline_images.len(), 1);
        assert_eq!(m.inline_images[0].content_id, "logo");

        // Unknown variables: refused unless allowed.
        let mut t = template;
        t.html.push_str("{{nope}}");
        let inputs = Inputs {
            template: Some(t),
            ..inputs
        };
        assert_eq!(
            assemble(&req, inputs.clone(), true).expect_err("missing"),
            AssembleError::MissingVariables(vec!["nope".into()])
        );
        let mut allowed = req.clone();
        allowed.allow_missing_variables = true;
        let (m, missing) = assemble(&allowed, inputs, true).expect("allowed");
        assert_eq!(missing, vec!["nope".to_string()]);
        assert!(m.html.as_deref().is_some_and(|h| h.contains("{{nope}}")));
    }

    #[test]
    fn no_recipients_or_sender() {
        let req = parse(&json!({"accountId": 1, "text": "x"})).expect("valid");
        let inputs = Inputs {
            from: Some(mb(None, "me@x.test")),
            ..Inputs::default()
        };
        assert_eq!(
            assemble(&req, inputs.clone(), true).expect_err("nobody"),
            AssembleError::NoRecipients
        );
        assert!(
            assemble(&req, inputs, false).is_ok(),
            "a draft may have nobody yet"
        );
        assert_eq!(
            assemble(&req, Inputs::default(), false).expect_err("no from"),
            AssembleError::NoSender
        );
    }
}
