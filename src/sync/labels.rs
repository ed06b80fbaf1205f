//! Labels applied or removed at the provider, taken in by sync (inside the page's transaction).
//!
//! Only what changed at the provider is applied: a provider label that appeared on a message
//! since the last sync attaches the local label it stands for (its twin, or the label of that
//! name, created when the user has none), one that disappeared detaches it. A local label the
//! provider never had (mirroring refused, or not delivered yet) is therefore never taken off by
//! sync, and changes made here still on their way to the provider (`mail_label_outbox`) are left
//! alone, as the message outbox does for read and star.

use std::collections::BTreeSet;

use crate::db::labels::{self, Resolver};
use crate::db::{DbConnection, DbError};
use crate::providers::TodoMirror;

/// What a page of one mailbox needs to know about labels and to-do.
#[derive(Debug, Clone)]
pub struct PageLabels {
    pub account_id: i64,
    pub user_id: i64,
    /// `mail.mirror_labels`.
    pub enabled: bool,
    /// Gmail: labels are ids (named in `mail_folders`); Outlook: category names.
    pub ids: bool,
    pub todo: TodoMirror,
}

/// One message's user labels at the provider before the page and after it.
#[derive(Debug, Clone)]
pub struct LabelDiff {
    pub message_id: i64,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

pub fn reconcile(
    c: &mut DbConnection,
    page: &PageLabels,
    diffs: &[LabelDiff],
    now: i64,
) -> Result<(), DbError> {
    if !page.enabled {
        return Ok(());
    }
    let key = |t: &String| {
        if page.ids {
            t.clone()
        } else {
            labels::name_key(t)
        }
    };
    let changed: Vec<(&LabelDiff, Vec<&String>, Vec<&String>)> = diffs
        .iter()
        .filter_map(|d| {
            let before: BTreeSet<String> = d.before.iter().map(key).collect();
            let after: BTreeSet<String> = d.after.iter().map(key).collect();
            let added: Vec<&String> = d
                .after
                .iter()
                .filter(|t| !before.contains(&key(t)))
                .collect();
            let removed: Vec<&String> = d
                .before
                .iter()
                .filter(|t| !after.contains(&key(t)))
                .collect();
            (!added.is_empty() || !removed.is_empty()).then_some((d, added, removed))
        })
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = changed.iter().map(|(d, _, _)| d.message_id).collect();
    let held = labels::held(c, page.account_id, &ids)?;
    let mut resolver = Resolver::load(c, page.user_id, page.account_id, page.ids)?;
    for (d, added, removed) in changed {
        for token in added {
            if held.holds_token(token) {
                continue;
            }
            let Some(label) = resolver.resolve(c, token, true, now)? else {
                continue;
            };
            if !held.holds(d.message_id, label) {
                labels::attach_from_provider(c, page.user_id, d.message_id, label, now)?;
            }
        }
        for token in removed {
            if held.holds_token(token) {
                continue;
            }
            let Some(label) = resolver.resolve(c, token, false, now)? else {
                continue;
            };
            if !held.holds(d.message_id, label) {
                labels::detach_from_provider(c, d.message_id, label)?;
            }
        }
    }
    Ok(())
}
