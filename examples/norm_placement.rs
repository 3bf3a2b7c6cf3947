//! # Norm placement x QK-norm: OLMo 2's two stability changes, one at a time
//!
//! Run it: `cargo run --release --example norm_placement` (about three minutes on two CPU
//! cores: four models of about 0.3M parameters, 200 updates of 8 x 128 tokens each).
//! Pictures: `target/examples-out/norm_placement/loss.png` (the four held-out loss curves) and
//! `max_logit.png` (the largest attention logit of each update).
//!
//! The question: OLMo 2 (arXiv 2501.00656, section 3.3) changed two things in Llama's layer
//! for training stability. Which does what? Here the same OLMo 2 model is trained four times,
//! with each change switched on or off (`reordered_norm` and `qk_norm` in its `config.json`, see
//! `llm::config::Olmo2Switches`); the sizes, the initialisation seed, the token stream, the
//! optimizer and its schedule are identical, so the two switches are the only differences:
//! - **norm placement**: Llama's pre-norm `x + f(norm(x))` (GPT-2 onwards, Xiong et al. 2020),
//!   or OLMo 2's reordered norm `x + norm(f(x))`: no norm on the block's input, the block's
//!   *output* is normalised before it joins the residual stream;
//! - **QK-norm**: none, or OLMo 2's RMSNorm over the whole query and key projections before they
//!   are split into heads and rotated (Qwen3 and Gemma 3 normalise each head instead).
//!
//! What to expect: all four learn (cross-entropy falls from ln(2048) = 7.6 nats to about 5.5 in
//! 200 updates), but not equally. With pre-norm, QK-norm makes no difference to the loss at this
//! scale (the two curves lie on each other). With the reordered norm, QK-norm matters a lot: the
//! reordered layer without it falls behind from about update 40 and ends about 0.5 nats worse
//! than the other three; with QK-norm it ends within about 0.1 nats of pre-norm, slightly behind.
//! A likely reason (not measured here): the reordered layer never normalises a block's input, so
//! the first layer's attention reads the raw token embeddings (initialised with standard
//! deviation 0.02) and its queries and keys start tiny; QK-norm rescales them, pre-norm rescales
//! the input. OLMo 2 adopted the two changes together, and this is consistent with that.
//!
//! The logits: with QK-norm the largest logit starts near 5 (normalised 16-dim queries and keys
//! give logits of spread about 1 at initialisation, and the largest of the half million pairs
//! an update sees is about 5) and drifts up to about 7; without it, it starts near 0 and grows with the weights to
//! about 4. At this learning rate nothing grows large; `warmup.rs` raises the learning rate until
//! the logits run away without QK-norm. One seed at tiny scale: differences of a few hundredths
//! of a nat can change order with the seed; OLMo 2 reports the stability gains at 1B-7B
//! parameters over trillions of tokens.

use llm::config::Family;
use llm::plot::{LineChart, Series};
use llm::tiny::{TinySizes, config_json, fresh_model_from};
use llm::train::pretrain;
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
    let (tokenizer, data) = common::austen_data()?;
    let mut training = common::notebook_training(if quick { 6 } else { 200 }, 20, 8, quick);
    println!(
        "{} training tokens, {} held out; vocabulary {}",
        data.train.len(),
        data.validation.len(),
        tokenizer.vocab_size()
    );

    // ## 2. The model and the schedule
    // `TinySizes::small()`: 2 layers, hidden 64, 4 heads of 16 dims (2 kv heads), intermediate
    // 192, the 2048-token vocabulary: about 0.3M parameters, most of them in the (tied) embedding.
    let sizes = TinySizes::small();
    let o = &mut training.options;
    // Record each update's largest attention logit (max over heads and layers of q.k/sqrt(d)).
    o.watch_attention_logits = true;
    println!(
        "{} updates of {} x {} tokens, AdamW, peak learning rate {} (warm-up {}, cosine to {}x)",
        o.steps, o.batch_size, o.seq_len, o.schedule.peak, o.schedule.warmup, o.schedule.floor
    );

    // ## 3. Four trainings: the 2 x 2 of norm placement and QK-norm
    let mut loss_chart = LineChart::new(
        "OLMo 2's layer, its two changes switched (held-out loss)",
        "update step",
        "cross-entropy (nats per token)",
    );
    let mut logit_chart = LineChart::new(
        "Largest attention logit of each update",
        "update step",
        "max over heads and layers of q.k / sqrt(d)",
    );
    let mut rows = Vec::new();
    for (reordered_norm, qk_norm) in [(false, false), (false, true), (true, false), (true, true)] {
        let label = format!(
            "{} norm, {}",
            if reordered_norm { "reordered" } else { "pre" },
            if qk_norm { "QK-norm" } else { "no QK-norm" }
        );
        let mut config = config_json(Family::Olmo2, &sizes)?;
        config["reordered_norm"] = reordered_norm.into();
        config["qk_norm"] = qk_norm.into();
        let (_config, model) = fresh_model_from(&config, 0, &cpu)?;
        println!("\n{label}:");
        common::print_layers(&model);
        let params = trainable(model.named_parameters());
        let count: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
        let mut optimizer =
            AdamW::with(params, training.options.schedule.peak, training.betas, 1e-8, training.weight_decay);
        let curve = pretrain(&model, &data, &training.options, &mut optimizer, &cpu)?;
        let train = curve.smoothed_train(10).last().map_or(f64::NAN, |p| p.1);
        let val = curve.final_validation().unwrap_or(f32::NAN);
        let logits: Vec<(f64, f64)> = curve.max_attention_logit.iter().map(|&(s, m)| (s as f64, m)).collect();
        let first_logit = logits.first().map_or(f64::NAN, |p| p.1);
        let last_logit = logits.last().map_or(f64::NAN, |p| p.1);
        println!(
            "  {count} parameters; final train loss (mean of last 10) {train:.3}, held-out {val:.3}, {:.0} s",
            curve.seconds
        );
        loss_chart = loss_chart.with(Series::new(label.clone(), curve.validation_points()));
        logit_chart = logit_chart.with(Series::new(label.clone(), logits));
        rows.push((label, train, val, first_logit, last_logit));
    }

    // ## 4. Side by side
    println!("\n{:<28} {:>8} {:>9} {:>12} {:>11}", "layer", "train", "held-out", "logit first", "logit last");
    for (label, train, val, first, last) in &rows {
        println!("{label:<28} {train:>8.3} {val:>9.3} {first:>12.2} {last:>11.2}");
    }
    for (chart, file) in [(&loss_chart, "loss.png"), (&logit_chart, "max_logit.png")] {
        let path = chart.save_png(out.join(file))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
