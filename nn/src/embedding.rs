//! `Embedding`: a table of vectors, one row per token id.

use autograd::{Var, is_grad_enabled};
use tensor::{DType, Error, Result, Tensor};

use crate::packed::{no_gradient, no_gradient_device};
use crate::{Init, Module, PackedSlot, join};

pub struct Embedding {
    /// `[vocab_size, hidden_size]`
    pub weight: Var,
    /// PyTorch's `padding_idx`: lookups of this id pass no gradient to the table, so training
    /// on padded batches leaves its row as it was (Hugging Face builds every decoder's embedding
    /// with `padding_idx = config.pad_token_id`).
    pub padding_idx: Option<u32>,
    /// The table kept block-quantized (from a GGUF file); `weight` is then a placeholder.
    pub packed: PackedSlot,
}

impl Embedding {
    pub fn new(vocab: usize, hidden: usize, init: &mut Init) -> Result<Embedding> {
        Ok(Embedding { weight: init.normal([vocab, hidden])?, padding_idx: None, packed: PackedSlot::default() })
    }

    /// The same table with `padding_idx` set (or cleared, with `None`).
    pub fn with_padding(self, padding_idx: Option<u32>) -> Embedding {
        Embedding { padding_idx, ..self }
    }

    /// ids of any shape -> ids.shape + [hidden]. An id outside the vocabulary is an error naming it.
    /// A table kept in bf16 or f16 (as a checkpoint ships it) gives f32 rows: only the picked rows
    /// are widened, so the table itself is never copied. A packed table decodes only those rows.
    pub fn forward(&self, ids: &Tensor) -> Result<Var> {
        if let Some(q) = self.packed.get() {
            if is_grad_enabled() {
                return Err(no_gradient(&q, "Embedding::forward"));
            }
            let flat = ids.to_dtype(DType::I64)?.to_vec::<i64>()?;
            let rows = flat
                .iter()
                .map(|&id| {
                    usize::try_from(id).ok().filter(|&i| i < q.rows()).ok_or_else(|| {
                        Error::index("embedding", format!("token id {id} is outside the vocabulary of {}", q.rows()))
                    })
                })
                .collect::<Result<Vec<usize>>>()?;
            let mut dims = ids.dims().to_vec();
            dims.push(q.cols());
            return Ok(Var::constant(Tensor::from_vec(q.gather_rows(&rows)?, dims, ids.device())?));
        }
        if let Some(q) = self.packed.device() {
            if is_grad_enabled() {
                return Err(no_gradient_device(&q, "Embedding::forward"));
            }
            return Ok(Var::constant(q.gather(ids)?));
        }
        let rows = match self.padding_idx {
            Some(pad) => self.weight.embedding_with_padding(ids, pad)?,
            None => self.weight.embedding(ids)?,
        };
        match rows.dtype() {
            DType::BF16 | DType::F16 => rows.to_dtype(DType::F32),
            _ => Ok(rows),
        }
    }

    /// `x [.., hidden] -> [.., vocab]`: the table as a tied output head (logits are dot
    /// products with every row), on the blocks when the table is packed.
    pub fn project(&self, x: &Var) -> Result<Var> {
        match (self.packed.get(), self.packed.device()) {
            (Some(q), _) if is_grad_enabled() => Err(no_gradient(&q, "Embedding::project")),
            (Some(q), _) => Ok(Var::constant(q.matmul(&x.value())?)),
            (None, Some(q)) if is_grad_enabled() => Err(no_gradient_device(&q, "Embedding::project")),
            (None, Some(q)) => Ok(Var::constant(q.matmul(&x.value())?)),
            (None, None) => x.linear(&self.weight),
        }
    }
}

impl Module for Embedding {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        f(&join(prefix, "weight"), &self.weight);
    }
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &PackedSlot)) {
        f(&join(prefix, "weight"), &self.packed);
    }
}
