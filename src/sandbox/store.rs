//! One mail store per seeded mailbox: each message as raw MIME plus the provider's state for it
//! (Gmail: label ids, thread id, history id; Graph: folder, read, flag, categories, conversation,
//! immutable and regular ids), and one change log that Gmail `history.list` and Graph
//! `messages/delta` are both read from.
//!
//! The log clock is Gmail's historyId and Graph's change sequence. Cursors older than
//! `log_start` are expired: Gmail answers 404 for such a `startHistoryId`, Graph 410 for such a
//! delta token. Expiring cursors on demand bumps the clock and forgets the log.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;

use super::mime::{self, Summary};
use super::{Mailbox, Provider};

/// Gmail's history ids and Graph's change numbers start here (an empty mailbox's profile says so).
pub(crate) const INITIAL_CLOCK: u64 = 1000;
/// Past this many change records the oldest half is forgotten (and cursors from then expire), so
/// a long `make demo` run stays bounded.
const MAX_LOG: usize = 200_000;

/// Gmail's system labels, with the names Gmail gives them.
pub(crate) const GMAIL_SYSTEM_LABELS: [&str; 14] = [
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
];

/// Graph's well-known folders: (well-known name, display name, control folder name).
pub(crate) const GRAPH_WELL_KNOWN: [(&str, &str, &str); 7] = [
    ("inbox", "Inbox", "inbox"),
    ("sentitems", "Sent Items", "sent"),
    ("drafts", "Drafts", "drafts"),
    ("deleteditems", "Deleted Items", "trash"),
    ("junkemail", "Junk Email", "spam"),
    ("archive", "Archive", "archive"),
    ("outbox", "Outbox", "Outbox"),
];

/// The id of Graph's `msgfolderroot`, the parent of the top-level folders.
pub(crate) const GRAPH_ROOT_ID: &str =
    "AQMkADAwATM0MDAAMS1iNTcwLWI2NTEtMDACLTAwCgAuAAADtf1jsYXYm0uItFcSkjgbtAEAAAIBCAAAAA==";

#[derive(Clone, Debug)]
pub(crate) struct Folder {
    /// Gmail label id / Graph folder id.
    pub id: String,
    /// Gmail label name / Graph displayName.
    pub name: String,
    /// Graph well-known name; Gmail system labels have `system` instead.
    pub well_known: Option<&'static str>,
    pub system: bool,
    /// Gmail user labels: colour and visibility.
    pub props: LabelProps,
}

#[derive(Clone, Debug)]
pub(crate) struct Msg {
    /// Gmail message id / Graph immutable id.
    pub id: String,
    /// Creation order, for stable listings.
    pub seq: u64,
    pub raw: Vec<u8>,
    pub summary: Summary,
    /// Gmail threadId / Graph conversationId.
    pub thread_id: String,
    /// Unix ms: Gmail internalDate / Graph receivedDateTime.
    pub received_at: i64,
    /// The clock of the last change (Gmail historyId, Graph changeKey).
    pub history_id: u64,
    pub created_at: i64,
    pub modified_at: i64,
    // Gmail
    pub labels: Vec<String>,
    // Graph
    pub folder_id: String,
    pub is_read: bool,
    /// `notFlagged`, `flagged` or `complete`.
    pub flag: String,
    /// The flag's dates (Graph `dateTimeTimeZone` objects).
    pub flag_dates: FlagDates,
    pub categories: Vec<String>,
    pub is_draft: bool,
    /// Graph's regular id, which changes when the message moves (the immutable one does not).
    pub rest_id: String,
    moves: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum What {
    Added,
    Deleted,
    /// Gmail label changes (both lists may be set).
    Labels {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// Graph property changes or a move (see `before`/`after`).
    Updated,
}

#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub clock: u64,
    pub id: String,
    pub thread_id: String,
    pub what: What,
    /// Gmail: the message's labels after the change.
    pub labels: Vec<String>,
    /// Graph: the folder before and after the change (None: the message did not exist / is gone).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A message to add, in provider-neutral terms.
pub(crate) struct NewMessage {
    pub raw: Vec<u8>,
    /// A control folder name (inbox, sent, … or a user folder's name or id).
    pub folder: String,
    pub unread: bool,
    pub starred: bool,
    pub received_at: i64,
    /// Sandbox id of a message to thread onto.
    pub thread_of: Option<String>,
    /// Gmail user label names / Graph categories, besides the folder.
    pub labels: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub(crate) enum StoreError {
    NotFound,
    Invalid(String),
}

/// A message's state change through the control API.
#[derive(Default)]
pub(crate) struct Patch {
    pub unread: Option<bool>,
    pub starred: Option<bool>,
    pub folder: Option<String>,
    pub labels: Option<Vec<String>>,
}

pub(crate) struct Store {
    pub provider: Provider,
    pub owner: &'static Mailbox,
    /// Distinguishes this mailbox's ids from the others'.
    tag: u8,
    messages: HashMap<String, Msg>,
    /// Creation order: seq -> id (a listing walks it instead of sorting the mailbox per page).
    by_seq: BTreeMap<u64, String>,
    /// Graph regular id -> immutable id.
    rest_ids: HashMap<String, String>,
    /// Message-ID header -> sandbox id, for threading inserted replies.
    by_message_id: HashMap<String, String>,
    next_seq: u64,
    next_thread: u64,
    pub clock: u64,
    pub log: Vec<Change>,
    pub log_start: u64,
    pub folders: Vec<Folder>,
    next_user_folder: u32,
    /// Graph's master category list (`/me/outlook/masterCategories`).
    pub categories: Vec<Category>,
    /// Gmail drafts: draft id -> message id.
    pub gmail_drafts: BTreeMap<String, String>,
    /// Graph drafts' content, by message id (their MIME is rebuilt from it on every change).
    pub graph_drafts: HashMap<String, super::outgoing::DraftModel>,
    next_draft: u64,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    pub fn new(owner: &'static Mailbox, tag: u8) -> Store {
        let folders = match owner.provider {
            Provider::Google => GMAIL_SYSTEM_LABELS
                .iter()
                .map(|l| Folder {
                    id: l.to_string(),
                    name: l.to_string(),
                    well_known: None,
                    system: true,
                    props: LabelProps::default(),
                })
                .collect(),
            Provider::Microsoft => GRAPH_WELL_KNOWN
                .iter()
                .enumerate()
                .map(|(i, (wk, name, _))| Folder {
                    id: graph_folder_id(tag, i as u32),
                    name: name.to_string(),
                    well_known: Some(*wk),
                    system: true,
                    props: LabelProps::default(),
                })
                .collect(),
        };
        Store {
            provider: owner.provider,
            owner,
            tag,
            messages: HashMap::new(),
            by_seq: BTreeMap::new(),
            rest_ids: HashMap::new(),
            by_message_id: HashMap::new(),
            next_seq: 1,
            next_thread: 1,
            clock: INITIAL_CLOCK,
            log: Vec::new(),
            log_start: INITIAL_CLOCK,
            folders,
            next_user_folder: 1,
            categories: Vec::new(),
            gmail_drafts: BTreeMap::new(),
            graph_drafts: HashMap::new(),
            next_draft: 1,
        }
    }

    /// A new Gmail draft id (`r` and digits, like Gmail's).
    pub fn new_draft_id(&mut self) -> String {
        let n = self.next_draft;
        self.next_draft += 1;
        format!("r{}{:012}", self.tag, 5_000_000_000 + n)
    }

    /// Whether any message is in this thread.
    pub fn has_thread(&self, thread_id: &str) -> bool {
        self.messages.values().any(|m| m.thread_id == thread_id)
    }

    /// A draft's content changed: new MIME, same id (logged as an update in its folder).
    pub fn replace_raw(&mut self, id: &str, raw: Vec<u8>) -> Result<(), StoreError> {
        let id = self.resolve_id(id).ok_or(StoreError::NotFound)?;
        let summary = mime::summary(&raw);
        let Some(msg) = self.messages.get_mut(&id) else {
            return Err(StoreError::NotFound);
        };
        if let Some(old) = msg.summary.message_id.clone() {
            if self.by_message_id.get(&old) == Some(&id) {
                self.by_message_id.remove(&old);
            }
        }
        if let Some(mid) = &summary.message_id {
            self.by_message_id
                .entry(mid.clone())
                .or_insert_with(|| id.clone());
        }
        msg.raw = raw;
        msg.summary = summary;
        self.changed(&id, What::Updated, None);
        Ok(())
    }

    /// The creation number the next message gets (generated Message-IDs include it).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn thread_count(&self) -> usize {
        self.messages
            .values()
            .map(|m| m.thread_id.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// By sandbox id; Graph also finds a message by its current regular id.
    pub fn get(&self, id: &str) -> Option<&Msg> {
        self.messages
            .get(id)
            .or_else(|| self.rest_ids.get(id).and_then(|imm| self.messages.get(imm)))
    }

    fn resolve_id(&self, id: &str) -> Option<String> {
        self.get(id).map(|m| m.id.clone())
    }

    pub fn messages(&self) -> impl Iterator<Item = &Msg> {
        self.messages.values()
    }

    /// Messages created after `seq`, in creation order.
    pub fn created_after(&self, seq: u64) -> impl Iterator<Item = &Msg> {
        self.by_seq
            .range(seq + 1..)
            .filter_map(|(_, id)| self.messages.get(id))
    }

    /// All messages in creation order.
    pub fn ordered(&self) -> Vec<&Msg> {
        self.created_after(0).collect()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn log(&mut self, change: Change) {
        if self.log.len() >= MAX_LOG {
            let drop = MAX_LOG / 2;
            self.log_start = self.log[drop - 1].clock;
            self.log.drain(..drop);
        }
        self.log.push(change);
    }

    /// Every cursor handed out so far is now too old.
    pub fn expire_cursors(&mut self) {
        let clock = self.tick();
        self.log.clear();
        self.log_start = clock;
    }

    // -----------------------------------------------------------------------------------------
    // Folders and labels

    pub fn folder(&self, id: &str) -> Option<&Folder> {
        self.folders.iter().find(|f| f.id == id)
    }

    /// A Graph folder by id or well-known name (any case); a Gmail label by id.
    pub fn find_folder(&self, id_or_name: &str) -> Option<&Folder> {
        self.folders.iter().find(|f| {
            f.id == id_or_name
                || f.well_known
                    .is_some_and(|w| w.eq_ignore_ascii_case(id_or_name))
        })
    }

    pub fn well_known_id(&self, well_known: &str) -> Option<String> {
        self.find_folder(well_known).map(|f| f.id.clone())
    }

    /// A user folder (Graph) or user label (Gmail) by display name or id, created when asked.
    pub fn user_folder(&mut self, name_or_id: &str, create: bool) -> Option<String> {
        let found = self
            .folders
            .iter()
            .find(|f| !f.system && (f.id == name_or_id || f.name.eq_ignore_ascii_case(name_or_id)));
        if let Some(f) = found {
            return Some(f.id.clone());
        }
        if !create {
            return None;
        }
        Some(self.create_folder(name_or_id))
    }

    pub fn create_folder(&mut self, name: &str) -> String {
        let n = self.next_user_folder;
        self.next_user_folder += 1;
        let id = match self.provider {
            Provider::Google => format!("Label_{n}"),
            Provider::Microsoft => graph_folder_id(self.tag, 100 + n),
        };
        self.folders.push(Folder {
            id: id.clone(),
            name: name.to_string(),
            well_known: None,
            system: false,
            props: LabelProps::default(),
        });
        id
    }

    /// The control API's folder name for a message.
    pub fn control_folder(&self, m: &Msg) -> String {
        match self.provider {
            Provider::Google => {
                let has = |l: &str| m.labels.iter().any(|x| x == l);
                for (label, name) in [
                    ("TRASH", "trash"),
                    ("SPAM", "spam"),
                    ("DRAFT", "drafts"),
                    ("INBOX", "inbox"),
                    ("SENT", "sent"),
                ] {
                    if has(label) {
                        return name.into();
                    }
                }
                m.labels
                    .iter()
                    .find_map(|l| self.folder(l).filter(|f| !f.system))
                    .map(|f| f.name.clone())
                    .unwrap_or_else(|| "archive".into())
            }
            Provider::Microsoft => match self.folder(&m.folder_id) {
                Some(f) => match f.well_known {
                    Some(wk) => GRAPH_WELL_KNOWN
                        .iter()
                        .find(|(w, _, _)| *w == wk)
                        .map(|(_, _, control)| control.to_string())
                        .unwrap_or_else(|| f.name.clone()),
                    None => f.name.clone(),
                },
                None => "archive".into(),
            },
        }
    }

    pub fn unread(&self, m: &Msg) -> bool {
        match self.provider {
            Provider::Google => m.labels.iter().any(|l| l == "UNREAD"),
            Provider::Microsoft => !m.is_read,
        }
    }

    pub fn starred(&self, m: &Msg) -> bool {
        match self.provider {
            Provider::Google => m.labels.iter().any(|l| l == "STARRED"),
            Provider::Microsoft => m.flag == "flagged",
        }
    }

    /// Gmail: user label ids; Graph: categories.
    pub fn user_labels(&self, m: &Msg) -> Vec<String> {
        match self.provider {
            Provider::Google => m.labels.clone(),
            Provider::Microsoft => m.categories.clone(),
        }
    }

    /// Gmail label for a control folder (None: archive, no label), or Graph folder id.
    fn folder_target(&mut self, folder: &str, create: bool) -> Result<Option<String>, StoreError> {
        let lower = folder.to_ascii_lowercase();
        let known = match self.provider {
            Provider::Google => match lower.as_str() {
                "inbox" => Some(Some("INBOX".to_string())),
                "sent" => Some(Some("SENT".into())),
                "drafts" => Some(Some("DRAFT".into())),
                "spam" => Some(Some("SPAM".into())),
                "trash" => Some(Some("TRASH".into())),
                "archive" => Some(None),
                _ => None,
            },
            Provider::Microsoft => GRAPH_WELL_KNOWN
                .iter()
                .find(|(wk, name, control)| {
                    *control == lower || *wk == lower || name.eq_ignore_ascii_case(&lower)
                })
                .and_then(|(wk, _, _)| self.well_known_id(wk))
                .map(Some),
        };
        if let Some(target) = known {
            return Ok(target);
        }
        if self.provider == Provider::Microsoft {
            if let Some(f) = self.folder(folder) {
                return Ok(Some(f.id.clone()));
            }
        }
        match self.user_folder(folder, create) {
            Some(id) => Ok(Some(id)),
            None => Err(StoreError::Invalid(format!("unknown folder {folder:?}"))),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Changes

    /// Adds a message as newly arrived mail (logged). Returns its id.
    pub fn insert(&mut self, new: NewMessage) -> Result<String, StoreError> {
        self.insert_in_thread(new, None)
    }

    /// Like [`insert`](Self::insert), into the given provider thread when there is one (a
    /// Gmail send with `threadId`, a Graph draft's conversation).
    pub fn insert_in_thread(
        &mut self,
        new: NewMessage,
        thread: Option<String>,
    ) -> Result<String, StoreError> {
        let summary = mime::summary(&new.raw);
        let seq = self.next_seq;
        self.next_seq += 1;
        let target = self.folder_target(&new.folder, false)?;
        // A reply joins its parent's thread: the one named, else the one its headers point at.
        let parent = new
            .thread_of
            .as_deref()
            .and_then(|id| self.resolve_id(id))
            .or_else(|| {
                summary
                    .in_reply_to
                    .iter()
                    .chain(summary.references.iter().rev())
                    .find_map(|mid| self.by_message_id.get(mid).cloned())
            });
        if let Some(wanted) = &new.thread_of {
            if parent.is_none() {
                return Err(StoreError::Invalid(format!(
                    "inReplyTo: no message {wanted:?}"
                )));
            }
        }
        let parent_thread = thread
            .or_else(|| parent.and_then(|p| self.messages.get(&p).map(|m| m.thread_id.clone())));
        let id = match self.provider {
            Provider::Google => {
                let mut n = (new.received_at.max(0) as u64) << 20 | (seq & 0xf_ffff);
                while self.messages.contains_key(&format!("{n:016x}")) {
                    n += 1;
                }
                format!("{n:016x}")
            }
            Provider::Microsoft => format!(
                "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A{}AAA=",
                b64(&[&[self.tag], &seq.to_be_bytes()[2..]].concat())
            ),
        };
        let thread_id = parent_thread.unwrap_or_else(|| match self.provider {
            Provider::Google => id.clone(),
            Provider::Microsoft => {
                let n = self.next_thread;
                self.next_thread += 1;
                format!(
                    "AAQkAGI2NGVhZTVlLTI1OGMtNDI4My1iZmE5LTA5OGJiZGEzMzUzZQAQA{}=",
                    b64(&[&[self.tag], &n.to_be_bytes()[3..]].concat())
                )
            }
        });
        let clock = self.tick();
        let now = now_ms();
        let mut msg = Msg {
            id: id.clone(),
            seq,
            raw: new.raw,
            summary,
            thread_id: thread_id.clone(),
            received_at: new.received_at,
            history_id: clock,
            created_at: now.min(new.received_at.max(0)),
            modified_at: now,
            labels: Vec::new(),
            folder_id: String::new(),
            is_read: !new.unread,
            flag: if new.starred { "flagged" } else { "notFlagged" }.into(),
            flag_dates: FlagDates::default(),
            categories: Vec::new(),
            is_draft: false,
            rest_id: String::new(),
            moves: 0,
        };
        match self.provider {
            Provider::Google => {
                if let Some(label) = target {
                    msg.labels.push(label.clone());
                    if label == "INBOX" {
                        msg.labels.push("CATEGORY_PERSONAL".into());
                    }
                }
                for name in &new.labels {
                    let label = self
                        .user_folder(name, true)
                        .ok_or_else(|| StoreError::Invalid(format!("bad label {name:?}")))?;
                    if !msg.labels.contains(&label) {
                        msg.labels.push(label);
                    }
                }
                if new.unread {
                    msg.labels.push("UNREAD".into());
                }
                if new.starred {
                    msg.labels.push("STARRED".into());
                }
            }
            Provider::Microsoft => {
                msg.folder_id = target.unwrap_or_default();
                msg.is_draft = self
                    .folder(&msg.folder_id)
                    .is_some_and(|f| f.well_known == Some("drafts"));
                msg.categories = new.labels.clone();
                msg.rest_id = self.rest_id(seq, 0);
                self.rest_ids.insert(msg.rest_id.clone(), id.clone());
            }
        }
        if let Some(mid) = &msg.summary.message_id {
            self.by_message_id
                .entry(mid.clone())
                .or_insert_with(|| id.clone());
        }
        let change = Change {
            clock,
            id: id.clone(),
            thread_id,
            what: What::Added,
            labels: msg.labels.clone(),
            before: None,
            after: (self.provider == Provider::Microsoft).then(|| msg.folder_id.clone()),
        };
        self.by_seq.insert(msg.seq, id.clone());
        self.messages.insert(id.clone(), msg);
        self.log(change);
        Ok(id)
    }

    fn rest_id(&self, seq: u64, moves: u32) -> String {
        format!(
            "AAMkAGI2NGVhZTVlLTI1OGMtNDI4My1iZmE5LTA5OGJiZGEzMzUzZQBGAAAAAAC7{}{}AAA=",
            b64(&[&[self.tag], &seq.to_be_bytes()[2..]].concat()),
            b64(&moves.to_be_bytes())
        )
    }

    /// Gmail: adds and removes labels; logged only when something changed. Unknown labels and
    /// labels nobody may add (DRAFT, SENT's siblings are fine) are refused as Gmail does.
    pub fn modify_labels(
        &mut self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), StoreError> {
        let id = self.resolve_id(id).ok_or(StoreError::NotFound)?;
        for label in add.iter().chain(remove) {
            if self.folder(label).is_none() {
                return Err(StoreError::Invalid(format!("Invalid label: {label}")));
            }
        }
        if let Some(bad) = add.iter().find(|l| *l == "DRAFT") {
            return Err(StoreError::Invalid(format!("Invalid label: {bad}")));
        }
        let Some(msg) = self.messages.get_mut(&id) else {
            return Err(StoreError::NotFound);
        };
        let mut removed = Vec::new();
        for label in remove {
            if let Some(pos) = msg.labels.iter().position(|l| l == label) {
                msg.labels.remove(pos);
                removed.push(label.clone());
            }
        }
        let mut added = Vec::new();
        for label in add {
            if !msg.labels.contains(label) {
                msg.labels.push(label.clone());
                added.push(label.clone());
            }
        }
        if added.is_empty() && removed.is_empty() {
            return Ok(());
        }
        self.changed(&id, What::Labels { added, removed }, None);
        Ok(())
    }

    /// Stamps a change on the message and logs it.
    fn changed(&mut self, id: &str, what: What, before: Option<String>) {
        let clock = self.tick();
        let provider = self.provider;
        let Some(msg) = self.messages.get_mut(id) else {
            return;
        };
        msg.history_id = clock;
        msg.modified_at = now_ms();
        let change = Change {
            clock,
            id: id.to_string(),
            thread_id: msg.thread_id.clone(),
            what,
            labels: if provider == Provider::Google {
                msg.labels.clone()
            } else {
                Vec::new()
            },
            before: before
                .or_else(|| (provider == Provider::Microsoft).then(|| msg.folder_id.clone())),
            after: (provider == Provider::Microsoft).then(|| msg.folder_id.clone()),
        };
        self.log(change);
    }

    /// Graph: read state, flag, categories; logged when something changed.
    pub fn graph_update(
        &mut self,
        id: &str,
        is_read: Option<bool>,
        flag: Option<String>,
        categories: Option<Vec<String>>,
    ) -> Result<(), StoreError> {
        let id = self.resolve_id(id).ok_or(StoreError::NotFound)?;
        let Some(msg) = self.messages.get_mut(&id) else {
            return Err(StoreError::NotFound);
        };
        let mut changed = false;
        if let Some(r) = is_read.filter(|r| *r != msg.is_read) {
            msg.is_read = r;
            changed = true;
        }
        if let Some(f) = flag.filter(|f| *f != msg.flag) {
            msg.flag = f;
            changed = true;
        }
        if let Some(c) = categories.filter(|c| *c != msg.categories) {
            msg.categories = c;
            changed = true;
        }
        if changed {
            self.changed(&id, What::Updated, None);
        }
        Ok(())
    }

    /// Graph: moves a message to a folder (id or well-known name). The immutable id stays, the
    /// regular id changes. Returns the immutable id.
    pub fn graph_move(&mut self, id: &str, destination: &str) -> Result<String, StoreError> {
        let id = self.resolve_id(id).ok_or(StoreError::NotFound)?;
        let dest = self
            .find_folder(destination)
            .map(|f| (f.id.clone(), f.well_known == Some("drafts")))
            .ok_or_else(|| StoreError::Invalid(format!("unknown folder {destination:?}")))?;
        let rest = {
            let Some(msg) = self.messages.get(&id) else {
                return Err(StoreError::NotFound);
            };
            if msg.folder_id == dest.0 {
                return Ok(id);
            }
            self.rest_id(msg.seq, msg.moves + 1)
        };
        let Some(msg) = self.messages.get_mut(&id) else {
            return Err(StoreError::NotFound);
        };
        let before = std::mem::replace(&mut msg.folder_id, dest.0);
        msg.is_draft = dest.1;
        msg.moves += 1;
        let old_rest = std::mem::replace(&mut msg.rest_id, rest.clone());
        self.rest_ids.remove(&old_rest);
        self.rest_ids.insert(rest, id.clone());
        self.changed(&id, What::Updated, Some(before));
        Ok(id)
    }

    /// Permanently deletes a message (logged).
    pub fn delete(&mut self, id: &str) -> Result<(), StoreError> {
        let id = self.resolve_id(id).ok_or(StoreError::NotFound)?;
        let Some(msg) = self.messages.remove(&id) else {
            return Err(StoreError::NotFound);
        };
        self.by_seq.remove(&msg.seq);
        self.rest_ids.remove(&msg.rest_id);
        if let Some(mid) = &msg.summary.message_id {
            if self.by_message_id.get(mid) == Some(&id) {
                self.by_message_id.remove(mid);
            }
        }
        let clock = self.tick();
        self.log(Change {
            clock,
            id,
            thread_id: msg.thread_id,
            what: What::Deleted,
            labels: msg.labels,
            before: (self.provider == Provider::Microsoft).then_some(msg.folder_id),
            after: None,
        });
        Ok(())
    }

    /// A change made at the provider by another client, in the control API's terms.
    pub fn patch(&mut self, id: &str, patch: Patch) -> Result<(), StoreError> {
        let id = self.resolve_id(id).ok_or(StoreError::NotFound)?;
        match self.provider {
            Provider::Google => {
                let current = self
                    .messages
                    .get(&id)
                    .map(|m| m.labels.clone())
                    .ok_or(StoreError::NotFound)?;
                let mut add: Vec<String> = Vec::new();
                let mut remove: Vec<String> = Vec::new();
                let set =
                    |on: bool, label: &str, add: &mut Vec<String>, remove: &mut Vec<String>| {
                        if on {
                            add.push(label.into())
                        } else {
                            remove.push(label.into())
                        }
                    };
                if let Some(unread) = patch.unread {
                    set(unread, "UNREAD", &mut add, &mut remove);
                }
                if let Some(starred) = patch.starred {
                    set(starred, "STARRED", &mut add, &mut remove);
                }
                let user = |store: &Store, l: &String| store.folder(l).is_some_and(|f| !f.system);
                if let Some(labels) = &patch.labels {
                    let wanted: Vec<String> = labels
                        .iter()
                        .map(|n| {
                            self.user_folder(n, true)
                                .ok_or_else(|| StoreError::Invalid(format!("bad label {n:?}")))
                        })
                        .collect::<Result<_, _>>()?;
                    remove.extend(
                        current
                            .iter()
                            .filter(|l| user(self, l) && !wanted.contains(l))
                            .cloned(),
                    );
                    add.extend(wanted);
                }
                if let Some(folder) = &patch.folder {
                    // The folder asked for must be what the labels say afterwards.
                    let target = self.folder_target(folder, false)?;
                    remove.extend(
                        ["INBOX", "SPAM", "TRASH", "DRAFT", "SENT"]
                            .iter()
                            .map(|l| l.to_string()),
                    );
                    let into_user = target.as_ref().is_none_or(|t| user(self, t));
                    if into_user {
                        remove.extend(current.iter().filter(|l| user(self, l)).cloned());
                    }
                    if let Some(t) = target {
                        remove.retain(|l| *l != t);
                        add.push(t);
                    }
                }
                remove.retain(|l| !add.contains(l));
                self.apply_labels(&id, add, remove)
            }
            Provider::Microsoft => {
                self.graph_update(
                    &id,
                    patch.unread.map(|u| !u),
                    patch
                        .starred
                        .map(|s| if s { "flagged" } else { "notFlagged" }.to_string()),
                    patch.labels,
                )?;
                if let Some(folder) = &patch.folder {
                    let target = self.folder_target(folder, false)?.unwrap_or_default();
                    self.graph_move(&id, &target)?;
                }
                Ok(())
            }
        }
    }

    /// Like `modify_labels`, without the API's restrictions (the control API may set DRAFT).
    fn apply_labels(
        &mut self,
        id: &str,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Result<(), StoreError> {
        let Some(msg) = self.messages.get_mut(id) else {
            return Err(StoreError::NotFound);
        };
        let mut removed = Vec::new();
        for label in remove {
            if let Some(pos) = msg.labels.iter().position(|l| *l == label) {
                msg.labels.remove(pos);
                removed.push(label);
            }
        }
        let mut added = Vec::new();
        for label in add {
            if !msg.labels.contains(&label) {
                msg.labels.push(label.clone());
                added.push(label);
            }
        }
        if !added.is_empty() || !removed.is_empty() {
            self.changed(id, What::Labels { added, removed }, None);
        }
        Ok(())
    }

    /// Log records after `clock` (for Gmail history), oldest first.
    pub fn changes_after(&self, clock: u64) -> &[Change] {
        let start = self.log.partition_point(|c| c.clock <= clock);
        &self.log[start..]
    }

    /// Ids of messages whose changes in (`from`, `to`] touched Graph folder `folder`.
    pub fn touched(&self, folder: &str, from: u64, to: u64) -> BTreeSet<String> {
        self.changes_after(from)
            .iter()
            .take_while(|c| c.clock <= to)
            .filter(|c| c.before.as_deref() == Some(folder) || c.after.as_deref() == Some(folder))
            .map(|c| c.id.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Labels, categories and flags (issue 5)

/// A Gmail user label's colour and visibility.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LabelProps {
    /// (backgroundColor, textColor)
    pub color: Option<(String, String)>,
    pub label_list_visibility: Option<String>,
    pub message_list_visibility: Option<String>,
}

/// An Outlook master category.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Category {
    pub id: String,
    pub display_name: String,
    pub color: String,
}

/// A Graph flag's dates, as `{dateTime, timeZone}` objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FlagDates {
    pub start: Option<serde_json::Value>,
    pub due: Option<serde_json::Value>,
    pub completed: Option<serde_json::Value>,
}

/// A flag change: the status, and each date (`Some(None)` clears it).
#[derive(Clone, Debug, Default)]
pub(crate) struct FlagPatch {
    pub status: Option<String>,
    pub start: Option<Option<serde_json::Value>>,
    pub due: Option<Option<serde_json::Value>>,
    pub completed: Option<Option<serde_json::Value>>,
}

impl Store {
    /// Gmail: the names of a message's user labels.
    pub fn user_label_names(&self, m: &Msg) -> Vec<String> {
        m.labels
            .iter()
            .filter_map(|l| self.folder(l).filter(|f| !f.system))
            .map(|f| f.name.clone())
            .collect()
    }

    /// Gmail: another label (system ones included) already has this name.
    pub fn label_name_taken(&self, name: &str, except: Option<&str>) -> bool {
        self.folders
            .iter()
            .any(|f| Some(f.id.as_str()) != except && f.name.eq_ignore_ascii_case(name.trim()))
    }

    /// Gmail `labels.patch`/`update`: name, colour, visibility of a user label.
    pub fn update_label(
        &mut self,
        id: &str,
        name: Option<String>,
        props: LabelProps,
        replace: bool,
    ) -> Result<(), StoreError> {
        let Some(f) = self.folders.iter_mut().find(|f| f.id == id) else {
            return Err(StoreError::NotFound);
        };
        if f.system {
            return Err(StoreError::Invalid(
                "Invalid label: system labels cannot be changed".into(),
            ));
        }
        if let Some(n) = name {
            f.name = n;
        }
        if replace {
            f.props = props;
        } else {
            if props.color.is_some() {
                f.props.color = props.color;
            }
            if props.label_list_visibility.is_some() {
                f.props.label_list_visibility = props.label_list_visibility;
            }
            if props.message_list_visibility.is_some() {
                f.props.message_list_visibility = props.message_list_visibility;
            }
        }
        Ok(())
    }

    /// Gmail `labels.delete`: the label goes, and off every message (logged for history).
    pub fn delete_label(&mut self, id: &str) -> Result<(), StoreError> {
        match self.folder(id) {
            None => return Err(StoreError::NotFound),
            Some(f) if f.system => {
                return Err(StoreError::Invalid(
                    "Invalid label: system labels cannot be deleted".into(),
                ))
            }
            Some(_) => {}
        }
        let carrying: Vec<String> = self
            .ordered()
            .into_iter()
            .filter(|m| m.labels.iter().any(|l| l == id))
            .map(|m| m.id.clone())
            .collect();
        for m in carrying {
            self.apply_labels(&m, Vec::new(), vec![id.to_string()])?;
        }
        self.folders.retain(|f| f.id != id);
        Ok(())
    }

    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    pub fn category_named(&self, name: &str) -> Option<&Category> {
        self.categories
            .iter()
            .find(|c| c.display_name.eq_ignore_ascii_case(name.trim()))
    }

    /// Graph: a new master category (the caller checked the name is free).
    pub fn create_category(&mut self, display_name: &str, color: &str) -> Category {
        let c = Category {
            id: super::guid(),
            display_name: display_name.to_string(),
            color: color.to_string(),
        };
        self.categories.push(c.clone());
        c
    }

    /// Graph: sets the flag (status and dates); logged when something changed.
    pub fn graph_flag(&mut self, id: &str, patch: FlagPatch) -> Result<(), StoreError> {
        let id = self.resolve_id(id).ok_or(StoreError::NotFound)?;
        let Some(msg) = self.messages.get_mut(&id) else {
            return Err(StoreError::NotFound);
        };
        let before = (msg.flag.clone(), msg.flag_dates.clone());
        if let Some(s) = patch.status {
            msg.flag = s;
        }
        if let Some(v) = patch.start {
            msg.flag_dates.start = v;
        }
        if let Some(v) = patch.due {
            msg.flag_dates.due = v;
        }
        if let Some(v) = patch.completed {
            msg.flag_dates.completed = v;
        }
        match msg.flag.as_str() {
            // Not flagged: no dates at all.
            "notFlagged" => msg.flag_dates = FlagDates::default(),
            "flagged" => msg.flag_dates.completed = None,
            _ => {}
        }
        if (msg.flag.clone(), msg.flag_dates.clone()) != before {
            self.changed(&id, What::Updated, None);
        }
        Ok(())
    }
}

fn graph_folder_id(tag: u8, n: u32) -> String {
    format!(
        "AQMkADAwATM0MDAAMS1iNTcwLWI2NTEtMDACLTAwCgAuAAADtf1jsYXYm0uItFcSkjgbtAEA{}AAAA",
        b64(&[&[tag], &n.to_be_bytes()[..]].concat())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::MAILBOXES;

    fn raw(subject: &str, mid: &str, reply_to: Option<&str>) -> Vec<u8> {
        let mut s =
            format!("From: a@example.test\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n");
        if let Some(r) = reply_to {
            s.push_str(&format!("In-Reply-To: <{r}>\r\nReferences: <{r}>\r\n"));
        }
        s.push_str("\r\nbody\r\n");
        s.into_bytes()
    }

    fn new(raw: Vec<u8>, folder: &str) -> NewMessage {
        NewMessage {
            raw,
            folder: folder.into(),
            unread: true,
            starred: false,
            received_at: 1_790_000_000_000,
            thread_of: None,
            labels: Vec::new(),
        }
    }

    #[test]
    fn gmail_labels_threads_and_history() {
        let mut s = Store::new(&MAILBOXES[0], 0);
        let a = s.insert(new(raw("a", "a@x", None), "inbox")).unwrap();
        let b = s
            .insert(new(raw("Re: a", "b@x", Some("a@x")), "inbox"))
            .unwrap();
        assert_eq!(s.get(&b).unwrap().thread_id, a, "a reply joins the thread");
        assert_eq!(s.control_folder(s.get(&a).unwrap()), "inbox");
        let start = s.clock;
        s.patch(
            &a,
            Patch {
                folder: Some("Projects".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        s.create_folder("Projects");
        s.patch(
            &a,
            Patch {
                folder: Some("Projects".into()),
                unread: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        let m = s.get(&a).unwrap();
        assert_eq!(s.control_folder(m), "Projects");
        assert!(!s.unread(m));
        s.patch(
            &a,
            Patch {
                folder: Some("archive".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.control_folder(s.get(&a).unwrap()), "archive");
        s.delete(&b).unwrap();
        let changes: Vec<_> = s
            .changes_after(start)
            .iter()
            .map(|c| c.what.clone())
            .collect();
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[2], What::Deleted);
        s.expire_cursors();
        assert!(s.changes_after(start).is_empty());
        assert!(s.log_start > start);
    }

    #[test]
    fn graph_moves_keep_the_immutable_id_and_log_both_folders() {
        let mut s = Store::new(&MAILBOXES[2], 2);
        let a = s.insert(new(raw("a", "a@x", None), "inbox")).unwrap();
        let inbox = s.well_known_id("inbox").unwrap();
        let archive = s.well_known_id("archive").unwrap();
        let rest = s.get(&a).unwrap().rest_id.clone();
        let start = s.clock;
        assert_eq!(s.graph_move(&rest, "archive").unwrap(), a);
        assert!(s.get(&rest).is_none(), "the regular id changed");
        assert_eq!(s.control_folder(s.get(&a).unwrap()), "archive");
        assert!(s.touched(&inbox, start, s.clock).contains(&a));
        assert!(s.touched(&archive, start, s.clock).contains(&a));
        s.patch(
            &a,
            Patch {
                starred: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.starred(s.get(&a).unwrap()));
        assert!(!s.touched(&inbox, start + 1, s.clock).contains(&a));
    }
}
