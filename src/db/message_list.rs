//! Read queries of the mail center: `mailMessages:list` (filters, search, sort, thread grouping,
//! counts), `get`, attachments. Sync's writes live in `messages`.
//!
//! The list query is built as SQL text with bound parameters, because it differs per backend
//! where it matters (full-text search) and needs the same filter twice for thread grouping. Every
//! value is a bound parameter; only fixed column names and operators are written into the text.
//!
//! What keeps it fast at 100k messages per account (see docs/api.md, "Performance"):
//! - every list is scoped by `user_id` and sorted `date DESC, id DESC` by default, which the
//!   indexes of migrations 2 and 3 serve directly (by folder, unread, starred, to-do);
//! - the count comes from `mail_message_counts` (kept by triggers) when the filter is only about
//!   accounts, folders and read or star state; from the FTS5 index alone for a search scoped by
//!   account and well-known folder; from the page itself when it is the last page; on
//!   PostgreSQL, from the planner's estimate for a full page of a broad search or substring
//!   filter (see [`ESTIMATE_ABOVE`]);
//! - SQLite search is FTS5, PostgreSQL search a GIN index on `to_tsvector('simple', …)`.

use std::collections::{BTreeSet, HashMap};

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::Sqlite;

use super::models::{MailAttachmentRow, MailMessageRow};
use super::schema::{mail_accounts, mail_attachments, mail_messages};
use super::{DbConnection, DbError};
use crate::api::filter::{CmpOp, Field, Filter, Kind, Pred};
use crate::providers::folder;

/// The longest text indexed per message; past it a body is not searched (PostgreSQL refuses
/// tsvectors over 1 MB, and nobody searches for the 200,001st character).
pub const SEARCH_DOCUMENT_MAX: usize = 200_000;
/// Words in one `search`.
pub const MAX_SEARCH_WORDS: usize = 16;

/// The text both search indexes read (`mail_messages.search_text`): `parts` lower-cased, one per
/// line, at most [`SEARCH_DOCUMENT_MAX`] bytes. The indexes cut it into words the way
/// [`search_words`] cuts a search: SQLite's unicode61 tokenizer at every space and punctuation
/// mark, PostgreSQL's parser after [`PG_SEPARATORS`] became spaces (so an address
/// `ann.lee@example.com` is the words `ann lee example com` on both).
pub fn search_document(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        let part = part.to_lowercase();
        if !out.is_empty() {
            out.push('\n');
        }
        if out.len() + part.len() > SEARCH_DOCUMENT_MAX {
            let mut end = SEARCH_DOCUMENT_MAX
                .saturating_sub(out.len())
                .min(part.len());
            while !part.is_char_boundary(end) {
                end -= 1;
            }
            out.push_str(&part[..end]);
            return out;
        }
        out.push_str(&part);
    }
    out
}

/// Characters PostgreSQL's text-search parser would keep inside a token (addresses, host names,
/// URLs, paths, hyphenated words, signed and decimal numbers), turned into spaces before it
/// parses `search_text` (index and query use the same expression, `PG_DOCUMENT`).
pub const PG_SEPARATORS: &str = "@./-_:+\\~#=&?%";

/// The expression of `mail_messages.search_tsv` on PostgreSQL (migrations 3 and 13), for alias
/// `{a}`; queries read the stored column.
#[cfg(test)]
fn pg_document(a: &str) -> String {
    let spaces = " ".repeat(PG_SEPARATORS.chars().count());
    format!("to_tsvector('simple'::regconfig, translate({a}.search_text, '{PG_SEPARATORS}', '{spaces}'))")
}

/// The words of a `search` parameter, as `search_document` cuts them.
pub fn search_words(q: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    words(q).filter(|w| seen.insert(w.clone())).collect()
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Date,
    Subject,
    From,
    Size,
    Id,
    /// Messages without a due date come last, either way.
    TodoDueAt,
}

impl SortKey {
    pub const NAMES: &'static [(&'static str, SortKey)] = &[
        ("date", SortKey::Date),
        ("subject", SortKey::Subject),
        ("from", SortKey::From),
        ("size", SortKey::Size),
        ("id", SortKey::Id),
        ("todoDueAt", SortKey::TodoDueAt),
    ];

    pub fn parse(name: &str) -> Option<SortKey> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }

    fn sql(self, a: &str) -> String {
        match self {
            SortKey::Date => format!("{a}.date"),
            SortKey::Subject => format!("LOWER({a}.subject)"),
            SortKey::From => format!(
                "LOWER(CASE WHEN {a}.from_name <> '' THEN {a}.from_name ELSE {a}.from_address END)"
            ),
            SortKey::Size => format!("{a}.size"),
            SortKey::Id => format!("{a}.id"),
            SortKey::TodoDueAt => format!("{a}.todo_due_at"),
        }
    }

    /// The ORDER BY terms for this key.
    fn order(self, a: &str, desc: bool) -> String {
        let dir = if desc { "DESC" } else { "ASC" };
        match self {
            SortKey::TodoDueAt => format!(
                "CASE WHEN {a}.todo_due_at IS NULL THEN 1 ELSE 0 END ASC, {a}.todo_due_at {dir}"
            ),
            other => format!("{} {dir}", other.sql(a)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub user_id: i64,
    pub filter: Filter,
    /// Words that must all occur (as word prefixes); empty: no search.
    pub search: Vec<String>,
    /// `(key, descending)`; `id` is added as the last tie-breaker.
    pub sort: Vec<(SortKey, bool)>,
    /// One row per thread: its latest message among those matching.
    pub group_by_thread: bool,
    pub limit: i64,
    pub offset: i64,
    /// PostgreSQL: count every match even where that means reading each one (see
    /// [`ESTIMATE_ABOVE`]).
    pub exact_count: bool,
}

/// A message as lists show it (no bodies).
#[derive(Debug, Clone, QueryableByName)]
#[diesel(table_name = mail_messages)]
pub struct ListRow {
    pub id: i64,
    pub account_id: i64,
    pub provider_message_id: String,
    pub thread_id: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references_header: Option<String>,
    pub from_address: String,
    pub from_name: String,
    pub to_json: String,
    pub cc_json: String,
    pub bcc_json: String,
    pub reply_to_json: String,
    pub subject: String,
    pub snippet: String,
    pub date: i64,
    pub folder: String,
    pub provider_labels: String,
    pub unread: bool,
    pub starred: bool,
    pub todo: bool,
    pub draft: bool,
    pub has_attachments: bool,
    pub size: i64,
    pub todo_due_at: Option<i64>,
}

const LIST_COLUMNS: &[&str] = &[
    "id",
    "account_id",
    "provider_message_id",
    "thread_id",
    "message_id",
    "in_reply_to",
    "references_header",
    "from_address",
    "from_name",
    "to_json",
    "cc_json",
    "bcc_json",
    "reply_to_json",
    "subject",
    "snippet",
    "date",
    "folder",
    "provider_labels",
    "unread",
    "starred",
    "todo",
    "draft",
    "has_attachments",
    "size",
    "todo_due_at",
];

fn list_columns() -> String {
    LIST_COLUMNS
        .iter()
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<MailMessageRow> for ListRow {
    fn from(m: MailMessageRow) -> Self {
        ListRow {
            id: m.id,
            account_id: m.account_id,
            provider_message_id: m.provider_message_id,
            thread_id: m.thread_id,
            message_id: m.message_id,
            in_reply_to: m.in_reply_to,
            references_header: m.references_header,
            from_address: m.from_address,
            from_name: m.from_name,
            to_json: m.to_json,
            cc_json: m.cc_json,
            bcc_json: m.bcc_json,
            reply_to_json: m.reply_to_json,
            subject: m.subject,
            snippet: m.snippet,
            date: m.date,
            folder: m.folder,
            provider_labels: m.provider_labels,
            unread: m.unread,
            starred: m.starred,
            todo: m.todo,
            draft: m.draft,
            has_attachments: m.has_attachments,
            size: m.size,
            todo_due_at: m.todo_due_at,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadStats {
    pub count: i64,
    pub unread: i64,
}

#[derive(Debug, Default)]
pub struct ListPage {
    pub rows: Vec<ListRow>,
    pub count: i64,
    /// `count` is the planner's estimate, not an exact number (PostgreSQL, see
    /// [`ESTIMATE_ABOVE`]).
    pub count_estimated: bool,
    /// For `group_by_thread`: per (account, thread id) of the rows.
    pub threads: HashMap<(i64, String), ThreadStats>,
}

// ---- SQL text with binds ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Pg,
}

#[derive(Debug, Clone)]
enum Bind {
    Int(i64),
    Text(String),
}

struct Sql {
    dialect: Dialect,
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn new(dialect: Dialect) -> Self {
        Sql {
            dialect,
            text: String::with_capacity(512),
            binds: Vec::new(),
        }
    }
    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    fn placeholder(&mut self) {
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Pg => {
                let n = self.binds.len();
                self.text.push_str(&format!("${n}"));
            }
        }
    }
    fn int(&mut self, v: i64) -> &mut Self {
        self.binds.push(Bind::Int(v));
        self.placeholder();
        self
    }
    fn text(&mut self, v: impl Into<String>) -> &mut Self {
        self.binds.push(Bind::Text(v.into()));
        self.placeholder();
        self
    }
    fn ints(&mut self, vs: &[i64]) -> &mut Self {
        self.push("(");
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.int(*v);
        }
        self.push(")")
    }
    fn texts(&mut self, vs: &[String]) -> &mut Self {
        self.push("(");
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(v.clone());
        }
        self.push(")")
    }
}

fn dialect(conn: &DbConnection) -> Dialect {
    match conn {
        DbConnection::Sqlite(_) => Dialect::Sqlite,
        DbConnection::Pg(_) => Dialect::Pg,
    }
}

fn load<T>(conn: &mut DbConnection, sql: Sql) -> Result<Vec<T>, DbError>
where
    T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
{
    fn bound<'a, DB>(
        sql: Sql,
    ) -> diesel::query_builder::BoxedSqlQuery<'a, DB, diesel::query_builder::SqlQuery>
    where
        DB: diesel::backend::Backend
            + diesel::sql_types::HasSqlType<BigInt>
            + diesel::sql_types::HasSqlType<Text>,
        i64: diesel::serialize::ToSql<BigInt, DB>,
        String: diesel::serialize::ToSql<Text, DB>,
        diesel::query_builder::SqlQuery: QueryFragment<DB>,
    {
        let mut q = diesel::sql_query(sql.text).into_boxed::<DB>();
        for b in sql.binds {
            q = match b {
                Bind::Int(v) => q.bind::<BigInt, _>(v),
                Bind::Text(v) => q.bind::<Text, _>(v),
            };
        }
        q
    }
    Ok(match conn {
        DbConnection::Sqlite(c) => bound::<Sqlite>(sql).load(c)?,
        DbConnection::Pg(c) => bound::<Pg>(sql).load(c)?,
    })
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut DbConnection, sql: Sql) -> Result<i64, DbError> {
    Ok(load::<Count>(conn, sql)?.first().map(|c| c.n).unwrap_or(0))
}

// ---- filters ----

fn column(field: Field) -> &'static str {
    match field {
        Field::Id => "id",
        Field::AccountId => "account_id",
        Field::ProviderMessageId => "provider_message_id",
        Field::ThreadId => "thread_id",
        Field::MessageId => "message_id",
        Field::InReplyTo => "in_reply_to",
        Field::References => "references_header",
        Field::From => "from_address",
        Field::To => "to_json",
        Field::Cc => "cc_json",
        Field::Bcc => "bcc_json",
        Field::ReplyTo => "reply_to_json",
        Field::Subject => "subject",
        Field::Snippet => "snippet",
        Field::Date => "date",
        Field::Folder => "folder",
        Field::ProviderLabels => "provider_labels",
        Field::Unread => "unread",
        Field::Starred => "starred",
        Field::Todo => "todo",
        Field::Draft => "draft",
        Field::HasAttachments => "has_attachments",
        Field::Size => "size",
        Field::Labels | Field::LabelId => "id",
        Field::TodoDueAt => "todo_due_at",
    }
}

/// PostgreSQL's generated lower-cased copy of a recipients column (migration 15).
fn lowered_column(field: Field) -> Option<&'static str> {
    match field {
        Field::To => Some("to_lower"),
        Field::Cc => Some("cc_lower"),
        Field::Bcc => Some("bcc_lower"),
        Field::ReplyTo => Some("reply_to_lower"),
        _ => None,
    }
}

/// `%needle%` for LIKE … ESCAPE '\', lower-cased like the column it is compared with.
fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

const ESCAPE: &str = " ESCAPE '\\'";

/// Whether `needle` can only match inside a name or an address of a recipients column written
/// by sync (`[{"address":"…","name":"…"}]`, compact): it holds no JSON punctuation and is no
/// part of a key. Quotes, backslashes and control characters are ruled out by the caller.
fn outside_json_syntax(needle: &str) -> bool {
    let n = needle.to_lowercase();
    !n.is_empty()
        && !n.contains(['{', '}', '[', ']', ':', ','])
        && !"address".contains(n.as_str())
        && !"name".contains(n.as_str())
}

fn render(sql: &mut Sql, f: &Filter, a: &str) {
    match f {
        Filter::Const(true) => {
            sql.push("1 = 1");
        }
        Filter::Const(false) => {
            sql.push("1 = 0");
        }
        Filter::And(items) | Filter::Or(items) if items.is_empty() => {
            sql.push(if matches!(f, Filter::And(_)) {
                "1 = 1"
            } else {
                "1 = 0"
            });
        }
        Filter::And(items) | Filter::Or(items) => {
            let joiner = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.push(joiner);
                }
                render(sql, item, a);
            }
            sql.push(")");
        }
        Filter::Cond(field, pred) => render_cond(sql, *field, pred, a),
    }
}

fn render_cond(sql: &mut Sql, field: Field, pred: &Pred, a: &str) {
    let col = format!("{a}.{}", column(field));
    let kind = field.kind();
    if kind == Kind::LabelSet {
        let (negated, values) = match pred {
            Pred::IntIn { values, negated } => (*negated, Some(values)),
            Pred::Empty { negated } => (!*negated, None),
            _ => (false, None),
        };
        sql.push(&format!(
            "{}EXISTS (SELECT 1 FROM mail_message_labels ml WHERE ml.message_id = {a}.id",
            if negated { "NOT " } else { "" }
        ));
        if let Some(values) = values {
            sql.push(" AND ml.label_id IN ").ints(values);
        }
        sql.push(")");
        return;
    }
    match pred {
        Pred::Int(op, v) => {
            let op = match op {
                CmpOp::Eq => "=",
                CmpOp::Ne => "<>",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
            };
            sql.push(&format!("{col} {op} ")).int(*v);
        }
        Pred::IntIn { values, negated } => {
            sql.push(&format!("{col} {}IN ", if *negated { "NOT " } else { "" }))
                .ints(values);
        }
        Pred::Bool(true) => {
            sql.push(&col);
        }
        Pred::Bool(false) => {
            sql.push(&format!("NOT {col}"));
        }
        Pred::Text { value, negated } => match kind {
            Kind::Sender => {
                sql.push(&format!(
                    "LOWER({col}) {} ",
                    if *negated { "<>" } else { "=" }
                ))
                .text(value.to_lowercase());
            }
            Kind::OptText if *negated => {
                sql.push(&format!("({col} IS NULL OR {col} <> "))
                    .text(value.clone())
                    .push(")");
            }
            _ => {
                sql.push(&format!("{col} {} ", if *negated { "<>" } else { "=" }))
                    .text(value.clone());
            }
        },
        Pred::TextIn { values, negated } => {
            let not = if *negated { "NOT " } else { "" };
            match kind {
                Kind::Sender => {
                    let lower: Vec<String> = values.iter().map(|v| v.to_lowercase()).collect();
                    sql.push(&format!("LOWER({col}) {not}IN ")).texts(&lower);
                }
                Kind::OptText if *negated => {
                    sql.push(&format!("({col} IS NULL OR {col} NOT IN "))
                        .texts(values)
                        .push(")");
                }
                _ => {
                    sql.push(&format!("{col} {not}IN ")).texts(values);
                }
            }
        }
        Pred::Includes { needle, negated } => {
            if *negated {
                sql.push("NOT ");
            }
            sql.push("(");
            includes(sql, field, needle, a);
            sql.push(")");
        }
        Pred::Empty { negated } => {
            if *negated {
                sql.push("NOT ");
            }
            match kind {
                Kind::OptText => sql.push(&format!("({col} IS NULL OR {col} = '')")),
                Kind::Sender => {
                    sql.push(&format!("({a}.from_address = '' AND {a}.from_name = '')"))
                }
                Kind::Addresses | Kind::Labels => sql.push(&format!("({col} = '[]')")),
                Kind::OptDate => sql.push(&format!("({col} IS NULL)")),
                _ => sql.push(&format!("({col} = '')")),
            };
        }
    }
}

fn includes(sql: &mut Sql, field: Field, needle: &str, a: &str) {
    let col = format!("{a}.{}", column(field));
    match field.kind() {
        Kind::Sender => {
            let p = like_pattern(needle);
            sql.push(&format!("LOWER({a}.from_address) LIKE "))
                .text(p.clone())
                .push(ESCAPE)
                .push(&format!(" OR LOWER({a}.from_name) LIKE "))
                .text(p)
                .push(ESCAPE);
        }
        Kind::Addresses => {
            let p = like_pattern(needle);
            // The cheap LIKE over the JSON text rules most rows out; the JSON walk then makes sure
            // the match is in a name or an address, not in a key. Text JSON escapes (quotes,
            // backslashes, control characters) cannot be pre-filtered that way.
            let prefilter = !needle.contains(|c: char| c == '"' || c == '\\' || c.is_control());
            if prefilter {
                // PostgreSQL stores the lower-cased JSON (migration 15): lower-casing it on
                // every row the date walk reads was half of the page's time.
                let lowered = match (sql.dialect, lowered_column(field)) {
                    (Dialect::Pg, Some(stored)) => format!("{a}.{stored}"),
                    _ => format!("LOWER({col})"),
                };
                sql.push(&format!("{lowered} LIKE "))
                    .text(p.clone())
                    .push(ESCAPE)
                    .push(" AND ");
            }
            // A row whose JSON holds no backslash has no escapes: there a needle that is no part
            // of the JSON syntax or keys matches exactly where the text does, and the JSON walk
            // (a few µs a row) is needed only for the rare row with escapes.
            let plain = prefilter && outside_json_syntax(needle);
            if plain {
                let f = match sql.dialect {
                    Dialect::Sqlite => "instr",
                    Dialect::Pg => "strpos",
                };
                sql.push(&format!("({f}({col}, '\\') = 0 OR "));
            }
            match sql.dialect {
                Dialect::Sqlite => sql
                    .push(&format!(
                        "EXISTS (SELECT 1 FROM json_each({col}) j WHERE \
                         LOWER(COALESCE(json_extract(j.value, '$.address'), '')) LIKE "
                    ))
                    .text(p.clone())
                    .push(ESCAPE)
                    .push(" OR LOWER(COALESCE(json_extract(j.value, '$.name'), '')) LIKE ")
                    .text(p)
                    .push(ESCAPE)
                    .push(")"),
                Dialect::Pg => sql
                    .push(&format!(
                        "EXISTS (SELECT 1 FROM jsonb_array_elements(CAST({col} AS jsonb)) j(e) WHERE \
                         LOWER(COALESCE(e->>'address', '')) LIKE "
                    ))
                    .text(p.clone())
                    .push(ESCAPE)
                    .push(" OR LOWER(COALESCE(e->>'name', '')) LIKE ")
                    .text(p)
                    .push(ESCAPE)
                    .push(")"),
            };
            if plain {
                sql.push(")");
            }
        }
        Kind::Labels => {
            // Labels are a JSON array of strings: a label is present when its JSON string is.
            let quoted = serde_json::Value::String(needle.to_string()).to_string();
            let f = match sql.dialect {
                Dialect::Sqlite => "instr",
                Dialect::Pg => "strpos",
            };
            sql.push(&format!("{f}({col}, ")).text(quoted).push(") > 0");
        }
        _ => {
            sql.push(&format!("COALESCE(LOWER({col}), '') LIKE "))
                .text(like_pattern(needle))
                .push(ESCAPE);
        }
    }
}

// ---- search ----

/// The accounts a list can see: the user's, narrowed by the filter's top-level account
/// conditions. Answers the narrowed set and whether every other top-level condition is one the
/// full-text index answers by itself (accounts, well-known folders).
fn narrow(filter: &Filter, user_accounts: &[i64]) -> (Vec<i64>, Option<Vec<String>>, bool) {
    let mut accounts: BTreeSet<i64> = user_accounts.iter().copied().collect();
    let mut folders: Option<Vec<String>> = None;
    let mut index_only = true;
    for c in filter.conjuncts() {
        match c {
            Filter::Cond(Field::AccountId, Pred::Int(CmpOp::Eq, v)) => accounts.retain(|a| a == v),
            Filter::Cond(Field::AccountId, Pred::Int(CmpOp::Ne, v)) => {
                accounts.remove(v);
            }
            Filter::Cond(Field::AccountId, Pred::IntIn { values, negated }) => {
                accounts.retain(|a| values.contains(a) != *negated)
            }
            Filter::Cond(
                Field::Folder,
                Pred::Text {
                    value,
                    negated: false,
                },
            ) if folders.is_none() && folder::WELL_KNOWN.contains(&value.as_str()) => {
                folders = Some(vec![value.clone()])
            }
            Filter::Cond(
                Field::Folder,
                Pred::TextIn {
                    values,
                    negated: false,
                },
            ) if folders.is_none()
                && values
                    .iter()
                    .all(|v| folder::WELL_KNOWN.contains(&v.as_str())) =>
            {
                folders = Some(values.clone())
            }
            Filter::Const(true) => {}
            _ => index_only = false,
        }
    }
    (accounts.into_iter().collect(), folders, index_only)
}

/// The trigram index of the account's distinct senders (migration 17), keyed
/// `account << 40 | sender id`: its matches name senders, whose messages an index on the sender
/// gives.
const SENDERS_TRGM: &str = "mail_senders_trgm";

/// The trigram index (the senders', or the messages' one of recipients and subject) and its
/// columns for the fields whose `$includes` it answers.
fn trigram_column(field: Field) -> Option<(&'static str, &'static str)> {
    const REST: &str = "mail_messages_trgm";
    Some(match field {
        Field::From => (SENDERS_TRGM, "{from_name from_address}"),
        Field::To => (REST, "to_text"),
        Field::Cc => (REST, "cc_text"),
        Field::Bcc => (REST, "bcc_text"),
        Field::ReplyTo => (REST, "reply_to_text"),
        Field::Subject => (REST, "subject"),
        _ => return None,
    })
}

/// A needle the trigram index answers exactly: three characters at least (a trigram index
/// cannot look up fewer), no control characters (the recipients are indexed one per line), and
/// no quotes or backslashes (the LIKE conditions leave the JSON walk to those).
fn trigram_needle(field: Field, needle: &str) -> Option<(&'static str, &'static str)> {
    let usable = needle.chars().count() >= 3
        && !needle.contains(|c: char| c == '"' || c == '\\' || c.is_control());
    usable.then(|| trigram_column(field)).flatten()
}

/// The trigram queries (index, MATCH expression) for the filter's top-level `$includes`
/// conditions the indexes can answer, and whether they are the whole filter (every other
/// condition is on the account, which the key ranges answer): then their matches are the answer
/// and their number the count. The needle is lower-cased as `like_pattern` does; the indexes
/// hold SQLite's LOWER of each column and compare case-sensitively, so they match what the LIKE
/// matches.
fn substring_match(filter: &Filter) -> Option<(Vec<(&'static str, String)>, bool)> {
    let mut exact = true;
    let mut queries: Vec<(&'static str, Vec<String>)> = Vec::new();
    for c in filter.conjuncts() {
        match c {
            Filter::Cond(
                field,
                Pred::Includes {
                    needle,
                    negated: false,
                },
            ) => match trigram_needle(*field, needle) {
                Some((index, column)) => {
                    let term = format!("{column} : \"{}\"", needle.to_lowercase());
                    match queries.iter_mut().find(|(i, _)| *i == index) {
                        Some((_, terms)) => terms.push(term),
                        None => queries.push((index, vec![term])),
                    }
                }
                None => exact = false,
            },
            c if on_accounts_only(c) => {}
            _ => exact = false,
        }
    }
    let queries: Vec<(&'static str, String)> = queries
        .into_iter()
        .map(|(index, terms)| (index, terms.join(" AND ")))
        .collect();
    (!queries.is_empty()).then_some((queries, exact))
}

/// The FTS5 query of the words: every word as a prefix.
fn fts_match(words: &[String]) -> String {
    words
        .iter()
        // Words are letters and digits only (search_words), so quoting cannot be broken.
        .map(|w| format!("\"{w}\"*"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

// ---- search keys ----
//
// Both SQLite full-text indexes are keyed `account << 40 | folder code << 37 | message id`
// (migration 12), so the messages of an account, or of an account's well-known folder, are one
// range of keys: FTS5 seeks to it instead of intersecting with a term every message carries.

const KEY_ACCOUNT_SHIFT: u32 = 40;
const KEY_FOLDER_SHIFT: u32 = 37;
/// The message id in a search key.
pub const KEY_ID_MASK: i64 = (1 << KEY_FOLDER_SHIFT) - 1;

/// The folder's code in a search key, as migration 12's triggers compute it.
pub fn folder_code(name: &str) -> i64 {
    match name {
        folder::INBOX => 1,
        folder::SENT => 2,
        folder::DRAFTS => 3,
        folder::ARCHIVE => 4,
        folder::SPAM => 5,
        folder::TRASH => 6,
        _ => 0,
    }
}

/// The key ranges `[from, to)` of the accounts, narrowed to the well-known folders when given.
pub fn key_ranges(accounts: &[i64], folders: Option<&[String]>) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &a in accounts {
        let base = a << KEY_ACCOUNT_SHIFT;
        match folders {
            None => out.push((base, (a + 1) << KEY_ACCOUNT_SHIFT)),
            Some(folders) => {
                let codes: BTreeSet<i64> = folders.iter().map(|f| folder_code(f)).collect();
                out.extend(codes.into_iter().map(|c| {
                    (
                        base | (c << KEY_FOLDER_SHIFT),
                        base | ((c + 1) << KEY_FOLDER_SHIFT),
                    )
                }));
            }
        }
    }
    out
}

/// `SELECT <message id> AS id FROM <index> WHERE MATCH … ` over each key range, as one
/// UNION ALL (FTS5 takes one rowid range per scan).
fn push_keyed_matches(sql: &mut Sql, index: &str, query: &str, ranges: &[(i64, i64)]) {
    for (i, (from, to)) in ranges.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push(&format!(
            "SELECT rowid & {KEY_ID_MASK} AS id FROM {index} WHERE {index} MATCH "
        ))
        .text(query)
        .push(" AND rowid >= ")
        .int(*from)
        .push(" AND rowid < ")
        .int(*to);
    }
}

/// Matches of an index read once: how many (up to `limit + 1`) and their message ids as a JSON
/// array, which the list query binds as one parameter. Aggregated by SQLite: handing thousands
/// of ids over row by row costs more than finding them.
#[derive(Debug, Clone, QueryableByName)]
struct Matches {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Text)]
    ids: String,
}

fn keyed_matches(
    conn: &mut DbConnection,
    index: &str,
    query: &str,
    ranges: &[(i64, i64)],
    limit: i64,
) -> Result<Matches, DbError> {
    let mut sql = Sql::new(dialect(conn));
    sql.push("SELECT COUNT(*) AS n, json_group_array(id) AS ids FROM (");
    if index == SENDERS_TRGM {
        // The order is forced: few senders match, each is one range of the sender index,
        // and no message row is read.
        sql.push("SELECT m.id AS id FROM (");
        push_keyed_matches(&mut sql, index, query, ranges);
        sql.push(
            ") x CROSS JOIN mail_senders s ON s.id = x.id \
             CROSS JOIN mail_messages m INDEXED BY mail_messages_account_sender \
             ON m.account_id = s.account_id AND m.from_address = s.from_address \
             AND m.from_name = s.from_name",
        );
    } else {
        push_keyed_matches(&mut sql, index, query, ranges);
    }
    sql.push(" LIMIT ").int(limit + 1).push(")");
    Ok(load::<Matches>(conn, sql)?
        .into_iter()
        .next()
        .unwrap_or(Matches {
            n: 0,
            ids: "[]".into(),
        }))
}

impl Matches {
    /// The ids, sorted.
    fn sorted(&self) -> Result<Vec<i64>, DbError> {
        let mut ids: Vec<i64> = serde_json::from_str(&self.ids).map_err(|e| {
            DbError::Query(diesel::result::Error::DeserializationError(Box::new(e)))
        })?;
        ids.sort_unstable();
        Ok(ids)
    }
}

/// The ids both match sets hold.
fn intersect(a: &Matches, b: &Matches) -> Result<Matches, DbError> {
    let theirs = b.sorted()?;
    let both: Vec<i64> = a
        .sorted()?
        .into_iter()
        .filter(|i| theirs.binary_search(i).is_ok())
        .collect();
    Ok(Matches {
        n: both.len() as i64,
        ids: serde_json::Value::from(both).to_string(),
    })
}

#[diesel::declare_sql_function]
extern "SQL" {
    /// Whether a message is among the matches of the running list (`bind_hits`).
    fn em_search_hit(id: BigInt) -> diesel::sql_types::Bool;
}

/// Makes `em_search_hit` answer from `m` on this connection, until the next list binds its own.
/// A list walking the date index tests each message it passes with it: a lookup in a sorted
/// array, where `id IN (SELECT value FROM json_each(…))` would first build an index of every
/// match (thousands) to test a few hundred messages.
fn bind_hits(conn: &mut DbConnection, m: &Matches) -> Result<(), DbError> {
    if let DbConnection::Sqlite(c) = conn {
        let ids = m.sorted()?;
        em_search_hit_utils::register_nondeterministic_impl(c, move |id: i64| {
            ids.binary_search(&id).is_ok()
        })?;
    }
    Ok(())
}

fn tsquery(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("{w}:*"))
        .collect::<Vec<_>>()
        .join(" & ")
}

/// How the search words reach the query.
#[derive(Debug, Clone, Copy)]
struct Search<'a> {
    /// SQLite: the FTS5 query of the words, for a subquery over `ranges`.
    fts: Option<&'a str>,
    /// SQLite: the search keys of the user's accounts (and well-known folders) the words are
    /// looked up in.
    ranges: &'a [(i64, i64)],
    /// SQLite: the matches themselves (a JSON array of ids), when there are few enough to bind
    /// (read once from FTS5).
    ids: Option<&'a str>,
    /// Read the rows of `ids` directly (few matches) rather than walk a date index testing
    /// each message against them.
    drive: bool,
    /// `ids` came from the search words (FTS5), so they stand for them; otherwise they only
    /// narrow (substring candidates) and the words are tested as well.
    ids_are_search: bool,
}

/// The most FTS5 matches a search binds as ids; past it the query reads them in a subquery.
const MAX_BOUND_MATCHES: i64 = 50_000;

/// The most trigram candidates of `$includes` bound as ids; past it (a needle most messages
/// contain) the date index is walked as without the index, which finds a page quickly then.
const MAX_BOUND_CANDIDATES: i64 = 20_000;

/// Reading a message row costs about this many steps of walking a date index (measured at
/// 100k messages: ~5 µs against ~0.08 µs; rows are wide, bodies are stored with them). Decides
/// whether a search is read starting from its matches or from the date index.
const ROW_COST_IN_INDEX_STEPS: i128 = 70;

/// Whether to read the rows of `hits` matches rather than walk the date index over the user's
/// `total` messages until `wanted` matches turned up (a match every total/hits entries, the
/// whole index at most).
fn start_from_fts(hits: i64, total: i64, wanted: i64) -> bool {
    let (hits, total, wanted) = (hits.max(1) as i128, total as i128, wanted as i128);
    let walk = (wanted * total / hits).min(total);
    hits * ROW_COST_IN_INDEX_STEPS < walk
}

/// The same for `$includes` candidates: walking the date index reads each message row too (the
/// condition is on its columns), so the candidates are read instead whenever they are fewer
/// than the rows the walk would read.
fn start_from_candidates(hits: i64, total: i64, wanted: i64) -> bool {
    let (hits, total, wanted) = (hits.max(1) as i128, total as i128, wanted as i128);
    hits < (wanted * total / hits).min(total)
}

/// `FROM … WHERE` of a list for alias `m`: driven by few search matches, the matches come first
/// (CROSS JOIN keeps that order) and each is looked up by id.
fn from_clause(sql: &mut Sql, search: Search<'_>) {
    match (sql.dialect, search.ids) {
        (Dialect::Sqlite, Some(ids)) if search.drive => {
            sql.push(" FROM json_each(")
                .text(ids)
                .push(") found CROSS JOIN mail_messages m ON m.id = found.value WHERE ");
        }
        _ => {
            sql.push(" FROM mail_messages m WHERE ");
        }
    }
}

/// The WHERE clause of one list, for alias `a`.
fn where_clause(sql: &mut Sql, q: &ListQuery, search: Search<'_>, a: &str) {
    sql.push(&format!("{a}.user_id = ")).int(q.user_id);
    sql.push(" AND ");
    render(sql, &q.filter, a);
    match (sql.dialect, search.ids) {
        // Driven: the ids are the FROM (see `from_clause`).
        (Dialect::Sqlite, Some(_)) if search.drive && a == "m" => {}
        (Dialect::Sqlite, Some(_)) => {
            // A test on each row walked (see `bind_hits`), never the way in: the date index is.
            sql.push(&format!(" AND em_search_hit({a}.id)"));
        }
        _ => {}
    }
    // The words, unless the bound ids are their matches already.
    let words_bound = search.ids.is_some() && search.ids_are_search;
    if !q.search.is_empty() && !words_bound {
        match (sql.dialect, search.fts) {
            (Dialect::Sqlite, Some(m)) => {
                // Many matches (more than are bound): `+` makes the matches a set each row
                // walked in date order is tested against, read once; SQLite would otherwise
                // start from them and read and sort thousands of rows for one page.
                sql.push(&format!(" AND +{a}.id IN ("));
                push_keyed_matches(sql, "mail_messages_fts", m, search.ranges);
                sql.push(")");
            }
            _ => {
                sql.push(&format!(
                    " AND {a}.search_tsv @@ to_tsquery('simple'::regconfig, "
                ))
                .text(tsquery(&q.search))
                .push(")");
            }
        }
    }
    if q.group_by_thread && a == "m" {
        match sql.dialect {
            Dialect::Sqlite => {
                // The latest matching message of its thread: no newer matching one exists.
                // SQLite would otherwise probe with an index that covers the filter's columns
                // (a folder's, say) and scan the folder for every row; the thread's index
                // finds the thread's few newer messages directly.
                sql.push(
                    " AND NOT EXISTS (SELECT 1 FROM mail_messages n INDEXED BY mail_messages_user_thread_date \
                     WHERE n.user_id = m.user_id AND n.account_id = m.account_id AND n.thread_id = m.thread_id \
                     AND (n.date > m.date OR (n.date = m.date AND n.id > m.id)) AND ",
                );
                where_clause(sql, q, search, "n");
                sql.push(")");
            }
            Dialect::Pg => {
                // The same, as "the thread's latest matching message is this one": PostgreSQL
                // plans the anti-join of two 24-index relations in ~2 ms, five times what the
                // page then takes; a subquery with LIMIT 1 is planned once, in ~0.3 ms.
                sql.push(
                    " AND m.id = (SELECT n.id FROM mail_messages n WHERE n.user_id = m.user_id \
                     AND n.account_id = m.account_id AND n.thread_id = m.thread_id AND ",
                );
                where_clause(sql, q, search, "n");
                sql.push(" ORDER BY n.date DESC, n.id DESC LIMIT 1)");
            }
        }
    }
}

fn user_accounts(conn: &mut DbConnection, user_id: i64) -> Result<Vec<i64>, DbError> {
    Ok(mail_accounts::table
        .filter(mail_accounts::user_id.eq(user_id))
        .select(mail_accounts::id)
        .load(conn)?)
}

pub fn list(conn: &mut DbConnection, q: &ListQuery) -> Result<ListPage, DbError> {
    let d = dialect(conn);
    let mine = user_accounts(conn, q.user_id)?;
    let (accounts, folders, index_only) = narrow(&q.filter, &mine);
    if accounts.is_empty() || q.filter == Filter::Const(false) {
        return Ok(ListPage::default());
    }
    // SQLite search: FTS5 is asked once for the matches, within the key ranges of the user's
    // accounts (and well-known folders: the index holds every user's messages). Few matches
    // are then bound as ids, and their number is the count when the filter names nothing but
    // accounts and well-known folders.
    let ranges = key_ranges(&accounts, folders.as_deref());
    let fts = (d == Dialect::Sqlite && !q.search.is_empty()).then(|| fts_match(&q.search));
    let ids: Option<Matches> = match &fts {
        Some(m) => {
            let found = keyed_matches(conn, "mail_messages_fts", m, &ranges, MAX_BOUND_MATCHES)?;
            if found.n == 0 {
                return Ok(ListPage::default());
            }
            (found.n <= MAX_BOUND_MATCHES).then_some(found)
        }
        None => None,
    };
    // SQLite `$includes` on the sender, recipients or subject: the trigram index names the
    // matches (few are bound as ids, like search matches; many, and the date index is walked
    // as before). When they are the whole filter they are the answer; beside other conditions
    // the exact condition is still tested on each.
    let mut narrowed = false;
    let mut candidates_exact = false;
    let ids = match (d, substring_match(&q.filter)) {
        (Dialect::Sqlite, Some((queries, mut exact))) => {
            let account_ranges = key_ranges(&accounts, None);
            // Each index's matches, intersected; an index with too many to bind is left to the
            // conditions the page tests, and the rest only narrow then.
            let mut narrowing: Option<Matches> = None;
            for (index, m) in &queries {
                let found = keyed_matches(conn, index, m, &account_ranges, MAX_BOUND_CANDIDATES)?;
                if found.n == 0 {
                    return Ok(ListPage::default());
                }
                if found.n > MAX_BOUND_CANDIDATES {
                    exact = false;
                    continue;
                }
                narrowing = Some(match narrowing {
                    Some(before) => intersect(&before, &found)?,
                    None => found,
                });
            }
            match narrowing {
                None => ids,
                Some(found) => {
                    let both = match &ids {
                        Some(words) => intersect(words, &found)?,
                        None => found,
                    };
                    if both.n == 0 {
                        return Ok(ListPage::default());
                    }
                    narrowed = true;
                    candidates_exact = exact && q.search.is_empty();
                    Some(both)
                }
            }
        }
        _ => ids,
    };
    // The ids stand for the search words only when they were read from FTS5 alone.
    let ids_are_search = !q.search.is_empty() && !narrowed;
    // The user's messages, from the counters: what walking the date index would cover.
    let total = match &ids {
        Some(_) => {
            let mut sql = Sql::new(d);
            sql.push("SELECT CAST(COALESCE(SUM(c.total), 0) AS BIGINT) AS n FROM mail_message_counts c WHERE c.account_id IN ")
                .ints(&accounts);
            count(conn, sql)?
        }
        None => 0,
    };
    if let Some(m) = &ids {
        bind_hits(conn, m)?;
    }
    let hits = ids.as_ref().map(|m| m.n);
    let plan = |wanted: i64| Search {
        fts: fts.as_deref(),
        ranges: &ranges,
        ids: ids.as_ref().map(|m| m.ids.as_str()),
        drive: hits.is_some_and(|n| {
            if narrowed && !candidates_exact {
                start_from_candidates(n, total, wanted)
            } else {
                start_from_fts(n, total, wanted)
            }
        }),
        ids_are_search,
    };
    // The page wants offset + limit matches; a count wants all of them.
    let search = plan(q.offset + q.limit);
    let count_search = plan(hits.unwrap_or(0));

    // Exact trigram matches are the whole filter: the page tests nothing else, so walking the
    // date index reads no row until one is in the page.
    let exact_q;
    let page_q = if candidates_exact && !q.group_by_thread {
        exact_q = ListQuery {
            filter: Filter::Const(true),
            ..q.clone()
        };
        &exact_q
    } else {
        q
    };
    let mut sql = Sql::new(d);
    sql.push("SELECT ").push(&list_columns());
    from_clause(&mut sql, search);
    where_clause(&mut sql, page_q, search, "m");
    sql.push(" ORDER BY ");
    let mut order: Vec<String> = q.sort.iter().map(|(k, desc)| k.order("m", *desc)).collect();
    if !q.sort.iter().any(|(k, _)| *k == SortKey::Id) {
        let desc = q.sort.first().is_none_or(|(_, d)| *d);
        order.push(format!("m.id {}", if desc { "DESC" } else { "ASC" }));
    }
    sql.push(&order.join(", "));
    sql.push(" LIMIT ")
        .int(q.limit)
        .push(" OFFSET ")
        .int(q.offset);
    let rows: Vec<ListRow> = load(conn, sql)?;

    // A page that is not full is the last one: it says the count itself.
    let mut count_estimated = false;
    let count = if !rows.is_empty() && (rows.len() as i64) < q.limit {
        q.offset + rows.len() as i64
    } else if rows.is_empty() && q.offset == 0 {
        0
    } else if let (Some(n), true, false) = (
        hits,
        // The matches are the answer: FTS5 alone (accounts and well-known folders), or exact
        // trigram matches (see `substring_match`).
        index_only || candidates_exact,
        q.group_by_thread,
    ) {
        n
    } else if let (Some(m), None, true, false) = (&fts, &ids, index_only, q.group_by_thread) {
        // Many matches: FTS5 counts them without touching the messages.
        let mut sql = Sql::new(d);
        sql.push("SELECT COUNT(*) AS n FROM (");
        push_keyed_matches(&mut sql, "mail_messages_fts", m, &ranges);
        sql.push(")");
        count(conn, sql)?
    } else {
        // A full page: there may be one more match after it. An empty page past the end
        // gets the exact count, which is at most its offset.
        let estimated = if rows.is_empty() {
            None
        } else {
            estimate(conn, q, count_search, q.offset + rows.len() as i64 + 1)?
        };
        match estimated {
            Some(n) => {
                count_estimated = true;
                n
            }
            None => count_matches(conn, q, &accounts, count_search)?,
        }
    };
    let threads = if q.group_by_thread {
        thread_stats(conn, q.user_id, &rows)?
    } else {
        HashMap::new()
    };
    Ok(ListPage {
        rows,
        count,
        count_estimated,
        threads,
    })
}

/// PostgreSQL reads every match to count a search or a substring filter: the GIN index only
/// names candidates, and the table says which are visible (and, for trigrams, really match).
/// That is about 2 µs a match, 20–30 ms for 10k of them. Past this many expected matches, a
/// full page reports the planner's estimate instead (docs/api.md, "Counts").
pub const ESTIMATE_ABOVE: i64 = 250;

#[derive(QueryableByName)]
struct Explained {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    plan: String,
}

/// PostgreSQL: the planner's estimate of the count of a full page's list, when counting would
/// read every match (a search, a substring filter) and more than [`ESTIMATE_ABOVE`] are
/// expected; two significant digits, never below `floor` (what the page itself proves).
fn estimate(
    conn: &mut DbConnection,
    q: &ListQuery,
    search: Search<'_>,
    floor: i64,
) -> Result<Option<i64>, DbError> {
    let d = dialect(conn);
    if d != Dialect::Pg || q.exact_count || (q.search.is_empty() && !has_substring(&q.filter)) {
        return Ok(None);
    }
    let mut sql = Sql::new(d);
    sql.push("EXPLAIN (FORMAT JSON) ");
    push_counted(&mut sql, q, search, None);
    let explained: Vec<Explained> = load(conn, sql)?;
    let rows = explained.first().and_then(|e| plan_rows(&e.plan));
    Ok(rows
        .filter(|&n| n > ESTIMATE_ABOVE)
        .map(|n| two_digits(n).max(floor)))
}

/// `SELECT … FROM … WHERE …` of what a list counts: each matching message, or for a thread list
/// each (account, thread) once. `from` (` FROM … WHERE `) replaces the usual one: an index hint.
fn push_counted(sql: &mut Sql, q: &ListQuery, search: Search<'_>, from: Option<&str>) {
    let plain;
    let q = if q.group_by_thread {
        sql.push("SELECT DISTINCT m.account_id, m.thread_id");
        plain = ListQuery {
            group_by_thread: false,
            ..q.clone()
        };
        &plain
    } else {
        sql.push("SELECT 1");
        q
    };
    match from {
        Some(from) => {
            sql.push(from);
        }
        None => from_clause(sql, search),
    }
    where_clause(sql, q, search, "m");
}

/// The top node's "Plan Rows" of `EXPLAIN (FORMAT JSON)`.
fn plan_rows(json: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let rows = v.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64()?;
    Some(rows.round() as i64)
}

/// `n` to two significant digits: an estimate should not look exact.
fn two_digits(n: i64) -> i64 {
    let mut unit = 1;
    while n / unit >= 100 {
        unit *= 10;
    }
    (n + unit / 2) / unit * unit
}

/// A `$includes` / `$notIncludes` on a text field anywhere in the filter (on labels it is a
/// label lookup, cheap to count).
fn has_substring(filter: &Filter) -> bool {
    match filter {
        Filter::And(items) | Filter::Or(items) => items.iter().any(has_substring),
        Filter::Cond(field, Pred::Includes { .. }) => field.kind() != Kind::Labels,
        Filter::Cond(..) | Filter::Const(_) => false,
    }
}

fn count_matches(
    conn: &mut DbConnection,
    q: &ListQuery,
    accounts: &[i64],
    search: Search<'_>,
) -> Result<i64, DbError> {
    let d = dialect(conn);
    let mut sql = Sql::new(d);
    if q.group_by_thread {
        if let (true, Some(folder)) = (q.search.is_empty(), thread_counter_folder(&q.filter)) {
            // Kept by triggers (migration 000010): no message is read.
            sql.push(
                "SELECT CAST(COALESCE(SUM(c.threads), 0) AS BIGINT) AS n FROM mail_thread_counts c WHERE c.account_id IN ",
            )
            .ints(accounts)
            .push(" AND c.folder = ")
            .text(folder.to_string());
            return count(conn, sql);
        }
        let hinted = match (d, thread_count_index(&q.filter)) {
            (Dialect::Sqlite, Some(index)) if !(search.drive && search.ids.is_some()) => {
                Some(format!(" FROM mail_messages m INDEXED BY {index} WHERE "))
            }
            _ => None,
        };
        sql.push("SELECT COUNT(*) AS n FROM (");
        push_counted(&mut sql, q, search, hinted.as_deref());
        sql.push(") t");
        return count(conn, sql);
    }
    if q.search.is_empty() {
        if let Some(shape) = counter_shape(&q.filter) {
            let column = match shape.flag {
                None => "c.total",
                Some((Field::Unread, true)) => "c.unread",
                Some((Field::Unread, false)) => "c.total - c.unread",
                Some((_, true)) => "c.starred",
                Some((_, false)) => "c.total - c.starred",
            };
            sql.push(&format!(
                "SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) AS n FROM mail_message_counts c WHERE c.account_id IN "
            ))
            .ints(accounts);
            if let Some(pred) = shape.folder {
                sql.push(" AND ");
                render_cond(&mut sql, Field::Folder, pred, "c");
            }
            return count(conn, sql);
        }
    }
    sql.push("SELECT COUNT(*) AS n");
    from_clause(&mut sql, search);
    where_clause(&mut sql, q, search, "m");
    count(conn, sql)
}

/// SQLite: the index to count a filtered thread list from. Left alone, SQLite reads the threads
/// off the thread index in order and looks every message up to test the filter; with a folder
/// or flag condition, reading that condition's index (which carries account and thread) and
/// sorting is many times faster. Only top-level conditions qualify: a partial index named where
/// its condition does not hold would be an error.
fn thread_count_index(filter: &Filter) -> Option<&'static str> {
    let conjuncts = filter.conjuncts();
    let has = |f: &dyn Fn(&Filter) -> bool| conjuncts.iter().any(|c| f(c));
    if has(&|c| {
        matches!(
            c,
            Filter::Cond(
                Field::Folder,
                Pred::Text { negated: false, .. } | Pred::TextIn { negated: false, .. }
            )
        )
    }) {
        // (user, folder, account, thread): a folder's threads in order, counted without a sort.
        return Some("mail_messages_user_folder_thread");
    }
    for (field, index) in [
        (Field::Unread, "mail_messages_user_unread_date"),
        (Field::Starred, "mail_messages_user_starred_date"),
        (Field::Todo, "mail_messages_user_todo_date"),
        (Field::HasAttachments, "mail_messages_user_attachments_date"),
    ] {
        if has(&|c| matches!(c, Filter::Cond(f, Pred::Bool(true)) if *f == field)) {
            return Some(index);
        }
    }
    None
}

/// A top-level condition on the account alone (or none): `narrow` has put it in the accounts a
/// list reads, so the counters and indexes scoped to those accounts answer it.
fn on_accounts_only(c: &Filter) -> bool {
    matches!(
        c,
        Filter::Cond(Field::AccountId, Pred::Int(CmpOp::Eq | CmpOp::Ne, _))
            | Filter::Cond(Field::AccountId, Pred::IntIn { .. })
            | Filter::Const(true)
    )
}

/// A thread list the thread counters answer: only account conditions (already in `narrow`) and
/// at most one folder; answers the counters' folder key ('' for all folders).
fn thread_counter_folder(filter: &Filter) -> Option<&str> {
    let mut folder = None;
    for c in filter.conjuncts() {
        match c {
            c if on_accounts_only(c) => {}
            Filter::Cond(
                Field::Folder,
                Pred::Text {
                    value,
                    negated: false,
                },
            ) if folder.is_none() && !value.is_empty() => folder = Some(value.as_str()),
            _ => return None,
        }
    }
    Some(folder.unwrap_or(""))
}

struct CounterShape<'a> {
    folder: Option<&'a Pred>,
    flag: Option<(Field, bool)>,
}

/// A filter the counters answer: only account conditions (already in `narrow`), at most one
/// condition on the folder and at most one on read or star state.
fn counter_shape(filter: &Filter) -> Option<CounterShape<'_>> {
    let mut shape = CounterShape {
        folder: None,
        flag: None,
    };
    for c in filter.conjuncts() {
        match c {
            c if on_accounts_only(c) => {}
            Filter::Cond(Field::Folder, p @ (Pred::Text { .. } | Pred::TextIn { .. }))
                if shape.folder.is_none() =>
            {
                shape.folder = Some(p)
            }
            Filter::Cond(f @ (Field::Unread | Field::Starred), Pred::Bool(b))
                if shape.flag.is_none() =>
            {
                shape.flag = Some((*f, *b))
            }
            _ => return None,
        }
    }
    Some(shape)
}

fn thread_stats(
    conn: &mut DbConnection,
    user_id: i64,
    rows: &[ListRow],
) -> Result<HashMap<(i64, String), ThreadStats>, DbError> {
    #[derive(QueryableByName)]
    struct Stat {
        #[diesel(sql_type = BigInt)]
        account_id: i64,
        #[diesel(sql_type = Text)]
        thread_id: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = BigInt)]
        unread: i64,
    }
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = Sql::new(dialect(conn));
    sql.push(
        "SELECT account_id, thread_id, COUNT(*) AS n, \
         CAST(SUM(CASE WHEN unread THEN 1 ELSE 0 END) AS BIGINT) AS unread \
         FROM mail_messages WHERE user_id = ",
    )
    .int(user_id)
    // A row-value IN, which both backends answer off the (user, account, thread) index; an OR
    // of pairs would not use it.
    .push(" AND (account_id, thread_id) IN (VALUES ");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(")
            .int(r.account_id)
            .push(", ")
            .text(r.thread_id.clone())
            .push(")");
    }
    sql.push(") GROUP BY account_id, thread_id");
    Ok(load::<Stat>(conn, sql)?
        .into_iter()
        .map(|s| {
            (
                (s.account_id, s.thread_id),
                ThreadStats {
                    count: s.n,
                    unread: s.unread,
                },
            )
        })
        .collect())
}

// ---- single records ----

/// A message of `user_id` with its bodies; `NotFound` for anyone else's.
pub fn get_for_user(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
) -> Result<MailMessageRow, DbError> {
    Ok(mail_messages::table
        .filter(mail_messages::id.eq(id))
        .filter(mail_messages::user_id.eq(user_id))
        .select(MailMessageRow::as_select())
        .first(conn)?)
}

/// Messages of `user_id` among `ids` (list columns), in the order of `ids`; missing ones are
/// left out.
pub fn rows_for_user(
    conn: &mut DbConnection,
    user_id: i64,
    ids: &[i64],
) -> Result<Vec<ListRow>, DbError> {
    let mut found: HashMap<i64, ListRow> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        // The list columns only: bodies can be large and are not shown here.
        let mut sql = Sql::new(dialect(conn));
        sql.push("SELECT ")
            .push(&list_columns())
            .push(" FROM mail_messages m WHERE m.user_id = ")
            .int(user_id)
            .push(" AND m.id IN ")
            .ints(chunk);
        let rows: Vec<ListRow> = load(conn, sql)?;
        found.extend(rows.into_iter().map(|r| (r.id, r)));
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Attachments of the given messages of `user_id`, by message.
pub fn attachments_for(
    conn: &mut DbConnection,
    user_id: i64,
    message_ids: &[i64],
) -> Result<HashMap<i64, Vec<MailAttachmentRow>>, DbError> {
    let mut out: HashMap<i64, Vec<MailAttachmentRow>> = HashMap::new();
    for chunk in message_ids.chunks(500) {
        let rows: Vec<MailAttachmentRow> = mail_attachments::table
            .filter(mail_attachments::user_id.eq(user_id))
            .filter(mail_attachments::message_id.eq_any(chunk))
            .order((mail_attachments::message_id, mail_attachments::part_index))
            .select(MailAttachmentRow::as_select())
            .load(conn)?;
        for r in rows {
            out.entry(r.message_id).or_default().push(r);
        }
    }
    Ok(out)
}

/// An attachment of `user_id` with its message; `NotFound` for anyone else's.
pub fn attachment_for_user(
    conn: &mut DbConnection,
    user_id: i64,
    id: i64,
) -> Result<(MailAttachmentRow, MailMessageRow), DbError> {
    let a: MailAttachmentRow = mail_attachments::table
        .filter(mail_attachments::id.eq(id))
        .filter(mail_attachments::user_id.eq(user_id))
        .select(MailAttachmentRow::as_select())
        .first(conn)?;
    let m = get_for_user(conn, user_id, a.message_id)?;
    Ok((a, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::filter;
    use serde_json::json;

    #[test]
    fn search_documents_and_words_cut_alike() {
        assert_eq!(
            search_document(&["Re: Café-Meeting!", "ann.lee@Example.com", ""]),
            "re: café-meeting!\nann.lee@example.com\n"
        );
        assert_eq!(search_words("  ANN.lee  ann "), vec!["ann", "lee"]);
        assert!(search_words("!!! ...").is_empty());
        let long = "é".repeat(150_000);
        let doc = search_document(&["subject", &long]);
        assert!(doc.len() <= SEARCH_DOCUMENT_MAX && doc.starts_with("subject\né"));
        // The stored column's expression on PostgreSQL is the migrations', character for character.
        assert_eq!(
            pg_document("m"),
            "to_tsvector('simple'::regconfig, translate(m.search_text, '@./-_:+\\~#=&?%', '              '))"
        );
    }

    fn sql_of(f: serde_json::Value, d: Dialect) -> (String, usize) {
        let f = filter::parse(&f).expect("filter");
        let mut sql = Sql::new(d);
        render(&mut sql, &f, "m");
        (sql.text, sql.binds.len())
    }

    #[test]
    fn filters_render_with_bound_values_only() {
        let (s, n) = sql_of(
            json!({"subject": {"$includes": "50%_off'; DROP TABLE x"}, "unread": true, "folder": {"$in": ["inbox", "spam"]}}),
            Dialect::Sqlite,
        );
        assert_eq!(
            s,
            "(m.folder IN (?, ?) AND (COALESCE(LOWER(m.subject), '') LIKE ? ESCAPE '\\') AND m.unread)"
        );
        assert_eq!(n, 3);
        let (s, n) = sql_of(json!({"to": {"$includes": "bob"}}), Dialect::Pg);
        assert!(s.starts_with("(m.to_lower LIKE $1 ESCAPE '\\' AND (strpos(m.to_json, '\\') = 0 OR EXISTS (SELECT 1 FROM jsonb_array_elements"), "{s}");
        assert!(s.contains("$3"), "{s}");
        assert_eq!(n, 3);
        assert_eq!(like_pattern("50%_A\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn searches_start_from_fts_only_when_matches_are_few() {
        // 100k messages, a page of 20: a word in 20 messages is read from FTS5, one in 1,600
        // by walking the date index.
        assert!(start_from_fts(20, 100_000, 20));
        assert!(!start_from_fts(1_600, 100_000, 20));
        // Counting needs every match: FTS5 wins up to about total / 70 matches.
        assert!(start_from_fts(1_000, 100_000, 1_000));
        assert!(!start_from_fts(2_000, 100_000, 2_000));
        // A deep page wants more matches.
        assert!(!start_from_fts(300, 100_000, 20));
        assert!(start_from_fts(300, 100_000, 1_000));
    }

    #[test]
    fn substring_candidates_are_read_when_fewer_than_the_walk() {
        // A page of 20 among 6,000 candidates of 100k: the walk meets one every ~17 rows.
        assert!(!start_from_candidates(6_000, 100_000, 20));
        // Counting them: 6,000 rows read instead of 100,000.
        assert!(start_from_candidates(6_000, 100_000, 6_000));
        assert!(start_from_candidates(30, 100_000, 20));
        let m = |v| substring_match(&filter::parse(&v).expect("f"));
        // The sender's name and address are columns apart; the needle lower-cased.
        // The senders have an index of their own; the recipients and subject share one.
        assert_eq!(
            m(json!({
                "from": {"$includes": "Hopper"},
                "subject": {"$includes": "déjà"},
                "to": {"$includes": "ann@"}
            })),
            Some((
                vec![
                    (
                        SENDERS_TRGM,
                        "{from_name from_address} : \"hopper\"".to_string()
                    ),
                    (
                        "mail_messages_trgm",
                        "subject : \"déjà\" AND to_text : \"ann@\"".to_string()
                    ),
                ],
                true
            ))
        );
        // Beside an account condition the matches are still the answer; beside any other
        // condition (or a needle the index cannot take) they only narrow.
        assert_eq!(
            m(json!({"accountId": 4, "to": {"$includes": "ann@"}})).map(|(_, exact)| exact),
            Some(true)
        );
        assert_eq!(
            m(json!({"unread": true, "to": {"$includes": "ann@"}})).map(|(_, exact)| exact),
            Some(false)
        );
        assert_eq!(
            m(json!({"cc": {"$includes": "ab"}, "to": {"$includes": "ann@"}}))
                .map(|(_, exact)| exact),
            Some(false)
        );
        // Too short, escaped in the JSON text, negated, or under an $or: the index stays out.
        assert_eq!(m(json!({"from": {"$includes": "ab"}})), None);
        assert_eq!(m(json!({"to": {"$includes": "a\"b c"}})), None);
        assert_eq!(m(json!({"from": {"$notIncludes": "hopper"}})), None);
        assert_eq!(
            m(json!({"$or": [{"from": {"$includes": "hopper"}}, {"unread": true}]})),
            None
        );
    }

    #[test]
    fn estimates_read_the_top_plan_node_and_round_to_two_digits() {
        let explained = r#"[{"Plan": {"Node Type": "Bitmap Heap Scan", "Plan Rows": 5706,
            "Plans": [{"Node Type": "Bitmap Index Scan", "Plan Rows": 11858}]}}]"#;
        assert_eq!(plan_rows(explained), Some(5706));
        assert_eq!(plan_rows(r#"[{"Plan": {"Plan Rows": 12.6}}]"#), Some(13));
        assert_eq!(plan_rows("not json"), None);
        assert_eq!(plan_rows("[]"), None);
        for (n, want) in [
            (7, 7),
            (99, 99),
            (251, 250),
            (297, 300),
            (5706, 5700),
            (10_950, 11_000),
        ] {
            assert_eq!(two_digits(n), want, "{n}");
        }
        let f = |v| has_substring(&filter::parse(&v).expect("f"));
        assert!(f(json!({"from": {"$includes": "hopper"}})));
        assert!(f(
            json!({"$or": [{"unread": true}, {"subject": {"$notIncludes": "x"}}]})
        ));
        assert!(!f(json!({"providerLabels": {"$includes": "Work"}})));
        assert!(!f(json!({"folder": "inbox", "unread": true})));
    }

    #[test]
    fn only_needles_outside_the_json_syntax_skip_the_json_walk() {
        for plain in ["hopper", "ann@example", "addressee", "Ann Lee", "names"] {
            assert!(outside_json_syntax(plain), "{plain}");
        }
        for walked in ["", "name", "AME", "dress", "a", "x,y", "{", "]", "a:b"] {
            assert!(!outside_json_syntax(walked), "{walked}");
        }
    }

    #[test]
    fn counts_use_the_counters_only_for_their_shape() {
        let shape = |v| counter_shape(&filter::parse(&v).expect("f")).is_some();
        assert!(shape(json!({})));
        assert!(shape(
            json!({"accountId": 3, "folder": "inbox", "unread": true})
        ));
        assert!(shape(json!({"folder": {"$ne": "trash"}, "starred": false})));
        assert!(!shape(json!({"unread": true, "starred": true})));
        assert!(!shape(json!({"subject": {"$includes": "x"}})));
        assert!(!shape(
            json!({"$or": [{"folder": "inbox"}, {"unread": true}]})
        ));
    }

    #[test]
    fn accounts_are_narrowed_to_the_users_own() {
        let f = |v| filter::parse(&v).expect("f");
        assert_eq!(narrow(&f(json!({})), &[1, 2]).0, vec![1, 2]);
        assert_eq!(narrow(&f(json!({"accountId": 2})), &[1, 2]).0, vec![2]);
        assert!(narrow(&f(json!({"accountId": 9})), &[1, 2]).0.is_empty());
        assert_eq!(
            narrow(&f(json!({"accountId": {"$notIn": [1]}})), &[1, 2]).0,
            vec![2]
        );
        let (_, folders, index_only) = narrow(&f(json!({"folder": "inbox", "accountId": 1})), &[1]);
        assert_eq!(folders, Some(vec!["inbox".to_string()]));
        assert!(index_only);
        let (_, folders, index_only) =
            narrow(&f(json!({"folder": "user:x", "unread": true})), &[1]);
        assert_eq!(folders, None);
        assert!(!index_only);
        assert_eq!(
            fts_match(&["caf".into(), "lee".into()]),
            "\"caf\"* AND \"lee\"*"
        );
        assert_eq!(fts_match(&["caf".into()]), "\"caf\"*");
    }

    #[test]
    fn search_keys_are_one_range_per_account_and_folder() {
        let inbox = 1 << KEY_FOLDER_SHIFT;
        assert_eq!(
            key_ranges(&[3, 5], None),
            vec![(3 << 40, 4 << 40), (5 << 40, 6 << 40)]
        );
        assert_eq!(
            key_ranges(&[3], Some(&["sent".to_string(), "inbox".to_string()])),
            vec![
                ((3 << 40) | inbox, (3 << 40) | (2 * inbox)),
                ((3 << 40) | (2 * inbox), (3 << 40) | (3 * inbox)),
            ]
        );
        // Every well-known folder has its own code, in the key's three bits.
        let codes: BTreeSet<i64> = folder::WELL_KNOWN.iter().map(|f| folder_code(f)).collect();
        assert_eq!(codes.len(), folder::WELL_KNOWN.len());
        assert!(codes.iter().all(|c| (1..8).contains(c)));
        assert_eq!(folder_code("user:Label_1"), 0);
        assert_eq!(tsquery(&["caf".into(), "lee".into()]), "caf:* & lee:*");
    }
}
