//! Continuous batching's premise, measured: decode on a CPU is bound by reading the weights, so
//! one batched step for several sequences (`CausalLm::forward_segments`, what `llm serve` runs)
//! should cost little more than a step for one. At Qwen3-0.6B's real shape (random weights,
//! bf16 or f32 weights as `LLM_BENCH_DTYPE` says, default bf16), each sequence with its own
//! 64-token prompt in its cache, this times decode steps at batch 1, 2, 4 and 8 and prints the
//! aggregate tokens/s and its ratio to batch 1 (the serving issue's target: >= 4x at 8).
//!
//! `cargo bench --bench batched_decode` (`LLM_BENCH_STEPS` decode steps per batch size, default 16;
//! `LLM_BENCH_CACHE=paged` for the server's paged KV cache instead of contiguous caches;
//! `LLM_BENCH_BATCHES=1,8` for other batch sizes, e.g. to profile one alone).

use std::path::PathBuf;
use std::time::Instant;

use llm::config::ModelConfig;
use llm::models::{Segment, build};
use nn::{Init, ModuleExt};
use tensor::{DType, Device};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // On a worker of the kernels' pool, as `llm serve` runs its engine (`device::on_cpu_pool`).
    llm::device::on_cpu_pool(run);
}

fn run() {
    let dtype = match std::env::var("LLM_BENCH_DTYPE").as_deref() {
        Ok("f32") => DType::F32,
        _ => DType::BF16,
    };
    let steps: usize = env_or("LLM_BENCH_STEPS", 16);
    let paged = std::env::var("LLM_BENCH_CACHE").as_deref() == Ok("paged");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("llm/configs/qwen3-0.6b.json");
    let config = ModelConfig::from_path(&path).expect("shipped config");
    let cpu = Device::cpu();
    let model = build(&config, &mut Init::new(0, &cpu)).expect("model");
    if dtype != DType::F32 {
        // Every matrix, the tied embedding and head included, as `llm serve` keeps a bf16
        // checkpoint (its weights as stored).
        for (_, p) in model.named_parameters() {
            if p.rank() >= 2 {
                p.replace_value(p.value().to_dtype(dtype).expect("cast")).expect("replace");
            }
        }
    }
    let vocab = config.vocab_size;
    let prompt_len = 64;
    let mut base = None;
    println!(
        "Qwen3-0.6B shape, {dtype} weights, {} threads, {steps} decode steps per batch, {} KV cache",
        rayon::current_num_threads(),
        if paged { "paged" } else { "contiguous" }
    );
    let batches: Vec<usize> = std::env::var("LLM_BENCH_BATCHES")
        .ok()
        .map(|v| v.split(',').filter_map(|b| b.trim().parse().ok()).filter(|&b| b > 0).collect())
        .unwrap_or_else(|| vec![1, 2, 4, 8]);
    for batch in batches {
        let prompts: Vec<Vec<u32>> = (0..batch)
            .map(|s| (0..prompt_len).map(|i| ((i * 7919 + s * 104_729 + 13) % vocab) as u32).collect())
            .collect();
        let block_size = llm::serve::DEFAULT_BLOCK_SIZE;
        let pool = nn::attention::BlockPool::new(
            batch * llm::serve::engine::blocks_for(&model, prompt_len + steps + 1, block_size, prompt_len),
            block_size,
        )
        .expect("pool");
        let new_caches = || -> Vec<nn::attention::KvCache> {
            if paged {
                model.layers.iter().map(|l| nn::attention::KvCache::paged(l.self_attn.mask(), pool.clone())).collect()
            } else {
                model.new_caches()
            }
        };
        let mut caches: Vec<_> = (0..batch).map(|_| new_caches()).collect();
        for cache in caches.iter_mut().flatten() {
            cache.reserve(prompt_len + steps + 1);
        }
        let mut segments: Vec<Segment<'_>> =
            prompts.iter().zip(caches.iter_mut()).map(|(p, c)| Segment { ids: p, start: 0, caches: c }).collect();
        let mut last: Vec<u32> =
            model.forward_segments(&mut segments, &cpu).expect("prefill").iter().map(|row| argmax(row)).collect();
        let start = Instant::now();
        for step in 0..steps {
            let ids = last.clone();
            let mut segments: Vec<Segment<'_>> = ids
                .iter()
                .zip(caches.iter_mut())
                .map(|(id, c)| Segment { ids: std::slice::from_ref(id), start: prompt_len + step, caches: c })
                .collect();
            last = model.forward_segments(&mut segments, &cpu).expect("decode").iter().map(|row| argmax(row)).collect();
        }
        let tok_s = (batch * steps) as f64 / start.elapsed().as_secs_f64();
        let ratio = tok_s / *base.get_or_insert(tok_s);
        println!("batch {batch}: {tok_s:.1} tokens/s in all, {ratio:.2}x batch 1");
    }
}

fn argmax(row: &[f32]) -> u32 {
    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32)
}
