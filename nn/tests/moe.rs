//! Mixture of experts: each router's semantics pinned on hand-built cases, dispatch against a
//! per-token loop, load counting and the balancing bias, and gradients.

use autograd::Var;
use autograd::gradcheck::{GradCheck, check_params};
use nn::moe::{Experts, MoeRouter, RouterKind, SparseMoe};
use nn::{GatedFeedForward, Init, ModuleExt};
use tensor::testing::{assert_close, randn};
use tensor::{DType, Device, GluActivation, Result, Tensor};

mod common;

fn cpu() -> Device {
    Device::cpu()
}

/// A router whose logits for tokens `x = I` (one-hot rows) are the rows of `logits`.
fn router_with_logits(kind: RouterKind, logits: &[Vec<f64>], top_k: usize) -> Result<(MoeRouter, Var)> {
    let (n, e) = (logits.len(), logits[0].len());
    let mut router = MoeRouter::new(kind, e, top_k, n, &mut Init::new(0, &cpu()))?;
    // weight [E, H] with H = n: x = I gives logits = W^T.
    let w: Vec<f64> = (0..e).flat_map(|j| (0..n).map(move |i| (i, j))).map(|(i, j)| logits[i][j]).collect();
    router.weight = Var::parameter(Tensor::from_vec(w, [e, n], &cpu())?.to_dtype(DType::F32)?);
    let x: Vec<f32> = (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect();
    Ok((router, Var::constant(Tensor::from_vec(x, [n, n], &cpu())?)))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn deepseek_bias_changes_the_choice_but_not_the_weights() -> Result<()> {
    let kind =
        RouterKind::SigmoidGroupLimited { n_group: 1, topk_group: 1, routed_scaling_factor: 2.5, norm_topk_prob: true };
    let logits = vec![vec![2.0, 1.0, 0.0, -1.0]];
    let (router, x) = router_with_logits(kind, &logits, 2)?;
    let plain = router.route(&x)?;
    assert_eq!(plain.ids.to_vec::<u32>()?, vec![0, 1]);
    // A bias that favours experts 2 and 3 makes them the choice...
    router.correction_bias.as_ref().expect("bias").set_value(Tensor::from_vec(
        vec![0.0f32, 0.0, 0.9, 0.9],
        [4],
        &cpu(),
    )?)?;
    let biased = router.route(&x)?;
    assert_eq!(biased.ids.to_vec::<u32>()?, vec![2, 3]);
    // ...but their weights are their unbiased sigmoid scores, normalised, times 2.5.
    let (s2, s3) = (sigmoid(0.0), sigmoid(-1.0));
    let want = [2.5 * s2 / (s2 + s3), 2.5 * s3 / (s2 + s3)];
    let got = biased.weights.value().to_vec::<f64>()?;
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    Ok(())
}

#[test]
fn group_limited_top_k_keeps_groups_and_masks_with_minus_infinity() -> Result<()> {
    // 8 experts in 4 groups of 2; keep 2 groups; pick 2 experts.
    let kind =
        RouterKind::SigmoidGroupLimited { n_group: 4, topk_group: 2, routed_scaling_factor: 1.0, norm_topk_prob: true };
    // Group scores (sum of the two members): g0 = 0.6+0.6, g1 = 0.9+0.15, g2 = 0.5+0.5,
    // g3 = 0.2+0.2. Kept groups: g0 and g1 (1.2, 1.05). Best experts in them: 0.9 (id 2), then
    // 0.6 (ids 0 and 1 tie; the lower id wins).
    let scores = [0.6, 0.6, 0.9, 0.15, 0.5, 0.5, 0.2, 0.2];
    let logits = vec![scores.iter().map(|&s: &f64| (s / (1.0 - s)).ln()).collect::<Vec<_>>()];
    let (router, x) = router_with_logits(kind, &logits, 2)?;
    let mut ids = router.route(&x)?.ids.to_vec::<u32>()?;
    ids.sort();
    assert_eq!(ids, vec![0, 2]);
    // With biases that push every kept group's scores below zero, masking with 0 (an old bug)
    // would pick dropped experts; -inf keeps the choice inside the kept groups.
    let bias = [-1.0f32, -1.0, -1.0, -1.0, -1.5, -1.5, -2.0, -2.0];
    router.correction_bias.as_ref().expect("bias").set_value(Tensor::from_vec(bias.to_vec(), [8], &cpu())?)?;
    for id in router.route(&x)?.ids.to_vec::<u32>()? {
        assert!(id < 4, "expert {id} is in a dropped group");
    }
    Ok(())
}

#[test]
fn qwen_router_renormalises_only_when_asked() -> Result<()> {
    let logits = vec![vec![1.0, 0.5, 0.0, -0.5]];
    let total: f64 = logits[0].iter().map(|l: &f64| l.exp()).sum();
    for norm in [false, true] {
        let (router, x) = router_with_logits(RouterKind::SoftmaxTopK { norm_topk_prob: norm }, &logits, 2)?;
        let w = router.route(&x)?.weights.value().to_vec::<f64>()?;
        let (p0, p1) = (1f64.exp() / total, 0.5f64.exp() / total);
        let want = if norm { [p0 / (p0 + p1), p1 / (p0 + p1)] } else { [p0, p1] };
        assert!((w[0] - want[0]).abs() < 1e-6 && (w[1] - want[1]).abs() < 1e-6, "norm {norm}: {w:?} vs {want:?}");
    }
    Ok(())
}

fn block(kind: RouterKind, top_k: usize, shared: bool, seed: u64, dtype: DType) -> Result<SparseMoe> {
    let mut init = Init::new(seed, &cpu());
    init.dtype = dtype;
    init.std = 0.5;
    let (h, e) = (6, 4);
    let mut router = MoeRouter::new(kind, e, top_k, h, &mut init)?;
    router.weight = init.normal_with([e, h], 2.0)?; // well-separated logits
    Ok(SparseMoe {
        router,
        experts: Experts::new(e, h, 5, GluActivation::Silu, &mut init)?,
        shared: if shared { Some(GatedFeedForward::new(h, 3, GluActivation::Silu, &mut init)?) } else { None },
        router_name: "gate",
        shared_name: "shared_experts",
    })
}

/// The routed part of a MoE output computed token by token, as the dispatch tests' reference:
/// for each token row `xt` of `x`, the sum over the experts `e` its router picks (weight `w`)
/// of `contribution(xt, e, w)`. One row per token.
fn routed_per_token(
    moe: &SparseMoe,
    x: &Tensor,
    contribution: impl Fn(&Tensor, usize, f64) -> Result<Tensor>,
) -> Result<Vec<Tensor>> {
    let routing = moe.router.route(&Var::constant(x.clone()))?;
    let (ids, weights) = (routing.ids.to_vec2::<u32>()?, routing.weights.value().to_vec2::<f64>()?);
    let mut rows = Vec::new();
    for (n, (token_ids, token_weights)) in ids.iter().zip(&weights).enumerate() {
        let xt = x.narrow(0, n, 1)?;
        let mut out = xt.zeros_like()?;
        for (&e, &w) in token_ids.iter().zip(token_weights) {
            out = out.add(&contribution(&xt, e as usize, w)?)?;
        }
        rows.push(out);
    }
    Ok(rows)
}

/// The MoE output computed token by token: each token through each chosen expert, weighted.
fn per_token_reference(moe: &SparseMoe, x: &Tensor) -> Result<Tensor> {
    let mut rows = routed_per_token(moe, x, |xt, e, w| {
        let pick = |p: &Var| p.value().select(0, e);
        let input = if moe.router.kind == RouterKind::Top1SigmoidInput { xt.mul_scalar(w)? } else { xt.clone() };
        let gate = input.matmul(&pick(&moe.experts.gate_proj)?.t()?)?;
        let up = input.matmul(&pick(&moe.experts.up_proj)?.t()?)?;
        let y = gate.silu()?.mul(&up)?.matmul(&pick(&moe.experts.down_proj)?.t()?)?;
        if moe.router.kind == RouterKind::Top1SigmoidInput { Ok(y) } else { y.mul_scalar(w) }
    })?;
    if let Some(shared) = &moe.shared {
        for (n, out) in rows.iter_mut().enumerate() {
            let xt = x.narrow(0, n, 1)?;
            *out = out.add(&shared.forward(&Var::constant(xt))?.value())?;
        }
    }
    Tensor::cat(&rows.iter().collect::<Vec<_>>(), 0)
}

#[test]
fn dispatch_equals_a_per_token_loop_for_every_router() -> Result<()> {
    let kinds = common::routers();
    for (i, (kind, k, shared)) in kinds.into_iter().enumerate() {
        let moe = block(kind, k, shared, i as u64, DType::F32)?;
        let x = randn([7, 6], 40 + i as u64, &cpu())?;
        let got = moe.forward(&Var::constant(x.clone()))?.value();
        assert_close(&got, &per_token_reference(&moe, &x)?, 1e-5, 1e-5)?;
    }
    Ok(())
}

#[test]
fn llama4_scales_the_input_not_the_output() -> Result<()> {
    // Expert(s x) differs from s Expert(x) because the expert is non-linear; the block computes
    // the first (checked in the loop reference above) and so differs from the second.
    let moe = block(RouterKind::Top1SigmoidInput, 1, false, 9, DType::F32)?;
    let x = randn([3, 6], 50, &cpu())?;
    let got = moe.forward(&Var::constant(x.clone()))?.value();
    let routing = moe.router.route(&Var::constant(x.clone()))?;
    let ids = routing.ids.reshape([3])?;
    let scaled_output = moe.experts.forward(&Var::constant(x), &ids)?.value().mul(&routing.weights.value())?;
    assert!(tensor::testing::max_abs_diff(&got, &scaled_output)? > 1e-3);
    Ok(())
}

#[test]
fn unchosen_experts_never_compute() -> Result<()> {
    // Poison expert weights with NaN except for the chosen ones: the output stays finite.
    let moe = block(RouterKind::SoftmaxTopK { norm_topk_prob: true }, 1, false, 11, DType::F32)?;
    let x = randn([5, 6], 60, &cpu())?;
    let chosen: Vec<u32> = moe.router.route(&Var::constant(x.clone()))?.ids.to_vec()?;
    for p in [&moe.experts.gate_proj, &moe.experts.up_proj, &moe.experts.down_proj] {
        let v = p.value();
        let slices = (0..4)
            .map(|e| if chosen.contains(&(e as u32)) { v.select(0, e) } else { v.select(0, e)?.full_like(f64::NAN) })
            .collect::<Result<Vec<_>>>()?;
        p.set_value(Tensor::stack(&slices.iter().collect::<Vec<_>>(), 0)?)?;
    }
    let out = moe.forward(&Var::constant(x))?.value().to_vec::<f32>()?;
    assert!(out.iter().all(|v| v.is_finite()));
    Ok(())
}

#[test]
fn loads_are_counted_and_the_bias_moves_towards_balance() -> Result<()> {
    let kind =
        RouterKind::SigmoidGroupLimited { n_group: 1, topk_group: 1, routed_scaling_factor: 1.0, norm_topk_prob: true };
    // Three tokens that all prefer experts 0 and 1.
    let logits = vec![vec![3.0, 2.0, -1.0, -2.0], vec![2.0, 3.0, -2.0, -1.0], vec![3.0, 1.0, 0.0, -3.0]];
    let (router, x) = router_with_logits(kind, &logits, 2)?;
    autograd::no_grad(|| router.route(&x))?;
    assert_eq!(router.loads()?, vec![0, 0, 0, 0], "inference counts nothing unless asked");
    router.set_count_loads(true);
    autograd::no_grad(|| router.route(&x))?;
    assert_eq!(router.loads()?, vec![3, 3, 0, 0]);
    router.update_bias(0.01)?;
    let bias = router.correction_bias.as_ref().expect("bias").value().to_vec::<f32>()?;
    assert!(bias[0] < 0.0 && bias[1] < 0.0 && bias[2] > 0.0 && bias[3] > 0.0, "{bias:?}");
    assert_eq!(router.loads()?, vec![0, 0, 0, 0], "update_bias consumes the counts");
    Ok(())
}

#[test]
fn gradients_through_every_router_and_the_experts() -> Result<()> {
    let kinds = common::routers();
    for (i, (kind, k, shared)) in kinds.into_iter().enumerate() {
        let moe = block(kind, k, shared, 20 + i as u64, DType::F64)?;
        if let Some(b) = &moe.router.correction_bias {
            b.replace_value(b.value().to_dtype(DType::F64)?)?;
        }
        let x = Var::constant(randn([4, 6], 70 + i as u64, &cpu())?.to_dtype(DType::F64)?);
        let params: Vec<Var> = moe.parameters().into_iter().filter(|p| p.requires_grad()).collect();
        check_params(&params, || moe.forward(&x), GradCheck::default())?;
    }
    Ok(())
}

#[test]
fn parameter_names_match_hugging_face() -> Result<()> {
    let moe = block(
        RouterKind::SigmoidGroupLimited { n_group: 2, topk_group: 1, routed_scaling_factor: 1.0, norm_topk_prob: true },
        2,
        true,
        1,
        DType::F32,
    )?;
    let names: Vec<String> = moe.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "gate.weight",
            "gate.e_score_correction_bias",
            "experts.gate_proj.weight",
            "experts.up_proj.weight",
            "experts.down_proj.weight",
            "shared_experts.gate_proj.weight",
            "shared_experts.up_proj.weight",
            "shared_experts.down_proj.weight"
        ]
    );
    Ok(())
}

/// gpt-oss's block: the biased router and the experts with biases and the clamped SwiGLU, with a
/// low `limit` so that the clamps act on many entries.
fn gpt_oss_block(seed: u64, dtype: DType, limit: f64) -> Result<SparseMoe> {
    use nn::moe::SwigluClamp;
    let mut init = Init::new(seed, &cpu());
    init.dtype = dtype;
    init.std = 0.5;
    let (h, e) = (6, 4);
    let mut router = MoeRouter::new(RouterKind::BiasedSoftmaxOverChosen, e, 2, h, &mut init)?;
    router.weight = init.normal_with([e, h], 2.0)?;
    let mut experts = Experts::clamped_swiglu(e, h, 5, SwigluClamp { alpha: 1.702, limit }, &mut init)?;
    let biases = experts.biases.as_mut().expect("biases");
    biases.gate = init.normal([e, 5])?;
    biases.up = init.normal([e, 5])?;
    biases.down = init.normal([e, h])?;
    Ok(SparseMoe { router, experts, shared: None, router_name: "router", shared_name: "shared_experts" })
}

#[test]
fn gpt_oss_router_adds_its_bias_and_normalises_over_the_chosen_only() -> Result<()> {
    let (router, x) = router_with_logits(RouterKind::BiasedSoftmaxOverChosen, &[vec![2.0, 1.0, 0.0, -1.0]], 2)?;
    router.bias.as_ref().expect("bias").set_value(Tensor::from_vec(vec![0.0f32, 0.0, 0.0, 2.5], [4], &cpu())?)?;
    let r = router.route(&x)?;
    // Biased logits [2, 1, 0, 1.5]: experts 0 and 3, weights softmax([2, 1.5]).
    assert_eq!(r.ids.to_vec::<u32>()?, vec![0, 3]);
    let w0 = 1.0 / (1.0 + (-0.5f64).exp());
    assert_close(
        &r.weights.value(),
        &Tensor::from_vec(vec![w0 as f32, (1.0 - w0) as f32], [1, 2], &cpu())?,
        1e-6,
        1e-6,
    )?;
    Ok(())
}

#[test]
fn clamped_swiglu_clamps_gate_above_and_up_both_ways() -> Result<()> {
    use nn::moe::SwigluClamp;
    let clamp = SwigluClamp { alpha: 1.702, limit: 7.0 };
    let cases = [(10.0, 20.0), (-30.0, -20.0), (2.0, -1.0), (-3.0, 0.5), (7.5, -9.0)];
    let gate = Var::constant(Tensor::from_vec(cases.iter().map(|c| c.0).collect::<Vec<f64>>(), [5], &cpu())?);
    let up = Var::constant(Tensor::from_vec(cases.iter().map(|c| c.1).collect::<Vec<f64>>(), [5], &cpu())?);
    let got: Vec<f64> = clamp.apply(&gate, &up)?.value().to_vec()?;
    for ((g, u), y) in cases.iter().zip(got) {
        // By hand: g = min(gate, 7) (no lower clamp), u = clamp(up, -7, 7), (u + 1) g sigmoid(1.702 g).
        let g = g.min(7.0);
        let u = u.clamp(-7.0, 7.0);
        let want = (u + 1.0) * g * sigmoid(1.702 * g);
        assert!((y - want).abs() < 1e-12, "gate {g} up {u}: {y} vs {want}");
    }
    Ok(())
}

#[test]
fn gpt_oss_dispatch_equals_a_per_token_loop() -> Result<()> {
    let moe = gpt_oss_block(3, DType::F32, 1.0)?;
    let x = randn([7, 6], 40, &cpu())?;
    let got = moe.forward(&Var::constant(x.clone()))?.value();
    let b = moe.experts.biases.as_ref().expect("biases");
    let rows = routed_per_token(&moe, &x, |xt, e, w| {
        let pick = |p: &Var| p.value().select(0, e);
        let gate =
            xt.matmul(&pick(&moe.experts.gate_proj)?.t()?)?.add(&pick(&b.gate)?)?.clamp(f64::NEG_INFINITY, 1.0)?;
        let up = xt.matmul(&pick(&moe.experts.up_proj)?.t()?)?.add(&pick(&b.up)?)?.clamp(-1.0, 1.0)?;
        let act = gate.mul(&gate.mul_scalar(1.702)?.sigmoid()?)?.mul(&up.add_scalar(1.0)?)?;
        let y = act.matmul(&pick(&moe.experts.down_proj)?.t()?)?.add(&pick(&b.down)?)?;
        y.mul_scalar(w)
    })?;
    assert_close(&got, &Tensor::cat(&rows.iter().collect::<Vec<_>>(), 0)?, 1e-5, 1e-5)
}

#[test]
fn gpt_oss_gradients_through_router_bias_expert_biases_and_clamps() -> Result<()> {
    // limit 0.8: many gate and up entries sit beyond the clamps, where their gradient is zero.
    let moe = gpt_oss_block(21, DType::F64, 0.8)?;
    let x = Var::constant(randn([5, 6], 71, &cpu())?.to_dtype(DType::F64)?);
    let params: Vec<Var> = moe.parameters().into_iter().filter(|p| p.requires_grad()).collect();
    assert_eq!(params.len(), 8, "router weight and bias, three expert weights, three expert biases");
    check_params(&params, || moe.forward(&x), GradCheck::default())?;
    let names: Vec<String> = moe.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "router.weight",
            "router.bias",
            "experts.gate_proj.weight",
            "experts.up_proj.weight",
            "experts.down_proj.weight",
            "experts.gate_proj.bias",
            "experts.up_proj.bias",
            "experts.down_proj.bias"
        ]
    );
    Ok(())
}
