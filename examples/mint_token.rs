//! Mints a browser token (see `meridian::browser_token` for the format), e.g. for testing a web app locally:
//!
//! ```sh
//! MERIDIAN_TOKEN_SECRET=... cargo run --example mint_token -- --secret-env MERIDIAN_TOKEN_SECRET \
//!     --origin https://app.example.com --models fast,claude --ttl 600 [--rpm 30] [--sub user-1] [--kid k1]
//! ```
//!
//! The secret is read from the environment variable named by `--secret-env`, never from the command line (where
//! it would end up in shell history and process listings). The token is printed on stdout.

use meridian::browser_token::{self, Claims, MIN_SECRET_LEN};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

const USAGE: &str =
    "usage: mint_token --secret-env VAR --origin ORIGIN --models M1[,M2...] --ttl SECONDS \
                     [--rpm N] [--sub SUBJECT] [--kid KEY_ID]";

struct Args {
    secret_env: String,
    origin: String,
    models: Vec<String>,
    ttl: u64,
    rpm: Option<u32>,
    sub: Option<String>,
    kid: Option<String>,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut secret_env, mut origin, mut models, mut ttl) = (None, None, None, None);
    let (mut rpm, mut sub, mut kid) = (None, None, None);
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        let value = argv
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--secret-env" => secret_env = Some(value),
            "--origin" => origin = Some(value),
            "--models" => {
                models = Some(
                    value
                        .split(',')
                        .map(|m| m.trim().to_owned())
                        .filter(|m| !m.is_empty())
                        .collect::<Vec<_>>(),
                )
            }
            "--ttl" => {
                ttl = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| "--ttl must be a number of seconds".to_owned())?,
                )
            }
            "--rpm" => {
                rpm = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| "--rpm must be a whole number".to_owned())?,
                )
            }
            "--sub" => sub = Some(value),
            "--kid" => kid = Some(value),
            "--secret" => {
                return Err(
                    "the secret is never taken from the command line: use --secret-env VAR".into(),
                )
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let missing = |name: &str| format!("missing {name}\n{USAGE}");
    Ok(Args {
        secret_env: secret_env.ok_or_else(|| missing("--secret-env"))?,
        origin: origin.ok_or_else(|| missing("--origin"))?,
        models: models.ok_or_else(|| missing("--models"))?,
        ttl: ttl.ok_or_else(|| missing("--ttl"))?,
        rpm,
        sub,
        kid,
    })
}

fn run() -> Result<String, String> {
    let args = parse_args(std::env::args().skip(1))?;
    let secret = std::env::var(&args.secret_env)
        .map_err(|_| format!("environment variable {} is not set", args.secret_env))?;
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the secret in {} is shorter than {MIN_SECRET_LEN} bytes: never accepted",
            args.secret_env
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_owned())?
        .as_secs();
    let claims = Claims {
        exp: now.saturating_add(args.ttl),
        iat: Some(now),
        models: args.models,
        origin: args.origin,
        rpm: args.rpm,
        sub: args.sub,
        kid: args.kid,
    };
    claims.validate().map_err(|e| e.to_string())?;
    let token = browser_token::mint(secret.as_bytes(), &claims);
    if token.len() > browser_token::MAX_TOKEN_LEN {
        return Err(format!(
            "the token would be {} bytes, more than the maximum of {}",
            token.len(),
            browser_token::MAX_TOKEN_LEN
        ));
    }
    Ok(token)
}

fn main() -> ExitCode {
    match run() {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mint_token: {e}");
            ExitCode::from(2)
        }
    }
}
