//! The pre-training loop: sample a batch, forward, backward, clip, step, with the learning rate
//! following the schedule, validation loss every `eval_every` updates and a progress bar.

use std::time::Instant;

use autograd::no_grad;
use indicatif::{ProgressBar, ProgressStyle};
use nn::optim::{Optimizer, clip_grad_norm, trainable};
use nn::{Module, ModuleExt};
use tensor::{DType, Device, Rng, Tensor};

use super::{LossCurve, TokenData, WarmupCosine, next_token_loss};
use crate::models::CausalLm;
use crate::{Error, Result};

/// How to pre-train.
#[derive(Clone, Debug)]
pub struct PretrainOptions {
    pub steps: usize,
    pub batch_size: usize,
    /// Tokens of context per window (the model predicts `seq_len` next tokens per window).
    pub seq_len: usize,
    pub schedule: WarmupCosine,
    /// Clip the global gradient norm to this (1.0 is the usual choice), or not at all.
    pub grad_clip: Option<f64>,
    /// Measure the validation loss every this many updates (and before the first and after the last).
    pub eval_every: usize,
    pub eval_batches: usize,
    /// Seeds the choice of training windows.
    pub seed: u64,
    /// Draw a progress bar on the terminal (hidden when stderr is not one).
    pub progress: bool,
    /// Record the largest attention logit of every update in the curve, whatever the optimizer
    /// (MuonClip records them anyway). Costs one score matrix per layer per step.
    pub watch_attention_logits: bool,
}

/// Trains `model` on `data` and returns its loss curve.
pub fn pretrain(
    model: &CausalLm,
    data: &TokenData,
    options: &PretrainOptions,
    optimizer: &mut dyn Optimizer,
    device: &Device,
) -> Result<LossCurve> {
    if options.steps == 0 || options.batch_size == 0 || options.seq_len == 0 || options.eval_every == 0 {
        return Err(Error::input("steps, batch size, sequence length and eval_every must all be at least 1"));
    }
    let validation = data.validation_batches(options.batch_size, options.seq_len, options.eval_batches, device)?;
    let params = trainable(model.named_parameters());
    let mut rng = Rng::new(options.seed);
    let mut curve = LossCurve::default();
    let bar = if options.progress { ProgressBar::new(options.steps as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:32} {pos}/{len} updates  {msg}  [{elapsed} elapsed, {eta} to go]")
            .map_err(|e| Error::input(format!("progress bar template: {e}")))?,
    );
    let started = Instant::now();
    let evaluate = |curve: &mut LossCurve, step: usize| -> Result<()> {
        if let Some(loss) = validation_loss(model, &validation)? {
            curve.validation.push((step, loss));
        }
        Ok(())
    };
    evaluate(&mut curve, 0)?;
    let watch_logits = options.watch_attention_logits || optimizer.needs_attention_logits();
    model.record_attention_logits(watch_logits);
    for step in 0..options.steps {
        model.set_training(true);
        let lr = options.schedule.at(step);
        optimizer.set_learning_rate(lr);
        let ids = data.random_batch(&mut rng, options.batch_size, options.seq_len, device)?;
        let loss = next_token_loss(model, &ids)?;
        let value = loss.value().to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(Error::input(format!(
                "the training loss became {value} at update {step}: lower the learning rate"
            )));
        }
        // Read before the optimizer runs: QK-Clip consumes the maxima of this forward pass.
        if watch_logits && let Some(max) = model.max_attention_logit() {
            curve.max_attention_logit.push((step, max));
        }
        let mut grads = loss.backward()?;
        drop(loss);
        // Without clipping, an infinite bound measures the norm and leaves the gradients alone.
        let norm = clip_grad_norm(&params, &mut grads, options.grad_clip.unwrap_or(f64::INFINITY))?;
        curve.grad_norm.push((step, norm));
        optimizer.step(&grads)?;
        optimizer.after_step(model)?;
        curve.train.push((step, value));
        curve.learning_rate.push((step, lr));
        curve.tokens += options.batch_size * options.seq_len;
        if (step + 1) % options.eval_every == 0 || step + 1 == options.steps {
            model.set_training(false);
            evaluate(&mut curve, step + 1)?;
        }
        let recent = curve.smoothed_train(10).last().map(|p| p.1).unwrap_or(value as f64);
        let held = curve.final_validation().map(|v| format!(", held-out {v:.3}")).unwrap_or_default();
        let rate = curve.tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let status = format!("loss {recent:.3}{held}  {rate:.0} tok/s");
        if options.progress && curve.validation.last().is_some_and(|v| v.0 == step + 1) {
            // A line per evaluation stays on screen (and reaches a log when stderr is a file).
            let line = format!("update {}/{}: {status}", step + 1, options.steps);
            if bar.is_hidden() { eprintln!("{line}") } else { bar.println(line) }
        }
        bar.set_message(status);
        bar.inc(1);
    }
    bar.finish();
    model.set_training(false);
    model.record_attention_logits(false);
    curve.seconds = started.elapsed().as_secs_f64();
    Ok(curve)
}

/// Mean next-token loss over the validation batches (weighted by their size), if there are any.
pub fn validation_loss(model: &CausalLm, batches: &[Tensor]) -> Result<Option<f32>> {
    if batches.is_empty() {
        return Ok(None);
    }
    let mut total = 0.0f64;
    let mut windows = 0usize;
    for ids in batches {
        let loss = no_grad(|| next_token_loss(model, ids))?;
        let n = ids.dims()[0];
        total += loss.value().to_dtype(DType::F32)?.to_scalar::<f32>()? as f64 * n as f64;
        windows += n;
    }
    Ok(Some((total / windows as f64) as f32))
}
