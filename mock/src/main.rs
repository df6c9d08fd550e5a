//! `meridian-mock [--config FILE | --regions JSON] [--exit-on-stdin-eof] [--verbose]`

use std::io::{Read, Write};
use std::process::ExitCode;

use meridian_mock::{start, MockConfig};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

const USAGE: &str =
    "usage: meridian-mock [--config FILE | --regions JSON] [--exit-on-stdin-eof] [--verbose]

  --config FILE          read the JSON configuration from FILE
  --regions JSON         the JSON configuration inline
  --exit-on-stdin-eof    exit when standard input is closed
  --verbose              log one line per request to stderr

JSON: {\"control_port\":0,\"regions\":{\"us-east\":{\"port\":0,\"header_delay_ms\":0}}}
Default: control port 0 and one region \"default\" on port 0.
Prints one JSON line with the bound URLs to stdout once listening.";

struct Args {
    config: MockConfig,
    exit_on_stdin_eof: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut source: Option<(&'static str, String)> = None;
    let mut exit_on_stdin_eof = false;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--exit-on-stdin-eof" => exit_on_stdin_eof = true,
            "--verbose" => verbose = true,
            "--config" | "--regions" => {
                let value = match inline {
                    Some(v) => v,
                    None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
                };
                if source.is_some() {
                    return Err("give only one of --config and --regions".into());
                }
                let kind = if flag == "--config" {
                    "config"
                } else {
                    "regions"
                };
                source = Some((kind, value));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mut config = match source {
        None => MockConfig::default(),
        Some(("config", file)) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read config file {file}: {e}"))?;
            MockConfig::from_json_str(&text).map_err(|e| format!("{file}: {e}"))?
        }
        Some((_, json)) => MockConfig::from_json_str(&json).map_err(|e| e.to_string())?,
    };
    config.log_requests = verbose;
    Ok(Some(Args {
        config,
        exit_on_stdin_eof,
    }))
}

fn stdin_eof() -> oneshot::Receiver<()> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    rx
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("meridian-mock: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (mut sigint, mut sigterm) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        _ => {
            eprintln!("meridian-mock: cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let mock = match start(args.config).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("meridian-mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{}", mock.announcement())
            .and_then(|_| out.flush())
            .is_err()
        {
            eprintln!("meridian-mock: cannot write to stdout");
            return ExitCode::FAILURE;
        }
    }
    let stdin_closed = async {
        if args.exit_on_stdin_eof {
            let _ = stdin_eof().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let why = tokio::select! {
        _ = sigint.recv() => "SIGINT",
        _ = sigterm.recv() => "SIGTERM",
        _ = stdin_closed => "stdin closed",
    };
    eprintln!("meridian-mock: {why}, shutting down");
    mock.shutdown().await;
    ExitCode::SUCCESS
}
