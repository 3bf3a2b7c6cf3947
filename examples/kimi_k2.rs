//! # Kimi K2: DeepSeek-V3's architecture, other proportions, and MuonClip
//!
//! Run it: `cargo run --release --example kimi_k2`
//!
//! Kimi K2 (Moonshot AI, arXiv 2507.20534) is `DeepseekV3ForCausalLM` with different numbers:
//! its report scales the expert count up (sparsity 48: 8 of 384 experts) and halves the
//! attention heads to 64, which halves attention work per cached token at long context for a
//! small loss in quality. The first part lists every field that differs between the two
//! shipped configs (`llm/configs/deepseek-v3.json`, `kimi-k2.json`) and what follows from them.
//! The second shows MuonClip, the optimizer K2 was trained with: Muon plus QK-Clip, which scales
//! down a head's query and key weights whenever its largest attention logit exceeds tau.

use autograd::Var;
use llm::anatomy::{Anatomy, human_count};
use llm::config::ModelConfig;
use nn::attention::MultiHeadLatentAttention;
use nn::optim::{MuonClip, Optimizer};
use nn::rope::RopeScaling;
use nn::{Init, Module, ModuleExt};
use tensor::{DType, Device, Rng, Tensor};

mod common;

fn main() -> llm::Result<()> {
    let cpu = Device::cpu();

    // ## 1. What differs, field by field
    let v3 = common::real_config("deepseek-v3.json")?;
    let k2 = common::real_config("kimi-k2.json")?;
    let fields: Vec<(&str, Field)> = vec![
        ("hidden_size", |c| c.hidden_size.to_string()),
        ("num_hidden_layers", |c| c.num_hidden_layers.to_string()),
        ("kv_lora_rank / q_lora_rank", |c| {
            c.mla.map_or("-".into(), |m| format!("{} / {}", m.kv_lora_rank, m.q_lora_rank.unwrap_or(0)))
        }),
        ("num_attention_heads", |c| c.num_attention_heads.to_string()),
        ("vocab_size", |c| c.vocab_size.to_string()),
        ("n_routed_experts", |c| c.moe.map_or("-".into(), |m| m.num_experts.to_string())),
        ("num_experts_per_tok", |c| c.moe.map_or("-".into(), |m| m.top_k.to_string())),
        ("n_group / topk_group", |c| c.moe.map_or("-".into(), |m| format!("{} / {}", m.n_group, m.topk_group))),
        ("routed_scaling_factor", |c| c.moe.map_or("-".into(), |m| m.routed_scaling_factor.to_string())),
        ("dense layers (first_k_dense_replace)", |c| (c.num_hidden_layers - c.moe_layer_count()).to_string()),
        ("rope_theta", |c| c.rope.global.theta.to_string()),
        ("YaRN factor", |c| match c.rope.global.scaling {
            RopeScaling::Yarn { factor, .. } => factor.to_string(),
            _ => "-".into(),
        }),
        ("max_position_embeddings", |c| c.max_position_embeddings.to_string()),
        ("num_nextn_predict_layers (MTP)", |c| c.mtp_layers.to_string()),
    ];
    println!("{:<38} {:>12} {:>12}", "field", "DeepSeek-V3", "Kimi K2");
    for (name, get) in &fields {
        let (a, b) = (get(&v3), get(&k2));
        let mark = if a == b { "" } else { "  <- differs" };
        println!("{name:<38} {a:>12} {b:>12}{mark}");
    }
    let (a3, ak) = (Anatomy::of(&v3), Anatomy::of(&k2));
    println!("\nwhat follows:");
    println!(
        "  total {} vs {}; active per token {} vs {} (more experts, same 8 per token, fewer heads)",
        human_count(a3.total_params()),
        human_count(ak.total_params()),
        human_count(a3.active_params()),
        human_count(ak.active_params())
    );
    println!(
        "  attention parameters per layer: {} vs {}; attention FLOPs per cached position (absorbed MLA, as decoding runs) {} vs {}",
        human_count(a3.total.attention / v3.num_hidden_layers as u64),
        human_count(ak.total.attention / k2.num_hidden_layers as u64),
        human_count(a3.attention_flops_per_position.0),
        human_count(ak.attention_flops_per_position.0)
    );
    println!(
        "  the KV cache is the same ({} numbers per token and layer): MLA's latent does not depend on the head count",
        ak.kv_numbers_per_token.0 / k2.num_hidden_layers as u64
    );
    println!("  one routing group: plain top-8 over all 384 experts, no node limit");

    // ## 2. MuonClip on a tiny MLA block
    // QK-Clip (K2 report, Algorithm 1): after the optimizer step, each head h whose largest
    // logit S_max in that step exceeded tau gets gamma = tau / S_max; its non-rotary query and
    // key rows are scaled by sqrt(gamma), its rotary query rows by gamma (the rotary key is
    // shared by all heads, so it is left alone). Logits of that head then shrink by gamma.
    let mut init = Init::new(0, &cpu);
    let block = MultiHeadLatentAttention::new(common::toy_mla_config(50_000.0), &mut init)?;
    // Blow up the query weights so some heads have large logits, as happens in unstable runs.
    let q_b = &block.q_b_proj.as_ref().expect("query LoRA").weight;
    let rows = q_b.dims()[0];
    q_b.set_value(Tensor::cat(
        &[
            &q_b.value().narrow(0, 0, rows / 2)?.mul_scalar(400.0)?,
            &q_b.value().narrow(0, rows / 2, rows / 2)?.mul_scalar(20.0)?,
        ],
        0,
    )?)?;
    let mut rng = Rng::new(1);
    let x = Var::constant(Tensor::randn(0.0, 1.0, [2, 8, 64], DType::F32, &mut rng, &cpu)?);
    block.record_attention_logits(true);
    let max_logits = |y: llm::Result<Var>| -> llm::Result<Vec<String>> {
        y?;
        Ok(block.max_logits().unwrap_or_default().iter().map(|v| format!("{v:.2}")).collect())
    };
    let before = max_logits(block.forward(&x, 0, None).map_err(llm::Error::from))?;
    let mut optimizer = MuonClip::new(block.named_parameters(), 1e-3, 0.0);
    optimizer.tau = 1.0; // K2 uses 100; the toy's logits are small, so a small tau shows the effect
    let y = block.forward(&x, 0, None)?;
    let grads = y.sqr()?.mean_all()?.backward()?;
    optimizer.step(&grads)?;
    optimizer.after_step(&block)?;
    let after = max_logits(block.forward(&x, 0, None).map_err(llm::Error::from))?;
    println!("\nMuonClip on a tiny MLA block (4 heads), tau = {}:", optimizer.tau);
    println!("  largest logit per head before the step: {before:?}");
    println!("  after one Muon step and QK-Clip:        {after:?}");
    println!("  ({} matrices updated by Muon, the rest by AdamW)", optimizer.muon.matrix_names().len());

    // ## 3. The tiny checkpoint (16 experts, 2 heads, one group)
    let loaded = common::run_fixture("kimi_k2")?;
    common::print_layers(&loaded.model);
    Ok(())
}

/// Reads one field of a config as text.
type Field = fn(&ModelConfig) -> String;

#[test]
fn runs() -> llm::Result<()> {
    main()
}
