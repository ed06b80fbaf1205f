//! One recipient's message of a mass mailing: the job's template rendered with the recipient's
//! values. Shared by `mailMassMessages:create` (which renders every recipient once to refuse
//! unknown variables before anything is stored) and the worker (which builds what it sends).

use serde_json::{Map, Value};

use crate::send::address::Mailbox;
use crate::send::mime::{Attachment, OutgoingMessage};
use crate::send::template::{render, Context, Escape, RecipientValues, UserValues};

/// The parts of a job every recipient shares.
#[derive(Debug, Clone)]
pub struct JobTemplate {
    pub from: Mailbox,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub user: UserValues,
}

/// One recipient's values.
#[derive(Debug, Clone)]
pub struct RecipientInput<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub variables: Option<&'a Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    /// Variables without a value, in order of first appearance.
    pub missing: Vec<String>,
}

pub fn render_for(t: &JobTemplate, r: &RecipientInput<'_>) -> Rendered {
    let ctx = Context::new(
        r.variables,
        &RecipientValues {
            // A recipient without a name renders `{{recipient.name}}` as nothing.
            name: Some(r.name.unwrap_or_default().to_string()),
            email: Some(r.email.to_string()),
        },
        &t.user,
    );
    let subject = render(&t.subject, &ctx, Escape::None);
    let html = t.html.as_deref().map(|h| render(h, &ctx, Escape::Html));
    let text = t.text.as_deref().map(|x| render(x, &ctx, Escape::None));
    let mut missing = subject.missing;
    for m in html
        .iter()
        .flat_map(|h| h.missing.iter())
        .chain(text.iter().flat_map(|x| x.missing.iter()))
    {
        if !missing.contains(m) {
            missing.push(m.clone());
        }
    }
    Rendered {
        subject: subject.output,
        html: html.map(|h| h.output),
        text: text.map(|x| x.output),
        missing,
    }
}

/// The message for `to`, with the recipient's fixed Message-ID.
pub fn message(
    t: &JobTemplate,
    to: Mailbox,
    rendered: Rendered,
    message_id: &str,
    attachments: &[Attachment],
) -> OutgoingMessage {
    let mut m = OutgoingMessage::new(t.from.clone());
    m.message_id = message_id.to_string();
    m.to = vec![to];
    m.subject = rendered.subject;
    m.html = rendered.html;
    m.text = rendered.text;
    m.attachments = attachments.to_vec();
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::address::EmailAddress;
    use serde_json::json;

    #[test]
    fn renders_per_recipient_and_reports_unknown_variables() {
        let from = Mailbox::new(
            Some("Alice"),
            EmailAddress::parse("alice@gmail.test").expect("addr"),
        );
        let t = JobTemplate {
            from,
            subject: "Hello {{recipient.name}}".into(),
            html: Some("<p>{{company}} &amp; {{plan}}</p>".into()),
            text: None,
            user: UserValues::default(),
        };
        let vars = json!({"company": "A<B>", "plan": "gold"});
        let r = render_for(
            &t,
            &RecipientInput {
                email: "ann@x.test",
                name: Some("Ann"),
                variables: vars.as_object(),
            },
        );
        assert_eq!(r.subject, "Hello Ann");
        assert_eq!(r.html.as_deref(), Some("<p>A&lt;B&gt; &amp; gold</p>"));
        assert!(r.missing.is_empty());
        let r = render_for(
            &t,
            &RecipientInput {
                email: "bob@x.test",
                name: None,
                variables: None,
            },
        );
        assert_eq!(r.subject, "Hello ");
        assert_eq!(r.missing, vec!["company", "plan"]);
    }
}
