//! # The compute and memory budget of a model: bytes, FLOPs and the bandwidth bound
//!
//! Run it: `cargo run --release --example compute_budget` (about a minute: it measures this
//! machine's memory bandwidth and decodes a few tokens with a Qwen3-0.6B-shaped model).
//!
//! Two words that differ by one letter: **FLOPs**, a count of floating-point operations (what a
//! model needs), and **FLOPS** or FLOP/s, a rate (what hardware delivers). Everything a learner
//! needs to size a model follows from a config and four rules of thumb:
//! - weight memory = parameters x bytes per weight (bf16 2, FP8 1, 4-bit about 0.56 with its
//!   block scales);
//! - KV cache per token = 2 (K and V) x layers x kv heads x head dim x bytes; for MLA, layers x
//!   (`kv_lora_rank` + rope dim) x bytes; windowed layers stop growing at the window;
//! - forward FLOPs per token = about 2 x active parameters (one multiply and one add per weight),
//!   plus attention, which grows with the context; training = about 6 x N x D (forward 2, backward
//!   4, over N parameters and D tokens: Kaplan et al. 2020, arXiv 2001.08361);
//! - batch-1 decoding reads every active weight once per token, so time per token is at least
//!   weight bytes / memory bandwidth. Batching shares those reads across sequences (continuous
//!   batching and PagedAttention's paged KV cache, as vLLM serves).

use std::time::Instant;

use llm::anatomy::{
    Anatomy, human_bytes, human_count, mla_absorbed_flops_per_position, mla_expanded_flops_per_position,
};
use llm::cli::inspect::WEIGHT_FORMATS;
use llm::config::{ModelConfig, SHIPPED};
use llm::models::build;
use llm::tiny::{TinySizes, fresh_model};
use nn::Init;
use tensor::{DType, Device, Tensor};

mod common;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let configs: Vec<(&str, ModelConfig)> =
        SHIPPED.iter().map(|s| Ok((s.release, s.parse()?))).collect::<llm::Result<_>>()?;

    // ## 1. Weight memory by precision
    // Total parameters x bits per weight. The FP8 column is DeepSeek-V3's released layout (e4m3
    // with one f32 scale per 128x128 block); the 4-bit column is llama.cpp's q4_0 (32 weights
    // share one f16 scale: 4.5 bits). A mixture of experts must hold *all* its experts, though
    // each token uses only a few.
    let formats: Vec<_> = WEIGHT_FORMATS.iter().filter(|f| f.name != "f32").collect();
    print!("{:<24} {:>9}", "weights of", "params");
    for f in &formats {
        print!(" {:>12}", f.name);
    }
    println!();
    for (release, c) in &configs {
        let total = Anatomy::of(c).total_params();
        print!("{release:<24} {:>9}", human_count(total));
        for f in &formats {
            print!(" {:>12}", human_bytes(f.bytes(total)));
        }
        println!();
    }

    // ## 2. The KV cache of one sequence (bf16)
    // Gemma 3's windowed layers stop at 1024 positions and Llama 4's chunked layers at 8192,
    // so their caches grow more slowly than the per-token figure suggests.
    let contexts = [8 * 1024, 32 * 1024, 128 * 1024];
    println!("\n{:<24} {:>11} {:>11} {:>11} {:>11}", "KV cache (bf16)", "per token", "8k", "32k", "128k");
    for (release, c) in &configs {
        let a = Anatomy::of(c);
        print!("{release:<24} {:>11}", human_bytes(a.kv_cache_bytes_per_token(DType::BF16)));
        for &ctx in &contexts {
            print!(" {:>11}", human_bytes(a.kv_cache_bytes(ctx, DType::BF16)));
        }
        println!();
    }

    // ## 3. Memory to serve one sequence of 32k tokens
    // Weights (FP8 for the two DeepSeek-style MoEs, as released; bf16 for the others) plus that
    // sequence's cache, before activations and the runtime's own buffers. Every further sequence
    // adds only its cache: that is why serving batches many sequences on one copy of the weights.
    let ctx = 32 * 1024;
    println!("\n{:<24} {:>12} {:>12} {:>12}", "one sequence at 32k", "weights", "KV cache", "together");
    for (release, c) in &configs {
        let a = Anatomy::of(c);
        let fp8 = c.mla.is_some();
        let format = WEIGHT_FORMATS.iter().find(|f| f.name == if fp8 { "fp8" } else { "bf16" }).expect("format");
        let (w, kv) = (format.bytes(a.total_params()), a.kv_cache_bytes(ctx, DType::BF16));
        println!(
            "{release:<24} {:>12} {:>12} {:>12}",
            format!("{} {}", human_bytes(w), format.name),
            human_bytes(kv),
            human_bytes(w + kv)
        );
    }

    // ## 4. FLOPs per token
    // About 2 FLOPs per active weight (`matmul_flops_per_token`: everything but the embedding
    // lookup), plus attention: for each position a token attends to, QK^T and PV over every
    // head of every layer. MLA is counted on the path decoding runs here, the *absorbed* one
    // (`nn::attention::mla`): each of 128 heads scores against the 576-number cached latent and
    // sums 512-number latents. That costs 3.4x the expanded path's 192 + 128 per head: MLA
    // trades compute for its small cache.
    println!("\n{:<24} {:>13} {:>11} {:>11} {:>11}", "forward FLOPs per token", "2 x active", "+ at 8k", "32k", "128k");
    for (release, c) in &configs {
        let a = Anatomy::of(c);
        print!("{release:<24} {:>13}", human_count(a.matmul_flops_per_token));
        for &ctx in &contexts {
            print!(" {:>11}", human_count(a.flops_per_token(ctx)));
        }
        println!();
    }
    let v3 = common::real_config("deepseek-v3.json")?;
    let m = v3.mla.expect("DeepSeek-V3 uses MLA");
    let (h, layers) = (v3.num_attention_heads, v3.num_hidden_layers as u64);
    let (absorbed, expanded) =
        (mla_absorbed_flops_per_position(h, &m) * layers, mla_expanded_flops_per_position(h, &m) * layers);
    println!(
        "DeepSeek-V3 attention per cached position: absorbed path {} FLOPs (2 x {h} x (512 + 64 + 512) x {layers} layers), \
         expanded {} (2 x {h} x (128 + 64 + 128) x {layers}): {:.1}x; at 128k: {} vs {} per token",
        human_count(absorbed),
        human_count(expanded),
        absorbed as f64 / expanded as f64,
        human_count(absorbed * 131_072),
        human_count(expanded * 131_072)
    );

    // ## 5. Training compute: 6 x N x D, and the utilisation DeepSeek-V3's report implies
    // The report (arXiv 2412.19437, table 1): 14.8T tokens; 2,664K H800 GPU-hours of
    // pre-training, 119K of context extension, 5K of post-training, 2,788K in all ($5.576M at $2
    // an hour). N is the active count (37B): a token's FLOPs are set by the weights it uses.
    let a3 = Anatomy::of(&v3);
    let (n, d) = (a3.active_params() as f64, 14.8e12);
    let flops = 6.0 * n * d;
    let pretrain_hours = 2.664e6;
    let per_gpu = flops / (pretrain_hours * 3600.0);
    println!(
        "\nDeepSeek-V3 pre-training: 6 x {:.1}B x 14.8T tokens = {flops:.2e} FLOPs over 2.664M H800 GPU-hours",
        n / 1e9
    );
    println!(
        "  = {:.0} TFLOP/s per GPU sustained, {:.0}% of the H800's ~990 TFLOP/s dense bf16 peak \
         ({:.0}% of its ~1980 TFLOP/s FP8 peak, the format the report trained its GEMMs in)",
        per_gpu / 1e12,
        100.0 * per_gpu / 990e12,
        100.0 * per_gpu / 1980e12
    );
    println!(
        "  check: the report's 180K GPU-hours per trillion tokens x 14.8T = {:.0}K GPU-hours (3.7 days on 2,048 GPUs per trillion)",
        180.0 * 14.8
    );
    // 6N leaves attention out. Training runs MLA on the expanded path; at the 4k pre-training
    // context a token attends to 2k positions on average, forward and backward (x3):
    let attention = 3.0 * expanded as f64 * 2048.0;
    println!("  attention at the 4k pre-training context adds {:.1}% to 6N", 100.0 * attention / (6.0 * n));

    // ## 6. The bandwidth bound on decoding, on this machine
    // A streaming read of a large buffer on every core is close to what the memory can give.
    let bytes = if quick { 16 << 20 } else { 512 << 20 };
    let bandwidth = measure_read_bandwidth(bytes, if quick { 2 } else { 5 });
    println!(
        "\nthis machine: streaming read of {} on every core: {:.1} GB/s",
        human_bytes(bytes as u64),
        bandwidth / 1e9
    );
    println!("{:<24} {:>14} {:>22}", "batch-1 decode bound", "active weights", "ms per token (>=) here");
    for (release, c) in &configs {
        let a = Anatomy::of(c);
        // Weights read per token: everything multiplied (not the embedding rows, a lookup).
        let read = a.matmul_flops_per_token / 2;
        let format = if c.mla.is_some() { "fp8" } else { "bf16" };
        let f = WEIGHT_FORMATS.iter().find(|f| f.name == format).expect("format");
        println!(
            "{release:<24} {:>14} {:>22.0}",
            format!("{} {format}", human_bytes(f.bytes(read))),
            1e3 * f.bytes(read) as f64 / bandwidth
        );
    }

    // Then the project's own decoding, measured: a Qwen3-0.6B-shaped model (random weights, f32,
    // 28 layers) decoding with its KV cache, next to the bound for the bytes it reads.
    let cpu = Device::cpu();
    let (config, model) = if quick {
        fresh_model(llm::config::Family::Qwen3, &TinySizes::small(), 0, &cpu)?
    } else {
        let c = common::real_config("qwen3-0.6b.json")?;
        let model = build(&c, &mut Init::new(0, &cpu))?;
        (c, model)
    };
    let a = Anatomy::of(&config);
    let weight_bytes = a.matmul_flops_per_token / 2 * 4;
    let mut caches = model.new_caches();
    let prompt = Tensor::from_vec((0..16u32).collect::<Vec<_>>(), [1, 16], &cpu)?;
    autograd::no_grad(|| model.forward(&prompt, 0, Some(&mut caches), false))?;
    let steps = if quick { 3 } else { 12 };
    let started = Instant::now();
    for step in 0..steps {
        let next = Tensor::from_vec(vec![(step * 31 % 1000) as u32], [1, 1], &cpu)?;
        autograd::no_grad(|| model.forward(&next, 16 + step, Some(&mut caches), false))?;
    }
    let per_token = started.elapsed().as_secs_f64() / steps as f64;
    let bound = weight_bytes as f64 / bandwidth;
    println!(
        "{} ({} f32, {} of weights read per token): measured {:.1} ms per token ({:.1} tokens/s); \
         the bound here {:.1} ms ({:.0}% of the streaming read's rate; on a machine shared with \
         other work both numbers move from run to run)",
        if quick { "a 2-layer tiny model" } else { "Qwen3-0.6B shape" },
        human_count(a.total_params()),
        human_bytes(weight_bytes),
        per_token * 1e3,
        1.0 / per_token,
        bound * 1e3,
        100.0 * bound / per_token
    );
    println!(
        "docs/BENCHMARKS.md holds the same decoder next to PyTorch on the same machine; what is \
         missing to reach the bound is listed there."
    );
    Ok(())
}

/// Bytes per second of a streaming read of `bytes` on every core, best of `repeats`. The words
/// are summed as integers (wrapping), which the compiler vectorises freely, so the arithmetic
/// never limits the read; each core reads eight places at once, as a matrix-vector product
/// reads several rows, so the memory system has several requests in flight.
fn measure_read_bandwidth(bytes: usize, repeats: usize) -> f64 {
    let data: Vec<u32> = (0..bytes / 4).map(|i| i as u32).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = data.len().div_ceil(threads);
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let started = Instant::now();
        let total = std::thread::scope(|s| {
            let handles: Vec<_> = data.chunks(chunk).map(|part| s.spawn(move || read_streams(part))).collect();
            handles.into_iter().fold(0u32, |a, h| a.wrapping_add(h.join().unwrap_or(0)))
        });
        best = best.min(started.elapsed().as_secs_f64());
        // Keep the sum alive so the reads are not optimised away.
        std::hint::black_box(total);
    }
    bytes as f64 / best
}

/// The wrapping sum of `part`, read as eight interleaved streams.
fn read_streams(part: &[u32]) -> u32 {
    let len = part.len() / 8;
    let streams: Vec<&[u32]> = (0..8).map(|i| &part[i * len..(i + 1) * len]).collect();
    let mut acc = [0u32; 8];
    for j in (0..len).step_by(16) {
        for (a, s) in acc.iter_mut().zip(&streams) {
            for &x in &s[j..(j + 16).min(len)] {
                *a = a.wrapping_add(x);
            }
        }
    }
    acc.iter().fold(0u32, |a, &x| a.wrapping_add(x))
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
