//! Fused ops: RMSNorm, rotary embedding, gated linear units and attention. Each has a
//! composite built from primitive ops (`*_composite`): it is the readable definition, the test
//! oracle for the fused kernels, and the fallback when a backend reports `Unsupported`.

use crate::backend::{AttentionSpec, GluActivation, RmsNormSpec};
use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// Runs a backend's fused op, falling back to the composite when the backend says it has none.
    fn fused_or(fused: impl FnOnce() -> Result<Tensor>, composite: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
        match fused() {
            Err(e) if e.is_unsupported() => composite(),
            other => other,
        }
    }

    /// RMSNorm over the last axis: `x / sqrt(mean(x^2) + eps) * w` (Zhang & Sennrich 2019), or
    /// `* (1 + w)` for Gemma. `weight` has the last axis's extent; `None` gives the weightless
    /// norm (Llama 4's L2 QK-norm).
    pub fn rms_norm(&self, weight: Option<&Tensor>, spec: RmsNormSpec) -> Result<Tensor> {
        const OP: &str = "rms_norm";
        let d = *self.dims().last().ok_or_else(|| Error::shape(OP, "needs at least one dim"))?;
        if let Some(w) = weight {
            self.check_same_device(OP, w)?;
            if w.dims() != [d] {
                return Err(Error::shape(
                    OP,
                    format!("weight {:?} does not match the last axis of {:?}", w.shape(), self.shape()),
                ));
            }
        }
        self.float_op(OP, |x| {
            let x = x.contiguous()?;
            let w = weight.map(|w| w.to_dtype(x.dtype()).and_then(|w| w.contiguous())).transpose()?;
            Tensor::fused_or(
                || {
                    let buffer = x.device().backend().rms_norm(x.src(), w.as_ref().map(|w| w.src()), spec)?;
                    Ok(x.new_like(buffer, x.shape().clone(), x.dtype()))
                },
                || x.rms_norm_composite(w.as_ref(), spec),
            )
        })
    }

    /// RMSNorm from primitives.
    pub fn rms_norm_composite(&self, weight: Option<&Tensor>, spec: RmsNormSpec) -> Result<Tensor> {
        let normed = self.mul(&self.sqr()?.mean(-1, true)?.add_scalar(spec.eps)?.rsqrt()?)?;
        match weight {
            None => Ok(normed),
            Some(w) if spec.add_unit_offset => normed.mul(&w.add_scalar(1.0)?),
            Some(w) => normed.mul(w),
        }
    }

    /// Rotary position embedding (Su et al. 2021, RoFormer) of `x [.., T, D]` with `cos`, `sin`
    /// tables [T, D/2]: each pair `(a, b)` becomes `(a cos - b sin, b cos + a sin)`. Pairs are
    /// `(i, i + D/2)` in the split-halves layout (HF `rotate_half`), `(2i, 2i + 1)` interleaved.
    pub fn rope(&self, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Tensor> {
        const OP: &str = "rope";
        self.check_same_device(OP, cos)?;
        self.check_same_device(OP, sin)?;
        let r = self.rank();
        if r < 2 || !self.dims()[r - 1].is_multiple_of(2) {
            return Err(Error::shape(OP, format!("needs x [.., T, D] with even D, got {:?}", self.shape())));
        }
        let (t, d) = (self.dims()[r - 2], self.dims()[r - 1]);
        if cos.dims() != [t, d / 2] || sin.dims() != [t, d / 2] {
            return Err(Error::shape(
                OP,
                format!(
                    "cos {:?} and sin {:?} must be [T, D/2] = [{t}, {}] for x {:?}",
                    cos.shape(),
                    sin.shape(),
                    d / 2,
                    self.shape()
                ),
            ));
        }
        self.float_op(OP, |x| {
            let x = x.contiguous()?;
            let cos = cos.to_dtype(x.dtype())?.contiguous()?;
            let sin = sin.to_dtype(x.dtype())?.contiguous()?;
            Tensor::fused_or(
                || {
                    let buffer = x.device().backend().rope(x.src(), cos.src(), sin.src(), interleaved)?;
                    Ok(x.new_like(buffer, x.shape().clone(), x.dtype()))
                },
                || x.rope_composite(&cos, &sin, interleaved),
            )
        })
    }

    /// Rotary embedding from primitives.
    pub fn rope_composite(&self, cos: &Tensor, sin: &Tensor, interleaved: bool) -> Result<Tensor> {
        let r = self.rank();
        let d = self.dims()[r - 1];
        let (a, b) = if interleaved {
            let mut dims = self.dims().to_vec();
            dims[r - 1] = d / 2;
            dims.push(2);
            let pairs = self.reshape(dims)?; // (.., T, D/2, 2)
            (pairs.select(-1, 0)?, pairs.select(-1, 1)?)
        } else {
            (self.narrow(-1, 0, d / 2)?, self.narrow(-1, d / 2, d / 2)?)
        };
        let ra = a.mul(cos)?.sub(&b.mul(sin)?)?;
        let rb = b.mul(cos)?.add(&a.mul(sin)?)?;
        if interleaved { Tensor::stack(&[&ra, &rb], -1)?.reshape(self.shape()) } else { Tensor::cat(&[&ra, &rb], -1) }
    }

    /// Gated linear unit `act(self) * up` (Shazeer 2020): SwiGLU with `Silu`, GeGLU with `GeluTanh`.
    pub fn glu(&self, up: &Tensor, act: GluActivation) -> Result<Tensor> {
        const OP: &str = "glu";
        self.check_same_device(OP, up)?;
        self.check_same_dtype(OP, up)?;
        if self.shape() != up.shape() {
            return Err(Error::shape(OP, format!("gate {:?} and up {:?} differ", self.shape(), up.shape())));
        }
        let up = up.to_dtype(if self.dtype().is_half() { DType::F32 } else { up.dtype() })?;
        self.float_op(OP, |gate| {
            Tensor::fused_or(
                || {
                    let buffer = gate.device().backend().glu(gate.src(), up.src(), act)?;
                    Ok(gate.new_like(buffer, gate.shape().clone(), gate.dtype()))
                },
                || gate.glu_composite(&up, act),
            )
        })
    }

    /// The gated linear unit from primitives.
    pub fn glu_composite(&self, up: &Tensor, act: GluActivation) -> Result<Tensor> {
        let gated = match act {
            GluActivation::Silu => self.silu()?,
            GluActivation::GeluTanh => self.gelu_tanh()?,
        };
        gated.mul(up)
    }

    /// Scaled dot-product attention over q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv]
    /// (Vaswani et al. 2017), with GQA/MQA head sharing (Ainslie et al. 2023) when Hkv < Hq,
    /// the mask and optional logit soft-capping of `spec`. Gives [B, Hq, Tq, Dv].
    pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttentionSpec) -> Result<Tensor> {
        Tensor::attention_with_sinks(q, k, v, None, spec)
    }

    /// Attention with optional sinks [Hq] (gpt-oss, after Xiao et al. 2023, "Efficient Streaming
    /// Language Models with Attention Sinks"): a learned logit per head joins the softmax's
    /// denominator as one more column that reads no value, so a head can attend to nothing.
    pub fn attention_with_sinks(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        sinks: Option<&Tensor>,
        spec: &AttentionSpec,
    ) -> Result<Tensor> {
        const OP: &str = "attention";
        q.check_same_device(OP, k)?;
        q.check_same_device(OP, v)?;
        q.check_same_dtype(OP, k)?;
        q.check_same_dtype(OP, v)?;
        let bad = || {
            Error::shape(
                OP,
                format!(
                    "needs q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv] with Hkv dividing Hq; got {:?}, {:?}, {:?}",
                    q.shape(),
                    k.shape(),
                    v.shape()
                ),
            )
        };
        if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 {
            return Err(bad());
        }
        let (qd, kd, vd) = (q.dims(), k.dims(), v.dims());
        if qd[0] != kd[0]
            || kd[0] != vd[0]
            || kd[1] != vd[1]
            || kd[2] != vd[2]
            || qd[3] != kd[3]
            || kd[1] == 0
            || qd[1] % kd[1] != 0
        {
            return Err(bad());
        }
        let [b, hq, tq, _] = [qd[0], qd[1], qd[2], qd[3]];
        let dv = vd[3];
        if let Some(s) = sinks {
            q.check_same_device(OP, s)?;
            if s.dims() != [hq] {
                return Err(Error::shape(OP, format!("sinks {:?} must be [Hq] = [{hq}]", s.shape())));
            }
        }
        q.float_op(OP, |q| {
            // Keys and values are often views into a KV cache: keep them as they are when their
            // rows are contiguous, instead of copying the whole cache every step.
            let rows_contiguous = |t: Tensor| -> Result<Tensor> {
                if t.layout().strides()[3] == 1 || t.dims()[3] <= 1 { Ok(t) } else { t.contiguous() }
            };
            let (k, v) = (rows_contiguous(k.to_dtype(q.dtype())?)?, rows_contiguous(v.to_dtype(q.dtype())?)?);
            let q = q.contiguous()?;
            let sinks = sinks.map(|s| s.to_dtype(q.dtype())?.contiguous()).transpose()?;
            Tensor::fused_or(
                || {
                    let sinks = sinks.as_ref().map(|s| s.src());
                    let buffer = q.device().backend().attention(q.src(), k.src(), v.src(), sinks, spec)?;
                    Ok(q.new_like(buffer, [b, hq, tq, dv], q.dtype()))
                },
                || Tensor::attention_composite_with_sinks(&q, &k, &v, sinks.as_ref(), spec),
            )
        })
    }

    /// Attention from primitives: scores, mask, softmax, weighted sum. Materialises the
    /// [Tq, Tk] score matrix, which the fused kernels avoid.
    pub fn attention_composite(q: &Tensor, k: &Tensor, v: &Tensor, spec: &AttentionSpec) -> Result<Tensor> {
        Tensor::attention_composite_with_sinks(q, k, v, None, spec)
    }

    /// Attention with sinks from primitives: the sink logits are appended as one more column of
    /// the scores, the softmax runs over the widened rows, and the sink column is dropped.
    pub fn attention_composite_with_sinks(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        sinks: Option<&Tensor>,
        spec: &AttentionSpec,
    ) -> Result<Tensor> {
        let (b, hq, tq, d) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
        let (hkv, tk, dv) = (k.dims()[1], k.dims()[2], v.dims()[3]);
        let group = hq / hkv;
        // (B, Hkv, G, Tq, D) @ (B, Hkv, 1, D, Tk): each kv head serves its group without copies.
        let q = q.reshape([b, hkv, group, tq, d])?;
        let k = k.unsqueeze(2)?;
        let v = v.unsqueeze(2)?;
        let mut scores = q.matmul(&k.t()?)?.mul_scalar(spec.scale)?; // (B, Hkv, G, Tq, Tk)
        if let Some(cap) = spec.softcap {
            scores = scores.mul_scalar(1.0 / cap)?.tanh()?.mul_scalar(cap)?;
        }
        let mask: Vec<u32> = (0..tq).flat_map(|i| (0..tk).map(move |j| spec.mask.allows(i, j) as u32)).collect();
        let mask = Tensor::from_vec(mask, [tq, tk], q.device())?;
        // A large finite fill keeps fully masked rows finite; multiplying by the mask then
        // zeroes them, so "no visible key" gives zeros as the fused kernels do.
        let fill = Tensor::full(-1e30, (), scores.dtype(), q.device())?;
        let masked = mask.where_cond(&scores, &fill)?;
        let probs = match sinks {
            None => masked.softmax(-1)?,
            Some(s) => {
                let column =
                    s.to_dtype(masked.dtype())?.reshape([1, hkv, group, 1, 1])?.broadcast_to([b, hkv, group, tq, 1])?;
                Tensor::cat(&[&masked, &column], -1)?.softmax(-1)?.narrow(-1, 0, tk)?
            }
        };
        let probs = probs.mul(&mask.to_dtype(probs.dtype())?)?;
        probs.matmul(&v)?.reshape([b, hq, tq, dv])
    }
}
