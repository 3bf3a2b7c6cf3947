//! The definition of done for each architecture: the tiny checkpoints of `tests/data/hf-tiny`,
//! with outputs recorded by the reference implementation (transformers 5.23, float32, eager).
//! Tolerance 1e-3 max abs on logits and on every hidden state: float32 re-implementations agree
//! with the reference to about 1e-4 (different summation orders), so 1e-3 leaves room for that
//! while any wrong detail (a norm, a scale, a rope layout) moves logits by O(1) at a logit spread
//! of ~1.5. Each fixture runs on the CPU and on the GPU (lavapipe in CI).

use std::path::PathBuf;

use llm::generate::{StopAt, generate};
use llm::models::{LoadOptions, load};
use llm::sample::Sampling;
use llm::weights::Checkpoint;
use tensor::testing::max_abs_diff;
use tensor::{DType, Device};

const TOLERANCE: f64 = 1e-3;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny").join(name)
}

/// Logits, hidden states and the cached greedy continuation of one fixture on `device`.
fn check_forward_and_greedy(name: &str, device: &Device) -> llm::Result<()> {
    let dir = fixture(name);
    let loaded = load(&dir, &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
    let reference = Checkpoint::open(&dir.join("reference.safetensors"))?;
    let cpu = Device::cpu();
    let ids = reference.load("input_ids", Some(DType::U32), device)?;
    let out = autograd::no_grad(|| loaded.model.forward(&ids, 0, None, true))?;
    let want = reference.load("logits", None, &cpu)?;
    let logits_diff = max_abs_diff(&out.logits.value().to(&cpu)?, &want)?;
    assert!(logits_diff <= TOLERANCE, "{name}: logits differ by {logits_diff:.2e}");
    assert_eq!(out.hidden_states.len(), loaded.config.num_hidden_layers + 1);
    let mut worst_hidden = 0.0f64;
    for (i, h) in out.hidden_states.iter().enumerate() {
        let want = reference.load(&format!("hidden_states.{i}"), None, &cpu)?;
        let diff = max_abs_diff(&h.to(&cpu)?, &want)?;
        assert!(diff <= TOLERANCE, "{name}: hidden state {i} differs by {diff:.2e}");
        worst_hidden = worst_hidden.max(diff);
    }
    eprintln!("{name} on {device}: max |logit diff| {logits_diff:.2e}, max |hidden diff| {worst_hidden:.2e}");
    let greedy: Vec<u32> = reference.load("greedy_ids", Some(DType::U32), &cpu)?.to_vec()?;
    let prompt_len = greedy.len() - 12;
    let ours =
        generate(&loaded.model, &greedy[..prompt_len], 12, Sampling::greedy(), &StopAt::default(), device, |_| Ok(()))?;
    assert_eq!(ours, greedy, "{name}: greedy continuation with the KV cache");
    Ok(())
}

macro_rules! fixture_tests {
    ($($cpu:ident, $gpu:ident => $name:expr),* $(,)?) => {
        $(
            #[test]
            fn $cpu() -> llm::Result<()> {
                check_forward_and_greedy($name, &Device::cpu())
            }

            #[test]
            fn $gpu() -> llm::Result<()> {
                match gpu::test_device() {
                    Some(g) => check_forward_and_greedy($name, &g),
                    None => Ok(()),
                }
            }
        )*
    };
}

fixture_tests! {
    qwen3_cpu, qwen3_gpu => "qwen3",
    mistral_small_cpu, mistral_small_gpu => "mistral_small",
    smollm3_cpu, smollm3_gpu => "smollm3",
    olmo2_cpu, olmo2_gpu => "olmo2",
    gemma3_cpu, gemma3_gpu => "gemma3",
    qwen3_moe_cpu, qwen3_moe_gpu => "qwen3_moe",
    deepseek_v3_cpu, deepseek_v3_gpu => "deepseek_v3",
    kimi_k2_cpu, kimi_k2_gpu => "kimi_k2",
    llama4_cpu, llama4_gpu => "llama4",
}
