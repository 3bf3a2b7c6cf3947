//! # No warm-up at a high learning rate: attention logits and gradient norms
//!
//! Run it: `cargo run --release --example warmup` (about a minute on two CPU cores: four
//! trainings of a 0.3M-parameter model, 120 updates of 8 x 128 tokens each).
//! Pictures: `target/examples-out/warmup/max_logit.png` (the largest attention logit of each
//! update, log scale), `grad_norm.png` (the global gradient norm of each update, log scale) and
//! `loss.png` (the training loss, batch by batch).
//!
//! The question: why does nearly every LLM recipe warm the learning rate up from zero, and what
//! does QK-norm change? Wortsman et al., "Small-scale proxies for large-scale Transformer training
//! instabilities" (arXiv 2309.14322), reproduce at small scale what breaks large runs: at a high
//! learning rate the attention logits grow until the softmax saturates into nearly one-hot
//! attention ("attention logit growth") and the loss stops improving or diverges; warm-up and
//! QK-layernorm each let a model train at higher learning rates. OLMo 2 (arXiv 2501.00656)
//! adopted QK-norm for the same reason.
//!
//! Here Llama's pre-norm layer (the OLMo 2 model with its reordered norm switched off, as in
//! `norm_placement.rs`) is trained four times with AdamW at a peak learning rate of 6e-2, thirty
//! times the tiny model's usual 2e-3: with a 20-update linear warm-up or none, each with and
//! without QK-norm. Everything else is identical (seed, batches, cosine decay to a tenth,
//! gradients clipped at norm 1). The gradient norm is measured before clipping; the logit is the
//! largest `q . k / sqrt(d)` over every head and layer in the update's forward pass.
//!
//! What to expect: without QK-norm the largest logit climbs into the hundreds (a logit 10 above
//! the rest already gives its key e^10 = 22,000 times the weight), fastest and highest without
//! warm-up; both runs without QK-norm then stall near 6.0 nats while the runs with QK-norm keep
//! learning, their logits held near 10. Without warm-up the first full-size updates throw the
//! loss above its starting value within a few updates (the "worst loss" column) and the gradient
//! norm peaks in the first updates; with warm-up the loss never rises above where it started. The
//! best run has both warm-up and QK-norm; QK-norm without warm-up recovers from its early spike
//! but ends a quarter of a nat behind. One seed at tiny scale: the exact numbers move with the
//! seed, the picture is what matters.

use llm::config::Family;
use llm::plot::{LineChart, Series};
use llm::tiny::{TinySizes, config_json, fresh_model_from};
use llm::train::{WarmupCosine, pretrain};
use nn::ModuleExt;
use nn::optim::{AdamW, trainable};
use tensor::Device;

mod common;

/// Ten times the tiny model's usual peak learning rate (2e-3).
const PEAK_LR: f64 = 6e-2;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("warmup", quick)?;
    let cpu = Device::cpu();

    // ## 1. Data and settings: the tiny model's, with a high learning rate
    let (_, data) = common::austen_data()?;
    let steps = if quick { 6 } else { 120 };
    let mut training = common::notebook_training(steps, 20, 4, quick);
    training.options.watch_attention_logits = true;
    let sizes = TinySizes::small();
    let warmup_steps = if quick { 2 } else { 20 };

    // ## 2. Four trainings: warm-up or not, QK-norm or not
    let mut logit_chart = LineChart::new(
        format!("Largest attention logit, peak learning rate {PEAK_LR}"),
        "update step",
        "max over heads and layers of q.k / sqrt(d)",
    )
    .log_y();
    let mut norm_chart = LineChart::new(
        format!("Gradient norm before clipping, peak learning rate {PEAK_LR}"),
        "update step",
        "global L2 norm of the gradients",
    )
    .log_y();
    let mut loss_chart = LineChart::new(
        format!("Training loss, peak learning rate {PEAK_LR}"),
        "update step",
        "cross-entropy (nats per token), batch by batch",
    );
    let mut rows = Vec::new();
    for (warmup, qk_norm) in [(warmup_steps, false), (0, false), (warmup_steps, true), (0, true)] {
        let label = format!(
            "{}, {}",
            if warmup > 0 { format!("warm-up {warmup}") } else { "no warm-up".to_string() },
            if qk_norm { "QK-norm" } else { "no QK-norm" }
        );
        training.options.schedule = WarmupCosine { peak: PEAK_LR, warmup, total: steps, floor: 0.1 };
        let mut config = config_json(Family::Olmo2, &sizes)?;
        config["reordered_norm"] = false.into();
        config["qk_norm"] = qk_norm.into();
        let (_, model) = fresh_model_from(&config, 0, &cpu)?;
        let params = trainable(model.named_parameters());
        let mut optimizer = AdamW::with(params, PEAK_LR, training.betas, 1e-8, training.weight_decay);
        println!(
            "\n{label}: learning rate {:.1e} at update 0, {PEAK_LR:.0e} from update {warmup}",
            training.options.schedule.at(0)
        );
        let curve = pretrain(&model, &data, &training.options, &mut optimizer, &cpu)?;
        let points = |v: &[(usize, f64)]| v.iter().map(|&(s, x)| (s as f64, x)).collect::<Vec<_>>();
        let logits = points(&curve.max_attention_logit);
        let norms = points(&curve.grad_norm);
        let peak = |v: &[(f64, f64)]| v.iter().fold((0.0, f64::NEG_INFINITY), |a, &p| if p.1 > a.1 { p } else { a });
        let (logit_at, logit_max) = peak(&logits);
        let (norm_at, norm_max) = peak(&norms);
        // The worst batch loss after the first update: a spike shows as a value above the start.
        let (spike_at, spike) =
            curve.train.iter().skip(1).fold((0, f32::NEG_INFINITY), |a, &p| if p.1 > a.1 { p } else { a });
        let train = curve.smoothed_train(10).last().map_or(f64::NAN, |p| p.1);
        let val = curve.final_validation().unwrap_or(f32::NAN);
        println!(
            "  largest logit {logit_max:.1} (update {logit_at}), last {:.1}; largest gradient norm {norm_max:.2} (update {norm_at}); final loss {train:.3}, held-out {val:.3}",
            logits.last().map_or(f64::NAN, |p| p.1)
        );
        loss_chart = loss_chart
            .with(Series::new(label.clone(), curve.train.iter().map(|&(s, l)| (s as f64, l as f64)).collect()));
        logit_chart = logit_chart.with(Series::new(label.clone(), logits));
        norm_chart = norm_chart.with(Series::new(label.clone(), norms));
        rows.push((label, logit_max, logit_at, norm_max, norm_at, spike, spike_at, train, val));
    }

    // ## 3. Side by side
    println!(
        "\n{:<24} {:>9} {:>4} {:>8} {:>4} {:>10} {:>4} {:>7} {:>9}",
        "run", "max logit", "at", "max |g|", "at", "worst loss", "at", "final", "held-out"
    );
    for (label, logit, logit_at, norm, norm_at, spike, spike_at, train, val) in &rows {
        println!(
            "{label:<24} {logit:>9.1} {logit_at:>4} {norm:>8.2} {norm_at:>4} {spike:>10.3} {spike_at:>4} {train:>7.3} {val:>9.3}"
        );
    }
    println!(
        "(at: the update where the maximum was reached; worst loss: the largest batch loss after update 0, against ln(2048) = 7.62 at the start; final: mean of the last 10 batches)"
    );
    for (chart, file) in [(&logit_chart, "max_logit.png"), (&norm_chart, "grad_norm.png"), (&loss_chart, "loss.png")] {
        let path = chart.save_png(out.join(file))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
