//! # Gemma 3n: per-layer embeddings and nested (MatFormer) widths
//!
//! Run it: `cargo run --release --example gemma3n` (a few minutes on two CPU cores: two
//! trainings of a 0.3M-parameter model, 150 updates of 8 x 128 tokens each).
//! Picture: `target/examples-out/gemma3n/widths.png`, held-out loss at each FFN width for a
//! model trained at full width only and one trained MatFormer-style.
//!
//! Gemma 3n (Google, 2025) is made for phones. Its two releases are called E2B and E4B, for
//! "effective" 2B and 4B parameters, though their raw counts are about 5B and 8B. Two ideas
//! account for the gap, and this notebook takes them in turn:
//! - **per-layer embeddings (PLE)**: besides the usual token embedding, every layer gets its own
//!   small embedding vector for each token (256 numbers), looked up in one large table. The table
//!   is a third of the text model, but a token needs only its own row: the table can stay in CPU
//!   memory or on flash and be streamed, while only the core sits in accelerator memory;
//! - **MatFormer** ("Matryoshka Transformer", Devvrit et al. 2023, arXiv 2310.07707): one model
//!   trained so that narrower FFNs nested inside it (the first k hidden units of every layer)
//!   also work on their own. E4B contains E2B, and widths in between can be sliced out at
//!   inference ("mix-n-match").
//!
//! transformers' `Gemma3nForCausalLM` also has AltUp, LAuReL and KV-cache sharing; those are
//! beyond what this notebook builds.

use std::collections::HashMap;

use autograd::{Var, no_grad};
use llm::anatomy::{human_bytes, human_count};
use llm::config::Family;
use llm::models::{CausalLm, LayerNorms};
use llm::plot::{LineChart, Series};
use llm::tiny::{TinySizes, TinyTraining, assets_dir, corpus_tokens, fresh_model};
use llm::tokenizer::{TINY_TOKENIZER_FILE, Tokenizer};
use llm::train::TokenData;
use nn::ModuleExt;
use nn::optim::{AdamW, Optimizer, clip_grad_norm, trainable};
use tensor::{DType, Device, Rng, Tensor};

mod common;

/// The text sizes of a Gemma 3n release (transformers' `Gemma3nTextConfig` defaults are E4B's;
/// E2B's `config.json` has 30 layers and an FFN of 8192).
struct Gemma3nText {
    name: &'static str,
    layers: u64,
    intermediate: u64,
    kv_shared_layers: u64,
}

const HIDDEN: u64 = 2048;
const VOCAB: u64 = 262_400;
const PLE_VOCAB: u64 = 262_144; // vocab_size_per_layer_input
const PLE_DIM: u64 = 256; // hidden_size_per_layer_input
const HEADS: u64 = 8;
const KV_HEADS: u64 = 2;
const HEAD_DIM: u64 = 256;
const LAUREL_RANK: u64 = 64;

impl Gemma3nText {
    /// (token embedding, per-layer embedding table, layers' weights) in parameters. A layer:
    /// attention (q, k, v, o), the GeGLU FFN (three matrices), the per-layer input gate and
    /// projection (2048 <-> 256), LAuReL's low-rank pair. AltUp's small matrices and the norms
    /// are left out (well under 1% of the total).
    fn parts(&self) -> (u64, u64, u64) {
        let attention = HIDDEN * HEADS * HEAD_DIM * 2 + HIDDEN * KV_HEADS * HEAD_DIM * 2;
        let ffn = 3 * HIDDEN * self.intermediate;
        let ple_gates = 2 * HIDDEN * PLE_DIM;
        let laurel = 2 * HIDDEN * LAUREL_RANK;
        let per_layer = attention + ffn + ple_gates + laurel;
        // The embedding also feeds the PLE through a projection hidden -> layers x 256.
        let ple_projection = HIDDEN * self.layers * PLE_DIM;
        (VOCAB * HIDDEN, PLE_VOCAB * self.layers * PLE_DIM, self.layers * per_layer + ple_projection)
    }
}

const RELEASES: [Gemma3nText; 2] = [
    Gemma3nText { name: "E2B", layers: 30, intermediate: 8192, kv_shared_layers: 10 },
    Gemma3nText { name: "E4B", layers: 35, intermediate: 16_384, kv_shared_layers: 15 },
];

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("gemma3n", quick)?;
    let cpu = Device::cpu();

    // ## 1. The parameter arithmetic of E2B and E4B (text model)
    println!(
        "{:<4} {:>10} {:>14} {:>12} {:>11} {:>13} {:>14}",
        "", "embedding", "per-layer emb.", "layers", "text total", "without PLE", "layers alone"
    );
    for r in &RELEASES {
        let (embedding, ple, layers) = r.parts();
        let total = embedding + ple + layers;
        println!(
            "{:<4} {:>10} {:>14} {:>12} {:>11} {:>13} {:>14}",
            r.name,
            human_count(embedding),
            human_count(ple),
            human_count(layers),
            human_count(total),
            human_count(total - ple),
            human_count(layers)
        );
    }
    println!(
        "The layers alone come to about 2B and 4B: the \"effective\" sizes. The raw counts Google \
         gives (about 5B and 8B) also include the vision (MobileNet-V5) and audio encoders."
    );
    for r in &RELEASES {
        // KV sharing: the last `kv_shared_layers` reuse earlier layers' keys and values.
        println!(
            "  {}: {} of {} layers keep their own KV cache (the last {} reuse earlier ones)",
            r.name,
            r.layers - r.kv_shared_layers,
            r.layers,
            r.kv_shared_layers
        );
    }

    // ## 2. Per-layer embeddings: a big table, a small read per token
    // The table is [262144, layers x 256]. For a token, layer i needs the 256 numbers in its row
    // at columns i*256..(i+1)*256: that slice is all that must reach the accelerator.
    for r in &RELEASES {
        let (_, ple, _) = r.parts();
        println!(
            "{} PLE table: {} in bf16; per token {} in all ({} per layer): streamed, not resident",
            r.name,
            human_bytes(ple * 2),
            human_bytes(r.layers * PLE_DIM * 2),
            human_bytes(PLE_DIM * 2)
        );
    }
    // The same on a tiny table held on the host: look up one token's row, then slice it per layer
    // as a decoder would, layer by layer.
    let (layers, dim, vocab) = (4usize, 8usize, 2048usize);
    let mut rng = Rng::new(3);
    let host_table = Tensor::randn(0.0, 1.0, [vocab, layers * dim], DType::BF16, &mut rng, &cpu)?;
    let ids = Tensor::from_vec(vec![17u32, 1024], [2], &cpu)?;
    let rows = host_table.index_select(&ids, 0usize)?; // [2, layers x dim]: the only part streamed
    for layer in 0..layers {
        let slice = rows.narrow(1, layer * dim, dim)?;
        println!(
            "  tiny PLE: layer {layer} gets {:?} for tokens [17, 1024] ({} bytes of the {}-byte table)",
            slice.dims(),
            slice.elem_count() * 2,
            host_table.elem_count() * 2
        );
    }
    // In the layer, that vector gates the hidden state and is projected back:
    // x += norm(W_proj (gelu(W_gate x) * ple_i)); `per_layer_input_gate` (hidden -> 256) and
    // `per_layer_projection` (256 -> hidden) are the two matrices counted above.

    // ## 3. MatFormer: train once, run at several widths
    // Two copies of the tiny model from the same initialisation: one trained at full FFN width
    // (192 hidden units per layer), one trained on the mean of the losses at full width and at
    // half width (the first 96 units), each step. Then each is evaluated at 1/4, 1/2, 3/4 and
    // full width: the FFN of every layer keeps its first k units (the first k rows of gate and up,
    // the first k columns of down), which is how a MatFormer slices a smaller model out.
    let assets = assets_dir();
    let tokenizer = Tokenizer::from_file(assets.join(TINY_TOKENIZER_FILE))?;
    let data = TokenData::split(corpus_tokens(&tokenizer, &assets.join("corpus"))?, 0.05)?;
    let sizes = TinySizes::small();
    let mut training = TinyTraining::with_steps(if quick { 3 } else { 150 });
    let o = &mut training.options;
    o.seq_len = if quick { 32 } else { 128 };
    o.batch_size = if quick { 2 } else { 8 };
    let o = training.options.clone();
    let validation = data.validation_batches(o.batch_size, o.seq_len, if quick { 1 } else { 8 }, &cpu)?;
    let full = sizes.intermediate_size;
    let widths: Vec<usize> = vec![full / 4, full / 2, 3 * full / 4, full];
    let mut chart = LineChart::new(
        "Held-out loss when each FFN keeps only its first k units",
        "FFN width k (of 192)",
        "cross-entropy (nats per token)",
    );
    let mut table = Vec::new();
    for (label, trained_widths) in [
        ("trained at full width only", vec![full]),
        ("MatFormer: trained at full and half width", vec![full, full / 2]),
    ] {
        let (_, model) = fresh_model(Family::Qwen3, &sizes, 0, &cpu)?;
        let params = trainable(model.named_parameters());
        let mut optimizer = AdamW::with(params.clone(), o.schedule.peak, training.betas, 1e-8, training.weight_decay);
        let mut rng = Rng::new(o.seed);
        let started = std::time::Instant::now();
        for step in 0..o.steps {
            optimizer.set_learning_rate(o.schedule.at(step));
            let ids = data.random_batch(&mut rng, o.batch_size, o.seq_len, &cpu)?;
            let mut loss: Option<Var> = None;
            for &k in &trained_widths {
                let l = loss_at_width(&model, &ids, k)?.mul_scalar(1.0 / trained_widths.len() as f64)?;
                loss = Some(match loss {
                    None => l,
                    Some(sum) => sum.add(&l)?,
                });
            }
            let Some(loss) = loss else { continue };
            let mut grads = loss.backward()?;
            if let Some(max) = o.grad_clip {
                clip_grad_norm(&params, &mut grads, max)?;
            }
            optimizer.step(&grads)?;
        }
        let mut points = Vec::new();
        for &k in &widths {
            let mut total = 0.0;
            for ids in &validation {
                let l = no_grad(|| loss_at_width(&model, ids, k))?;
                total += l.value().to_dtype(DType::F32)?.to_scalar::<f32>()? as f64 / validation.len() as f64;
            }
            points.push((k as f64, total));
        }
        println!("\n{label} ({} updates, {:.0} s): held-out loss by width", o.steps, started.elapsed().as_secs_f64());
        for (k, l) in &points {
            println!("  k = {k:>3}: {l:.3}");
        }
        chart = chart.with(Series::new(label, points.clone()));
        table.push((label, points));
    }
    let path = chart.save_png(out.join("widths.png"))?;
    println!("wrote {}", path.display());
    println!(
        "Only the MatFormer copy was ever asked to work at half width; 1/4 and 3/4 were never trained \
         by either (3/4 is the \"mix-n-match\" case: a width in between the trained ones)."
    );
    Ok(())
}

/// Next-token loss of the (Qwen3, pre-norm) tiny model with every FFN cut to its first `k` units.
fn loss_at_width(model: &CausalLm, ids: &Tensor, k: usize) -> llm::Result<Var> {
    let params: HashMap<String, Var> = model.named_parameters().into_iter().collect();
    let get = |name: String| params.get(&name).cloned().ok_or_else(|| llm::Error::input(format!("no {name}")));
    let t = ids.dims()[1];
    let mut x = model.embed_tokens.forward(ids)?;
    for (i, layer) in model.layers.iter().enumerate() {
        let LayerNorms::PreNorm { input_layernorm, post_attention_layernorm } = &layer.norms else {
            return Err(llm::Error::input("this notebook slices pre-norm (Qwen3) layers"));
        };
        let h = x.add(&layer.self_attn.forward(&input_layernorm.forward(&x)?, 0, None)?)?;
        let n = post_attention_layernorm.forward(&h)?;
        let p = |m: &str| get(format!("model.layers.{i}.mlp.{m}.weight"));
        let gate = n.linear(&p("gate_proj")?.narrow(0, 0, k)?)?.silu()?;
        let up = n.linear(&p("up_proj")?.narrow(0, 0, k)?)?;
        let down = p("down_proj")?.narrow(1, 0, k)?;
        x = h.add(&gate.mul(&up)?.linear(&down)?)?;
    }
    let x = model.norm.forward(&x)?;
    let logits = match &model.lm_head {
        Some(h) => h.forward(&x)?,
        None => x.linear(&model.embed_tokens.weight)?,
    };
    let (b, v) = (ids.dims()[0], logits.dims()[2]);
    let predictions = logits.narrow(1, 0, t - 1)?.reshape([b * (t - 1), v])?;
    let targets = ids.narrow(1, 1, t - 1)?.to_dtype(DType::U32)?.reshape([b * (t - 1)])?;
    Ok(nn::loss::cross_entropy(&predictions, &targets, None)?)
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}

#[test]
fn full_width_slicing_is_the_model_itself() -> llm::Result<()> {
    // Cutting every FFN to its full width must give exactly the model's own loss.
    let cpu = Device::cpu();
    let (_, model) = fresh_model(Family::Qwen3, &TinySizes::small(), 0, &cpu)?;
    let ids = Tensor::from_vec((0..24u32).map(|i| i * 37 % 2048).collect::<Vec<_>>(), [2, 12], &cpu)?;
    let ours = no_grad(|| loss_at_width(&model, &ids, TinySizes::small().intermediate_size))?;
    let theirs = no_grad(|| llm::train::next_token_loss(&model, &ids))?;
    let (a, b) = (ours.value().to_scalar::<f32>()?, theirs.value().to_scalar::<f32>()?);
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    Ok(())
}
