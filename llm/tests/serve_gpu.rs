//! `llm serve`'s batched step on a GPU picks its tokens there: greedy sequences get the argmax
//! of their rows, top-k ones their k candidates (drawn from by `Sampler::pick_ranked`), and
//! only the other samplers read their rows back, all in one wait a step. These tests drive the
//! engine on a tiny checkpoint (tests/data/hf-tiny, untied head) on the GPU and on the CPU:
//! the same requests get the same tokens, a step waits for the GPU once, and a row of NaN
//! logits fails its own request and no other. Skipped, with a note, where no GPU adapter exists.

use std::path::PathBuf;
use std::sync::Arc;

use llm::models::{LoadOptions, Loaded, load};
use llm::sample::Sampling;
use llm::serve::engine::{self, EngineStats, Event, Job};
use llm::tokenizer::Tokenizer;
use nn::ModuleExt;
use tensor::{DType, Device, Tensor};

mod serve_common;
use serve_common::{engine_config, tiny_dir};

/// The counters are the process's: the tests here take turns, so none counts another's work.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Mistral's tiny checkpoint: a 256-token vocabulary and a head of its own (not the embedding),
/// so a poisoned embedding row reaches only the sequences that hold its token.
fn model_on(device: &Device) -> Loaded {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny/mistral_small");
    load(&path, &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) }).unwrap()
}

/// The shipped tiny model's tokenizer: 2048 tokens, so it decodes every id of the checkpoint.
fn tokenizer() -> Tokenizer {
    Tokenizer::from_file(tiny_dir().join("tokenizer.json")).unwrap()
}

fn top_k(k: usize, top_p: Option<f64>, seed: u64) -> Sampling {
    Sampling { temperature: 1.1, top_k: Some(k), top_p, seed }
}

/// Greedy and top-k requests: the kinds a GPU picks on the device. k = 5 takes the walking
/// top-k kernel, k = 100 the sorting one.
fn device_picked() -> Vec<(Vec<u32>, Sampling)> {
    vec![
        (vec![1, 11, 30, 42], Sampling::greedy()),
        (vec![1, 5], top_k(5, None, 17)),
        ((0..23).map(|i| (i * 37 % 250) as u32 + 3).collect(), top_k(100, Some(0.9), 3)),
        (vec![1, 70, 71, 72, 73, 74, 75], Sampling::greedy()),
        (vec![1, 100, 20], top_k(40, None, 8)),
    ]
}

/// What the engine sent one request: its tokens, and the failure that ended it, if one did.
#[derive(Debug, PartialEq)]
struct Answer {
    tokens: Vec<u32>,
    failed: Option<String>,
}

/// Runs the engine on `loaded` and `device` with every request queued before it starts (so they
/// all join the first step), and returns the answers and the steps taken.
fn serve(loaded: &Loaded, device: &Device, requests: &[(Vec<u32>, Sampling)], chunk: usize) -> (Vec<Answer>, usize) {
    let (jobs, receiver) = std::sync::mpsc::channel();
    let mut answers = Vec::new();
    for (prompt, sampling) in requests {
        let (events, rx) = tokio::sync::mpsc::unbounded_channel();
        let job = Job { prompt: prompt.clone(), max_tokens: 12, sampling: *sampling, stop: vec![], events };
        jobs.send(job).unwrap();
        answers.push(rx);
    }
    drop(jobs);
    let stats = Arc::new(EngineStats::default());
    let config = engine_config(loaded, requests.len(), chunk, 4096);
    engine::run(&loaded.model, &tokenizer(), device, &config, receiver, stats.clone());
    let answers = answers
        .iter_mut()
        .map(|rx| {
            let mut answer = Answer { tokens: Vec::new(), failed: None };
            while let Ok(e) = rx.try_recv() {
                match e {
                    Event::Token(t) => answer.tokens.push(t),
                    Event::Failed(m) => answer.failed = Some(m),
                    Event::Text(_) | Event::Done { .. } => {}
                }
            }
            answer
        })
        .collect();
    (answers, stats.steps.load(std::sync::atomic::Ordering::Relaxed))
}

/// Greedy, seeded top-k (with and without top-p) and seeded top-p or plain temperature (rows
/// read back), batched together with prompts fed 3 tokens a step (so some sequences pick while
/// others still prefill): the GPU engine answers every request with the CPU engine's tokens.
/// The GPU's logits differ from the CPU's by ~1e-6, far below a draw's margin on these rows;
/// a wrong id or candidate from the device (a row mixed up with another, a value off by one
/// place) changes the tokens.
#[test]
fn the_gpu_engine_picks_the_tokens_the_cpu_engine_picks() {
    let Some(device) = gpu::test_device() else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut requests = device_picked();
    requests.push((vec![1, 9, 9, 9], Sampling { temperature: 0.8, top_k: None, top_p: Some(0.9), seed: 5 }));
    requests.push((vec![1, 200, 201], Sampling { temperature: 1.0, top_k: None, top_p: None, seed: 6 }));
    // k as large as the vocabulary keeps every token: the row comes back.
    requests.push((vec![1, 3], top_k(256, None, 7)));
    let (on_cpu, _) = serve(&model_on(&Device::cpu()), &Device::cpu(), &requests, 3);
    let (on_gpu, _) = serve(&model_on(&device), &device, &requests, 3);
    for (i, (gpu, cpu)) in on_gpu.iter().zip(&on_cpu).enumerate() {
        assert!(cpu.failed.is_none() && !cpu.tokens.is_empty(), "request {i} on the CPU: {cpu:?}");
        assert_eq!(gpu, cpu, "request {i} ({:?})", requests[i].1);
    }
}

/// With greedy and top-k sequences only, a GPU step waits for the GPU once: the argmaxes, the
/// candidates and the rows' maxima of all sequences come back together. Whole prompts are fed
/// in the first step, so every step picks tokens and needs a readback: at most as many
/// readbacks as steps means exactly one in each.
#[test]
fn a_gpu_step_reads_back_once_for_all_its_sequences() {
    let Some(device) = gpu::test_device() else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let loaded = model_on(&device);
    let before = gpu::counters();
    let (answers, steps) = serve(&loaded, &device, &device_picked(), 64);
    let spent = gpu::counters().delta(&before);
    assert!(answers.iter().all(|a| a.failed.is_none() && !a.tokens.is_empty()), "{answers:?}");
    eprintln!("{} readbacks in {steps} steps of {} sequences", spent.readbacks, answers.len());
    assert!(steps > 1 && spent.readbacks <= steps as u64, "{} readbacks in {steps} steps", spent.readbacks);
}

/// A NaN in one sequence's logits fails that request alone, on the GPU path: the token 200's
/// embedding row is NaN, so every request whose prompt holds it gets NaN logits (greedy,
/// top-k, and top-p reading its row back), caught by the rows' maxima, and the others go on.
/// The CPU engine, reading every row, gives the same answers and failures.
#[test]
fn nan_logits_fail_only_their_own_request_on_the_gpu() {
    let Some(device) = gpu::test_device() else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let poisoned = |device: &Device| {
        let loaded = model_on(device);
        let params = loaded.model.named_parameters();
        let (_, embed) = params.iter().find(|(n, _)| n == "model.embed_tokens.weight").expect("the embedding");
        let mut rows = embed.value().to(&Device::cpu()).unwrap().to_vec::<f32>().unwrap();
        let width = embed.value().dims()[1];
        rows[200 * width..201 * width].fill(f32::NAN);
        embed.replace_value(Tensor::from_vec(rows, embed.value().dims().to_vec(), device).unwrap()).unwrap();
        loaded
    };
    let mut requests = device_picked();
    let bad = requests.len();
    requests.push((vec![1, 200, 5], Sampling::greedy()));
    requests.push((vec![1, 4, 200], top_k(5, None, 2)));
    requests.push((vec![200, 8], Sampling { temperature: 0.8, top_k: None, top_p: Some(0.9), seed: 5 }));
    let (on_gpu, _) = serve(&poisoned(&device), &device, &requests, 64);
    for (i, answer) in on_gpu.iter().enumerate() {
        if i < bad {
            assert!(answer.failed.is_none() && !answer.tokens.is_empty(), "request {i}: {answer:?}");
        } else {
            let failed = answer.failed.as_deref().unwrap_or_default();
            assert!(answer.tokens.is_empty() && failed.contains("NaN"), "request {i}: {answer:?}");
        }
    }
    let (on_cpu, _) = serve(&poisoned(&Device::cpu()), &Device::cpu(), &requests, 64);
    assert_eq!(on_gpu, on_cpu);
}
