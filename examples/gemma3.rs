//! # Gemma 3: five local layers to one global, and norms on both sides
//!
//! Run it: `cargo run --release --example gemma3`
//! Picture: `target/examples-out/gemma3/masks.png` (causal and sliding-window masks).
//!
//! Gemma 3 (Gemma Team, arXiv 2503.19786) keeps long contexts cheap by letting five of every
//! six layers attend only to the last `sliding_window` = 1024 tokens, so only every sixth layer's
//! cache grows with the context. The rest of its recipe is about keeping activations tame:
//! a norm before *and* after each sub-layer (the "sandwich"), RMSNorm weights stored as offsets
//! from one (`(1 + w)`), per-head QK-norm, and embeddings multiplied by `sqrt(hidden_size)`.
//! All numbers below come from `llm/configs/gemma-3-27b.json`; the last part runs the tiny
//! checkpoint and sets Gemma 3 beside Mistral Small 3.1, a model of similar size without windows.

use autograd::Var;
use llm::anatomy::{Anatomy, human_bytes};
use llm::config::LayerAttention;
use llm::plot::Heatmaps;
use nn::attention::MaskKind;
use nn::rope::Rope;
use nn::{Init, RmsNorm};
use tensor::{DType, Device, Tensor};

mod common;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("gemma3", quick)?;
    let cpu = Device::cpu();

    // ## 1. The layer pattern
    // Layer i is global (`full_attention`) iff (i + 1) % 6 == 0; the others slide.
    let g = common::real_config("gemma-3-27b.json")?;
    let pattern: String =
        g.layers.iter().map(|l| if l.attention == LayerAttention::Full { 'G' } else { 'l' }).collect();
    let globals = pattern.matches('G').count();
    println!("Gemma 3 27B, {} layers (l = window {}, G = global):", g.num_hidden_layers, g.sliding_window.unwrap_or(0));
    println!("  {pattern}");
    println!("  {globals} global, {} local", g.num_hidden_layers - globals);

    // ## 2. Two RoPE bases
    // Local layers only ever see 1024 positions, so they keep the classic base 10,000
    // (`rope_local_base_freq`); global layers use base 1,000,000 with linear scaling by 8
    // (`rope_scaling`): the Gemma 3 report pre-trains at 32k tokens, then rescales RoPE by 8 to
    // reach 128k. The slowest pair's wavelength says how far apart two positions can be before
    // the angle wraps around.
    let hd = g.head_dim;
    let local = g.rope.local.as_ref().expect("Gemma 3 has a local rope");
    for (name, s) in [("local", local), ("global", &g.rope.global)] {
        let rope = Rope::new(hd, s.theta, &s.scaling, false);
        let slowest = 2.0 * std::f64::consts::PI / rope.inv_freq.last().copied().unwrap_or(1.0);
        println!(
            "  {name:<6} theta {:>9}, scaling {:?}: fastest pair turns every {:.1} positions, slowest every {:.3e}",
            s.theta,
            s.scaling,
            2.0 * std::f64::consts::PI / rope.inv_freq[0],
            slowest
        );
    }

    // ## 3. The (1 + w) RMSNorm and the embedding scale
    // Gemma stores norm weights zero-centred: a fresh norm multiplies by (1 + 0) = 1. Loading
    // Gemma weights into a Llama-style norm would multiply by ~0 instead.
    let mut init = Init::new(0, &cpu);
    let x = Var::constant(Tensor::from_vec(vec![1.0f32, -2.0, 3.0, -4.0], [1, 4], &cpu)?);
    let gemma_norm = RmsNorm::gemma(4, 1e-6, &mut init)?;
    println!(
        "\nRMSNorm of {:?}: Gemma's (1 + w) with w = 0 -> {:?}",
        x.value().to_vec::<f32>()?,
        gemma_norm.forward(&x)?.value().to_vec::<f32>()?.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>()
    );
    // Embeddings are multiplied by sqrt(hidden) in the embedding's dtype, so bf16 rounds it.
    let scale = (g.hidden_size as f64).sqrt();
    let in_bf16 = Tensor::full(scale, (), DType::BF16, &cpu)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    println!(
        "embedding scale sqrt({}) = {scale:.4}, {in_bf16} in bf16; the tied output head is not scaled",
        g.hidden_size
    );
    println!(
        "attention scale: query_pre_attn_scalar {}^-0.5 = {:.6} (not head_dim {hd}^-0.5 = {:.6})",
        g.query_pre_attn_scalar.unwrap_or(0.0),
        g.attention_scale(),
        (hd as f64).powf(-0.5)
    );

    // ## 4. What the window saves: the KV cache at 32k and 128k tokens
    let a = Anatomy::of(&g);
    let (full, sliding, _) = a.kv_numbers_per_token;
    println!("\nKV cache in bf16 (GQA {}:{} heads of {hd}):", g.num_attention_heads, g.num_key_value_heads);
    for ctx in [32 * 1024u64, 128 * 1024] {
        let without = (full + sliding) * ctx * 2;
        let with = a.kv_cache_bytes(ctx as usize, DType::BF16);
        println!(
            "  {:>4}k tokens: every layer global {:>10}, 5:1 with window {:>10} ({:.1}x smaller)",
            ctx / 1024,
            human_bytes(without),
            human_bytes(with),
            without as f64 / with as f64
        );
    }

    // ## 5. The masks (the picture)
    let t = 16;
    let grid = |m: MaskKind| -> Vec<Vec<f64>> {
        m.grid(t).into_iter().map(|row| row.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect()).collect()
    };
    let path = Heatmaps::new("Which keys each query sees (16 tokens)", "key position", "query position")
        .with("global layer: causal", grid(MaskKind::Causal))
        .with("local layer: sliding window 4", grid(MaskKind::Sliding { window: 4 }))
        .save_png(out.join("masks.png"))?;
    println!("wrote {}", path.display());

    // ## 6. The tiny checkpoint: sandwich wiring, and caches that stop growing
    // Its window is 8 tokens. Decoding token by token, the local layers' caches keep at most
    // the window; the global layer's cache holds every position.
    let loaded = common::run_fixture("gemma3")?;
    common::print_layers(&loaded.model);
    println!(
        "  each layer: h = x + post_attention_norm(attn(input_norm(x))); out = h + post_ffn_norm(mlp(pre_ffn_norm(h)))"
    );
    let mut caches = loaded.model.new_caches();
    let steps = 24;
    autograd::no_grad(|| -> llm::Result<()> {
        for pos in 0..steps {
            let id = Tensor::from_vec(vec![(pos * 7 % 200) as u32], [1, 1], &cpu)?;
            loaded.model.forward(&id, pos, Some(&mut caches), false)?;
        }
        Ok(())
    })?;
    let held: Vec<usize> = caches.iter().map(|c| c.len()).collect();
    println!("  positions each layer's cache holds after {steps} decoded tokens: {held:?}");

    // ## 7. Beside Mistral Small 3.1 (24B): similar size, no window, pre-norm
    let m = common::real_config("mistral-small-3.1-24b.json")?;
    let am = Anatomy::of(&m);
    println!();
    common::print_anatomy("Gemma 3 27B", &a);
    common::print_anatomy("Mistral Small 3.1 24B", &am);
    println!(
        "  rope theta: Gemma global {:e} / local {:e}; Mistral {:e}. Vocabulary {} vs {}; tied embeddings {} vs {}",
        g.rope.global.theta,
        local.theta,
        m.rope.global.theta,
        g.vocab_size,
        m.vocab_size,
        g.tie_word_embeddings,
        m.tie_word_embeddings
    );
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
