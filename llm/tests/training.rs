//! The reference AdamW run of each fixture (5 full-batch steps, lr 1e-3, betas 0.9/0.95, eps
//! 1e-8, weight decay 0.1, every parameter, tied weights once): our losses must match PyTorch's
//! within 1e-3 relative at every step.

use llm::models::{LoadOptions, load};
use llm::train::train;
use llm::weights::Checkpoint;
use nn::ModuleExt;
use nn::optim::AdamW;
use tensor::{DType, Device};

#[macro_use]
mod common;
use common::fixture;

fn check_training(name: &str, device: &Device) -> llm::Result<()> {
    let dir = fixture(name);
    let loaded = load(&dir, &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
    let reference = Checkpoint::open(&dir.join("reference.safetensors"))?;
    let ids = reference.load("input_ids", Some(DType::U32), device)?;
    let want: Vec<f32> = reference.load("train_losses", Some(DType::F32), &Device::cpu())?.to_vec()?;
    let mut optimizer = AdamW::with(loaded.model.named_parameters(), 1e-3, (0.9, 0.95), 1e-8, 0.1);
    let got = train(&loaded.model, &ids, want.len() - 1, &mut optimizer, |_, _| Ok(()))?;
    let worst = got.iter().zip(&want).map(|(g, w)| ((g - w) / w).abs()).fold(0.0f32, f32::max);
    eprintln!("{name} on {device}: training losses {got:?}, reference {want:?}, worst relative error {worst:.2e}");
    assert!(worst <= 1e-3, "{name}: losses {got:?} vs reference {want:?}");
    Ok(())
}

on_cpu_and_gpu! {
    check_training;
    qwen3, qwen3_moe, deepseek_v3, kimi_k2, olmo2,
    gemma3, mistral_small, llama4, smollm3, gpt_oss
}

/// OLMo 2's config sets `pad_token_id` 1 and Hugging Face builds its embedding with
/// `padding_idx = pad_token_id`, so the pad row gets no gradient from the lookup; with an untied
/// head AdamW only decays it: after n steps it is the initial row times (1 - lr * wd)^n, exactly
/// as PyTorch leaves it. Every other row the batch reads moves by about lr per step.
#[test]
fn the_pad_row_only_decays() -> llm::Result<()> {
    let dir = fixture("olmo2");
    let cpu = Device::cpu();
    let loaded = load(&dir, &LoadOptions { device: cpu.clone(), weight_dtype: Some(DType::F32) })?;
    let model = &loaded.model;
    assert_eq!(model.embed_tokens.padding_idx, Some(1));
    assert!(model.lm_head.is_some(), "the test needs an untied head");
    let table = || -> llm::Result<Vec<Vec<f32>>> { Ok(model.embed_tokens.weight.value().to_vec2()?) };
    let before = table()?;
    let ids = tensor::Tensor::from_vec(vec![5u32, 9, 1, 1, 7, 9, 3, 1], [2, 4], &cpu)?;
    let (lr, wd, steps) = (1e-3f32, 0.1f32, 3);
    let mut optimizer = AdamW::with(model.named_parameters(), lr as f64, (0.9, 0.95), 1e-8, wd as f64);
    train(model, &ids, steps, &mut optimizer, |_, _| Ok(()))?;
    let after = table()?;
    let decay = (1.0 - lr * wd).powi(steps as i32);
    for (b, a) in before[1].iter().zip(&after[1]) {
        assert!((b * decay - a).abs() <= 1e-7 * b.abs().max(1.0), "pad row: {b} -> {a}, expected {}", b * decay);
    }
    let moved = before[5].iter().zip(&after[5]).map(|(b, a)| (b * decay - a).abs()).fold(0.0f32, f32::max);
    assert!(moved > 1e-4, "a row the batch reads should move, moved {moved}");
    Ok(())
}
