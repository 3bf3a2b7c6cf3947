//! Routers: which experts each token goes to, and with what weight.
//!
//! - Qwen3-MoE (`Qwen3MoeTopKRouter`): `p = softmax(x W^T)` over all experts, the top k, divided
//!   by their sum when `norm_topk_prob`.
//! - DeepSeek-V3 / Kimi K2 (`noaux_tc`, DeepSeek-V3 report §2.1.2): `s = sigmoid(x W^T)`; the
//!   correction bias `e_score_correction_bias` is added only to *choose*: groups are scored by
//!   the sum of their two best biased scores, the best `topk_group` of `n_group` groups are kept
//!   (the rest masked with -inf), and the top k experts of the kept groups chosen. Their weights
//!   are the *unbiased* `s`, normalised to sum to 1, times `routed_scaling_factor`. The bias is
//!   trained without gradients: after each step it moves by `gamma * sign(mean load - load)`.
//! - Llama 4 (`Llama4Router`): the top-1 logit; the weight `sigmoid(logit)` scales the expert's
//!   *input* rather than its output.
//! - gpt-oss (`GptOssTopKRouter`): logits `x W^T + b` with a learned bias `router.bias`; the top k
//!   logits, and a softmax over just those k (the other experts never enter the normalisation).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use autograd::{Var, no_grad};
use tensor::{DType, Error, Result, Tensor};

use crate::{Init, Module, join};

/// The routing rule and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RouterKind {
    SoftmaxTopK {
        norm_topk_prob: bool,
    },
    SigmoidGroupLimited {
        n_group: usize,
        topk_group: usize,
        routed_scaling_factor: f64,
        norm_topk_prob: bool,
    },
    /// The weight multiplies the expert's input (the layer reads this from `scales_input`).
    Top1SigmoidInput,
    /// gpt-oss: biased logits, top k, softmax over the chosen k.
    BiasedSoftmaxOverChosen,
}

/// The choice for a batch of tokens.
pub struct Routing {
    /// [N, k] u32 expert ids.
    pub ids: Tensor,
    /// [N, k] combine weights, differentiable with respect to the router weight.
    pub weights: Var,
}

pub struct MoeRouter {
    pub kind: RouterKind,
    pub num_experts: usize,
    pub top_k: usize,
    /// [E, hidden]
    pub weight: Var,
    /// DeepSeek's `e_score_correction_bias` [E]: a value without gradient (`requires_grad` is
    /// false), loaded and saved with the weights, updated by `update_bias`.
    pub correction_bias: Option<Var>,
    /// gpt-oss's trained logit bias `router.bias` [E].
    pub bias: Option<Var>,
    /// Tokens routed to each expert since the last `take_loads`: an [E] f32 tensor on the
    /// router's device, added to on the device so counting never waits for it (exact up to
    /// 2^24 tokens per expert between two reads). `None` until something is counted.
    loads: Mutex<Option<Tensor>>,
    training: AtomicBool,
    /// Count loads outside training too (inference counts nothing unless asked).
    count_loads: AtomicBool,
}

impl MoeRouter {
    pub fn new(
        kind: RouterKind,
        num_experts: usize,
        top_k: usize,
        hidden: usize,
        init: &mut Init,
    ) -> Result<MoeRouter> {
        if top_k == 0 || top_k > num_experts {
            return Err(Error::shape(
                "moe_router",
                format!("top_k {top_k} must be between 1 and the {num_experts} experts"),
            ));
        }
        if let RouterKind::SigmoidGroupLimited { n_group, topk_group, .. } = kind
            && (n_group == 0
                || !num_experts.is_multiple_of(n_group)
                || topk_group == 0
                || topk_group > n_group
                || top_k > topk_group * (num_experts / n_group))
        {
            return Err(Error::shape(
                "moe_router",
                format!(
                    "groups n_group {n_group}, topk_group {topk_group} do not fit {num_experts} experts with top_k {top_k}"
                ),
            ));
        }
        let correction_bias = match kind {
            RouterKind::SigmoidGroupLimited { .. } => {
                Some(Var::constant(Tensor::zeros([num_experts], DType::F32, &init.device)?))
            }
            _ => None,
        };
        Ok(MoeRouter {
            kind,
            num_experts,
            top_k,
            weight: init.normal([num_experts, hidden])?,
            correction_bias,
            bias: match kind {
                RouterKind::BiasedSoftmaxOverChosen => Some(init.normal([num_experts])?),
                _ => None,
            },
            loads: Mutex::new(None),
            training: AtomicBool::new(false),
            count_loads: AtomicBool::new(false),
        })
    }

    /// Routes tokens `x [N, hidden]`.
    pub fn route(&self, x: &Var) -> Result<Routing> {
        // Router logits in f32 whatever the activations' dtype, as every reference does
        // (f64 stays f64, for gradient checks).
        let dtype = if x.dtype() == DType::F64 { DType::F64 } else { DType::F32 };
        let mut logits = x.to_dtype(dtype)?.linear(&self.weight.to_dtype(dtype)?)?; // (N, E)
        if let Some(b) = &self.bias {
            logits = logits.add(&b.to_dtype(dtype)?)?;
        }
        let routing = match self.kind {
            RouterKind::SoftmaxTopK { norm_topk_prob } => {
                let (top, ids) = logits.softmax(-1)?.topk(self.top_k, -1)?;
                let weights = if norm_topk_prob { top.div(&top.sum(-1, true)?)? } else { top };
                Routing { ids, weights }
            }
            RouterKind::SigmoidGroupLimited { n_group, topk_group, routed_scaling_factor, norm_topk_prob } => {
                let scores = logits.sigmoid()?;
                let ids = no_grad(|| self.choose_grouped(&scores.value(), n_group, topk_group))?;
                let mut weights = scores.gather(&ids, 1)?;
                if norm_topk_prob {
                    weights = weights.div(&weights.sum(-1, true)?.add_scalar(1e-20)?)?;
                }
                Routing { ids, weights: weights.mul_scalar(routed_scaling_factor)? }
            }
            RouterKind::Top1SigmoidInput => {
                let (top, ids) = logits.topk(self.top_k, -1)?;
                Routing { ids, weights: top.sigmoid()? }
            }
            RouterKind::BiasedSoftmaxOverChosen => {
                let (top, ids) = logits.topk(self.top_k, -1)?;
                Routing { ids, weights: top.softmax(-1)? }
            }
        };
        if self.training.load(Ordering::Relaxed) || self.count_loads.load(Ordering::Relaxed) {
            no_grad(|| self.count(&routing.ids))?;
        }
        Ok(routing)
    }

    /// DeepSeek's group-limited choice on the biased scores: ids [N, k].
    fn choose_grouped(&self, scores: &Tensor, n_group: usize, topk_group: usize) -> Result<Tensor> {
        let n = scores.dims()[0];
        let e = self.num_experts;
        let biased = match &self.correction_bias {
            Some(b) => scores.add(&b.value().to_dtype(scores.dtype())?)?,
            None => scores.clone(),
        };
        if n_group == 1 {
            return Ok(biased.topk(self.top_k, -1)?.1);
        }
        let per_group = e / n_group;
        let grouped = biased.reshape([n, n_group, per_group])?;
        let best2 = grouped.topk(2.min(per_group), -1)?.0.sum(-1, false)?; // (N, n_group)
        let kept = best2.topk(topk_group, -1)?.1; // (N, topk_group)
        let mask = Tensor::zeros([n, n_group], DType::F32, scores.device())?
            .scatter_add(&kept, &Tensor::ones([n, topk_group], DType::F32, scores.device())?, 1)?
            .unsqueeze(-1)?
            .broadcast_to([n, n_group, per_group])?
            .reshape([n, e])?;
        // -inf, not 0: a kept expert's biased score can be negative, and must still beat a dropped one.
        let floor = Tensor::full(f64::NEG_INFINITY, (), biased.dtype(), scores.device())?;
        Ok(mask.where_cond(&biased, &floor)?.topk(self.top_k, -1)?.1)
    }

    /// Whether inference (outside training mode) counts expert loads; training always does.
    /// Off by default, so generation spends nothing on them.
    pub fn set_count_loads(&self, on: bool) {
        self.count_loads.store(on, Ordering::Relaxed);
    }

    /// Adds the chosen ids to the device-side counts: an index_add of ones, no readback.
    fn count(&self, ids: &Tensor) -> Result<()> {
        let ids = ids.flatten_all()?;
        let ones = Tensor::ones([ids.elem_count()], DType::F32, ids.device())?;
        let mut loads = self.loads.lock().unwrap_or_else(|p| p.into_inner());
        let current = match loads.take() {
            Some(l) => l,
            None => Tensor::zeros([self.num_experts], DType::F32, ids.device())?,
        };
        *loads = Some(current.index_add(&ids, &ones, 0)?);
        Ok(())
    }

    /// Tokens routed to each expert since the last call (counted in training mode, or when
    /// [`MoeRouter::set_count_loads`] asked for it), resetting the counts. Reads them back.
    pub fn take_loads(&self) -> Result<Vec<u64>> {
        let taken = self.loads.lock().unwrap_or_else(|p| p.into_inner()).take();
        Self::host_counts(taken, self.num_experts)
    }

    /// The counts so far, without resetting them. Reads them back.
    pub fn loads(&self) -> Result<Vec<u64>> {
        let current = self.loads.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Self::host_counts(current, self.num_experts)
    }

    fn host_counts(loads: Option<Tensor>, num_experts: usize) -> Result<Vec<u64>> {
        match loads {
            None => Ok(vec![0; num_experts]),
            Some(l) => Ok(l.to_vec::<f32>()?.into_iter().map(|c| c as u64).collect()),
        }
    }

    /// Auxiliary-loss-free balancing (DeepSeek-V3 §2.1.2): each expert's correction bias moves
    /// by `gamma` towards balance, up if it got fewer tokens than the mean, down if more, using
    /// the loads counted since the last update.
    pub fn update_bias(&self, gamma: f64) -> Result<()> {
        let Some(bias) = &self.correction_bias else { return Ok(()) };
        let loads = self.take_loads()?;
        let mean = loads.iter().sum::<u64>() as f64 / loads.len().max(1) as f64;
        let step: Vec<f32> = loads
            .iter()
            .map(|&l| {
                let below_mean = mean - l as f64;
                let sign = if below_mean > 0.0 {
                    1.0
                } else if below_mean < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                (gamma * sign) as f32
            })
            .collect();
        let b = bias.value();
        let step =
            Tensor::from_vec(step, [self.num_experts], &tensor::Device::cpu())?.to(b.device())?.to_dtype(b.dtype())?;
        bias.set_value(b.add(&step)?)
    }
}

impl Module for MoeRouter {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        f(&join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.correction_bias {
            f(&join(prefix, "e_score_correction_bias"), b);
        }
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b);
        }
    }
    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }
}
