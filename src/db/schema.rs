//! Table definitions shared by both backends; `tests/schema.rs` checks them against what the
//! migrations of each backend produce.

diesel::table! {
    mail_settings (provider) {
        provider -> Text,
        client_id -> Text,
        client_secret -> Nullable<Binary>,
        client_secret_hint -> Nullable<Text>,
        tenant -> Nullable<Text>,
        enabled -> Bool,
        updated_at -> BigInt,
    }
}

diesel::table! {
    oauth_states (state_hash) {
        state_hash -> Text,
        user_id -> BigInt,
        provider -> Text,
        pkce_verifier -> Binary,
        sync_from -> Nullable<BigInt>,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    mail_accounts (id) {
        id -> BigInt,
        user_id -> BigInt,
        provider -> Text,
        provider_account_id -> Text,
        email -> Text,
        display_name -> Nullable<Text>,
        status -> Text,
        access_token -> Binary,
        refresh_token -> Nullable<Binary>,
        token_expires_at -> Nullable<BigInt>,
        scopes -> Text,
        sync_from -> Nullable<BigInt>,
        last_sync_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        sync_cursor -> Nullable<Text>,
        sync_gen -> BigInt,
        next_sync_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    mail_folders (account_id, folder) {
        account_id -> BigInt,
        folder -> Text,
        name -> Text,
        provider_folder_id -> Text,
    }
}

diesel::table! {
    mail_messages (id) {
        id -> BigInt,
        account_id -> BigInt,
        user_id -> BigInt,
        provider_message_id -> Text,
        thread_id -> Text,
        message_id -> Nullable<Text>,
        in_reply_to -> Nullable<Text>,
        references_header -> Nullable<Text>,
        from_address -> Text,
        from_name -> Text,
        to_json -> Text,
        cc_json -> Text,
        bcc_json -> Text,
        reply_to_json -> Text,
        subject -> Text,
        snippet -> Text,
        date -> BigInt,
        folder -> Text,
        provider_labels -> Text,
        unread -> Bool,
        starred -> Bool,
        todo -> Bool,
        draft -> Bool,
        has_attachments -> Bool,
        size -> BigInt,
        text_body -> Nullable<Text>,
        html_body -> Nullable<Text>,
        search_text -> Text,
        sync_gen -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        todo_due_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    mail_attachments (id) {
        id -> BigInt,
        message_id -> BigInt,
        user_id -> BigInt,
        part_index -> Integer,
        filename -> Text,
        content_type -> Text,
        size -> BigInt,
        content_id -> Nullable<Text>,
        inline -> Bool,
    }
}

diesel::table! {
    mail_sync_runs (id) {
        id -> BigInt,
        account_id -> BigInt,
        kind -> Text,
        started_at -> BigInt,
        finished_at -> Nullable<BigInt>,
        added -> BigInt,
        updated -> BigInt,
        removed -> BigInt,
        error_kind -> Nullable<Text>,
        error_message -> Nullable<Text>,
    }
}

diesel::table! {
    mail_message_counts (account_id, folder) {
        account_id -> BigInt,
        folder -> Text,
        total -> BigInt,
        unread -> BigInt,
        starred -> BigInt,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> BigInt,
        user_id -> BigInt,
        account_id -> BigInt,
        message_id -> BigInt,
        provider_message_id -> Text,
        unread -> Nullable<Bool>,
        starred -> Nullable<Bool>,
        folder -> Nullable<Text>,
        prev_unread -> Nullable<Bool>,
        prev_starred -> Nullable<Bool>,
        prev_folder -> Nullable<Text>,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        todo -> Nullable<Bool>,
        todo_due_at -> Nullable<BigInt>,
        prev_todo -> Nullable<Bool>,
        prev_todo_due_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(mail_folders -> mail_accounts (account_id));
diesel::joinable!(mail_messages -> mail_accounts (account_id));
diesel::joinable!(mail_attachments -> mail_messages (message_id));
diesel::joinable!(mail_sync_runs -> mail_accounts (account_id));
diesel::joinable!(mail_message_counts -> mail_accounts (account_id));
diesel::joinable!(mail_outbox -> mail_messages (message_id));

diesel::allow_tables_to_appear_in_same_query!(
    mail_settings,
    oauth_states,
    mail_accounts,
    mail_folders,
    mail_messages,
    mail_attachments,
    mail_sync_runs,
    mail_message_counts,
    mail_outbox
);

// ---- composing (issue 4) ----

diesel::table! {
    mail_signatures (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        html -> Text,
        is_default -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    mail_templates (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        subject -> Text,
        html -> Text,
        text_body -> Nullable<Text>,
        shared -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    mail_outgoing (id) {
        id -> BigInt,
        user_id -> BigInt,
        account_id -> BigInt,
        idempotency_key -> Text,
        status -> Text,
        mode -> Text,
        request_json -> Text,
        message_id -> Nullable<Text>,
        provider_message_id -> Nullable<Text>,
        provider_thread_id -> Nullable<Text>,
        error -> Nullable<Text>,
        attempts -> Integer,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    mail_uploads (id) {
        id -> BigInt,
        user_id -> BigInt,
        filename -> Text,
        content_type -> Text,
        size -> BigInt,
        sha256 -> Text,
        storage_name -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    mail_drafts (id) {
        id -> BigInt,
        user_id -> BigInt,
        account_id -> BigInt,
        revision -> BigInt,
        provider_draft_id -> Nullable<Text>,
        fields_json -> Text,
        provider_synced_revision -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        mirror_locked_until -> BigInt,
        mirror_next_at -> BigInt,
        mirror_attempts -> Integer,
        mirror_error -> Nullable<Text>,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    mail_aliases (id) {
        id -> BigInt,
        account_id -> BigInt,
        address -> Text,
        name -> Text,
        is_default -> Bool,
        verified -> Bool,
        updated_at -> BigInt,
    }
}

diesel::joinable!(mail_outgoing -> mail_accounts (account_id));
diesel::joinable!(mail_drafts -> mail_accounts (account_id));
diesel::joinable!(mail_aliases -> mail_accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    mail_accounts,
    mail_signatures,
    mail_templates,
    mail_outgoing,
    mail_uploads,
    mail_drafts,
    mail_aliases
);

// ---- labels, notes and to-do (issue 5) ----

diesel::table! {
    mail_labels (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        name_key -> Text,
        color -> Nullable<Text>,
        sync_error -> Nullable<Text>,
        sync_error_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    mail_message_labels (message_id, label_id) {
        message_id -> BigInt,
        label_id -> BigInt,
        user_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    mail_label_links (label_id, account_id) {
        label_id -> BigInt,
        account_id -> BigInt,
        provider_label_id -> Text,
        provider_name -> Text,
    }
}

diesel::table! {
    mail_label_outbox (id) {
        id -> BigInt,
        user_id -> BigInt,
        account_id -> BigInt,
        op -> Text,
        label_id -> BigInt,
        message_id -> Nullable<BigInt>,
        payload -> Nullable<Text>,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    mail_message_notes (id) {
        id -> BigInt,
        message_id -> BigInt,
        user_id -> BigInt,
        format -> Text,
        content -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::joinable!(mail_message_labels -> mail_labels (label_id));
diesel::joinable!(mail_message_labels -> mail_messages (message_id));
diesel::joinable!(mail_label_links -> mail_labels (label_id));
diesel::joinable!(mail_label_links -> mail_accounts (account_id));
diesel::joinable!(mail_label_outbox -> mail_accounts (account_id));
diesel::joinable!(mail_message_notes -> mail_messages (message_id));

diesel::allow_tables_to_appear_in_same_query!(
    mail_labels,
    mail_message_labels,
    mail_label_links,
    mail_label_outbox,
    mail_message_notes
);
// Pairs with the tables listed together above (a pair may only be declared once).
diesel::allow_tables_to_appear_in_same_query!(mail_messages, mail_labels);
diesel::allow_tables_to_appear_in_same_query!(mail_messages, mail_message_labels);
diesel::allow_tables_to_appear_in_same_query!(mail_messages, mail_label_links);
diesel::allow_tables_to_appear_in_same_query!(mail_messages, mail_label_outbox);
diesel::allow_tables_to_appear_in_same_query!(mail_messages, mail_message_notes);
diesel::allow_tables_to_appear_in_same_query!(mail_accounts, mail_labels);
diesel::allow_tables_to_appear_in_same_query!(mail_accounts, mail_message_labels);
diesel::allow_tables_to_appear_in_same_query!(mail_accounts, mail_label_links);
diesel::allow_tables_to_appear_in_same_query!(mail_accounts, mail_label_outbox);
diesel::allow_tables_to_appear_in_same_query!(mail_accounts, mail_message_notes);

// ---- mass mailing and general settings (issue 5, second half) ----

diesel::table! {
    mail_general_settings (id) {
        id -> BigInt,
        sync_interval_secs -> Nullable<BigInt>,
        initial_window_days -> Nullable<BigInt>,
        max_attachment_bytes -> Nullable<BigInt>,
        mass_rate_per_minute -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    mail_mass_jobs (id) {
        id -> BigInt,
        user_id -> BigInt,
        account_id -> BigInt,
        from_name -> Nullable<Text>,
        from_address -> Text,
        subject -> Text,
        html -> Nullable<Text>,
        text_body -> Nullable<Text>,
        attachments -> Text,
        rate -> Nullable<BigInt>,
        status -> Text,
        pause_reason -> Nullable<Text>,
        total -> BigInt,
        rejected -> Text,
        created_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        updated_at -> BigInt,
        pace_next_at -> BigInt,
    }
}

diesel::table! {
    mail_mass_recipients (id) {
        id -> BigInt,
        job_id -> BigInt,
        account_id -> BigInt,
        position -> BigInt,
        email -> Text,
        name -> Nullable<Text>,
        variables -> Nullable<Text>,
        status -> Text,
        message_id -> Text,
        attempts -> Integer,
        error -> Nullable<Text>,
        lease_owner -> Nullable<Text>,
        lease_until -> BigInt,
        not_before -> BigInt,
        sent_at -> Nullable<BigInt>,
        provider_message_id -> Nullable<Text>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    mail_mass_throttle (account_id) {
        account_id -> BigInt,
        next_at -> BigInt,
        blocked_until -> BigInt,
        rate_permille -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::joinable!(mail_mass_recipients -> mail_mass_jobs (job_id));
diesel::allow_tables_to_appear_in_same_query!(mail_mass_jobs, mail_mass_recipients);
