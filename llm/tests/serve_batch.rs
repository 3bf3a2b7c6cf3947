//! Continuous batching on the shipped tiny model: several sequences decoded in one batched
//! forward pass give the logits of decoding each alone (to f32 rounding), the engine's greedy
//! tokens equal `llm::generate`'s whatever the batch size and prefill chunk, and every
//! sequence's cache is gone once it ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use llm::models::{Loaded, Segment};
use llm::serve::engine::{self, EngineStats};
use llm::tokenizer::Tokenizer;
use tensor::{Device, Tensor};

mod serve_common;
use serve_common::{answered_tokens, engine_config, generate_alone, job, tiny};

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![0, 11, 300, 42],
        vec![0, 5],
        (0..40).map(|i| (i * 37 % 2000) as u32).collect(),
        vec![0, 700, 701, 702, 703, 704, 705],
        vec![0, 1000, 20, 30, 40],
    ]
}

/// Batched last-position logits against one `forward` per sequence, after a batched prefill
/// of different lengths and one batched decode step. Both paths run the same f32 kernels on
/// differently shaped inputs; 1e-4 absolute on logits of magnitude ~10 allows for summation
/// order and nothing more.
#[test]
fn batched_logits_equal_one_sequence_at_a_time() {
    let (loaded, _) = tiny();
    let model = &loaded.model;
    let device = Device::cpu();
    let prompts = prompts();
    let mut caches: Vec<_> = prompts.iter().map(|_| model.new_caches()).collect();
    let mut segments: Vec<Segment<'_>> =
        prompts.iter().zip(caches.iter_mut()).map(|(p, c)| Segment { ids: p, start: 0, caches: c }).collect();
    let prefill = model.forward_segments(&mut segments, &device).unwrap();
    let next: Vec<u32> = prompts.iter().map(|p| (p[p.len() - 1] + 3) % 2048).collect();
    let mut segments: Vec<Segment<'_>> = prompts
        .iter()
        .zip(caches.iter_mut())
        .zip(&next)
        .map(|((p, c), n)| Segment { ids: std::slice::from_ref(n), start: p.len(), caches: c })
        .collect();
    let decode = model.forward_segments(&mut segments, &device).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let mut full = p.clone();
        full.push(next[i]);
        let ids = Tensor::from_vec(full.clone(), [1, full.len()], &device).unwrap();
        let logits = autograd::no_grad(|| model.forward(&ids, 0, None, false)).unwrap().logits.value();
        let row = |t: usize| logits.narrow(1, t, 1).unwrap().to_vec::<f32>().unwrap();
        for (got, want) in [(&prefill[i], row(p.len() - 1)), (&decode[i], row(p.len()))] {
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "sequence {i}: max |difference| {diff}");
        }
    }
}

/// Runs the engine on all prompts at once and returns each request's tokens.
fn engine_tokens(
    loaded: &Loaded,
    tokenizer: &Tokenizer,
    max_batch: usize,
    chunk: usize,
    max_new: &[usize],
) -> Vec<Vec<u32>> {
    let (jobs, receiver) = std::sync::mpsc::channel();
    let mut answers = Vec::new();
    for (p, &n) in prompts().into_iter().zip(max_new) {
        let (j, rx) = job(p, n);
        jobs.send(j).unwrap();
        answers.push(rx);
    }
    drop(jobs);
    let stats = Arc::new(EngineStats::default());
    let config = engine_config(loaded, max_batch, chunk, 4096);
    engine::run(&loaded.model, tokenizer, &Device::cpu(), &config, receiver, stats.clone());
    assert_eq!(stats.running.load(Ordering::Relaxed), 0);
    assert_eq!(stats.waiting.load(Ordering::Relaxed), 0);
    assert_eq!(stats.cache_bytes.load(Ordering::Relaxed), 0, "caches are freed when sequences end");
    assert_eq!(stats.kv_blocks_used.load(Ordering::Relaxed), 0, "blocks are back in the pool");
    assert_eq!(stats.finished.load(Ordering::Relaxed), answers.len());
    answers.iter_mut().enumerate().map(|(i, rx)| answered_tokens(rx, &format!("request {i}"))).collect()
}

#[test]
fn batched_greedy_decoding_equals_generate() {
    let (loaded, tokenizer) = tiny();
    let max_new = [20, 7, 25, 1, 16];
    let expected: Vec<Vec<u32>> = prompts().iter().zip(max_new).map(|(p, n)| generate_alone(&loaded, p, n)).collect();
    // One at a time; all together with whole prompts; all together with prompts fed 3 tokens a
    // step (the 40-token prompt takes 14 steps while the others decode); a batch of 2.
    for (max_batch, chunk) in [(1, 64), (8, 64), (8, 3), (2, 5)] {
        let got = engine_tokens(&loaded, &tokenizer, max_batch, chunk, &max_new);
        assert_eq!(got, expected, "max_batch {max_batch}, prefill chunk {chunk}");
    }
}
