//! Decoder speed at Qwen3-0.6B's real shape (random weights): prefill tokens/s for a 512-token
//! prompt and decode tokens/s at batch 1 with the KV cache, with f32 weights and with bf16
//! weights. The PyTorch peer is `tools/bench_torch_decoder.py`; results in docs/BENCHMARKS.md.
//!
//! `cargo bench --bench llm_decoder` (set `LLM_BENCH_PROMPT` / `LLM_BENCH_DECODE` to change the
//! lengths).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llm::config::ModelConfig;
use llm::models::{CausalLm, build};
use nn::{Init, ModuleExt};
use tensor::{DType, Device, Tensor};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn model(weight_dtype: DType) -> (CausalLm, ModelConfig) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("llm/configs/qwen3-0.6b.json");
    let config = ModelConfig::from_path(&path).expect("shipped config");
    let cpu = Device::cpu();
    let mut init = Init::new(0, &cpu);
    let model = build(&config, &mut init).expect("model");
    if weight_dtype != DType::F32 {
        for (name, p) in model.named_parameters() {
            if p.rank() >= 2 && !name.contains("embed_tokens") {
                p.replace_value(p.value().to_dtype(weight_dtype).expect("cast")).expect("replace");
            }
        }
    }
    (model, config)
}

fn prompt(len: usize, vocab: usize) -> Vec<u32> {
    (0..len).map(|i| ((i * 7919 + 13) % vocab) as u32).collect()
}

fn decoder(c: &mut Criterion) {
    let cpu = Device::cpu();
    let prompt_len = env_usize("LLM_BENCH_PROMPT", 512);
    let decode_len = env_usize("LLM_BENCH_DECODE", 32);
    for dtype in [DType::F32, DType::BF16] {
        let (model, config) = model(dtype);
        let ids = prompt(prompt_len, config.vocab_size);
        let mut group = c.benchmark_group(format!("qwen3-0.6b/{dtype}"));
        group.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(1));
        group.throughput(Throughput::Elements(prompt_len as u64));
        group.bench_function(format!("prefill {prompt_len} tokens"), |b| {
            b.iter(|| {
                let input = Tensor::from_vec(ids.clone(), [1, prompt_len], &cpu).expect("ids");
                let mut caches = model.new_caches();
                autograd::no_grad(|| model.forward(&input, 0, Some(&mut caches), false)).expect("forward")
            })
        });
        group.throughput(Throughput::Elements(decode_len as u64));
        group.bench_function(format!("decode {decode_len} tokens after 16"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut caches = model.new_caches();
                    let first = Tensor::from_vec(ids[..16].to_vec(), [1, 16], &cpu).expect("ids");
                    autograd::no_grad(|| model.forward(&first, 0, Some(&mut caches), false)).expect("prefill");
                    let start = Instant::now();
                    for step in 0..decode_len {
                        let next = Tensor::from_vec(vec![ids[16 + step]], [1, 1], &cpu).expect("id");
                        autograd::no_grad(|| model.forward(&next, 16 + step, Some(&mut caches), false))
                            .expect("decode");
                    }
                    total += start.elapsed();
                }
                total
            })
        });
        group.finish();
    }
}

criterion_group!(benches, decoder);
criterion_main!(benches);
