//! `llm serve --model DIR [--host 127.0.0.1] [--port 8080] [--device cpu|gpu] [--max-batch 16]
//! [--ctx N] [--prefill-chunk 64] [--kv-blocks N | --kv-memory MIB]`: the OpenAI-compatible
//! server (see `crate::serve`). Prints `llm serve: listening on http://HOST:PORT` on stdout once
//! requests are accepted; SIGINT or SIGTERM stop it after the requests in flight are answered.
//!
//! The KV cache is one pool of blocks allocated at start. Its size is what a user of a server
//! thinks in: memory (`--kv-memory`, default [`DEFAULT_KV_MIB`] MiB, but never more than
//! `--max-batch` sequences of `--ctx` positions need), or an exact block count (`--kv-blocks`,
//! blocks of 16 positions of one layer). The context is bounded by what one sequence can get
//! from the pool: a default context is lowered to fit, an explicit `--ctx` that cannot fit is
//! an error.

use std::io::Write;
use std::path::Path;

use tensor::DType;

use crate::chat_template::ChatTemplate;
use crate::models::LoadOptions;
use crate::serve::{ServeOptions, serve};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

pub struct ServeArgs<'a> {
    pub model: &'a Path,
    pub host: &'a str,
    pub port: u16,
    pub device: Option<&'a str>,
    /// `--dtype` (`None`: the weights as the checkpoint stores them).
    pub weight_dtype: Option<DType>,
    /// `--kv-dtype`: what the paged pool stores.
    pub kv_dtype: super::global::KvDtype,
    /// `--quantize`.
    pub quantize: Option<super::global::QuantizeChoice>,
    pub max_batch: usize,
    pub ctx: Option<usize>,
    pub prefill_chunk: usize,
    pub kv_blocks: Option<usize>,
    pub kv_memory_mib: Option<usize>,
}

/// The KV pool's memory unless told otherwise, in MiB.
pub const DEFAULT_KV_MIB: usize = 2048;

/// What `serve` and `chat` both load: the model, its tokenizer and its chat template.
pub struct Loaded {
    pub model: crate::models::Loaded,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub device: tensor::Device,
}

pub fn load_for_chat(
    model: &Path,
    device: Option<&str>,
    weight_dtype: Option<DType>,
    kv_dtype: super::global::KvDtype,
    quantize: Option<super::global::QuantizeChoice>,
) -> Result<Loaded> {
    let gguf = crate::gguf::is_gguf(model);
    if !gguf && !model.join("config.json").is_file() {
        return Err(Error::input(format!(
            "{}: no config.json there (give --model a Hugging Face model folder or a .gguf file)",
            model.display()
        )));
    }
    // A GGUF file carries its tokenizer and chat template in its metadata.
    let file = if gguf { Some(crate::gguf::GgufFile::open(model)?) } else { None };
    let tokenizer = match &file {
        Some(file) => crate::gguf::tokenizer::from_gguf(file)?.ok_or_else(|| {
            Error::input(format!("{}: no tokenizer in this GGUF file: serving text needs one", model.display()))
        })?,
        None => {
            let tokenizer_path = model.join("tokenizer.json");
            if !tokenizer_path.is_file() {
                return Err(Error::input(format!(
                    "{} does not exist: serving text needs the model's tokenizer",
                    tokenizer_path.display()
                )));
            }
            Tokenizer::from_file(&tokenizer_path)?
        }
    };
    let (device, line) = crate::device::pick(device)?;
    eprintln!("{line}");
    let mut loaded = super::global::load_model(model, &LoadOptions { device: device.clone(), weight_dtype }, quantize)?;
    loaded.model.kv_dtype = kv_dtype.cache_dtype();
    let template = match &file {
        Some(file) => ChatTemplate::from_gguf(file, &loaded.config, &tokenizer)?,
        None => ChatTemplate::load(model, &loaded.config, &tokenizer)?,
    };
    eprintln!("{}", template.describe());
    Ok(Loaded { model: loaded, tokenizer, template, device })
}

pub fn run(args: ServeArgs) -> Result<()> {
    if args.max_batch == 0 {
        return Err(Error::input("--max-batch must be at least 1"));
    }
    if args.prefill_chunk == 0 {
        return Err(Error::input("--prefill-chunk must be at least 1"));
    }
    let Loaded { model, tokenizer, template, device } =
        load_for_chat(args.model, args.device, args.weight_dtype, args.kv_dtype, args.quantize)?;
    let limit = model.config.max_position_embeddings;
    let ctx = match args.ctx {
        Some(n) if n < 2 || n > limit => {
            return Err(Error::input(format!("--ctx must be between 2 and the model's context of {limit}, got {n}")));
        }
        Some(n) => n,
        None => limit,
    };
    let block_size = crate::serve::DEFAULT_BLOCK_SIZE;
    let blocks_for =
        |positions| crate::serve::engine::blocks_for(&model.model, positions, block_size, args.prefill_chunk);
    let block_bytes =
        model.model.layers.iter().map(|l| l.self_attn.kv_bytes_per_token(args.kv_dtype.bytes())).max().unwrap_or(1)
            * block_size;
    let kv_blocks = match (args.kv_blocks, args.kv_memory_mib) {
        (Some(_), Some(_)) => return Err(Error::input("give --kv-blocks or --kv-memory, not both")),
        (Some(0), None) => return Err(Error::input("--kv-blocks must be at least 1")),
        (Some(n), None) => n,
        (None, Some(mib)) => match (mib << 20) / block_bytes.max(1) {
            0 => {
                return Err(Error::input(format!("--kv-memory {mib} MiB holds no KV block of {block_bytes} bytes")));
            }
            n => n,
        },
        (None, None) => ((DEFAULT_KV_MIB << 20) / block_bytes.max(1)).min(args.max_batch * blocks_for(ctx)).max(1),
    };
    let fits = crate::serve::engine::max_positions(&model.model, kv_blocks, block_size, args.prefill_chunk);
    let ctx = if fits >= ctx {
        ctx
    } else if args.ctx.is_some() || fits < 2 {
        return Err(Error::input(format!(
            "the KV pool ({kv_blocks} blocks of {block_size} positions, {} MiB) holds {fits} positions of one \
             sequence, fewer than the context of {ctx}: raise --kv-blocks or --kv-memory, or lower --ctx",
            (kv_blocks * block_bytes) >> 20
        )));
    } else {
        eprintln!("context lowered from {ctx} to {fits}: what one sequence can hold in the KV pool");
        fits
    };
    let name = args
        .model
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".to_string());
    let options = ServeOptions {
        host: args.host.to_string(),
        port: args.port,
        max_batch: args.max_batch,
        ctx,
        prefill_chunk: args.prefill_chunk,
        kv_blocks,
        block_size,
        max_body_bytes: 4 << 20,
        model_name: name,
        bos_token_id: model.config.bos_token_id,
    };
    serve(
        &model.model,
        &tokenizer,
        template,
        &device,
        &options,
        |addr| {
            eprintln!("max batch {}, context {ctx}, prefill chunk {}", args.max_batch, args.prefill_chunk);
            eprintln!(
                "KV pool: {kv_blocks} blocks of {block_size} positions ({} MiB)",
                (kv_blocks * block_bytes).div_ceil(1 << 20)
            );
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "llm serve: listening on http://{addr}");
            let _ = out.flush();
        },
        shutdown_signal,
    )?;
    eprintln!("llm serve: stopped");
    Ok(())
}

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers now, and returns a future that completes on
/// either. Installing them before the server announces itself means a signal sent the moment it
/// is listening stops it cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::interrupt()).ok(), signal(SignalKind::terminate()).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let (mut interrupt, mut terminate) = signals;
            let interrupt = async {
                match interrupt.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending::<()>().await,
                }
            };
            let terminate = async {
                match terminate.as_mut() {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = interrupt => {}
                _ = terminate => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        eprintln!("llm serve: shutting down after the requests in flight");
    }
}
