//! `Embedding`: a table of vectors, one row per token id.

use autograd::Var;
use tensor::{DType, Result, Tensor};

use crate::{Init, Module, join};

pub struct Embedding {
    /// `[vocab_size, hidden_size]`
    pub weight: Var,
}

impl Embedding {
    pub fn new(vocab: usize, hidden: usize, init: &mut Init) -> Result<Embedding> {
        Ok(Embedding { weight: init.normal([vocab, hidden])? })
    }

    /// ids of any shape -> ids.shape + [hidden]. An id outside the vocabulary is an error naming it.
    /// A table kept in bf16 or f16 (as a checkpoint ships it) gives f32 rows: only the picked rows
    /// are widened, so the table itself is never copied.
    pub fn forward(&self, ids: &Tensor) -> Result<Var> {
        let rows = self.weight.embedding(ids)?;
        match rows.dtype() {
            DType::BF16 | DType::F16 => rows.to_dtype(DType::F32),
            _ => Ok(rows),
        }
    }
}

impl Module for Embedding {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        f(&join(prefix, "weight"), &self.weight);
    }
}
