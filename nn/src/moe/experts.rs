//! The routed experts: each a gated feed-forward block, their weights stacked per projection as
//! [E, out, in] (gate and up [E, I, H], down [E, H, I]), so one `expert_matmul` runs every
//! chosen (token, expert) pair at once. Only chosen pairs compute: rows are gathered per
//! (token, slot), multiplied by their own expert's weights, and the results scattered back.
//!
//! Checkpoint names: the stacked parameters are named `experts.gate_proj.weight`,
//! `experts.up_proj.weight`, `experts.down_proj.weight`; the loader assembles them from
//! per-expert tensors (`experts.{e}.gate_proj.weight`, Qwen3-MoE and DeepSeek) or from Llama 4's
//! fused `experts.gate_up_proj` [E, H, 2I] and `experts.down_proj` [E, I, H].

use autograd::Var;
use tensor::{GluActivation, Result, Tensor};

use crate::{Init, Module, join};

pub struct Experts {
    pub gate_proj: Var,
    pub up_proj: Var,
    pub down_proj: Var,
    pub activation: GluActivation,
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
        })
    }

    pub fn num_experts(&self) -> usize {
        self.gate_proj.dims()[0]
    }

    /// Row `r` of `x [R, H]` through expert `ids[r]`: `down(act(gate x) * up x)`.
    pub fn forward(&self, x: &Var, ids: &Tensor) -> Result<Var> {
        // [E, out, in] weights are used as [E, in, out] views: x [R, in] @ W[e] [in, out].
        let gate = x.expert_matmul(&self.gate_proj.transpose(1, 2)?, ids)?;
        let up = x.expert_matmul(&self.up_proj.transpose(1, 2)?, ids)?;
        gate.glu(&up, self.activation)?.expert_matmul(&self.down_proj.transpose(1, 2)?, ids)
    }
}

impl Module for Experts {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        f(&join(prefix, "gate_proj.weight"), &self.gate_proj);
        f(&join(prefix, "up_proj.weight"), &self.up_proj);
        f(&join(prefix, "down_proj.weight"), &self.down_proj);
    }
}
