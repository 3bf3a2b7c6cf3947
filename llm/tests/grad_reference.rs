//! Whole-model gradients against PyTorch's (`tests/data/grad-reference`, made by
//! `tools/make_grad_reference.py`): the qwen3 fixture at its own input, mean next-token
//! cross-entropy, one backward pass. The per-op finite-difference checks prove each rule; this
//! proves they compose through a real architecture (tied embedding and head summed, QK-norm,
//! RoPE, GQA, SwiGLU) to the same numbers.
//!
//! Tolerance: 1e-4 of each tensor's largest entry. Both sides are float32 and differ only in
//! summation order, about 1e-6 relative at these sizes; a wrong rule is off by O(1).

use std::path::PathBuf;

use llm::models::{LoadOptions, load};
use llm::train::next_token_loss;
use llm::weights::Checkpoint;
use nn::ModuleExt;
use tensor::{DType, Device};

const RELATIVE_TOLERANCE: f64 = 1e-4;

fn check(device: &Device) -> llm::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let loaded =
        load(&root.join("hf-tiny/qwen3"), &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
    let reference = Checkpoint::open(&root.join("grad-reference/qwen3.safetensors"))?;
    let cpu = Device::cpu();
    let ids = reference.load("input_ids", Some(DType::U32), device)?;
    let loss = next_token_loss(&loaded.model, &ids)?;
    let want_loss: Vec<f32> = reference.load("loss", Some(DType::F32), &cpu)?.to_vec()?;
    let got_loss: Vec<f32> = loss.value().to(&cpu)?.to_dtype(DType::F32)?.to_vec()?;
    assert!((got_loss[0] - want_loss[0]).abs() <= 1e-5 * want_loss[0].abs(), "loss {got_loss:?} vs {want_loss:?}");
    let grads = loss.backward()?;
    let named = loaded.model.named_parameters();
    let mut checked = 0;
    for name in reference.names() {
        let Some(param) = name.strip_prefix("grad.") else { continue };
        let (_, var) =
            named.iter().find(|(n, _)| n == param).unwrap_or_else(|| panic!("the model has no parameter {param}"));
        let want: Vec<f32> = reference.load(&name, Some(DType::F32), &cpu)?.to_vec()?;
        let got: Vec<f32> = grads.get(var).expect("a gradient for every parameter").to(&cpu)?.to_vec()?;
        assert_eq!(got.len(), want.len(), "{param}");
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs() as f64).fold(0.0, f64::max);
        eprintln!("{param} on {device}: max |grad diff| {worst:.2e} (largest entry {scale:.2e})");
        assert!(worst <= RELATIVE_TOLERANCE * scale, "{param}: gradients differ by {worst:.2e} of {scale:.2e}");
        checked += 1;
    }
    assert_eq!(checked, 6, "the reference holds six gradients");
    Ok(())
}

#[test]
fn qwen3_gradients_match_pytorch_on_cpu() -> llm::Result<()> {
    check(&Device::cpu())
}

#[test]
fn qwen3_gradients_match_pytorch_on_gpu() -> llm::Result<()> {
    match gpu::test_device() {
        Some(g) => check(&g),
        None => Ok(()),
    }
}
