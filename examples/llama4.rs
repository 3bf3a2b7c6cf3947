//! # Llama 4: chunked attention, NoPE layers, and one expert per token
//!
//! Run it: `cargo run --release --example llama4`
//! Picture: `target/examples-out/llama4/masks.png` (causal, chunked and sliding-window masks).
//!
//! Llama 4 Maverick (Meta, April 2025; `llm/configs/llama-4-maverick.json`, text decoder) mixes
//! two kinds of attention layer. Three of every four use RoPE and attend only inside blocks of
//! `attention_chunk_size` = 8192 tokens; every fourth has no position encoding at all (NoPE,
//! `no_rope_layers`) and sees the whole context, with queries sharpened at long range
//! (`attn_temperature_tuning`). Feed-forward layers alternate between dense and a mixture of 128
//! experts (`interleave_moe_layer_step` = 2) where each token takes exactly one routed expert
//! plus a shared one. The notebook ends by setting its MoE beside DeepSeek-V3's.

use autograd::Var;
use llm::anatomy::{Anatomy, human_bytes, human_count};
use llm::config::LayerAttention;
use llm::plot::Heatmaps;
use nn::attention::MaskKind;
use nn::moe::{Experts, MoeRouter, RouterKind, SparseMoe};
use nn::{GatedFeedForward, Init};
use tensor::{DType, Device, GluActivation, Rng, Tensor};

mod common;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("llama4", quick)?;
    let cpu = Device::cpu();

    // ## 1. The layer plan
    let c = common::real_config("llama-4-maverick.json")?;
    println!(
        "Llama 4 Maverick, {} layers: attention / positions / feed-forward of the first eight",
        c.num_hidden_layers
    );
    for (i, l) in c.layers.iter().take(8).enumerate() {
        let attention = match l.attention {
            LayerAttention::Chunked => format!("chunked {}", c.attention_chunk_size.unwrap_or(0)),
            LayerAttention::Full => "full causal".to_string(),
            LayerAttention::Sliding => "sliding".to_string(),
        };
        let ffn = if l.moe { "MoE 128 experts, top-1 + shared" } else { "dense SwiGLU 16384" };
        println!("  layer {i}: {attention:<13} {:<5} {ffn}", if l.rope { "RoPE" } else { "NoPE" });
    }
    let nope = c.layers.iter().filter(|l| !l.rope).count();
    println!("  ... {nope} NoPE layers in all, {} MoE layers", c.moe_layer_count());

    // ## 2. Chunked attention, and what it does to the cache
    // A chunked layer's query at position i sees keys j with floor(i / 8192) == floor(j / 8192)
    // and j <= i: not a sliding window. Right after a chunk boundary a token sees almost
    // nothing locally; the NoPE layers, which see everything, carry information across chunks.
    let t = 16;
    let grid = |m: MaskKind| -> Vec<Vec<f64>> {
        m.grid(t).into_iter().map(|row| row.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect()).collect()
    };
    let path = Heatmaps::new("Which keys each query sees (16 tokens)", "key position", "query position")
        .with("NoPE layer: causal", grid(MaskKind::Causal))
        .with("RoPE layer: chunks of 4", grid(MaskKind::Chunked { chunk: 4 }))
        .with("for contrast: sliding window 4", grid(MaskKind::Sliding { window: 4 }))
        .save_png(out.join("masks.png"))?;
    println!("wrote {}", path.display());
    let a = Anatomy::of(&c);
    let (full, _, chunked) = a.kv_numbers_per_token;
    for ctx in [128 * 1024u64, 1024 * 1024] {
        println!(
            "  KV cache (bf16) at {:>4}k tokens: {:>10} with chunks, {:>10} if every layer were full",
            ctx / 1024,
            human_bytes(a.kv_cache_bytes(ctx as usize, DType::BF16)),
            human_bytes((full + chunked) * ctx * 2)
        );
    }

    // ## 3. Attention temperature on NoPE layers
    // With no positions, a NoPE query's softmax spreads ever thinner as the context grows.
    // Llama 4 multiplies NoPE queries by 1 + attn_scale * ln(1 + floor((p + 1) / floor_scale)).
    let tuning = c.temperature_tuning.expect("Maverick tunes the temperature");
    println!("\nquery scale on NoPE layers (attn_scale {}, floor_scale {}):", tuning.attn_scale, tuning.floor_scale);
    for p in [0usize, 8190, 8191, 65_535, 1_048_575] {
        println!("  position {p:>9}: x{:.4}", tuning.factor(p));
    }

    // ## 4. The MoE layer: top-1 by logit, the weight scales the expert's *input*
    // `Llama4Router`: the top logit picks the expert and sigmoid(logit) multiplies the token
    // *before* the expert. Since experts are non-linear, Expert(s x) != s Expert(x). The shared
    // expert sees the unscaled token and is always added.
    let (experts, hidden) = (8, 32);
    let mut init = Init::new(3, &cpu);
    let layer = SparseMoe {
        router: MoeRouter::new(RouterKind::Top1SigmoidInput, experts, 1, hidden, &mut init)?,
        experts: Experts::new(experts, hidden, 64, GluActivation::Silu, &mut init)?,
        shared: Some(GatedFeedForward::new(hidden, 64, GluActivation::Silu, &mut init)?),
        router_name: "router",
        shared_name: "shared_expert",
    };
    let mut rng = Rng::new(0);
    let x = Var::constant(Tensor::randn(0.0, 1.0, [1, 5, hidden], DType::F32, &mut rng, &cpu)?);
    let y = layer.forward(&x)?;
    let flat = x.reshape([5, hidden])?;
    let routing = layer.router.route(&flat)?;
    let ids = routing.ids.reshape([5])?;
    let s = routing.weights.reshape([5, 1])?;
    let by_hand =
        layer.experts.forward(&flat.mul(&s)?, &ids)?.add(&layer.shared.as_ref().expect("shared").forward(&flat)?)?;
    let output_scaled = layer.experts.forward(&flat, &ids)?.mul(&s)?;
    let diff =
        |a: &Var, b: &Var| -> llm::Result<f32> { Ok(a.value().sub(&b.value())?.abs()?.max_all()?.to_scalar::<f32>()?) };
    println!(
        "\nMoE layer x {:?} -> {:?}; experts {:?}, weights {:?}",
        x.dims(),
        y.dims(),
        ids.to_vec::<u32>()?,
        s.value().to_vec::<f32>()?.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>()
    );
    println!("  shared(x) + Expert(s x) matches the layer: max diff {:.1e}", diff(&by_hand, &y.reshape([5, hidden])?)?);
    let shared_only = layer.shared.as_ref().expect("shared").forward(&flat)?;
    println!(
        "  scaling the output instead would differ by up to {:.3}",
        diff(&output_scaled.add(&shared_only)?, &by_hand)?
    );

    // ## 5. Beside DeepSeek-V3's MoE
    let d = common::real_config("deepseek-v3.json")?;
    let ad = Anatomy::of(&d);
    let (mc, md) = (c.moe.expect("experts"), d.moe.expect("experts"));
    println!("\n{:<36} {:>20} {:>20}", "", "Llama 4 Maverick", "DeepSeek-V3");
    let row = |name: &str, a: String, b: String| println!("{name:<36} {a:>20} {b:>20}");
    row("router", "top-1 sigmoid".into(), "sigmoid+bias, groups".into());
    row(
        "routed experts / per token",
        format!("{} / {}", mc.num_experts, mc.top_k),
        format!("{} / {}", md.num_experts, md.top_k),
    );
    row(
        "expert width / shared width",
        format!("{} / {}", mc.expert_intermediate_size, mc.shared_intermediate_size.unwrap_or(0)),
        format!("{} / {}", md.expert_intermediate_size, md.shared_intermediate_size.unwrap_or(0)),
    );
    row(
        "MoE layers",
        format!("{} of {}", c.moe_layer_count(), c.num_hidden_layers),
        format!("{} of {}", d.moe_layer_count(), d.num_hidden_layers),
    );
    row("total parameters", human_count(a.total_params()), human_count(ad.total_params()));
    row("active per token", human_count(a.active_params()), human_count(ad.active_params()));
    row("routed experts: total", human_count(a.total.routed_experts), human_count(ad.total.routed_experts));
    row("routed experts: active", human_count(a.active.routed_experts), human_count(ad.active.routed_experts));
    row("shared experts (always active)", human_count(a.total.shared_experts), human_count(ad.total.shared_experts));
    row(
        "KV cache per token (bf16)",
        human_bytes(a.kv_cache_bytes_per_token(DType::BF16)),
        human_bytes(ad.kv_cache_bytes_per_token(DType::BF16)),
    );

    // ## 6. The tiny checkpoint (chunks of 8, NoPE on layer 3, MoE every 2nd layer)
    let loaded = common::run_fixture("llama4")?;
    common::print_layers(&loaded.model);
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
