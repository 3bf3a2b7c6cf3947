//! `Embedding`: a table of vectors, one row per token id.

use autograd::Var;
use tensor::{DType, Result, Tensor};

use crate::{Init, Module, join};

pub struct Embedding {
    /// `[vocab_size, hidden_size]`
    pub weight: Var,
    /// PyTorch's `padding_idx`: lookups of this id pass no gradient to the table, so training
    /// on padded batches leaves its row as it was (Hugging Face builds every decoder's embedding
    /// with `padding_idx = config.pad_token_id`).
    pub padding_idx: Option<u32>,
}

impl Embedding {
    pub fn new(vocab: usize, hidden: usize, init: &mut Init) -> Result<Embedding> {
        Ok(Embedding { weight: init.normal([vocab, hidden])?, padding_idx: None })
    }

    /// The same table with `padding_idx` set (or cleared, with `None`).
    pub fn with_padding(self, padding_idx: Option<u32>) -> Embedding {
        Embedding { padding_idx, ..self }
    }

    /// ids of any shape -> ids.shape + [hidden]. An id outside the vocabulary is an error naming it.
    /// A table kept in bf16 or f16 (as a checkpoint ships it) gives f32 rows: only the picked rows
    /// are widened, so the table itself is never copied.
    pub fn forward(&self, ids: &Tensor) -> Result<Var> {
        let rows = match self.padding_idx {
            Some(pad) => self.weight.embedding_with_padding(ids, pad)?,
            None => self.weight.embedding(ids)?,
        };
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
