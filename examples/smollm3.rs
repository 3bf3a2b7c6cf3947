//! # SmolLM3: a small model that leaves RoPE out of every fourth layer
//!
//! Run it: `cargo run --release --example smollm3`
//!
//! SmolLM3-3B (Hugging Face, July 2025; `llm/configs/smollm3-3b.json`) is a Llama-style pre-norm
//! decoder with GQA (16 query heads, 4 kv heads) and tied embeddings. Its one unusual choice,
//! `no_rope_layers`, comes from "Rope to Nope and back again" (Yang et al., arXiv 2501.18795):
//! every fourth layer has no position encoding at all (NoPE). Causal masking alone lets a model
//! infer order, and layers without RoPE attend by content over any distance, which helps long
//! contexts. The notebook shows what RoPE does to an attention score and what NoPE does not,
//! then sets SmolLM3 beside Qwen3.

use autograd::Var;
use llm::anatomy::{Anatomy, human_bytes, human_count};
use nn::rope::{Rope, RopeScaling};
use tensor::{DType, Device, Rng, Tensor};

mod common;

fn main() -> llm::Result<()> {
    let cpu = Device::cpu();

    // ## 1. The layer pattern
    let s = common::real_config("smollm3-3b.json")?;
    let a = Anatomy::of(&s);
    common::print_anatomy("SmolLM3-3B", &a);
    let pattern: String = s.layers.iter().map(|l| if l.rope { 'R' } else { 'N' }).collect();
    println!("  layers (R = RoPE, N = NoPE): {pattern}");
    let nope: Vec<usize> = s.layers.iter().enumerate().filter(|(_, l)| !l.rope).map(|(i, _)| i).collect();
    println!("  NoPE layers: {nope:?}");

    // ## 2. What RoPE does to a score, and NoPE does not
    // RoPE rotates q at position m and k at position n so that q.k depends only on m - n. A NoPE
    // layer compares the raw vectors: the score is the same at any distance.
    let mut rng = Rng::new(0);
    let hd = 16;
    let rope = Rope::new(hd, s.rope.global.theta, &RopeScaling::None, false);
    let q = Tensor::randn(0.0, 1.0, [hd], DType::F32, &mut rng, &cpu)?;
    let k = Tensor::randn(0.0, 1.0, [hd], DType::F32, &mut rng, &cpu)?;
    let at = |v: &Tensor, pos: usize| -> llm::Result<Tensor> {
        Ok(rope.apply(&Var::constant(v.reshape([1, 1, 1, hd])?), pos)?.value().reshape([hd])?)
    };
    let dot = |a: &Tensor, b: &Tensor| -> llm::Result<f32> { Ok(a.mul(b)?.sum_all()?.to_scalar::<f32>()?) };
    println!("\nthe same query and key vectors placed at positions (m, n):");
    for (m, n) in [(5usize, 2usize), (105, 102), (5, 0), (1000, 3)] {
        println!(
            "  m = {m:>4}, n = {n:>3} (distance {:>3}): RoPE layer score {:>7.3}, NoPE layer score {:>7.3}",
            m - n,
            dot(&at(&q, m)?, &at(&k, n)?)?,
            dot(&q, &k)?
        );
    }

    // ## 3. Tied embeddings and GQA
    println!(
        "\nthe {} x {} embedding ({}) doubles as the output head: untied would add {:.0}% to the model",
        s.vocab_size,
        s.hidden_size,
        human_count(a.total.embedding),
        100.0 * a.total.embedding as f64 / a.total_params() as f64
    );
    println!(
        "GQA {}:{}: {} kv heads x {} dims x 2 (K and V) x {} layers = {} numbers per token",
        s.num_attention_heads,
        s.num_key_value_heads,
        s.num_key_value_heads,
        s.head_dim,
        s.num_hidden_layers,
        a.kv_numbers_per_token.0
    );

    // ## 4. The tiny checkpoint
    let loaded = common::run_fixture("smollm3")?;
    common::print_layers(&loaded.model);

    // ## 5. Beside Qwen3-0.6B: the same GQA pre-norm shape, QK-norm instead of NoPE
    let q3 = common::real_config("qwen3-0.6b.json")?;
    let aq = Anatomy::of(&q3);
    println!("\n{:<28} {:>14} {:>14}", "", "SmolLM3-3B", "Qwen3-0.6B");
    let row = |name: &str, x: String, y: String| println!("{name:<28} {x:>14} {y:>14}");
    row("parameters", human_count(a.total_params()), human_count(aq.total_params()));
    row("layers", s.num_hidden_layers.to_string(), q3.num_hidden_layers.to_string());
    row(
        "heads : kv heads",
        format!("{}:{}", s.num_attention_heads, s.num_key_value_heads),
        format!("{}:{}", q3.num_attention_heads, q3.num_key_value_heads),
    );
    row(
        "NoPE layers",
        s.layers.iter().filter(|l| !l.rope).count().to_string(),
        q3.layers.iter().filter(|l| !l.rope).count().to_string(),
    );
    row("QK-norm", "none".into(), "per head".into());
    row("rope_theta", format!("{:e}", s.rope.global.theta), format!("{:e}", q3.rope.global.theta));
    row("max positions", s.max_position_embeddings.to_string(), q3.max_position_embeddings.to_string());
    row(
        "KV cache per token (bf16)",
        human_bytes(a.kv_cache_bytes_per_token(DType::BF16)),
        human_bytes(aq.kv_cache_bytes_per_token(DType::BF16)),
    );
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    main()
}
