//! # Where the norm goes: pre-norm, OLMo 2's post-norm, Gemma 3's sandwich
//!
//! Run it: `cargo run --release --example norm_placement` (a few minutes on two CPU
//! cores: three models of about 0.3M parameters, 200 updates of 8 x 128 tokens each).
//! Picture: `target/examples-out/norm_placement/loss.png`, the three loss curves together.
//!
//! The same tiny sizes, the same seed, the same Austen token stream, trained in three families'
//! wiring (`llm::tiny::config_json` writes one config per family). The families differ mainly in
//! where each layer normalises, but not only: the list below names the other differences (QK-norm
//! form, Gemma's GeGLU, embedding scale and window), so this compares three recipes, not norm
//! placement alone:
//! - **pre-norm** (Qwen3 family; GPT-2 onwards, Xiong et al. 2020): `x + f(norm(x))`. Qwen3 also
//!   normalises each query and key head (QK-norm).
//! - **post-norm inside the residual** (OLMo 2, arXiv 2501.00656): `x + norm(f(x))`, no norm
//!   on the block's input, plus QK-norm over the whole q and k projections. OLMo 2 chose it for
//!   training stability: the residual stream is never normalised, each block's *output* is.
//! - **sandwich** (Gemma 3, after Gemma 2): `x + norm(f(norm(x)))`, four norms per layer, with
//!   Gemma's `(1 + w)` weights, scaled embeddings, GeGLU and sliding-window layers (which at
//!   this context and depth see the whole sequence, so the window does not matter here).
//!
//! What to expect: all three learn (cross-entropy falls from ln(2048) = 7.6 nats to about 5.5
//! in 200 updates; about 2.5 minutes in all); at this scale and length the differences are small and can change order with the
//! seed. The stability benefits these designs were chosen for show up at billions of
//! parameters and long runs, so read the curves as indicative, not as a ranking.

use llm::config::Family;
use llm::plot::{LineChart, Series};
use llm::tiny::{TinySizes, TinyTraining, assets_dir, corpus_tokens, fresh_model};
use llm::tokenizer::{TINY_TOKENIZER_FILE, Tokenizer};
use llm::train::{TokenData, pretrain};
use nn::ModuleExt;
use nn::optim::{AdamW, trainable};
use tensor::Device;

mod common;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("norm_placement", quick)?;
    let cpu = Device::cpu();

    // ## 1. The data: two novels as one token stream, the end of *Persuasion* held out
    let assets = assets_dir();
    let tokenizer = Tokenizer::from_file(assets.join(TINY_TOKENIZER_FILE))?;
    let tokens = corpus_tokens(&tokenizer, &assets.join("corpus"))?;
    let mut training = TinyTraining::with_steps(if quick { 6 } else { 200 });
    let data = TokenData::split(tokens, training.validation_fraction)?;
    println!(
        "{} training tokens, {} held out; vocabulary {}",
        data.train.len(),
        data.validation.len(),
        tokenizer.vocab_size()
    );

    // ## 2. The model and the schedule
    // `TinySizes::small()`: 2 layers, hidden 64, 4 heads (2 kv heads), intermediate 192, the
    // 2048-token vocabulary: about 0.3M parameters, most of them in the (tied) embedding.
    let sizes = TinySizes::small();
    let o = &mut training.options;
    o.seq_len = if quick { 32 } else { 128 };
    o.batch_size = if quick { 4 } else { 8 };
    o.eval_every = if quick { 3 } else { 20 };
    o.eval_batches = if quick { 1 } else { 8 };
    o.progress = !quick;
    println!(
        "{} updates of {} x {} tokens, peak learning rate {} (warm-up {}, cosine to {}x)",
        o.steps, o.batch_size, o.seq_len, o.schedule.peak, o.schedule.warmup, o.schedule.floor
    );

    // ## 3. Three trainings, everything equal but the norms
    let mut chart = LineChart::new(
        "Same model, three norm placements (held-out loss)",
        "update step",
        "cross-entropy (nats per token)",
    );
    let mut summary = Vec::new();
    for (family, label) in [
        (Family::Qwen3, "pre-norm + per-head QK-norm (Qwen3)"),
        (Family::Olmo2, "post-norm + whole-projection QK-norm (OLMo 2)"),
        (Family::Gemma3, "sandwich, (1+w) norms (Gemma 3)"),
    ] {
        let (_config, model) = fresh_model(family, &sizes, 0, &cpu)?;
        println!("\n{label}:");
        common::print_layers(&model);
        let params = trainable(model.named_parameters());
        let count: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
        let mut optimizer =
            AdamW::with(params, training.options.schedule.peak, training.betas, 1e-8, training.weight_decay);
        let curve = pretrain(&model, &data, &training.options, &mut optimizer, &cpu)?;
        let train = curve.smoothed_train(10).last().map_or(f64::NAN, |p| p.1);
        let val = curve.final_validation().unwrap_or(f32::NAN);
        println!(
            "  {count} parameters; final train loss (mean of last 10) {train:.3}, held-out {val:.3}, {:.0} s",
            curve.seconds
        );
        chart = chart.with(Series::new(label, curve.validation_points()));
        summary.push((label, train, val));
    }

    // ## 4. Side by side
    println!("\n{:<48} {:>10} {:>10}", "norm placement", "train", "held-out");
    for (label, train, val) in &summary {
        println!("{label:<48} {train:>10.3} {val:>10.3}");
    }
    let path = chart.save_png(out.join("loss.png"))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
