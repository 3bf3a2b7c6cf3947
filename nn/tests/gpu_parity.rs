//! Every nn block's forward and backward on the GPU against the CPU: the same block built twice
//! from one seed, one copy moved to the GPU, the same input; outputs and every parameter's
//! gradient compared (1e-4 relative plus 1e-5 absolute: f32 sums in another order).

use autograd::Var;
use nn::attention::{
    AttentionConfig, GroupedQueryAttention, KvCache, MaskKind, MlaConfig, MultiHeadLatentAttention, QkNorm,
};
use nn::moe::{Experts, MoeRouter, SparseMoe};
use nn::{Embedding, GatedFeedForward, Init, Linear, Module, ModuleExt, RmsNorm};
use tensor::testing::{assert_close, randn};
use tensor::{Device, GluActivation, Result, Tensor};

mod common;
use common::gqa_config;

/// Builds a block with `build`, runs `forward` on the CPU and on the GPU, compares.
fn compare<M: Module>(
    g: &Device,
    name: &str,
    build: impl Fn(&mut Init) -> Result<M>,
    forward: impl Fn(&M, &Device) -> Result<Var>,
) -> Result<()> {
    let run = |device: &Device| -> Result<(Tensor, Vec<Tensor>)> {
        let mut init = Init::new(42, &Device::cpu());
        init.std = 0.3;
        let block = build(&mut init)?;
        block.to_device(device)?;
        let y = forward(&block, device)?;
        let w = tensor::testing::readout_weights(y.shape(), device)?;
        let grads = y.mul(&Var::constant(w))?.sum_all()?.backward()?;
        let gs = block
            .parameters()
            .iter()
            .filter(|p| p.requires_grad())
            .map(|p| grads.get(p).map_or_else(|| p.value().zeros_like(), |g| Ok(g.clone()))?.to(&Device::cpu()))
            .collect::<Result<_>>()?;
        Ok((y.value().to(&Device::cpu())?, gs))
    };
    let (y_cpu, g_cpu) = run(&Device::cpu())?;
    let (y_gpu, g_gpu) = run(g)?;
    assert_close(&y_gpu, &y_cpu, 1e-5, 1e-4).map_err(|e| tensor::Error::shape(name, format!("forward: {e}")))?;
    for (i, (a, b)) in g_gpu.iter().zip(&g_cpu).enumerate() {
        assert_close(a, b, 1e-5, 1e-4).map_err(|e| tensor::Error::shape(name, format!("parameter {i}: {e}")))?;
    }
    Ok(())
}

fn input(device: &Device) -> Result<Var> {
    Ok(Var::constant(randn([2, 5, 16], 7, &Device::cpu())?.to(device)?))
}

/// A gated feed-forward decoding one row without gradients: the gate and up products and the
/// gated unit as one fused dispatch (`Tensor::matmul_glu`), then the down product, giving the
/// CPU's output (three ops there).
fn ffn_inference_on_one_row(g: &Device) -> Result<()> {
    for act in [GluActivation::Silu, GluActivation::GeluTanh] {
        let run = |device: &Device| -> Result<Tensor> {
            let mut init = Init::new(42, &Device::cpu());
            init.std = 0.3;
            let ffn = GatedFeedForward::new(16, 24, act, &mut init)?;
            ffn.to_device(device)?;
            let x = Var::constant(randn([1, 1, 16], 8, &Device::cpu())?.to(device)?);
            x.value().to(&Device::cpu())?; // uploads done before counting
            let before = gpu::counters();
            let y = autograd::no_grad(|| ffn.forward(&x))?.value().to(&Device::cpu())?;
            if !device.is_cpu() {
                assert_eq!(gpu::counters().delta(&before).dispatches, 2, "{act:?}: fused gate and up, then down");
            }
            Ok(y)
        };
        assert_close(&run(g)?, &run(&Device::cpu())?, 1e-5, 1e-4)
            .map_err(|e| tensor::Error::shape("ffn inference", format!("{act:?}: {e}")))?;
    }
    Ok(())
}

/// Attention decoding with a cache without gradients: a 3-row prompt, then 2 rows one at a time,
/// whose q, k and v projections (MLA's two first products) run as one fused dispatch
/// (`Tensor::matmul_each`) read in place by the norms, RoPE and the cache, giving the CPU's
/// outputs (separate products there). With biases (gpt-oss) the separate products run.
fn attention_inference_one_row_at_a_time(g: &Device) -> Result<()> {
    fn decode<M: Module>(
        g: &Device,
        name: &str,
        build: impl Fn(&mut Init) -> Result<M>,
        forward: impl Fn(&M, &Var, usize, &mut KvCache) -> Result<Var>,
    ) -> Result<()> {
        let run = |device: &Device| -> Result<Vec<Tensor>> {
            let mut init = Init::new(42, &Device::cpu());
            init.std = 0.3;
            let block = build(&mut init)?;
            block.to_device(device)?;
            let x = randn([1, 5, 16], 9, &Device::cpu())?.to(device)?;
            let mut cache = KvCache::new(MaskKind::Causal);
            let steps = [(0, 3), (3, 1), (4, 1)];
            autograd::no_grad(|| {
                let step = |&(start, len): &(usize, usize)| {
                    let rows = Var::constant(x.narrow(1, start, len)?);
                    forward(&block, &rows, start, &mut cache)?.value().to(&Device::cpu())
                };
                steps.iter().map(step).collect()
            })
        };
        for (i, (on_gpu, on_cpu)) in run(g)?.iter().zip(run(&Device::cpu())?).enumerate() {
            assert_close(on_gpu, &on_cpu, 1e-5, 1e-4)
                .map_err(|e| tensor::Error::shape(name, format!("step {i}: {e}")))?;
        }
        Ok(())
    }
    for (norm, rope, bias) in [
        (QkNorm::PerHead { eps: 1e-6, gemma: false }, true, false),
        (QkNorm::WholeProjection { eps: 1e-6 }, true, false),
        (QkNorm::None, true, false),
        (QkNorm::None, false, false),
        (QkNorm::L2AfterRope { eps: 1e-6 }, true, true),
    ] {
        decode(
            g,
            &format!("attention {norm:?}, rope {rope}, bias {bias}"),
            |i| {
                GroupedQueryAttention::new(
                    AttentionConfig { bias, ..gqa_config(MaskKind::Causal, norm, rope, None) },
                    i,
                )
            },
            |m, x, start, cache| m.forward(x, start, Some(cache)),
        )?;
    }
    let mla = MlaConfig { scale: 0.3, ..common::mla_config() };
    decode(
        g,
        "mla",
        |i| MultiHeadLatentAttention::new(mla.clone(), i),
        |m, x, start, cache| m.forward(x, start, Some(cache)),
    )?;
    let keys = gpu::backend()?.pipelines.names();
    assert!(keys.iter().any(|k| k.starts_with("matvec_each/")), "the fused projections ran: {keys:?}");
    Ok(())
}

#[test]
fn every_block_matches_the_cpu_forward_and_backward() -> Result<()> {
    let Some(g) = gpu::test_device() else { return Ok(()) };
    compare(&g, "linear", |i| Linear::new(16, 8, true, i), |m, d| m.forward(&input(d)?))?;
    compare(
        &g,
        "embedding",
        |i| Embedding::new(11, 16, i),
        |m, d| m.forward(&Tensor::from_vec(vec![3u32, 10, 3, 0], [2, 2], &Device::cpu())?.to(d)?),
    )?;
    compare(&g, "rms_norm", |i| RmsNorm::new(16, 1e-6, i), |m, d| m.forward(&input(d)?))?;
    compare(&g, "rms_norm (gemma)", |i| RmsNorm::gemma(16, 1e-6, i), |m, d| m.forward(&input(d)?))?;
    compare(&g, "swiglu", |i| GatedFeedForward::new(16, 24, GluActivation::Silu, i), |m, d| m.forward(&input(d)?))?;
    compare(&g, "geglu", |i| GatedFeedForward::new(16, 24, GluActivation::GeluTanh, i), |m, d| m.forward(&input(d)?))?;
    ffn_inference_on_one_row(&g)?;
    attention_inference_one_row_at_a_time(&g)?;
    for (mask, norm, rope) in [
        (MaskKind::Causal, QkNorm::PerHead { eps: 1e-6, gemma: false }, true),
        (MaskKind::Sliding { window: 3 }, QkNorm::PerHead { eps: 1e-6, gemma: true }, true),
        (MaskKind::Chunked { chunk: 2 }, QkNorm::L2AfterRope { eps: 1e-6 }, true),
        (MaskKind::Causal, QkNorm::WholeProjection { eps: 1e-6 }, false),
    ] {
        compare(
            &g,
            &format!("attention {mask:?}"),
            |i| GroupedQueryAttention::new(gqa_config(mask, norm, rope, None), i),
            |m, d| m.forward(&input(d)?, 0, None),
        )?;
    }
    let mla = MlaConfig { scale: 0.3, ..common::mla_config() };
    compare(&g, "mla", |i| MultiHeadLatentAttention::new(mla.clone(), i), |m, d| m.forward(&input(d)?, 0, None))?;
    for (kind, k, shared) in common::routers() {
        compare(
            &g,
            &format!("moe {kind:?}"),
            |i| {
                let mut router = MoeRouter::new(kind, 4, k, 16, i)?;
                router.weight = i.normal_with([4, 16], 2.0)?;
                Ok(SparseMoe {
                    router,
                    experts: Experts::new(4, 16, 8, GluActivation::Silu, i)?,
                    shared: if shared { Some(GatedFeedForward::new(16, 8, GluActivation::Silu, i)?) } else { None },
                    router_name: "gate",
                    shared_name: "shared_experts",
                })
            },
            |m, d| m.forward(&input(d)?),
        )?;
    }
    compare(
        &g,
        "cross_entropy",
        |i| Linear::new(16, 9, false, i),
        |m, d| {
            let logits = m.forward(&input(d)?)?.reshape([10, 9])?;
            let labels = Tensor::from_vec(vec![0u32, 8, 3, 3, 1, 2, 7, 6, 5, 4], [10], &Device::cpu())?.to(d)?;
            nn::loss::cross_entropy(&logits, &labels, Some(3))
        },
    )?;
    Ok(())
}
