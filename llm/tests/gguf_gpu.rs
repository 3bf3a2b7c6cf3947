//! GGUF weights kept as blocks on the GPU (`DeviceQMatrix`: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, and
//! Q4_K + Q6_K for Q4_K_M) against the same file decoded to f32 on the CPU (`LoadOptions::cpu()`). The GPU
//! kernels decode the very values the CPU decoder gives and multiply f32 activations (no
//! activation quantization), so a full-sequence pass and a token-by-token decode with the KV
//! cache must match the decoded model to f32 summation noise: 1e-4 of the logits' spread. That
//! pins every device-packed tensor to its place: rows, llama's q/k permutation (mistral), the
//! embedding table gathered from blocks and, where tied (qwen3), used as the head, the attention
//! of a MoE model whose experts are decoded (qwen3_moe).

use std::path::Path;

use llm::gguf::{FileType, write_gguf};
use llm::models::{LoadOptions, Loaded, load};
use nn::Module;
use tensor::testing::max_abs_diff;
use tensor::{Device, Tensor};

mod common;
use common::{fixture, fixture_gguf, tempdir};

/// Full-sequence logits, and the logits of decoding the same ids one position at a time.
fn logits(loaded: &Loaded, ids: &Tensor, device: &Device) -> llm::Result<(Tensor, Tensor)> {
    let ids = ids.to(device)?;
    autograd::no_grad(|| {
        let full = loaded.model.forward(&ids, 0, None, false)?.logits.value().to(&Device::cpu())?;
        let mut caches = loaded.model.new_caches();
        let mut rows = Vec::new();
        for p in 0..ids.dims()[1] {
            let id = ids.narrow(1, p, 1)?;
            rows.push(loaded.model.forward_last(&id, p, Some(&mut caches))?.value().to(&Device::cpu())?);
        }
        let steps = Tensor::cat(&rows.iter().collect::<Vec<_>>(), 1)?;
        Ok((full, steps))
    })
}

/// Writes `name`'s fixture as `file_type` and compares.
fn compare_fixture(name: &str, file_type: FileType, gpu: &Device, tmp: &Path) -> llm::Result<()> {
    let (ids, path) = fixture_gguf(name, file_type, tmp)?;
    compare(name, file_type, &path, &ids, gpu)
}

/// The GGUF file at `path` on the GPU against its decoding on the CPU, on the ids [B, T].
fn compare(name: &str, file_type: FileType, path: &Path, ids: &Tensor, gpu: &Device) -> llm::Result<()> {
    let decoded = load(path, &LoadOptions::cpu())?;
    let on_gpu = load(path, &LoadOptions { device: gpu.clone(), weight_dtype: None })?;
    let mut blocks = 0;
    on_gpu.model.visit_packed("", &mut |_, slot| blocks += slot.device().is_some() as usize);
    assert!(
        blocks >= 4 * on_gpu.config.num_hidden_layers,
        "{name} {file_type:?}: only {blocks} matrices kept as blocks"
    );
    let (want_full, want_steps) = logits(&decoded, ids, &Device::cpu())?;
    let (got_full, got_steps) = logits(&on_gpu, ids, gpu)?;
    let spread = want_full.abs()?.max_all()?.to_scalar::<f32>()? as f64;
    for (what, got, want) in [("full pass", &got_full, &want_full), ("decode", &got_steps, &want_steps)] {
        let diff = max_abs_diff(got, want)?;
        assert!(diff <= 1e-4 * spread, "{name} {file_type:?} {what}: differs by {diff:.2e} (logits up to {spread:.2})");
    }
    Ok(())
}

#[test]
fn gguf_blocks_on_the_gpu_match_the_decoded_model() -> llm::Result<()> {
    let Some(gpu) = gpu::test_device() else { return Ok(()) };
    tensor::cpu::isa::force_bf16_gemm(Some(false));
    let tmp = tempdir("gguf-gpu");
    for name in ["qwen3", "mistral_small", "qwen3_moe"] {
        for file_type in [FileType::Q8_0, FileType::Q4_0, FileType::Q4_1, FileType::Q5_0, FileType::Q5_1] {
            compare_fixture(name, file_type, &gpu, &tmp)?;
        }
    }
    // Q4_K_M needs rows of whole 256-weight blocks: a wider tiny Mistral (untied head, so the
    // head is Q6_K and the table Q4_K; llama's q/k permutation on Q4_K rows).
    let sizes = llm::tiny::TinySizes {
        hidden_size: 256,
        layers: 4,
        heads: 4,
        kv_heads: 2,
        intermediate_size: 512,
        ..Default::default()
    };
    let mut config = llm::tiny::config_json(llm::config::Family::Mistral, &sizes)?;
    config["tie_word_embeddings"] = false.into();
    let (config, model) = llm::tiny::fresh_model_from(&config, 3, &Device::cpu())?;
    let path = tmp.join("mistral-q4_k_m.gguf");
    write_gguf(&model, &config, None, "mistral", FileType::Q4KM, &path)?;
    let ids: Vec<u32> = (0..12u32).map(|i| (i * 397 + 11) % sizes.vocab_size as u32).collect();
    let ids = Tensor::from_vec(ids, [1, 12], &Device::cpu())?;
    compare("wide mistral", FileType::Q4KM, &path, &ids, &gpu)?;
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}

#[test]
fn a_model_with_blocks_on_the_gpu_refuses_to_record_gradients() -> llm::Result<()> {
    let Some(gpu) = gpu::test_device() else { return Ok(()) };
    let dir = fixture("qwen3");
    let source = load(&dir, &LoadOptions::cpu())?;
    let path = tempdir("gguf-gpu-grad").join("q8.gguf");
    write_gguf(&source.model, &source.config, None, "qwen3", FileType::Q8_0, &path)?;
    let loaded = load(&path, &LoadOptions { device: gpu.clone(), weight_dtype: None })?;
    let ids = Tensor::from_vec(vec![1u32, 2, 3], [1, 3], &gpu)?;
    let Err(err) = loaded.model.forward(&ids, 0, None, false) else { panic!("a gradient-recording pass is refused") };
    assert!(err.to_string().contains("block-quantized"), "{err}");
    Ok(())
}
