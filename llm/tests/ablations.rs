//! What the ablation notebooks rely on: OLMo 2's `reordered_norm` and `qk_norm` switches build
//! the layers they name, `no_rope_layers` turns RoPE off per layer of a tiny SmolLM3, and
//! `pretrain` records each update's gradient norm and largest attention logit.

use llm::anatomy::Anatomy;
use llm::config::Family;
use llm::tiny::{TinySizes, TinyTraining, config_json, fresh_model_from};
use llm::train::{TokenData, pretrain};
use nn::ModuleExt;
use nn::optim::{AdamW, trainable};
use tensor::Device;

fn olmo2(reordered_norm: Option<bool>, qk_norm: Option<bool>) -> llm::Result<(Vec<String>, String, Anatomy)> {
    let mut config = config_json(Family::Olmo2, &TinySizes::small())?;
    if let Some(on) = reordered_norm {
        config["reordered_norm"] = on.into();
    }
    if let Some(on) = qk_norm {
        config["qk_norm"] = on.into();
    }
    let (config, model) = fresh_model_from(&config, 0, &Device::cpu())?;
    let names = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    Ok((names, model.layers[0].norms.name().to_string(), Anatomy::of(&config)))
}

#[test]
fn olmo2_switches_choose_norm_placement_and_qk_norm() -> llm::Result<()> {
    let has = |names: &[String], part: &str| names.iter().any(|n| n.contains(part));

    // Absent switches: the released OLMo 2 layer.
    let (names, norms, anatomy) = olmo2(None, None)?;
    assert_eq!(norms, "post-norm (inside the residual)");
    assert!(has(&names, "self_attn.q_norm") && has(&names, "post_feedforward_layernorm"));
    assert!(!has(&names, "input_layernorm"));
    assert_eq!(anatomy.norm_placement, "post-norm");

    // Both off: Llama's layer, with its parameter names and count.
    let (names, norms, anatomy) = olmo2(Some(false), Some(false))?;
    assert_eq!(norms, "pre-norm");
    assert!(!has(&names, "q_norm") && !has(&names, "k_norm") && !has(&names, "post_feedforward_layernorm"));
    assert!(has(&names, "input_layernorm"));
    assert_eq!(anatomy.norm_placement, "pre-norm");
    let (_, _, full) = olmo2(None, None)?;
    // Whole-projection QK-norm: 4 heads x 16 + 2 kv heads x 16 weights per layer, 2 layers.
    assert_eq!(full.total.total() - anatomy.total.total(), 2 * (4 * 16 + 2 * 16));

    // Each switch alone.
    let (names, norms, _) = olmo2(Some(false), Some(true))?;
    assert_eq!(norms, "pre-norm");
    assert!(has(&names, "q_norm"));
    let (names, norms, _) = olmo2(Some(true), Some(false))?;
    assert_eq!(norms, "post-norm (inside the residual)");
    assert!(!has(&names, "q_norm"));
    Ok(())
}

#[test]
fn no_rope_layers_choose_nope_layers_of_a_tiny_smollm3() -> llm::Result<()> {
    let mut config = config_json(Family::SmolLM3, &TinySizes { layers: 4, ..TinySizes::small() })?;
    let (parsed, _) = fresh_model_from(&config, 0, &Device::cpu())?;
    assert_eq!(parsed.layers.iter().map(|l| l.rope).collect::<Vec<_>>(), [true, true, true, false]);
    config["no_rope_layers"] = vec![0u32, 0, 0, 0].into();
    let (parsed, model) = fresh_model_from(&config, 0, &Device::cpu())?;
    assert!(parsed.layers.iter().all(|l| !l.rope));
    assert!(model.layers.iter().all(|l| l.self_attn.describe().contains("NoPE")));
    Ok(())
}

#[test]
fn pretrain_records_gradient_norms_and_attention_logits() -> llm::Result<()> {
    let cpu = Device::cpu();
    let tokens: Vec<u32> = (0..4000u32).map(|i| (i * 7919) % 2048).collect();
    let data = TokenData::split(tokens, 0.1)?;
    let mut training = TinyTraining::with_steps(3);
    let o = &mut training.options;
    (o.seq_len, o.batch_size, o.eval_batches, o.progress) = (16, 2, 1, false);
    for watch in [false, true] {
        training.options.watch_attention_logits = watch;
        let (_, model) = fresh_model_from(&config_json(Family::Qwen3, &TinySizes::small())?, 0, &cpu)?;
        let mut optimizer = AdamW::new(trainable(model.named_parameters()), 1e-3);
        let curve = pretrain(&model, &data, &training.options, &mut optimizer, &cpu)?;
        assert_eq!(curve.grad_norm.len(), 3);
        assert!(curve.grad_norm.iter().all(|&(_, g)| g.is_finite() && g > 0.0));
        assert_eq!(curve.max_attention_logit.len(), if watch { 3 } else { 0 });
        // Per-head QK-norm at initialisation: logits of spread about 1, never near 0 or huge.
        assert!(curve.max_attention_logit.iter().all(|&(_, m)| m > 0.5 && m < 50.0), "{curve:?}");
    }
    Ok(())
}
