//! Validation of one `providers.<name>` entry, and the region checks deployments share with it.

use super::{err, raw, AwsSecretNames, ConfigError, Provider, ProviderKind};
use std::collections::BTreeMap;

pub(super) fn validate_provider(
    path: &str,
    name: String,
    p: raw::RawProvider,
) -> Result<Provider, ConfigError> {
    if name.contains('/') {
        return Err(err(
            path,
            "provider names must not contain '/' (clients address providers as provider/model)",
        ));
    }
    let secret = |field: &str, v: Option<String>| -> Result<Option<String>, ConfigError> {
        match v {
            Some(s) if s.is_empty() => {
                Err(err(format_args!("{path}.{field}"), "must not be empty"))
            }
            v => Ok(v),
        }
    };
    let api_key_secret = secret("api_key_secret", p.api_key_secret)?;
    // Settings that only mean something for one kind are errors elsewhere, so a typo'd kind is caught.
    let only = |field: &str, set: bool, kind: &str| -> Result<(), ConfigError> {
        if set {
            Err(err(
                format_args!("{path}.{field}"),
                format_args!("only applies to kind {kind:?}"),
            ))
        } else {
            Ok(())
        }
    };
    let is_bedrock = p.kind == "bedrock";
    if !is_bedrock {
        only(
            "access_key_id_secret",
            p.access_key_id_secret.is_some(),
            "bedrock",
        )?;
        only(
            "secret_access_key_secret",
            p.secret_access_key_secret.is_some(),
            "bedrock",
        )?;
        only(
            "session_token_secret",
            p.session_token_secret.is_some(),
            "bedrock",
        )?;
    }
    if p.kind != "azure" {
        only("api_version", p.api_version.is_some(), "azure")?;
    }
    let (kind, default_url) = match p.kind.as_str() {
        "openai" => (ProviderKind::OpenAi, Some("https://api.openai.com/v1".to_owned())),
        "azure" => {
            let api_version = p
                .api_version
                .filter(|v| !v.is_empty())
                .ok_or_else(|| err(format_args!("{path}.api_version"), "is required for kind \"azure\""))?;
            (ProviderKind::Azure { api_version }, None)
        }
        "anthropic" => (ProviderKind::Anthropic, Some("https://api.anthropic.com/v1".to_owned())),
        "gemini" => (
            ProviderKind::Gemini,
            Some("https://generativelanguage.googleapis.com/v1beta".to_owned()),
        ),
        "bedrock" => {
            only("api_key_secret", api_key_secret.is_some(), "not bedrock: it signs with AWS credentials")?;
            let region = p
                .region
                .clone()
                .filter(|r| is_aws_region(r))
                .ok_or_else(|| err(format_args!("{path}.region"), "an AWS region such as \"us-east-1\" is required"))?;
            let required = |field: &str, v: Option<String>| -> Result<String, ConfigError> {
                secret(field, v)?.ok_or_else(|| err(format_args!("{path}.{field}"), "is required for kind \"bedrock\""))
            };
            let credentials = AwsSecretNames {
                access_key_id: required("access_key_id_secret", p.access_key_id_secret)?,
                secret_access_key: required("secret_access_key_secret", p.secret_access_key_secret)?,
                session_token: secret("session_token_secret", p.session_token_secret)?,
            };
            let url = format!("https://bedrock-runtime.{region}.amazonaws.com");
            (ProviderKind::Bedrock { region, credentials }, Some(url))
        }
        other => {
            return Err(err(
                format_args!("{path}.kind"),
                format_args!("unknown provider kind {other:?} (known: openai, azure, anthropic, bedrock, gemini)"),
            ))
        }
    };
    let base_url = match p.base_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => default_url
            .ok_or_else(|| err(format_args!("{path}.base_url"), "is required for this kind"))?,
    };
    if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
        || base_url.len() <= "https://".len()
    {
        return Err(err(
            format_args!("{path}.base_url"),
            "must be an http(s) URL",
        ));
    }
    let region = match p.region {
        Some(r) if r.is_empty() => {
            return Err(err(format_args!("{path}.region"), "must not be empty"))
        }
        Some(r) => r,
        None => "global".to_owned(),
    };
    Ok(Provider {
        name,
        kind,
        base_url,
        api_key_secret,
        region,
    })
}

/// Coordinates of a region: configured ones first, then the built-in cloud table.
pub(super) fn region_coords(
    custom: &BTreeMap<String, raw::RawRegion>,
    id: &str,
) -> Option<(f64, f64)> {
    if let Some(r) = custom.get(id) {
        return Some((r.lat, r.lon));
    }
    crate::regions::lookup(id).map(|r| (r.lat, r.lon))
}

/// `us-east-1`, `eu-central-2`, `ap-southeast-4`, `us-gov-west-1`: lower-case words and a final number.
fn is_aws_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}
