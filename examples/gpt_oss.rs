//! # gpt-oss: attention sinks, a sliding window on every other layer, clamped-SwiGLU experts
//!
//! Run it: `cargo run --release --example gpt_oss`
//!
//! gpt-oss (OpenAI, 2025; 20b and 120b) is a pre-norm GQA decoder whose every feed-forward block
//! is a mixture of experts. It differs from the other MoE decoders here in small places that all
//! change the numbers: each attention head has a learned *sink*, a logit that joins the softmax
//! and reads no value; every other layer attends to a window of 128 tokens; q/k/v/o, the router
//! and the experts all have biases; the router takes a softmax over just the 4 logits it chose;
//! the experts' SwiGLU is clamped (gate from above, the linear part both ways) and shifted by one.
//! Configs: `llm/configs/gpt-oss-20b.json` and `gpt-oss-120b.json`; the end compares
//! Qwen3-235B-A22B.

use autograd::Var;
use llm::anatomy::{Anatomy, human_bytes, human_count};
use nn::Init;
use nn::moe::{MoeRouter, RouterKind, SwigluClamp};
use nn::rope::Rope;
use tensor::{AttentionMask, AttentionSpec, DType, Device, Rng, Tensor};

mod common;

fn main() -> llm::Result<()> {
    let cpu = Device::cpu();

    // ## 1. The two releases
    let small = common::real_config("gpt-oss-20b.json")?;
    let big = common::real_config("gpt-oss-120b.json")?;
    let (a20, a120) = (Anatomy::of(&small), Anatomy::of(&big));
    common::print_anatomy("gpt-oss-20b", &a20);
    common::print_anatomy("gpt-oss-120b", &a120);
    for (name, a) in [("20b", &a20), ("120b", &a120)] {
        println!(
            "  {name}: routed experts are {:.1}% of the parameters; the embedding and head {}, {:.0}% of what a token uses",
            100.0 * a.total.routed_experts as f64 / a.total_params() as f64,
            human_count(a.total.embedding + a.total.head),
            100.0 * (a.active.embedding + a.active.head) as f64 / a.active_params() as f64
        );
    }

    // ## 2. Attention sinks
    // Scores of one query row get one more column, the head's sink s; the softmax runs over the
    // widened row and the sink's share is dropped. With values all one, the output is the
    // weight the keys kept: 1 without a sink, less with one, near 0 when the sink dominates.
    let mut rng = Rng::new(0);
    let (heads, t, d) = (4, 6, 8);
    let q = Tensor::randn(0.0, 1.0, [1, heads, t, d], DType::F32, &mut rng, &cpu)?;
    let k = Tensor::randn(0.0, 1.0, [1, 1, t, d], DType::F32, &mut rng, &cpu)?;
    let ones = Tensor::ones([1, 1, t, 1], DType::F32, &cpu)?;
    let sinks = Tensor::from_vec(vec![-10.0f32, 0.0, 2.0, 6.0], [heads], &cpu)?;
    let spec = AttentionSpec { scale: (d as f64).powf(-0.5), mask: AttentionMask::causal(0), softcap: None };
    let kept = Tensor::attention_with_sinks(&q, &k, &ones, Some(&sinks), &spec)?;
    let kept: Vec<f32> = kept.reshape([heads, t])?.to_vec()?;
    println!("\nAttention weight left for the keys, per query position (sink logit per head):");
    for h in 0..heads {
        let row: Vec<String> = kept[h * t..(h + 1) * t].iter().map(|v| format!("{v:.3}")).collect();
        println!("  head {h} (sink {:>5.1}): {}", sinks.to_vec::<f32>()?[h], row.join("  "));
    }
    println!("  a low sink changes nothing; a high one lets the head attend to (almost) no token at all");

    // ## 3. The sliding window on every other layer
    let sliding = small.layers.iter().filter(|l| l.attention == llm::config::LayerAttention::Sliding).count();
    println!(
        "\n{} of {} layers see the last {} tokens; at 128k context the cache is {} instead of {} with every layer full",
        sliding,
        small.num_hidden_layers,
        small.sliding_window.unwrap_or(0),
        human_bytes(a20.kv_cache_bytes(131_072, DType::BF16)),
        human_bytes(a20.kv_cache_bytes_per_token(DType::BF16) * 131_072)
    );

    // ## 4. YaRN
    let rope = llm::models::recipe::rope_for(&small, &small.layers[0], small.head_dim).expect("rope");
    let base = Rope::new(small.head_dim, small.rope.global.theta, &nn::rope::RopeScaling::None, false);
    let wavelength = |f: f64| 2.0 * std::f64::consts::PI / f;
    println!(
        "YaRN x32 from 4,096 positions: cos and sin scaled by {:.4} (0.1 ln 32 + 1); longest wavelength {:.0} -> {:.0} positions, shortest {:.1} kept",
        rope.attention_factor,
        wavelength(*base.inv_freq.last().expect("dims")),
        wavelength(*rope.inv_freq.last().expect("dims")),
        wavelength(rope.inv_freq[0])
    );

    // ## 5. The clamped SwiGLU
    // SwiGLU is g sigmoid(g) * u. gpt-oss uses g sigmoid(1.702 g) (GELU's sigmoid form), clamps
    // g at 7 from above only, u to [-7, 7], and multiplies by (u + 1) rather than u.
    let clamp = SwigluClamp { alpha: small.swiglu_clamp.expect("clamp").alpha, limit: 7.0 };
    println!("\n  gate    up   plain SwiGLU   clamped (gpt-oss)");
    for (g, u) in [(-3.0f32, 1.0f32), (0.5, 0.0), (2.0, -1.0), (10.0, 1.0), (2.0, 20.0), (2.0, -20.0)] {
        let gv = Var::constant(Tensor::from_vec(vec![g], [1], &cpu)?);
        let uv = Var::constant(Tensor::from_vec(vec![u], [1], &cpu)?);
        let plain = gv.silu()?.mul(&uv)?.value().to_vec::<f32>()?[0];
        let clamped = clamp.apply(&gv, &uv)?.value().to_vec::<f32>()?[0];
        println!("  {g:>5.1} {u:>5.1} {plain:>14.3} {clamped:>19.3}");
    }

    // ## 6. The router: a bias, the top 4 logits, a softmax over those 4 only
    let (experts, hidden) = (32, 16);
    let x = Var::constant(Tensor::randn(0.0, 1.0, [1, hidden], DType::F32, &mut rng, &cpu)?);
    let router = MoeRouter::new(RouterKind::BiasedSoftmaxOverChosen, experts, 4, hidden, &mut Init::new(3, &cpu))?;
    let r = router.route(&x)?;
    let w: Vec<f32> = r.weights.value().to_vec()?;
    let all = x.linear(&router.weight)?.add(router.bias.as_ref().expect("bias"))?.softmax(-1)?;
    let ids: Vec<u32> = r.ids.to_vec()?;
    let all: Vec<f32> = all.value().to_vec()?;
    println!(
        "\nrouter: experts {ids:?}, weights {:?} (sum {:.3}); the same experts' share of a softmax over all 32: {:?}",
        w.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>(),
        w.iter().sum::<f32>(),
        ids.iter().map(|&i| format!("{:.3}", all[i as usize])).collect::<Vec<_>>()
    );

    // ## 7. The tiny checkpoint
    let loaded = common::run_fixture("gpt_oss")?;
    common::print_layers(&loaded.model);

    // ## 8. Beside Qwen3-235B-A22B
    let q3 = common::real_config("qwen3-235b-a22b.json")?;
    let aq = Anatomy::of(&q3);
    println!("\n{:<28} {:>16} {:>16}", "", "gpt-oss-120b", "Qwen3-235B-A22B");
    let row = |name: &str, a: String, b: String| println!("{name:<28} {a:>16} {b:>16}");
    let moe = |c: &llm::config::ModelConfig| {
        c.moe.map_or("dense".to_string(), |m| format!("{} / top {}", m.num_experts, m.top_k))
    };
    row(
        "layers x hidden",
        format!("{} x {}", big.num_hidden_layers, big.hidden_size),
        format!("{} x {}", q3.num_hidden_layers, q3.hidden_size),
    );
    row(
        "heads : kv heads",
        format!("{}:{}", big.num_attention_heads, big.num_key_value_heads),
        format!("{}:{}", q3.num_attention_heads, q3.num_key_value_heads),
    );
    row("experts / per token", moe(&big), moe(&q3));
    row("attention sinks", "yes".into(), "no".into());
    row("parameters", human_count(a120.total_params()), human_count(aq.total_params()));
    row("active per token", human_count(a120.active_params()), human_count(aq.active_params()));
    row(
        "KV cache at 128k (bf16)",
        human_bytes(a120.kv_cache_bytes(131_072, DType::BF16)),
        human_bytes(aq.kv_cache_bytes(131_072, DType::BF16)),
    );
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    main()
}
