//! Training: mean next-token cross-entropy on a batch of token ids (position t predicts t + 1),
//! backward through the whole model, an optimizer step. Runs on whichever device the model is on.
//!
//! [`train`] repeats one fixed batch (what the fixtures' recorded AdamW run does); [`pretrain`]
//! is the real loop: random windows of a token stream ([`TokenData`]), a warm-up and cosine
//! learning-rate schedule ([`WarmupCosine`]), gradient clipping, validation loss, a progress bar
//! and the loss curve ([`LossCurve`]) as CSV and PNG.

mod batches;
mod curve;
mod pretrain;
mod schedule;

pub use batches::TokenData;
pub use curve::LossCurve;
pub use pretrain::{PretrainOptions, pretrain};
pub use schedule::WarmupCosine;

use autograd::Var;
use nn::Module;
use nn::optim::Optimizer;
use tensor::{DType, Tensor};

use crate::models::CausalLm;
use crate::{Error, Result};

/// Mean cross-entropy of predicting `ids[:, 1:]` from `ids[:, :-1]` ([B, T] ids, T >= 2).
pub fn next_token_loss(model: &CausalLm, ids: &Tensor) -> Result<Var> {
    let (b, t) = match ids.dims() {
        [b, t] if *t >= 2 => (*b, *t),
        other => return Err(Error::input(format!("training needs ids [B, T] with T >= 2, got {other:?}"))),
    };
    let logits = model.forward(ids, 0, None, false)?.logits; // (B, T, V)
    let vocab = logits.dims()[2];
    let predictions = logits.narrow(1, 0, t - 1)?.reshape([b * (t - 1), vocab])?;
    let targets = ids.narrow(1, 1, t - 1)?.to_dtype(DType::U32)?.reshape([b * (t - 1)])?;
    Ok(nn::loss::cross_entropy(&predictions, &targets, None)?)
}

/// Full-batch training for `steps` updates. Returns `steps + 1` losses: entry k is the loss
/// before update k, the last one after the final update. `on_step(k, loss)` sees each as it comes.
pub fn train(
    model: &CausalLm,
    ids: &Tensor,
    steps: usize,
    optimizer: &mut dyn Optimizer,
    mut on_step: impl FnMut(usize, f32) -> Result<()>,
) -> Result<Vec<f32>> {
    model.set_training(true);
    model.record_attention_logits(optimizer.needs_attention_logits());
    let mut losses = Vec::with_capacity(steps + 1);
    for step in 0..steps {
        let loss = next_token_loss(model, ids)?;
        let value = loss.value().to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(Error::input(format!("the loss became {value} at step {step}: lower --lr or check the data")));
        }
        losses.push(value);
        on_step(step, value)?;
        let grads = loss.backward()?;
        optimizer.step(&grads)?;
        optimizer.after_step(model)?;
    }
    model.set_training(false);
    model.record_attention_logits(false);
    let last = autograd::no_grad(|| next_token_loss(model, ids))?.value().to_dtype(DType::F32)?.to_scalar::<f32>()?;
    losses.push(last);
    on_step(steps, last)?;
    Ok(losses)
}
