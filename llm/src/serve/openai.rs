//! The OpenAI API's request bodies and error bodies, and the checks a request must pass before
//! it reaches the engine. Fields a client may send that change nothing here (`user`,
//! `presence_penalty` at 0, `logit_bias` empty, ...) are accepted and ignored, as other servers
//! of this API do; fields that would change the answer in a way not supported are refused.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::chat_template::Message;

/// An error answered as `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), param: None, code: None }
    }
    pub fn param(param: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { param: Some(param), ..ApiError::bad(message) }
    }
    pub fn status(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, ..ApiError::bad(message) }
    }
    pub fn body(&self) -> Value {
        let kind = if self.status.is_server_error() { "server_error" } else { "invalid_request_error" };
        json!({ "error": { "message": self.message, "type": kind, "param": self.param, "code": self.code } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A prompt of `/v1/completions`: text, token ids, or a list holding one of those.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Ids(Vec<i64>),
    Texts(Vec<String>),
    IdLists(Vec<Vec<i64>>),
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Settings shared by both endpoints.
#[derive(Debug, Deserialize)]
pub struct Common {
    pub model: Option<String>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Option<Stop>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub n: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub prompt: Option<Prompt>,
    #[serde(flatten)]
    pub common: Common,
}

/// Message content: a string, or a list of parts of which the text parts are read.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Content>,
}

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub messages: Option<Vec<ChatMessage>>,
    #[serde(flatten)]
    pub common: Common,
}

/// Parses a JSON body into `T`, answering malformed JSON or a wrong shape with a 400 that says
/// what was wrong.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad("the request body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad(format!("the request body has a field of the wrong type: {e}")))
}

/// The chat messages, checked.
pub fn messages(request: &ChatRequest) -> Result<Vec<Message>, ApiError> {
    let list = request.messages.as_ref().ok_or_else(|| ApiError::param("messages", "`messages` is required"))?;
    if list.is_empty() {
        return Err(ApiError::param("messages", "`messages` must hold at least one message"));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            if !matches!(m.role.as_str(), "system" | "developer" | "user" | "assistant" | "tool") {
                return Err(ApiError::param(
                    "messages",
                    format!("messages[{i}].role is {:?}; expected system, developer, user, assistant or tool", m.role),
                ));
            }
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => text.push_str(t),
                            (kind, _) => {
                                return Err(ApiError::param(
                                    "messages",
                                    format!(
                                        "messages[{i}] has a content part of type {kind:?}; only text parts are read"
                                    ),
                                ));
                            }
                        }
                    }
                    text
                }
            };
            Ok(Message { role: m.role.clone(), content })
        })
        .collect()
}

/// The checked settings of a request.
pub struct Settings {
    /// Most new tokens, or None for "up to the context".
    pub max_tokens: Option<usize>,
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
}

pub fn settings(c: &Common) -> Result<Settings, ApiError> {
    if let Some(n) = c.n
        && n != 1
    {
        return Err(ApiError::param("n", format!("n must be 1 (one answer per request), got {n}")));
    }
    let max = match (c.max_completion_tokens, c.max_tokens) {
        (Some(v), _) => Some(("max_completion_tokens", v)),
        (None, Some(v)) => Some(("max_tokens", v)),
        (None, None) => None,
    };
    let max_tokens = match max {
        Some((name, v)) if v < 1 => {
            return Err(ApiError::param("max_tokens", format!("{name} must be at least 1, got {v}")));
        }
        Some((_, v)) => Some(v as usize),
        None => None,
    };
    let temperature = c.temperature.unwrap_or(1.0);
    if !temperature.is_finite() || !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::param("temperature", format!("temperature must be between 0 and 2, got {temperature}")));
    }
    let top_p = match c.top_p {
        Some(p) if !p.is_finite() || p <= 0.0 || p > 1.0 => {
            return Err(ApiError::param("top_p", format!("top_p must be in (0, 1], got {p}")));
        }
        Some(p) if p < 1.0 => Some(p),
        _ => None,
    };
    let seed = match c.seed {
        Some(s) if s < 0 => return Err(ApiError::param("seed", format!("seed must be >= 0, got {s}"))),
        s => s.map(|s| s as u64),
    };
    let stop = match &c.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(list)) if list.len() > 16 => {
            return Err(ApiError::param("stop", format!("at most 16 stop strings, got {}", list.len())));
        }
        Some(Stop::Many(list)) => list.clone(),
    };
    Ok(Settings {
        max_tokens,
        temperature,
        top_p,
        seed,
        stop,
        stream: c.stream,
        include_usage: c.stream_options.as_ref().is_some_and(|o| o.include_usage),
    })
}
