//! Startup configuration: control port and the set of regions.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::MockError;
use crate::knobs::Knobs;

/// The only address the mock ever binds to.
pub const BIND_HOST: &str = "127.0.0.1";

/// Configuration of one region: its port (0 = ephemeral) and initial knobs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegionConfig {
    pub port: u16,
    pub knobs: Knobs,
}

/// Configuration of a whole mock instance.
#[derive(Clone, Debug, PartialEq)]
pub struct MockConfig {
    /// Port of the control API (0 = ephemeral).
    pub control_port: u16,
    /// Regions by name.
    pub regions: BTreeMap<String, RegionConfig>,
    /// Log one line per request to stderr (off by default).
    pub log_requests: bool,
}

impl Default for MockConfig {
    /// Control port 0 and a single region `default` on port 0.
    fn default() -> Self {
        let mut regions = BTreeMap::new();
        regions.insert("default".to_string(), RegionConfig::default());
        MockConfig {
            control_port: 0,
            regions,
            log_requests: false,
        }
    }
}

fn check_host(v: &Value, where_: &str) -> Result<(), MockError> {
    match v.as_str() {
        Some(BIND_HOST) => Ok(()),
        _ => Err(MockError::new(format!(
            "{where_}: host {v} refused: meridian-mock only binds to {BIND_HOST}"
        ))),
    }
}

fn parse_port(v: &Value, where_: &str) -> Result<u16, MockError> {
    v.as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| {
            MockError::new(format!(
                "{where_}: port must be an integer in 0..=65535, got {v}"
            ))
        })
}

/// Region names appear in URL paths of the control API, so keep them simple.
fn valid_region_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl MockConfig {
    /// Parses the JSON configuration (the `--regions` / `--config` format).
    pub fn from_json_str(text: &str) -> Result<MockConfig, MockError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| MockError::new(format!("config is not valid JSON: {e}")))?;
        MockConfig::from_json(value)
    }

    /// Parses the configuration from a JSON value.
    pub fn from_json(value: Value) -> Result<MockConfig, MockError> {
        let Value::Object(top) = value else {
            return Err(MockError::new("config must be a JSON object"));
        };
        let mut config = MockConfig::default();
        let mut regions_given = None;
        for (key, v) in top {
            match key.as_str() {
                "host" => check_host(&v, "config")?,
                "control_port" => config.control_port = parse_port(&v, "control_port")?,
                "regions" => regions_given = Some(v),
                other => {
                    return Err(MockError::new(format!(
                        "config: unknown field {other:?} (expected host, control_port, regions)"
                    )))
                }
            }
        }
        if let Some(regions) = regions_given {
            let Value::Object(regions) = regions else {
                return Err(MockError::new("config: regions must be a JSON object"));
            };
            if regions.is_empty() {
                return Err(MockError::new("config: regions must not be empty"));
            }
            config.regions.clear();
            for (name, v) in regions {
                if !valid_region_name(&name) {
                    return Err(MockError::new(format!(
                        "config: invalid region name {name:?} (use letters, digits, '-', '_', '.')"
                    )));
                }
                let Value::Object(mut fields) = v else {
                    return Err(MockError::new(format!(
                        "region {name:?}: must be a JSON object"
                    )));
                };
                let port = match fields.remove("port") {
                    None | Some(Value::Null) => 0,
                    Some(p) => parse_port(&p, &format!("region {name:?}"))?,
                };
                if let Some(h) = fields.remove("host") {
                    check_host(&h, &format!("region {name:?}"))?;
                }
                let knobs = Knobs::from_json_map(strip_nulls(fields))
                    .map_err(|e| MockError::new(format!("region {name:?}: {e}")))?;
                config.regions.insert(name, RegionConfig { port, knobs });
            }
        }
        Ok(config)
    }
}

fn strip_nulls(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|_, v| !v.is_null());
    m
}
