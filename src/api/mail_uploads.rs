//! `mailAttachments:upload`: a file uploaded ahead of a send, referenced there by its id; and
//! `mailUploads:get` / `mailUploads:destroy` for the uploader.
//!
//! The body is either `multipart/form-data` with one file part, or the raw bytes with the name
//! in the `filename` query parameter. It is streamed to a file under `mail.upload_dir` (never
//! held in memory) while its size is counted and its SHA-256 computed; past
//! `mail.upload_max_bytes` the request answers 413 at once and the partial file is removed, so
//! nothing is stored. Files are named by a random token, never by the user's file name. Uploads
//! expire after `mail.upload_ttl_secs`; expired ones are purged on later uploads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use super::{data, iso, ActionCtx};
use crate::auth::Identity;
use crate::crypto::random_token;
use crate::db::compose::{self as store, NewUpload, UploadRow};
use crate::db::{now_millis, DbError};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::send::mime::{clean_filename, media_type};
use crate::state::AppState;

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Expired uploads removed per upload request (the rest go on the next ones).
const PURGE_BATCH: i64 = 100;

fn upload_json(u: &UploadRow) -> Value {
    json!({
        "id": u.id,
        "filename": u.filename,
        "contentType": u.content_type,
        "size": u.size,
        "sha256": u.sha256,
        "createdAt": iso(u.created_at),
        "expiresAt": iso(u.expires_at),
    })
}

fn not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Upload"),
        other => other.into(),
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("The file is larger than the upload limit of {limit} bytes"),
    )
}

/// Where an upload's bytes are.
pub fn upload_path(dir: &Path, storage_name: &str) -> PathBuf {
    dir.join(storage_name)
}

/// The user's upload (not expired) and the path of its bytes: for the send action.
pub async fn open_upload(
    state: &AppState,
    user_id: i64,
    id: i64,
) -> ApiResult<(UploadRow, PathBuf)> {
    let now = now_millis();
    let row = state
        .db
        .run(move |conn| store::get_upload(conn, user_id, id, now))
        .await
        .map_err(not_found)?;
    let path = upload_path(&state.settings.mail.upload_dir, &row.storage_name);
    Ok((row, path))
}

/// A file being written: removed on drop unless kept, so every early return (413, a broken
/// connection, a database error) leaves nothing behind.
struct PartialFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

struct Sink {
    file: tokio::fs::File,
    hasher: sha2::Sha256,
    size: u64,
    limit: u64,
}

impl Sink {
    async fn write(&mut self, chunk: &[u8]) -> ApiResult<()> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(too_large(self.limit));
        }
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("writing an upload: {e}")))
    }
}

fn broken_body(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid("Could not read the upload body").with_cause(anyhow::anyhow!("{e}"))
}

pub async fn upload(
    state: &AppState,
    identity: Identity,
    params: HashMap<String, String>,
    req: &HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let limit = state.settings.mail.upload_max_bytes;
    if let Some(unknown) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "filename" | "contentType"))
    {
        return Err(ApiError::invalid(format!(
            "Unknown query parameter {unknown:?}: expected filename, contentType"
        )));
    }
    // A declared length over the limit is refused before a byte is read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let request_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let multipart = request_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data");
    // Multipart framing adds a few hundred bytes; the file itself is held to the limit below.
    let framing = if multipart { 64 * 1024 } else { 0 };
    if declared.is_some_and(|n| n > limit + framing) {
        return Err(too_large(limit));
    }
    let query_name = params.get("filename").map(|s| s.trim().to_string());
    let query_type = params
        .get("contentType")
        .map(|t| media_type(t))
        .transpose()
        .map_err(|e| ApiError::invalid(format!("contentType: {e}")))?;

    let mut new = NewFile::begin(state).await?;
    let sink = &mut new.sink;

    let (part_name, part_type) = if multipart {
        read_multipart(req, payload, sink).await?
    } else {
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            sink.write(&chunk.map_err(broken_body)?).await?;
        }
        let raw_type = media_type(&request_type).ok().filter(|t| {
            !matches!(
                t.as_str(),
                "application/x-www-form-urlencoded" | "application/json" | "text/plain"
            )
        });
        (None, raw_type)
    };
    let filename = query_name
        .filter(|n| !n.is_empty())
        .or(part_name)
        .ok_or_else(|| {
            ApiError::invalid(
                "filename is required: give it in the query (?filename=…) or as the file part's filename",
            )
        })?;
    let filename = clean_filename(&filename);
    let content_type = query_type
        .or(part_type)
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());
    let row = new
        .finish(state, identity.user_id, filename, content_type)
        .await?;
    purge_expired(state).await;
    Ok(data(upload_json(&row)))
}

/// An upload being written: a `.part` file under `mail.upload_dir`, removed unless finished.
struct NewFile {
    dir: PathBuf,
    storage_name: String,
    partial: PartialFile,
    sink: Sink,
}

impl NewFile {
    async fn begin(state: &AppState) -> ApiResult<NewFile> {
        let dir = state.settings.mail.upload_dir.clone();
        tokio::fs::create_dir_all(&dir).await.map_err(|e| {
            ApiError::internal(anyhow::anyhow!(
                "creating the upload folder {}: {e}",
                dir.display()
            ))
        })?;
        let storage_name = random_token(18);
        let partial = PartialFile {
            path: dir.join(format!("{storage_name}.part")),
            keep: false,
        };
        let file = tokio::fs::File::create(&partial.path)
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("creating an upload file: {e}")))?;
        Ok(NewFile {
            dir,
            storage_name,
            partial,
            sink: Sink {
                file,
                hasher: sha2::Sha256::new(),
                size: 0,
                limit: state.settings.mail.upload_max_bytes,
            },
        })
    }

    /// Flushes and renames the file, then writes its row (the file goes again if that fails).
    async fn finish(
        self,
        state: &AppState,
        user_id: i64,
        filename: String,
        content_type: String,
    ) -> ApiResult<UploadRow> {
        let NewFile {
            dir,
            storage_name,
            partial,
            sink,
        } = self;
        sink.file
            .sync_all()
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("flushing an upload: {e}")))?;
        drop(sink.file);
        let final_path = upload_path(&dir, &storage_name);
        tokio::fs::rename(&partial.path, &final_path)
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("storing an upload: {e}")))?;
        // From here the stored file goes again unless its row is written.
        let mut stored = PartialFile {
            path: final_path,
            keep: false,
        };
        drop(partial);

        let now = now_millis();
        let ttl_ms = (state.settings.mail.upload_ttl_secs as i64).saturating_mul(1000);
        let new = NewUpload {
            user_id,
            filename,
            content_type,
            size: sink.size as i64,
            sha256: sink
                .hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            storage_name,
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
        };
        let row = state
            .db
            .run(move |conn| store::insert_upload(conn, &new))
            .await?;
        stored.keep = true;
        Ok(row)
    }
}

/// Streams one file part of a form (a multipart `mailMessages:send`) to a new upload, under the
/// same limit as `mailAttachments:upload`.
pub(crate) async fn store_field(
    state: &AppState,
    user_id: i64,
    field: &mut actix_multipart::Field,
    filename: String,
) -> ApiResult<UploadRow> {
    let content_type = field
        .content_type()
        .and_then(|m| media_type(m.essence_str()).ok())
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());
    let mut new = NewFile::begin(state).await?;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_multipart::MultipartError::Payload(p) => broken_body(p),
            other => ApiError::invalid(format!("The multipart body is malformed: {other}")),
        })?;
        new.sink.write(&chunk).await?;
    }
    new.finish(state, user_id, clean_filename(&filename), content_type)
        .await
}

/// Streams the one file part to `sink`; returns its file name and type.
async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    sink: &mut Sink,
) -> ApiResult<(Option<String>, Option<String>)> {
    let mut form = actix_multipart::Multipart::new(req.headers(), payload);
    let mut found: Option<(Option<String>, Option<String>)> = None;
    while let Some(field) = form.next().await {
        let mut field = field
            .map_err(|e| ApiError::invalid(format!("The multipart body is malformed: {e}")))?;
        if found.is_some() {
            return Err(ApiError::invalid(
                "Send one file per upload: the form has more than one part",
            ));
        }
        let name = part_filename(&field);
        let ctype = field
            .content_type()
            .and_then(|m| media_type(m.essence_str()).ok());
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| match e {
                actix_multipart::MultipartError::Payload(p) => broken_body(p),
                other => ApiError::invalid(format!("The multipart body is malformed: {other}")),
            })?;
            sink.write(&chunk).await?;
        }
        found = Some((name, ctype));
    }
    found.ok_or_else(|| ApiError::invalid("The form has no file part"))
}

/// A form part's file name: `filename*` (RFC 5987, UTF-8) when a client sends it, else the plain
/// `filename`.
pub(crate) fn part_filename(field: &actix_multipart::Field) -> Option<String> {
    field.content_disposition().and_then(|cd| {
        cd.get_filename_ext()
            .map(|ext| String::from_utf8_lossy(&ext.value).into_owned())
            .or_else(|| cd.get_filename().map(str::to_string))
    })
}

/// Removes expired uploads (rows, then files). Failures are logged: a later upload retries.
pub async fn purge_expired(state: &AppState) {
    let now = now_millis();
    let rows = match state
        .db
        .run(move |conn| store::take_expired_uploads(conn, now, PURGE_BATCH))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            log::warn!("purging expired uploads: {e}");
            return;
        }
    };
    for row in rows {
        let path = upload_path(&state.settings.mail.upload_dir, &row.storage_name);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("removing expired upload {}: {e}", path.display());
            }
        }
    }
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let (row, _) = open_upload(state, ctx.identity.user_id, id).await?;
    Ok(data(upload_json(&row)))
}

pub async fn destroy(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |conn| store::delete_upload(conn, user_id, id))
        .await
        .map_err(not_found)?;
    let path = upload_path(&state.settings.mail.upload_dir, &row.storage_name);
    if let Err(e) = tokio::fs::remove_file(&path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("removing upload {}: {e}", path.display());
        }
    }
    Ok(data(json!({ "id": id })))
}
