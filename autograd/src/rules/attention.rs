//! Attention's derivative, written out analytically with tensor ops (the forward is the
//! device's fused kernel, which never materialises the scores; the backward does, per head).

use tensor::{AttentionSpec, Error, Result, Tensor};

use crate::Var;
use crate::rules::rule;

impl Var {
    /// Attention over q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv]. The backward
    /// recomputes the probabilities P (materialising [Tq, Tk] per head) and applies
    /// `dV = P^T g`, `dP = g V^T`, `dS = P (dP - rowsum(dP P))`, `dQ = dS K scale`,
    /// `dK = dS^T Q scale`, summing over the query heads that share a kv head.
    pub fn attention(q: &Var, k: &Var, v: &Var, spec: &AttentionSpec) -> Result<Var> {
        Var::attention_with_sinks(q, k, v, None, spec)
    }

    /// Attention with optional sinks [Hq] (gpt-oss): one more logit per head in each row's
    /// softmax denominator, reading no value. With `p_s` the sink's probability (what the
    /// visible keys leave over), `d sink = -sum over rows of p_s rowsum(dP P)`; the other
    /// gradients keep their form, the sink only changing P.
    pub fn attention_with_sinks(q: &Var, k: &Var, v: &Var, sinks: Option<&Var>, spec: &AttentionSpec) -> Result<Var> {
        let (qt, kt, vt) = (q.value(), k.value(), v.value());
        let st = sinks.map(|s| s.value());
        let y = Tensor::attention_with_sinks(&qt, &kt, &vt, st.as_ref(), spec)?;
        let spec = *spec;
        // The inputs as a slice of an array (no list allocated per call): the sinks when given.
        let all = [q, k, v, sinks.unwrap_or(q)];
        Ok(Var::from_op(
            y,
            &all[..3 + usize::from(sinks.is_some())],
            rule("attention", move |g: &Tensor| attention_backward(&qt, &kt, &vt, st.as_ref(), &spec, g)),
        ))
    }
}

fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    sinks: Option<&Tensor>,
    spec: &AttentionSpec,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let (b, hq, tq, d) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
    let (hkv, tk, dv) = (k.dims()[1], k.dims()[2], v.dims()[3]);
    if hkv == 0 || hq % hkv != 0 {
        return Err(Error::shape("attention backward", "kv heads must divide query heads"));
    }
    let group = hq / hkv;
    let qg = q.reshape([b, hkv, group, tq, d])?; // (B, Hkv, G, Tq, D)
    let kk = k.unsqueeze(2)?; // (B, Hkv, 1, Tk, D)
    let vv = v.unsqueeze(2)?;
    let gg = g.reshape([b, hkv, group, tq, dv])?;
    let raw = qg.matmul(&kk.t()?)?.mul_scalar(spec.scale)?; // (B, Hkv, G, Tq, Tk)
    let (scores, capped) = match spec.softcap {
        Some(cap) => {
            let t = raw.mul_scalar(1.0 / cap)?.tanh()?;
            (t.mul_scalar(cap)?, Some(t))
        }
        None => (raw, None),
    };
    let mask: Vec<u32> = (0..tq).flat_map(|i| (0..tk).map(move |j| spec.mask.allows(i, j) as u32)).collect();
    let mask = Tensor::from_vec(mask, [tq, tk], q.device())?;
    let fill = Tensor::full(-1e30, (), scores.dtype(), q.device())?;
    let masked = mask.where_cond(&scores, &fill)?;
    let (p, p_sink) = match sinks {
        None => (masked.softmax(-1)?, None),
        Some(s) => {
            let column =
                s.to_dtype(masked.dtype())?.reshape([1, hkv, group, 1, 1])?.broadcast_to([b, hkv, group, tq, 1])?;
            let all = Tensor::cat(&[&masked, &column], -1)?.softmax(-1)?;
            (all.narrow(-1, 0, tk)?, Some(all.narrow(-1, tk, 1)?))
        }
    };
    let p = p.mul(&mask.to_dtype(scores.dtype())?)?;
    let dv_grad = p.t()?.matmul(&gg)?.sum(2usize, false)?; // (B, Hkv, Tk, Dv)
    let dp = gg.matmul(&vv.t()?)?; // (B, Hkv, G, Tq, Tk)
    let row_dot = dp.mul(&p)?.sum(-1, true)?; // (B, Hkv, G, Tq, 1)
    let d_sinks = match (&p_sink, sinks) {
        (Some(ps), Some(s)) => Some(
            ps.mul(&row_dot)?
                .neg()?
                .sum(-1, false)?
                .sum(3usize, false)?
                .sum(0usize, false)?
                .reshape([hq])?
                .to_dtype(s.dtype())?,
        ),
        _ => None,
    };
    let mut ds = p.mul(&dp.sub(&row_dot)?)?;
    if let Some(t) = capped {
        ds = ds.mul(&t.sqr()?.neg()?.add_scalar(1.0)?)?; // d(cap tanh(x/cap))/dx = 1 - tanh^2
    }
    let dq = ds.matmul(&kk)?.mul_scalar(spec.scale)?.reshape([b, hq, tq, d])?;
    let dk = ds.t()?.matmul(&qg)?.mul_scalar(spec.scale)?.sum(2usize, false)?; // (B, Hkv, Tk, D)
    let mut grads = vec![Some(dq), Some(dk), Some(dv_grad)];
    if sinks.is_some() {
        grads.push(d_sinks);
    }
    Ok(grads)
}
