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

#[macro_use]
mod common;

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
    let (out, logits_diff) = common::forward_against_reference(&loaded.model, &reference, device, true)?;
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

on_cpu_and_gpu! {
    check_forward_and_greedy;
    qwen3, mistral_small, smollm3, olmo2, gemma3,
    qwen3_moe, deepseek_v3, kimi_k2, llama4, gpt_oss
}

/// gpt-oss's checkpoint layout both ways: saved back (gate and up interleaved in `gate_up_proj`,
/// the expert biases fused the same way), the folder loads to the same logits; and MXFP4 experts
/// (`*_blocks`, `*_scales`) stored in another dtype than u8 are refused with the tensor named
/// (releases that hold real MXFP4 experts: tests/quantized_releases.rs).
#[test]
fn gpt_oss_saves_its_own_layout_and_names_misstored_mxfp4_experts() -> llm::Result<()> {
    use llm::models::save::save_checkpoint;
    use llm::weights::save_safetensors;
    use tensor::Tensor;

    let dir = fixture("gpt_oss");
    let cpu = Device::cpu();
    let loaded = load(&dir, &LoadOptions::cpu())?;
    let ids = Checkpoint::open(&dir.join("reference.safetensors"))?.load("input_ids", Some(DType::U32), &cpu)?;
    let want = autograd::no_grad(|| loaded.model.forward(&ids, 0, None, false))?.logits.value();

    let out = std::env::temp_dir().join(format!("llm-gpt-oss-{}", std::process::id()));
    save_checkpoint(&loaded.model, &loaded.config, &dir, &out)?;
    let saved = Checkpoint::open(&out)?;
    let original = Checkpoint::open(&dir.join("model.safetensors"))?;
    assert_eq!(saved.names().len(), original.names().len());
    for name in original.names() {
        let diff = max_abs_diff(&saved.load(&name, None, &cpu)?, &original.load(&name, None, &cpu)?)?;
        assert!(diff == 0.0, "{name} changed by {diff} in the round trip");
    }
    let again = load(&out, &LoadOptions::cpu())?;
    let got = autograd::no_grad(|| again.model.forward(&ids, 0, None, false))?.logits.value();
    assert_eq!(max_abs_diff(&got, &want)?, 0.0);

    // The same checkpoint with layer 0's fused experts as MXFP4 blocks and scales, in u32 where
    // the releases have u8.
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for name in original.names() {
        let t = original.load(&name, None, &cpu)?;
        if name == "model.layers.0.mlp.experts.gate_up_proj" {
            let (e, h, w) = (t.dims()[0], t.dims()[1], t.dims()[2]);
            tensors.push((format!("{name}_blocks"), Tensor::zeros([e, w, h / 32, 16], DType::U32, &cpu)?));
            tensors.push((format!("{name}_scales"), Tensor::zeros([e, w, h / 32], DType::U32, &cpu)?));
        } else {
            tensors.push((name, t));
        }
    }
    save_safetensors(&out.join("model.safetensors"), &tensors, None)?;
    let err = load(&out, &LoadOptions::cpu()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("model.layers.0.mlp.experts.gate_up_proj_blocks") && err.contains("expected U8"), "{err}");
    std::fs::remove_dir_all(&out).ok();
    Ok(())
}
