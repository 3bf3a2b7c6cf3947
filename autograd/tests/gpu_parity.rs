//! The backward pass on the GPU against the CPU: the same expressions, the same inputs, their
//! gradients compared (f32; 1e-4 relative plus 1e-5 absolute covers reordered f32 sums).

use autograd::Var;
use tensor::ops::{BinaryOp, UnaryOp};
use tensor::testing::{assert_close, randn, uniform};
use tensor::{AttentionMask, AttentionSpec, Device, GluActivation, Result, RmsNormSpec, Tensor};

type Expr = Box<dyn Fn(&[Var]) -> Result<Var>>;

fn gradients(device: &Device, inputs: &[Tensor], f: &Expr) -> Result<(Tensor, Vec<Tensor>)> {
    let vars: Vec<Var> = inputs.iter().map(|t| t.to(device).map(Var::parameter)).collect::<Result<_>>()?;
    let y = f(&vars)?;
    // A weighted sum so every output element matters.
    let w = tensor::testing::readout_weights(y.shape(), device)?;
    let grads = y.mul(&Var::constant(w))?.sum_all()?.backward()?;
    let gs = vars
        .iter()
        .map(|v| grads.get(v).map_or_else(|| v.value().zeros_like(), |g| Ok(g.clone()))?.to(&Device::cpu()))
        .collect::<Result<_>>()?;
    Ok((y.value().to(&Device::cpu())?, gs))
}

fn compare(g: &Device, name: &str, inputs: &[Tensor], f: Expr) -> Result<()> {
    let (y_cpu, g_cpu) = gradients(&Device::cpu(), inputs, &f)?;
    let (y_gpu, g_gpu) = gradients(g, inputs, &f)?;
    assert_close(&y_gpu, &y_cpu, 1e-5, 1e-4).map_err(|e| tensor::Error::shape(name, format!("forward: {e}")))?;
    for (i, (a, b)) in g_gpu.iter().zip(&g_cpu).enumerate() {
        assert_close(a, b, 1e-5, 1e-4).map_err(|e| tensor::Error::shape(name, format!("gradient {i}: {e}")))?;
    }
    Ok(())
}

#[test]
fn backward_of_every_op_family_matches_the_cpu() -> Result<()> {
    let Some(g) = gpu::test_device() else { return Ok(()) };
    let cpu = Device::cpu();
    let (a, b) = (uniform([3, 4], 0.5, 2.0, 1, &cpu)?, uniform([4], 0.5, 2.0, 2, &cpu)?);
    for op in UnaryOp::ALL {
        compare(&g, op.name(), std::slice::from_ref(&a), Box::new(move |v| v[0].unary(op)))?;
    }
    for op in BinaryOp::ALL {
        compare(&g, op.name(), &[a.clone(), b.clone()], Box::new(move |v| v[0].binary(op, &v[1])))?;
    }
    let x = randn([2, 3, 5], 3, &cpu)?;
    let m = randn([5, 4], 4, &cpu)?;
    let cases: Vec<(&str, Vec<Tensor>, Expr)> = vec![
        ("matmul", vec![x.clone(), m.clone()], Box::new(|v| v[0].matmul(&v[1]))),
        ("reductions", vec![x.clone()], Box::new(|v| v[0].max(1, false)?.add(&v[0].sum(0, false)?.mean(0, true)?))),
        ("softmax", vec![x.clone()], Box::new(|v| v[0].softmax(-1)?.mul(&v[0].log_softmax(1)?))),
        ("views", vec![x.clone()], Box::new(|v| v[0].permute(&[2, 0, 1])?.narrow(0, 1, 3)?.reshape([3, 6]))),
        ("cat", vec![x.clone()], Box::new(|v| Var::cat(&[&v[0], &v[0].exp()?], 1))),
        ("topk and cumsum", vec![x.clone()], Box::new(|v| v[0].topk(2, -1)?.0.cumsum(1))),
        (
            "indexing",
            vec![m.clone()],
            Box::new(|v| {
                let ids = Tensor::from_vec(vec![4u32, 0, 4], [3], &v[0].device())?;
                let idx = Tensor::from_vec(vec![0u32, 3, 3, 1], [2, 2], &v[0].device())?;
                v[0].index_select(&ids, 0)?.sum_all()?.add(&v[0].narrow(0, 0, 2)?.gather(&idx, 1)?.sum_all()?)
            }),
        ),
        (
            "rms_norm",
            vec![x.clone(), randn([5], 5, &cpu)?],
            Box::new(|v| v[0].rms_norm(Some(&v[1]), RmsNormSpec { eps: 1e-6, add_unit_offset: true })),
        ),
        ("glu", vec![x.clone(), randn([2, 3, 5], 6, &cpu)?], Box::new(|v| v[0].glu(&v[1], GluActivation::GeluTanh))),
    ];
    for (name, inputs, f) in cases {
        compare(&g, name, &inputs, f)?;
    }
    let (q, k, v) = (randn([1, 4, 6, 8], 7, &cpu)?, randn([1, 2, 6, 8], 8, &cpu)?, randn([1, 2, 6, 8], 9, &cpu)?);
    let spec = AttentionSpec {
        scale: 0.35,
        mask: AttentionMask { window: Some(3), ..AttentionMask::causal(0) },
        softcap: None,
    };
    compare(
        &g,
        "attention",
        &[q.clone(), k.clone(), v.clone()],
        Box::new(move |t| Var::attention(&t[0], &t[1], &t[2], &spec)),
    )?;
    compare(
        &g,
        "attention with sinks",
        &[q, k, v, randn([4], 12, &cpu)?],
        Box::new(move |t| Var::attention_with_sinks(&t[0], &t[1], &t[2], Some(&t[3]), &spec)),
    )?;
    let angles = uniform([6, 4], 0.0, 6.0, 10, &cpu)?;
    let (cos, sin) = (angles.cos()?, angles.sin()?);
    compare(
        &g,
        "rope",
        &[randn([1, 2, 6, 8], 11, &cpu)?],
        Box::new(move |t| t[0].rope(&cos.to(&t[0].device())?, &sin.to(&t[0].device())?, true)),
    )?;
    Ok(())
}
