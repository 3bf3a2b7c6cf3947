//! The engine's paged KV cache on the shipped tiny model (6 layers, so a sequence of up to 16
//! positions holds 6 blocks of 16): a sequence's blocks return to the pool when it finishes and
//! when its client goes away mid-answer; 64 concurrent requests through a pool that holds only
//! a few of them at once are all answered (admission waits, growth preempts the newest), each
//! with the greedy tokens of `llm::generate` alone on a contiguous cache, token for token.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use llm::serve::engine::{self, EngineStats, Event};
use tensor::Device;

mod serve_common;
use serve_common::{answered_tokens, engine_config, generate_alone, job, tiny};

/// Waits until `ok` holds of the stats (the engine runs on another thread).
fn wait_for(stats: &EngineStats, what: &str, ok: impl Fn(&EngineStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok(stats) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}: {stats:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn blocks_return_to_the_pool_when_a_sequence_finishes_and_when_its_client_leaves() {
    let (loaded, tokenizer) = tiny();
    let stats = Arc::new(EngineStats::default());
    let (jobs, receiver) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let engine_stats = stats.clone();
        let config = engine_config(&loaded, 4, 64, 600);
        let (model, tokenizer) = (&loaded.model, &tokenizer);
        scope.spawn(move || engine::run(model, tokenizer, &Device::cpu(), &config, receiver, engine_stats));
        wait_for(&stats, "the pool is sized", |s| s.kv_blocks_total.load(Ordering::Relaxed) == 600);

        // Finished: a short answer, then its blocks are free again.
        let (j, mut rx) = job(vec![0, 11, 300, 42], 5);
        jobs.send(j).unwrap();
        let mut tokens = 0;
        loop {
            match rx.blocking_recv().expect("an answer") {
                Event::Token(_) => tokens += 1,
                Event::Done { .. } => break,
                Event::Failed(m) => panic!("{m}"),
                Event::Text(_) => {}
            }
        }
        assert_eq!(tokens, 5);
        wait_for(&stats, "the finished sequence's blocks are back", |s| {
            s.finished.load(Ordering::Relaxed) == 1 && s.kv_blocks_used.load(Ordering::Relaxed) == 0
        });

        // Gone mid-answer: a long answer whose receiver is dropped after a few tokens, while
        // its 40-token prompt and answer hold blocks in every layer.
        let (j, mut rx) = job((0..40).map(|i| (i * 37 % 2000) as u32).collect(), 400);
        jobs.send(j).unwrap();
        let mut seen = 0;
        while seen < 3 {
            if let Event::Token(_) = rx.blocking_recv().expect("tokens") {
                seen += 1;
            }
        }
        let held = stats.kv_blocks_used.load(Ordering::Relaxed);
        assert!(held >= 6 * 3, "a 43-position sequence holds 3 blocks in each of 6 layers, got {held}");
        drop(rx);
        wait_for(&stats, "the abandoned sequence's blocks are back", |s| {
            s.cancelled.load(Ordering::Relaxed) == 1 && s.kv_blocks_used.load(Ordering::Relaxed) == 0
        });
        assert_eq!(stats.cache_bytes.load(Ordering::Relaxed), 0);
        drop(jobs);
    });
}

/// 64 prompts of 2 to 12 tokens with answers of 3 to 24 tokens.
fn many() -> Vec<(Vec<u32>, usize)> {
    (0..64u32)
        .map(|i| {
            let len = 2 + (i as usize * 5) % 11;
            let prompt: Vec<u32> =
                std::iter::once(0).chain((1..len as u32).map(|j| (i * 131 + j * 17) % 2000)).collect();
            (prompt, 3 + (i as usize * 7) % 22)
        })
        .collect()
}

#[test]
fn sixty_four_requests_through_a_small_pool_are_all_answered_with_the_unpaged_greedy_tokens() {
    let (loaded, tokenizer) = tiny();
    let requests = many();
    // Alone, on the contiguous cache `generate` uses.
    let expected: Vec<Vec<u32>> = requests.iter().map(|(p, n)| generate_alone(&loaded, p, *n)).collect();
    // A pool of 40 blocks, though the batch allows 16: a prompt (at most 13 positions) needs 6
    // blocks to be admitted, a whole answer (at most 36 positions) 18, so at most 6 start at
    // once and growing ones preempt the newest; prompts go in chunks of 4 tokens.
    let (jobs, receiver) = std::sync::mpsc::channel();
    let mut answers = Vec::new();
    for (p, n) in &requests {
        let (j, rx) = job(p.clone(), *n);
        jobs.send(j).unwrap();
        answers.push(rx);
    }
    drop(jobs);
    let stats = Arc::new(EngineStats::default());
    engine::run(&loaded.model, &tokenizer, &Device::cpu(), &engine_config(&loaded, 16, 4, 40), receiver, stats.clone());
    assert_eq!(stats.finished.load(Ordering::Relaxed), 64);
    assert_eq!(stats.kv_blocks_used.load(Ordering::Relaxed), 0);
    for (i, (mut rx, want)) in answers.into_iter().zip(expected).enumerate() {
        let tokens = answered_tokens(&mut rx, &format!("request {i}"));
        assert_eq!(tokens, want, "request {i}");
    }
    // Admission leaves headroom, yet answers of up to 24 tokens outgrow it: some sequences were
    // sent back to the queue and prefilled again, and still gave the same tokens.
    assert!(stats.preempted.load(Ordering::Relaxed) > 0, "this pool is small enough to preempt");
}

#[test]
fn a_request_larger_than_the_whole_pool_fails_with_a_clear_error() {
    let (loaded, tokenizer) = tiny();
    // 6 blocks: one block in each layer, 16 positions; a 20-token prompt can never fit.
    let (jobs, receiver) = std::sync::mpsc::channel();
    let (big, mut big_rx) = job((0..20).collect(), 2);
    let (small, mut small_rx) = job(vec![0, 5], 3);
    jobs.send(big).unwrap();
    jobs.send(small).unwrap();
    drop(jobs);
    let stats = Arc::new(EngineStats::default());
    engine::run(&loaded.model, &tokenizer, &Device::cpu(), &engine_config(&loaded, 4, 64, 6), receiver, stats);
    match big_rx.try_recv() {
        Ok(Event::Failed(m)) => assert!(m.contains("more than the pool's 6"), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let mut done = false;
    while let Ok(e) = small_rx.try_recv() {
        done |= matches!(e, Event::Done { .. });
    }
    assert!(done, "the request that fits is answered");
    // 16 positions fit one sequence; the engine's bound says so.
    assert_eq!(engine::max_positions(&loaded.model, 6, 16, 64), 16);
}
