//! # Profiling one decode step
//!
//! Times the decode path of a Qwen3-0.6B-shaped model (random weights) step by step: a tool for
//! finding where decoding spends its time. `cargo run --release --example profile_decode`.

use std::path::PathBuf;
use std::time::Instant;

use llm::config::ModelConfig;
use llm::models::build;
use nn::Init;
use tensor::{Device, Tensor};

fn main() -> llm::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("llm/configs/qwen3-0.6b.json");
    let config = ModelConfig::from_path(&path)?;
    let cpu = Device::cpu();
    let model = build(&config, &mut Init::new(0, &cpu))?;
    let mut caches = model.new_caches();
    let prompt = Tensor::from_vec((0..16u32).collect::<Vec<_>>(), [1, 16], &cpu)?;
    autograd::no_grad(|| model.forward(&prompt, 0, Some(&mut caches), false))?;
    let steps = std::env::var("STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let start = Instant::now();
    for step in 0..steps {
        let next = Tensor::from_vec(vec![(step * 31 % 1000) as u32], [1, 1], &cpu)?;
        autograd::no_grad(|| model.forward(&next, 16 + step, Some(&mut caches), false))?;
    }
    let per = start.elapsed().as_secs_f64() / steps as f64;
    println!("decode: {:.1} ms/token, {:.2} tokens/s", per * 1e3, 1.0 / per);
    Ok(())
}
