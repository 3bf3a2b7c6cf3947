//! The `llm` command as other tools use it: outputs in the documented formats, equal to the
//! reference; and bad input ending in one line on stderr and a non-zero exit, never a panic.

use std::path::PathBuf;
use std::process::{Command, Output};

use llm::weights::{Checkpoint, save_safetensors};
use tensor::{DType, Device, Tensor};

fn llm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llm")).args(args).output().expect("llm runs")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny").join(name)
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn logits_writes_the_reference_logits() -> llm::Result<()> {
    let dir = fixture("gemma3");
    let out = temp("gemma3-logits.safetensors");
    let o = llm(&[
        "logits",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        dir.join("reference.safetensors").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cpu = Device::cpu();
    let got = Checkpoint::open(&out)?.load("logits", None, &cpu)?;
    assert_eq!(got.dtype(), DType::F32);
    let want = Checkpoint::open(&dir.join("reference.safetensors"))?.load("logits", None, &cpu)?;
    assert!(tensor::testing::max_abs_diff(&got, &want)? < 1e-3);
    Ok(())
}

#[test]
fn generate_json_gives_the_reference_greedy_ids() -> llm::Result<()> {
    let dir = fixture("deepseek_v3");
    let greedy: Vec<u32> = Checkpoint::open(&dir.join("reference.safetensors"))?
        .load("greedy_ids", Some(DType::U32), &Device::cpu())?
        .to_vec()?;
    let prompt: Vec<String> = greedy[..greedy.len() - 12].iter().map(u32::to_string).collect();
    let o = llm(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt-ids",
        &prompt.join(","),
        "--max-new-tokens",
        "12",
        "--temperature",
        "0",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let last = stdout(&o).lines().last().unwrap_or_default().to_string();
    let json: serde_json::Value = serde_json::from_str(&last).expect("last line is JSON");
    let ids: Vec<u32> = json["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().unwrap_or(0) as u32).collect();
    assert_eq!(ids, greedy);
    Ok(())
}

/// `llm generate --stats` on the model in `dir`: a 7-token prompt, 5 greedy tokens on the CPU,
/// then `extra`.
fn greedy_stats<'a>(dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "generate",
        "--model",
        dir,
        "--prompt-ids",
        "1,2,3,4,5,6,7",
        "--max-new-tokens",
        "5",
        "--temperature",
        "0",
        "--device",
        "cpu",
        "--stats",
    ];
    args.extend_from_slice(extra);
    args
}

/// `--stats`: a line for a person, then one JSON object as stderr's last line, whose counts and
/// rates agree with each other and with the run; `--threads` sets the pool it reports.
#[test]
fn generate_stats_reports_prefill_and_decode() {
    let dir = fixture("qwen3");
    let o = llm(&greedy_stats(dir.to_str().unwrap(), &["--threads", "1", "--json"]));
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let json: serde_json::Value = serde_json::from_str(lines.last().unwrap()).expect("last stderr line is JSON");
    assert!(lines[lines.len() - 2].starts_with("prefill: 7 tokens"), "{err}");
    assert_eq!(json["prompt_tokens"], 7);
    assert_eq!(json["new_tokens"], 5);
    assert_eq!(json["threads"], 1);
    assert!(json["device"].as_str().unwrap().starts_with("cpu"));
    for (rate, count, time) in [("prefill_tok_s", 7.0, "prefill_s"), ("decode_tok_s", 4.0, "decode_s")] {
        let (rate, time) = (json[rate].as_f64().unwrap(), json[time].as_f64().unwrap());
        assert!(time > 0.0 && (rate * time - count).abs() < 1e-6 * count, "{json}");
    }
    let ids = serde_json::from_str::<serde_json::Value>(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(ids["ids"].as_array().unwrap().len(), 12);
    // Each decoded token's time, which add up to the decode time.
    let steps: Vec<f64> =
        json["decode_token_ms"].as_array().expect("decode_token_ms").iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(steps.len(), 4, "{json}");
    let sum_s = steps.iter().sum::<f64>() / 1e3;
    assert!(steps.iter().all(|&ms| ms > 0.0) && (sum_s - json["decode_s"].as_f64().unwrap()).abs() < 1e-6, "{json}");
}

/// `LLM_CPU_PROFILE=1` with `--stats`: the decoding steps' time step by step, in the order of a
/// forward pass, each layer's steps once per layer and token, together no more than the decode
/// time; without it, no `cpu_steps`; a value that is not a switch is an error.
#[test]
fn generate_stats_with_the_cpu_profile_times_each_step() {
    let dir = fixture("qwen3");
    let args = greedy_stats(dir.to_str().unwrap(), &[]);
    let run =
        |profile: &str| Command::new(env!("CARGO_BIN_EXE_llm")).args(&args).env("LLM_CPU_PROFILE", profile).output();
    let o = run("1").expect("llm runs");
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("per decoded token on the CPU, step by step: embedding"), "{err}");
    let json: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).expect("JSON");
    let steps = json["cpu_steps"].as_array().expect("cpu_steps");
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "embedding",
            "norm (with the last add)",
            "q, k, v",
            "QK-norm, RoPE, cache writes",
            "attention",
            "o",
            "add + norm",
            "gate, up, GLU",
            "down",
            "final norm",
            "head",
            "readback"
        ],
        "{json}"
    );
    let layers = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join("config.json")).unwrap())
        .unwrap()["num_hidden_layers"]
        .as_f64()
        .unwrap();
    for s in steps {
        let calls = s["calls_per_token"].as_f64().unwrap();
        let per_layer = !["embedding", "final norm", "head", "readback"].contains(&s["step"].as_str().unwrap());
        assert_eq!(calls, if per_layer { layers } else { 1.0 }, "{s}");
        assert!(s["us_per_token"].as_f64().unwrap() >= 0.0, "{s}");
    }
    let total_us: f64 = steps.iter().map(|s| s["us_per_token"].as_f64().unwrap()).sum();
    let decode_us_per_token = json["decode_s"].as_f64().unwrap() * 1e6 / 4.0;
    assert!(total_us > 0.0 && total_us <= decode_us_per_token, "{total_us} of {decode_us_per_token} µs: {json}");
    let o = run("0").expect("llm runs");
    assert!(o.status.success());
    let json: serde_json::Value = serde_json::from_str(stderr(&o).lines().last().unwrap()).expect("JSON");
    assert!(json.get("cpu_steps").is_none(), "{json}");
    let o = run("sometimes").expect("llm runs");
    assert!(
        !o.status.success() && stderr(&o).contains("LLM_CPU_PROFILE=\"sometimes\" is not a switch"),
        "{}",
        stderr(&o)
    );
}

/// `--paced`: nothing runs until a line comes on stdin, and then one forward pass per line: with
/// two lines for five tokens, two tokens come out and the run ends in an error naming stdin;
/// with five lines, the run is the unpaced one, token for token.
#[test]
fn generate_paced_runs_one_forward_pass_per_line_of_stdin() {
    use std::io::Write;
    let dir = fixture("qwen3");
    let run = |lines: usize| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_llm"))
            .args(["generate", "--model", dir.to_str().unwrap(), "--prompt-ids", "1,2,3", "--max-new-tokens", "5"])
            .args(["--temperature", "0", "--device", "cpu", "--paced", "--stats"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("llm runs");
        child.stdin.take().unwrap().write_all("\n".repeat(lines).as_bytes()).expect("stdin");
        child.wait_with_output().expect("llm ends")
    };
    let short = run(2);
    assert!(!short.status.success());
    assert!(stderr(&short).contains("--paced: stdin ended"), "{}", stderr(&short));
    let full = run(5);
    assert!(full.status.success(), "{}", stderr(&full));
    let tokens: Vec<String> = stdout(&full).split_whitespace().map(String::from).collect();
    assert_eq!(tokens.len(), 5, "{}", stdout(&full));
    assert_eq!(stdout(&short).split_whitespace().collect::<Vec<_>>(), tokens[..2].to_vec());
    let plain = llm(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt-ids",
        "1,2,3",
        "--max-new-tokens",
        "5",
        "--temperature",
        "0",
        "--device",
        "cpu",
    ]);
    assert_eq!(stdout(&plain).split_whitespace().collect::<Vec<_>>(), tokens);
    let json: serde_json::Value = serde_json::from_str(stderr(&full).lines().last().unwrap()).expect("stats JSON");
    assert_eq!(json["decode_token_ms"].as_array().map(Vec::len), Some(4), "{json}");
    // --json prints the ids at the end only, which a paced reader could not follow.
    let both = llm(&["generate", "--model", dir.to_str().unwrap(), "--prompt-ids", "1", "--paced", "--json"]);
    assert!(!both.status.success() && stderr(&both).contains("--json"), "{}", stderr(&both));
}

#[test]
fn train_prints_one_line_per_step_plus_the_final_loss() -> llm::Result<()> {
    let dir = fixture("qwen3");
    let data = dir.join("reference.safetensors");
    let want: Vec<f32> = Checkpoint::open(&data)?.load("train_losses", None, &Device::cpu())?.to_vec()?;
    let save = temp("qwen3-trained");
    let o = llm(&[
        "train",
        "--model",
        dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--steps",
        "5",
        "--lr",
        "1e-3",
        "--beta1",
        "0.9",
        "--beta2",
        "0.95",
        "--eps",
        "1e-8",
        "--weight-decay",
        "0.1",
        "--device",
        "cpu",
        "--save",
        save.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> =
        stdout(&o).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 6);
    for (k, (line, w)) in lines.iter().zip(&want).enumerate() {
        assert_eq!(line["step"], k);
        let loss = line["loss"].as_f64().expect("loss") as f32;
        assert!(((loss - w) / w).abs() < 1e-3, "step {k}: {loss} vs {w}");
    }
    // The saved checkpoint loads and continues from the trained weights.
    let o = llm(&[
        "train",
        "--model",
        save.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--steps",
        "1",
        "--lr",
        "1e-3",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap_or_default()).expect("JSON");
    assert!((first["loss"].as_f64().unwrap_or(0.0) as f32 - want[5]).abs() < 1e-3 * want[5]);
    Ok(())
}

#[test]
fn inspect_json_reports_the_anatomy() {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/qwen3-235b-a22b.json");
    let o = llm(&["inspect", "--model", config.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap_or_default()).expect("JSON");
    assert!(json["total_params"].as_u64().unwrap_or(0) > 235_000_000_000);
    assert!(json["active_params"].as_u64().unwrap_or(0) > 22_000_000_000);
    assert_eq!(json["kv_cache_bytes_per_token"], 94 * 2 * 4 * 128 * 2);
    // Weight memory: 2 bytes per parameter in bf16, 4.5 bits in q4_0.
    let total = json["total_params"].as_u64().unwrap_or(0);
    assert_eq!(json["weight_bytes"]["bf16"], 2 * total);
    assert_eq!(json["weight_bytes"]["q4_0"].as_u64(), Some((total as f64 * 4.5 / 8.0).round() as u64));
    assert_eq!(json["mtp_layers"], 0);
}

#[test]
fn inspect_prints_weight_memory_and_deepseeks_mtp_layer() {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/deepseek-v3.json");
    let o = llm(&["inspect", "--model", config.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // 671.03B parameters: 1249.88 GiB in bf16; 624.94 GiB of e4m3 values + 0.15 GiB of block scales.
    assert!(out.contains("1249.88 GiB in bf16"), "{out}");
    assert!(out.contains("625.09 GiB in fp8"), "{out}");
    assert!(out.contains("1 prediction layer(s) (num_nextn_predict_layers)"), "{out}");
}

/// `inspect` takes the KV cache's dtype from `--kv-dtype`, as generate, chat and serve do (bf16
/// when absent; the older `--dtype` still works when `--kv-dtype` is not given).
#[test]
fn inspect_sizes_the_kv_cache_in_the_kv_dtype() {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/qwen3-0.6b.json");
    let config = config.to_str().unwrap();
    for (flags, want) in [
        (vec![], "(bf16): KV cache 3.50 GiB"),
        (vec!["--kv-dtype", "f16"], "(f16): KV cache 3.50 GiB"),
        (vec!["--kv-dtype", "f32"], "(f32): KV cache 7.00 GiB"),
        (vec!["--dtype", "f32"], "(f32): KV cache 7.00 GiB"),
    ] {
        let o = llm(&[&["inspect", "--model", config][..], &flags[..]].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains(want), "{flags:?}: {}", stdout(&o));
    }
}

/// A failure: non-zero exit, one line on stderr mentioning `needle`, no panic.
fn fails_cleanly(args: &[&str], needle: &str) {
    let o = llm(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("device:")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(lines[0].contains(needle), "{args:?}: expected {needle:?} in {err}");
}

#[test]
fn bad_input_ends_in_one_line_and_a_non_zero_exit() -> llm::Result<()> {
    let good = fixture("qwen3");
    let good = good.to_str().unwrap();
    fails_cleanly(&["generate", "--model", "/no/such/model", "--prompt-ids", "1", "--device", "cpu"], "/no/such/model");
    fails_cleanly(&["generate", "--model", good, "--prompt-ids", "1,999999", "--device", "cpu"], "999999");
    fails_cleanly(&["generate", "--model", good, "--prompt-ids", "1,x", "--device", "cpu"], "--prompt-ids");
    fails_cleanly(
        &["generate", "--model", good, "--prompt-ids", "1", "--max-new-tokens", "100000", "--device", "cpu"],
        "context",
    );
    fails_cleanly(&["generate", "--model", good, "--prompt-ids", "1", "--device", "tpu"], "--device");
    fails_cleanly(&["generate", "--model", good, "--prompt-ids", "1", "--top-p", "2", "--device", "cpu"], "--top-p");
    fails_cleanly(&["inspect", "--model", "/no/such/config.json"], "config.json");
    fails_cleanly(
        &["generate", "--model", good, "--prompt-ids", "1", "--threads", "0", "--device", "cpu"],
        "--threads",
    );
    fails_cleanly(&["generate", "--model", good, "--prompt-ids", "1", "--dtype", "f8", "--device", "cpu"], "f8");
    fails_cleanly(&["tour", "--dtype", "bf16", "--device", "cpu"], "--dtype bf16");
    fails_cleanly(&["generate", "--model", good, "--prompt-ids", "1", "--quantize", "q5", "--device", "cpu"], "q5");
    fails_cleanly(&["generate", "--model", good, "--prompt-ids", "1", "--kv-dtype", "f8", "--device", "cpu"], "f8");
    let o = Command::new(env!("CARGO_BIN_EXE_llm"))
        .args(["generate", "--model", good, "--prompt-ids", "1", "--device", "cpu"])
        .env("LLM_CPU_KERNELS", "sse9")
        .output()
        .expect("llm runs");
    assert!(!o.status.success() && stderr(&o).trim().lines().count() == 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("LLM_CPU_KERNELS=\"sse9\""), "{}", stderr(&o));
    for switch in tensor::cpu::isa::SWITCHES {
        let o = Command::new(env!("CARGO_BIN_EXE_llm"))
            .args(["generate", "--model", good, "--prompt-ids", "1", "--device", "cpu"])
            .env(switch, "maybe")
            .output()
            .expect("llm runs");
        assert!(!o.status.success() && stderr(&o).trim().lines().count() == 1, "{}", stderr(&o));
        assert!(stderr(&o).contains(&format!("{switch}=\"maybe\"")), "{}", stderr(&o));
    }
    fails_cleanly(&["frobnicate"], "frobnicate");
    // A config of an unknown model_type.
    let unknown = temp("unknown.json");
    std::fs::write(&unknown, r#"{"model_type": "gpt2", "hidden_size": 8}"#).map_err(|e| llm::Error::io(&unknown, e))?;
    fails_cleanly(&["inspect", "--model", unknown.to_str().unwrap()], "gpt2");
    // Ids outside the vocabulary in a logits input, and a sequence longer than the context.
    let logits_fails = |input: &std::path::Path, out: &str, needle: &str| {
        let (input, out) = (input.to_str().unwrap(), temp(out));
        fails_cleanly(
            &["logits", "--model", good, "--input", input, "--out", out.to_str().unwrap(), "--device", "cpu"],
            needle,
        )
    };
    let cpu = Device::cpu();
    let bad_ids = temp("bad-ids.safetensors");
    save_safetensors(&bad_ids, &[("input_ids".into(), Tensor::from_vec(vec![1i64, 300], [1, 2], &cpu)?)], None)?;
    logits_fails(&bad_ids, "x.safetensors", "300");
    let long = temp("long.safetensors");
    save_safetensors(&long, &[("input_ids".into(), Tensor::zeros([1, 600], DType::I64, &cpu)?)], None)?;
    logits_fails(&long, "y.safetensors", "context");
    Ok(())
}

/// The main job runs with no flags and no download: nine real-scale configs, nine tiny
/// checkpoints matching transformers, and (once the shipped model exists) a text sample.
#[test]
fn tour_runs_with_no_arguments() {
    let o = llm(&["tour", "--device", "cpu"]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "llm tour failed: {err}\n{out}");
    for release in ["DeepSeek-V3", "Kimi K2", "OLMo 2 7B", "Gemma 3 27B", "Mistral Small 3.1 24B", "Llama 4 Maverick"] {
        assert!(out.contains(release), "the tour names {release}:\n{out}");
    }
    assert_eq!(
        out.matches("(match)").count(),
        10,
        "ten checkpoints (nine architectures, Qwen3 dense and MoE) match the reference:\n{out}"
    );
    assert!(!out.contains("DIFFERS"));
    if llm::tiny::shipped_model_dir().join("model.safetensors").is_file() {
        assert!(!out.contains("no trained model"), "{out}");
    }
}

/// An installed copy of the binary stands on its own: copied into an empty folder and told to
/// act as if the source tree were gone (`LLM_EMBEDDED_ASSETS=1`), it unpacks what it carries into
/// its cache folder and runs the tour and generates with the shipped model.
#[test]
fn the_binary_runs_without_the_source_tree() {
    let dir = std::env::temp_dir().join(format!("llm-installed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = dir.join("llm");
    std::fs::copy(env!("CARGO_BIN_EXE_llm"), &exe).expect("copy the binary");
    let run = |args: &[&str]| {
        Command::new(&exe)
            .args(args)
            .current_dir(&dir)
            .env("LLM_EMBEDDED_ASSETS", "1")
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .output()
            .expect("llm runs")
    };
    let o = run(&["generate", "--prompt", "It was", "--max-new-tokens", "5", "--device", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("It was"), "{}", stdout(&o));
    let o = run(&["tour", "--device", "cpu"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.contains("DIFFERS") && !out.contains("no trained model"), "{out}");
    assert!(out.matches("(match)").count() >= 10, "{out}");
    assert!(dir.join("cache").read_dir().is_ok_and(|mut d| d.next().is_some()), "nothing was unpacked");
    let _ = std::fs::remove_dir_all(&dir);
}
