//! The scheduler: one thread owns the model and runs continuous batching. Requests wait in a
//! queue; between two steps, waiting requests join the running batch (up to `max_batch`), and a
//! sequence leaves the batch the moment it ends (end-of-turn token, stop string, token budget,
//! or its client gone), its cache freed with it. Each step feeds every sequence in the batch its
//! next input in one [`CausalLm::forward_segments`] call: one token for a sequence that is
//! decoding, the next chunk of its prompt for one still prefilling, so a long prompt holds the
//! others up for one chunk at a time rather than for the whole prompt.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use nn::attention::KvCache;
use tensor::Device;
use tokio::sync::mpsc::UnboundedSender;

use super::stop::{Piece, StopText};
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
    let mut waiting: std::collections::VecDeque<Job> = Default::default();
    let mut running: Vec<Sequence<'_>> = Vec::new();
    let mut open = true;
    loop {
        // Take what arrived; sleep only when there is nothing to do.
        if running.is_empty() && waiting.is_empty() {
            if !open {
                return;
            }
            match jobs.recv_timeout(Duration::from_millis(200)) {
                Ok(job) => waiting.push_back(job),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        // Clients that left while waiting are dropped before costing anything.
        waiting.retain(|j| {
            let gone = j.events.is_closed();
            if gone {
                stats.finished.fetch_add(1, Ordering::Relaxed);
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            !gone
        });
        while running.len() < config.max_batch.max(1)
            && let Some(job) = waiting.pop_front()
        {
            running.push(Sequence {
                tokens: job.prompt.clone(),
                fed: 0,
                caches: model.new_caches(),
                sampler: Sampler::new(job.sampling),
                generated: 0,
                decoder: tokenizer.incremental_decoder(),
                text: StopText::new(job.stop.clone()),
                job,
            });
        }
        stats.waiting.store(waiting.len(), Ordering::Relaxed);
        running.retain(|s| {
            let gone = s.job.events.is_closed();
            if gone {
                stats.finished.fetch_add(1, Ordering::Relaxed);
                stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            !gone
        });
        stats.running.store(running.len(), Ordering::Relaxed);
        if running.is_empty() {
            stats.cache_bytes.store(0, Ordering::Relaxed);
            continue;
        }
        let ends = step(model, device, config, &mut running);
        stats.steps.fetch_add(1, Ordering::Relaxed);
        // Finished sequences leave now, their caches dropped with them.
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
        stats.running.store(running.len(), Ordering::Relaxed);
        let bytes = running.iter().flat_map(|s| s.caches.iter()).map(|c| c.capacity_in_bytes()).sum();
        stats.cache_bytes.store(bytes, Ordering::Relaxed);
    }
}

/// One batched step. Returns, per sequence, `Some(())` when it has ended (its final event sent).
fn step(model: &CausalLm, device: &Device, config: &EngineConfig, running: &mut [Sequence<'_>]) -> Vec<Option<()>> {
    let chunk = config.prefill_chunk.max(1);
    let inputs: Vec<(usize, usize)> = running
        .iter()
        .map(|s| {
            let n = (s.tokens.len() - s.fed).min(chunk);
            (s.fed, n)
        })
        .collect();
    let result = {
        let mut segments: Vec<Segment<'_>> = running
            .iter_mut()
            .zip(&inputs)
            .map(|(s, &(from, n))| Segment { ids: &s.tokens[from..from + n], start: from, caches: &mut s.caches })
            .collect();
        // A bug inside the model must not take the engine thread (and every later request)
        // down with it: it fails the requests of this step.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.forward_segments(&mut segments, device)))
            .unwrap_or_else(|_| Err(crate::Error::input("internal error in the forward pass")))
    };
    let logits = match result {
        Ok(l) => l,
        Err(e) => {
            // A failure of the step fails every request in it, never the server.
            for s in running.iter() {
                let _ = s.job.events.send(Event::Failed(e.to_string()));
            }
            return running.iter().map(|_| Some(())).collect();
        }
    };
    let mut ends = Vec::with_capacity(running.len());
    for ((s, &(_, n)), row) in running.iter_mut().zip(&inputs).zip(logits) {
        s.fed += n;
        if s.fed < s.tokens.len() {
            ends.push(None); // still prefilling
            continue;
        }
        ends.push(advance(s, &row, config).then_some(()));
    }
    ends
}

/// Picks the next token of a sequence whose inputs are all in its cache and sends its text.
/// Returns whether the sequence has ended.
fn advance(s: &mut Sequence<'_>, logits: &[f32], config: &EngineConfig) -> bool {
    let prompt_tokens = s.job.prompt.len();
    let done = |s: &Sequence<'_>, finish| Event::Done { finish, prompt_tokens, completion_tokens: s.generated };
    if let Some(bad) = logits.iter().find(|x| x.is_nan() || **x == f32::INFINITY) {
        let _ = s.job.events.send(Event::Failed(format!(
            "the logits after {} tokens hold {bad}: a weight or an activation is not finite",
            s.tokens.len()
        )));
        return true;
    }
    let next = s.sampler.pick(logits);
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
