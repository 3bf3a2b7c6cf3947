//! `llm`: run, generate with, train and inspect the eight architectures from the command line.
//! Every error ends as one line on stderr and a non-zero exit; never a panic trace.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llm::cli;
use llm::sample::Sampling;

#[derive(Parser)]
#[command(name = "llm", version, about = "Today's open LLM architectures, from checkpoints to tokens")]
struct Cli {
    /// Check every weight as it loads and every layer's output as it leaves the layer for NaN
    /// or infinity, and stop at the first one, naming it (slower: activations are read back).
    #[arg(long, global = true)]
    check_finite: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: the eight architectures side by side at real scale, each run small against
    /// the reference implementation's outputs, and text from the project's own model.
    Tour {
        /// cpu or gpu; without it the best device found, named.
        #[arg(long)]
        device: Option<String>,
    },
    /// Writes the f32 logits [B, T, V] of the `input_ids` [B, T] in a safetensors file.
    Logits {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        device: Option<String>,
    },
    /// Continues a prompt, streaming the text (or ids) as they come. Without --model, the
    /// project's own tiny model trained on Jane Austen.
    Generate {
        /// A Hugging Face model folder (config.json, *.safetensors, tokenizer.json).
        #[arg(long, default_value_os_t = llm::tiny::shipped_model_dir())]
        model: PathBuf,
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
        #[arg(long)]
        device: Option<String>,
        /// End with one JSON line `{"ids": [...]}` on stdout.
        #[arg(long)]
        json: bool,
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
        /// adamw or muon.
        #[arg(long, default_value = "adamw")]
        optimizer: String,
        #[arg(long)]
        device: Option<String>,
        /// Write the trained checkpoint here.
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Trains the tiny model from scratch on the shipped corpus (the defaults rebuild the shipped
    /// model) and writes its checkpoint, loss curve and summary.
    Pretrain {
        /// qwen3, mistral, olmo2 or gemma3.
        #[arg(long, default_value = "qwen3")]
        family: String,
        #[arg(long, default_value_t = 800)]
        steps: usize,
        /// A 2-layer, 64-wide model instead of the shipped size (quick experiments).
        #[arg(long)]
        small: bool,
        #[arg(long, default_value = "runs/tiny")]
        out: PathBuf,
        #[arg(long)]
        device: Option<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Writes a Hugging Face checkpoint as a GGUF file (llama.cpp's format).
    Quantize {
        /// A Hugging Face model folder (qwen3, mistral or qwen3_moe).
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// f32, f16, q8_0 or q4_0.
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
        #[arg(long, default_value = "bf16")]
        dtype: String,
        /// End with one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn run(cli: Cli) -> llm::Result<()> {
    if cli.check_finite {
        llm::finite::set_check_finite(true);
    }
    match cli.command {
        Command::Logits { model, input, out, device } => cli::logits::run(&model, &input, &out, device.as_deref()),
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
        } => cli::generate::run(cli::generate::GenerateArgs {
            model: &model,
            prompt: prompt.as_deref(),
            prompt_ids: prompt_ids.as_deref(),
            max_new_tokens,
            sampling: Sampling { temperature, top_k: Some(top_k).filter(|&k| k > 0), top_p, seed },
            device: device.as_deref(),
            json,
        }),
        Command::Train { model, data, steps, lr, beta1, beta2, eps, weight_decay, optimizer, device, save } => {
            cli::train::run(cli::train::TrainArgs {
                model: &model,
                data: &data,
                steps,
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                optimizer: &optimizer,
                device: device.as_deref(),
                save: save.as_deref(),
            })
        }
        Command::Pretrain { family, steps, small, out, device, seed } => {
            cli::pretrain::run(cli::pretrain::PretrainArgs {
                family: &family,
                steps,
                small,
                out: &out,
                device: device.as_deref(),
                seed,
            })
        }
        Command::Tour { device } => cli::tour::run(device.as_deref()),
        Command::Quantize { model, out, kind } => cli::quantize::run(&model, &out, &kind),
        Command::Inspect { model, context, dtype, json } => cli::inspect::run(&model, context, &dtype, json),
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
            eprintln!("llm: {first} (see llm --help)");
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
