//! `llm`: run, generate with, train and inspect the nine architectures from the command line.
//! Every error ends as one line on stderr and a non-zero exit; never a panic trace.

mod embedded;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llm::cli;
use llm::cli::choices::{DeviceChoice, OptimizerChoice, family_parser};
use llm::cli::global::{KvDtype, QuantizeChoice, WeightDtype};
use llm::sample::Sampling;

#[derive(Parser)]
#[command(name = "llm", version, about = "Today's open LLM architectures, from checkpoints to tokens")]
struct Cli {
    /// Check every weight as it loads and every layer's output as it leaves the layer for NaN
    /// or infinity, and stop at the first one, naming it (slower: activations are read back).
    #[arg(long, global = true)]
    check_finite: bool,
    /// Threads for the CPU kernels (default: every core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// The dtype of the weights: auto keeps them as the checkpoint stores them (a bf16 release
    /// stays bf16); f32, bf16 or f16 convert them. (`inspect` reads it as the KV cache's dtype
    /// when --kv-dtype is not given, as it did before that flag existed.)
    #[arg(long, global = true, value_enum, default_value_t = WeightDtype::Auto)]
    dtype: WeightDtype,
    /// The dtype the KV cache keeps keys and values in for `generate`, `chat` and `serve` (default
    /// f32), or f16 / bf16 for half the cache memory (and, on a GPU, half the bytes attention
    /// reads); for `inspect`, the dtype its KV cache sizes are given in (default bf16).
    #[arg(long, global = true, value_enum)]
    kv_dtype: Option<KvDtype>,
    /// Quantize a Hugging Face checkpoint's matrices at load (`generate`, `chat`, `serve`) and
    /// multiply on the blocks, as a GGUF file of that type would run: q8_0 or q4_0.
    #[arg(long, global = true, value_enum)]
    quantize: Option<QuantizeChoice>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: the nine architectures side by side at real scale, each run small against
    /// the reference implementation's outputs, and text from the project's own model.
    Tour {
        /// Without it, the best device found, named.
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
    },
    /// Writes the f32 logits [B, T, V] of the `input_ids` [B, T] in a safetensors file.
    Logits {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
    },
    /// Continues a prompt, streaming the text (or ids) as they come. Without --model, the
    /// project's own tiny model trained on Jane Austen.
    Generate {
        /// A Hugging Face model folder (config.json, *.safetensors, tokenizer.json); without
        /// it, the shipped model.
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, conflicts_with = "prompt_ids")]
        prompt: Option<String>,
        /// Comma-separated token ids.
        #[arg(long)]
        prompt_ids: Option<String>,
        #[arg(long, default_value_t = 100)]
        max_new_tokens: usize,
        /// Softmax temperature; 0 is greedy decoding.
        #[arg(long, default_value_t = 0.8)]
        temperature: f64,
        /// Sample among the k likeliest tokens only.
        #[arg(long, default_value_t = 40)]
        top_k: usize,
        #[arg(long)]
        top_p: Option<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
        /// End with one JSON line `{"ids": [...]}` on stdout.
        #[arg(long)]
        json: bool,
        /// After the run, print the prefill and decode speed on stderr, then one JSON object
        /// as stderr's last line.
        #[arg(long)]
        stats: bool,
        /// Wait for a line on stdin before each forward pass (the prompt's, then each new
        /// token's); each token is written out as soon as it is chosen. For a benchmark that
        /// runs this generation in step with another runtime's, token by token, so that both
        /// meet the same machine (tools/bench_peers.py).
        #[arg(long, conflicts_with = "json")]
        paced: bool,
    },
    /// Full-batch training on the `input_ids` of a safetensors file; one JSON line per step.
    Train {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        steps: usize,
        #[arg(long)]
        lr: f64,
        #[arg(long, default_value_t = 0.9)]
        beta1: f64,
        #[arg(long, default_value_t = 0.999)]
        beta2: f64,
        #[arg(long, default_value_t = 1e-8)]
        eps: f64,
        #[arg(long, default_value_t = 0.01)]
        weight_decay: f64,
        #[arg(long, value_enum, default_value_t = OptimizerChoice::Adamw)]
        optimizer: OptimizerChoice,
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
        /// Write the trained checkpoint here.
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Trains the tiny model from scratch on the shipped corpus (the defaults rebuild the shipped
    /// model) and writes its checkpoint, loss curve and summary.
    Pretrain {
        #[arg(long, value_parser = family_parser(), default_value = "qwen3")]
        family: String,
        #[arg(long, default_value_t = 800)]
        steps: usize,
        /// A 2-layer, 64-wide model instead of the shipped size (quick experiments).
        #[arg(long)]
        small: bool,
        #[arg(long, default_value = "runs/tiny")]
        out: PathBuf,
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// An OpenAI-compatible HTTP server (chat and text completions, streaming, continuous
    /// batching) with a chat page at `/`.
    Serve {
        /// A Hugging Face model folder; without it, the shipped model.
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// 0 picks a free port (the URL printed says which).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
        /// Most requests decoded together.
        #[arg(long, default_value_t = 16)]
        max_batch: usize,
        /// Most positions of one request (prompt and answer); default the model's context.
        #[arg(long)]
        ctx: Option<usize>,
        /// Most prompt tokens a request prefills per step, so long prompts do not stall others.
        #[arg(long, default_value_t = 64)]
        prefill_chunk: usize,
        /// The paged KV cache's size in blocks of 16 positions of one layer (instead of
        /// --kv-memory).
        #[arg(long)]
        kv_blocks: Option<usize>,
        /// The paged KV cache's size in MiB; default 2048, or what --max-batch sequences of
        /// --ctx positions need if less.
        #[arg(long)]
        kv_memory: Option<usize>,
    },
    /// A conversation in the terminal, through the model's chat template.
    Chat {
        /// A Hugging Face model folder; without it, the shipped model.
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
        #[arg(long, default_value_t = 0.7)]
        temperature: f64,
        #[arg(long)]
        top_p: Option<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A system message to begin the conversation with.
        #[arg(long)]
        system: Option<String>,
    },
    /// Writes a Hugging Face checkpoint as a GGUF file (llama.cpp's format).
    Quantize {
        /// A Hugging Face model folder, of any architecture `llm` runs.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1 or q4_k_m.
        #[arg(long = "type", default_value = "q8_0")]
        kind: String,
    },
    /// The real-scale anatomy of a config: parameters, KV cache, FLOPs.
    Inspect {
        /// A model directory or a config.json.
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 32_768)]
        context: usize,
        /// End with one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn run(cli: Cli) -> llm::Result<()> {
    if cli.check_finite {
        llm::finite::set_check_finite(true);
    }
    llm::heap::keep_freed_memory();
    cli::global::set_threads(cli.threads)?;
    cli::global::check_cpu_kernels_env()?;
    embedded::install()?;
    let (command, dtype, kv_dtype, quantize) = (cli.command, cli.dtype, cli.kv_dtype, cli.quantize);
    if matches!(command, Command::Serve { .. }) {
        // The server's main thread runs the HTTP side and must not hold a worker of the kernels'
        // pool; its engine thread moves onto the pool itself (`llm::serve`).
        return dispatch(command, dtype, kv_dtype, quantize);
    }
    llm::device::on_cpu_pool(|| dispatch(command, dtype, kv_dtype, quantize))
}

fn dispatch(
    command: Command,
    dtype: WeightDtype,
    kv_choice: Option<KvDtype>,
    quantize: Option<QuantizeChoice>,
) -> llm::Result<()> {
    let kv_dtype = kv_choice.unwrap_or_default();
    match command {
        Command::Logits { model, input, out, device } => {
            cli::logits::run(&model, &input, &out, device.map(DeviceChoice::as_str), dtype.load_dtype())
        }
        Command::Generate {
            model,
            prompt,
            prompt_ids,
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            seed,
            device,
            json,
            stats,
            paced,
        } => cli::generate::run(cli::generate::GenerateArgs {
            model: &model.unwrap_or_else(llm::tiny::shipped_model_dir),
            prompt: prompt.as_deref(),
            prompt_ids: prompt_ids.as_deref(),
            max_new_tokens,
            sampling: Sampling { temperature, top_k: Some(top_k).filter(|&k| k > 0), top_p, seed },
            device: device.map(DeviceChoice::as_str),
            json,
            stats,
            paced,
            weight_dtype: dtype.load_dtype(),
            kv_dtype,
            quantize,
        }),
        Command::Train { model, data, steps, lr, beta1, beta2, eps, weight_decay, optimizer, device, save } => {
            dtype.f32_only("train")?;
            cli::train::run(cli::train::TrainArgs {
                model: &model,
                data: &data,
                steps,
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                optimizer: optimizer.as_str(),
                device: device.map(DeviceChoice::as_str),
                save: save.as_deref(),
            })
        }
        Command::Pretrain { family, steps, small, out, device, seed } => {
            dtype.f32_only("pretrain")?;
            cli::pretrain::run(cli::pretrain::PretrainArgs {
                family: &family,
                steps,
                small,
                out: &out,
                device: device.map(DeviceChoice::as_str),
                seed,
            })
        }
        Command::Tour { device } => {
            dtype.f32_only("tour")?;
            cli::tour::run(device.map(DeviceChoice::as_str))
        }
        Command::Inspect { model, context, json } => {
            let cache = match (kv_choice, dtype) {
                (Some(kv), _) => kv.name(),
                (None, WeightDtype::Auto) => "bf16",
                (None, dtype) => dtype.name(),
            };
            cli::inspect::run(&model, context, cache, json)
        }
        Command::Serve { model, host, port, device, max_batch, ctx, prefill_chunk, kv_blocks, kv_memory } => {
            cli::serve::run(cli::serve::ServeArgs {
                model: &model.unwrap_or_else(llm::tiny::shipped_model_dir),
                weight_dtype: dtype.load_dtype(),
                kv_dtype,
                quantize,
                host: &host,
                port,
                device: device.map(DeviceChoice::as_str),
                max_batch,
                ctx,
                prefill_chunk,
                kv_blocks,
                kv_memory_mib: kv_memory,
            })
        }
        Command::Chat { model, device, max_tokens, temperature, top_p, seed, system } => {
            cli::chat::run(cli::chat::ChatArgs {
                model: &model.unwrap_or_else(llm::tiny::shipped_model_dir),
                weight_dtype: dtype.load_dtype(),
                kv_dtype,
                quantize,
                device: device.map(DeviceChoice::as_str),
                max_tokens,
                sampling: Sampling { temperature, top_k: None, top_p, seed },
                system: system.as_deref(),
            })
        }
        Command::Quantize { model, out, kind } => cli::quantize::run(&model, &out, &kind),
    }
}

fn main() -> ExitCode {
    // A bug should still end in one line, not a trace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned());
        eprintln!("llm: internal error: {}", msg.unwrap_or_else(|| "panic".to_string()));
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            // A wrong choice names the right ones on the same line.
            let choices = text.lines().find_map(|l| l.trim().strip_prefix("[possible values: ")?.strip_suffix(']'));
            match choices {
                Some(values) => eprintln!("llm: {first} (expected one of: {values})"),
                None => eprintln!("llm: {first} (see llm --help)"),
            }
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llm: {e}");
            ExitCode::FAILURE
        }
    }
}
