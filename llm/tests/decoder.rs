//! The decoder skeleton on a small model built directly from nn blocks: cached generation equals
//! uncached greedy decoding for every norm placement and mask, and parameter names are HF's.

use llm::generate::{StopAt, generate, generate_uncached_greedy};
use llm::models::{CausalLm, DecoderLayer, LayerNorms};
use llm::sample::Sampling;
use nn::attention::{AttentionConfig, GroupedQueryAttention, MaskKind, QkNorm};
use nn::rope::{Rope, RopeScaling};
use nn::{Embedding, GatedFeedForward, Init, Linear, ModuleExt, RmsNorm};
use tensor::{Device, GluActivation};

fn tiny_model(placement: usize, masks: &[MaskKind], tied: bool) -> tensor::Result<CausalLm> {
    let cpu = Device::cpu();
    let mut init = Init::new(5, &cpu);
    init.std = 0.4;
    let (hidden, vocab) = (16, 32);
    let mut layers = Vec::new();
    for &mask in masks {
        let config = AttentionConfig {
            hidden_size: hidden,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 4,
            bias: false,
            qk_norm: QkNorm::None,
            rope: Some(Rope::new(4, 10_000.0, &RopeScaling::None, false)),
            mask,
            scale: 0.5,
            softcap: None,
            temperature_tuning: None,
        };
        let norm = |init: &mut Init| RmsNorm::new(hidden, 1e-6, init);
        let norms = match placement {
            0 => LayerNorms::PreNorm { input_layernorm: norm(&mut init)?, post_attention_layernorm: norm(&mut init)? },
            1 => LayerNorms::PostNorm {
                post_attention_layernorm: norm(&mut init)?,
                post_feedforward_layernorm: norm(&mut init)?,
            },
            _ => LayerNorms::Sandwich {
                input_layernorm: norm(&mut init)?,
                post_attention_layernorm: norm(&mut init)?,
                pre_feedforward_layernorm: norm(&mut init)?,
                post_feedforward_layernorm: norm(&mut init)?,
            },
        };
        layers.push(DecoderLayer {
            self_attn: Box::new(GroupedQueryAttention::new(config, &mut init)?),
            ffn: Box::new(GatedFeedForward::new(hidden, 24, GluActivation::Silu, &mut init)?),
            ffn_name: "mlp",
            norms,
        });
    }
    Ok(CausalLm {
        embed_tokens: Embedding::new(vocab, hidden, &mut init)?,
        embed_scale: None,
        layers,
        norm: RmsNorm::new(hidden, 1e-6, &mut init)?,
        lm_head: if tied { None } else { Some(Linear::new(hidden, vocab, false, &mut init)?) },
        final_logit_softcap: None,
        kv_dtype: None,
    })
}

#[test]
fn cached_greedy_generation_equals_uncached() -> llm::Result<()> {
    let cpu = Device::cpu();
    let masks = [MaskKind::Sliding { window: 3 }, MaskKind::Causal, MaskKind::Chunked { chunk: 4 }];
    for placement in 0..3 {
        let model = tiny_model(placement, &masks, placement == 1)?;
        let prompt = [3u32, 7, 1, 30, 2];
        let cached = generate(&model, &prompt, 10, Sampling::greedy(), &StopAt::default(), &cpu, |_| Ok(()))?;
        let uncached = generate_uncached_greedy(&model, &prompt, 10, &cpu)?;
        assert_eq!(cached, uncached, "placement {placement}");
    }
    Ok(())
}

#[test]
fn generation_streams_tokens_and_stops_at_eos() -> llm::Result<()> {
    let cpu = Device::cpu();
    let model = tiny_model(0, &[MaskKind::Causal], false)?;
    let first = generate(&model, &[1, 2], 6, Sampling::greedy(), &StopAt::default(), &cpu, |_| Ok(()))?;
    let eos = first[3];
    let mut streamed = Vec::new();
    let stopped = generate(&model, &[1, 2], 6, Sampling::greedy(), &StopAt { eos: vec![eos] }, &cpu, |t| {
        streamed.push(t);
        Ok(())
    })?;
    let at = 2 + first[2..].iter().position(|&t| t == eos).unwrap_or(0);
    assert_eq!(stopped, first[..=at].to_vec(), "stops right after the first eos");
    assert_eq!(streamed, first[2..=at].to_vec());
    Ok(())
}

#[test]
fn sampled_generation_replays_with_a_seed_and_rejects_bad_ids() -> llm::Result<()> {
    let cpu = Device::cpu();
    let model = tiny_model(2, &[MaskKind::Causal, MaskKind::Causal], true)?;
    let settings = Sampling { temperature: 0.8, top_k: Some(10), top_p: Some(0.95), seed: 7 };
    let a = generate(&model, &[4, 5], 8, settings, &StopAt::default(), &cpu, |_| Ok(()))?;
    let b = generate(&model, &[4, 5], 8, settings, &StopAt::default(), &cpu, |_| Ok(()))?;
    assert_eq!(a, b);
    let err = generate(&model, &[4, 99], 2, settings, &StopAt::default(), &cpu, |_| Ok(()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("99") && err.contains("vocabulary"), "{err}");
    Ok(())
}

#[test]
fn parameter_names_follow_hugging_face() -> tensor::Result<()> {
    let model = tiny_model(2, &[MaskKind::Causal], false)?;
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    for want in [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
        "model.layers.0.pre_feedforward_layernorm.weight",
        "model.norm.weight",
        "lm_head.weight",
    ] {
        assert!(names.iter().any(|n| n == want), "missing {want} in {names:?}");
    }
    Ok(())
}

/// Generation's `forward_last` (final norm and head on the last position only) gives exactly the
/// last row of the full forward pass, with and without a cache, tied head or not.
#[test]
fn forward_last_is_the_last_row_of_forward() -> llm::Result<()> {
    let cpu = Device::cpu();
    for tied in [false, true] {
        let model = tiny_model(0, &[MaskKind::Causal, MaskKind::Causal], tied)?;
        let ids = tensor::Tensor::from_vec(vec![3u32, 1, 4, 1, 5, 9, 2], [1, 7], &cpu)?;
        autograd::no_grad(|| -> llm::Result<()> {
            let full = model.forward(&ids, 0, None, false)?.logits.value();
            let want = full.narrow(1, 6, 1)?;
            let last = model.forward_last(&ids, 0, None)?.value();
            assert_eq!(last.dims(), &[1, 1, 32]);
            assert!(tensor::testing::max_abs_diff(&last, &want)? < 1e-6);
            // Prefill 5 tokens into the cache, then the last 2.
            let mut caches = model.new_caches();
            model.forward_last(&ids.narrow(1, 0, 5)?, 0, Some(&mut caches))?;
            let cached = model.forward_last(&ids.narrow(1, 5, 2)?, 5, Some(&mut caches))?.value();
            assert!(tensor::testing::max_abs_diff(&cached, &want)? < 1e-5);
            Ok(())
        })?;
    }
    Ok(())
}
