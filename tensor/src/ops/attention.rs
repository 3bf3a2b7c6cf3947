//! Scaled dot-product attention, a fused op: the backend's kernel (which never materialises
//! the [Tq, Tk] scores), with `attention_composite` from primitive ops as the readable
//! definition, the test oracle and the fallback.

use crate::backend::AttentionSpec;
use crate::{DType, Error, Result, Tensor};

impl Tensor {
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
        check_operands(OP, q, k, v)?;
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
        check_sinks(OP, q, sinks, hq)?;
        q.float_op(OP, |q| {
            // Keys and values are often views into a KV cache: keep them as they are when their
            // rows are contiguous, instead of copying the whole cache every step.
            let rows_contiguous = |t: Tensor| -> Result<Tensor> {
                if t.layout().strides()[3] == 1 || t.dims()[3] <= 1 { Ok(t) } else { t.contiguous() }
            };
            let q = q.contiguous()?;
            let sinks = sinks.map(|s| s.to_dtype(q.dtype())?.contiguous()).transpose()?;
            // A half-precision KV cache under f32 queries: the backend reads k and v as stored
            // where it can (the GPU kernels widen each element as they load it); where it
            // cannot, they are widened below.
            if half_kv(&q, k) {
                let (k, v) = (rows_contiguous(k.clone())?, rows_contiguous(v.clone())?);
                let sinks = sinks.as_ref().map(|s| s.src());
                match q.device().backend().attention(q.src(), k.src(), v.src(), sinks, spec) {
                    Ok(buffer) => return Ok(q.new_like(buffer, [b, hq, tq, dv], q.dtype())),
                    Err(e) if e.is_unsupported() => {}
                    Err(e) => return Err(e),
                }
            }
            let (k, v) = (rows_contiguous(k.to_dtype(q.dtype())?)?, rows_contiguous(v.to_dtype(q.dtype())?)?);
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

    /// Attention over a paged KV cache (Kwon et al. 2023, "Efficient Memory Management for Large
    /// Language Model Serving with PagedAttention"): the keys and values of one sequence live in
    /// fixed-size blocks of a pool shared by many sequences, `k_pool` [N, Hkv, S, D] and `v_pool`
    /// [N, Hkv, S, Dv]; the sequence's key row `j` is row `j % S` of block `blocks[j / S]`, for
    /// `j < len`. q is [1, Hq, Tq, D] (one sequence); the mask's `k_start` is the position of
    /// key row 0. Equal to [`Tensor::attention_with_sinks`] over the gathered rows; the CPU
    /// kernel walks the blocks in place, a device without a kernel gathers the rows first.
    /// Inference only: the result does not carry gradients to the pools.
    #[allow(clippy::too_many_arguments)]
    pub fn paged_attention(
        q: &Tensor,
        k_pool: &Tensor,
        v_pool: &Tensor,
        sinks: Option<&Tensor>,
        blocks: &[u32],
        len: usize,
        spec: &AttentionSpec,
    ) -> Result<Tensor> {
        const OP: &str = "paged_attention";
        check_operands(OP, q, k_pool, v_pool)?;
        let bad = |why: String| Error::shape(OP, why);
        if q.rank() != 4 || k_pool.rank() != 4 || v_pool.rank() != 4 {
            return Err(bad(format!(
                "needs q [1, Hq, Tq, D], k_pool [N, Hkv, S, D], v_pool [N, Hkv, S, Dv]; got {:?}, {:?}, {:?}",
                q.shape(),
                k_pool.shape(),
                v_pool.shape()
            )));
        }
        let (qd, kd, vd) = (q.dims(), k_pool.dims(), v_pool.dims());
        if qd[0] != 1 || kd[..3] != vd[..3] || qd[3] != kd[3] || kd[1] == 0 || qd[1] % kd[1] != 0 || kd[2] == 0 {
            return Err(bad(format!(
                "needs q [1, Hq, Tq, D], k_pool [N, Hkv, S, D], v_pool [N, Hkv, S, Dv] with Hkv dividing Hq; got {:?}, {:?}, {:?}",
                q.shape(),
                k_pool.shape(),
                v_pool.shape()
            )));
        }
        let (n, size) = (kd[0], kd[2]);
        if len > blocks.len() * size {
            return Err(bad(format!("{len} rows do not fit in {} blocks of {size}", blocks.len())));
        }
        if let Some(&b) = blocks.iter().find(|&&b| b as usize >= n) {
            return Err(bad(format!("block {b} is outside the pool of {n} blocks")));
        }
        let blocks = &blocks[..len.div_ceil(size)];
        let [hq, tq, dv] = [qd[1], qd[2], vd[3]];
        check_sinks(OP, q, sinks, hq)?;
        q.float_op(OP, |q| {
            // The pools are never copied: a view whose rows are not contiguous is refused.
            for pool in [k_pool, v_pool] {
                let dtype_ok = pool.dtype() == q.dtype() || half_kv(q, pool);
                if !dtype_ok || (pool.layout().strides()[3] != 1 && pool.dims()[3] > 1) {
                    return Err(bad(
                        "the pools must have q's compute dtype (or be f16/bf16 under f32 queries) and contiguous rows"
                            .to_string(),
                    ));
                }
            }
            let q = q.contiguous()?;
            let sinks = sinks.map(|s| s.to_dtype(q.dtype())?.contiguous()).transpose()?;
            Tensor::fused_or(
                || {
                    let sinks = sinks.as_ref().map(|s| s.src());
                    let kv = crate::PagedKv { k_pool: k_pool.src(), v_pool: v_pool.src(), blocks, len };
                    let buffer = q.device().backend().paged_attention(q.src(), kv, sinks, spec)?;
                    Ok(q.new_like(buffer, [1, hq, tq, dv], q.dtype()))
                },
                || {
                    let (k, v) = (gather_blocks(k_pool, blocks, len)?, gather_blocks(v_pool, blocks, len)?);
                    Tensor::attention_with_sinks(&q, &k, &v, sinks.as_ref(), spec)
                },
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

/// The first `len` rows of `blocks` of a pool [N, H, S, D] laid end to end: [1, H, len, D].
fn gather_blocks(pool: &Tensor, blocks: &[u32], len: usize) -> Result<Tensor> {
    let (h, size, d) = (pool.dims()[1], pool.dims()[2], pool.dims()[3]);
    let ids = Tensor::from_vec(blocks.to_vec(), [blocks.len()], pool.device())?;
    let rows = pool.index_select(&ids, 0usize)?.transpose(0, 1)?.contiguous()?; // [H, n, S, D]
    rows.reshape([1, h, blocks.len() * size, d])?.narrow(2, 0, len)
}

/// Keys and values (or their pools) must sit on q's device with q's dtype, or, for f32 queries,
/// share one half-precision dtype (a KV cache kept in f16 or bf16): the first checks of the dense
/// and the paged attention.
fn check_operands(op: &str, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<()> {
    q.check_same_device(op, k)?;
    q.check_same_device(op, v)?;
    if half_kv(q, k) {
        return k.check_same_dtype(op, v);
    }
    q.check_same_dtype(op, k)?;
    q.check_same_dtype(op, v)
}

/// Whether `kv` is a half-precision cache under f32 queries.
fn half_kv(q: &Tensor, kv: &Tensor) -> bool {
    q.dtype() == DType::F32 && kv.dtype().is_half()
}

/// Sinks, when given, must sit on q's device and hold one logit per query head.
fn check_sinks(op: &str, q: &Tensor, sinks: Option<&Tensor>, hq: usize) -> Result<()> {
    if let Some(s) = sinks {
        q.check_same_device(op, s)?;
        if s.dims() != [hq] {
            return Err(Error::shape(op, format!("sinks {:?} must be [Hq] = [{hq}]", s.shape())));
        }
    }
    Ok(())
}
