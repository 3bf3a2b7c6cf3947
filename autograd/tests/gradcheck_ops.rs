//! Every differentiable op checked against central finite differences in f64 (see
//! `autograd::gradcheck` for the tolerances). Inputs include broadcasting shapes, non-contiguous
//! views, and values used more than once.

use autograd::Var;
use autograd::gradcheck::{GradCheck, check};
use tensor::ops::{BinaryOp, UnaryOp};
use tensor::testing::{randn, uniform};
use tensor::{AttentionMask, AttentionSpec, DType, Device, GluActivation, Result, RmsNormSpec, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

fn opts() -> GradCheck {
    GradCheck::default()
}

fn ids(values: &[u32]) -> Tensor {
    Tensor::from_vec(values.to_vec(), [values.len()], &cpu()).unwrap()
}

#[test]
fn every_unary_op() -> Result<()> {
    for op in UnaryOp::ALL {
        // Stay away from kinks (abs at 0, clamp at its ends) and outside the domain of log/sqrt.
        let x = if op.needs_positive_input() {
            uniform([2, 3], 0.5, 2.0, 1, &cpu())?
        } else {
            uniform([2, 3], 0.1, 0.45, 2, &cpu())?.mul(&Tensor::from_vec(
                vec![1.0f32, -1.0, 1.0, -1.0, 1.0, 2.0],
                [2, 3],
                &cpu(),
            )?)?
        };
        check(|v| v[0].unary(op), &[x], opts()).map_err(|e| tensor::Error::shape(op.name(), e.to_string()))?;
    }
    Ok(())
}

#[test]
fn every_binary_op_with_broadcasting() -> Result<()> {
    for op in BinaryOp::ALL {
        let a = uniform([2, 1, 4], 0.5, 2.0, 3, &cpu())?;
        // Distinct from a everywhere, so maximum/minimum have no ties to straddle.
        let b = uniform([3, 1], 2.5, 3.5, 4, &cpu())?;
        let (a, b) = if matches!(op, BinaryOp::Minimum) { (b.clone(), a.clone()) } else { (a, b) };
        check(|v| v[0].binary(op, &v[1]), &[a, b], opts())
            .map_err(|e| tensor::Error::shape(op.name(), e.to_string()))?;
    }
    Ok(())
}

#[test]
fn value_used_twice_accumulates() -> Result<()> {
    let x = randn([3, 2], 5, &cpu())?;
    check(|v| v[0].mul(&v[0])?.add(&v[0].sin()?), &[x], opts())?;
    Ok(())
}

#[test]
fn non_contiguous_inputs() -> Result<()> {
    let a = randn([4, 3], 6, &cpu())?;
    let b = randn([4, 3], 7, &cpu())?;
    check(|v| v[0].t()?.mul(&v[1].t()?)?.exp(), &[a, b], opts())?;
    Ok(())
}

#[test]
fn reductions_on_every_axis() -> Result<()> {
    let x = randn([2, 3, 4], 8, &cpu())?;
    for axis in 0..3usize {
        for keepdim in [false, true] {
            check(|v| v[0].sum(axis, keepdim), std::slice::from_ref(&x), opts())?;
            check(|v| v[0].mean(axis, keepdim), std::slice::from_ref(&x), opts())?;
            check(|v| v[0].max(axis, keepdim), std::slice::from_ref(&x), opts())?;
            check(|v| v[0].min(axis, keepdim), std::slice::from_ref(&x), opts())?;
        }
    }
    check(|v| v[0].sum_all(), std::slice::from_ref(&x), opts())?;
    check(|v| v[0].mean_all(), &[x], opts())?;
    Ok(())
}

#[test]
fn matmul_with_batch_broadcasting_and_transposes() -> Result<()> {
    check(|v| v[0].matmul(&v[1]), &[randn([2, 3, 4], 9, &cpu())?, randn([4, 5], 10, &cpu())?], opts())?;
    check(|v| v[0].matmul(&v[1]), &[randn([2, 1, 3, 4], 11, &cpu())?, randn([3, 4, 2], 12, &cpu())?], opts())?;
    check(|v| v[0].t()?.matmul(&v[1].t()?), &[randn([4, 3], 13, &cpu())?, randn([2, 4], 14, &cpu())?], opts())?;
    check(|v| v[0].linear(&v[1]), &[randn([5, 4], 15, &cpu())?, randn([3, 4], 16, &cpu())?], opts())?;
    Ok(())
}

#[test]
fn softmax_and_log_softmax_on_every_axis() -> Result<()> {
    let x = randn([2, 3, 4], 17, &cpu())?;
    for axis in [0i32, 1, -1] {
        check(|v| v[0].softmax(axis), std::slice::from_ref(&x), opts())?;
        check(|v| v[0].log_softmax(axis), std::slice::from_ref(&x), opts())?;
    }
    Ok(())
}

#[test]
fn view_ops() -> Result<()> {
    let x = randn([2, 3, 4], 18, &cpu())?;
    let one = |f: &dyn Fn(&Var) -> Result<Var>| check(|v| f(&v[0]), std::slice::from_ref(&x), opts());
    one(&|v| v.reshape([4, 6]))?;
    one(&|v| v.permute(&[2, 0, 1]))?;
    one(&|v| v.transpose(0, 2))?;
    one(&|v| v.narrow(2, 1, 2))?;
    one(&|v| v.select(1, 2))?;
    one(&|v| v.unsqueeze(1)?.broadcast_to([2, 5, 3, 4]))?;
    one(&|v| v.narrow(0, 0, 1)?.squeeze(0))?;
    one(&|v| v.flatten(1, 2))?;
    one(&|v| v.t()?.contiguous())?;
    one(&|v| {
        let parts = v.split(&[1, 3], 2)?;
        parts[0].mul_scalar(2.0)?.broadcast_to([2, 3, 3])?.mul(&parts[1])
    })?;
    one(&|v| {
        let c = v.chunk(2, 2)?;
        c[0].sub(&c[1])
    })?;
    Ok(())
}

#[test]
fn cat_and_stack() -> Result<()> {
    let (a, b) = (randn([2, 3], 19, &cpu())?, randn([2, 1], 20, &cpu())?);
    check(|v| Var::cat(&[&v[0], &v[1], &v[0]], 1), &[a.clone(), b], opts())?;
    check(|v| Var::stack(&[&v[0], &v[0].exp()?], 0), &[a], opts())?;
    Ok(())
}

#[test]
fn indexing_ops() -> Result<()> {
    let table = randn([5, 3], 21, &cpu())?;
    // Repeated ids: their gradients must add up.
    check(|v| v[0].index_select(&ids(&[4, 0, 4, 2]), 0), std::slice::from_ref(&table), opts())?;
    check(|v| v[0].index_select(&ids(&[2, 2, 1]), 1), std::slice::from_ref(&table), opts())?;
    let tokens = Tensor::from_vec(vec![1u32, 3, 3, 0, 4, 1], [2, 3], &cpu())?;
    check(|v| v[0].embedding(&tokens), std::slice::from_ref(&table), opts())?;
    let src = randn([2, 3], 22, &cpu())?;
    check(|v| v[0].index_add(&ids(&[3, 3]), &v[1], 0), &[table.clone(), src], opts())?;
    let index = Tensor::from_vec(vec![0u32, 2, 2, 1, 0, 0], [3, 2], &cpu())?;
    check(|v| v[0].gather(&index, 1), std::slice::from_ref(&table), opts())?;
    let upd = randn([3, 2], 23, &cpu())?;
    check(|v| v[0].scatter_add(&index, &v[1], 1), &[table, upd], opts())?;
    Ok(())
}

#[test]
fn where_and_masked_fill() -> Result<()> {
    let mask = Tensor::from_vec(vec![1u32, 0, 1, 0, 0, 1], [2, 3], &cpu())?;
    let (a, b) = (randn([2, 3], 24, &cpu())?, randn([3], 25, &cpu())?);
    check(|v| Var::where_cond(&mask, &v[0], &v[1]), &[a.clone(), b], opts())?;
    check(|v| v[0].masked_fill(&mask, -3.0)?.softmax(-1), &[a], opts())?;
    Ok(())
}

#[test]
fn topk_values_and_cumsum() -> Result<()> {
    let x = randn([3, 6], 26, &cpu())?;
    check(|v| Ok(v[0].topk(3, -1)?.0), std::slice::from_ref(&x), opts())?;
    check(|v| Ok(v[0].topk(2, 0)?.0), std::slice::from_ref(&x), opts())?;
    check(|v| v[0].cumsum(1), std::slice::from_ref(&x), opts())?;
    check(|v| v[0].cumsum(0), &[x], opts())?;
    Ok(())
}

#[test]
fn dtype_round_trip_passes_gradient_back() -> Result<()> {
    // The f32 detour rounds to ~6e-8 relative: a step of 1e-2 keeps that rounding near 1e-5 of
    // the difference quotient, which is exact for the quadratic checked here.
    let coarse = GradCheck { eps: 1e-2, atol: 1e-4, rtol: 1e-4 };
    check(|v| v[0].to_dtype(DType::F32)?.to_dtype(DType::F64)?.sqr(), &[randn([4], 27, &cpu())?], coarse)?;
    Ok(())
}

#[test]
fn rms_norm_variants() -> Result<()> {
    let x = randn([2, 3, 8], 28, &cpu())?;
    let w = uniform([8], 0.5, 1.5, 29, &cpu())?;
    let plain = RmsNormSpec { eps: 1e-6, add_unit_offset: false };
    let gemma = RmsNormSpec { eps: 1e-6, add_unit_offset: true };
    check(|v| v[0].rms_norm(Some(&v[1]), plain), &[x.clone(), w.clone()], opts())?;
    check(|v| v[0].rms_norm(Some(&v[1]), gemma), &[x.clone(), w], opts())?;
    check(|v| v[0].rms_norm(None, plain), &[x], opts())?;
    Ok(())
}

#[test]
fn rope_both_layouts() -> Result<()> {
    let x = randn([2, 2, 5, 8], 30, &cpu())?;
    let angles = uniform([5, 4], 0.0, 6.0, 31, &cpu())?;
    let (cos, sin) = (angles.cos()?.to_dtype(DType::F64)?, angles.sin()?.to_dtype(DType::F64)?);
    for interleaved in [false, true] {
        check(|v| v[0].rope(&cos, &sin, interleaved), std::slice::from_ref(&x), opts())?;
    }
    Ok(())
}

#[test]
fn gated_units() -> Result<()> {
    let (g, u) = (randn([3, 4], 32, &cpu())?, randn([3, 4], 33, &cpu())?);
    for act in [GluActivation::Silu, GluActivation::GeluTanh] {
        check(|v| v[0].glu(&v[1], act), &[g.clone(), u.clone()], opts())?;
    }
    Ok(())
}

#[test]
fn attention_with_every_mask_and_head_sharing() -> Result<()> {
    // (Hq, Hkv, Tq, Tk, D, Dv, mask, softcap)
    let causal = |q_start| AttentionMask::causal(q_start);
    let cases = [
        (2, 2, 5, 5, 4, 4, causal(0), None),
        (4, 2, 5, 5, 4, 3, causal(0), None), // GQA, Dv != D
        (3, 1, 6, 6, 4, 4, AttentionMask { window: Some(3), ..causal(0) }, None), // MQA + sliding window
        (2, 1, 6, 6, 4, 4, AttentionMask { chunk: Some(4), ..causal(0) }, None), // chunked
        (2, 2, 2, 6, 4, 4, causal(4), Some(2.0)), // decode rows + softcap
        (2, 2, 3, 3, 4, 4, AttentionMask::default(), None), // bidirectional
    ];
    for (i, (hq, hkv, tq, tk, d, dv, mask, softcap)) in cases.into_iter().enumerate() {
        let q = randn([1, hq, tq, d], 40 + i as u64, &cpu())?;
        let k = randn([1, hkv, tk, d], 50 + i as u64, &cpu())?;
        let v = randn([1, hkv, tk, dv], 60 + i as u64, &cpu())?;
        let spec = AttentionSpec { scale: 1.0 / (d as f64).sqrt(), mask, softcap };
        check(|x| Var::attention(&x[0], &x[1], &x[2], &spec), &[q, k, v], opts())
            .map_err(|e| tensor::Error::shape("attention", format!("case {i}: {e}")))?;
    }
    Ok(())
}

#[test]
fn attention_sinks() -> Result<()> {
    // gpt-oss: a learned logit per query head in each row's softmax denominator. Batch 2 so the
    // sink gradient sums over batches, GQA so it stays per query head; one case with rows that
    // see no key (k_start past them) and one sliding, as gpt-oss's alternate layers are.
    let causal = |q_start| AttentionMask::causal(q_start);
    let cases = [
        (4, 2, 5, 5, causal(0)),
        (2, 1, 6, 6, AttentionMask { window: Some(3), ..causal(0) }),
        (2, 2, 4, 3, AttentionMask { k_start: 2, ..causal(0) }), // rows 0 and 1 see no key
    ];
    for (i, (hq, hkv, tq, tk, mask)) in cases.into_iter().enumerate() {
        let q = randn([2, hq, tq, 4], 80 + i as u64, &cpu())?;
        let k = randn([2, hkv, tk, 4], 90 + i as u64, &cpu())?;
        let v = randn([2, hkv, tk, 3], 100 + i as u64, &cpu())?;
        let sinks = randn([hq], 110 + i as u64, &cpu())?;
        let spec = AttentionSpec { scale: 0.5, mask, softcap: None };
        check(|x| Var::attention_with_sinks(&x[0], &x[1], &x[2], Some(&x[3]), &spec), &[q, k, v, sinks], opts())
            .map_err(|e| tensor::Error::shape("attention with sinks", format!("case {i}: {e}")))?;
    }
    Ok(())
}

#[test]
fn expert_matmul_routes_rows() -> Result<()> {
    let x = randn([5, 3], 70, &cpu())?;
    let w = randn([4, 2, 3], 71, &cpu())?; // [E, N, K] as HF stores experts; used transposed
    let routed = ids(&[2, 0, 2, 3, 0]); // expert 1 gets no rows: zero gradient
    check(|v| v[0].expert_matmul(&v[1].transpose(1, 2)?, &routed), &[x, w], opts())?;
    Ok(())
}
