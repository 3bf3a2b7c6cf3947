//! # OLMo 2: norms after the blocks, and QK-norm over the whole projection
//!
//! Run it: `cargo run --release --example olmo2`
//!
//! OLMo 2 (Team OLMo, arXiv 2501.00656, in its section on training stability) changed two things in a plain
//! Llama-style decoder, both to stop loss spikes in long runs:
//! - **where the norm sits.** Pre-norm computes `x + f(norm(x))`. OLMo 2 removes the input norm
//!   and normalises each block's *output* inside the residual: `x + norm(f(x))`. The residual
//!   stream itself is never normalised, but what each block adds to it is bounded.
//! - **QK-norm over the whole projection.** An RMSNorm over all of `q_proj(x)` (4096 numbers
//!   for the 7B) and `k_proj(x)`, before splitting into heads and before RoPE. Qwen3 and Gemma 3
//!   instead normalise each head separately.
//!
//! Numbers from `llm/configs/olmo-2-7b.json`; the wiring runs on the tiny checkpoint.

use autograd::Var;
use llm::anatomy::Anatomy;
use nn::{Init, RmsNorm};
use tensor::{DType, Device, Rng, Tensor};

mod common;

fn main() -> llm::Result<()> {
    let cpu = Device::cpu();

    // ## 1. The 7B
    let c = common::real_config("olmo-2-7b.json")?;
    let a = Anatomy::of(&c);
    common::print_anatomy("OLMo-2-7B", &a);
    println!(
        "  q_norm weight: {} numbers (heads x head_dim = {} x {}), k_norm: {}; per-head QK-norm would have {}",
        c.num_attention_heads * c.head_dim,
        c.num_attention_heads,
        c.head_dim,
        c.num_key_value_heads * c.head_dim,
        c.head_dim
    );

    // ## 2. The block wiring
    println!("\npre-norm (Llama, Qwen3):      h = x + attn(norm(x));   out = h + mlp(norm(h))");
    println!("post-norm (OLMo 2):           h = x + norm(attn(x));   out = h + norm(mlp(h))");
    let loaded = common::run_fixture("olmo2")?;
    common::print_layers(&loaded.model);
    for (name, p) in nn::ModuleExt::named_parameters(&loaded.model.layers[0]) {
        println!("  layers.0.{name:<34} {:?}", p.dims());
    }

    // ## 3. Whole-projection vs per-head QK-norm
    // Give one head of a query 10x the scale of the others. A per-head norm rescales every head
    // to RMS 1: the loud head loses its loudness. The whole-projection norm divides all heads
    // by one shared RMS: heads keep their relative sizes, and the sum is what is bounded.
    let (heads, hd) = (4, 8);
    let mut rng = Rng::new(0);
    let q = Tensor::randn(0.0, 1.0, [heads, hd], DType::F32, &mut rng, &cpu)?;
    let loud = Tensor::from_vec(vec![10.0f32, 1.0, 1.0, 1.0], [heads, 1], &cpu)?;
    let q = q.mul(&loud)?;
    let mut init = Init::new(0, &cpu);
    let whole = RmsNorm::new(heads * hd, 1e-6, &mut init)?.forward(&Var::constant(q.reshape([1, heads * hd])?))?;
    let per_head = RmsNorm::new(hd, 1e-6, &mut init)?.forward(&Var::constant(q.clone()))?;
    let rms = |t: &Tensor| -> llm::Result<Vec<String>> {
        let r: Vec<f32> = t.reshape([heads, hd])?.sqr()?.mean(-1, false)?.sqrt()?.to_vec()?;
        Ok(r.iter().map(|v| format!("{v:.2}")).collect())
    };
    println!("\nRMS of each head of a query whose head 0 is 10x louder:");
    println!("  before:                  {:?}", rms(&q)?);
    println!("  whole projection (OLMo): {:?}", rms(&whole.value())?);
    println!("  per head (Qwen3, Gemma): {:?}", rms(&per_head.value())?);
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    main()
}
