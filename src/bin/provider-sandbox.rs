//! `provider-sandbox`: runs the provider sandbox (fake Google, Microsoft and NocoBase host) for
//! `make demo` and manual testing. Loopback only: it hands out tokens to anyone who asks.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::process::ExitCode;

use email_manager::sandbox::{Sandbox, SandboxConfig};

const USAGE: &str = "usage: provider-sandbox [--bind 127.0.0.1:18080] [--jwt-secret-file PATH] [--mail N] \
[--google-client-id X --google-client-secret Y --microsoft-client-id X --microsoft-client-secret Y]";

struct Args {
    bind: String,
    config: SandboxConfig,
    /// Generated messages per seeded mailbox at start.
    mail: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: "127.0.0.1:18080".into(),
        config: SandboxConfig::default(),
        mail: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let c = &mut args.config;
        match flag.as_str() {
            "--bind" => args.bind = value,
            "--mail" => {
                args.mail = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= 100_000)
                    .ok_or_else(|| format!("--mail {value}: a number of messages up to 100000"))?
            }
            // The raw bytes, as NocoBase reads storage/apps/main/jwt_secret.dat.
            "--jwt-secret-file" => {
                c.jwt_secret =
                    std::fs::read(&value).map_err(|e| format!("--jwt-secret-file {value}: {e}"))?
            }
            "--google-client-id" => c.google_client_id = value,
            "--google-client-secret" => c.google_client_secret = value,
            "--microsoft-client-id" => c.microsoft_client_id = value,
            "--microsoft-client-secret" => c.microsoft_client_secret = value,
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Resolves `--bind` and refuses anything that is not a loopback address.
fn loopback_addr(bind: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = bind
        .to_socket_addrs()
        .map_err(|e| format!("--bind {bind}: {e}"))?
        .collect();
    match addrs.first() {
        Some(addr) if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(*addr),
        Some(_) => Err(format!("--bind {bind}: refusing a non-loopback address (the sandbox hands out tokens to anyone)")),
        None => Err(format!("--bind {bind}: no address")),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let addr = match loopback_addr(&args.bind) {
        Ok(a) => a,
        Err(message) => {
            eprintln!("provider-sandbox: {message}");
            return ExitCode::from(2);
        }
    };
    let sandbox = match TcpListener::bind(addr).and_then(|l| Sandbox::start(args.config, l)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("provider-sandbox: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.mail > 0 {
        sandbox.generate_mail(args.mail, 25);
    }
    // Scripts wait for this one line (the real port when --bind asked for port 0).
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "provider sandbox listening on {}", sandbox.base_url);
    let _ = stdout.flush();
    shutdown_signal().await;
    sandbox.stop().await;
    ExitCode::SUCCESS
}
