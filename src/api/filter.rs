//! NocoBase list filters (`filter=` JSON) for mail messages, parsed at the edge into a typed tree.
//!
//! Pure: no SQL here. `db::message_list` renders the tree for either backend. Every field name,
//! operator and value is checked, and a bad one answers 400 naming it, so a filter either means
//! exactly what it says or is refused.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// A message field a filter can name (the names are the API's camelCase keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Id,
    AccountId,
    ProviderMessageId,
    ThreadId,
    MessageId,
    InReplyTo,
    References,
    From,
    To,
    Cc,
    Bcc,
    ReplyTo,
    Subject,
    Snippet,
    Date,
    Folder,
    ProviderLabels,
    Unread,
    Starred,
    Todo,
    Draft,
    HasAttachments,
    Size,
    /// Local labels (`mail_message_labels`), by label id.
    Labels,
    /// The same, for one label: `{"labelId": 3}`.
    LabelId,
    TodoDueAt,
}

/// How a field's values compare, which decides the operators it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bool,
    /// Always present (`''` when empty).
    Text,
    /// May be missing (NULL).
    OptText,
    /// The sender: a name and an address.
    Sender,
    /// A list of `{name, address}`.
    Addresses,
    /// A list of provider label names.
    Labels,
    /// Unix milliseconds, written as ISO 8601 in the API.
    Date,
    /// A date that may be missing (NULL).
    OptDate,
    /// The set of local label ids a message carries.
    LabelSet,
}

pub const FIELDS: &[(&str, Field)] = &[
    ("id", Field::Id),
    ("accountId", Field::AccountId),
    ("providerMessageId", Field::ProviderMessageId),
    ("threadId", Field::ThreadId),
    ("messageId", Field::MessageId),
    ("inReplyTo", Field::InReplyTo),
    ("references", Field::References),
    ("from", Field::From),
    ("to", Field::To),
    ("cc", Field::Cc),
    ("bcc", Field::Bcc),
    ("replyTo", Field::ReplyTo),
    ("subject", Field::Subject),
    ("snippet", Field::Snippet),
    ("date", Field::Date),
    ("folder", Field::Folder),
    ("providerLabels", Field::ProviderLabels),
    ("unread", Field::Unread),
    ("starred", Field::Starred),
    ("todo", Field::Todo),
    ("draft", Field::Draft),
    ("hasAttachments", Field::HasAttachments),
    ("size", Field::Size),
    ("labels", Field::Labels),
    ("labelId", Field::LabelId),
    ("todoDueAt", Field::TodoDueAt),
];

impl Field {
    pub fn parse(name: &str) -> Option<Field> {
        FIELDS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    pub fn kind(self) -> Kind {
        use Field::*;
        match self {
            Id | AccountId | Size => Kind::Int,
            Unread | Starred | Todo | Draft | HasAttachments => Kind::Bool,
            ProviderMessageId | ThreadId | Subject | Snippet | Folder => Kind::Text,
            MessageId | InReplyTo | References => Kind::OptText,
            From => Kind::Sender,
            To | Cc | Bcc | ReplyTo => Kind::Addresses,
            ProviderLabels => Kind::Labels,
            Date => Kind::Date,
            TodoDueAt => Kind::OptDate,
            Labels | LabelId => Kind::LabelSet,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One condition on one field. Dates become `Int` comparisons on Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pred {
    Int(CmpOp, i64),
    IntIn {
        values: Vec<i64>,
        negated: bool,
    },
    /// Exact text (the sender: its address, ignoring ASCII case).
    Text {
        value: String,
        negated: bool,
    },
    TextIn {
        values: Vec<String>,
        negated: bool,
    },
    /// Substring, ignoring case; for labels: has this label.
    Includes {
        needle: String,
        negated: bool,
    },
    /// `$empty` (negated: `$notEmpty`).
    Empty {
        negated: bool,
    },
    /// A boolean field is `true` / `false`.
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// All must hold; empty: no condition.
    And(Vec<Filter>),
    /// One must hold.
    Or(Vec<Filter>),
    Cond(Field, Pred),
    /// Known in advance (`$in: []`, `$empty` on a field that is never empty).
    Const(bool),
}

impl Filter {
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }

    /// The top-level conjuncts, nested `And`s flattened.
    pub fn conjuncts(&self) -> Vec<&Filter> {
        let mut out = Vec::new();
        fn walk<'a>(f: &'a Filter, out: &mut Vec<&'a Filter>) {
            match f {
                Filter::And(items) => items.iter().for_each(|i| walk(i, out)),
                other => out.push(other),
            }
        }
        walk(self, &mut out);
        out
    }
}

/// Deep or huge filters are refused rather than turned into huge SQL.
const MAX_DEPTH: usize = 12;
const MAX_CONDITIONS: usize = 200;
const MAX_LIST: usize = 1000;

/// Parses the `filter` parameter (JSON text). Empty or `{}` means no condition.
pub fn parse_param(text: &str) -> Result<Filter, ApiError> {
    if text.trim().is_empty() {
        return Ok(Filter::all());
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid(format!("filter is not valid JSON: {e}")))?;
    parse(&value)
}

pub fn parse(value: &Value) -> Result<Filter, ApiError> {
    let mut budget = MAX_CONDITIONS;
    match value {
        Value::Null => Ok(Filter::all()),
        Value::Object(map) => parse_object(map, 0, &mut budget),
        _ => Err(ApiError::invalid("filter must be a JSON object")),
    }
}

fn parse_object(
    map: &Map<String, Value>,
    depth: usize,
    budget: &mut usize,
) -> Result<Filter, ApiError> {
    if depth > MAX_DEPTH {
        return Err(ApiError::invalid(format!(
            "filter is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let mut all = Vec::with_capacity(map.len());
    for (key, value) in map {
        match key.as_str() {
            "$and" | "$or" => {
                let items = value.as_array().ok_or_else(|| {
                    ApiError::invalid(format!("filter: {key} takes an array of conditions"))
                })?;
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    let obj = item.as_object().ok_or_else(|| {
                        ApiError::invalid(format!("filter: every item of {key} must be an object"))
                    })?;
                    parts.push(parse_object(obj, depth + 1, budget)?);
                }
                // An empty group is no condition, as NocoBase's filter editor means it.
                if parts.is_empty() {
                    continue;
                }
                all.push(if key == "$and" {
                    Filter::And(parts)
                } else {
                    Filter::Or(parts)
                });
            }
            k if k.starts_with('$') => {
                return Err(ApiError::invalid(format!(
                    "filter: unknown operator {k:?} (expected a field name, $and or $or)"
                )))
            }
            name => {
                let field = Field::parse(name).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "filter: unknown field {name:?}; filterable fields: {}",
                        FIELDS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                all.push(parse_field(field, value, budget)?);
            }
        }
    }
    Ok(if all.len() == 1 {
        all.pop().unwrap_or_else(Filter::all)
    } else {
        Filter::And(all)
    })
}

fn parse_field(field: Field, value: &Value, budget: &mut usize) -> Result<Filter, ApiError> {
    let ops: Vec<(&str, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        // A bare value means $eq (a bare array: $in).
        Value::Array(_) => vec![("$in", value)],
        other => vec![("$eq", other)],
    };
    let mut all = Vec::with_capacity(ops.len());
    for (op, v) in ops {
        if *budget == 0 {
            return Err(ApiError::invalid(format!(
                "filter has more than {MAX_CONDITIONS} conditions"
            )));
        }
        *budget -= 1;
        all.push(condition(field, op, v)?);
    }
    Ok(if all.len() == 1 {
        all.pop().unwrap_or_else(Filter::all)
    } else {
        Filter::And(all)
    })
}

fn bad_value(field: Field, op: &str, expected: &str) -> ApiError {
    ApiError::invalid(format!("filter: {}.{op} expects {expected}", field.name()))
}

fn not_for(field: Field, op: &str) -> ApiError {
    ApiError::invalid(format!(
        "filter: operator {op} does not apply to {}",
        field.name()
    ))
}

const OPERATORS: &[&str] = &[
    "$eq",
    "$ne",
    "$in",
    "$notIn",
    "$includes",
    "$notIncludes",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$dateOn",
    "$dateNotOn",
    "$dateBefore",
    "$dateNotBefore",
    "$dateAfter",
    "$dateNotAfter",
    "$dateBetween",
    "$empty",
    "$notEmpty",
    "$isTruly",
    "$isFalsy",
];

fn condition(field: Field, op: &str, v: &Value) -> Result<Filter, ApiError> {
    if !OPERATORS.contains(&op) {
        return Err(ApiError::invalid(format!(
            "filter: unknown operator {op:?} on {}",
            field.name()
        )));
    }
    let kind = field.kind();
    let cond = |p: Pred| Filter::Cond(field, p);
    // Presence checks first: they look at no value.
    match op {
        "$empty" | "$notEmpty" => {
            let negated = op == "$notEmpty";
            return Ok(match kind {
                Kind::Int | Kind::Bool | Kind::Date => Filter::Const(negated),
                _ => cond(Pred::Empty { negated }),
            });
        }
        "$eq" | "$ne" if kind == Kind::OptDate && v.is_null() => {
            return Ok(cond(Pred::Empty {
                negated: op == "$ne",
            }));
        }
        "$isTruly" | "$isFalsy" => {
            if kind != Kind::Bool {
                return Err(not_for(field, op));
            }
            return Ok(cond(Pred::Bool(op == "$isTruly")));
        }
        _ => {}
    }
    match kind {
        Kind::Bool => match op {
            "$eq" | "$ne" => {
                let b = bool_value(v).ok_or_else(|| bad_value(field, op, "true or false"))?;
                Ok(cond(Pred::Bool(if op == "$eq" { b } else { !b })))
            }
            _ => Err(not_for(field, op)),
        },
        Kind::Int => match op {
            "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" => {
                let n = int_value(v).ok_or_else(|| bad_value(field, op, "an integer"))?;
                Ok(cond(Pred::Int(cmp(op), n)))
            }
            "$in" | "$notIn" => {
                let values = list(v, field, op)?
                    .iter()
                    .map(|x| int_value(x).ok_or_else(|| bad_value(field, op, "a list of integers")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(in_list(field, values.is_empty(), op == "$notIn", || {
                    Pred::IntIn {
                        values,
                        negated: op == "$notIn",
                    }
                }))
            }
            _ => Err(not_for(field, op)),
        },
        Kind::Date | Kind::OptDate => date_condition(field, op, v),
        // Carries any of the labels ($eq, $in) / none of them ($ne, $notIn).
        Kind::LabelSet => match op {
            "$eq" | "$ne" | "$in" | "$notIn" => {
                let one = [v.clone()];
                let items: &[Value] = match v {
                    Value::Array(_) => list(v, field, op)?,
                    _ => &one,
                };
                let values = items
                    .iter()
                    .map(|x| int_value(x).ok_or_else(|| bad_value(field, op, "label ids")))
                    .collect::<Result<Vec<_>, _>>()?;
                let negated = op == "$ne" || op == "$notIn";
                Ok(in_list(field, values.is_empty(), negated, || Pred::IntIn {
                    values,
                    negated,
                }))
            }
            _ => Err(not_for(field, op)),
        },
        Kind::Text | Kind::OptText | Kind::Sender => match op {
            "$eq" | "$ne" if v.is_null() => Ok(match kind {
                Kind::OptText => cond(Pred::Empty {
                    negated: op == "$ne",
                }),
                _ => Filter::Const(op == "$ne"),
            }),
            "$eq" | "$ne" => Ok(cond(Pred::Text {
                value: text_value(field, v).ok_or_else(|| bad_value(field, op, "a string"))?,
                negated: op == "$ne",
            })),
            "$in" | "$notIn" => {
                let values = list(v, field, op)?
                    .iter()
                    .map(|x| {
                        text_value(field, x)
                            .ok_or_else(|| bad_value(field, op, "a list of strings"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(in_list(field, values.is_empty(), op == "$notIn", || {
                    Pred::TextIn {
                        values,
                        negated: op == "$notIn",
                    }
                }))
            }
            "$includes" | "$notIncludes" => includes(field, op, v),
            _ => Err(not_for(field, op)),
        },
        Kind::Addresses | Kind::Labels => match op {
            "$includes" | "$notIncludes" => includes(field, op, v),
            _ => Err(not_for(field, op)),
        },
    }
}

fn includes(field: Field, op: &str, v: &Value) -> Result<Filter, ApiError> {
    let needle = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(bad_value(field, op, "a string")),
    };
    let negated = op == "$notIncludes";
    // Everything includes the empty string.
    if needle.is_empty() {
        return Ok(Filter::Const(!negated));
    }
    Ok(Filter::Cond(field, Pred::Includes { needle, negated }))
}

fn in_list(field: Field, empty: bool, negated: bool, pred: impl FnOnce() -> Pred) -> Filter {
    if empty {
        Filter::Const(negated)
    } else {
        Filter::Cond(field, pred())
    }
}

fn list<'a>(v: &'a Value, field: Field, op: &str) -> Result<&'a Vec<Value>, ApiError> {
    let items = v.as_array().ok_or_else(|| bad_value(field, op, "a list"))?;
    if items.len() > MAX_LIST {
        return Err(ApiError::invalid(format!(
            "filter: {}.{op} takes at most {MAX_LIST} values",
            field.name()
        )));
    }
    Ok(items)
}

fn cmp(op: &str) -> CmpOp {
    match op {
        "$ne" => CmpOp::Ne,
        "$gt" => CmpOp::Gt,
        "$gte" => CmpOp::Ge,
        "$lt" => CmpOp::Lt,
        "$lte" => CmpOp::Le,
        _ => CmpOp::Eq,
    }
}

fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn int_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Text as stored: Message-IDs are stored without their angle brackets.
fn text_value(field: Field, v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(match field {
        Field::MessageId => s
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string(),
        _ => s,
    })
}

/// A date value: an instant, or a period (a day, month or year) as `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateValue {
    Instant(i64),
    Period(i64, i64),
}

impl DateValue {
    fn start(self) -> i64 {
        match self {
            DateValue::Instant(t) | DateValue::Period(t, _) => t,
        }
    }
    fn end(self) -> i64 {
        match self {
            DateValue::Instant(t) | DateValue::Period(_, t) => t,
        }
    }
}

fn date_condition(field: Field, op: &str, v: &Value) -> Result<Filter, ApiError> {
    let c = |o: CmpOp, t: i64| Filter::Cond(field, Pred::Int(o, t));
    let range = |a: i64, b: i64| Filter::And(vec![c(CmpOp::Ge, a), c(CmpOp::Lt, b)]);
    let outside = |a: i64, b: i64| Filter::Or(vec![c(CmpOp::Lt, a), c(CmpOp::Ge, b)]);
    let expect = "a date (YYYY, YYYY-MM, YYYY-MM-DD with an optional offset, an ISO 8601 date-time, or Unix milliseconds)";
    let single = || parse_date(v).ok_or_else(|| bad_value(field, op, expect));
    // $dateOn / $dateBetween also take [from, to]: from the start of one to the end of the other.
    let span = || -> Result<DateValue, ApiError> {
        match v {
            Value::Array(items) => match items.as_slice() {
                [a, b] => {
                    let a = parse_date(a).ok_or_else(|| bad_value(field, op, expect))?;
                    let b = parse_date(b).ok_or_else(|| bad_value(field, op, expect))?;
                    Ok(DateValue::Period(a.start(), b.end()))
                }
                _ => Err(bad_value(field, op, "[from, to]")),
            },
            _ => single(),
        }
    };
    Ok(match op {
        "$eq" | "$dateOn" => match span()? {
            DateValue::Instant(t) => c(CmpOp::Eq, t),
            DateValue::Period(a, b) => range(a, b),
        },
        "$ne" | "$dateNotOn" => match span()? {
            DateValue::Instant(t) => c(CmpOp::Ne, t),
            DateValue::Period(a, b) => outside(a, b),
        },
        "$dateBetween" => {
            let d = span()?;
            range(d.start(), d.end())
        }
        "$dateBefore" | "$lt" => c(CmpOp::Lt, single()?.start()),
        "$dateNotBefore" | "$gte" => c(CmpOp::Ge, single()?.start()),
        "$dateAfter" => match single()? {
            DateValue::Instant(t) => c(CmpOp::Gt, t),
            DateValue::Period(_, b) => c(CmpOp::Ge, b),
        },
        "$dateNotAfter" => match single()? {
            DateValue::Instant(t) => c(CmpOp::Le, t),
            DateValue::Period(_, b) => c(CmpOp::Lt, b),
        },
        "$gt" => c(CmpOp::Gt, single()?.start()),
        "$lte" => c(CmpOp::Le, single()?.start()),
        _ => return Err(not_for(field, op)),
    })
}

/// `2026`, `2026-11`, `2026-11-24` (UTC, or with `Z`/`±HH:MM` after it) are periods; an RFC 3339
/// date-time, `YYYY-MM-DD HH:MM:SS` (UTC) or a number (Unix ms) is an instant.
pub fn parse_date(v: &Value) -> Option<DateValue> {
    match v {
        Value::Number(n) => n.as_i64().map(DateValue::Instant),
        Value::String(s) => parse_date_text(s.trim()),
        _ => None,
    }
}

fn parse_date_text(s: &str) -> Option<DateValue> {
    use chrono::{Datelike, NaiveDate, NaiveDateTime};
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(DateValue::Instant(dt.timestamp_millis()));
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(DateValue::Instant(dt.and_utc().timestamp_millis()));
    }
    // A trailing offset applies to the period: 2026-11-24+08:00 is that day in UTC+8.
    let (body, offset_ms) = split_offset(s)?;
    let parts: Vec<&str> = body.split('-').collect();
    let num = |p: &str, len: usize| -> Option<u32> {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (start, end) = match parts.as_slice() {
        [y] => {
            let y = num(y, 4)? as i32;
            (
                NaiveDate::from_ymd_opt(y, 1, 1)?,
                NaiveDate::from_ymd_opt(y + 1, 1, 1)?,
            )
        }
        [y, m] => {
            let start = NaiveDate::from_ymd_opt(num(y, 4)? as i32, num(m, 2)?, 1)?;
            let end = if start.month() == 12 {
                NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)?
            };
            (start, end)
        }
        [y, m, d] => {
            let start = NaiveDate::from_ymd_opt(num(y, 4)? as i32, num(m, 2)?, num(d, 2)?)?;
            (start, start.succ_opt()?)
        }
        _ => return None,
    };
    let ms = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis() - offset_ms)
    };
    Some(DateValue::Period(ms(start)?, ms(end)?))
}

/// Splits `2026-11-24+08:00` into the date and the offset in ms (`Z` or nothing: 0).
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(body) = s.strip_suffix('Z') {
        return Some((body, 0));
    }
    if s.len() > 6 {
        let (body, tail) = s.split_at(s.len() - 6);
        let bytes = tail.as_bytes();
        if (bytes[0] == b'+' || bytes[0] == b'-') && bytes[3] == b':' {
            let h: i64 = tail.get(1..3)?.parse().ok()?;
            let m: i64 = tail.get(4..6)?.parse().ok()?;
            if h > 14 || m > 59 {
                return None;
            }
            let sign = if bytes[0] == b'-' { -1 } else { 1 };
            return Some((body, sign * (h * 60 + m) * 60_000));
        }
    }
    Some((s, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Filter {
        parse(&v).unwrap_or_else(|e| panic!("{v}: {}", e.message))
    }
    fn err(v: Value) -> String {
        parse(&v).expect_err("should be refused").message
    }
    fn cond(f: Field, pred: Pred) -> Filter {
        Filter::Cond(f, pred)
    }
    fn day(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("date")
            .timestamp_millis()
    }

    #[test]
    fn empty_and_null_filters_mean_no_condition() {
        assert_eq!(parse_param("").expect("ok"), Filter::all());
        assert_eq!(parse_param("{}").expect("ok"), Filter::all());
        assert_eq!(p(Value::Null), Filter::all());
        assert_eq!(p(json!({"$and": [], "$or": []})), Filter::all());
    }

    #[test]
    fn bare_values_mean_eq_and_arrays_mean_in() {
        assert_eq!(
            p(json!({"unread": true})),
            cond(Field::Unread, Pred::Bool(true))
        );
        assert_eq!(
            p(json!({"folder": "inbox"})),
            cond(
                Field::Folder,
                Pred::Text {
                    value: "inbox".into(),
                    negated: false
                }
            )
        );
        assert_eq!(
            p(json!({"accountId": [1, "2"]})),
            cond(
                Field::AccountId,
                Pred::IntIn {
                    values: vec![1, 2],
                    negated: false
                }
            )
        );
    }

    #[test]
    fn every_comparison_operator() {
        for (op, c) in [
            ("$eq", CmpOp::Eq),
            ("$ne", CmpOp::Ne),
            ("$gt", CmpOp::Gt),
            ("$gte", CmpOp::Ge),
            ("$lt", CmpOp::Lt),
            ("$lte", CmpOp::Le),
        ] {
            assert_eq!(
                p(json!({"size": {op: 10}})),
                cond(Field::Size, Pred::Int(c, 10)),
                "{op}"
            );
        }
        assert_eq!(
            p(json!({"id": {"$notIn": [3]}})),
            cond(
                Field::Id,
                Pred::IntIn {
                    values: vec![3],
                    negated: true
                }
            )
        );
        assert_eq!(p(json!({"id": {"$in": []}})), Filter::Const(false));
        assert_eq!(p(json!({"id": {"$notIn": []}})), Filter::Const(true));
        assert_eq!(
            p(json!({"folder": {"$in": ["inbox", "archive"]}})),
            cond(
                Field::Folder,
                Pred::TextIn {
                    values: vec!["inbox".into(), "archive".into()],
                    negated: false
                }
            )
        );
        assert_eq!(
            p(json!({"folder": {"$ne": "trash"}})),
            cond(
                Field::Folder,
                Pred::Text {
                    value: "trash".into(),
                    negated: true
                }
            )
        );
    }

    #[test]
    fn includes_empty_and_boolean_operators() {
        assert_eq!(
            p(json!({"subject": {"$includes": "Invoice"}})),
            cond(
                Field::Subject,
                Pred::Includes {
                    needle: "Invoice".into(),
                    negated: false
                }
            )
        );
        assert_eq!(
            p(json!({"to": {"$notIncludes": "bob"}})),
            cond(
                Field::To,
                Pred::Includes {
                    needle: "bob".into(),
                    negated: true
                }
            )
        );
        assert_eq!(
            p(json!({"providerLabels": {"$includes": "IMPORTANT"}})),
            cond(
                Field::ProviderLabels,
                Pred::Includes {
                    needle: "IMPORTANT".into(),
                    negated: false
                }
            )
        );
        assert_eq!(
            p(json!({"subject": {"$includes": ""}})),
            Filter::Const(true)
        );
        assert_eq!(
            p(json!({"cc": {"$empty": true}})),
            cond(Field::Cc, Pred::Empty { negated: false })
        );
        assert_eq!(
            p(json!({"messageId": {"$notEmpty": true}})),
            cond(Field::MessageId, Pred::Empty { negated: true })
        );
        assert_eq!(p(json!({"date": {"$empty": true}})), Filter::Const(false));
        assert_eq!(
            p(json!({"starred": {"$isTruly": true}})),
            cond(Field::Starred, Pred::Bool(true))
        );
        assert_eq!(
            p(json!({"todo": {"$isFalsy": true}})),
            cond(Field::Todo, Pred::Bool(false))
        );
        assert_eq!(
            p(json!({"unread": {"$ne": "true"}})),
            cond(Field::Unread, Pred::Bool(false))
        );
        assert_eq!(
            p(json!({"messageId": null})),
            cond(Field::MessageId, Pred::Empty { negated: false })
        );
        assert_eq!(
            p(json!({"messageId": "<a@b>"})),
            cond(
                Field::MessageId,
                Pred::Text {
                    value: "a@b".into(),
                    negated: false
                }
            )
        );
    }

    #[test]
    fn date_operators_follow_nocobase() {
        let d24 = day("2026-11-24T00:00:00Z");
        let d25 = day("2026-11-25T00:00:00Z");
        let on = |a, b| {
            Filter::And(vec![
                cond(Field::Date, Pred::Int(CmpOp::Ge, a)),
                cond(Field::Date, Pred::Int(CmpOp::Lt, b)),
            ])
        };
        assert_eq!(p(json!({"date": {"$dateOn": "2026-11-24"}})), on(d24, d25));
        assert_eq!(p(json!({"date": "2026-11-24"})), on(d24, d25));
        assert_eq!(
            p(json!({"date": {"$dateNotOn": "2026-11-24"}})),
            Filter::Or(vec![
                cond(Field::Date, Pred::Int(CmpOp::Lt, d24)),
                cond(Field::Date, Pred::Int(CmpOp::Ge, d25)),
            ])
        );
        assert_eq!(
            p(json!({"date": {"$dateBefore": "2026-11-24"}})),
            cond(Field::Date, Pred::Int(CmpOp::Lt, d24))
        );
        assert_eq!(
            p(json!({"date": {"$dateNotBefore": "2026-11-24"}})),
            cond(Field::Date, Pred::Int(CmpOp::Ge, d24))
        );
        assert_eq!(
            p(json!({"date": {"$dateAfter": "2026-11-24"}})),
            cond(Field::Date, Pred::Int(CmpOp::Ge, d25))
        );
        assert_eq!(
            p(json!({"date": {"$dateNotAfter": "2026-11-24"}})),
            cond(Field::Date, Pred::Int(CmpOp::Lt, d25))
        );
        assert_eq!(
            p(json!({"date": {"$dateAfter": "2026-11-24T10:00:00Z"}})),
            cond(Field::Date, Pred::Int(CmpOp::Gt, d24 + 36_000_000))
        );
        assert_eq!(
            p(json!({"date": {"$dateBetween": ["2026-11-24", "2026-11-24"]}})),
            on(d24, d25)
        );
        assert_eq!(
            p(json!({"date": {"$dateOn": "2026-11"}})),
            on(day("2026-11-01T00:00:00Z"), day("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            p(json!({"date": {"$dateOn": "2026-12"}})),
            on(day("2026-12-01T00:00:00Z"), day("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            p(json!({"date": {"$dateOn": "2026"}})),
            on(day("2026-01-01T00:00:00Z"), day("2027-01-01T00:00:00Z"))
        );
        // A day in UTC+8 starts 8 hours before the UTC day.
        assert_eq!(
            p(json!({"date": {"$dateOn": "2026-11-24+08:00"}})),
            on(d24 - 28_800_000, d25 - 28_800_000)
        );
        assert_eq!(
            p(json!({"date": {"$gte": 1_795_000_000_000i64}})),
            cond(Field::Date, Pred::Int(CmpOp::Ge, 1_795_000_000_000))
        );
        assert_eq!(
            p(json!({"date": {"$lt": "2026-11-24 10:00:00"}})),
            cond(Field::Date, Pred::Int(CmpOp::Lt, d24 + 36_000_000))
        );
    }

    #[test]
    fn nesting_and_several_operators_on_one_field() {
        let f = p(json!({
            "$or": [
                {"unread": true},
                {"$and": [{"starred": true}, {"from": {"$includes": "ann"}}]}
            ],
            "size": {"$gte": 1, "$lt": 100}
        }));
        assert_eq!(
            f,
            Filter::And(vec![
                Filter::Or(vec![
                    cond(Field::Unread, Pred::Bool(true)),
                    Filter::And(vec![
                        cond(Field::Starred, Pred::Bool(true)),
                        cond(
                            Field::From,
                            Pred::Includes {
                                needle: "ann".into(),
                                negated: false
                            }
                        ),
                    ]),
                ]),
                Filter::And(vec![
                    cond(Field::Size, Pred::Int(CmpOp::Ge, 1)),
                    cond(Field::Size, Pred::Int(CmpOp::Lt, 100)),
                ]),
            ])
        );
        assert_eq!(f.conjuncts().len(), 3);
    }

    #[test]
    fn errors_name_the_field_or_operator() {
        assert!(err(json!({"nope": 1})).contains("unknown field \"nope\""));
        assert!(err(json!({"subject": {"$like": "x"}}))
            .contains("unknown operator \"$like\" on subject"));
        assert!(err(json!({"$not": {}})).contains("unknown operator \"$not\""));
        assert!(err(json!({"subject": {"$gt": "x"}})).contains("$gt does not apply to subject"));
        assert!(err(json!({"unread": {"$includes": "x"}})).contains("does not apply to unread"));
        assert!(err(json!({"to": {"$eq": "x"}})).contains("does not apply to to"));
        assert!(err(json!({"size": {"$isTruly": true}})).contains("does not apply to size"));
        assert!(err(json!({"unread": "maybe"})).contains("unread.$eq expects true or false"));
        assert!(err(json!({"accountId": "x"})).contains("accountId.$eq expects an integer"));
        assert!(err(json!({"accountId": {"$in": 3}})).contains("expects a list"));
        assert!(
            err(json!({"date": {"$dateOn": "24/11/2026"}})).contains("date.$dateOn expects a date")
        );
        assert!(err(json!({"date": {"$dateOn": "2026-13-01"}})).contains("expects a date"));
        assert!(err(json!({"date": {"$dateBetween": ["2026-01-01"]}})).contains("[from, to]"));
        assert!(err(json!({"$and": {"unread": true}})).contains("$and takes an array"));
        assert!(err(json!({"$or": [1]})).contains("must be an object"));
        assert!(err(json!([1])).contains("must be a JSON object"));
        assert!(parse_param("{bad")
            .expect_err("json")
            .message
            .contains("not valid JSON"));
        let mut deep = json!({"unread": true});
        for _ in 0..20 {
            deep = json!({ "$and": [deep] });
        }
        assert!(err(deep).contains("nested deeper"));
        let wide: Vec<Value> = (0..250).map(|i| json!({"id": i})).collect();
        assert!(err(json!({ "$or": wide })).contains("more than 200 conditions"));
    }
}
