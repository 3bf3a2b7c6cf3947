//! The gated feed-forward block (Shazeer 2020): `down(act(gate(x)) * up(x))`, SwiGLU with SiLU
//! (most families) or GeGLU with tanh-GELU (Gemma 3). Also each expert of a mixture of experts.

use autograd::Var;
use tensor::{GluActivation, Result};

use crate::{Init, Linear, Module, join};

pub struct GatedFeedForward {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
    pub activation: GluActivation,
}

impl GatedFeedForward {
    /// `hidden -> intermediate -> hidden`, no biases (`mlp_bias: false` in every family here).
    pub fn new(
        hidden: usize,
        intermediate: usize,
        activation: GluActivation,
        init: &mut Init,
    ) -> Result<GatedFeedForward> {
        Ok(GatedFeedForward {
            gate_proj: Linear::new(hidden, intermediate, false, init)?,
            up_proj: Linear::new(hidden, intermediate, false, init)?,
            down_proj: Linear::new(intermediate, hidden, false, init)?,
            activation,
        })
    }

    /// `down(act(gate(x)) * up(x))`. Where no gradient flows (inference) and both projections
    /// are plain products, the gate and up products and the gated unit run as one fused op
    /// (`Tensor::matmul_glu`: on a GPU decoding a token, one dispatch instead of three); else as
    /// the three ops.
    pub fn forward(&self, x: &Var) -> Result<Var> {
        let gated = match Linear::fusable_weights([&self.gate_proj, &self.up_proj], x) {
            Some([gate, up]) => Var::untracked(x.value().matmul_glu(&gate.value(), &up.value(), self.activation)?),
            _ => self.gate_proj.forward(x)?.glu(&self.up_proj.forward(x)?, self.activation)?,
        };
        tensor::cpu::profile::mark("gate, up, GLU");
        let out = self.down_proj.forward(&gated)?;
        tensor::cpu::profile::mark("down");
        Ok(out)
    }
}

impl Module for GatedFeedForward {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        self.gate_proj.visit(&join(prefix, "gate_proj"), f);
        self.up_proj.visit(&join(prefix, "up_proj"), f);
        self.down_proj.visit(&join(prefix, "down_proj"), f);
    }
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &crate::PackedSlot)) {
        self.gate_proj.visit_packed(&join(prefix, "gate_proj"), f);
        self.up_proj.visit_packed(&join(prefix, "up_proj"), f);
        self.down_proj.visit_packed(&join(prefix, "down_proj"), f);
    }
}
