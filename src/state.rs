//! What every handler shares. Built once in `startup`, passed in, never global.

use std::sync::Arc;

use crate::auth::HostAuth;
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::providers::ProviderRegistry;
use crate::sync::SyncState;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub cipher: Cipher,
    pub registry: ProviderRegistry,
    pub auth: HostAuth,
    pub metrics: Metrics,
    pub sync: SyncState,
    pub writeback: crate::writeback::Writeback,
    /// Label work waiting for the providers (issue 5).
    pub labels: crate::label_writeback::LabelWriteback,
    pub drafts: crate::draft_mirror::DraftMirror,
    /// The admin's general settings as this process last read them (issue 5).
    pub general: crate::api::mail_general_settings::GeneralCache,
    /// The mass-mailing worker's wake-up and in-flight sends (issue 5).
    pub mass: crate::mass::MassState,
}
