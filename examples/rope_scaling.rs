//! # Stretching RoPE to longer contexts: linear, Llama 3 and YaRN schedules
//!
//! Run it: `cargo run --release --example rope_scaling`
//! Picture: `target/examples-out/rope_scaling/frequencies.png`, the wavelength (positions per
//! full turn, 2 pi / frequency) of each dimension pair under the four schedules (log y).
//!
//! RoPE (Su et al., arXiv 2104.09864) rotates pair i of each query and key by the angle
//! `p * theta^(-2i/d)` at position p. A model trained on `original_max_position_embeddings`
//! positions has never seen the slow pairs turn further than that; to use a longer context
//! the frequencies are rescaled (`rope_scaling` in config.json, `nn::rope::RopeScaling`):
//! - **linear** (position interpolation, Chen et al., arXiv 2306.15595): every frequency / factor.
//!   Gemma 3 does this on its global layers (factor 8).
//! - **llama3** (Llama 3.1; Llama 4 Scout): pairs whose wavelength exceeds
//!   `original / low_freq_factor` are divided by the factor, those shorter than
//!   `original / high_freq_factor` kept, a smooth blend between. Fast pairs, which encode local
//!   order, stay exactly as trained.
//! - **yarn** (Peng et al., arXiv 2309.00071; DeepSeek-V3, Kimi K2): the same idea with the band
//!   set by how many turns a pair makes over the original context (`beta_fast`, `beta_slow`),
//!   plus an attention temperature (`mscale`).
//!
//! All four here use one head of 128 dims, theta 500000, factor 8 over 8192 original positions,
//! so only the schedule differs.

use llm::plot::{LineChart, Series};
use nn::rope::{Rope, RopeScaling, yarn_get_mscale};

mod common;

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("rope_scaling", quick)?;
    let (dim, theta, factor, original) = (128, 500_000.0, 8.0, 8192.0);
    let schedules = [
        ("default (no scaling)", RopeScaling::None),
        ("linear, factor 8", RopeScaling::Linear { factor }),
        (
            "llama3, factor 8, low 1, high 4",
            RopeScaling::Llama3 {
                factor,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: original,
            },
        ),
        (
            "yarn, factor 8, beta_fast 32, beta_slow 1",
            RopeScaling::Yarn {
                factor,
                beta_fast: 32.0,
                beta_slow: 1.0,
                mscale: 1.0,
                mscale_all_dim: 0.0,
                original_max_position_embeddings: original,
                truncate: true,
            },
        ),
    ];
    let mut chart = LineChart::new(
        "RoPE wavelength per dimension pair (d = 128, theta 5e5, 8x context)",
        "dimension pair i",
        "positions per full turn (2 pi / frequency)",
    )
    .log_y();
    let base = Rope::new(dim, theta, &RopeScaling::None, false);
    for (name, scaling) in &schedules {
        let rope = Rope::new(dim, theta, scaling, false);
        // Which pairs were changed, and by how much at most.
        let changed: Vec<usize> =
            (0..rope.inv_freq.len()).filter(|&i| (rope.inv_freq[i] / base.inv_freq[i] - 1.0).abs() > 1e-9).collect();
        let kept_fast = changed.first().copied().unwrap_or(rope.inv_freq.len());
        let kept = if kept_fast == 0 { "none".to_string() } else { format!("0..{kept_fast}") };
        println!(
            "{name:<42}: pairs kept {kept:<6} {:>2} rescaled; slowest wavelength {:.3e} positions; cos/sin scale {:.4}",
            changed.len(),
            2.0 * std::f64::consts::PI / rope.inv_freq.last().copied().unwrap_or(1.0),
            rope.attention_factor
        );
        let wavelengths = rope.inv_freq.iter().enumerate().map(|(i, &f)| (i as f64, 2.0 * std::f64::consts::PI / f));
        chart = chart.with(Series::new(*name, wavelengths.collect()));
    }
    // The wavelength that decides "slow": a pair that does not finish a turn within the original
    // context never showed the model a full cycle, so it is the one that must be interpolated.
    if let Some(first) = base.inv_freq.iter().position(|&f| 2.0 * std::f64::consts::PI / f > original) {
        println!("pairs {first}..{} turn less than once in the original {original} positions", base.inv_freq.len());
    }
    // YaRN also sharpens attention at long range: DeepSeek-V3 multiplies its softmax scale by
    // mscale^2 with mscale = 0.1 ln(factor) + 1.
    for f in [8.0, 32.0, 40.0] {
        let m = yarn_get_mscale(f, 1.0);
        println!("YaRN factor {f:>4}: mscale {m:.4}, mscale^2 {:.4}", m * m);
    }
    let pairs = base.inv_freq.len() as f64;
    chart = chart.with(Series::new("original context (8192)", vec![(0.0, original), (pairs - 1.0, original)]));
    let path = chart.save_png(out.join("frequencies.png"))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}
