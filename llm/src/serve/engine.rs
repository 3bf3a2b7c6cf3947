//! The scheduler: one thread owns the model and runs continuous batching. Requests wait in a
//! queue; between two steps, waiting requests join the running batch (up to `max_batch`), and a
//! sequence leaves the batch the moment it ends (end-of-turn token, stop string, token budget,
//! or its client gone), its cache freed with it. Each step feeds every sequence in the batch its
//! next input in one [`CausalLm::forward_segments_logits`] call: one token for a sequence that
//! is decoding, the next chunk of its prompt for one still prefilling, so a long prompt holds the
//! others up for one chunk at a time rather than for the whole prompt. On a GPU the logits stay
//! there: greedy and top-k sequences get their argmax or their k candidates reduced on the
//! device, and the step waits for the GPU once for all of them (a wait drains its queue, and a
//! row is 600 KB at Qwen3's vocabulary); only the samplers that weigh every token read their
//! row back, in the same wait.
//!
//! The KV cache is paged ([`nn::attention::paged`]): every sequence keeps its keys and values in
//! blocks of one pool sized at start, and gives them back the moment it ends. A request joins
//! the batch only when the pool has the blocks for its whole prompt (and some headroom for the
//! running sequences to grow); otherwise it waits (in
//! order: nobody overtakes it). Before each step every running sequence reserves the blocks its
//! new rows need; when the pool runs dry, the newest sequence is preempted (as vLLM does): its
//! blocks go back to the pool and it returns to the front of the queue, to be prefilled again
//! (prompt and the tokens already sent) when blocks are free. Nothing fails mid-answer for lack
//! of blocks unless one sequence alone needs more than the whole pool, which the server rules
//! out by bounding the context (see [`max_positions`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use nn::attention::paged::blocks_needed;
use nn::attention::{BlockPool, KvCache};
use tensor::Device;
use tokio::sync::mpsc::UnboundedSender;

use super::stop::{Piece, StopText};
use crate::generate::{Readback, read_rows, readback_for};
use crate::models::{CausalLm, Segment};
use crate::sample::{Sampler, Sampling};
use crate::tokenizer::{IncrementalDecoder, Tokenizer};

/// One request for the engine.
pub struct Job {
    pub prompt: Vec<u32>,
    /// Most new tokens (already checked to fit the context).
    pub max_tokens: usize,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    /// Where the answer goes; dropping the receiving end cancels the request.
    pub events: UnboundedSender<Event>,
}

/// Why an answer ended, in OpenAI's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-turn token or a stop string.
    Stop,
    /// The token budget (`max_tokens`) or the context ran out.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// What the engine sends back for a request, in order: text pieces, then `Done` or `Failed`.
#[derive(Debug)]
pub enum Event {
    Text(String),
    /// Each sampled token id, before its text (which may wait for the next ids).
    Token(u32),
    Done {
        finish: Finish,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    Failed(String),
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub max_batch: usize,
    /// Most prompt tokens one sequence feeds in one step.
    pub prefill_chunk: usize,
    /// End-of-turn ids: sampling one ends the answer (it is not part of the text).
    pub eos: Vec<u32>,
    /// Blocks in the KV pool; a block holds `block_size` positions of one layer.
    pub kv_blocks: usize,
    pub block_size: usize,
}

/// Positions per KV block unless told otherwise: small enough that a sequence wastes little of
/// its last block, large enough that attention walks few blocks.
pub const DEFAULT_BLOCK_SIZE: usize = 16;

/// Blocks one sequence of `positions` positions holds at most (over all layers), fed at most
/// `step` positions a step.
pub fn blocks_for(model: &CausalLm, positions: usize, block_size: usize, step: usize) -> usize {
    model.layers.iter().map(|l| blocks_needed(l.self_attn.mask(), positions, block_size, step)).sum()
}

/// The most positions one sequence can reach in a pool of `blocks` blocks: the bound on the
/// context that guarantees every admitted request can finish.
pub fn max_positions(model: &CausalLm, blocks: usize, block_size: usize, step: usize) -> usize {
    let (mut lo, mut hi) = (0usize, 1usize);
    while blocks_for(model, hi, block_size, step) <= blocks {
        if hi > 1 << 40 {
            return hi; // every layer keeps a bounded window
        }
        lo = hi;
        hi *= 2;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if blocks_for(model, mid, block_size, step) <= blocks {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Counters readable from other threads (for `/health` and tests).
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Sequences in the running batch.
    pub running: AtomicUsize,
    /// Requests received and not yet admitted.
    pub waiting: AtomicUsize,
    /// KV-cache bytes held by the running sequences after the last step.
    pub cache_bytes: AtomicUsize,
    /// Blocks in the KV pool, blocks held by sequences, and positions per block.
    pub kv_blocks_total: AtomicUsize,
    pub kv_blocks_used: AtomicUsize,
    pub kv_block_size: AtomicUsize,
    /// Times a running sequence was sent back to the queue because the pool ran out of blocks.
    pub preempted: AtomicUsize,
    /// Steps run so far.
    pub steps: AtomicUsize,
    /// Requests finished (any way).
    pub finished: AtomicUsize,
    /// Requests dropped because their client went away before the answer was complete.
    pub cancelled: AtomicUsize,
}

struct Sequence<'t> {
    job: Job,
    /// Prompt, then generated tokens.
    tokens: Vec<u32>,
    /// Tokens already in the cache.
    fed: usize,
    /// One paged cache per layer; empty while waiting.
    caches: Vec<KvCache>,
    sampler: Sampler,
    generated: usize,
    decoder: IncrementalDecoder<'t>,
    text: StopText,
}

/// Runs the engine until every sender of `jobs` is gone and the last request is answered.
pub fn run(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    device: &Device,
    config: &EngineConfig,
    jobs: Receiver<Job>,
    stats: Arc<EngineStats>,
) {
    let pool = match BlockPool::new(config.kv_blocks, config.block_size) {
        Ok(p) => p,
        Err(e) => {
            // Refuse every request with the reason rather than serve without a cache.
            for job in jobs.iter() {
                let _ = job.events.send(Event::Failed(format!("no KV cache: {e}")));
            }
            return;
        }
    };
    stats.kv_blocks_total.store(pool.total(), Ordering::Relaxed);
    stats.kv_block_size.store(pool.block_size(), Ordering::Relaxed);
    let chunk = config.prefill_chunk.max(1);
    let mut waiting: VecDeque<Sequence<'_>> = VecDeque::new();
    let mut running: Vec<Sequence<'_>> = Vec::new();
    let mut open = true;
    let arrive = |job: Job| Sequence {
        tokens: job.prompt.clone(),
        fed: 0,
        caches: Vec::new(),
        sampler: Sampler::new(job.sampling),
        generated: 0,
        decoder: tokenizer.incremental_decoder(),
        text: StopText::new(job.stop.clone()),
        job,
    };
    loop {
        // Take what arrived; sleep only when there is nothing to do.
        if running.is_empty() && waiting.is_empty() {
            if !open {
                return;
            }
            // Idle: the CPU ops' pool need not hold the last requests' prefill activations.
            tensor::cpu::shrink_pool();
            match jobs.recv_timeout(Duration::from_millis(200)) {
                Ok(job) => waiting.push_back(arrive(job)),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(job) => waiting.push_back(arrive(job)),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        // Clients that left, waiting or running, are dropped (their blocks with them).
        let gone = |s: &Sequence<'_>| {
            let gone = s.job.events.is_closed();
            if gone {
                stats.finished.fetch_add(1, Ordering::Relaxed);
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            !gone
        };
        waiting.retain(gone);
        running.retain(gone);
        admit(model, config, &pool, &mut waiting, &mut running, &stats);
        reserve(model, config, &pool, &mut waiting, &mut running, &stats);
        // The pool's figures first: a reader that sees a sequence gone sees its blocks back.
        publish(&pool, &running, &stats);
        stats.waiting.store(waiting.len(), Ordering::Relaxed);
        stats.running.store(running.len(), Ordering::Relaxed);
        if running.is_empty() {
            continue;
        }
        let ends = step(model, device, chunk, config, &mut running);
        stats.steps.fetch_add(1, Ordering::Relaxed);
        // Finished sequences leave now, their blocks back in the pool with them.
        let mut keep = Vec::with_capacity(running.len());
        for (seq, end) in running.drain(..).zip(ends) {
            match end {
                None => keep.push(seq),
                Some(()) => {
                    stats.finished.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        running = keep;
        publish(&pool, &running, &stats);
        stats.running.store(running.len(), Ordering::Relaxed);
    }
}

/// Moves waiting sequences into the batch, oldest first, while the batch has room and the pool
/// has the blocks for a sequence's whole input so far, beyond a block per layer for each
/// running sequence. One that can never fit fails now.
fn admit<'t>(
    model: &CausalLm,
    config: &EngineConfig,
    pool: &Arc<BlockPool>,
    waiting: &mut VecDeque<Sequence<'t>>,
    running: &mut Vec<Sequence<'t>>,
    stats: &EngineStats,
) {
    let step = config.prefill_chunk.max(1);
    while running.len() < config.max_batch.max(1)
        && let Some(next) = waiting.front()
    {
        let needed = blocks_for(model, next.tokens.len() + 1, pool.block_size(), step);
        if needed > pool.total() {
            let s = waiting.pop_front().expect("a waiting sequence");
            let _ = s.job.events.send(Event::Failed(too_long(s.tokens.len() + 1, needed, pool)));
            stats.finished.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // Room for every running sequence to cross one block boundary in every layer, so that
        // a newcomer does not get preempted by the next step's growth (and thrash).
        let headroom = running.len() * model.layers.len();
        if needed + headroom > pool.free() {
            break; // it waits for blocks; nobody overtakes it
        }
        let mut s = waiting.pop_front().expect("a waiting sequence");
        s.caches = model.new_paged_caches(pool);
        // Room in each block table for the sequence's whole length: its steps do not grow them.
        let positions = s.tokens.len().saturating_add(s.job.max_tokens.saturating_sub(s.generated));
        s.caches.iter_mut().for_each(|c| c.reserve(positions));
        running.push(s);
    }
}

/// Gives every running sequence, oldest first, the blocks its next step writes; when the pool
/// runs out, the newest sequence goes back to the front of the queue (its blocks freed) to be
/// prefilled again later. A sequence alone that still cannot get its blocks fails.
fn reserve<'t>(
    model: &CausalLm,
    config: &EngineConfig,
    pool: &Arc<BlockPool>,
    waiting: &mut VecDeque<Sequence<'t>>,
    running: &mut Vec<Sequence<'t>>,
    stats: &EngineStats,
) {
    let chunk = config.prefill_chunk.max(1);
    let mut i = 0;
    while i < running.len() {
        let s = &mut running[i];
        let n = (s.tokens.len() - s.fed).min(chunk);
        if s.caches.iter_mut().all(|c| c.reserve_blocks(n)) {
            i += 1;
            continue;
        }
        if running.len() == 1 {
            let s = running.pop().expect("one running sequence");
            let needed = blocks_for(model, s.tokens.len() + 1, pool.block_size(), chunk);
            let _ = s.job.events.send(Event::Failed(too_long(s.tokens.len() + 1, needed, pool)));
            stats.finished.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut victim = running.pop().expect("a running sequence");
        victim.caches.clear();
        victim.fed = 0;
        waiting.push_front(victim);
        stats.preempted.fetch_add(1, Ordering::Relaxed);
        // Retry sequence `i` with the freed blocks (unless it was the one sent back).
    }
}

fn too_long(positions: usize, needed: usize, pool: &BlockPool) -> String {
    format!(
        "{positions} positions need {needed} KV blocks, more than the pool's {} (raise --kv-blocks or lower --ctx)",
        pool.total()
    )
}

/// Pool and cache figures for `/health`.
fn publish(pool: &BlockPool, running: &[Sequence<'_>], stats: &EngineStats) {
    stats.kv_blocks_used.store(pool.used(), Ordering::Relaxed);
    let bytes = running.iter().flat_map(|s| s.caches.iter()).map(|c| c.capacity_in_bytes()).sum();
    stats.cache_bytes.store(bytes, Ordering::Relaxed);
}

/// One batched step: the forward pass, then each ready sequence's readback ([`read_rows`], one
/// wait for all) and pick. Returns, per sequence, `Some(())` when it has ended (its final event
/// sent).
fn step(
    model: &CausalLm,
    device: &Device,
    chunk: usize,
    config: &EngineConfig,
    running: &mut [Sequence<'_>],
) -> Vec<Option<()>> {
    let inputs: Vec<(usize, usize)> = running
        .iter()
        .map(|s| {
            let n = (s.tokens.len() - s.fed).min(chunk);
            (s.fed, n)
        })
        .collect();
    // What each sequence whose inputs will all be in its cache reads back to pick its token:
    // on a GPU the argmax or the top-k candidates its sampler needs, reduced there (see
    // [`Readback`]); on the CPU, or for a sampler that weighs every token, its row.
    let vocab = model.vocab_size();
    let wants: Vec<Option<Readback>> = running
        .iter()
        .zip(&inputs)
        .map(|(s, &(from, n))| (from + n >= s.tokens.len()).then(|| readback_for(&s.job.sampling, device, vocab)))
        .collect();
    let result = {
        let mut segments: Vec<Segment<'_>> = running
            .iter_mut()
            .zip(&inputs)
            .map(|(s, &(from, n))| Segment { ids: &s.tokens[from..from + n], start: from, caches: &mut s.caches })
            .collect();
        // A bug inside the model must not take the engine thread (and every later request)
        // down with it: it fails the requests of this step. The logits stay on the device and
        // every sequence's readback comes back in one wait.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::device::with_workers_awake(device, || {
                let logits = model.forward_segments_logits(&mut segments, device)?;
                read_rows(&logits, &wants)
            })
        }))
        .unwrap_or_else(|_| Err(crate::Error::input("internal error in the forward pass")))
    };
    let fetched = match result {
        Ok(f) => f,
        Err(e) => {
            // A failure of the step fails every request in it, never the server.
            for s in running.iter() {
                let _ = s.job.events.send(Event::Failed(e.to_string()));
            }
            return running.iter().map(|_| Some(())).collect();
        }
    };
    // Every sequence that got its readback picks its next token, side by side on the kernels'
    // threads: a pick from a whole row reads it all (151,936 logits at Qwen3's vocabulary), and
    // a step of 8 sequences ran 8 of them one after another. A NaN or +inf in the row (its
    // maximum, where only the argmax or the candidates came back) fails that request alone.
    let picks: Vec<Option<Pick>> = {
        use rayon::prelude::*;
        let samplers: Vec<&mut Sampler> = running.iter_mut().map(|s| &mut s.sampler).collect();
        samplers.into_par_iter().zip(fetched).map(|(sampler, got)| got.map(|got| got.pick(sampler))).collect()
    };
    let mut ends = Vec::with_capacity(running.len());
    for ((s, &(_, n)), picked) in running.iter_mut().zip(&inputs).zip(picks) {
        s.fed += n;
        match picked {
            None => ends.push(None), // still prefilling
            Some(picked) => ends.push(advance(s, picked, config).then_some(())),
        }
    }
    ends
}

/// The next token a sampler picks, or the first logit that is not finite (NaN or +inf: a weight
/// or an activation went wrong, and sampling from it means nothing); see
/// [`Fetched::pick`](crate::generate::Fetched::pick).
type Pick = std::result::Result<u32, f32>;

/// Takes the token picked for a sequence whose inputs are all in its cache and sends its text.
/// Returns whether the sequence has ended.
fn advance(s: &mut Sequence<'_>, picked: Pick, config: &EngineConfig) -> bool {
    let prompt_tokens = s.job.prompt.len();
    let done = |s: &Sequence<'_>, finish| Event::Done { finish, prompt_tokens, completion_tokens: s.generated };
    let next = match picked {
        Ok(next) => next,
        Err(bad) => {
            let _ = s.job.events.send(Event::Failed(format!(
                "the logits after {} tokens hold {bad}: a weight or an activation is not finite",
                s.tokens.len()
            )));
            return true;
        }
    };
    s.generated += 1;
    s.tokens.push(next);
    let _ = s.job.events.send(Event::Token(next));
    if config.eos.contains(&next) {
        let rest = s.decoder.finish().unwrap_or_default();
        let mut tail = match s.text.push(&rest) {
            Piece::More(t) | Piece::Stopped(t) => t,
        };
        tail.push_str(&s.text.finish());
        send_text(s, tail);
        let _ = s.job.events.send(done(s, Finish::Stop));
        return true;
    }
    let piece = match s.decoder.push(next) {
        Ok(p) => p,
        Err(e) => {
            let _ = s.job.events.send(Event::Failed(e.to_string()));
            return true;
        }
    };
    match s.text.push(&piece) {
        Piece::Stopped(t) => {
            send_text(s, t);
            let _ = s.job.events.send(done(s, Finish::Stop));
            return true;
        }
        Piece::More(t) => send_text(s, t),
    }
    if s.generated >= s.job.max_tokens {
        let rest = s.decoder.finish().unwrap_or_default();
        let (tail, finish) = match s.text.push(&rest) {
            Piece::More(t) => (t + &s.text.finish(), Finish::Length),
            Piece::Stopped(t) => (t, Finish::Stop),
        };
        send_text(s, tail);
        let _ = s.job.events.send(done(s, finish));
        return true;
    }
    false
}

fn send_text(s: &Sequence<'_>, text: String) {
    if !text.is_empty() {
        let _ = s.job.events.send(Event::Text(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Fetched;

    #[test]
    fn a_row_that_is_not_finite_is_reported_not_sampled() {
        let row = |r: &[f32]| Fetched::Row(r.to_vec());
        let mut sampler = Sampler::new(Sampling { temperature: 0.8, top_k: None, top_p: None, seed: 1 });
        // -inf is a masked token, not an error: sampled around, never picked.
        assert!((0..50).all(|_| matches!(row(&[0.0, 3.0, f32::NEG_INFINITY]).pick(&mut sampler), Ok(0 | 1))));
        assert!(matches!(row(&[0.0, f32::NAN, 1.0]).pick(&mut sampler), Err(v) if v.is_nan()));
        assert_eq!(row(&[0.0, 1.0, f32::INFINITY]).pick(&mut sampler), Err(f32::INFINITY));
        let mut greedy = Sampler::new(Sampling::greedy());
        assert_eq!(row(&[0.5, 2.0, f32::NEG_INFINITY]).pick(&mut greedy), Ok(1));
    }

    /// On a GPU only the argmax or the top-k candidates come back, with the row's maximum
    /// (reduced with NaN winning): the maximum alone decides, as strictly as the whole row does.
    #[test]
    fn a_device_pick_is_refused_when_the_rows_maximum_is_not_finite() {
        let mut greedy = Sampler::new(Sampling::greedy());
        let argmax = |max| Fetched::Argmax { id: 1, max };
        assert_eq!(argmax(2.0).pick(&mut greedy), Ok(1));
        // Every token masked is no error (the host argmax picks token 0 then; so does the device).
        assert_eq!(argmax(f32::NEG_INFINITY).pick(&mut greedy), Ok(1));
        for bad in [f32::NAN, -f32::NAN] {
            assert!(matches!(argmax(bad).pick(&mut greedy), Err(v) if v.is_nan()));
        }
        assert_eq!(argmax(f32::INFINITY).pick(&mut greedy), Err(f32::INFINITY));

        let mut top_k = Sampler::new(Sampling { temperature: 1.0, top_k: Some(3), top_p: None, seed: 4 });
        // Candidates with a masked one among them: drawn around it.
        let ranked = |max| Fetched::TopK { values: vec![1.0, 0.5, f32::NEG_INFINITY], ids: vec![7, 2, 9], max };
        assert!((0..50).all(|_| matches!(ranked(1.0).pick(&mut top_k), Ok(7 | 2))));
        // A negative NaN is ranked last, out of the candidates; the maximum still shows it.
        assert!(matches!(ranked(-f32::NAN).pick(&mut top_k), Err(v) if v.is_nan()));
        assert_eq!(ranked(f32::INFINITY).pick(&mut top_k), Err(f32::INFINITY));
    }
}
