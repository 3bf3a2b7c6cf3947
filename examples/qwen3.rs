//! # Qwen3: dense and mixture-of-experts on one recipe
//!
//! Run it: `cargo run --release --example qwen3`
//!
//! Qwen3 (Qwen Team, arXiv 2505.09388) is a plain pre-norm decoder with two details worth
//! seeing: grouped-query attention with an explicit `head_dim` of 128 (not hidden / heads), and
//! QK-norm, an RMSNorm over each query and key head before RoPE, which replaced Qwen2's
//! attention biases. The MoE models use the same layers with a 128-expert feed-forward block:
//! softmax over all experts, the top 8, renormalised to sum to one, and no shared expert.
//! Configs: `llm/configs/qwen3-0.6b.json` and `qwen3-235b-a22b.json`; the end compares SmolLM3.

use autograd::Var;
use llm::anatomy::{Anatomy, human_bytes, human_count};
use nn::attention::{AttentionConfig, GroupedQueryAttention, MaskKind, QkNorm};
use nn::moe::{MoeRouter, RouterKind};
use nn::rope::{Rope, RopeScaling};
use nn::{Init, ModuleExt};
use tensor::{DType, Device, Rng, Tensor};

mod common;

fn main() -> llm::Result<()> {
    let cpu = Device::cpu();

    // ## 1. The dense 0.6B
    let dense = common::real_config("qwen3-0.6b.json")?;
    let ad = Anatomy::of(&dense);
    common::print_anatomy("Qwen3-0.6B", &ad);
    println!(
        "  hidden {} but {} heads x head_dim {} = {}: q_proj maps {} -> {}, k/v_proj {} -> {} ({} kv heads, {} query heads each)",
        dense.hidden_size,
        dense.num_attention_heads,
        dense.head_dim,
        dense.num_attention_heads * dense.head_dim,
        dense.hidden_size,
        dense.num_attention_heads * dense.head_dim,
        dense.hidden_size,
        dense.num_key_value_heads * dense.head_dim,
        dense.num_key_value_heads,
        dense.num_attention_heads / dense.num_key_value_heads
    );
    println!(
        "  tied embeddings: the {} embedding parameters are {:.0}% of the model (non-embedding {})",
        human_count(ad.total.embedding),
        100.0 * ad.total.embedding as f64 / ad.total_params() as f64,
        human_count(ad.non_embedding_params())
    );

    // ## 2. QK-norm per head, on a small block
    // q_proj's output is split into heads and each head's 128 (here 16) numbers are RMS-normed
    // with one shared weight vector of head_dim entries, then rotated. Normalised queries and
    // keys keep attention logits from growing without bound during training.
    let mut init = Init::new(0, &cpu);
    let attn = GroupedQueryAttention::new(
        AttentionConfig {
            hidden_size: 32,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 16,
            bias: false,
            qk_norm: QkNorm::PerHead { eps: 1e-6, gemma: false },
            rope: Some(Rope::new(16, 1e6, &RopeScaling::None, false)),
            mask: MaskKind::Causal,
            scale: 16f64.powf(-0.5),
            softcap: None,
            temperature_tuning: None,
        },
        &mut init,
    )?;
    for (name, p) in attn.named_parameters() {
        println!("  {name:<14} {:?}", p.dims());
    }
    let mut rng = Rng::new(0);
    let x = Var::constant(Tensor::randn(0.0, 1.0, [1, 5, 32], DType::F32, &mut rng, &cpu)?);
    let q = attn.q_proj.forward(&x)?.reshape([1, 5, 4, 16])?;
    let normed = attn.q_norm.as_ref().expect("QK-norm").forward(&q)?;
    let rms = |v: &Var| -> llm::Result<Vec<String>> {
        let r: Vec<f32> = v.value().sqr()?.mean(-1, false)?.sqrt()?.narrow(1, 0, 1)?.reshape([4])?.to_vec()?;
        Ok(r.iter().map(|x| format!("{x:.3}")).collect())
    };
    println!("  token 0, RMS of each query head before the norm {:?}, after {:?}", rms(&q)?, rms(&normed)?);
    println!("  block output {:?}", attn.forward(&x, 0, None)?.dims());

    // ## 3. The MoE: Qwen3-235B-A22B
    let moe_cfg = common::real_config("qwen3-235b-a22b.json")?;
    let am = Anatomy::of(&moe_cfg);
    common::print_anatomy("Qwen3-235B-A22B", &am);
    let moe = moe_cfg.moe.expect("experts");
    println!(
        "  {} experts of width {}, top {}, norm_topk_prob {}, shared expert: {}",
        moe.num_experts,
        moe.expert_intermediate_size,
        moe.top_k,
        moe.norm_topk_prob,
        moe.shared_intermediate_size.is_some()
    );

    // The router (`Qwen3MoeTopKRouter`): p = softmax(x W^T) over all experts, keep the top 8,
    // divide by their sum. Without renormalisation the kept weights sum to well under one.
    let (experts, hidden, k) = (32, 32, 8);
    let x = Var::constant(Tensor::randn(0.0, 1.0, [1, hidden], DType::F32, &mut rng, &cpu)?);
    for norm in [false, true] {
        let router = MoeRouter::new(
            RouterKind::SoftmaxTopK { norm_topk_prob: norm },
            experts,
            k,
            hidden,
            &mut Init::new(5, &cpu),
        )?;
        let r = router.route(&x)?;
        let w: Vec<f32> = r.weights.value().to_vec()?;
        println!(
            "  norm_topk_prob {norm:<5}: experts {:?}, weights {:?}, sum {:.3}",
            r.ids.to_vec::<u32>()?,
            w.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>(),
            w.iter().sum::<f32>()
        );
    }

    // ## 4. The tiny checkpoints, dense and MoE
    let loaded = common::run_fixture("qwen3")?;
    common::print_layers(&loaded.model);
    let loaded = common::run_fixture("qwen3_moe")?;
    common::print_layers(&loaded.model);

    // ## 5. Beside SmolLM3-3B
    // SmolLM3 keeps Qwen3's GQA pre-norm shape but drops QK-norm and RoPE on every 4th layer.
    let s = common::real_config("smollm3-3b.json")?;
    let a_s = Anatomy::of(&s);
    println!("\n{:<28} {:>14} {:>14}", "", "Qwen3-0.6B", "SmolLM3-3B");
    let row = |name: &str, a: String, b: String| println!("{name:<28} {a:>14} {b:>14}");
    row(
        "layers x hidden",
        format!("{} x {}", dense.num_hidden_layers, dense.hidden_size),
        format!("{} x {}", s.num_hidden_layers, s.hidden_size),
    );
    row(
        "heads : kv heads",
        format!("{}:{}", dense.num_attention_heads, dense.num_key_value_heads),
        format!("{}:{}", s.num_attention_heads, s.num_key_value_heads),
    );
    row("head_dim", dense.head_dim.to_string(), s.head_dim.to_string());
    row("QK-norm", "per head".into(), "none".into());
    row(
        "NoPE layers",
        dense.layers.iter().filter(|l| !l.rope).count().to_string(),
        s.layers.iter().filter(|l| !l.rope).count().to_string(),
    );
    row("rope_theta", format!("{:e}", dense.rope.global.theta), format!("{:e}", s.rope.global.theta));
    row(
        "vocabulary / tied",
        format!("{} / {}", dense.vocab_size, dense.tie_word_embeddings),
        format!("{} / {}", s.vocab_size, s.tie_word_embeddings),
    );
    row("parameters", human_count(ad.total_params()), human_count(a_s.total_params()));
    row(
        "KV cache per token (bf16)",
        human_bytes(ad.kv_cache_bytes_per_token(DType::BF16)),
        human_bytes(a_s.kv_cache_bytes_per_token(DType::BF16)),
    );
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    main()
}
