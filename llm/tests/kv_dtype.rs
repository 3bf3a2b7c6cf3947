//! A KV cache kept in f16 or bf16 (`--kv-dtype`, `CausalLm::kv_dtype`): decoding token by token
//! with it stays the same model as with the f32 cache, on the CPU and on the GPU, for standard
//! attention with GQA (qwen3), sliding-window layers (gemma3) and MLA's latent cache
//! (deepseek_v3). Bounds: the f16 cache rounds each key and value by up to 2^-11 relative, bf16
//! by 2^-8; through these random-init fixtures that moves logits by well under 1% (f16) and 3%
//! (bf16) of their largest value, with the same greedy token at nearly every position. The GPU
//! against the CPU with the same half cache: each device computes the rows with its own f32
//! sums before they are rounded, so an entry near a rounding boundary can land one half-precision
//! step apart; measured up to 2e-4 of the spread (deepseek_v3's latent, f16), bound 1e-3.

use llm::models::{LoadOptions, load};
use llm::weights::Checkpoint;
use tensor::testing::max_abs_diff;
use tensor::{DType, Device, Tensor};

mod common;
use common::{fixture, top1_agreement};

/// The logits of decoding `ids` [1, T] one position at a time with the model's caches.
fn decode(name: &str, kv: Option<DType>, device: &Device, ids: &Tensor) -> llm::Result<Tensor> {
    let mut loaded = load(&fixture(name), &LoadOptions::f32(device))?;
    loaded.model.kv_dtype = kv;
    let ids = ids.to(device)?;
    autograd::no_grad(|| {
        let mut caches = loaded.model.new_caches();
        let mut rows = Vec::new();
        for p in 0..ids.dims()[1] {
            let id = ids.narrow(1, p, 1)?;
            rows.push(loaded.model.forward_last(&id, p, Some(&mut caches))?.value().to(&Device::cpu())?);
        }
        Ok(Tensor::cat(&rows.iter().collect::<Vec<_>>(), 1)?)
    })
}

#[test]
fn half_precision_caches_decode_the_same_model() -> llm::Result<()> {
    let cpu = Device::cpu();
    let gpu = gpu::test_device();
    for name in ["qwen3", "gemma3", "deepseek_v3"] {
        let ids = Checkpoint::open(&fixture(name).join("reference.safetensors"))?.load(
            "input_ids",
            Some(DType::U32),
            &cpu,
        )?;
        let ids = ids.narrow(0, 0, 1)?;
        let exact = decode(name, None, &cpu, &ids)?;
        let spread = exact.abs()?.max_all()?.to_scalar::<f32>()? as f64;
        for (kv, bound) in [(DType::F16, 0.01), (DType::BF16, 0.03)] {
            let half = decode(name, Some(kv), &cpu, &ids)?;
            let diff = max_abs_diff(&half, &exact)?;
            assert!(diff <= bound * spread, "{name} {kv} cache on the CPU: logits moved {diff:.2e} of {spread:.2}");
            assert!(top1_agreement(&half, &exact) >= 0.9, "{name} {kv} cache: greedy tokens changed");
            if let Some(g) = &gpu {
                let on_gpu = decode(name, Some(kv), g, &ids)?;
                let diff = max_abs_diff(&on_gpu, &half)?;
                assert!(diff <= 1e-3 * spread, "{name} {kv} cache, GPU against CPU: {diff:.2e} of {spread:.2}");
            }
        }
    }
    Ok(())
}
