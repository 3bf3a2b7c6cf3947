//! Mixture of experts: routers (Qwen3-MoE softmax top-k, DeepSeek/Kimi sigmoid with a
//! correction bias and group-limited top-k, Llama 4 top-1 scaling the expert input, gpt-oss's
//! biased top-k with a softmax over the chosen), the routed experts as stacked weights (gpt-oss's
//! with biases and a clamped SwiGLU), and the block that dispatches tokens to them.

pub mod experts;
pub mod layer;
pub mod router;

pub use experts::{ExpertBiases, Experts, SwigluClamp};
pub use layer::SparseMoe;
pub use router::{MoeRouter, RouterKind, Routing};
