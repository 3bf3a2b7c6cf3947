//! The routed experts: each a gated feed-forward block, their weights stacked per projection as
//! [E, out, in] (gate and up [E, I, H], down [E, H, I]), so one `expert_matmul` runs every
//! chosen (token, expert) pair at once. Only chosen pairs compute: rows are gathered per
//! (token, slot), multiplied by their own expert's weights, and the results scattered back.
//!
//! Checkpoint names: the stacked parameters are named `experts.gate_proj.weight`,
//! `experts.up_proj.weight`, `experts.down_proj.weight`; the loader assembles them from
//! per-expert tensors (`experts.{e}.gate_proj.weight`, Qwen3-MoE and DeepSeek) or from Llama 4's
//! fused `experts.gate_up_proj` [E, H, 2I] and `experts.down_proj` [E, I, H].
//!
//! Loaded from a GGUF file, each projection's experts may instead be kept block-quantized in its
//! `PackedSlot`: on the CPU one matrix per expert (`quant::expert_matmul`), on a GPU the stack as
//! one device matrix (`DeviceQMatrix::expert_matmul`); either reads only the chosen experts'
//! blocks.
//!
//! gpt-oss's experts ([`Experts::clamped_swiglu`]) add a bias to each projection
//! (`experts.{gate,up,down}_proj.bias`, [E, out]) and use the clamped SwiGLU of
//! [`SwigluClamp`]; its checkpoints fuse gate and up with their columns interleaved.

use autograd::{Var, is_grad_enabled};
use tensor::{Error, GluActivation, Result, Tensor};

use crate::{Init, Module, PackedSlot, join};

pub struct Experts {
    pub gate_proj: Var,
    pub up_proj: Var,
    pub down_proj: Var,
    pub activation: GluActivation,
    /// Per-expert biases of gate, up and down (gpt-oss).
    pub biases: Option<ExpertBiases>,
    /// gpt-oss's clamped SwiGLU in place of `activation`.
    pub clamp: Option<SwigluClamp>,
    /// Block-quantized gate, up and down experts, when a loader kept them so.
    pub packed: [PackedSlot; 3],
}

/// Biases [E, out] of the three expert projections.
pub struct ExpertBiases {
    pub gate: Var,
    pub up: Var,
    pub down: Var,
}

/// gpt-oss's clamped SwiGLU (`swiglu_alpha`, `swiglu_limit`): the gate is clamped from above
/// only, the linear part on both sides, and the linear part is shifted by one:
/// `(clamp(up, -limit, limit) + 1) * g * sigmoid(alpha * g)` with `g = min(gate, limit)`.
/// The clamps bound activations that bf16/MXFP4 training would otherwise let grow; the sigmoid
/// with `alpha = 1.702` is the sigmoid approximation of GELU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SwigluClamp {
    pub alpha: f64,
    pub limit: f64,
}

impl SwigluClamp {
    /// The activation of `gate` and `up` (same shapes).
    pub fn apply(&self, gate: &Var, up: &Var) -> Result<Var> {
        let g = gate.clamp(f64::NEG_INFINITY, self.limit)?;
        let u = up.clamp(-self.limit, self.limit)?.add_scalar(1.0)?;
        g.mul(&g.mul_scalar(self.alpha)?.sigmoid()?)?.mul(&u)
    }
}

impl Experts {
    pub fn new(
        num_experts: usize,
        hidden: usize,
        intermediate: usize,
        activation: GluActivation,
        init: &mut Init,
    ) -> Result<Experts> {
        Ok(Experts {
            gate_proj: init.normal([num_experts, intermediate, hidden])?,
            up_proj: init.normal([num_experts, intermediate, hidden])?,
            down_proj: init.normal([num_experts, hidden, intermediate])?,
            activation,
            biases: None,
            clamp: None,
            packed: Default::default(),
        })
    }

    /// gpt-oss's experts: biases on every projection and the clamped SwiGLU.
    pub fn clamped_swiglu(
        num_experts: usize,
        hidden: usize,
        intermediate: usize,
        clamp: SwigluClamp,
        init: &mut Init,
    ) -> Result<Experts> {
        let mut experts = Experts::new(num_experts, hidden, intermediate, GluActivation::Silu, init)?;
        experts.biases = Some(ExpertBiases {
            gate: init.zeros([num_experts, intermediate])?,
            up: init.zeros([num_experts, intermediate])?,
            down: init.zeros([num_experts, hidden])?,
        });
        experts.clamp = Some(clamp);
        Ok(experts)
    }

    pub fn num_experts(&self) -> usize {
        self.gate_proj.dims()[0]
    }

    /// Row `r` of `x [R, H]` through expert `ids[r]`: `down(act(gate x) * up x)`, with each
    /// projection's bias for that expert where there are biases.
    pub fn forward(&self, x: &Var, ids: &Tensor) -> Result<Var> {
        // [E, out, in] weights are used as [E, in, out] views: x [R, in] @ W[e] [in, out].
        let project = |x: &Var, w: &Var, packed: &PackedSlot, bias: Option<&Var>| -> Result<Var> {
            let (stack, on_device) = (packed.stack(), packed.device());
            if (stack.is_some() || on_device.is_some()) && is_grad_enabled() {
                return Err(Error::unsupported(
                    "Experts::forward",
                    "the experts are kept block-quantized and have no gradient; load the model with f32 weights to train through them",
                ));
            }
            let y = match (stack, on_device) {
                (Some(stack), _) => Var::constant(tensor::quant::expert_matmul(&stack, &x.value(), ids)?),
                (None, Some(q)) => Var::constant(q.expert_matmul(&x.value().contiguous()?, ids)?),
                (None, None) => x.expert_matmul(&w.transpose(1, 2)?, ids)?,
            };
            match bias {
                Some(b) => y.add(&b.index_select(ids, 0)?.to_dtype(y.dtype())?),
                None => Ok(y),
            }
        };
        let b = self.biases.as_ref();
        let [gate_q, up_q, down_q] = &self.packed;
        let gate = project(x, &self.gate_proj, gate_q, b.map(|b| &b.gate))?;
        let up = project(x, &self.up_proj, up_q, b.map(|b| &b.up))?;
        let hidden = match &self.clamp {
            Some(clamp) => clamp.apply(&gate, &up)?,
            None => gate.glu(&up, self.activation)?,
        };
        project(&hidden, &self.down_proj, down_q, b.map(|b| &b.down))
    }
}

impl Module for Experts {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        f(&join(prefix, "gate_proj.weight"), &self.gate_proj);
        f(&join(prefix, "up_proj.weight"), &self.up_proj);
        f(&join(prefix, "down_proj.weight"), &self.down_proj);
        if let Some(b) = &self.biases {
            f(&join(prefix, "gate_proj.bias"), &b.gate);
            f(&join(prefix, "up_proj.bias"), &b.up);
            f(&join(prefix, "down_proj.bias"), &b.down);
        }
    }
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &PackedSlot)) {
        for (name, slot) in ["gate_proj", "up_proj", "down_proj"].iter().zip(&self.packed) {
            f(&join(prefix, &format!("{name}.weight")), slot);
        }
    }
}
