//! The architectures: one decoder skeleton (`decoder.rs`) and one short recipe per family.

pub mod blocks;
pub mod decoder;

pub use blocks::{AttentionBlock, FeedForwardBlock};
pub use decoder::{CausalLm, DecoderLayer, ForwardOutput, LayerNorms};
