//! # Mistral Small 3.1: the plain decoder, with a very high RoPE base
//!
//! Run it: `cargo run --release --example mistral_small`
//!
//! Mistral Small 3.1 24B (Mistral AI, March 2025; text decoder of
//! `llm/configs/mistral-small-3.1-24b.json`) is the reference point for the others: a Llama-style
//! pre-norm decoder with grouped-query attention (32 query heads sharing 8 kv heads), SwiGLU,
//! no QK-norm, no sliding window, no experts. Two details: `head_dim` is 128, not
//! hidden / heads = 160, and `rope_theta` is 1e9, so the slowest rotary pairs barely turn over
//! the whole 128k context. The notebook ends beside Gemma 3 27B, a model of similar size that
//! chose local attention instead.

use llm::anatomy::{Anatomy, human_bytes, human_count};
use nn::rope::{Rope, RopeScaling};
use tensor::DType;

mod common;

fn main() -> llm::Result<()> {
    // ## 1. The shapes
    let m = common::real_config("mistral-small-3.1-24b.json")?;
    let a = Anatomy::of(&m);
    common::print_anatomy("Mistral Small 3.1 24B", &a);
    println!(
        "  q_proj {} -> {} ({} heads x head_dim {}, not {} / {} = {}); k_proj and v_proj {} -> {}",
        m.hidden_size,
        m.num_attention_heads * m.head_dim,
        m.num_attention_heads,
        m.head_dim,
        m.hidden_size,
        m.num_attention_heads,
        m.hidden_size / m.num_attention_heads,
        m.hidden_size,
        m.num_key_value_heads * m.head_dim
    );
    println!("  feed-forward: SwiGLU {} -> {} -> {}", m.hidden_size, m.dense_intermediate_size, m.hidden_size);

    // ## 2. What rope_theta = 1e9 means
    // Pair i rotates by p * theta^(-2i/d) at position p; its wavelength is 2 pi theta^(2i/d).
    // How many of the 64 pairs complete less than one turn over the 131072-token context? Those
    // can tell any two positions apart without ambiguity; a larger base gives more of them.
    let ctx = m.max_position_embeddings as f64;
    println!("\nrotary pairs of a {}-dim head that turn less than once in {} tokens:", m.head_dim, ctx);
    for theta in [1e4, 1e6, m.rope.global.theta] {
        let rope = Rope::new(m.head_dim, theta, &RopeScaling::None, false);
        let slow = rope.inv_freq.iter().filter(|&&f| 2.0 * std::f64::consts::PI / f > ctx).count();
        let longest = 2.0 * std::f64::consts::PI / rope.inv_freq.last().copied().unwrap_or(1.0);
        println!(
            "  theta {theta:>8.0e}: {slow:>2} of {} pairs; longest wavelength {longest:.2e} tokens",
            rope.inv_freq.len()
        );
    }

    // ## 3. The tiny checkpoint (8 query heads on 2 kv heads)
    let loaded = common::run_fixture("mistral_small")?;
    common::print_layers(&loaded.model);

    // ## 4. Beside Gemma 3 27B
    let g = common::real_config("gemma-3-27b.json")?;
    let ag = Anatomy::of(&g);
    println!("\n{:<30} {:>18} {:>22}", "", "Mistral Small 3.1", "Gemma 3 27B");
    let row = |name: &str, x: String, y: String| println!("{name:<30} {x:>18} {y:>22}");
    row("parameters", human_count(a.total_params()), human_count(ag.total_params()));
    row(
        "layers x hidden",
        format!("{} x {}", m.num_hidden_layers, m.hidden_size),
        format!("{} x {}", g.num_hidden_layers, g.hidden_size),
    );
    row("attention", a.attention_kind.clone(), ag.attention_kind.clone());
    row("norms", a.norm_placement.into(), ag.norm_placement.into());
    row("window", "none".into(), format!("{} on 5 of 6 layers", g.sliding_window.unwrap_or(0)));
    row(
        "rope_theta",
        format!("{:e}", m.rope.global.theta),
        format!("{:e} / {:e}", g.rope.global.theta, g.rope.local.as_ref().map_or(0.0, |l| l.theta)),
    );
    row("vocabulary", m.vocab_size.to_string(), g.vocab_size.to_string());
    row(
        "KV per token (bf16)",
        human_bytes(a.kv_cache_bytes_per_token(DType::BF16)),
        human_bytes(ag.kv_cache_bytes_per_token(DType::BF16)),
    );
    for ctx in [32 * 1024, 128 * 1024] {
        row(
            &format!("KV cache at {}k tokens", ctx / 1024),
            human_bytes(a.kv_cache_bytes(ctx, DType::BF16)),
            human_bytes(ag.kv_cache_bytes(ctx, DType::BF16)),
        );
    }
    row(
        "FLOPs per token at 32k",
        human_count(a.flops_per_token(32 * 1024)),
        human_count(ag.flops_per_token(32 * 1024)),
    );
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    main()
}
