//! `llm serve`: the OpenAI HTTP API over the project's models, on axum and tokio.
//!
//! - [`routes`]: the endpoints (`/v1/chat/completions`, `/v1/completions`, `/v1/models`,
//!   `/health`, the chat page at `/`), request checks and server-sent events;
//! - [`openai`]: request and error bodies;
//! - [`engine`]: the thread that owns the model and runs continuous batching;
//! - [`stop`]: stop strings on streamed text.
//!
//! The HTTP side never touches the model: it turns a request into prompt ids and a [`Job`], and
//! turns the engine's events into a JSON answer or a stream. A client that goes away drops its
//! end of the job's channel, and the engine drops the sequence at its next step.

pub mod engine;
pub mod openai;
pub mod routes;
pub mod stop;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tensor::Device;

pub use engine::{DEFAULT_BLOCK_SIZE, EngineConfig, EngineStats, Event, Finish, Job};

use crate::chat_template::ChatTemplate;
use crate::models::CausalLm;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Everything a server needs besides the model.
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    /// Most sequences decoded together.
    pub max_batch: usize,
    /// Most positions (prompt plus answer) of one sequence.
    pub ctx: usize,
    /// Most prompt tokens one sequence prefills per step.
    pub prefill_chunk: usize,
    /// Blocks in the paged KV pool, and positions per block (see [`engine`]).
    pub kv_blocks: usize,
    pub block_size: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The name `/v1/models` lists.
    pub model_name: String,
    /// BOS id put before a text prompt of `/v1/completions`, as `llm generate` does.
    pub bos_token_id: Option<u32>,
}

/// Serves `model` until the future made by `shutdown` completes, then finishes the requests in
/// flight and returns. `shutdown` is called inside the server's runtime before `on_ready`, so a
/// signal handler it installs is in place by the time the server says it is listening.
/// `on_ready` gets the address bound (port 0 picks a free one) once requests are accepted.
pub fn serve<F: Future<Output = ()> + Send + 'static>(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    template: ChatTemplate,
    device: &Device,
    options: &ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
    shutdown: impl FnOnce() -> F,
) -> Result<()> {
    let fits = engine::max_positions(model, options.kv_blocks, options.block_size, options.prefill_chunk);
    if fits < options.ctx {
        return Err(Error::input(format!(
            "a KV pool of {} blocks of {} positions holds {fits} positions of one sequence, less than the context of {}",
            options.kv_blocks, options.block_size, options.ctx
        )));
    }
    let (jobs, receiver) = std::sync::mpsc::channel::<Job>();
    let stats = Arc::new(EngineStats::default());
    // Known before the engine thread starts, so `/health` shows the pool from the first request.
    stats.kv_blocks_total.store(options.kv_blocks, std::sync::atomic::Ordering::Relaxed);
    stats.kv_block_size.store(options.block_size, std::sync::atomic::Ordering::Relaxed);
    let engine_config = EngineConfig {
        max_batch: options.max_batch,
        prefill_chunk: options.prefill_chunk,
        eos: template.end_of_turn.clone(),
        kv_blocks: options.kv_blocks,
        block_size: options.block_size,
    };
    let state = Arc::new(routes::AppState {
        model_name: options.model_name.clone(),
        tokenizer: tokenizer.clone(),
        template,
        jobs: std::sync::Mutex::new(jobs),
        ctx: options.ctx,
        vocab: model.vocab_size(),
        bos_token_id: options.bos_token_id,
        stats: stats.clone(),
        next_id: Default::default(),
        max_body_bytes: options.max_body_bytes,
    });
    let app = routes::router(state);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::input(format!("could not start the server's runtime: {e}")))?;
    let addr = format!("{}:{}", options.host, options.port);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&addr))
        .map_err(|e| Error::input(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(|e| Error::input(format!("cannot listen on {addr}: {e}")))?;
    let shutdown = {
        let _inside = runtime.enter();
        shutdown()
    };
    std::thread::scope(|scope| {
        let engine_stats = stats.clone();
        // The engine runs on a worker of the CPU kernels' pool, so its products split their work
        // in place instead of queueing it from outside and sleeping until it is done
        // (`device::on_cpu_pool`); this thread only waits for it.
        scope.spawn(move || {
            crate::device::on_cpu_pool(|| engine::run(model, tokenizer, device, &engine_config, receiver, engine_stats))
        });
        on_ready(bound);
        let served = runtime.block_on(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await });
        // Tasks still holding the job sender go with the runtime; the engine then ends.
        drop(runtime);
        served.map_err(|e| Error::input(format!("the server stopped: {e}")))
    })
}
