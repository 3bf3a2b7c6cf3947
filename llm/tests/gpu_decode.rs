//! What one decode step costs the GPU runtime, counted: after the first decoded token, each step
//! of cached generation may wait for the GPU once (the logits it samples from), submit at most
//! twice, and neither create a buffer nor compile a kernel, and it reuses the bind groups of the
//! steps before (three steps in four make none). Every wait is a full drain of the
//! queue and every allocation a driver call, which on a real GPU cost more than the step's
//! arithmetic at batch 1. Run on the tiny checkpoints of each attention kind: dense GQA, MLA
//! (deepseek_v3), sliding windows (gemma3), chunks and NoPE (llama4), and MoE (qwen3_moe,
//! llama4, deepseek_v3), long enough to slide past gemma3's window and llama4's chunk of 8; and
//! the q8_0 GGUF files of qwen3 and qwen3_moe, whose weights stay as blocks on the device.

use std::path::PathBuf;

use gpu::GpuCounters;
use llm::generate::{StopAt, generate};
use llm::models::{LoadOptions, load};
use llm::sample::Sampling;
use tensor::DType;

/// The counters are the process's: the tests here take turns, so none counts another's work.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny").join(name)
}

/// The counters' change over each decode step of a generation of `new` tokens after `prompt`
/// (the first entry is the first decoded step, after prefill).
fn per_step_counts(name: &str, prompt: &[u32], new: usize, device: &tensor::Device) -> llm::Result<Vec<GpuCounters>> {
    counts_of(&fixture(name), Some(DType::F32), name, prompt, new, device)
}

/// [`per_step_counts`] for the model at `path` loaded with `weight_dtype`.
fn counts_of(
    path: &std::path::Path,
    weight_dtype: Option<DType>,
    name: &str,
    prompt: &[u32],
    new: usize,
    device: &tensor::Device,
) -> llm::Result<Vec<GpuCounters>> {
    let loaded = load(path, &LoadOptions { device: device.clone(), weight_dtype })?;
    let mut snapshots = Vec::new();
    let tokens = generate(&loaded.model, prompt, new, Sampling::greedy(), &StopAt::default(), device, |_| {
        snapshots.push(gpu::counters());
        Ok(())
    })?;
    assert_eq!(tokens.len(), prompt.len() + new, "{name}: generation stopped early");
    Ok(snapshots.windows(2).map(|w| w[1].delta(&w[0])).collect())
}

#[test]
fn decode_steps_do_not_drain_allocate_or_compile() -> llm::Result<()> {
    let Some(device) = gpu::test_device() else { return Ok(()) };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let prompt = [1u32, 7, 42, 3, 19];
    let mut failures = Vec::new();
    // The GGUF files of two of them too, their weights kept as blocks on the device.
    let tmp = std::env::temp_dir().join(format!("llm-gpu-decode-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let mut runs = Vec::new();
    for name in ["qwen3", "deepseek_v3", "gemma3", "llama4", "qwen3_moe", "smollm3"] {
        runs.push((name.to_string(), per_step_counts(name, &prompt, 16, &device)?));
    }
    for name in ["qwen3", "qwen3_moe"] {
        let source = load(&fixture(name), &LoadOptions::cpu())?;
        let path = tmp.join(format!("{name}-q8_0.gguf"));
        llm::gguf::write_gguf(&source.model, &source.config, None, name, llm::gguf::FileType::Q8_0, &path)?;
        runs.push((format!("{name} q8_0"), counts_of(&path, None, name, &prompt, 16, &device)?));
    }
    std::fs::remove_dir_all(&tmp).ok();
    for (name, steps) in runs {
        // The first decoded step may still compile the kernels of single-row shapes.
        let steady = &steps[1..];
        let worst = |f: fn(&GpuCounters) -> u64| steady.iter().map(f).max().unwrap_or(0);
        let total = steady.iter().fold(GpuCounters::default(), |acc, s| GpuCounters {
            submits: acc.submits + s.submits,
            dispatches: acc.dispatches + s.dispatches,
            readbacks: acc.readbacks + s.readbacks,
            buffer_allocations: acc.buffer_allocations + s.buffer_allocations,
            pipeline_compilations: acc.pipeline_compilations + s.pipeline_compilations,
            bytes_uploaded: acc.bytes_uploaded + s.bytes_uploaded,
            bind_groups: acc.bind_groups + s.bind_groups,
        });
        let per = total.per_token(steady.len());
        eprintln!(
            "{name:12} per decoded token: {}",
            per.fields().iter().map(|(k, v)| format!("{k} {v:.1}")).collect::<Vec<_>>().join(", ")
        );
        let (readbacks, allocations, compilations, submits) = (
            worst(|c| c.readbacks),
            worst(|c| c.buffer_allocations),
            worst(|c| c.pipeline_compilations),
            worst(|c| c.submits),
        );
        if readbacks > 1 || allocations > 0 || compilations > 0 || submits > 2 {
            failures.push(format!(
                "{name}: worst step had {readbacks} readbacks, {allocations} buffer allocations, {compilations} compilations, {submits} submits"
            ));
        }
        // Steady steps reuse the bind groups of the steps before (`gpu/src/bind_groups.rs`):
        // most create none, and a few are new where a buffer changes (a sliding window's cache
        // moving to its other buffer), not one per dispatch as before.
        let fresh_steps = steady.iter().filter(|s| s.bind_groups > 0).count();
        if total.bind_groups * 10 > total.dispatches || fresh_steps * 4 > steady.len() {
            failures.push(format!(
                "{name}: {} bind groups created for {} dispatches, in {fresh_steps} of {} steady steps",
                total.bind_groups,
                total.dispatches,
                steady.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// Sampling with top-k chooses its candidates on the GPU (`Tensor::topk` on the logits, k pairs
/// read back, `Sampler::pick_ranked`), still one wait a step, and draws the tokens the CPU draws
/// from the whole row with the same seed: the GPU's logits differ from the CPU's by ~1e-6, far
/// less than a draw's margin on these rows. k = 5 takes the router's top-k kernel on this
/// 256-token vocabulary, k = 100 the sorting one.
#[test]
fn top_k_sampling_picks_on_the_device_and_draws_as_the_cpu() -> llm::Result<()> {
    let Some(device) = gpu::test_device() else { return Ok(()) };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let prompt = [1u32, 7, 42, 3, 19];
    let on_cpu =
        load(&fixture("qwen3"), &LoadOptions { device: tensor::Device::cpu(), weight_dtype: Some(DType::F32) })?;
    let on_gpu = load(&fixture("qwen3"), &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
    for (k, top_p) in [(5, None), (100, Some(0.9))] {
        let sampling = Sampling { temperature: 1.3, top_k: Some(k), top_p, seed: 17 };
        let cpu_tokens =
            generate(&on_cpu.model, &prompt, 24, sampling, &StopAt::default(), &tensor::Device::cpu(), |_| Ok(()))?;
        let mut snapshots = Vec::new();
        let gpu_tokens = generate(&on_gpu.model, &prompt, 24, sampling, &StopAt::default(), &device, |_| {
            snapshots.push(gpu::counters());
            Ok(())
        })?;
        assert_eq!(gpu_tokens, cpu_tokens, "top-k {k}, top-p {top_p:?}");
        for (step, w) in snapshots.windows(2).enumerate().skip(1) {
            let d = w[1].delta(&w[0]);
            assert!(d.readbacks <= 1 && d.buffer_allocations == 0, "top-k {k}, step {step}: {d:?}");
        }
    }
    Ok(())
}
