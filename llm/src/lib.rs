//! The nine reference architectures: configs, checkpoints (safetensors and GGUF), generation, serving, training.

pub mod anatomy;
pub mod assets;
pub mod chat_template;
pub mod cli;
pub mod config;
pub mod device;
pub mod error;
pub mod finite;
pub mod generate;
pub mod gguf;
pub mod heap;
pub mod models;
pub mod plot;
pub mod sample;
pub mod serve;
pub mod tiny;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use error::{Error, Result};
