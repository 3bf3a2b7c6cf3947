//! Autoregressive generation with the KV cache: the prompt is processed in one forward pass
//! (prefill), then one token at a time (decode), each step reusing every earlier key and value.

use std::time::{Duration, Instant};

use autograd::no_grad;
use tensor::{DType, Device, Tensor};

use crate::models::CausalLm;
use crate::sample::{Sampler, Sampling};
use crate::{Error, Result};

/// When to stop besides the token budget.
#[derive(Clone, Debug, Default)]
pub struct StopAt {
    /// End-of-sequence ids (`eos_token_id`, one or several).
    pub eos: Vec<u32>,
}

/// Where the time of one generation went. Prefill runs from the start of the prompt's forward
/// pass to the first chosen token; decode is the rest (one forward pass per further token).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    pub prompt_tokens: usize,
    /// Tokens chosen, the first (from prefill) included.
    pub new_tokens: usize,
    pub prefill: Duration,
    pub decode: Duration,
}

impl Timings {
    /// Prompt tokens processed per second of prefill.
    pub fn prefill_tok_s(&self) -> f64 {
        per_second(self.prompt_tokens, self.prefill)
    }

    /// Tokens chosen per second of decode: every token after the first.
    pub fn decode_tok_s(&self) -> f64 {
        per_second(self.new_tokens.saturating_sub(1), self.decode)
    }
}

fn per_second(count: usize, time: Duration) -> f64 {
    if time.is_zero() { 0.0 } else { count as f64 / time.as_secs_f64() }
}

/// Generates up to `max_new` tokens after `prompt` (batch 1), calling `on_token` with each new
/// token as soon as it is chosen. Returns prompt and new tokens together.
pub fn generate(
    model: &CausalLm,
    prompt: &[u32],
    max_new: usize,
    sampling: Sampling,
    stop: &StopAt,
    device: &Device,
    on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    generate_timed(model, prompt, max_new, sampling, stop, device, on_token).map(|(tokens, _)| tokens)
}

/// [`generate`], also saying where the time went. The time `on_token` takes (printing) counts
/// as decode time, as it would for a user waiting on the stream.
pub fn generate_timed(
    model: &CausalLm,
    prompt: &[u32],
    max_new: usize,
    sampling: Sampling,
    stop: &StopAt,
    device: &Device,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<(Vec<u32>, Timings)> {
    sampling.validate()?;
    if prompt.is_empty() {
        return Err(Error::input("the prompt is empty: give at least one token"));
    }
    let vocab = model.vocab_size();
    if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::input(format!("token id {bad} is outside the vocabulary of {vocab}")));
    }
    no_grad(|| {
        let mut caches = model.new_caches();
        // The whole generation's length is known: each cache is allocated once, never grown.
        for cache in &mut caches {
            cache.reserve(prompt.len() + max_new);
        }
        let mut sampler = Sampler::new(sampling);
        let mut tokens = prompt.to_vec();
        let mut input = prompt.to_vec();
        let mut position = 0;
        let mut timings = Timings { prompt_tokens: prompt.len(), ..Timings::default() };
        let started = Instant::now();
        for step in 0..max_new {
            let ids = Tensor::from_vec(input.clone(), [1, input.len()], device)?;
            // Only the last position's logits are needed: the head runs on one row.
            let logits = model.forward_last(&ids, position, Some(&mut caches))?;
            position += input.len();
            let next = if greedy_on_device(&sampling, device, vocab) {
                let (best, max) = argmax_on_device(&logits.value())?;
                check_finite(&[max], tokens.len())?;
                best
            } else if let Some(k) = top_k_on_device(&sampling, device, vocab) {
                let (values, ids, max) = ranked_on_device(&logits.value(), k)?;
                check_finite(&[max], tokens.len())?;
                sampler.pick_ranked(&values, &ids)
            } else {
                let last = logits.value().to_dtype(DType::F32)?.to_vec::<f32>()?;
                check_finite(&last, tokens.len())?;
                sampler.pick(&last)
            };
            tokens.push(next);
            timings.new_tokens += 1;
            if step == 0 {
                timings.prefill = started.elapsed();
            }
            on_token(next)?;
            if stop.eos.contains(&next) {
                break;
            }
            input = vec![next];
        }
        timings.decode = started.elapsed().saturating_sub(timings.prefill);
        Ok((tokens, timings))
    })
}

/// NaN logits would make every draw meaningless (and sampling silently picks the last
/// candidate); -inf is left alone, it only rules a token out.
fn check_finite(logits: &[f32], seen: usize) -> Result<()> {
    if let Some(bad) = logits.iter().find(|x| x.is_nan() || **x == f32::INFINITY) {
        return Err(Error::numeric(format!(
            "the logits after {seen} tokens hold {bad}: a weight or an activation is not finite; run with --check-finite (or LLM_CHECK_FINITE=1) to find the first layer that produced it"
        )));
    }
    Ok(())
}

/// Whether greedy decoding picks its tokens on the device: on a GPU, where reading the whole row
/// of logits back (600 KB a token for a 151,936-token vocabulary) costs more than reducing it
/// there, and while an id is exact as an f32 (it travels back beside the maximum).
fn greedy_on_device(sampling: &Sampling, device: &Device, vocab: usize) -> bool {
    sampling.temperature == 0.0 && !device.is_cpu() && vocab <= 1 << 24
}

/// The k of top-k sampling where its candidates are chosen on the device: on a GPU, for k up
/// to what its sorting top-k takes and below the vocabulary (else top-k keeps every token). The
/// row stays there; k logits and ids come back (320 bytes at k = 40, against 600 KB), and
/// [`Sampler::pick_ranked`] draws from them what it would have drawn from the row.
fn top_k_on_device(sampling: &Sampling, device: &Device, vocab: usize) -> Option<usize> {
    let k = sampling.top_k?;
    let on_device = sampling.temperature > 0.0 && !device.is_cpu() && vocab <= 1 << 24;
    (on_device && k < vocab && k <= TOP_K_ON_DEVICE_MAX).then_some(k)
}

/// The largest k whose candidates a GPU chooses (its sorting top-k's limit; a larger k would
/// walk the row once per candidate); beyond, the row is read back.
const TOP_K_ON_DEVICE_MAX: usize = gpu::kernels::topk::SORT_MAX_K;

/// The `k` largest logits of a row, ranked, their ids, and the row's maximum, computed on the
/// logits' device and read back together (one wait): ids travel as f32, exact below 2^24. The
/// maximum is reduced with NaN winning, as on every device: the ranking (IEEE total order, as
/// the CPU ranks) puts a NaN with its sign bit set last, where the candidates alone would hide it
/// from the finite check.
fn ranked_on_device(logits: &Tensor, k: usize) -> Result<(Vec<f32>, Vec<u32>, f32)> {
    let row = logits.to_dtype(DType::F32)?.flatten_all()?;
    let (values, ids) = row.topk(k, 0usize)?;
    let max = row.max(0usize, true)?;
    let all = Tensor::cat(&[&values, &ids.to_dtype(DType::F32)?, &max], 0)?.to_vec::<f32>()?;
    Ok((all[..k].to_vec(), all[k..2 * k].iter().map(|&i| i as u32).collect(), all[2 * k]))
}

/// The argmax of a row of logits and its value, reduced on the logits' device and read back
/// together (one wait, 8 bytes). Ties go to the lower id and NaN wins, as [`crate::sample::argmax`]
/// and the maximum do, so a NaN anywhere in the row comes back as the maximum and is refused.
fn argmax_on_device(logits: &Tensor) -> Result<(u32, f32)> {
    let row = logits.to_dtype(DType::F32)?.flatten_all()?;
    let max = row.max(0usize, true)?;
    let best = row.argmax(0usize, true)?.to_dtype(DType::F32)?;
    let both = Tensor::cat(&[&best, &max], 0)?.to_vec::<f32>()?;
    Ok((both[0] as u32, both[1]))
}

/// Greedy decoding without a cache: every step reruns the whole sequence. Slow; the reference
/// that the cached path is tested against.
pub fn generate_uncached_greedy(model: &CausalLm, prompt: &[u32], max_new: usize, device: &Device) -> Result<Vec<u32>> {
    no_grad(|| {
        let mut tokens = prompt.to_vec();
        for _ in 0..max_new {
            let ids = Tensor::from_vec(tokens.clone(), [1, tokens.len()], device)?;
            let out = model.forward(&ids, 0, None, false)?;
            let last = out.logits.value().narrow(1, tokens.len() - 1, 1)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
            tokens.push(crate::sample::argmax(&last));
        }
        Ok(tokens)
    })
}
