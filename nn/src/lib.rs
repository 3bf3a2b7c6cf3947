//! `nn`: the building blocks of today's open LLMs, each a small [`Module`] with Hugging Face
//! parameter names, differentiable through `autograd`, device-agnostic (blocks never name a
//! device; they follow their parameters).
//!
//! - [`Linear`], [`Embedding`], [`RmsNorm`] (plain, Gemma's `1 + w`, weightless);
//! - [`rope`]: RoPE with default, linear, Llama 3 and YaRN schedules, both pair layouts;
//! - [`attention`]: MHA/GQA/MQA with QK-norm variants, NoPE and temperature tuning, MLA with its
//!   absorbed decode path, causal/sliding/chunked masks, and the KV cache;
//! - [`ffn`]: SwiGLU / GeGLU; [`moe`]: routers and experts;
//! - [`loss`]: cross-entropy; [`optim`]: SGD, AdamW, Muon, MuonClip.

pub mod attention;
pub mod embedding;
pub mod ffn;
pub mod init;
pub mod linear;
pub mod loss;
pub mod module;
pub mod moe;
pub mod norm;
pub mod optim;
pub mod packed;
pub mod rope;

pub use embedding::Embedding;
pub use ffn::GatedFeedForward;
pub use init::Init;
pub use linear::Linear;
pub use module::{Module, ModuleExt, join};
pub use norm::RmsNorm;
pub use packed::PackedSlot;
