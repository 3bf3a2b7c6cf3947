//! The eight reference architectures. Built by the llm issue.

pub mod error;
pub mod weights;

pub use error::{Error, Result};
