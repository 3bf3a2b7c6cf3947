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
/// Neither counts the time the caller's `on_token` takes: a caller may wait there (a paced
/// benchmark, a slow reader of the stream), and printing a token takes microseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    pub prompt_tokens: usize,
    /// Tokens chosen, the first (from prefill) included.
    pub new_tokens: usize,
    pub prefill: Duration,
    /// The sum of `decode_steps`.
    pub decode: Duration,
    /// Each decoded token's time, in order: from the start of its forward pass to its choice.
    pub decode_steps: Vec<Duration>,
    /// With `LLM_CPU_PROFILE=1` on the CPU: the decoding steps' time in each step of a forward
    /// pass (`tensor::cpu::profile`), summed over every decoded token; empty otherwise.
    pub cpu_steps: Vec<tensor::cpu::profile::StepTime>,
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

/// [`generate`], also saying where the time went (see [`Timings`]).
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
        // Room for every step's time up front: the decoding loop allocates nothing per token.
        let steps = Vec::with_capacity(max_new.min(1 << 20));
        let mut timings = Timings { prompt_tokens: prompt.len(), decode_steps: steps, ..Timings::default() };
        for step in 0..max_new {
            let started = Instant::now();
            let fetched = crate::device::with_workers_awake(device, || -> Result<_> {
                tensor::cpu::profile::start();
                let ids = Tensor::from_vec(input.clone(), [1, input.len()], device)?;
                // Only the last position's logits are needed: the head runs on one row.
                let logits = model.forward_last(&ids, position, Some(&mut caches))?;
                // On a GPU only the argmax, or the top-k candidates, come back (see `Readback`).
                let want = readback_for(&sampling, device, vocab);
                let fetched = read_rows(&logits.value(), &[Some(want)])?.pop().flatten();
                tensor::cpu::profile::mark("readback");
                Ok(fetched)
            })?;
            position += input.len();
            let next = match fetched.map(|f| f.pick(&mut sampler)) {
                Some(Ok(next)) => next,
                Some(Err(bad)) => return Err(not_finite(bad, tokens.len())),
                None => return Err(Error::numeric("no logits came back for the last position")),
            };
            tokens.push(next);
            timings.new_tokens += 1;
            if step == 0 {
                timings.prefill = started.elapsed();
                // The decoding steps' times only (see `Timings::cpu_steps`).
                tensor::cpu::profile::take();
            } else {
                timings.decode_steps.push(started.elapsed());
            }
            on_token(next)?;
            if stop.eos.contains(&next) {
                break;
            }
            input = vec![next];
        }
        timings.decode = timings.decode_steps.iter().sum();
        if device.is_cpu() {
            timings.cpu_steps = tensor::cpu::profile::take();
        }
        Ok((tokens, timings))
    })
}

/// NaN logits would make every draw meaningless (and sampling silently picks the last
/// candidate); -inf is left alone, it only rules a token out ([`Fetched::pick`] tells them apart).
fn not_finite(bad: f32, seen: usize) -> Error {
    Error::numeric(format!(
        "the logits after {seen} tokens hold {bad}: a weight or an activation is not finite; run with --check-finite (or LLM_CHECK_FINITE=1) to find the first layer that produced it"
    ))
}

/// What a step reads back of a row of logits to pick its token ([`readback_for`] decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readback {
    /// The argmax and the row's maximum: greedy decoding. On a GPU reading the whole row back
    /// (600 KB a token for a 151,936-token vocabulary) costs more than reducing it there; on the
    /// CPU the two reductions read the row where it lies, while the row's readback copies it
    /// into fresh memory and the pick scans it twice more: with the pick, 33-52 µs a token at
    /// that vocabulary against 150-330 in a loop over one row (Zen 4 EPYC, 2 threads, 200 picks
    /// each); inside `llm generate` at the Qwen3-0.6B shape (`LLM_CPU_PROFILE=1`, the row fresh
    /// from the head's product) 129 µs against 145-280.
    Argmax,
    /// The k largest logits, ranked, their ids and the row's maximum: top-k sampling on a GPU
    /// (320 bytes at k = 40); [`Sampler::pick_ranked`] draws from them what it would have drawn
    /// from the row.
    TopK(usize),
    /// The whole row: for the samplers that weigh every token (temperature or top-p without
    /// top-k, or a k beyond the device's top-k), and for top-k on the CPU, where the row is
    /// already in memory.
    Row,
}

/// What `sampling` reads back of a row of `vocab` logits on `device`. The reduced readbacks need
/// ids exact as f32 (they travel back beside the logits), so a vocabulary below 2^24.
pub(crate) fn readback_for(sampling: &Sampling, device: &Device, vocab: usize) -> Readback {
    if vocab > 1 << 24 {
        return Readback::Row;
    }
    match sampling.top_k {
        _ if sampling.temperature == 0.0 => Readback::Argmax,
        _ if device.is_cpu() => Readback::Row,
        // A k as large as the row keeps every token: top-k does nothing, the row is needed.
        // (k = 0 is refused by `validate`; taken as 1 here, as `Sampler::pick` takes it.)
        Some(k) if k < vocab && k <= TOP_K_ON_DEVICE_MAX => Readback::TopK(k.max(1)),
        _ => Readback::Row,
    }
}

/// The largest k whose candidates a GPU chooses (its sorting top-k's limit; a larger k would
/// walk the row once per candidate); beyond, the row is read back.
const TOP_K_ON_DEVICE_MAX: usize = gpu::kernels::topk::SORT_MAX_K;

/// What came back of one row of logits ([`Readback`]'s answer).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fetched {
    Argmax { id: u32, max: f32 },
    TopK { values: Vec<f32>, ids: Vec<u32>, max: f32 },
    Row(Vec<f32>),
}

impl Fetched {
    /// The token `sampler` picks, or the row's first value that is not finite: NaN (of either
    /// sign) or +inf mean a weight or an activation went wrong, and sampling from them means
    /// nothing; -inf is a masked token, never picked. The reduced readbacks carry the row's
    /// maximum, reduced on the device with NaN winning, so a NaN anywhere in the row shows
    /// there even where the candidates hide it (the ranking puts a negative NaN last).
    pub(crate) fn pick(&self, sampler: &mut Sampler) -> std::result::Result<u32, f32> {
        let bad = |x: f32| x.is_nan() || x == f32::INFINITY;
        match self {
            Fetched::Argmax { max, .. } | Fetched::TopK { max, .. } if bad(*max) => Err(*max),
            Fetched::Argmax { id, .. } => Ok(*id),
            Fetched::TopK { values, ids, .. } => Ok(sampler.pick_ranked(values, ids)),
            Fetched::Row(row) => match row.iter().find(|x| bad(**x)) {
                Some(&x) => Err(x),
                None => Ok(sampler.pick(row)),
            },
        }
    }
}

/// Reads back of each row of `logits` (`[.., R, vocab]` with R = `wants.len()`) what its
/// want asks for, nothing for `None`, with one wait for them all: every wait drains the GPU's
/// queue, and a batched step that waited once per sequence would stall as many times. The rows
/// that want the argmax are reduced together, those that want top-k ranked together (to the
/// largest k asked; the first k of a ranking are the top k), the whole rows copied out
/// together, and the lot travels back as one f32 buffer: ids are exact as f32 below 2^24. Each
/// row's maximum is reduced with NaN winning, as on every device (see [`Fetched::pick`]).
pub(crate) fn read_rows(logits: &Tensor, wants: &[Option<Readback>]) -> Result<Vec<Option<Fetched>>> {
    let vocab = logits.dims().last().copied().unwrap_or(1);
    let logits = logits.to_dtype(DType::F32)?.reshape([wants.len(), vocab])?;
    let rows = |kind: fn(&Readback) -> bool| -> Vec<usize> {
        wants.iter().enumerate().filter(|(_, w)| w.as_ref().is_some_and(kind)).map(|(i, _)| i).collect()
    };
    let (argmax, ranked, whole) =
        (rows(|w| *w == Readback::Argmax), rows(|w| matches!(w, Readback::TopK(_))), rows(|w| *w == Readback::Row));
    let k = wants.iter().filter_map(|w| if let Some(Readback::TopK(k)) = w { Some(*k) } else { None }).max();
    let mut parts = Vec::new();
    if !argmax.is_empty() {
        let x = select_rows(&logits, &argmax)?;
        parts.push(x.argmax(1usize, false)?.to_dtype(DType::F32)?);
        parts.push(x.max(1usize, false)?);
    }
    if let Some(k) = k {
        let x = select_rows(&logits, &ranked)?;
        let (values, ids) = x.topk(k, 1usize)?;
        parts.push(values.flatten_all()?);
        parts.push(ids.to_dtype(DType::F32)?.flatten_all()?);
        parts.push(x.max(1usize, false)?);
    }
    if !whole.is_empty() {
        parts.push(select_rows(&logits, &whole)?.flatten_all()?);
    }
    let flat = match parts.as_slice() {
        [] => Vec::new(),
        [one] => one.to_vec::<f32>()?,
        _ => Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)?.to_vec::<f32>()?,
    };
    // One whole row and nothing else (a sampled step of one sequence): the readback is the row,
    // not copied a second time into fresh memory (with the pick, 150-178 µs a token at a
    // 151,936-token vocabulary against 170-330 on a Zen 4 EPYC).
    if let [r] = whole[..]
        && argmax.is_empty()
        && ranked.is_empty()
    {
        take(&mut flat.as_slice(), vocab)?;
        let mut out: Vec<Option<Fetched>> = wants.iter().map(|_| None).collect();
        out[r] = Some(Fetched::Row(flat));
        return Ok(out);
    }
    // Unpacked in the order packed.
    let mut rest = flat.as_slice();
    let mut out: Vec<Option<Fetched>> = wants.iter().map(|_| None).collect();
    let (ids, maxes) = (take(&mut rest, argmax.len())?, take(&mut rest, argmax.len())?);
    for ((&r, &id), &max) in argmax.iter().zip(ids).zip(maxes) {
        out[r] = Some(Fetched::Argmax { id: id as u32, max });
    }
    let k = k.unwrap_or(0);
    let values = take(&mut rest, ranked.len() * k)?;
    let (ids, maxes) = (take(&mut rest, ranked.len() * k)?, take(&mut rest, ranked.len())?);
    for (i, (&r, &max)) in ranked.iter().zip(maxes).enumerate() {
        let Some(Readback::TopK(kr)) = wants[r] else { continue };
        let (values, ids) = (&values[i * k..i * k + kr], &ids[i * k..i * k + kr]);
        out[r] = Some(Fetched::TopK { values: values.to_vec(), ids: ids.iter().map(|&i| i as u32).collect(), max });
    }
    for &r in &whole {
        out[r] = Some(Fetched::Row(take(&mut rest, vocab)?.to_vec()));
    }
    Ok(out)
}

/// The rows of `x [R, vocab]` listed in `rows` (ascending), as one tensor on its device; `x`
/// itself when that is all of them.
fn select_rows(x: &Tensor, rows: &[usize]) -> Result<Tensor> {
    if rows.len() == x.dims()[0] {
        return Ok(x.clone());
    }
    let ids = Tensor::from_vec(rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), [rows.len()], x.device())?;
    Ok(x.index_select(&ids, 0usize)?)
}

/// The next `n` values of a readback.
fn take<'a>(rest: &mut &'a [f32], n: usize) -> Result<&'a [f32]> {
    if rest.len() < n {
        return Err(Error::numeric(format!("a readback of logits came back {} values short", n - rest.len())));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of one batch that want different readbacks (and one that wants none) come back
    /// unpacked to the right rows: the argmax and maximum, the top k of each row to its own k
    /// (ranked, lower id first on ties), and whole rows. A negative NaN, ranked last and so out
    /// of the candidates, still comes back as the row's maximum.
    #[test]
    fn one_readback_serves_rows_that_want_different_things() -> Result<()> {
        let rows = [
            [0.5, 3.0, 1.0, 3.0, -1.0, 2.0],
            [9.0, 9.0, 9.0, 9.0, 9.0, 9.0],
            [0.0, 1.0, 4.0, f32::NEG_INFINITY, 4.0, 2.0],
            [-f32::NAN, 1.0, 2.0, 3.0, 4.0, 5.0],
            [1.0, f32::NAN, 0.0, 0.0, 0.0, 0.0],
            [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
        ];
        let logits = Tensor::from_vec(rows.concat(), [1, 6, 6], &Device::cpu())?;
        use Readback::*;
        let wants = [Some(TopK(2)), None, Some(Argmax), Some(TopK(3)), Some(Argmax), Some(Row)];
        let got = read_rows(&logits, &wants)?;
        assert_eq!(got[0], Some(Fetched::TopK { values: vec![3.0, 3.0], ids: vec![1, 3], max: 3.0 }));
        assert_eq!(got[1], None);
        assert_eq!(got[2], Some(Fetched::Argmax { id: 2, max: 4.0 }));
        let Some(Fetched::TopK { values, ids, max }) = &got[3] else { panic!("{:?}", got[3]) };
        assert_eq!((values.as_slice(), ids.as_slice()), (&[5.0, 4.0, 3.0][..], &[5, 4, 3][..]));
        assert!(max.is_nan());
        assert!(matches!(got[4], Some(Fetched::Argmax { max, .. }) if max.is_nan()));
        assert_eq!(got[5], Some(Fetched::Row(rows[5].to_vec())));
        // One row alone comes back whole, as the readback itself.
        let one = Tensor::from_vec(rows[2].to_vec(), [1, 1, 6], &Device::cpu())?;
        assert_eq!(read_rows(&one, &[Some(Row)])?, [Some(Fetched::Row(rows[2].to_vec()))]);
        Ok(())
    }

    /// Greedy decoding reduces the row on every device (on the CPU too: no copy of the row);
    /// the samplers that weigh the row read it whole on the CPU; a vocabulary whose ids f32
    /// cannot hold exactly always reads the row.
    #[test]
    fn what_each_sampler_reads_back() {
        let greedy = Sampling::greedy();
        let top_k = Sampling { temperature: 0.8, top_k: Some(40), ..Sampling::greedy() };
        let cpu = Device::cpu();
        assert_eq!(readback_for(&greedy, &cpu, 151_936), Readback::Argmax);
        assert_eq!(readback_for(&top_k, &cpu, 151_936), Readback::Row);
        assert_eq!(readback_for(&greedy, &cpu, (1 << 24) + 1), Readback::Row);
    }
}
