//! # MuonClip: QK-Clip at work
//!
//! Run it: `cargo run --release --example qk_clip` (under a minute on two CPU cores: two
//! trainings of a 0.3M-parameter model, 150 updates of 8 x 128 tokens each).
//! Picture: `target/examples-out/qk_clip/max_logit.png`, the largest attention logit of each
//! update with and without the clip, the threshold, and a tick at every update after which the
//! clip fired.
//!
//! The question: what does MuonClip's QK-Clip (Kimi K2, arXiv 2507.20534, section 2.1 and
//! Algorithm 1) do to a training run? Moonshot found that with Muon the attention logits of a
//! large run can grow until training breaks. QK-Clip watches each head's largest logit
//! `S = max q . k / sqrt(d)` in the step's forward pass; after the Muon update, a head whose `S`
//! exceeded the threshold tau has its query and key weights rescaled so that its logit on that
//! batch comes back to tau (`gamma = tau / S`; here two query heads share each key head, so the
//! query rows take the whole `gamma`, as K2's rotary query does for MLA's shared rotary key). The
//! update rule itself is not changed, and a head below tau is never touched.
//!
//! Kimi K2 uses tau = 100, a logit this tiny model does not reach in a few hundred updates at
//! its usual learning rate (`optimizers.rs` runs MuonClip at tau = 100 and the clip never fires
//! there). To see the mechanism, this run lowers tau to 8 and raises the learning rate to 6e-2
//! (thirty times the tiny model's usual 2e-3), on the layer without QK-norm (the pre-norm layer
//! of `norm_placement.rs`, OLMo 2's model with both switches off; K2's attention has no QK-norm
//! either). The same model, seed and batches are trained twice: Muon alone, and MuonClip.
//!
//! What to expect: without the clip the largest logit climbs past tau to about four times tau
//! and stays well above it. With the clip it follows the same path until it first exceeds tau,
//! then stays just above tau: each forward pass measures the weights after the previous clip
//! plus one more update, so the logit it sees overshoots tau by what one update adds, and the
//! clip fires after nearly every update from then on. The held-out losses of the two runs end
//! within a few thousandths of a nat of each other: bounding the logits did not cost learning
//! here, as K2 reports at scale.

use llm::config::Family;
use llm::plot::{LineChart, Series};
use llm::tiny::{TinySizes, config_json, fresh_model_from};
use llm::train::{WarmupCosine, pretrain};
use nn::ModuleExt;
use nn::optim::{Muon, MuonClip, MuonScaling, Optimizer, trainable};
use tensor::Device;

mod common;

/// The clip threshold: K2's 100 scaled down to what this tiny model's logits reach.
const TAU: f64 = 8.0;
/// Ten times the tiny model's usual peak learning rate.
const PEAK_LR: f64 = 6e-2;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("qk_clip", quick)?;
    let cpu = Device::cpu();

    // ## 1. Data and settings
    let (_, data) = common::austen_data()?;
    let steps = if quick { 6 } else { 150 };
    let mut training = common::notebook_training(steps, 25, 4, quick);
    let o = &mut training.options;
    o.schedule = WarmupCosine { peak: PEAK_LR, warmup: (steps / 20).max(1), total: steps, floor: 0.1 };
    // Muon alone does not record logits; the curve should show them for both runs.
    o.watch_attention_logits = true;
    let sizes = TinySizes::small();
    let mut config = config_json(Family::Olmo2, &sizes)?;
    config["reordered_norm"] = false.into();
    config["qk_norm"] = false.into();
    let wd = training.weight_decay;

    // ## 2. Muon, then MuonClip, from the same initialisation and the same batches
    let mut chart = LineChart::new(
        format!("Largest attention logit per update, Muon vs MuonClip (tau = {TAU})"),
        "update step",
        "max over heads and layers of q.k / sqrt(d)",
    );
    let mut rows = Vec::new();
    let mut fired = None;
    for clip in [false, true] {
        let name = if clip { "MuonClip" } else { "Muon" };
        let (_, model) = fresh_model_from(&config, 0, &cpu)?;
        let params = trainable(model.named_parameters());
        let mut optimizer: Box<dyn Optimizer> = if clip {
            let mut muon_clip = MuonClip::new(params, PEAK_LR, wd);
            muon_clip.tau = TAU;
            Box::new(muon_clip)
        } else {
            Box::new(Muon::new(params, PEAK_LR, wd, MuonScaling::MatchAdamRms))
        };
        println!("\n{name}, peak learning rate {PEAK_LR}, weight decay {wd}:");
        let curve = pretrain(&model, &data, &training.options, optimizer.as_mut(), &cpu)?;
        let logits: Vec<(f64, f64)> = curve.max_attention_logit.iter().map(|&(s, m)| (s as f64, m)).collect();
        // The clip acts after exactly the updates whose forward pass saw a logit above tau.
        let over: Vec<usize> = curve.max_attention_logit.iter().filter(|p| p.1 > TAU).map(|p| p.0).collect();
        let first_over = over.first().map_or("never".to_string(), |s| format!("update {s}"));
        let largest = logits.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let last = logits.last().map_or(f64::NAN, |p| p.1);
        let val = curve.final_validation().unwrap_or(f32::NAN);
        println!(
            "  logit above tau in {} of {steps} updates (first: {first_over}); largest {largest:.2}, last {last:.2}; held-out loss {val:.3}",
            over.len()
        );
        chart = chart.with(Series::new(name, logits));
        if clip {
            println!("  QK-Clip fired after updates {over:?}");
            // A tick rising from the x axis at every update after which the clip fired.
            let ticks = over.iter().flat_map(|&s| [(s as f64, 0.0), (s as f64, TAU / 4.0), (s as f64, 0.0)]).collect();
            fired = Some(Series::new("QK-Clip fired (a tick per update)", ticks));
        }
        rows.push((name, over.len(), largest, last, val));
    }
    chart = chart.with(Series::new(format!("tau = {TAU}"), vec![(0.0, TAU), ((steps - 1) as f64, TAU)]));
    if let Some(ticks) = fired {
        chart = chart.with(ticks);
    }

    // ## 3. Side by side
    println!("\n{:<9} {:>10} {:>11} {:>10} {:>9}", "optimizer", "above tau", "max logit", "last", "held-out");
    for (name, over, largest, last, val) in &rows {
        println!("{name:<9} {over:>10} {largest:>11.2} {last:>10.2} {val:>9.3}");
    }
    let path = chart.save_png(out.join("max_logit.png"))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
