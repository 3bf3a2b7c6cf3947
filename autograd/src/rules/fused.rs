//! Fused ops (RMSNorm, RoPE, gated units, attention, the MoE expert matmul): the forward runs the
//! device's fused kernel; the backward is written out analytically with tensor ops.

use tensor::ops::UnaryOp;
use tensor::{AttentionSpec, DType, Error, GluActivation, Result, RmsNormSpec, Tensor};

use crate::Var;
use crate::rules::rule;
use crate::rules::unary::derivative;

impl Var {
    /// RMSNorm over the last axis, `x r w` with `r = (mean(x^2) + eps)^-1/2` (or `(1 + w)` for
    /// Gemma). Backward, with `s` the scale and `n = x r`:
    /// `dx = r (g s - n mean(g s n))`, `dw = sum over rows of g n`.
    pub fn rms_norm(&self, weight: Option<&Var>, spec: RmsNormSpec) -> Result<Var> {
        let x = self.value();
        let w = weight.map(|w| w.value());
        let y = x.rms_norm(w.as_ref(), spec)?;
        let inputs: Vec<&Var> = std::iter::once(self).chain(weight).collect();
        Ok(Var::from_op(
            y,
            &inputs,
            rule("rms_norm", move |g: &Tensor| {
                let r = x.sqr()?.mean(-1, true)?.add_scalar(spec.eps)?.rsqrt()?;
                let n = x.mul(&r)?;
                let gs = match &w {
                    Some(w) if spec.add_unit_offset => g.mul(&w.add_scalar(1.0)?)?,
                    Some(w) => g.mul(w)?,
                    None => g.clone(),
                };
                let dx = r.mul(&gs.sub(&n.mul(&gs.mul(&n)?.mean(-1, true)?)?)?)?;
                let mut grads = vec![Some(dx)];
                if let Some(w) = &w {
                    grads.push(Some(g.mul(&n)?.sum_to_shape(w.shape())?));
                }
                Ok(grads)
            }),
        ))
    }

    /// Rotary embedding with constant `cos`/`sin` tables [T, D/2]. A rotation's adjoint is the
    /// rotation back: `dx = rope(g, cos, -sin)`.
    pub fn rope(&self, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Var> {
        let y = self.value().rope(cos, sin, interleaved)?;
        let (cos, sin) = (cos.clone(), sin.neg()?);
        Ok(Var::from_op(y, &[self], rule("rope", move |g: &Tensor| Ok(vec![Some(g.rope(&cos, &sin, interleaved)?)]))))
    }

    /// Gated linear unit `act(self) * up`: `d up = g act(gate)`, `d gate = g up act'(gate)`.
    pub fn glu(&self, up: &Var, act: GluActivation) -> Result<Var> {
        let (gate, u) = (self.value(), up.value());
        let y = gate.glu(&u, act)?;
        let op = match act {
            GluActivation::Silu => UnaryOp::Silu,
            GluActivation::GeluTanh => UnaryOp::GeluTanh,
        };
        Ok(Var::from_op(
            y,
            &[self, up],
            rule("glu", move |g: &Tensor| {
                let a = gate.unary(op)?;
                Ok(vec![Some(g.mul(&u)?.mul(&derivative(op, &gate, &a)?)?), Some(g.mul(&a)?)])
            }),
        ))
    }

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
        let inputs: Vec<&Var> = [q, k, v].into_iter().chain(sinks).collect();
        Ok(Var::from_op(
            y,
            &inputs,
            rule("attention", move |g: &Tensor| attention_backward(&qt, &kt, &vt, st.as_ref(), &spec, g)),
        ))
    }

    /// Row `r` of `self` [R, K] times expert `ids[r]`'s weight from `weights` [E, K, N].
    /// `dx = expert_matmul(g, weights^T)`; each expert's weight gradient is `x_e^T g_e` over
    /// the rows routed to it.
    pub fn expert_matmul(&self, weights: &Var, ids: &Tensor) -> Result<Var> {
        let (x, w) = (self.value(), weights.value());
        let y = x.expert_matmul(&w, ids)?;
        let ids = ids.clone();
        Ok(Var::from_op(
            y,
            &[self, weights],
            rule("expert_matmul", move |g: &Tensor| {
                let dx = g.expert_matmul(&w.transpose(1, 2)?.to_dtype(g.dtype())?, &ids)?;
                let (e, k, n) = (w.dims()[0], w.dims()[1], w.dims()[2]);
                let routed: Vec<u32> = ids.to_dtype(DType::U32)?.to_vec()?;
                let mut per_expert = Vec::with_capacity(e);
                for expert in 0..e as u32 {
                    let rows: Vec<u32> =
                        routed.iter().enumerate().filter(|(_, r)| **r == expert).map(|(i, _)| i as u32).collect();
                    per_expert.push(if rows.is_empty() {
                        Tensor::zeros([k, n], g.dtype(), g.device())?
                    } else {
                        let count = rows.len();
                        let rows = Tensor::from_vec(rows, [count], g.device())?;
                        x.index_select(&rows, 0usize)?.t()?.matmul(&g.index_select(&rows, 0usize)?)?
                    });
                }
                let dw = Tensor::stack(&per_expert.iter().collect::<Vec<_>>(), 0usize)?.to_dtype(w.dtype())?;
                Ok(vec![Some(dx), Some(dw)])
            }),
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
