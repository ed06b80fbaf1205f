//! Builds the service from settings: database, cipher, providers, host auth, HTTP routes.
//! `Application::build` takes its listener so tests can run it on port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use serde_json::json;

use crate::auth::HostAuth;
use crate::config::{Settings, OAUTH_CALLBACK_PATH};
use crate::crypto::Cipher;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::providers::ProviderRegistry;
use crate::state::AppState;
use crate::{api, manifest, web as pages};

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Everything that can fail at start-up fails here, with context naming the step.
    pub fn build(settings: Settings, listener: TcpListener) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
        let db = Db::connect(&settings.database.url, settings.database.max_connections)
            .with_context(|| {
                format!(
                    "opening the database {}",
                    crate::config::redact_url(&settings.database.url)
                )
            })?;
        let cipher =
            Cipher::new(&settings.security.encryption_key).context("security.encryption_key")?;
        api::mail_settings::check_encryption_key(&db, &cipher)?;
        let registry =
            ProviderRegistry::from_settings(&settings).context("building the provider clients")?;
        let auth = HostAuth::new(&settings.host).context("building the host client")?;
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            db,
            cipher,
            registry,
            auth,
            metrics: Metrics::default(),
            sync: Default::default(),
            writeback: Default::default(),
            labels: Default::default(),
            drafts: Default::default(),
            general: Default::default(),
            mass: Default::default(),
        });

        let port = listener
            .local_addr()
            .context("reading the listener address")?
            .port();
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .wrap(from_fn(observe))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics))
                .route("/plugin-manifest.json", web::get().to(plugin_manifest))
                .route("/admin/settings/mail", web::get().to(pages::settings_page))
                .route("/admin/mail", web::get().to(crate::web::mail::index))
                .route(
                    "/admin/mail/config",
                    web::get().to(crate::web::mail::config),
                )
                .route(
                    "/admin/mail/assets/{name}",
                    web::get().to(crate::web::mail::asset),
                )
                .route(OAUTH_CALLBACK_PATH, web::get().to(oauth_callback))
                .route("/admin/dev/config", web::get().to(pages::dev_config))
                .route("/admin/dev/sign-in", web::post().to(pages::dev_sign_in))
                .route("/api/{name}", web::route().to(api::dispatch))
                .default_service(web::to(not_found))
        })
        .workers(settings.server.workers)
        .shutdown_timeout(settings.server.shutdown_timeout_secs)
        .listen(listener)
        .context("listening")?
        .run();

        actix_web::rt::spawn(manifest::register_until_accepted(settings.clone()));
        if settings.sync.enabled {
            crate::sync::scheduler::spawn(state.clone());
        }
        // Changes to messages waiting for their provider: always on, they are the user's.
        crate::writeback::spawn(state.clone());
        // Label work waiting for the providers, likewise.
        crate::label_writeback::spawn(state.clone());
        // Drafts' provider copies, coalesced; their state is in the database.
        crate::draft_mirror::spawn(state.clone());
        // Mass mailings: the jobs and every recipient's state are in the database.
        if settings.mail.mass_worker {
            crate::mass::spawn(state.clone());
        }
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until stopped. SIGTERM/SIGINT stop accepting connections and let requests in
    /// flight finish within `server.shutdown_timeout_secs`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.state.drafts.stop();
        result
    }
}

/// Request log and counters. Logs the path only: query strings carry OAuth codes and states.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let status = res.status();
    if let Some(state) = state {
        state.metrics.inc(
            "email_manager_http_requests_total",
            format!("status=\"{}xx\"", status.as_u16() / 100),
        );
    }
    let elapsed = started.elapsed();
    if path == "/healthz" || path == "/readyz" || path == "/metrics" {
        log::debug!("{method} {path} {} {:.1}ms", status.as_u16(), ms(elapsed));
    } else {
        log::info!("{method} {path} {} {:.1}ms", status.as_u16(), ms(elapsed));
    }
    Ok(res)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.db.is_ready().await {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not ready", "reason": "database unreachable or migrations pending" }))
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn plugin_manifest(
    state: web::Data<AppState>,
) -> Result<HttpResponse, crate::error::ApiError> {
    let m = manifest::build(&state.settings).map_err(crate::error::ApiError::internal)?;
    Ok(HttpResponse::Ok().json(m))
}

async fn oauth_callback(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    api::mail_accounts::callback(&state, &params).await
}

async fn not_found() -> Result<HttpResponse, crate::error::ApiError> {
    Err(crate::error::ApiError::not_found("Route"))
}
