//! `llm generate [--model DIR] (--prompt TEXT | --prompt-ids 1,2,3) [--max-new-tokens N]
//! [--temperature T] [--top-k K] [--top-p P] [--seed S] [--device cpu|gpu] [--json] [--stats]
//! [--paced]`
//! (and the global `--dtype`, `--threads`): streams
//! the continuation as it is chosen: text when the prompt is text (through the model's
//! `tokenizer.json`), token ids otherwise; with `--json` the last line of stdout is
//! `{"ids": [...]}`, prompt and new tokens together. Without `--model` it runs the project's own
//! tiny model (`assets/tiny/`).

use std::io::Write;
use std::path::Path;

use tensor::DType;

use crate::generate::{StopAt, Timings, generate_timed};
use crate::models::LoadOptions;
use crate::sample::Sampling;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

pub struct GenerateArgs<'a> {
    pub model: &'a Path,
    pub prompt: Option<&'a str>,
    pub prompt_ids: Option<&'a str>,
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub device: Option<&'a str>,
    pub json: bool,
    /// `--stats`: timings on stderr after the run, the last line one JSON object.
    pub stats: bool,
    /// `--paced`: a line read from stdin before each forward pass.
    pub paced: bool,
    /// `--dtype` (`None`: the weights as the checkpoint stores them).
    pub weight_dtype: Option<DType>,
    /// `--kv-dtype`.
    pub kv_dtype: super::global::KvDtype,
    /// `--quantize`.
    pub quantize: Option<super::global::QuantizeChoice>,
}

/// Parses `--prompt-ids 1,2,3`.
pub fn parse_ids(text: &str) -> Result<Vec<u32>> {
    text.split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                Error::input(format!(
                    "--prompt-ids: {s:?} is not a token id (expected comma-separated non-negative integers)"
                ))
            })
        })
        .collect()
}

pub fn run(args: GenerateArgs) -> Result<()> {
    args.sampling.validate()?;
    if !args.model.join("config.json").is_file() && !args.model.is_file() {
        return Err(Error::input(format!(
            "{}: no config.json there (give --model a Hugging Face model folder)",
            args.model.display()
        )));
    }
    let tokenizer_path = args.model.join("tokenizer.json");
    let gguf = crate::gguf::is_gguf(args.model);
    let tokenizer = match (args.prompt, tokenizer_path.is_file()) {
        // A GGUF file carries its tokenizer in its metadata.
        (Some(_), _) if gguf => {
            let file = crate::gguf::GgufFile::open(args.model)?;
            Some(crate::gguf::tokenizer::from_gguf(&file)?.ok_or_else(|| {
                Error::input(format!("{}: no tokenizer in this GGUF file; give --prompt-ids", args.model.display()))
            })?)
        }
        (Some(_), true) => Some(Tokenizer::from_file(&tokenizer_path)?),
        (Some(_), false) => {
            return Err(Error::input(format!(
                "--prompt needs the model's tokenizer, and {} does not exist; give token ids with --prompt-ids",
                tokenizer_path.display()
            )));
        }
        (None, _) => None,
    };
    let (device, line) = crate::device::pick(args.device)?;
    eprintln!("{line}");
    let options = LoadOptions { device: device.clone(), weight_dtype: args.weight_dtype };
    let mut loaded = super::global::load_model(args.model, &options, args.quantize)?;
    loaded.model.kv_dtype = args.kv_dtype.cache_dtype();
    let prompt = match (args.prompt, args.prompt_ids, &tokenizer) {
        (_, Some(ids), _) => parse_ids(ids)?,
        (Some(text), None, Some(tokenizer)) => {
            // A model trained with a beginning-of-sequence token expects it first; the tokenizer
            // is asked for the text alone so the token is never doubled.
            let mut ids: Vec<u32> = loaded.config.bos_token_id.into_iter().collect();
            ids.extend(tokenizer.encode(text)?);
            if ids.is_empty() {
                return Err(Error::input("--prompt is empty and the model has no beginning-of-sequence token"));
            }
            ids
        }
        _ => return Err(Error::input("give --prompt TEXT or --prompt-ids 1,2,3")),
    };
    if prompt.len() + args.max_new_tokens > loaded.config.max_position_embeddings {
        return Err(Error::input(format!(
            "the prompt ({} tokens) plus --max-new-tokens ({}) exceeds the model's context of {}",
            prompt.len(),
            args.max_new_tokens,
            loaded.config.max_position_embeddings
        )));
    }
    let stop = StopAt { eos: loaded.config.eos_token_ids.clone() };
    let mut stdout = std::io::stdout().lock();
    let write_err = |e: std::io::Error| Error::input(format!("stdout: {e}"));
    let mut text = tokenizer.as_ref().filter(|_| args.prompt.is_some()).map(|t| t.incremental_decoder());
    if let (Some(prompt_text), Some(_), false) = (args.prompt, &text, args.json) {
        write!(stdout, "{prompt_text}").and_then(|_| stdout.flush()).map_err(write_err)?;
    }
    // GPU work per decoded token is counted over the steady steps: the prefill compiles
    // pipelines and allocates the cache, and the first decoding step compiles the kernels of
    // one-row shapes; what comes after is what decoding costs. Snapshots after the first and
    // second tokens (the first serves a generation of two tokens).
    let mut snapshots: Vec<gpu::GpuCounters> = Vec::with_capacity(2);
    let mut pace = Pace { on: args.paced, left: args.max_new_tokens, stdin: std::io::stdin().lock() };
    pace.wait()?;
    let (ids, timings) =
        generate_timed(&loaded.model, &prompt, args.max_new_tokens, args.sampling, &stop, &device, |token| {
            if snapshots.is_empty() && device.is_cpu() {
                // The prefill is done: its activations are free (see release_freed_memory).
                super::global::release_freed_memory();
            }
            if snapshots.len() < 2 {
                snapshots.push(gpu::counters());
            }
            if args.json || stop.eos.contains(&token) {
                return Ok(());
            }
            let piece = match text.as_mut() {
                Some(decoder) => decoder.push(token)?,
                None => format!("{token} "),
            };
            write!(stdout, "{piece}").and_then(|_| stdout.flush()).map_err(write_err)?;
            pace.wait()
        })?;
    if args.json {
        writeln!(stdout, "{}", serde_json::json!({ "ids": ids })).map_err(write_err)?;
    } else {
        let rest = match text.as_mut() {
            Some(decoder) => decoder.finish()?,
            None => String::new(),
        };
        writeln!(stdout, "{rest}").map_err(write_err)?;
    }
    if args.stats {
        drop(stdout);
        let mut stats = Stats::new(&timings, &device);
        if !device.is_cpu()
            && let Some(start) = snapshots.last()
        {
            let steps = timings.new_tokens.saturating_sub(snapshots.len());
            stats.gpu = Some(gpu::counters().delta(start).per_token(steps));
        }
        if !device.is_cpu() {
            stats.gpu_kernels = gpu::backend().map(|b| b.stats.profile.slowest(8)).unwrap_or_default();
        }
        eprintln!("{}", stats.line());
        eprintln!("{}", stats.json());
    }
    Ok(())
}

/// `--paced`: before each of the run's forward passes, one line read from stdin (nothing is
/// read after the last token's).
struct Pace<'a> {
    on: bool,
    /// Forward passes still to come.
    left: usize,
    stdin: std::io::StdinLock<'a>,
}

impl Pace<'_> {
    fn wait(&mut self) -> Result<()> {
        if !self.on || self.left == 0 {
            return Ok(());
        }
        self.left -= 1;
        let mut line = String::new();
        match std::io::BufRead::read_line(&mut self.stdin, &mut line) {
            Ok(0) => {
                Err(Error::input("--paced: stdin ended before the generation did (one line is read before each token)"))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(Error::input(format!("--paced: reading stdin: {e}"))),
        }
    }
}

/// What `--stats` reports: the speed of prefill and decode, where it ran, and the peak memory.
pub struct Stats {
    pub timings: Timings,
    pub device: String,
    pub threads: usize,
    /// The process's peak resident memory (Linux's VmHWM), loading included, if the system
    /// reports it.
    pub peak_rss_bytes: Option<u64>,
    /// Resident memory when generation ended (VmRSS): weights, cache and buffers, without what
    /// loading held only for a while (the mapped checkpoint file).
    pub rss_bytes: Option<u64>,
    /// On a GPU: the runtime's work per decoded token over the steady steps, from the third
    /// token on (submits, dispatches, blocking readbacks, buffer allocations, pipeline
    /// compilations, bytes uploaded).
    pub gpu: Option<gpu::PerToken>,
    /// With `LLM_GPU_PROFILE=1` on a GPU with timestamp queries: the kernels that took the most
    /// GPU time over the whole generation, slowest first.
    pub gpu_kernels: Vec<gpu::profile::KernelTime>,
}

impl Stats {
    pub fn new(timings: &Timings, device: &tensor::Device) -> Stats {
        let device = if device.is_cpu() { format!("cpu ({})", tensor::cpu::isa::active_name()) } else { device.name() };
        Stats {
            timings: timings.clone(),
            device,
            threads: super::global::threads(),
            peak_rss_bytes: proc_status_bytes("VmHWM:"),
            rss_bytes: proc_status_bytes("VmRSS:"),
            gpu: None,
            gpu_kernels: Vec::new(),
        }
    }

    /// One line for a person.
    pub fn line(&self) -> String {
        let t = &self.timings;
        let mut line = format!(
            "prefill: {} tokens in {:.3} s ({:.1} tok/s); decode: {} tokens in {:.3} s ({:.1} tok/s); {}, {} threads",
            t.prompt_tokens,
            t.prefill.as_secs_f64(),
            t.prefill_tok_s(),
            t.new_tokens.saturating_sub(1),
            t.decode.as_secs_f64(),
            t.decode_tok_s(),
            self.device,
            self.threads,
        );
        let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
        if let (Some(now), Some(peak)) = (self.rss_bytes, self.peak_rss_bytes) {
            line.push_str(&format!(
                "; memory {:.1} MiB ({:.1} MiB at the peak, loading included)",
                mib(now),
                mib(peak)
            ));
        }
        if let Some(gpu) = &self.gpu {
            line.push_str(&format!(
                "\nper decoded token on the GPU: {:.1} submits, {:.1} dispatches, {:.1} readbacks, {:.1} buffer allocations, {:.1} pipeline compilations, {:.0} bytes uploaded",
                gpu.gpu_submits_per_token,
                gpu.gpu_dispatches_per_token,
                gpu.gpu_readbacks_per_token,
                gpu.gpu_buffer_allocations_per_token,
                gpu.gpu_pipeline_compilations_per_token,
                gpu.gpu_bytes_uploaded_per_token
            ));
        }
        if !self.timings.cpu_steps.is_empty() {
            let steps: Vec<String> = self
                .cpu_steps_per_token()
                .map(|(step, us, calls)| format!("{step} {us:.0} µs ({calls:.0}x)"))
                .collect();
            line.push_str(&format!("\nper decoded token on the CPU, step by step: {}", steps.join("; ")));
        }
        if !self.gpu_kernels.is_empty() {
            let slowest: Vec<String> = self
                .gpu_kernels
                .iter()
                .map(|k| format!("{} {:.2} ms in {} dispatches", k.name, k.seconds * 1e3, k.dispatches))
                .collect();
            line.push_str(&format!("\nslowest GPU kernels: {}", slowest.join("; ")));
        }
        line
    }

    /// Each step's time (µs) and count per decoded token, in the order of a forward pass
    /// (`LLM_CPU_PROFILE`).
    fn cpu_steps_per_token(&self) -> impl Iterator<Item = (&'static str, f64, f64)> + '_ {
        let tokens = self.timings.decode_steps.len().max(1) as f64;
        self.timings.cpu_steps.iter().map(move |s| (s.step, s.seconds * 1e6 / tokens, s.count as f64 / tokens))
    }

    /// The JSON object: prompt_tokens, new_tokens, prefill_s, decode_s, prefill_tok_s,
    /// decode_tok_s, device, threads (and peak_rss_bytes where known, the GPU counters and
    /// gpu_slowest_kernels where measured, cpu_steps with `LLM_CPU_PROFILE=1`).
    pub fn json(&self) -> serde_json::Value {
        let t = &self.timings;
        let mut json = serde_json::json!({
            "prompt_tokens": t.prompt_tokens,
            "new_tokens": t.new_tokens,
            "prefill_s": t.prefill.as_secs_f64(),
            "decode_s": t.decode.as_secs_f64(),
            "prefill_tok_s": t.prefill_tok_s(),
            "decode_tok_s": t.decode_tok_s(),
            "decode_token_ms": t.decode_steps.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>(),
            "device": self.device,
            "threads": self.threads,
        });
        if let Some(bytes) = self.peak_rss_bytes {
            json["peak_rss_bytes"] = bytes.into();
        }
        if let Some(bytes) = self.rss_bytes {
            json["rss_bytes"] = bytes.into();
        }
        if let Some(gpu) = &self.gpu {
            for (key, value) in gpu.fields() {
                json[key] = value.into();
            }
        }
        if !self.timings.cpu_steps.is_empty() {
            json["cpu_steps"] = self
                .cpu_steps_per_token()
                .map(|(step, us, calls)| serde_json::json!({ "step": step, "us_per_token": us, "calls_per_token": calls }))
                .collect();
        }
        if !self.gpu_kernels.is_empty() {
            json["gpu_slowest_kernels"] = self
                .gpu_kernels
                .iter()
                .map(|k| serde_json::json!({ "kernel": k.name, "dispatches": k.dispatches, "ms": k.seconds * 1e3 }))
                .collect();
        }
        json
    }
}

/// A size of this process from `/proc/self/status` (`VmHWM:` the peak resident set, `VmRSS:`
/// the current one); None where the system has no such file.
fn proc_status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
