//! Rotary position embedding (Su et al. 2021, RoFormer) and the schedules that stretch it to
//! longer contexts: linear position interpolation (Chen et al. 2023), Llama 3's frequency-band
//! scaling, and YaRN (Peng et al. 2023). Frequencies follow Hugging Face's
//! `modeling_rope_utils` exactly, since checkpoints were trained with them.
//!
//! Each pair of dims `(a, b)` at position `p` is rotated by the angle `p * inv_freq[i]`, with
//! `inv_freq[i] = theta^(-2i/d)`: low dims spin fast (local detail), high dims slowly (long range).

use std::sync::{Arc, Mutex, Weak};

use autograd::Var;
use tensor::{DType, Device, Result, Tensor};

use crate::RmsNorm;

/// How the base frequencies are rescaled for contexts longer than training (`rope_scaling`,
/// or `rope_parameters.rope_type` in transformers 5).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// `rope_type: default`: the plain schedule.
    None,
    /// `rope_type: linear`: every frequency divided by `factor` (positions interpolated).
    Linear { factor: f64 },
    /// `rope_type: llama3`: low frequencies (wavelength above `original / low_freq_factor`)
    /// divided by `factor`, high ones kept, the band between blended.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: f64 },
    /// `rope_type: yarn`: dims that rotate fewer than `beta_slow` times over the original context
    /// are interpolated, those rotating more than `beta_fast` times kept, a linear ramp between.
    /// `attention_factor` scales cos and sin (`mscale / mscale_all_dim` ratio of `get_mscale`).
    Yarn {
        factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        mscale: f64,
        mscale_all_dim: f64,
        original_max_position_embeddings: f64,
        truncate: bool,
    },
}

/// YaRN's `get_mscale`: `0.1 * mscale * ln(factor) + 1` for factor > 1. DeepSeek-V3 multiplies
/// its softmax scale by `get_mscale(factor, mscale_all_dim)^2` (1.873854 for factor 40).
pub fn yarn_get_mscale(factor: f64, mscale: f64) -> f64 {
    if factor <= 1.0 { 1.0 } else { 0.1 * mscale * factor.ln() + 1.0 }
}

/// A rotary embedding for one layer kind: its frequencies, the cos/sin scale and the pair layout.
/// Build it with [`Rope::new`]: the resident tables are keyed by the frequencies it computes.
#[derive(Clone, Debug)]
pub struct Rope {
    /// `rotary_dim / 2` inverse frequencies, after scaling.
    pub inv_freq: Vec<f64>,
    /// Multiplies cos and sin (YaRN's attention factor; 1 otherwise).
    pub attention_factor: f64,
    /// Pairs `(2i, 2i+1)` (Meta's complex form: Llama 4, DeepSeek's rope dims) instead of
    /// `(i, i + d/2)` (HF `rotate_half`).
    pub interleaved: bool,
    /// cos and sin for positions `0..capacity`, built once per dtype and device and shared by
    /// every rope of the same frequencies (each layer holds one), so a step reads rows of a
    /// resident table instead of computing and uploading its own, and all layers share them.
    resident: Arc<Mutex<Vec<Resident>>>,
}

/// Tables for positions `0..capacity` on one device in one dtype, and the rows of the last
/// step (q and k of every layer ask for the same positions).
struct Resident {
    dtype: DType,
    device: Device,
    capacity: usize,
    cos: Tensor,
    sin: Tensor,
    last: Option<(usize, usize, Tensor, Tensor)>,
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resident({} positions, {})", self.capacity, self.dtype)
    }
}

type Shared = Arc<Mutex<Vec<Resident>>>;

/// The resident tables of every live rope, by its frequencies and scale (as bits), so layers
/// built separately with the same settings share one set. Entries die with their last rope.
static SHARED: Mutex<Vec<SharedEntry>> = Mutex::new(Vec::new());

/// (inv_freq bits, attention_factor bits, the tables while some rope holds them).
type SharedEntry = (Vec<u64>, u64, Weak<Mutex<Vec<Resident>>>);

fn shared_tables(inv_freq: &[f64], attention_factor: f64) -> Shared {
    let key: Vec<u64> = inv_freq.iter().map(|f| f.to_bits()).collect();
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    shared.retain(|entry| entry.2.strong_count() > 0);
    let found = shared.iter().find(|(k, a, _)| *k == key && *a == attention_factor.to_bits());
    if let Some(tables) = found.and_then(|entry| entry.2.upgrade()) {
        return tables;
    }
    let tables = Shared::default();
    shared.push((key, attention_factor.to_bits(), Arc::downgrade(&tables)));
    tables
}

/// Resident tables hold at least this many positions, and grow to the next power of two.
const MIN_RESIDENT_POSITIONS: usize = 1024;

impl Rope {
    /// Frequencies for `dim` rotated dims with base `theta` (`rope_theta`) and a scaling.
    pub fn new(dim: usize, theta: f64, scaling: &RopeScaling, interleaved: bool) -> Rope {
        let base: Vec<f64> = (0..dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64)).collect();
        let (inv_freq, attention_factor) = match *scaling {
            RopeScaling::None => (base, 1.0),
            RopeScaling::Linear { factor } => (base.iter().map(|f| f / factor).collect(), 1.0),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                let scaled = base
                    .iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen > low_wavelen {
                            f / factor
                        } else if wavelen < high_wavelen {
                            f
                        } else {
                            let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect();
                (scaled, 1.0)
            }
            RopeScaling::Yarn {
                factor,
                beta_fast,
                beta_slow,
                mscale,
                mscale_all_dim,
                original_max_position_embeddings: old,
                truncate,
            } => {
                // The dim at which a frequency completes `rotations` turns over the original context.
                let correction_dim = |rotations: f64| {
                    (dim as f64 * (old / (rotations * 2.0 * std::f64::consts::PI)).ln()) / (2.0 * theta.ln())
                };
                let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
                if truncate {
                    low = low.floor();
                    high = high.ceil();
                }
                let (low, high) = (low.max(0.0), high.min(dim as f64 - 1.0));
                let high = if low == high { high + 0.001 } else { high };
                let scaled = base
                    .iter()
                    .enumerate()
                    .map(|(i, &f)| {
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        let extrapolation = 1.0 - ramp; // 1 keeps the original frequency
                        (f / factor) * (1.0 - extrapolation) + f * extrapolation
                    })
                    .collect();
                let attention_factor = if mscale != 0.0 && mscale_all_dim != 0.0 {
                    yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)
                } else {
                    yarn_get_mscale(factor, 1.0)
                };
                (scaled, attention_factor)
            }
        };
        let resident = shared_tables(&inv_freq, attention_factor);
        Rope { inv_freq, attention_factor, interleaved, resident }
    }

    /// Rotated dims.
    pub fn dim(&self) -> usize {
        self.inv_freq.len() * 2
    }

    /// cos and sin tables [len, dim/2] for positions `start .. start + len`, scaled by the
    /// attention factor. Angles are computed in f64 on the host, then stored as `dtype`.
    pub fn tables(&self, start: usize, len: usize, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for p in start..start + len {
            for &f in &self.inv_freq {
                let angle = p as f64 * f;
                cos.push(angle.cos() * self.attention_factor);
                sin.push(angle.sin() * self.attention_factor);
            }
        }
        let make = |v: Vec<f64>| Tensor::from_vec(v, [len, half], &Device::cpu())?.to_dtype(dtype)?.to(device);
        Ok((make(cos)?, make(sin)?))
    }

    /// Rows `start .. start + len` of the resident tables on `device` in `dtype`, building or
    /// growing them (to a power of two of positions, at least `MIN_RESIDENT_POSITIONS`) when
    /// they are too short. The values are those of [`Rope::tables`], bit for bit.
    pub fn resident_tables(&self, start: usize, len: usize, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let mut resident = self.resident.lock().unwrap_or_else(|p| p.into_inner());
        let index = match resident.iter().position(|r| r.dtype == dtype && r.device.same_as(device)) {
            Some(i) if resident[i].capacity >= start + len => i,
            found => {
                let capacity = (start + len).next_power_of_two().max(MIN_RESIDENT_POSITIONS);
                let (cos, sin) = self.tables(0, capacity, dtype, device)?;
                let fresh = Resident { dtype, device: device.clone(), capacity, cos, sin, last: None };
                match found {
                    Some(i) => {
                        resident[i] = fresh;
                        i
                    }
                    None => {
                        resident.push(fresh);
                        resident.len() - 1
                    }
                }
            }
        };
        let r = &mut resident[index];
        if let Some((s, l, cos, sin)) = &r.last
            && (*s, *l) == (start, len)
        {
            return Ok((cos.clone(), sin.clone()));
        }
        // Views into the resident tables: the kernels read rows from an offset, nothing is
        // copied or allocated per step.
        let cos = r.cos.narrow(0, start, len)?;
        let sin = r.sin.narrow(0, start, len)?;
        r.last = Some((start, len, cos.clone(), sin.clone()));
        Ok((cos, sin))
    }

    /// Rotates `x [.., T, dim]` whose rows sit at positions `start .. start + T`.
    pub fn apply(&self, x: &Var, start: usize) -> Result<Var> {
        let t = x.dims()[x.rank() - 2];
        let (cos, sin) = self.resident_tables(start, t, x.dtype(), &x.device())?;
        x.rope(&cos, &sin, self.interleaved)
    }

    /// `self.apply(x, start)`, or with `norm` `self.apply_after_norm(x, norm, start)`, written
    /// into `dst` (a view of x's shape: the rows a step appends to its KV cache) rather than a new
    /// tensor, with `values` copied into theirs alongside. No gradient: it is for keys and values
    /// going into a cache (`Tensor::rope_into`: on a GPU one dispatch, where the rotation and the
    /// two copies were three).
    pub fn apply_into(
        &self,
        x: &Tensor,
        norm: Option<&RmsNorm>,
        start: usize,
        dst: &Tensor,
        values: Option<(&Tensor, &Tensor)>,
    ) -> Result<()> {
        let t = x.dims()[x.rank() - 2];
        let (cos, sin) = self.resident_tables(start, t, x.dtype(), x.device())?;
        let weight = norm.and_then(|n| n.weight.as_ref().map(|w| w.value()));
        let norm = norm.map(|n| (weight.as_ref(), n.spec));
        x.rope_into(norm, &cos, &sin, self.interleaved, dst, values)
    }

    /// `self.apply(&norm.forward(x)?, start)`: a per-head QK-norm, then the rotation. Where no
    /// gradient flows (inference) the two run as one fused op (`Tensor::rms_norm_rope`: on a GPU
    /// one dispatch instead of two per projection and layer); with gradients, as the two ops.
    pub fn apply_after_norm(&self, x: &Var, norm: &RmsNorm, start: usize) -> Result<Var> {
        let learns = x.requires_grad() || norm.weight.as_ref().is_some_and(|w| w.requires_grad());
        if autograd::is_grad_enabled() && learns {
            return self.apply(&norm.forward(x)?, start);
        }
        let t = x.dims()[x.rank() - 2];
        let (cos, sin) = self.resident_tables(start, t, x.dtype(), &x.device())?;
        let w = norm.weight.as_ref().map(|w| w.value());
        Ok(Var::untracked(x.value().rms_norm_rope(w.as_ref(), norm.spec, &cos, &sin, self.interleaved)?))
    }
}
