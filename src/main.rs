//! `email-manager`: the sidecar binary.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use email_manager::config::{Settings, CONFIG_PATH_ENV};
use email_manager::startup::Application;

const USAGE: &str = "usage: email-manager [--config PATH]\n\
  Configuration: built-in defaults <- TOML file (--config or EMAIL_MANAGER_CONFIG) <- EMAIL_MANAGER__SECTION__KEY.\n\
  See docs/configuration.md.";

fn config_path() -> Result<Option<PathBuf>, String> {
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var_os(CONFIG_PATH_ENV).map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => path = Some(args.next().ok_or("--config needs a path")?.into()),
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(path)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings =
        match config_path().and_then(|p| Settings::load(p.as_deref()).map_err(|e| e.to_string())) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("email-manager: {e}");
                return ExitCode::from(2);
            }
        };
    if settings.dev.enabled {
        log::warn!("development mode: demo sign-in on, fixed encryption key if none is configured; never use this in production");
    }
    let result = actix_web::rt::System::new().block_on(async move {
        let listener = TcpListener::bind(&settings.server.bind).map_err(|e| {
            anyhow::anyhow!(
                "server.bind: cannot listen on {}: {e}",
                settings.server.bind
            )
        })?;
        let app = Application::build(settings.clone(), listener)?;
        log::info!(
            "email-manager {} listening on {} (database: {:?})",
            env!("CARGO_PKG_VERSION"),
            settings.server.bind,
            app.state().db.backend()
        );
        app.run_until_stopped().await?;
        log::info!("stopped");
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("email-manager: {e:#}");
            ExitCode::from(1)
        }
    }
}
