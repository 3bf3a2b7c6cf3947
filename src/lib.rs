//! `llmforge`: the facade over the workspace's crates, so examples and benches can say
//! `use llmforge::{tensor, autograd, nn, llm, gpu}`.
//!
//! The crates form one line of dependencies, `llm -> nn -> autograd -> tensor <- gpu`:
//! - [`tensor`]: n-d tensors, op semantics, CPU kernels and the device `Backend` trait;
//! - [`gpu`]: the wgpu runtime and WGSL kernels implementing that trait;
//! - [`autograd`]: reverse-mode differentiation over the tensor ops;
//! - [`nn`]: the building blocks of today's open LLMs;
//! - [`llm`]: nine reference architectures, checkpoint loading, generation and training.

pub use autograd;
pub use gpu;
pub use llm;
pub use nn;
pub use tensor;
