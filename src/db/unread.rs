//! Unread counts for the mail center and the host's top-bar badge (`mailMessages:unreadCount`).
//! Read off `mail_message_counts` (kept by triggers, one row per account and folder), so the
//! cost is the number of the user's folders, not of their messages: cheap enough to poll.

use diesel::prelude::*;

use super::schema::{
    mail_accounts, mail_folders, mail_message_counts, mail_message_labels, mail_messages,
};
use super::{DbConnection, DbError};

pub struct UnreadCounts {
    /// The user's account ids, oldest first (an account without mail has no counter rows).
    pub accounts: Vec<i64>,
    /// (account id, folder, unread), only folders that hold mail.
    pub folders: Vec<(i64, String, i64)>,
    /// (account id, folder, display name) of user folders (Outlook folders, Gmail user labels).
    pub folder_names: Vec<(i64, String, String)>,
    /// (label id, unread messages carrying it outside spam and trash).
    pub labels: Vec<(i64, i64)>,
}

pub fn for_user(conn: &mut DbConnection, user_id: i64) -> Result<UnreadCounts, DbError> {
    let accounts: Vec<i64> = mail_accounts::table
        .filter(mail_accounts::user_id.eq(user_id))
        .order(mail_accounts::id.asc())
        .select(mail_accounts::id)
        .load(conn)?;
    let folders: Vec<(i64, String, i64)> = mail_message_counts::table
        .filter(mail_message_counts::account_id.eq_any(&accounts))
        .select((
            mail_message_counts::account_id,
            mail_message_counts::folder,
            mail_message_counts::unread,
        ))
        .load(conn)?;
    let folder_names: Vec<(i64, String, String)> = mail_folders::table
        .filter(mail_folders::account_id.eq_any(&accounts))
        .filter(mail_folders::folder.like("user:%"))
        .select((
            mail_folders::account_id,
            mail_folders::folder,
            mail_folders::name,
        ))
        .load(conn)?;
    // Labelled messages are a small share of a mailbox; the join walks only those of this user.
    let labels: Vec<(i64, i64)> = mail_message_labels::table
        .inner_join(mail_messages::table.on(mail_messages::id.eq(mail_message_labels::message_id)))
        .filter(mail_message_labels::user_id.eq(user_id))
        .filter(mail_messages::user_id.eq(user_id))
        .filter(mail_messages::unread.eq(true))
        .filter(mail_messages::folder.ne_all(["spam", "trash"]))
        .group_by(mail_message_labels::label_id)
        .select((mail_message_labels::label_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(UnreadCounts {
        accounts,
        folders,
        folder_names,
        labels,
    })
}
