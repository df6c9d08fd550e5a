//! The Chat Completions request as typed serde structs, and its conversion to the canonical request for providers
//! that do not speak OpenAI's wire format. Strings borrow from the body unless they carry escapes; tool schemas
//! are free-form JSON and stay `Value`s with every number's text. Fields Meridian does not translate are not
//! read here (passthrough forwards them; the cache key compares them).

use super::openai::ChatRequest;
use crate::canonical::{
    self, CachePoint, Image, Part, ResponseFormat, Role, Thinking, Tool, ToolChoice,
};
use crate::error::GatewayError;
use core::fmt;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default, borrow)]
    messages: Vec<InMessage<'a>>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_completion_tokens: Option<u32>,
    max_tokens: Option<u32>,
    seed: Option<i64>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stop: Option<Strings<'a>>,
    #[serde(borrow)]
    tools: Option<Vec<ToolDef<'a>>>,
    #[serde(borrow)]
    tool_choice: Option<Choice<'a>>,
    #[serde(borrow)]
    response_format: Option<Format<'a>>,
    parallel_tool_calls: Option<bool>,
    #[serde(borrow)]
    reasoning_effort: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: Option<Content<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<InToolCall<'a>>>,
    #[serde(borrow)]
    tool_call_id: Option<Cow<'a, str>>,
}

/// `content`: a string, or an array of typed parts.
enum Content<'a> {
    Text(Cow<'a, str>),
    List(Vec<InPart<'a>>),
}

/// One content part; `type` says which of the other fields it carries.
#[derive(Deserialize)]
struct InPart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    image_url: Option<ImageUrl<'a>>,
    /// Anthropic's prompt-caching mark on a content part, as OpenAI-compatible gateways accept it.
    cache_control: Option<de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ImageUrl<'a> {
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InToolCall<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<CallFunction<'a>>,
}

#[derive(Deserialize)]
struct CallFunction<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ToolDef<'a> {
    #[serde(borrow)]
    function: Option<FunctionDef<'a>>,
}

#[derive(Deserialize)]
struct FunctionDef<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    parameters: Option<Value>,
}

/// `tool_choice`: "auto" | "none" | "required", or `{"type":"function","function":{"name":…}}`.
enum Choice<'a> {
    Mode(Cow<'a, str>),
    Function(Option<Cow<'a, str>>),
}

#[derive(Deserialize)]
struct ChoiceObject<'a> {
    #[serde(borrow)]
    function: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Format<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    json_schema: Option<JsonSchema<'a>>,
}

#[derive(Deserialize)]
struct JsonSchema<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    schema: Option<Value>,
    strict: Option<bool>,
}

/// `stop`: one string or an array of them.
enum Strings<'a> {
    Text(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
}

string_or_list!(Content, InPart<'a>, "a string or an array of parts");
string_or_list!(Strings, Cow<'a, str>, "a string or an array of strings");

impl<'de: 'a, 'a> Deserialize<'de> for Choice<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(core::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Choice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""auto", "none", "required" or a function to call"#)
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Choice::Mode(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Choice::Mode(Cow::Owned(s.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let o = ChoiceObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Choice::Function(o.function.and_then(|f| f.name)))
            }
        }
        d.deserialize_any(V(core::marker::PhantomData))
    }
}

/// `{path}: {what serde found}`, for a body whose types are wrong.
fn type_error(e: crate::json::ParseError) -> GatewayError {
    match e {
        crate::json::ParseError::At { path, error } => {
            let message = crate::error::json_message_without_position(&error);
            GatewayError::invalid(format!("{path}: {message}"))
        }
        crate::json::ParseError::Trailing(e) => {
            GatewayError::invalid(format!("request body is not valid JSON: {e}"))
        }
    }
}

fn invalid(message: String) -> GatewayError {
    GatewayError::invalid(message)
}

impl ChatRequest {
    pub fn to_canonical(&self) -> Result<canonical::ChatRequest, GatewayError> {
        let b: Body = crate::json::parse_named(self.body.bytes()).map_err(type_error)?;
        let mut out = canonical::ChatRequest {
            model: self.model.clone(),
            stream: self.stream,
            include_usage: self.include_usage(),
            temperature: b.temperature,
            top_p: b.top_p,
            parallel_tool_calls: b.parallel_tool_calls,
            thinking: match b.reasoning_effort.as_deref() {
                None => None,
                Some(name) => Some(Thinking::from_openai_effort(name).ok_or_else(|| {
                    invalid(format!(
                        "reasoning_effort: unknown value {name:?} (expected none, minimal, low, medium or high)"
                    ))
                })?),
            },
            max_tokens: b.max_completion_tokens.or(b.max_tokens),
            seed: b.seed,
            user: b.user.map(Cow::into_owned),
            stop: b
                .stop
                .map(|s| match s {
                    Strings::Text(s) => vec![s.into_owned()],
                    Strings::List(all) => all.into_iter().map(Cow::into_owned).collect(),
                })
                .unwrap_or_default(),
            ..Default::default()
        };
        for (i, m) in b.messages.into_iter().enumerate() {
            read_message(m, i, &mut out)?;
        }
        for (i, t) in b.tools.unwrap_or_default().into_iter().enumerate() {
            let f = t
                .function
                .ok_or_else(|| invalid(format!("tools[{i}].function is required")))?;
            let name = f
                .name
                .ok_or_else(|| invalid(format!("tools[{i}].function.name is required")))?;
            out.tools.push(Tool {
                name: name.into_owned(),
                description: f.description.map(Cow::into_owned),
                parameters: f
                    .parameters
                    .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            });
        }
        out.tool_choice = match b.tool_choice {
            None => None,
            Some(Choice::Mode(m)) => Some(match &*m {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => return Err(invalid(format!("tool_choice: unknown value {other:?}"))),
            }),
            Some(Choice::Function(name)) => Some(ToolChoice::Tool(
                name.ok_or_else(|| invalid("tool_choice.function.name is required".into()))?
                    .into_owned(),
            )),
        };
        out.response_format = match b.response_format {
            None => None,
            Some(f) => match f.kind.as_deref() {
                Some("text") => None,
                Some("json_object") => Some(ResponseFormat::JsonObject),
                Some("json_schema") => {
                    let js = f
                        .json_schema
                        .ok_or_else(|| invalid("response_format.json_schema is required".into()))?;
                    Some(ResponseFormat::JsonSchema {
                        name: js.name.map_or_else(|| "response".into(), Cow::into_owned),
                        schema: js.schema.unwrap_or_else(|| serde_json::json!({})),
                        strict: js.strict,
                    })
                }
                _ => {
                    return Err(invalid(
                        "response_format.type must be text, json_object or json_schema".into(),
                    ))
                }
            },
        };
        Ok(out)
    }
}

/// Text of a `content` that may be a string or an array of `{type:"text"}` parts.
fn text_of(content: Option<Content>, path: &str) -> Result<String, GatewayError> {
    text_and_mark(content, path).map(|(text, _)| text)
}

/// The text, and whether a part carries a prompt-caching mark.
fn text_and_mark(content: Option<Content>, path: &str) -> Result<(String, bool), GatewayError> {
    match content {
        None => Ok((String::new(), false)),
        Some(Content::Text(s)) => Ok((s.into_owned(), false)),
        Some(Content::List(parts)) => {
            let mut s = String::new();
            let mut marked = false;
            for (j, p) in parts.into_iter().enumerate() {
                marked |= p.cache_control.is_some();
                match p.kind.as_deref() {
                    Some("text") => s.push_str(p.text.as_deref().unwrap_or_default()),
                    other => {
                        return Err(invalid(format!(
                            "{path}[{j}].type: {other:?} is not allowed here (text only)"
                        )))
                    }
                }
            }
            Ok((s, marked))
        }
    }
}

fn read_message(
    m: InMessage,
    i: usize,
    out: &mut canonical::ChatRequest,
) -> Result<(), GatewayError> {
    let path = format!("messages[{i}].content");
    match &*m.role {
        "system" | "developer" => {
            let (text, marked) = text_and_mark(m.content, &path)?;
            out.system.push(text);
            if marked {
                out.cache_points
                    .push(CachePoint::System(out.system.len() - 1));
            }
        }
        "user" => match m.content {
            Some(Content::List(parts)) => {
                for (j, p) in parts.into_iter().enumerate() {
                    let part = match p.kind.as_deref() {
                        Some("text") => Part::Text(p.text.unwrap_or_default().into_owned()),
                        Some("image_url") => {
                            let url = p.image_url.and_then(|u| u.url).ok_or_else(|| {
                                invalid(format!("{path}[{j}].image_url.url is required"))
                            })?;
                            Part::Image(Image::from_url(&url))
                        }
                        other => {
                            return Err(invalid(format!(
                                "{path}[{j}].type: unsupported content part {other:?}"
                            )))
                        }
                    };
                    out.push_part(Role::User, part);
                    if p.cache_control.is_some() {
                        let message = out.messages.len() - 1;
                        let part = out.messages[message].content.len() - 1;
                        out.cache_points.push(CachePoint::Message { message, part });
                    }
                }
            }
            c => out.push_part(Role::User, Part::Text(text_of(c, &path)?)),
        },
        "assistant" => {
            let text = text_of(m.content, &path)?;
            if !text.is_empty() {
                out.push_part(Role::Assistant, Part::Text(text));
            }
            for (j, c) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let (name, arguments) = match c.function {
                    Some(f) => (f.name, f.arguments),
                    None => (None, None),
                };
                let (Some(id), Some(name)) = (c.id, name) else {
                    return Err(invalid(format!(
                        "messages[{i}].tool_calls[{j}] needs an id and function.name"
                    )));
                };
                out.push_part(
                    Role::Assistant,
                    Part::ToolCall {
                        id: id.into_owned(),
                        name: name.into_owned(),
                        arguments: arguments.map_or_else(|| "{}".into(), Cow::into_owned),
                    },
                );
            }
        }
        "tool" => {
            let call_id = m
                .tool_call_id
                .ok_or_else(|| invalid(format!("messages[{i}].tool_call_id is required")))?;
            let content = text_of(m.content, &path)?;
            out.push_part(
                Role::User,
                Part::ToolResult {
                    call_id: call_id.into_owned(),
                    content,
                    is_error: false,
                },
            );
        }
        other => {
            return Err(invalid(format!(
                "messages[{i}].role: {other:?} is not supported here; use \"tool\""
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::canonical::{Part, ResponseFormat, ToolChoice};
    use crate::inbound::openai::parse_chat;

    fn canonical(body: &str) -> Result<crate::canonical::ChatRequest, String> {
        parse_chat(body.as_bytes())
            .unwrap()
            .to_canonical()
            .map_err(|e| e.message)
    }

    #[test]
    fn wrong_types_are_refused_with_their_path() {
        let m = r#""model":"m","messages":[{"role":"user","content":"x"}]"#;
        let err = canonical(&format!(r#"{{{m},"temperature":"hot"}}"#)).unwrap_err();
        assert!(
            err.starts_with("temperature: invalid type: string"),
            "{err}"
        );
        let err = canonical(&format!(r#"{{{m},"max_tokens":-1}}"#)).unwrap_err();
        assert!(err.starts_with("max_tokens: invalid value"), "{err}");
        let err =
            canonical(r#"{"model":"m","messages":[{"role":"user","content":5}]}"#).unwrap_err();
        assert_eq!(
            err,
            "messages[0].content: invalid type: integer `5`, expected a string or an array of parts"
        );
        let err = canonical(&format!(r#"{{{m},"stop":[1]}}"#)).unwrap_err();
        assert!(err.starts_with("stop[0]: invalid type"), "{err}");
        let err = canonical(&format!(r#"{{{m},"tool_choice":"sometimes"}}"#)).unwrap_err();
        assert_eq!(err, r#"tool_choice: unknown value "sometimes""#);
    }

    #[test]
    fn fields_translate_with_nulls_as_absent() {
        let c = canonical(
            r#"{"model":"m","messages":[
                {"role":"system","content":[{"type":"text","text":"be \"brief\""}]},
                {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"42"}],
              "temperature":null,"top_p":0.5,"max_tokens":7,"max_completion_tokens":9,"seed":-3,"stop":"END",
              "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"number","maximum":1.50}}}}}],
              "tool_choice":{"type":"function","function":{"name":"f"}},
              "response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object"},"strict":true}}}"#,
        )
        .unwrap();
        assert_eq!(c.system, vec![r#"be "brief""#]);
        assert_eq!(
            (c.temperature, c.top_p, c.max_tokens, c.seed),
            (None, Some(0.5), Some(9), Some(-3))
        );
        assert_eq!(c.stop, vec!["END"]);
        assert_eq!(c.messages.len(), 3);
        assert!(
            matches!(&c.messages[1].content[0], Part::ToolCall { arguments, .. } if arguments == r#"{"a":1}"#)
        );
        // A schema's numbers keep their text.
        assert_eq!(
            serde_json::to_string(&c.tools[0].parameters).unwrap(),
            r#"{"type":"object","properties":{"a":{"type":"number","maximum":1.50}}}"#
        );
        assert_eq!(c.tool_choice, Some(ToolChoice::Tool("f".into())));
        assert!(matches!(
            c.response_format,
            Some(ResponseFormat::JsonSchema {
                strict: Some(true),
                ..
            })
        ));
    }
}
