//! The mixture-of-experts block: a router, the routed experts and an optional always-on shared
//! expert. Tokens are dispatched so that only chosen experts compute on them: each (token, slot)
//! pair becomes a row, rows run through their experts in one indexed matmul per projection, and
//! rows are weighted and added back into their tokens.

use autograd::Var;
use tensor::{DType, Result, Tensor};

use super::experts::Experts;
use super::router::{MoeRouter, RouterKind};
use crate::{GatedFeedForward, Module, join};

pub struct SparseMoe {
    pub router: MoeRouter,
    pub experts: Experts,
    pub shared: Option<GatedFeedForward>,
    /// HF names: `gate` (Qwen3, DeepSeek) or `router` (Llama 4).
    pub router_name: &'static str,
    /// HF names: `shared_experts` (DeepSeek) or `shared_expert` (Llama 4).
    pub shared_name: &'static str,
}

impl SparseMoe {
    /// `x [.., H] -> [.., H]`.
    pub fn forward(&self, x: &Var) -> Result<Var> {
        let dims = x.dims();
        let h = dims[dims.len() - 1];
        let n = x.elem_count() / h.max(1);
        let flat = x.reshape([n, h])?;
        let routing = self.router.route(&flat)?;
        tensor::cpu::profile::mark("MoE router");
        let k = self.router.top_k;
        // Row r = n * k + slot: token n's slot-th expert.
        let tokens: Vec<u32> = (0..n as u32).flat_map(|t| std::iter::repeat_n(t, k)).collect();
        let tokens = Tensor::from_vec(tokens, [n * k], &tensor::Device::cpu())?.to(&x.device())?;
        let ids = routing.ids.reshape([n * k])?;
        let weights = routing.weights.reshape([n * k, 1])?.to_dtype(x.dtype())?;
        let rows = flat.index_select(&tokens, 0)?; // (N*k, H)
        let routed = if self.router.kind == RouterKind::Top1SigmoidInput {
            self.experts.forward(&rows.mul(&weights)?, &ids)?
        } else {
            self.experts.forward(&rows, &ids)?.mul(&weights)?
        };
        let zeros = Var::constant(Tensor::zeros([n, h], x.dtype().max_float(), &x.device())?);
        let mut out = zeros.index_add(&tokens, &routed, 0)?;
        tensor::cpu::profile::mark("MoE experts");
        if let Some(shared) = &self.shared {
            out = out.add(&shared.forward(&flat)?)?;
        }
        out.reshape(dims)
    }
}

/// The float type a block computes in (f32 for half-precision inputs).
trait MaxFloat {
    fn max_float(self) -> DType;
}

impl MaxFloat for DType {
    fn max_float(self) -> DType {
        if self == DType::F64 { DType::F64 } else { DType::F32 }
    }
}

impl Module for SparseMoe {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        self.router.visit(&join(prefix, self.router_name), f);
        self.experts.visit(&join(prefix, "experts"), f);
        self.shared.visit(&join(prefix, self.shared_name), f);
    }
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &crate::PackedSlot)) {
        self.experts.visit_packed(&join(prefix, "experts"), f);
        self.shared.visit_packed(&join(prefix, self.shared_name), f);
    }
    fn set_training(&self, training: bool) {
        self.router.set_training(training);
    }
}
