//! Mixture of experts: routers (Qwen3-MoE softmax top-k, DeepSeek/Kimi sigmoid with a
//! correction bias and group-limited top-k, Llama 4 top-1 scaling the expert input), the routed
//! experts as stacked weights, and the block that dispatches tokens to them.

pub mod experts;
pub mod layer;
pub mod router;

pub use experts::Experts;
pub use layer::SparseMoe;
pub use router::{MoeRouter, RouterKind, Routing};
