//! # DeepSeek-V3: latent attention and a sigmoid-routed mixture of experts
//!
//! Run it: `cargo run --release --example deepseek_v3`
//! Pictures: `target/examples-out/deepseek_v3/kv_cache.png` (cache memory against context for
//! MHA, GQA, MLA, a sliding window and Gemma 3's mix) and `expert_load.png` (how evenly three
//! routers spread random tokens over experts).
//!
//! DeepSeek-V3 (DeepSeek-AI, arXiv 2412.19437) is 671B parameters of which about 37B work on
//! each token. Two ideas carry it, and this notebook takes them in turn:
//! - multi-head latent attention (MLA, from DeepSeek-V2, arXiv 2405.04434): keys and values are
//!   rebuilt from one small latent vector per token, so the KV cache holds 576 numbers per token
//!   and layer instead of tens of thousands;
//! - DeepSeekMoE with auxiliary-loss-free balancing: 256 small experts chosen by sigmoid scores
//!   plus a per-expert correction bias, limited to 4 of 8 groups, and one always-on shared expert.
//!
//! At the end it sets these numbers beside its sibling Kimi K2, computed from both configs.

use autograd::Var;
use llm::anatomy::{Anatomy, Parameters, human_bytes, human_count};
use llm::plot::{BarChart, LineChart, Series};
use nn::attention::{KvCache, MaskKind, MultiHeadLatentAttention};
use nn::moe::{Experts, MoeRouter, RouterKind, SparseMoe};
use nn::rope::{RopeScaling, yarn_get_mscale};
use nn::{GatedFeedForward, Init};
use tensor::{DType, Device, GluActivation, Rng, Tensor};

mod common;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("deepseek_v3", quick)?;
    let cpu = Device::cpu();

    // ## 1. The real model, from its config alone
    // `llm/configs/deepseek-v3.json` is the released config.json; `Anatomy` counts parameters the
    // way DeepSeek's model card does (the "37B activated" includes embedding and output head).
    let v3 = common::real_config("deepseek-v3.json")?;
    let k2 = common::real_config("kimi-k2.json")?;
    let (a3, ak) = (Anatomy::of(&v3), Anatomy::of(&k2));
    common::print_anatomy("DeepSeek-V3", &a3);
    print_components(&a3.total, &a3.active);

    // ## 2. Multi-head latent attention: what the cache holds
    // Each layer compresses the token into `kv_lora_rank` = 512 numbers (`kv_a_proj_with_mqa`)
    // plus one 64-dim rotary key shared by all heads (`qk_rope_head_dim`, the "decoupled RoPE
    // key": RoPE cannot be folded into a latent that is shared across positions, so position
    // lives in a separate small key). Only those 576 numbers are cached; `kv_b_proj` rebuilds
    // 128 heads of 128-dim keys and values from the latent when they are needed.
    let mla = v3.mla.expect("DeepSeek-V3 uses MLA");
    let (heads, layers) = (v3.num_attention_heads, v3.num_hidden_layers);
    let qk_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim;
    let per_layer_mla = mla.kv_lora_rank + mla.qk_rope_head_dim;
    // The same attention without the latent: every head caches its 192-dim key and 128-dim value
    // (MHA), or 8 shared kv heads do (GQA with 16 query heads per kv head).
    let per_layer_mha = heads * (qk_dim + mla.v_head_dim);
    let gqa_kv_heads = 8;
    let per_layer_gqa = gqa_kv_heads * (qk_dim + mla.v_head_dim);
    println!("\nKV cache per token and layer, {heads} heads of {qk_dim}-dim keys and {}-dim values:", mla.v_head_dim);
    let bf16 = 2u64;
    for (name, n) in [("MHA", per_layer_mha), ("GQA, 8 kv heads", per_layer_gqa), ("MLA", per_layer_mla)] {
        let per_token = (n * layers) as u64 * bf16;
        println!(
            "  {name:<16} {n:>6} numbers/layer -> {:>10} per token over {layers} layers, {:>10} at 128k tokens ({:.0}x MLA)",
            human_bytes(per_token),
            human_bytes(per_token * 128 * 1024),
            n as f64 / per_layer_mla as f64
        );
    }
    assert_eq!(a3.kv_numbers_per_token.0, (per_layer_mla * layers) as u64);

    // The softmax scale: queries and keys are 192-dim, and YaRN's context extension (factor 40
    // over the original 4096 positions, `rope_scaling`) multiplies it by mscale^2.
    let factor = 40.0;
    let mscale = yarn_get_mscale(factor, 1.0);
    println!(
        "softmax scale: 192^-0.5 x mscale^2 = {:.4} x {:.4} = {:.6} (the config's own: {:.6})",
        (qk_dim as f64).powf(-0.5),
        mscale * mscale,
        (qk_dim as f64).powf(-0.5) * mscale * mscale,
        mla_scale(&v3)
    );

    // ## 3. The picture: cache memory against context length
    // MHA, GQA and MLA at DeepSeek-V3's dims, and Gemma 3 27B's three options: all layers global,
    // all layers in a 1024-token window, and its real 5 local : 1 global mix.
    let gemma = common::real_config("gemma-3-27b.json")?;
    let ag = Anatomy::of(&gemma);
    let (g_full, g_sliding, _) = ag.kv_numbers_per_token;
    let window = gemma.sliding_window.unwrap_or(1024) as u64;
    let gib = |numbers: u64| (numbers * bf16) as f64 / (1u64 << 30) as f64;
    let contexts: Vec<u64> = (0..=28).map(|i| (1024.0 * 2f64.powf(i as f64 / 4.0)).round() as u64).collect();
    let series = |name: &str, numbers_at: &dyn Fn(u64) -> u64| {
        Series::new(name, contexts.iter().map(|&c| (c as f64, gib(numbers_at(c)))).collect())
    };
    let chart = LineChart::new("KV cache (bf16) against context", "context (tokens)", "GiB")
        .log_x()
        .log_y()
        .with(series("DeepSeek-V3 dims, MHA", &|c| (per_layer_mha * layers) as u64 * c))
        .with(series("DeepSeek-V3 dims, GQA 8 kv heads", &|c| (per_layer_gqa * layers) as u64 * c))
        .with(series("DeepSeek-V3, MLA", &|c| (per_layer_mla * layers) as u64 * c))
        .with(series("Gemma 3 27B, all global", &|c| (g_full + g_sliding) * c))
        .with(series("Gemma 3 27B, all window 1024", &|c| (g_full + g_sliding) * c.min(window)))
        .with(series("Gemma 3 27B, 5 local : 1 global", &|c| g_full * c + g_sliding * c.min(window)));
    let path = chart.save_png(out.join("kv_cache.png"))?;
    println!("wrote {}", path.display());

    // ## 4. The MLA block on a small input
    // The same block at toy sizes (those of the tiny checkpoint): hidden 64, 4 heads, query
    // LoRA rank 48, latent 32, 16 nope + 8 rope dims per query/key head, 16-dim values.
    let mut rng = Rng::new(0);
    let mut init = Init::new(0, &cpu);
    let config = common::toy_mla_config(10_000.0);
    let attn = MultiHeadLatentAttention::new(config, &mut init)?;
    let x = Var::constant(Tensor::randn(0.0, 1.0, [2, 6, 64], DType::F32, &mut rng, &cpu)?);
    let q_a = attn.q_a_proj.as_ref().expect("q LoRA").forward(&x)?;
    let ckv = attn.kv_a_proj_with_mqa.forward(&x)?;
    let kv = attn.kv_b_proj.forward(&ckv.narrow(-1, 0, 32)?)?;
    println!("\nMLA block at toy sizes, x {:?}:", x.dims());
    println!("  q_a_proj(x)             {:?}  (query LoRA, then RMSNorm, then q_b_proj -> 4 heads x 24)", q_a.dims());
    println!("  kv_a_proj_with_mqa(x)   {:?}  (32 latent + 8 shared rope key: what the cache keeps)", ckv.dims());
    println!("  kv_b_proj(latent)       {:?} (4 heads x (16 key + 16 value), rebuilt, never cached)", kv.dims());
    let plain = attn.forward(&x, 0, None)?;
    println!("  output                  {:?}", plain.dims());
    // Decoding with a cache takes the "absorbed" path: the key half of kv_b_proj is folded into
    // the query, the value half applied after attention, so attention runs on the latent itself.
    let mut cache = KvCache::new(MaskKind::Causal);
    let mut steps = Vec::new();
    for t in 0..6 {
        steps.push(attn.forward(&x.narrow(1, t, 1)?, t, Some(&mut cache))?.value());
    }
    let cached = Tensor::cat(&steps.iter().collect::<Vec<_>>(), 1)?;
    let diff = cached.sub(&plain.value())?.abs()?.max_all()?.to_scalar::<f32>()?;
    println!(
        "  token by token with the cache: same output (max diff {diff:.1e}); cache holds {} bytes = 2 x 6 tokens x 40 numbers x 4 bytes",
        cache.size_in_bytes()
    );

    // ## 5. The router: sigmoid scores, a correction bias, groups
    // DeepSeek-V3 §2.1.2: s = sigmoid(x W^T). Selection uses s + b (the correction bias,
    // `e_score_correction_bias`); experts are in `n_group` = 8 groups, a group is scored by the
    // sum of its two best biased scores, only `topk_group` = 4 groups stay (node-limited routing:
    // each token's experts live on at most 4 machines), and the top 8 experts among them win.
    // The weights are the *unbiased* s of the winners, normalised, times 2.5.
    // A toy router: 16 experts in 4 groups of 4, keep 2 groups, 4 experts per token.
    let moe = v3.moe.expect("DeepSeek-V3 has experts");
    println!(
        "\nDeepSeek-V3 routing: {} experts in {} groups, best {} groups kept, top {} experts, weights x {}",
        moe.num_experts, moe.n_group, moe.topk_group, moe.top_k, moe.routed_scaling_factor
    );
    let (experts, hidden, top_k) = (16, 64, 4);
    let deepseek_kind =
        RouterKind::SigmoidGroupLimited { n_group: 4, topk_group: 2, routed_scaling_factor: 2.5, norm_topk_prob: true };
    let router = MoeRouter::new(deepseek_kind, experts, top_k, hidden, &mut Init::new(7, &cpu))?;
    // Random tokens with a common offset, as real hidden states have: some experts are favoured.
    let offset = Tensor::randn(0.0, 1.0, [hidden], DType::F32, &mut rng, &cpu)?;
    let tokens_per_batch = if quick { 128 } else { 512 };
    let batch = |rng: &mut Rng| -> llm::Result<Var> {
        let x = Tensor::randn(0.0, 1.0, [tokens_per_batch, hidden], DType::F32, rng, &cpu)?;
        Ok(Var::constant(x.add(&offset)?))
    };
    let x = batch(&mut rng)?;
    // By hand for the first token, then the library's choice for comparison.
    let logits: Vec<f32> = x.value().narrow(0, 0, 1)?.matmul(&router.weight.value().t()?)?.to_vec()?;
    let s: Vec<f32> = logits.iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect();
    let mut group_scores: Vec<(usize, f32)> = (0..4)
        .map(|g| {
            let mut v = s[g * 4..g * 4 + 4].to_vec();
            v.sort_by(|a, b| b.total_cmp(a));
            (g, v[0] + v[1])
        })
        .collect();
    group_scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    let kept: Vec<usize> = group_scores[..2].iter().map(|g| g.0).collect();
    let mut candidates: Vec<usize> = (0..experts).filter(|e| kept.contains(&(e / 4))).collect();
    candidates.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
    let mut by_hand = candidates[..top_k].to_vec();
    by_hand.sort();
    let routing = autograd::no_grad(|| router.route(&x.narrow(0, 0, 1)?))?;
    let mut ids: Vec<u32> = routing.ids.to_vec()?;
    ids.sort();
    let weights: Vec<f32> = routing.weights.value().to_vec()?;
    println!("token 0: sigmoid scores {:?}", s.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>());
    println!(
        "  group scores (sum of best two) {:?} -> keep groups {kept:?}; by hand experts {by_hand:?}, router {ids:?}",
        group_scores.iter().map(|(g, v)| format!("g{g} {v:.3}")).collect::<Vec<_>>()
    );
    println!(
        "  weights {:?} sum to {:.3} (= routed_scaling_factor: normalised, then x 2.5)",
        weights.iter().map(|w| format!("{w:.3}")).collect::<Vec<_>>(),
        weights.iter().sum::<f32>()
    );
    router.set_count_loads(true);

    // Auxiliary-loss-free balancing: after each batch, every expert's bias moves by gamma
    // towards balance (up if it got fewer tokens than the mean). No loss term, no gradient: the
    // bias only changes *which* experts are chosen, never their weights.
    autograd::no_grad(|| router.route(&x))?;
    let before = router.take_loads()?;
    let rounds = if quick { 20 } else { 100 };
    for _ in 0..rounds {
        autograd::no_grad(|| router.route(&batch(&mut rng)?).map_err(llm::Error::from))?;
        router.update_bias(0.01)?;
    }
    let x = batch(&mut rng)?;
    autograd::no_grad(|| router.route(&x))?;
    let after = router.take_loads()?;
    let spread = |l: &[u64]| format!("max/mean {:.2}", *l.iter().max().unwrap_or(&0) as f64 / mean(l));
    println!("expert loads on {tokens_per_batch} tokens: before {before:?} ({})", spread(&before));
    println!("  after {rounds} bias updates of 0.01:    {after:?} ({})", spread(&after));

    // ## 6. Three routers side by side on the same tokens (the bar chart)
    // Qwen3-MoE: softmax over all experts, top-k, renormalised; Llama 4: the top-1 logit.
    // The same weight matrix (seed 7) for each, so only the rule differs.
    let qwen = MoeRouter::new(
        RouterKind::SoftmaxTopK { norm_topk_prob: true },
        experts,
        top_k,
        hidden,
        &mut Init::new(7, &cpu),
    )?;
    let llama = MoeRouter::new(RouterKind::Top1SigmoidInput, experts, 1, hidden, &mut Init::new(7, &cpu))?;
    let fresh_deepseek = MoeRouter::new(deepseek_kind, experts, top_k, hidden, &mut Init::new(7, &cpu))?;
    let mut chart = BarChart::new(
        format!("Expert load on {tokens_per_batch} offset random tokens (1 = perfectly even)"),
        "expert",
        "load / mean",
    )
    .reference(1.0);
    for (name, r) in [
        ("Qwen3: softmax top-4", &qwen),
        ("DeepSeek-V3: sigmoid, 2 of 4 groups, top-4, bias 0", &fresh_deepseek),
        ("DeepSeek-V3: the same after bias balancing", &router),
        ("Llama 4: top-1 logit", &llama),
    ] {
        r.set_count_loads(true);
        autograd::no_grad(|| r.route(&x))?;
        let loads = r.take_loads()?;
        let m = mean(&loads);
        println!("  {name:<52} {}", spread(&loads));
        chart = chart.with(name, loads.iter().map(|&l| l as f64 / m).collect());
    }
    let path = chart.save_png(out.join("expert_load.png"))?;
    println!("wrote {}", path.display());

    // ## 7. A whole MoE layer: routed experts plus the shared expert
    // Every token runs its 4 routed experts and the shared one (`n_shared_experts` = 1, same
    // width as a routed expert), whose output is simply added.
    let mut init = Init::new(1, &cpu);
    let layer = SparseMoe {
        router: MoeRouter::new(deepseek_kind, experts, top_k, hidden, &mut init)?,
        experts: Experts::new(experts, hidden, 32, GluActivation::Silu, &mut init)?,
        shared: Some(GatedFeedForward::new(hidden, 32, GluActivation::Silu, &mut init)?),
        router_name: "gate",
        shared_name: "shared_experts",
    };
    let x = Var::constant(Tensor::randn(0.0, 1.0, [2, 6, hidden], DType::F32, &mut rng, &cpu)?);
    let y = layer.forward(&x)?;
    println!(
        "\nMoE layer: x {:?} -> {:?}; experts' stacked gate_proj {:?}; each token used {top_k}+1 of {} experts",
        x.dims(),
        y.dims(),
        layer.experts.gate_proj.dims(),
        experts + 1
    );
    let per_layer = |a: &Anatomy| {
        let moe_layers = a.total.routed_experts.max(1);
        100.0 * a.active.routed_experts as f64 / moe_layers as f64
    };
    println!(
        "At full scale: {:.2}% of routed-expert weights run per token (8 of 256); {:.1}% of all weights",
        per_layer(&a3),
        100.0 * a3.active_params() as f64 / a3.total_params() as f64
    );

    // ## 8. Kimi K2 beside it: the same code, other proportions
    // Kimi K2 is `DeepseekV3ForCausalLM` with more experts (384), half the heads (64), one dense
    // layer, one routing group and a larger vocabulary. Fewer heads halve attention work per
    // cached position, which matters at long context; more experts grow total size, not work.
    println!("\n{:<34} {:>14} {:>14}", "", "DeepSeek-V3", "Kimi K2");
    let km = k2.moe.expect("Kimi K2 has experts");
    let row = |name: &str, a: String, b: String| println!("{name:<34} {a:>14} {b:>14}");
    row("vocabulary", v3.vocab_size.to_string(), k2.vocab_size.to_string());
    row("attention heads", v3.num_attention_heads.to_string(), k2.num_attention_heads.to_string());
    row(
        "routed experts / per token",
        format!("{} / {}", moe.num_experts, moe.top_k),
        format!("{} / {}", km.num_experts, km.top_k),
    );
    row(
        "groups / kept",
        format!("{} / {}", moe.n_group, moe.topk_group),
        format!("{} / {}", km.n_group, km.topk_group),
    );
    row("routed_scaling_factor", moe.routed_scaling_factor.to_string(), km.routed_scaling_factor.to_string());
    let dense = |c: &llm::config::ModelConfig| (c.num_hidden_layers - c.moe_layer_count()).to_string();
    row("dense layers (first_k_dense_replace)", dense(&v3), dense(&k2));
    row("rope_theta", v3.rope.global.theta.to_string(), k2.rope.global.theta.to_string());
    row("total parameters", human_count(a3.total_params()), human_count(ak.total_params()));
    row("active per token", human_count(a3.active_params()), human_count(ak.active_params()));
    row(
        "KV cache per token (bf16)",
        human_bytes(a3.kv_cache_bytes_per_token(DType::BF16)),
        human_bytes(ak.kv_cache_bytes_per_token(DType::BF16)),
    );
    row(
        "attention FLOPs per cached position (absorbed MLA)",
        human_count(a3.attention_flops_per_position.0),
        human_count(ak.attention_flops_per_position.0),
    );
    row(
        "FLOPs per token at 128k context",
        human_count(a3.flops_per_token(128 * 1024)),
        human_count(ak.flops_per_token(128 * 1024)),
    );

    // ## 9. The real code path on a tiny checkpoint
    // `llm/tests/data/hf-tiny/deepseek_v3` is a randomly initialised DeepseekV3ForCausalLM saved
    // by transformers, with its logits recorded: our model must match them.
    let loaded = common::run_fixture("deepseek_v3")?;
    common::print_layers(&loaded.model);
    Ok(())
}

/// The softmax scale the config implies: `qk_head_dim^-0.5`, times YaRN's mscale^2.
fn mla_scale(c: &llm::config::ModelConfig) -> f64 {
    let m = c.mla.expect("MLA");
    let base = ((m.qk_nope_head_dim + m.qk_rope_head_dim) as f64).powf(-0.5);
    match c.rope.global.scaling {
        RopeScaling::Yarn { factor, mscale_all_dim, .. } => {
            let s = yarn_get_mscale(factor, mscale_all_dim);
            base * s * s
        }
        _ => base,
    }
}

fn mean(loads: &[u64]) -> f64 {
    loads.iter().sum::<u64>() as f64 / loads.len().max(1) as f64
}

fn print_components(total: &Parameters, active: &Parameters) {
    println!("  parameters by component (total -> active per token):");
    for (name, t, a) in [
        ("embedding + head", total.embedding + total.head, active.embedding + active.head),
        ("attention (MLA)", total.attention, active.attention),
        ("dense FFN (first 3 layers)", total.dense_ffn, active.dense_ffn),
        ("routers", total.routers, active.routers),
        ("shared experts", total.shared_experts, active.shared_experts),
        ("routed experts", total.routed_experts, active.routed_experts),
    ] {
        println!("    {name:<28} {:>9} -> {:>9}", human_count(t), human_count(a));
    }
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
