//! `Embedding`: a table of vectors, one row per token id.

use autograd::Var;
use tensor::{Result, Tensor};

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
    pub fn forward(&self, ids: &Tensor) -> Result<Var> {
        self.weight.embedding(ids)
    }
}

impl Module for Embedding {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        f(&join(prefix, "weight"), &self.weight);
    }
}
