//! `mail_general_settings`: the admin's general settings, one row (id 1). A NULL column means the
//! configuration's default applies.

use diesel::prelude::*;

use super::schema::mail_general_settings::dsl;
use super::{DbConnection, DbError};
use crate::db::WriteTransaction;

const ROW_ID: i64 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = super::schema::mail_general_settings)]
#[diesel(treat_none_as_null = true)]
pub struct GeneralSettingsRow {
    pub id: i64,
    pub sync_interval_secs: Option<i64>,
    pub initial_window_days: Option<i64>,
    pub max_attachment_bytes: Option<i64>,
    pub mass_rate_per_minute: Option<i64>,
    pub updated_at: i64,
}

pub fn get(conn: &mut DbConnection) -> Result<GeneralSettingsRow, DbError> {
    Ok(dsl::mail_general_settings
        .find(ROW_ID)
        .select(GeneralSettingsRow::as_select())
        .first(conn)
        .optional()?
        .unwrap_or(GeneralSettingsRow {
            id: ROW_ID,
            ..Default::default()
        }))
}

/// Writes the whole row (the caller merged the partial update into it).
pub fn save(conn: &mut DbConnection, row: &GeneralSettingsRow) -> Result<(), DbError> {
    let row = GeneralSettingsRow {
        id: ROW_ID,
        ..row.clone()
    };
    conn.write_transaction(|conn| {
        let updated = diesel::update(dsl::mail_general_settings.find(ROW_ID))
            .set(&row)
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(dsl::mail_general_settings)
                .values(&row)
                .execute(conn)?;
        }
        Ok(())
    })
}
