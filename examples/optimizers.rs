//! # AdamW and MuonClip on the same tiny model
//!
//! Run it: `cargo run --release --example optimizers` (a few minutes on two CPU cores:
//! two trainings of a 0.3M-parameter model, 200 updates of 8 x 128 tokens each).
//! Picture: `target/examples-out/optimizers/loss.png`, both loss curves together.
//!
//! - **AdamW** (Loshchilov & Hutter 2019): per-element adaptive steps, decoupled weight decay;
//!   what nearly every model here was pre-trained with.
//! - **Muon** (Jordan et al. 2024; scaled up in Moonlight, arXiv 2502.16982): for each hidden
//!   weight matrix the momentum is orthogonalised by five Newton-Schulz iterations, so the update
//!   moves all singular directions equally. Embeddings, the output head and norm vectors are not
//!   hidden matrices and stay with AdamW. With Moonlight's scaling (`0.2 * sqrt(max(rows,
//!   cols))`) the update has AdamW's RMS, so AdamW's learning rate and weight decay carry over.
//! - **MuonClip** (Kimi K2, arXiv 2507.20534): Muon plus QK-Clip. After each update, any head
//!   whose largest attention logit in that step exceeded tau = 100 has its logits brought back to
//!   tau by rescaling its weights: the query and key projections each by `sqrt(tau / max)`, so
//!   their product shrinks by `tau / max` (where a key head is shared by several query heads, as
//!   in GQA, the query rows alone take the whole `tau / max`). The update rule is unchanged.
//!
//! What to expect: both learn; Muon usually reaches a lower loss in the same number of updates
//! (each update costs a little more: the Newton-Schulz matmuls). At 200 updates of a tiny model
//! the logits never approach 100, so QK-Clip stays idle here (`qk_clip.rs` lowers tau and raises
//! the learning rate until it fires); the curves are indicative only.

use llm::config::Family;
use llm::plot::{LineChart, Series};
use llm::tiny::{TinySizes, fresh_model};
use llm::train::pretrain;
use nn::ModuleExt;
use nn::optim::{AdamW, MuonClip, Optimizer, trainable};
use tensor::Device;

mod common;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("optimizers", quick)?;
    let cpu = Device::cpu();

    // ## 1. Data and settings: those of the shipped tiny model, shortened
    let (_, data) = common::austen_data()?;
    let training = common::notebook_training(if quick { 6 } else { 200 }, 20, 8, quick);
    let sizes = TinySizes::small();
    let (lr, wd) = (training.options.schedule.peak, training.weight_decay);

    // ## 2. Who updates what
    // `Muon::new` splits the parameters: rank >= 2 and not the embedding or head -> Muon.
    let (_, probe) = fresh_model(Family::Qwen3, &sizes, 0, &cpu)?;
    let muon = MuonClip::new(trainable(probe.named_parameters()), lr, wd);
    let to_muon = muon.muon.matrix_names();
    println!("Muon updates {} matrices, e.g.:", to_muon.len());
    for name in to_muon.iter().take(7) {
        println!("  {name}");
    }
    let to_adamw: Vec<String> = muon.muon.adamw.parameters().map(|(n, _)| n.clone()).collect();
    println!("AdamW keeps {} tensors: {:?}", to_adamw.len(), &to_adamw[..to_adamw.len().min(5)]);
    println!("QK-Clip threshold tau = {}", muon.tau);

    // ## 3. Train twice from the same initialisation and the same batches
    let mut chart =
        LineChart::new("AdamW vs MuonClip, same model and data", "update step", "cross-entropy (nats per token)");
    let mut rows = Vec::new();
    for name in ["AdamW", "MuonClip"] {
        let (_, model) = fresh_model(Family::Qwen3, &sizes, 0, &cpu)?;
        let params = trainable(model.named_parameters());
        let mut optimizer: Box<dyn Optimizer> = match name {
            "AdamW" => Box::new(AdamW::with(params, lr, training.betas, 1e-8, wd)),
            _ => Box::new(MuonClip::new(params, lr, wd)),
        };
        println!("\n{name}, peak learning rate {lr}, weight decay {wd}:");
        let curve = pretrain(&model, &data, &training.options, optimizer.as_mut(), &cpu)?;
        let train = curve.smoothed_train(10).last().map_or(f64::NAN, |p| p.1);
        let val = curve.final_validation().unwrap_or(f32::NAN);
        println!("  final train loss (mean of last 10) {train:.3}, held-out {val:.3}, {:.1} s", curve.seconds);
        chart = chart
            .with(Series::new(format!("{name}, held-out"), curve.validation_points()))
            .with(Series::new(format!("{name}, training batches (10-step mean)"), curve.smoothed_train(10)));
        rows.push((name, train, val, curve.seconds));
    }

    println!("\n{:<10} {:>8} {:>9} {:>8}", "optimizer", "train", "held-out", "seconds");
    for (name, train, val, s) in &rows {
        println!("{name:<10} {train:>8.3} {val:>9.3} {s:>8.1}");
    }
    let path = chart.save_png(out.join("loss.png"))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
