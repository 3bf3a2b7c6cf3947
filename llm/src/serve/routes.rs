//! The HTTP endpoints. Every answer that is not a success is an OpenAI-style JSON error with a
//! 4xx status for what the client got wrong (5xx only when the engine itself failed).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::engine::{EngineStats, Event, Finish, Job};
use super::openai::{self, ApiError, Prompt};
use crate::chat_template::ChatTemplate;
use crate::sample::Sampling;
use crate::tokenizer::Tokenizer;

/// What the handlers share.
pub struct AppState {
    pub model_name: String,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub jobs: Mutex<std::sync::mpsc::Sender<Job>>,
    pub ctx: usize,
    pub vocab: usize,
    pub bos_token_id: Option<u32>,
    pub stats: Arc<EngineStats>,
    pub next_id: AtomicU64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

type Shared = Arc<AppState>;

/// The chat page: one HTML file with its script, streaming from `/v1/chat/completions`.
const CHAT_PAGE: &str = include_str!("page.html");

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Html(CHAT_PAGE) }))
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .fallback(|| async { ApiError::status(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::status(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not take that method")
        })
        .with_state(state)
}

async fn health(State(app): State<Shared>) -> Response {
    let s = &app.stats;
    let (total, used) = (s.kv_blocks_total.load(Ordering::Relaxed), s.kv_blocks_used.load(Ordering::Relaxed));
    axum::Json(json!({
        "status": "ok",
        "model": app.model_name,
        "running": s.running.load(Ordering::Relaxed),
        "waiting": s.waiting.load(Ordering::Relaxed),
        "cache_bytes": s.cache_bytes.load(Ordering::Relaxed),
        "kv_blocks": {
            "total": total,
            "used": used,
            "free": total.saturating_sub(used),
            "block_size": s.kv_block_size.load(Ordering::Relaxed),
        },
        "preempted": s.preempted.load(Ordering::Relaxed),
        "finished": s.finished.load(Ordering::Relaxed),
        "cancelled": s.cancelled.load(Ordering::Relaxed),
        "steps": s.steps.load(Ordering::Relaxed),
    }))
    .into_response()
}

async fn models(State(app): State<Shared>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{ "id": app.model_name, "object": "model", "created": 0, "owned_by": "llmforge" }],
    }))
    .into_response()
}

/// The body, or a 413 when it is larger than allowed: refused from its announced length before
/// any of it is read, or as soon as it grows past the limit while being read.
async fn body_bytes(app: &AppState, request: Request) -> Result<Bytes, ApiError> {
    let limit = app.max_body_bytes;
    let too_large =
        || ApiError::status(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is larger than {limit} bytes"));
    let announced = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(request.into_body(), limit).await.map_err(|e| {
        let source = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
        if source.contains("length limit") || e.to_string().contains("length limit") {
            too_large()
        } else {
            ApiError::bad(format!("the request body could not be read: {e}"))
        }
    })
}

/// Reads a request's body and answers it as `kind` with the settings and prompt ids `prepare`
/// makes of it, or with the API error of a body that cannot be read or does not make them.
/// The completion and chat endpoints differ only in how they read the prompt.
async fn respond(
    app: Shared,
    request: Request,
    kind: Kind,
    prepare: impl FnOnce(&AppState, &[u8]) -> Result<(openai::Settings, Vec<u32>), ApiError>,
) -> Response {
    let body = match body_bytes(&app, request).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match prepare(&app, &body) {
        Ok((settings, prompt)) => answer(app, kind, settings, prompt).await,
        Err(e) => e.into_response(),
    }
}

async fn completions(State(app): State<Shared>, request: Request) -> Response {
    respond(app, request, Kind::Completion, |app, body| {
        let request: openai::CompletionRequest = openai::parse(body)?;
        let settings = openai::settings(&request.common)?;
        let prompt = match request.prompt {
            None => return Err(ApiError::param("prompt", "`prompt` is required")),
            Some(Prompt::Text(t)) => text_prompt(app, &t)?,
            Some(Prompt::Ids(ids)) => id_prompt(app, &ids)?,
            Some(Prompt::Texts(list)) if list.len() == 1 => text_prompt(app, &list[0])?,
            Some(Prompt::IdLists(list)) if list.len() == 1 => id_prompt(app, &list[0])?,
            Some(_) => return Err(ApiError::param("prompt", "give one prompt per request")),
        };
        Ok((settings, prompt))
    })
    .await
}

async fn chat(State(app): State<Shared>, request: Request) -> Response {
    respond(app, request, Kind::Chat, |app, body| {
        let request: openai::ChatRequest = openai::parse(body)?;
        let settings = openai::settings(&request.common)?;
        let messages = openai::messages(&request)?;
        let prompt = app
            .template
            .prompt_ids(&messages, &app.tokenizer)
            .map_err(|e| ApiError::param("messages", e.to_string()))?;
        Ok((settings, prompt))
    })
    .await
}

fn text_prompt(app: &AppState, text: &str) -> Result<Vec<u32>, ApiError> {
    let mut ids: Vec<u32> = app.bos_token_id.into_iter().collect();
    ids.extend(app.tokenizer.encode(text).map_err(|e| ApiError::param("prompt", e.to_string()))?);
    Ok(ids)
}

fn id_prompt(app: &AppState, ids: &[i64]) -> Result<Vec<u32>, ApiError> {
    ids.iter()
        .map(|&id| {
            if id < 0 || id as u64 >= app.vocab as u64 {
                Err(ApiError::param("prompt", format!("token id {id} is outside the vocabulary (0..{})", app.vocab)))
            } else {
                Ok(id as u32)
            }
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Kind {
    Completion,
    Chat,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks the prompt against the context, hands the job to the engine and answers.
async fn answer(app: Shared, kind: Kind, settings: openai::Settings, prompt: Vec<u32>) -> Response {
    if prompt.is_empty() {
        return ApiError::param("prompt", "the prompt is empty").into_response();
    }
    if prompt.len() >= app.ctx {
        return ApiError {
            code: Some("context_length_exceeded"),
            ..ApiError::param(
                "messages",
                format!("the prompt has {} tokens; the context holds {}", prompt.len(), app.ctx),
            )
        }
        .into_response();
    }
    let room = app.ctx - prompt.len();
    let max_tokens = match settings.max_tokens {
        Some(n) if n > room => {
            return ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::param(
                    "max_tokens",
                    format!(
                        "the prompt ({} tokens) plus max_tokens ({n}) exceeds the context of {} tokens",
                        prompt.len(),
                        app.ctx
                    ),
                )
            }
            .into_response();
        }
        Some(n) => n,
        None => room,
    };
    let serial = app.next_id.fetch_add(1, Ordering::Relaxed);
    let seed = settings.seed.unwrap_or_else(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64);
        nanos ^ serial.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    });
    let sampling = Sampling { temperature: settings.temperature, top_k: None, top_p: settings.top_p, seed };
    let (events, mut receiver) = mpsc::unbounded_channel();
    let job = Job { prompt, max_tokens, sampling, stop: settings.stop.clone(), events };
    let sent = app.jobs.lock().map(|jobs| jobs.send(job).is_ok()).unwrap_or(false);
    if !sent {
        return ApiError::status(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down").into_response();
    }
    let id = match kind {
        Kind::Completion => format!("cmpl-{serial}"),
        Kind::Chat => format!("chatcmpl-{serial}"),
    };
    let meta = Meta { id, kind, model: app.model_name.clone(), created: now() };
    if settings.stream {
        return stream(meta, receiver, settings.include_usage);
    }
    let mut text = String::new();
    while let Some(event) = receiver.recv().await {
        match event {
            Event::Token(_) => {}
            Event::Text(t) => text.push_str(&t),
            Event::Failed(msg) => return ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, msg).into_response(),
            Event::Done { finish, prompt_tokens, completion_tokens } => {
                let choice = match kind {
                    Kind::Completion => {
                        json!({ "index": 0, "text": text, "logprobs": null, "finish_reason": finish.as_str() })
                    }
                    Kind::Chat => json!({
                        "index": 0,
                        "message": { "role": "assistant", "content": text },
                        "logprobs": null,
                        "finish_reason": finish.as_str(),
                    }),
                };
                let mut body = meta.envelope(false);
                body["choices"] = json!([choice]);
                body["usage"] = usage(prompt_tokens, completion_tokens);
                return axum::Json(body).into_response();
            }
        }
    }
    ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "the engine stopped before answering").into_response()
}

fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

struct Meta {
    id: String,
    kind: Kind,
    model: String,
    created: u64,
}

impl Meta {
    fn envelope(&self, chunk: bool) -> Value {
        let object = match (self.kind, chunk) {
            (Kind::Completion, _) => "text_completion",
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
        };
        json!({ "id": self.id, "object": object, "created": self.created, "model": self.model })
    }

    /// A streamed chunk with one choice: new text, and the finish reason on the last.
    fn chunk(&self, text: Option<&str>, first: bool, finish: Option<Finish>) -> Value {
        let finish = finish.map(Finish::as_str);
        let choice = match self.kind {
            Kind::Completion => {
                json!({ "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish })
            }
            Kind::Chat => {
                let mut delta = json!({});
                if first {
                    delta["role"] = json!("assistant");
                }
                if let Some(t) = text {
                    delta["content"] = json!(t);
                }
                json!({ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish })
            }
        };
        let mut body = self.envelope(true);
        body["choices"] = json!([choice]);
        body
    }
}

/// Server-sent events: `data: {chunk}` per piece of text, the finish reason, optionally the
/// usage, then `data: [DONE]`. A task turns engine events into SSE events; when the client goes
/// away the body is dropped, the task's next send fails, it ends, and its end of the engine's
/// channel goes with it, which cancels the sequence.
fn stream(meta: Meta, mut receiver: mpsc::UnboundedReceiver<Event>, include_usage: bool) -> Response {
    let (out, body) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    let data = |v: Value| Ok(SseEvent::default().data(v.to_string()));
    tokio::spawn(async move {
        if out.send(data(meta.chunk(Some(""), true, None))).await.is_err() {
            return;
        }
        while let Some(event) = tokio::select! {
            e = receiver.recv() => e,
            _ = out.closed() => None,
        } {
            let message = match event {
                Event::Token(_) => continue,
                Event::Text(t) => data(meta.chunk(Some(&t), false, None)),
                Event::Failed(msg) => {
                    let e = ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, msg);
                    let _ = out.send(data(e.body())).await;
                    break;
                }
                Event::Done { finish, prompt_tokens, completion_tokens } => {
                    if out.send(data(meta.chunk(None, false, Some(finish)))).await.is_err() {
                        return;
                    }
                    if include_usage {
                        let mut last = meta.envelope(true);
                        last["choices"] = json!([]);
                        last["usage"] = usage(prompt_tokens, completion_tokens);
                        if out.send(data(last)).await.is_err() {
                            return;
                        }
                    }
                    let _ = out.send(Ok(SseEvent::default().data("[DONE]"))).await;
                    break;
                }
            };
            if out.send(message).await.is_err() {
                return;
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(body)).into_response()
}
