//! `mailMessages:list`: NocoBase list parameters (`filter`, `sort`, `page`, `pageSize`,
//! `fields`, `appends`) plus `search` (words, all of which must occur as word prefixes) and
//! `groupBy=thread`. See docs/api.md for the exact semantics.

use std::collections::HashMap;

use actix_web::HttpResponse;
use serde_json::{Map, Value};

use super::{
    append_local, attachment_json, bool_param, list_param, message_json, text_param, LIST_FIELDS,
};
use crate::api::filter::{self, Filter};
use crate::api::{list_meta, ActionCtx};
use crate::db::message_list::{self, ListQuery, SortKey, MAX_SEARCH_WORDS};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const MAX_SEARCH_CHARS: usize = 500;
const MAX_SORT_KEYS: usize = 4;
pub const APPENDS: &[&str] = &["attachments", "labels", "notes"];
const THREAD_FIELDS: &[&str] = &["threadCount", "threadUnread"];

pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (page, page_size) = ctx.paging()?;
    let filter = parse_filter(ctx)?;
    let search = parse_search(text_param(ctx, "search").as_deref().unwrap_or_default())?;
    let sort = parse_sort(&list_param(ctx, "sort"))?;
    let group_by_thread = match text_param(ctx, "groupBy").as_deref() {
        None | Some("") => false,
        Some("thread") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "groupBy must be \"thread\", got {other:?}"
            )))
        }
    };
    let appends = parse_appends(&list_param(ctx, "appends"))?;
    let fields = parse_fields(&list_param(ctx, "fields"), group_by_thread)?;

    let query = ListQuery {
        user_id: ctx.identity.user_id,
        filter,
        search,
        sort,
        group_by_thread,
        limit: page_size,
        offset: (page - 1) * page_size,
        exact_count: bool_param(ctx, "exactCount")?,
    };
    let with_attachments = appends.iter().any(|a| a == "attachments");
    let with_labels = appends.iter().any(|a| a == "labels");
    let with_notes = appends.iter().any(|a| a == "notes");
    let user_id = ctx.identity.user_id;
    let (result, attachments, labels, notes) = state
        .db
        .run(move |c| {
            let result = message_list::list(c, &query)?;
            let ids: Vec<i64> = result.rows.iter().map(|r| r.id).collect();
            let attachments = if with_attachments {
                message_list::attachments_for(c, user_id, &ids)?
            } else {
                HashMap::new()
            };
            let labels = with_labels
                .then(|| crate::db::labels::for_messages(c, user_id, &ids))
                .transpose()?;
            let notes = with_notes
                .then(|| crate::db::notes::for_messages(c, user_id, &ids))
                .transpose()?;
            Ok((result, attachments, labels, notes))
        })
        .await?;

    let mut maps: Vec<Map<String, Value>> = result
        .rows
        .iter()
        .map(|r| {
            let mut m = message_json(r);
            if group_by_thread {
                let stats = result
                    .threads
                    .get(&(r.account_id, r.thread_id.clone()))
                    .copied()
                    .unwrap_or_default();
                m.insert("threadCount".into(), stats.count.into());
                m.insert("threadUnread".into(), stats.unread.into());
            }
            if with_attachments {
                let list = attachments
                    .get(&r.id)
                    .map(|a| a.iter().map(attachment_json).collect())
                    .unwrap_or_default();
                m.insert("attachments".into(), Value::Array(list));
            }
            m
        })
        .collect();
    append_local(&mut maps, labels.as_ref(), notes.as_ref());
    let items: Vec<Value> = maps
        .into_iter()
        .map(|m| Value::Object(only(m, fields.as_deref(), &appends)))
        .collect();
    let mut response = list_meta(result.count, page, page_size);
    response.insert("countExact".into(), Value::Bool(!result.count_estimated));
    Ok(HttpResponse::Ok().json(serde_json::json!({"data": items, "meta": response})))
}

/// Keeps the asked `fields` (and the appended associations); all of them when none was asked.
fn only(
    m: Map<String, Value>,
    fields: Option<&[String]>,
    appends: &[String],
) -> Map<String, Value> {
    match fields {
        None => m,
        Some(fields) => m
            .into_iter()
            .filter(|(k, _)| fields.contains(k) || appends.contains(k))
            .collect(),
    }
}

/// `filter` as JSON text in the query (NocoBase's form), as `filter[field][$op]=…` brackets, or
/// as an object in the body.
fn parse_filter(ctx: &ActionCtx) -> ApiResult<Filter> {
    if let Some(text) = ctx.params.get("filter") {
        return filter::parse_param(text);
    }
    if let Some(v) = bracket_filter(&ctx.params)? {
        return filter::parse(&v);
    }
    match ctx.values.get("filter") {
        Some(Value::String(text)) => filter::parse_param(text),
        Some(v) => filter::parse(v),
        None => Ok(Filter::all()),
    }
}

/// `filter[subject][$includes]=x&filter[$or][0][unread]=true` → the JSON filter it spells.
fn bracket_filter(params: &HashMap<String, String>) -> ApiResult<Option<Value>> {
    let mut root = Map::new();
    let mut any = false;
    for (key, value) in params {
        let Some(rest) = key.strip_prefix("filter[") else {
            continue;
        };
        any = true;
        let (rest, list) = match rest.strip_suffix("[]") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let path: Vec<&str> = rest
            .strip_suffix(']')
            .ok_or_else(|| ApiError::invalid(format!("Malformed filter parameter {key:?}")))?
            .split("][")
            .collect();
        if path.iter().any(|p| p.is_empty()) || path.len() > 12 {
            return Err(ApiError::invalid(format!(
                "Malformed filter parameter {key:?}"
            )));
        }
        let leaf = if list {
            Value::Array(
                value
                    .split(',')
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            )
        } else {
            Value::String(value.clone())
        };
        let mut node = &mut root;
        for (i, seg) in path.iter().enumerate() {
            if i + 1 == path.len() {
                node.insert(seg.to_string(), leaf.clone());
            } else {
                let next = node
                    .entry(seg.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                node = match next {
                    Value::Object(m) => m,
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "Malformed filter parameter {key:?}"
                        )))
                    }
                };
            }
        }
    }
    Ok(any.then(|| arrays(Value::Object(root))))
}

/// Objects whose keys are all indexes (`$and[0]`, `$and[1]`) are the arrays they stand for.
fn arrays(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            if !m.is_empty() && m.keys().all(|k| k.parse::<usize>().is_ok()) {
                let mut items: Vec<(usize, Value)> = m
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(m.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

pub fn parse_search(text: &str) -> ApiResult<Vec<String>> {
    if text.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::invalid(format!(
            "search is longer than {MAX_SEARCH_CHARS} characters"
        )));
    }
    let words = message_list::search_words(text);
    if words.len() > MAX_SEARCH_WORDS {
        return Err(ApiError::invalid(format!(
            "search has more than {MAX_SEARCH_WORDS} words"
        )));
    }
    Ok(words)
}

/// `-date` (newest first, the default), `subject`, `from,-date`, …
pub fn parse_sort(items: &[String]) -> ApiResult<Vec<(SortKey, bool)>> {
    if items.is_empty() {
        return Ok(vec![(SortKey::Date, true), (SortKey::Id, true)]);
    }
    if items.len() > MAX_SORT_KEYS {
        return Err(ApiError::invalid(format!(
            "sort takes at most {MAX_SORT_KEYS} keys"
        )));
    }
    let mut out: Vec<(SortKey, bool)> = Vec::with_capacity(items.len());
    for item in items {
        let (name, desc) = match item.strip_prefix('-') {
            Some(n) => (n, true),
            None => (item.trim_start_matches('+'), false),
        };
        let key = SortKey::parse(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "Unknown sort key {name:?}: expected one of {}",
                SortKey::NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(ApiError::invalid(format!("sort names {name:?} twice")));
        }
        out.push((key, desc));
    }
    Ok(out)
}

pub fn parse_appends(items: &[String]) -> ApiResult<Vec<String>> {
    for a in items {
        if !APPENDS.contains(&a.as_str()) {
            return Err(ApiError::invalid(format!(
                "Unknown append {a:?}: expected one of {}",
                APPENDS.join(", ")
            )));
        }
    }
    Ok(items.to_vec())
}

pub fn parse_fields(items: &[String], group_by_thread: bool) -> ApiResult<Option<Vec<String>>> {
    if items.is_empty() {
        return Ok(None);
    }
    for f in items {
        let known = LIST_FIELDS.contains(&f.as_str())
            || (group_by_thread && THREAD_FIELDS.contains(&f.as_str()));
        if !known {
            return Err(ApiError::invalid(format!(
                "Unknown field {f:?} in fields: expected some of {}{}",
                LIST_FIELDS.join(", "),
                if group_by_thread {
                    ", threadCount, threadUnread"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(Some(items.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sort_keys() {
        assert_eq!(
            parse_sort(&[]).expect("default"),
            vec![(SortKey::Date, true), (SortKey::Id, true)]
        );
        assert_eq!(
            parse_sort(&v(&["subject", "-date"])).expect("ok"),
            vec![(SortKey::Subject, false), (SortKey::Date, true)]
        );
        assert_eq!(
            parse_sort(&v(&["from"])).expect("ok"),
            vec![(SortKey::From, false)]
        );
        assert!(parse_sort(&v(&["-nope"]))
            .expect_err("bad")
            .message
            .contains("\"nope\""));
        assert!(parse_sort(&v(&["date", "-date"])).is_err());
        assert!(parse_sort(&v(&["date", "subject", "from", "size", "id"])).is_err());
    }

    #[test]
    fn fields_and_appends() {
        assert_eq!(parse_fields(&[], false).expect("none"), None);
        assert_eq!(
            parse_fields(&v(&["id", "subject"]), false).expect("ok"),
            Some(v(&["id", "subject"]))
        );
        assert!(parse_fields(&v(&["threadCount"]), false).is_err());
        assert!(parse_fields(&v(&["threadCount"]), true).is_ok());
        let e = parse_fields(&v(&["id", "body"]), false).expect_err("bad");
        assert!(e.message.contains("\"body\""), "{}", e.message);
        assert_eq!(
            parse_appends(&v(&["attachments"])).expect("ok"),
            v(&["attachments"])
        );
        assert!(parse_appends(&v(&["labels", "notes"])).is_ok());
        assert!(parse_appends(&v(&["folders"]))
            .expect_err("unknown")
            .message
            .contains("\"folders\""));
        let m = json!({"id": 1, "subject": "s", "attachments": []});
        let Value::Object(m) = m else { unreachable!() };
        let kept = only(m, Some(&v(&["id"])), &v(&["attachments"]));
        assert_eq!(Value::Object(kept), json!({"id": 1, "attachments": []}));
    }

    #[test]
    fn search_limits() {
        assert_eq!(parse_search("Café, lee").expect("ok"), v(&["café", "lee"]));
        assert!(
            parse_search(&"a ".repeat(17)).is_ok(),
            "repeated words count once"
        );
        let many: String = (0..20).map(|i| format!("w{i} ")).collect();
        assert!(parse_search(&many).is_err());
        assert!(parse_search(&"x".repeat(501)).is_err());
    }

    #[test]
    fn bracket_filters_spell_json() {
        let params: HashMap<String, String> = [
            ("filter[subject][$includes]", "Invoice"),
            ("filter[$or][1][starred]", "true"),
            ("filter[$or][0][unread]", "true"),
            ("filter[folder][$in][]", "inbox,archive"),
            ("page", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            bracket_filter(&params).expect("ok"),
            Some(json!({
                "subject": {"$includes": "Invoice"},
                "$or": [{"unread": "true"}, {"starred": "true"}],
                "folder": {"$in": ["inbox", "archive"]},
            }))
        );
        let bad: HashMap<String, String> = [("filter[a".to_string(), "1".to_string())]
            .into_iter()
            .collect();
        assert!(bracket_filter(&bad).is_err());
    }
}
