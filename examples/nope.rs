//! # NoPE against RoPE: trained at 128 tokens, read at 256 and 512
//!
//! Run it: `cargo run --release --example nope` (about two minutes on two CPU cores: three
//! models of about 0.33M parameters, 200 updates of 8 x 128 tokens each, then passes over the
//! held-out text in windows of 512 tokens).
//! Pictures: `target/examples-out/nope/loss_by_position.png` (the held-out loss at each position
//! of a 512-token window, means over 32 positions, the training context marked) and
//! `long_minus_short.png` (for the same tokens past position 256, the loss read with the whole
//! window before them minus the loss read with at most 127 tokens before them).
//!
//! The question: does a model without positional encoding (NoPE) read past the context it was
//! trained on better than one with RoPE? A causal decoder can infer positions without any
//! encoding (the mask alone lets a layer count), and Kazemnejad et al. 2023 found NoPE
//! generalising to longer inputs better than RoPE on small synthetic tasks; "Rope to Nope and
//! back again" (Yang et al., arXiv 2501.19399) found that neither extrapolates well in language
//! models (NoPE's attention spreads out as the context grows past training) and proposed mixing
//! the two. SmolLM3 (Hugging Face blog, 2025) and Llama 4 (Meta blog, 2025) do mix them: every 4th
//! layer has no RoPE.
//!
//! Three tiny SmolLM3 models (4 layers, hidden 64, `no_rope_layers` chooses each layer's
//! encoding), otherwise identical (seed, batches, schedule): RoPE on every layer, RoPE on 3 of 4
//! layers (SmolLM3 and Llama 4's pattern), and NoPE on every layer. They are trained with Muon
//! (as in `optimizers.rs`, learning rate 2e-2), which gets a tiny model to about 4.6 nats in 200
//! updates; with AdamW at the usual 2e-3 they stopped near 5.4 in a trial run, and the three
//! were then within 0.02 nats of each other at every range of positions. Each is trained on windows of 128
//! tokens only, then its next-token loss is measured at every position of 512-token windows of the
//! held-out text: positions 0-127 are what it was trained on, 128-511 are new.
//! `max_position_embeddings` is 512, so RoPE's tables reach every position.
//!
//! Two measurements. The loss by position mixes two things: how far the model reads, and which
//! text happens to sit at those positions (the three curves share their bumps: that is the text).
//! The second takes the text out: the tokens at positions 256-511 are scored twice, once reading
//! the whole window before them (256-511 tokens of context, past training) and once reading only
//! 64-127 tokens before them (windows of 128 tokens sliding by 64, within training). A model that
//! generalised would lose nothing, or gain, from the longer context.
//!
//! What to expect: none of the three breaks down past position 128: the loss by position stays
//! within a few hundredths of a nat of its level before 128. The same-token comparison shows a
//! small cost of the longer context for all three, in every stretch of 32 positions (a few
//! hundredths of a nat): RoPE on every layer loses the most, NoPE on every layer the least,
//! SmolLM3's mix lies between. That is the order Kazemnejad et al. report, in a weak form; with
//! one seed, about 7,700 scored tokens and differences of about 0.01-0.02 nats between the models,
//! read it as a tendency, not a result. The steep rise of RoPE models' loss past their training
//! length reported for larger models, which have learned to use their whole context, does not
//! show at this size.

use llm::config::Family;
use llm::plot::{LineChart, Series};
use llm::tiny::{TinySizes, config_json, fresh_model_from};
use llm::train::pretrain;
use nn::ModuleExt;
use nn::optim::{Muon, MuonScaling, trainable};
use tensor::{DType, Device, Tensor};

mod common;

/// Muon's learning rate (AdamW-matched RMS): ten times the tiny model's usual AdamW rate.
const PEAK_LR: f64 = 2e-2;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("nope", quick)?;
    let cpu = Device::cpu();

    // ## 1. Data and settings: the tiny model's, trained at context 128
    let (_, data) = common::austen_data()?;
    let mut training = common::notebook_training(if quick { 6 } else { 200 }, 20, 8, quick);
    let train_context = if quick { 16 } else { 128 };
    let eval_context = 4 * train_context;
    let bucket = train_context / 4;
    let o = &mut training.options;
    o.seq_len = train_context;
    o.schedule.peak = PEAK_LR;
    let sizes = TinySizes { layers: 4, ..TinySizes::small() };
    // Windows of `eval_context` + 1 tokens from the held-out text (inputs and next tokens).
    let held_out = data.validation_batches(4, eval_context, if quick { 1 } else { 8 }, &cpu)?;
    let windows: usize = held_out.iter().map(|b| b.dims()[0]).sum();
    println!(
        "trained on windows of {train_context} tokens; evaluated on {windows} held-out windows of {eval_context} tokens"
    );

    // ## 2. Three position schemes, everything else equal
    let mut chart = LineChart::new(
        format!("Held-out loss by position, trained at context {train_context}"),
        "position in the window",
        "cross-entropy (nats per token)",
    );
    let mut extra_chart = LineChart::new(
        "Same tokens, long context minus short context",
        "position in the window (context read: all positions before it, or 64-127 of them)",
        "loss difference (nats per token)",
    );
    let mut rows = Vec::new();
    for (label, rope_layers) in [
        ("RoPE on every layer", [1u32, 1, 1, 1]),
        ("RoPE on 3 of 4 (SmolLM3)", [1, 1, 1, 0]),
        ("NoPE on every layer", [0, 0, 0, 0]),
    ] {
        let mut config = config_json(Family::SmolLM3, &sizes)?;
        config["no_rope_layers"] = rope_layers.to_vec().into();
        let (_, model) = fresh_model_from(&config, 0, &cpu)?;
        println!("\n{label}:");
        common::print_layers(&model);
        let params = trainable(model.named_parameters());
        let mut optimizer = Muon::new(params, PEAK_LR, training.weight_decay, MuonScaling::MatchAdamRms);
        let curve = pretrain(&model, &data, &training.options, &mut optimizer, &cpu)?;
        println!(
            "  held-out loss at context {train_context} after training: {:.3} ({:.0} s)",
            curve.final_validation().unwrap_or(f32::NAN),
            curve.seconds
        );
        let by_bucket = loss_by_position(&model, &held_out, bucket)?;
        let mean = |from: usize, to: usize| mean_of(&by_bucket[from / bucket..to / bucket]);
        let long_from = 2 * train_context;
        let short_by_bucket = short_context_loss_by_position(&model, &held_out, train_context, long_from, bucket)?;
        let short = mean_of(&short_by_bucket[long_from / bucket..]);
        let extra: Vec<(f64, f64)> = (long_from / bucket..by_bucket.len())
            .map(|i| ((i * bucket + bucket / 2) as f64, by_bucket[i] - short_by_bucket[i]))
            .collect();
        extra_chart = extra_chart.with(Series::new(label, extra));
        let row = [
            mean(0, train_context),
            mean(0, 2 * train_context),
            mean(0, eval_context),
            mean(2 * train_context, eval_context),
            short,
        ];
        let points = by_bucket.iter().enumerate().map(|(i, &l)| ((i * bucket + bucket / 2) as f64, l)).collect();
        chart = chart.with(Series::new(label, points));
        rows.push((label, row));
    }
    let (low, high) =
        rows.iter().flat_map(|r| r.1).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    chart = chart.with(Series::new(
        format!("end of the training context ({train_context})"),
        vec![(train_context as f64, low - 0.2), (train_context as f64, high + 0.2)],
    ));

    // ## 3. Side by side: mean held-out loss over positions of each window
    // The last two columns score the same tokens (positions 2C..4C-1 of each window, C the
    // training context): once reading the whole window before them, once reading only the
    // 64..127 tokens before them (windows of C tokens sliding by C/2), so the text is the same and
    // only the length of the context differs. Long minus short below zero: the extra context helped.
    let (long_from, end) = (2 * train_context, eval_context - 1);
    println!(
        "\n{:<26} {:>9} {:>9} {:>9} {:>12} {:>12} {:>11}",
        "positions",
        format!("0-{}", train_context - 1),
        format!("0-{}", 2 * train_context - 1),
        format!("0-{end}"),
        format!("{long_from}-{end}"),
        format!("same, ctx {}", train_context),
        "long-short"
    );
    for (label, r) in &rows {
        println!(
            "{label:<26} {:>9.3} {:>9.3} {:>9.3} {:>12.3} {:>12.3} {:>+11.3}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[3] - r[4]
        );
    }
    extra_chart = extra_chart
        .with(Series::new("no difference", vec![((2 * train_context) as f64, 0.0), (eval_context as f64, 0.0)]));
    for path in
        [chart.save_png(out.join("loss_by_position.png"))?, extra_chart.save_png(out.join("long_minus_short.png"))?]
    {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn mean_of(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The mean next-token loss over each stretch of `bucket` positions, over every window of
/// `batches` ([B, T + 1] ids): position p predicts token p + 1 having seen tokens 0..=p.
fn loss_by_position(model: &llm::models::CausalLm, batches: &[Tensor], bucket: usize) -> llm::Result<Vec<f64>> {
    let mut sums: Vec<f64> = Vec::new();
    let mut windows = 0;
    for ids in batches {
        let (b, t) = (ids.dims()[0], ids.dims()[1] - 1);
        let logits = autograd::no_grad(|| model.forward(&ids.narrow(1, 0, t)?, 0, None, false))?.logits;
        let targets = ids.narrow(1, 1, t)?.to_dtype(DType::U32)?;
        let vocab = logits.dims()[2];
        sums.resize(t / bucket, 0.0);
        for (k, sum) in sums.iter_mut().enumerate() {
            let predicted = logits.narrow(1, k * bucket, bucket)?.reshape([b * bucket, vocab])?;
            let wanted = targets.narrow(1, k * bucket, bucket)?.reshape([b * bucket])?;
            let loss = nn::loss::cross_entropy(&predicted, &wanted, None)?;
            *sum += loss.value().to_dtype(DType::F32)?.to_scalar::<f32>()? as f64 * b as f64;
        }
        windows += b;
    }
    Ok(sums.into_iter().map(|s| s / windows as f64).collect())
}

/// Like [`loss_by_position`] for the buckets from position `from` on, but each token read with
/// only the tokens of a `context`-token window before it: windows start every `context / 2`
/// tokens and each scores its second half, so every scored token sees between `context / 2` and
/// `context - 1` earlier tokens, within what the model was trained on. Buckets before `from` are 0.
fn short_context_loss_by_position(
    model: &llm::models::CausalLm,
    batches: &[Tensor],
    context: usize,
    from: usize,
    bucket: usize,
) -> llm::Result<Vec<f64>> {
    let half = context / 2;
    let mut sums: Vec<f64> = Vec::new();
    let mut windows = 0;
    for ids in batches {
        let (b, t) = (ids.dims()[0], ids.dims()[1] - 1);
        sums.resize(t / bucket, 0.0);
        for start in ((from - half)..=(t - context)).step_by(half) {
            let logits = autograd::no_grad(|| model.forward(&ids.narrow(1, start, context)?, 0, None, false))?.logits;
            let vocab = logits.dims()[2];
            for k in (half..context).step_by(bucket) {
                let predicted = logits.narrow(1, k, bucket)?.reshape([b * bucket, vocab])?;
                let wanted = ids.narrow(1, start + k + 1, bucket)?.to_dtype(DType::U32)?.reshape([b * bucket])?;
                let loss = nn::loss::cross_entropy(&predicted, &wanted, None)?;
                sums[(start + k) / bucket] += loss.value().to_dtype(DType::F32)?.to_scalar::<f32>()? as f64 * b as f64;
            }
        }
        windows += b;
    }
    Ok(sums.into_iter().map(|s| s / windows as f64).collect())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
