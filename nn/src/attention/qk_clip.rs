//! Support for QK-Clip (Kimi K2's MuonClip): measuring each head's largest attention logit, and
//! rescaling rows of a projection weight in place.

use autograd::Var;
use tensor::{AttentionSpec, Result, Tensor};

/// The largest scaled attention logit `scale * q . k` per query head over every visible pair,
/// for q [B, Hq, Tq, D] and k [B, Hkv, Tk, D]. Materialises the scores; used only while training.
pub fn max_logits_per_head(q: &Tensor, k: &Tensor, spec: &AttentionSpec) -> Result<Vec<f64>> {
    let (b, hq, tq, d) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
    let (hkv, tk) = (k.dims()[1], k.dims()[2]);
    let group = hq / hkv;
    let scores = q.reshape([b, hkv, group, tq, d])?.matmul(&k.unsqueeze(2)?.t()?)?.mul_scalar(spec.scale)?;
    let mask: Vec<u32> = (0..tq).flat_map(|i| (0..tk).map(move |j| spec.mask.allows(i, j) as u32)).collect();
    let mask = Tensor::from_vec(mask, [tq, tk], q.device())?;
    let floor = Tensor::full(f64::NEG_INFINITY, (), scores.dtype(), q.device())?;
    let masked = mask.where_cond(&scores, &floor)?; // (B, Hkv, G, Tq, Tk)
    let per_head = masked.permute(&[1, 2, 0, 3, 4])?.reshape([hq, b * tq * tk])?.max(1usize, false)?;
    per_head.to_vec::<f64>()
}

/// Multiplies rows `start..start + len` of a 2-D weight by `factor`, in place.
pub fn scale_rows(weight: &Var, start: usize, len: usize, factor: f64) -> Result<()> {
    let w = weight.value();
    let rows = w.narrow(0, start, len)?;
    rows.write_from(&rows.mul_scalar(factor)?)
}
