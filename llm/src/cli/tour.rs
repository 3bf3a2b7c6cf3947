//! `llm tour [--device cpu|gpu]`: the project's main job, with no download and no flags needed.
//!
//! 1. The nine architectures side by side at real scale, from the configs compiled into the
//!    library (`llm/configs/`): parameters total and active per token, the KV cache per token and
//!    at 32k and 128k tokens of context, and the design choices that set them apart.
//! 2. Each architecture built small and run once on the best device found: the tiny Hugging Face
//!    checkpoints of `llm/tests/data/hf-tiny` are loaded and their logits compared with the ones
//!    the reference implementation (transformers) recorded for the same input.
//! 3. A few lines of text from the project's own model, trained here on two Jane Austen novels
//!    (`llm/assets/tiny/`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nn::ModuleExt;
use nn::rope::RopeScaling;
use tensor::{DType, Device};

use crate::anatomy::{Anatomy, human_bytes, human_count};
use crate::config::{LayerAttention, ModelConfig, SHIPPED};
use crate::generate::{StopAt, generate};
use crate::models::{LoadOptions, load};
use crate::sample::Sampling;
use crate::tokenizer::Tokenizer;
use crate::weights::Checkpoint;
use crate::{Error, Result};

/// The contexts the cache column reports: a long document and the longest most of these models
/// were trained for.
const CONTEXTS: [usize; 2] = [32 * 1024, 128 * 1024];

/// Logits within this of the reference count as a match: float32 re-implementations differ by
/// about 1e-5 (summation order), while a wrong detail moves logits by O(1) (see
/// `llm/tests/fixtures.rs`).
const MATCH_TOLERANCE: f64 = 1e-3;

/// Where the tiny fixtures sit (see [`crate::assets`]).
pub fn fixtures_dir() -> PathBuf {
    crate::assets::fixtures_dir()
}

pub fn run(device: Option<&str>) -> Result<()> {
    println!("llm tour: today's open LLM architectures, from their configs to generated text\n");
    real_scale()?;
    let (device, line) = crate::device::pick(device)?;
    small_and_run(&fixtures_dir(), &device, &line)?;
    own_model(&crate::tiny::shipped_model_dir(), &device)?;
    println!("\nNext: `llm generate --prompt \"...\"`, `llm inspect --model CONFIG_OR_DIR`, and the examples");
    println!("(`cargo run --release --example deepseek_v3`, ... one per architecture; see the README).");
    Ok(())
}

/// Prints rows as left-aligned columns, the first row a header underlined.
fn print_table(rows: &[Vec<String>], right_aligned: &[bool]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if right_aligned.get(c).copied().unwrap_or(false) {
                    format!("{s:>w$}", w = widths[c])
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect();
        println!("  {}", cells.join("  ").trim_end());
        if i == 0 {
            println!("  {}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
        }
    }
}

fn real_scale() -> Result<()> {
    println!("1. The architectures at real scale (config.json only, no weights; cache in bf16)\n");
    let anatomies = shipped_anatomies()?;
    let bf16 = DType::BF16;
    print_table(&size_rows(&anatomies), &[false, true, true, true, true, true, true]);
    println!();
    print_table(&design_rows(&anatomies), &[]);
    println!("\n  Mixtures of experts (the others are dense):");
    for (release, _, a) in anatomies.iter().filter(|(_, _, a)| a.experts != "dense") {
        println!("    {release:<21}  {}", a.experts);
    }
    // Two readings of the table a learner should not miss, computed rather than asserted.
    let find = |name: &str| anatomies.iter().find(|(r, _, _)| *r == name);
    if let (Some((_, _, dsv3)), Some((_, maverick, m))) = (find("DeepSeek-V3"), find("Llama 4 Maverick")) {
        println!(
            "\n  DeepSeek-V3 caches one compressed latent per layer (MLA): {} per token for a 671B model,\n  \
             against {} for Llama 4 Maverick's GQA ({} KV heads of {} dimensions).",
            human_bytes(dsv3.kv_cache_bytes_per_token(bf16)),
            human_bytes(m.kv_cache_bytes_per_token(bf16)),
            maverick.num_key_value_heads,
            maverick.head_dim
        );
    }
    if let Some((_, config, g)) = find("Gemma 3 27B") {
        let (full, sliding, _) = g.kv_numbers_per_token;
        let window = g.sliding_window.unwrap_or(0) as u64;
        let windowed_layers = config.layers.iter().filter(|l| l.attention == LayerAttention::Sliding).count();
        let t = CONTEXTS[1] as u64;
        let windowed = (full * t + sliding * t.min(window)) * 2;
        let unwindowed = (full + sliding) * t * 2;
        println!(
            "  Gemma 3 keeps only the last {window} tokens on {windowed_layers} of its {} layers: at 128k its cache\n  \
             is {} instead of {}.",
            config.layers.len(),
            human_bytes(windowed),
            human_bytes(unwindowed)
        );
    }
    println!();
    Ok(())
}

/// The design table: attention, norm placement, RoPE, positions; a header row first.
fn design_rows(anatomies: &[(&str, ModelConfig, Anatomy)]) -> Vec<Vec<String>> {
    let mut design = vec![vec![
        "release".to_string(),
        "attention".into(),
        "norms".into(),
        "RoPE base, scaling".into(),
        "positions".into(),
    ]];
    for (release, config, a) in anatomies {
        design.push(vec![
            release.to_string(),
            a.attention_kind.clone(),
            a.norm_placement.to_string(),
            rope_summary(config),
            a.positions.clone(),
        ]);
    }
    design
}

/// `docs/ARCHITECTURES.md`: the shipped architectures' differences as the tour computes them from
/// their configs, so the page cannot drift from the code (`llm/tests/docs.rs` checks it).
pub fn architectures_markdown() -> Result<String> {
    let anatomies = shipped_anatomies()?;
    let mut text = String::from(
        "# The architectures, side by side\n\n\
         Generated from the shipped real configs (`llm/configs/`) by the code of `llm tour`; do not edit by hand \
         (`LLM_UPDATE_DOCS=1 cargo test -p llm --test docs` rewrites it). KV cache in bf16.\n\n## Sizes\n\n",
    );
    text.push_str(&markdown_table(&size_rows(&anatomies)));
    text.push_str("\n## Design\n\n");
    text.push_str(&markdown_table(&design_rows(&anatomies)));
    text.push_str(
        "\n## What sets each apart\n\n\
         From each architecture's registry entry (`llm/src/models/registry.rs`): its recipe, and a config of it \
         that gives sizes only (12 layers; experts where it has them), read with its class defaults and built with \
         shape-only weights.\n\n",
    );
    let differences = crate::models::differences::rows()?;
    text.push_str(&markdown_table(
        &std::iter::once(crate::models::differences::HEADER.map(String::from).to_vec())
            .chain(differences.into_iter().map(|r| r.to_vec()))
            .collect::<Vec<_>>(),
    ));
    text.push_str("\n## Mixtures of experts\n\n");
    text.push_str(&markdown_table(
        &std::iter::once(vec!["release".to_string(), "experts".into()])
            .chain(anatomies.iter().map(|(r, _, a)| vec![r.to_string(), a.experts.clone()]))
            .collect::<Vec<_>>(),
    ));
    Ok(text)
}

fn markdown_table(rows: &[Vec<String>]) -> String {
    let mut text = String::new();
    for (i, row) in rows.iter().enumerate() {
        text.push_str(&format!("| {} |\n", row.join(" | ")));
        if i == 0 {
            text.push_str(&format!("|{}\n", " --- |".repeat(row.len())));
        }
    }
    text
}

fn shipped_anatomies() -> Result<Vec<(&'static str, ModelConfig, Anatomy)>> {
    SHIPPED
        .iter()
        .map(|s| {
            let config = s.parse()?;
            let anatomy = Anatomy::try_of(&config)?;
            Ok((s.release, config, anatomy))
        })
        .collect()
}

/// The sizes table: parameters, active share, KV cache; a header row first.
fn size_rows(anatomies: &[(&str, ModelConfig, Anatomy)]) -> Vec<Vec<String>> {
    let bf16 = DType::BF16;
    let mut sizes = vec![vec![
        "release".to_string(),
        "total".into(),
        "active".into(),
        "active %".into(),
        "KV / token".into(),
        "KV at 32k".into(),
        "KV at 128k".into(),
    ]];
    for (release, _, a) in anatomies {
        let mut row = vec![
            release.to_string(),
            human_count(a.total_params()),
            human_count(a.active_params()),
            format!("{:.1}", 100.0 * a.active_params() as f64 / a.total_params() as f64),
            human_bytes(a.kv_cache_bytes_per_token(bf16)),
        ];
        row.extend(CONTEXTS.iter().map(|&t| human_bytes(a.kv_cache_bytes(t, bf16))));
        sizes.push(row);
    }
    sizes
}

/// `rope_theta` and the context-extension schedule, e.g. `1e4, YaRN x40`; Gemma 3's local
/// layers' own base after a slash.
pub fn rope_summary(config: &ModelConfig) -> String {
    let base = |theta: f64| {
        let exponent = theta.log10();
        if (exponent - exponent.round()).abs() < 1e-9 {
            format!("1e{}", exponent.round())
        } else {
            format!("{theta:e}")
        }
    };
    let g = &config.rope.global;
    let mut text = base(g.theta);
    if let Some(local) = &config.rope.local {
        text.push_str(&format!(" (local {})", base(local.theta)));
    }
    match g.scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => text.push_str(&format!(", linear x{factor}")),
        RopeScaling::Llama3 { factor, .. } => text.push_str(&format!(", Llama 3 x{factor}")),
        RopeScaling::Yarn { factor, .. } => text.push_str(&format!(", YaRN x{factor}")),
    }
    text
}

fn small_and_run(fixtures: &Path, device: &Device, device_line: &str) -> Result<()> {
    println!("2. Each architecture built small and run once ({device_line})\n");
    if !fixtures.is_dir() {
        println!(
            "  (skipped: the tiny checkpoints are not at {}; run the tour from the repository)\n",
            fixtures.display()
        );
        return Ok(());
    }
    println!("  Tiny Hugging Face checkpoints of each family (same code path as the real ones), run on");
    println!("  the input transformers was given; the last column compares our logits with its own.\n");
    let mut rows = vec![vec![
        "checkpoint".to_string(),
        "params".into(),
        "layers".into(),
        "input".into(),
        "logits".into(),
        "time".into(),
        "max |logit - transformers|".into(),
    ]];
    let cpu = Device::cpu();
    let mut all_match = true;
    // The architectures' tiny checkpoints, in the registry's order.
    for name in crate::models::registry::ALL.map(|a| a.fixture) {
        let dir = fixtures.join(name);
        let start = Instant::now();
        let loaded = load(&dir, &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
        let reference = Checkpoint::open(&dir.join("reference.safetensors"))?;
        let ids = reference.load("input_ids", Some(DType::U32), device)?;
        let out = autograd::no_grad(|| loaded.model.forward(&ids, 0, None, false))?;
        let logits = out.logits.value().to(&cpu)?;
        let want = reference.load("logits", None, &cpu)?;
        let diff = tensor::testing::max_abs_diff(&logits, &want)?;
        let elapsed = start.elapsed();
        let ok = diff <= MATCH_TOLERANCE;
        all_match &= ok;
        let params = loaded.model.num_parameters();
        rows.push(vec![
            name.to_string(),
            human_count(params as u64),
            loaded.config.num_hidden_layers.to_string(),
            format!("{:?}", ids.dims()),
            format!("{:?}", logits.dims()),
            format!("{:.0} ms", elapsed.as_secs_f64() * 1e3),
            format!("{diff:.1e} {}", if ok { "(match)" } else { "(DIFFERS)" }),
        ]);
    }
    print_table(&rows, &[false, true, true, false, false, true, false]);
    if !all_match {
        return Err(Error::input(format!(
            "some architecture differs from the reference by more than {MATCH_TOLERANCE:e} on {device}; \
             `cargo test -p llm --test fixtures` shows which layer"
        )));
    }
    println!();
    Ok(())
}

/// Starts the story where a reader of the corpus would recognise it.
const PROMPT: &str = "Elizabeth";

fn own_model(dir: &Path, device: &Device) -> Result<()> {
    println!("3. The project's own model: trained here on two Jane Austen novels (llm/assets/tiny)\n");
    if !dir.join("model.safetensors").is_file() {
        println!("  (skipped: no trained model at {}; `llm pretrain` makes one)", dir.display());
        return Ok(());
    }
    let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))?;
    let loaded = load(dir, &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
    let params = loaded.model.num_parameters();
    println!(
        "  A {} decoder of {} parameters, {} layers, vocabulary {}; sampled at temperature 0.8, top-k 40:\n",
        loaded.config.family.name(),
        human_count(params as u64),
        loaded.config.num_hidden_layers,
        loaded.model.vocab_size()
    );
    let mut prompt: Vec<u32> = loaded.config.bos_token_id.into_iter().collect();
    prompt.extend(tokenizer.encode(PROMPT)?);
    let sampling = Sampling { temperature: 0.8, top_k: Some(40), top_p: None, seed: 7 };
    let stop = StopAt { eos: loaded.config.eos_token_ids.clone() };
    let mut decoder = tokenizer.incremental_decoder();
    let mut out = std::io::stdout();
    let mut column = 2;
    print!("  {PROMPT}");
    column += PROMPT.len();
    let mut emit = |text: &str| -> Result<()> {
        // Wrap at about 96 columns so the sample reads as a paragraph in a terminal.
        for word in text.split_inclusive([' ', '\n']) {
            if word.ends_with('\n') {
                print!("{}\n  ", word.trim_end());
                column = 2;
                continue;
            }
            if column + word.len() > 96 && word.starts_with(' ') {
                print!("\n  {}", word.trim_start());
                column = 2 + word.trim_start().len();
            } else {
                print!("{word}");
                column += word.len();
            }
        }
        out.flush().map_err(|e| Error::input(format!("stdout: {e}")))
    };
    generate(&loaded.model, &prompt, 80, sampling, &stop, device, |id| {
        if stop.eos.contains(&id) {
            return Ok(());
        }
        let text = decoder.push(id)?;
        emit(&text)
    })?;
    println!("\n");
    Ok(())
}
