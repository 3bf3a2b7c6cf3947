//! Support for QK-Clip (Kimi K2's MuonClip): measuring each head's largest attention logit, and
//! rescaling rows of a projection weight in place.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use autograd::{Var, no_grad};
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

/// The largest attention logit per query head of a layer's last forward pass, recorded only
/// while asked (MuonClip needs it after each training step; inference skips the extra pass).
#[derive(Default)]
pub struct LogitRecorder {
    on: AtomicBool,
    maxima: Mutex<Option<Vec<f64>>>,
}

impl LogitRecorder {
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// Records the maxima of `q`'s scores against `k` under `spec`, when recording is on.
    pub fn record(&self, q: &Var, k: &Var, spec: &AttentionSpec) -> Result<()> {
        if self.on.load(Ordering::Relaxed) {
            let maxima = no_grad(|| max_logits_per_head(&q.value(), &k.value(), spec))?;
            *self.maxima.lock().unwrap_or_else(|p| p.into_inner()) = Some(maxima);
        }
        Ok(())
    }

    /// The last recorded maxima.
    pub fn last(&self) -> Option<Vec<f64>> {
        self.maxima.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last recorded maxima, taken: a clip uses them once, since they describe the weights
    /// before it, and a second clip without a new forward pass must not rescale again.
    pub fn take(&self) -> Option<Vec<f64>> {
        self.maxima.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Takes the last maxima (see [`Self::take`]) and lists the heads a clip at `tau` rescales:
    /// `(head, gamma)` with `gamma = tau / max` for each head whose max exceeded `tau`. Each
    /// attention kind then splits `gamma` over its own query and key rows.
    pub fn take_over(&self, tau: f64) -> Vec<(usize, f64)> {
        let maxima = self.take().unwrap_or_default();
        maxima
            .into_iter()
            .enumerate()
            .filter_map(|(head, m)| if m <= tau { None } else { Some((head, tau / m)) })
            .collect()
    }
}
