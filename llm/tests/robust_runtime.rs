//! Numerics, devices, determinism and long runs: the parts of robustness that need a model
//! running rather than a file read.

use std::path::{Path, PathBuf};
use std::process::Command;

use autograd::Var;
use llm::config::LayerAttention;
use llm::generate::{StopAt, generate};
use llm::models::{LoadOptions, load};
use llm::sample::Sampling;
use llm::weights::{Checkpoint, save_safetensors};
use nn::ModuleExt;
use tensor::{DType, Device, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny").join(name)
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-robust-rt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The RSS checks need the process to themselves: every test here holds this lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resident set size of this process in bytes (Linux; 0 elsewhere, which skips the checks).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

// ---------------------------------------------------------------------------------------------
// Numerics

/// Rows of extreme logits: softmax stays a distribution, log-softmax and cross-entropy stay
/// finite, on the CPU and on the GPU (whose kernels have their own max-subtraction and sums).
#[test]
fn softmax_and_cross_entropy_stay_finite_for_extreme_logits() -> llm::Result<()> {
    let _serial = serial();
    extreme_logits_on(&Device::cpu())?;
    if let Some(g) = gpu::test_device() {
        extreme_logits_on(&g)?;
    }
    Ok(())
}

fn extreme_logits_on(device: &Device) -> llm::Result<()> {
    let half = f32::MAX / 2.0;
    let rows: Vec<[f32; 4]> = vec![
        [1e30, -1e30, 0.0, 1.0],
        [-1e30, -1e30, -1e30, -1e30],
        [half, -half, 0.0, half],
        [-half, -half, -half, 3.0],
        [1e30, 1e30, 1e30, 1e30],
        [1e-30, -1e-30, 0.0, 88.0],
    ];
    let on = device.name();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let x = Tensor::from_vec(flat.clone(), [rows.len(), 4], &Device::cpu())?.to(device)?;
    let p = x.softmax(1usize)?.to_vec::<f32>()?;
    let lp = x.log_softmax(1usize)?.to_vec::<f32>()?;
    for (r, row) in p.chunks(4).enumerate() {
        let sum: f32 = row.iter().sum();
        assert!(row.iter().all(|v| v.is_finite() && *v >= 0.0), "{on}: softmax row {r}: {row:?}");
        // Four terms each rounded once: a few ulps of 1.
        assert!((sum - 1.0).abs() < 1e-5, "{on}: softmax row {r} sums to {sum}");
    }
    // log-softmax of -f32::MAX/2 against a max of f32::MAX/2 is -f32::MAX: finite, just.
    assert!(lp.iter().all(|v| v.is_finite()), "{on}: log_softmax: {lp:?}");
    // Labels on entries whose loss is large but representable (1e30 + ... for row 0, label 1);
    // the mean of the row losses must not overflow.
    let labels = Tensor::from_vec(vec![1u32, 2, 0, 3, 2, 3], [rows.len()], &Device::cpu())?.to(device)?;
    let logits = Var::parameter(x);
    let loss = nn::loss::cross_entropy(&logits, &labels, None)?;
    let value = loss.value().to_dtype(DType::F32)?.to_scalar::<f32>()?;
    assert!(value.is_finite(), "{on}: cross-entropy {value}");
    let grads = loss.backward()?;
    let g = grads.get(&logits).expect("a gradient").to_vec::<f32>()?;
    assert!(g.iter().all(|v| v.is_finite()), "{on}: cross-entropy gradient {g:?}");
    println!("{on}: extreme-logit loss {value:e}; gradients finite");
    Ok(())
}

/// Writes a checkpoint of one f32 tensor holding `values`.
fn one_tensor_file(dir: &Path, file: &str, name: &str, values: Vec<f32>) -> llm::Result<PathBuf> {
    let path = dir.join(file);
    let n = values.len();
    save_safetensors(&path, &[(name.to_string(), Tensor::from_vec(values, [n], &Device::cpu())?)], None)?;
    Ok(path)
}

#[test]
fn narrowing_on_load_reports_overflow_with_the_tensor_name() -> llm::Result<()> {
    let _serial = serial();
    let dir = tempdir("overflow");
    let cpu = Device::cpu();
    // 7e4 is above f16's largest finite value (65504) but well inside bf16's range.
    let path = one_tensor_file(&dir, "big.safetensors", "model.layers.3.mlp.down_proj.weight", vec![1.0, 7e4, 2.0])?;
    let ckpt = Checkpoint::open(&path)?;
    let err =
        ckpt.load("model.layers.3.mlp.down_proj.weight", Some(DType::F16), &cpu).expect_err("overflow").to_string();
    assert!(
        err.contains("model.layers.3.mlp.down_proj.weight") && err.contains("70000") && err.contains("F16"),
        "{err}"
    );
    assert!(err.contains("big.safetensors"), "{err}");
    assert!(ckpt.load("model.layers.3.mlp.down_proj.weight", Some(DType::BF16), &cpu).is_ok());
    assert!(ckpt.load("model.layers.3.mlp.down_proj.weight", Some(DType::F32), &cpu).is_ok());
    // f32::MAX rounds to inf in bf16 (its mantissa is cut with rounding to nearest).
    let path = one_tensor_file(&dir, "max.safetensors", "w", vec![f32::MAX])?;
    let err = Checkpoint::open(&path)?.load("w", Some(DType::BF16), &cpu).expect_err("overflow").to_string();
    assert!(err.contains("tensor w") && err.contains("BF16"), "{err}");
    Ok(())
}

/// One test for everything that flips the process-wide switch, so no other test sees it on.
#[test]
fn check_finite_names_the_tensor_at_load_and_the_layer_in_the_forward_pass() -> llm::Result<()> {
    let _serial = serial();
    let dir = tempdir("finite");
    let cpu = Device::cpu();
    let path = one_tensor_file(&dir, "inf.safetensors", "model.norm.weight", vec![1.0, f32::INFINITY])?;
    let ckpt = Checkpoint::open(&path)?;
    // Off: an inf stored in the file loads as stored (and the narrowing check does not claim it).
    llm::finite::set_check_finite(false);
    assert!(ckpt.load("model.norm.weight", None, &cpu).is_ok());
    assert!(ckpt.load("model.norm.weight", Some(DType::F16), &cpu).is_ok());
    llm::finite::set_check_finite(true);
    let err = ckpt.load("model.norm.weight", None, &cpu).expect_err("inf reported").to_string();
    assert!(err.contains("model.norm.weight") && err.contains("inf") && err.contains("flat index 1"), "{err}");

    // A model whose layer 1 blows up: scale one of its weights to 1e30 and run the forward pass.
    llm::finite::set_check_finite(false);
    let loaded = load(&fixture("qwen3"), &LoadOptions::cpu())?;
    let ids = Tensor::from_vec(vec![1u32, 2, 3, 4], [1, 4], &cpu)?;
    assert!(loaded.model.forward(&ids, 0, None, false).is_ok());
    let params = loaded.model.named_parameters();
    let (_, down) = params.iter().find(|(n, _)| n == "model.layers.1.mlp.down_proj.weight").expect("layer 1 down_proj");
    down.replace_value(down.value().mul_scalar(1e38)?)?;
    llm::finite::set_check_finite(true);
    let result = loaded.model.forward(&ids, 0, None, false);
    llm::finite::set_check_finite(false);
    let err = result.err().ok_or("the blow-up was not reported").unwrap().to_string();
    assert!(err.contains("decoder layer 1") && err.contains("model.layers.1"), "{err}");
    println!("check-finite: {err}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Devices

fn llm_cmd(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("llm runs")
}

/// `LLM_GPU_ADAPTER` naming no adapter hides every adapter, which is how a machine without a GPU
/// looks to the chooser: `--device gpu` must fail saying what to do, never run on the CPU; left to
/// choose, the command runs on the CPU and says why.
#[test]
fn device_gpu_without_an_adapter_fails_and_the_default_names_its_choice() {
    let _serial = serial();
    let model = fixture("qwen3");
    let model = model.to_str().unwrap();
    let hide = [("LLM_GPU_ADAPTER", "no-such-adapter-anywhere")];
    let args = ["generate", "--model", model, "--prompt-ids", "1,2", "--max-new-tokens", "2", "--json"];
    let o = llm_cmd(&[&args[..], &["--device", "gpu"]].concat(), &hide);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "--device gpu succeeded without an adapter: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("--device gpu") && err.contains("LLM_GPU_ADAPTER"), "{err}");
    assert!(!err.contains("device: cpu"), "fell back to the CPU: {err}");
    assert!(o.stdout.is_empty(), "produced output: {}", String::from_utf8_lossy(&o.stdout));

    let o = llm_cmd(&args, &hide);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.lines().any(|l| l.starts_with("device: cpu (no GPU:")), "the default does not say what it took: {err}");

    let o = llm_cmd(&[&args[..], &["--device", "cuda"]].concat(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--device") && err.contains("cuda") && err.contains("cpu, gpu"),
        "{err}"
    );
    // Any spelling of cpu takes the CPU and says so.
    let (device, line) = llm::device::pick(Some("CPU")).expect("cpu");
    assert_eq!(device, Device::cpu());
    assert_eq!(line, "device: cpu");
}

/// A GPU lost in the middle of a generation: the step after the loss ends the generation with
/// the lost-device advice, the tokens already streamed stay streamed, and nothing panics. The
/// loss is made on a device of the test's own (see gpu/tests/device_lost.rs for why it is
/// simulated), so the shared device goes on for the other tests.
#[test]
fn a_gpu_lost_mid_generation_ends_it_with_advice() -> llm::Result<()> {
    let _serial = serial();
    if gpu::test_device().is_none() {
        return Ok(());
    }
    let backend = std::sync::Arc::new(gpu::GpuBackend::new()?);
    let device = Device::from_backend(backend.clone());
    let loaded = load(&fixture("qwen3"), &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
    let mut streamed = Vec::new();
    let result = generate(&loaded.model, &[1, 5, 9], 12, Sampling::greedy(), &StopAt::default(), &device, |t| {
        streamed.push(t);
        if streamed.len() == 4 {
            backend.simulate_device_loss();
        }
        Ok(())
    });
    let err = result.expect_err("generation went on after the device was lost").to_string();
    assert!(err.contains("GPU device was lost") && err.contains("--device cpu"), "{err}");
    assert_eq!(streamed.len(), 4, "tokens after the loss: {streamed:?}");
    // The same tokens as the CPU gives: what was streamed before the loss was real.
    let on_cpu = load(&fixture("qwen3"), &LoadOptions::cpu())?;
    let reference =
        generate(&on_cpu.model, &[1, 5, 9], 4, Sampling::greedy(), &StopAt::default(), &Device::cpu(), |_| Ok(()))?;
    assert_eq!(streamed, reference[3..], "tokens streamed before the loss");
    println!("lost mid-run: {err}");
    Ok(())
}

/// `--check-finite` on the command line: a checkpoint whose layer 1 overflows is stopped at that
/// layer, by name; without the flag the NaN logits are still refused (never sampled from), and the
/// error points at the flag.
#[test]
fn check_finite_flag_names_the_layer_and_nan_logits_are_refused_without_it() -> llm::Result<()> {
    let _serial = serial();
    let dir = tempdir("check-finite-cli");
    let source = fixture("qwen3");
    let loaded = load(&source, &LoadOptions::cpu())?;
    let params = loaded.model.named_parameters();
    let (_, down) = params.iter().find(|(n, _)| n == "model.layers.1.mlp.down_proj.weight").expect("layer 1 down_proj");
    // Finite weights whose product overflows f32 inside layer 1.
    down.replace_value(down.value().mul_scalar(1e38)?)?;
    llm::models::save::save_checkpoint(&loaded.model, &loaded.config, &source, &dir)?;
    let model = dir.to_str().unwrap();
    let args = ["generate", "--model", model, "--prompt-ids", "1,2,3", "--max-new-tokens", "3", "--device", "cpu"];

    let o = llm_cmd(&[&args[..], &["--check-finite"]].concat(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("decoder layer 1") && err.contains("model.layers.1"), "{err}");
    // The flag may come before the subcommand too.
    let o = llm_cmd(&[&["--check-finite"], &args[..]].concat(), &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("decoder layer 1"));

    let o = llm_cmd(&args, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("logits") && err.contains("--check-finite"), "{err}");
    assert!(o.stdout.is_empty(), "sampled from NaN logits: {}", String::from_utf8_lossy(&o.stdout));
    Ok(())
}

/// Greedy decoding on a GPU picks its token on the device and reads back only the argmax and the
/// largest logit: a NaN anywhere in the row must still come back (NaN wins the maximum) and be
/// refused, never decoded. Non-finite values are placed in the head's weight row by row, so the
/// NaN sits at a low id and an infinity at another, neither of them the argmax of the rest.
/// Top-k sampling on a GPU reads back its k candidates and the row's maximum (NaN winning) the
/// same way, a NaN of either sign included: the candidates' ranking puts a negative NaN last.
#[test]
fn greedy_on_a_gpu_refuses_non_finite_logits_it_never_reads_back() -> llm::Result<()> {
    let _serial = serial();
    let Some(device) = gpu::test_device() else { return Ok(()) };
    let top_k = Sampling { temperature: 1.0, top_k: Some(5), top_p: None, seed: 3 };
    for (bad, sampling) in [
        (f32::NAN, Sampling::greedy()),
        (f32::INFINITY, Sampling::greedy()),
        (f32::NAN, top_k),
        (-f32::NAN, top_k),
        (f32::INFINITY, top_k),
    ] {
        let loaded = load(&fixture("qwen3"), &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
        let params = loaded.model.named_parameters();
        let (_, head) = params
            .iter()
            .find(|(n, _)| n == "lm_head.weight" || n == "model.embed_tokens.weight")
            .expect("the output head");
        // Row 3 of the head (token 3's logit) becomes `bad` times a positive hidden sum: NaN, or
        // +inf wherever the hidden state's sum is positive, -inf where negative.
        let mut rows = head.value().to(&Device::cpu())?.to_vec::<f32>()?;
        let width = head.value().dims()[1];
        rows[3 * width..4 * width].fill(bad);
        head.replace_value(Tensor::from_vec(rows, head.value().dims().to_vec(), &device)?)?;
        let result = generate(&loaded.model, &[1, 5, 9], 4, sampling, &StopAt::default(), &device, |_| Ok(()));
        match result {
            Err(e) => assert!(e.to_string().contains("logits") && e.to_string().contains("--check-finite"), "{e}"),
            // +inf x a hidden sum below zero is -inf, which only rules the token out.
            Ok(ids) => {
                assert!(bad.is_infinite() && !ids[3..].contains(&3), "decoded {ids:?} from {bad} logits ({sampling:?})")
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Determinism

fn sampled(model: &llm::models::CausalLm, seed: u64, device: &Device) -> llm::Result<Vec<u32>> {
    let sampling = Sampling { temperature: 0.9, top_k: Some(50), top_p: Some(0.95), seed };
    generate(model, &[1, 5, 9], 48, sampling, &StopAt::default(), device, |_| Ok(()))
}

#[test]
fn the_same_seed_gives_the_same_tokens() -> llm::Result<()> {
    let _serial = serial();
    let cpu = Device::cpu();
    for family in ["qwen3", "gemma3"] {
        let loaded = load(&fixture(family), &LoadOptions::cpu())?;
        let a = sampled(&loaded.model, 42, &cpu)?;
        let b = sampled(&loaded.model, 42, &cpu)?;
        // A model loaded again (fresh caches, fresh buffers) must not change the draw either.
        let again = load(&fixture(family), &LoadOptions::cpu())?;
        let c = sampled(&again.model, 42, &cpu)?;
        assert_eq!(a, b, "{family}: two runs with seed 42 differ");
        assert_eq!(a, c, "{family}: a reloaded model with seed 42 differs");
        // 48 draws at temperature 0.9 from 256 tokens: another seed giving the identical sequence
        // would mean the seed is ignored.
        let other = sampled(&loaded.model, 43, &cpu)?;
        assert_ne!(a, other, "{family}: seeds 42 and 43 gave the same tokens");
    }
    // The GPU, when there is a real one (lavapipe runs on the CPU and is slow; skip it).
    match gpu::device() {
        Ok(device) if !gpu::backend().map(|b| b.context().is_cpu_adapter()).unwrap_or(true) => {
            let loaded =
                load(&fixture("qwen3"), &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
            assert_eq!(sampled(&loaded.model, 42, &device)?, sampled(&loaded.model, 42, &device)?);
            println!("determinism also checked on {}", device.name());
        }
        _ => println!("note: no hardware GPU adapter; determinism checked on the CPU only"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Long runs

/// The Gemma 3 fixture (window 8 on five of its six layers) with its context raised so that a
/// long generation stays inside it.
fn long_context_gemma(dir: &Path) -> PathBuf {
    let src = fixture("gemma3");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["max_position_embeddings"] = serde_json::json!(8192);
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    dir.to_path_buf()
}

#[test]
fn a_long_generation_keeps_sliding_caches_bounded_and_memory_steady() -> llm::Result<()> {
    let _serial = serial();
    let cpu = Device::cpu();
    let dir = long_context_gemma(&tempdir("long-gen"));
    let loaded = load(&dir, &LoadOptions::cpu())?;
    let window = loaded.config.sliding_window.expect("gemma has a window");
    let kinds: Vec<LayerAttention> = loaded.config.layers.iter().map(|l| l.attention).collect();
    const TOKENS: usize = 2500;
    let mut caches = loaded.model.new_caches();
    let mut next = 1u32;
    let (mut rss_early, mut cap_early) = (0, Vec::new());
    let start = std::time::Instant::now();
    autograd::no_grad(|| -> llm::Result<()> {
        for pos in 0..TOKENS {
            let ids = Tensor::from_vec(vec![next], [1, 1], &cpu)?;
            let out = loaded.model.forward(&ids, pos, Some(&mut caches), false)?;
            let logits = out.logits.value().to_vec::<f32>()?;
            next = llm::sample::argmax(&logits);
            for (i, (cache, kind)) in caches.iter().zip(&kinds).enumerate() {
                match kind {
                    LayerAttention::Sliding => {
                        assert!(cache.len() <= window, "layer {i} keeps {} positions, window {window}", cache.len())
                    }
                    _ => assert_eq!(cache.len(), pos + 1, "full layer {i}"),
                }
            }
            if pos == 500 {
                rss_early = rss_bytes();
                cap_early = caches.iter().map(|c| c.capacity_in_bytes()).collect();
            }
        }
        Ok(())
    })?;
    let rss_late = rss_bytes();
    let cap_late: Vec<usize> = caches.iter().map(|c| c.capacity_in_bytes()).collect();
    for (i, kind) in kinds.iter().enumerate() {
        if *kind == LayerAttention::Sliding {
            assert_eq!(cap_late[i], cap_early[i], "sliding layer {i}'s cache grew from token 500 to {TOKENS}");
        }
    }
    // From token 500 to 2500 the one global layer's cache grows by 2000 positions x (K + V) x
    // 1 kv head x 32 dims x 4 bytes = 512 KiB; anything retained per step (a graph, a logits
    // buffer) would add at least ~1 KiB x 2000 per tensor kept. 24 MiB leaves room for the
    // allocator's own growth and still fails on a per-step leak of 12 KiB or more.
    let growth = rss_late.saturating_sub(rss_early);
    println!(
        "long generation: {TOKENS} tokens in {:.1} s; RSS {} MiB at token 500, {} MiB at {TOKENS} (+{} KiB); sliding caches {:?} bytes",
        start.elapsed().as_secs_f64(),
        rss_early >> 20,
        rss_late >> 20,
        growth >> 10,
        cap_late
    );
    assert!(growth < 24 << 20, "RSS grew by {growth} bytes over {} tokens", TOKENS - 500);
    Ok(())
}

/// Many training steps of a tiny model: memory after step 50 and after the last step agree.
#[test]
fn many_training_steps_hold_memory_steady() -> llm::Result<()> {
    let _serial = serial();
    let cpu = Device::cpu();
    let sizes = llm::tiny::TinySizes {
        vocab_size: 64,
        hidden_size: 32,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        intermediate_size: 64,
        context: 64,
    };
    let (_, model) = llm::tiny::fresh_model(llm::config::Family::Qwen3, &sizes, 3, &cpu)?;
    let ids: Vec<u32> = (0..2 * 32).map(|i| (i * 7 % 64) as u32).collect();
    let ids = Tensor::from_vec(ids, [2, 32], &cpu)?;
    let mut optimizer = nn::optim::AdamW::new(model.named_parameters(), 3e-3);
    const STEPS: usize = 3000;
    let mut rss_at_50 = 0;
    let start = std::time::Instant::now();
    let losses = llm::train::train(&model, &ids, STEPS, &mut optimizer, |step, _| {
        if step == 50 {
            rss_at_50 = rss_bytes();
        }
        Ok(())
    })?;
    let rss_end = rss_bytes();
    let growth = rss_end.saturating_sub(rss_at_50);
    println!(
        "training: {STEPS} steps in {:.1} s, loss {:.3} -> {:.3}; RSS {} MiB at step 50, {} MiB at {STEPS} (+{} KiB)",
        start.elapsed().as_secs_f64(),
        losses[0],
        losses[STEPS],
        rss_at_50 >> 20,
        rss_end >> 20,
        growth >> 10
    );
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(losses[STEPS] < losses[0], "training did not reduce the loss");
    // The model and optimizer state are ~10k parameters (well under 1 MiB); one step's graph
    // and gradients are a few MiB at most. A graph or gradient kept per step would add that
    // much 2,950 times over; 16 MiB allows allocator slack only.
    assert!(growth < 16 << 20, "RSS grew by {growth} bytes over {} steps", STEPS - 50);
    Ok(())
}
