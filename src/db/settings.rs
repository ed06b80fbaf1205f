//! `mail_settings`: one row per provider.

use diesel::prelude::*;

use super::models::MailSettingsRow;
use super::schema::mail_settings::dsl;
use super::{DbConnection, DbError};
use crate::db::WriteTransaction;

pub fn get(conn: &mut DbConnection, provider: &str) -> Result<Option<MailSettingsRow>, DbError> {
    Ok(dsl::mail_settings
        .find(provider)
        .select(MailSettingsRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<MailSettingsRow>, DbError> {
    Ok(dsl::mail_settings
        .select(MailSettingsRow::as_select())
        .load(conn)?)
}

/// Writes the whole row (the caller merged the partial update into it).
pub fn save(conn: &mut DbConnection, row: &MailSettingsRow) -> Result<(), DbError> {
    conn.write_transaction(|conn| {
        let updated = diesel::update(dsl::mail_settings.find(&row.provider))
            .set(row)
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(dsl::mail_settings)
                .values(row)
                .execute(conn)?;
        }
        Ok(())
    })
}
