//! Virtual models: a model alias whose model is chosen per request by ordered rules over the request (a header,
//! the dialect, the gateway key, metadata, tools, the estimated prompt size, reasoning), validated into types that
//! cannot be invalid. The first rule that matches names the model that serves; the last rule matches everything.

use super::raw::{RawVirtualModel, RawWhen};
use super::{err, ConfigError};
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct VirtualModel {
    pub name: String,
    /// Never empty; the last has no condition.
    pub rules: Vec<Rule>,
}

#[derive(Debug)]
pub struct Rule {
    /// Its `name`, or `rules[i]`: what `x-meridian-route-reason` says.
    pub name: String,
    /// A configured (not virtual) model.
    pub model: String,
    pub when: When,
}

/// Every condition given must hold; none given matches every request.
#[derive(Debug, Default)]
pub struct When {
    /// Header name (lower case) and value, compared without regard to case.
    pub headers: Vec<(String, String)>,
    pub dialect: Option<RuleDialect>,
    /// Any of these gateway keys.
    pub keys: Vec<String>,
    /// Top-level `metadata` members (OpenAI's `metadata`, Anthropic's `metadata.user_id`) equal to these strings.
    pub metadata: Vec<(String, String)>,
    /// Whether the request offers tools.
    pub tools: Option<bool>,
    /// The prompt's estimated tokens (about 4 bytes of body each) above this.
    pub prompt_tokens_over: Option<u64>,
    /// Whether the request asks for reasoning (`reasoning_effort` other than none or minimal, Anthropic's
    /// `thinking` enabled or adaptive, Responses' `reasoning.effort`).
    pub reasoning: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleDialect {
    OpenAi,
    Anthropic,
    Responses,
}

/// What a request offers the rules.
#[derive(Debug, Default)]
pub struct Features<'a> {
    pub dialect: Option<RuleDialect>,
    pub key: &'a str,
    pub headers: Option<&'a crate::http::Headers>,
    pub metadata: BTreeMap<String, String>,
    pub tools: bool,
    pub prompt_tokens: u64,
    pub reasoning: bool,
}

impl When {
    fn is_empty(&self) -> bool {
        self.headers.is_empty()
            && self.dialect.is_none()
            && self.keys.is_empty()
            && self.metadata.is_empty()
            && self.tools.is_none()
            && self.prompt_tokens_over.is_none()
            && self.reasoning.is_none()
    }

    pub fn matches(&self, f: &Features<'_>) -> bool {
        let header = |name: &str| f.headers.and_then(|h| h.get(name));
        self.headers
            .iter()
            .all(|(n, v)| header(n).is_some_and(|got| got.trim().eq_ignore_ascii_case(v)))
            && self.dialect.is_none_or(|d| f.dialect == Some(d))
            && (self.keys.is_empty() || self.keys.iter().any(|k| k == f.key))
            && self
                .metadata
                .iter()
                .all(|(k, v)| f.metadata.get(k).is_some_and(|got| got == v))
            && self.tools.is_none_or(|t| t == f.tools)
            && self.prompt_tokens_over.is_none_or(|n| f.prompt_tokens > n)
            && self.reasoning.is_none_or(|r| r == f.reasoning)
    }
}

impl VirtualModel {
    /// The rule that serves a request with these features (the last always matches).
    pub fn choose(&self, f: &Features<'_>) -> &Rule {
        self.rules
            .iter()
            .find(|r| r.when.matches(f))
            .unwrap_or_else(|| &self.rules[self.rules.len() - 1])
    }
}

/// Validates `virtual_models.<name>` against the configured models' and keys' names.
pub fn validate(
    name: &str,
    raw: RawVirtualModel,
    models: &dyn Fn(&str) -> bool,
    keys: &dyn Fn(&str) -> bool,
) -> Result<VirtualModel, ConfigError> {
    let path = format!("virtual_models.{name}");
    if raw.rules.is_empty() {
        return Err(err(
            format_args!("{path}.rules"),
            "must list at least one rule",
        ));
    }
    let n = raw.rules.len();
    let mut rules = Vec::with_capacity(n);
    for (i, r) in raw.rules.into_iter().enumerate() {
        let rpath = format!("{path}.rules[{i}]");
        if !models(&r.model) {
            return Err(err(
                format_args!("{rpath}.model"),
                format_args!(
                    "unknown model {:?} (a configured model, not a virtual one)",
                    r.model
                ),
            ));
        }
        let when = match r.when {
            None => When::default(),
            Some(w) => when(&format!("{rpath}.when"), w, keys)?,
        };
        if i + 1 == n && !when.is_empty() {
            return Err(err(
                format_args!("{rpath}.when"),
                "the last rule must have no condition: it serves every request the others do not",
            ));
        }
        if i + 1 < n && when.is_empty() {
            return Err(err(
                format_args!("{rpath}.when"),
                "only the last rule may have no condition (the rules after it could never match)",
            ));
        }
        rules.push(Rule {
            name: r.name.unwrap_or_else(|| format!("rules[{i}]")),
            model: r.model,
            when,
        });
    }
    Ok(VirtualModel {
        name: name.to_owned(),
        rules,
    })
}

fn when(path: &str, w: RawWhen, keys: &dyn Fn(&str) -> bool) -> Result<When, ConfigError> {
    let mut headers = Vec::new();
    for (name, value) in w.header.unwrap_or_default() {
        if !crate::http::valid_name(&name) {
            return Err(err(
                format_args!("{path}.header"),
                format_args!("invalid header name {name:?}"),
            ));
        }
        headers.push((name.to_ascii_lowercase(), value));
    }
    let dialect = match w.dialect.as_deref() {
        None => None,
        Some("openai") => Some(RuleDialect::OpenAi),
        Some("anthropic") => Some(RuleDialect::Anthropic),
        Some("responses") => Some(RuleDialect::Responses),
        Some(d) => {
            return Err(err(
                format_args!("{path}.dialect"),
                format_args!("unknown dialect {d:?} (\"openai\", \"anthropic\" or \"responses\")"),
            ))
        }
    };
    let key_names = w.key.unwrap_or_default();
    if let Some(k) = key_names.iter().find(|k| !keys(k)) {
        return Err(err(
            format_args!("{path}.key"),
            format_args!("unknown gateway key {k:?}"),
        ));
    }
    Ok(When {
        headers,
        dialect,
        keys: key_names,
        metadata: w.metadata.unwrap_or_default().into_iter().collect(),
        tools: w.tools,
        prompt_tokens_over: w.prompt_tokens_over,
        reasoning: w.reasoning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn when(json: &str) -> When {
        let raw: RawWhen = serde_json::from_slice(json.as_bytes()).unwrap();
        super::when("w", raw, &|k| k == "team").unwrap()
    }

    #[test]
    fn every_condition_given_must_hold() {
        let mut h = crate::http::Headers::new();
        h.insert("x-meridian-task", "Code");
        let f = Features {
            dialect: Some(RuleDialect::Anthropic),
            key: "team",
            headers: Some(&h),
            metadata: [("tier".to_owned(), "gold".to_owned())].into(),
            tools: true,
            prompt_tokens: 9000,
            reasoning: false,
        };
        assert!(
            when(r#"{"header": {"X-Meridian-Task": "code"}}"#).matches(&f),
            "names and values without case"
        );
        assert!(when(r#"{"dialect": "anthropic", "key": ["team"], "tools": true}"#).matches(&f));
        assert!(when(r#"{"metadata": {"tier": "gold"}, "prompt_tokens_over": 8000}"#).matches(&f));
        assert!(!when(r#"{"metadata": {"tier": "gold"}, "prompt_tokens_over": 9000}"#).matches(&f));
        assert!(!when(r#"{"reasoning": true}"#).matches(&f));
        assert!(!when(r#"{"dialect": "openai"}"#).matches(&f));
        assert!(!when(r#"{"header": {"x-other": "code"}}"#).matches(&f));
        assert!(when("{}").matches(&f));
    }

    #[test]
    fn errors_name_the_path() {
        let raw: RawVirtualModel = serde_json::from_str(
            r#"{"rules": [{"model": "fast", "when": {"dialect": "klingon"}}, {"model": "fast"}]}"#,
        )
        .unwrap();
        let e = validate("smart", raw, &|m| m == "fast", &|_| true).unwrap_err();
        assert!(
            e.to_string()
                .contains("virtual_models.smart.rules[0].when.dialect: unknown dialect"),
            "{e}"
        );
        let raw: RawVirtualModel =
            serde_json::from_str(r#"{"rules": [{"model": "fast", "when": {"tools": true}}]}"#)
                .unwrap();
        let e = validate("smart", raw, &|m| m == "fast", &|_| true).unwrap_err();
        assert!(
            e.to_string()
                .contains("rules[0].when: the last rule must have no condition"),
            "{e}"
        );
        let raw: RawVirtualModel =
            serde_json::from_str(r#"{"rules": [{"model": "nope"}]}"#).unwrap();
        let e = validate("smart", raw, &|m| m == "fast", &|_| true).unwrap_err();
        assert!(
            e.to_string()
                .contains("virtual_models.smart.rules[0].model: unknown model"),
            "{e}"
        );
    }
}
