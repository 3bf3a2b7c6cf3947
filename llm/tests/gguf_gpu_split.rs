//! A GGUF model whose block-quantized embedding table and LM head are larger than one GPU
//! storage binding: this process lowers the binding limit to 1 MiB (`LLM_GPU_MAX_BINDING_MIB`),
//! and tiny Qwen3s with a 20000-token vocabulary, written as Q8_0 (tied and untied), Q4_0 and
//! Q4_K_M (a Q4_K table and a Q6_K head), must give the logits and greedily generate the tokens of
//! the same file decoded on the CPU: the table's row gather and the head's products run a
//! window of rows at a time (`gpu/src/split.rs`), as a Q8_0 8B model's 558 MB table does on
//! lavapipe. Skipped where there is no adapter.

use llm::config::Family;
use llm::generate::{StopAt, generate};
use llm::gguf::{FileType, write_gguf};
use llm::models::{LoadOptions, load};
use llm::sample::Sampling;
use llm::tiny::{TinySizes, config_json, fresh_model_from};
use nn::Module;
use tensor::testing::assert_close;
use tensor::{Device, Tensor};

mod common;
use common::tempdir;

const VOCAB: usize = 20_000;

/// The GPU with its binding limit lowered to 1 MiB for this whole process.
fn gpu() -> Option<Device> {
    // The CPU side multiplies f32 activations exactly, as the GPU does (no bf16 dot products).
    tensor::cpu::isa::force_bf16_gemm(Some(false));
    gpu::test_device_with_binding_limit(1)
}

#[test]
fn a_gguf_model_whose_quantized_table_and_head_exceed_the_binding_limit_decodes_as_on_the_cpu() -> llm::Result<()> {
    let Some(g) = gpu() else {
        println!("note: no GPU adapter; split quantized embeddings were not exercised");
        return Ok(());
    };
    let tmp = tempdir("gguf-gpu-split");
    // Ten prompt tokens: the full pass's head takes the tiled kernel, decoding the matrix-vector.
    let prompt = [1u32, 19_999, 12_345, 7, 10_001, 3, 15_000, 42, 8_191, 19_998];
    for (file_type, tied, hidden) in [
        (FileType::Q8_0, true, 128),
        (FileType::Q8_0, false, 128),
        (FileType::Q4_0, false, 192),
        (FileType::Q4KM, false, 256),
    ] {
        let what = format!("{file_type:?}, tied {tied}");
        let sizes = TinySizes { vocab_size: VOCAB, hidden_size: hidden, ..TinySizes::small() };
        let mut config = config_json(Family::Qwen3, &sizes)?;
        config["tie_word_embeddings"] = tied.into();
        // Wide weights make the logits far apart, so the CPU's and the GPU's sums (in different
        // orders) pick the same token.
        config["initializer_range"] = 0.5.into();
        let (config, model) = fresh_model_from(&config, 11, &Device::cpu())?;
        let path = tmp.join(format!("qwen3-{file_type:?}-{tied}.gguf"));
        write_gguf(&model, &config, None, "qwen3", file_type, &path)?;
        let decoded = load(&path, &LoadOptions::cpu())?;
        let on_gpu = load(&path, &LoadOptions { device: g.clone(), weight_dtype: None })?;
        let mut largest = 0;
        on_gpu.model.visit_packed("", &mut |_, slot| {
            largest = largest.max(slot.device().map_or(0, |q| q.device_bytes()));
        });
        assert!(largest > 3 << 19, "{what}: the largest matrix kept as blocks ({largest} bytes) must be split");

        let ids = Tensor::from_vec(prompt.to_vec(), [1, prompt.len()], &Device::cpu())?;
        let (want, got) = autograd::no_grad(|| {
            let want = decoded.model.forward(&ids, 0, None, false)?.logits.value();
            let got = on_gpu.model.forward(&ids.to(&g)?, 0, None, false)?.logits.value().to(&Device::cpu())?;
            Ok::<_, llm::Error>((want, got))
        })?;
        let spread = want.abs()?.max_all()?.to_scalar::<f32>()? as f64;
        assert_close(&got, &want, 1e-4 * spread, 0.0).map_err(|e| llm::Error::input(format!("{what}: {e}")))?;
        let decode = |m: &llm::models::CausalLm, d: &Device| {
            generate(m, &prompt, 12, Sampling::greedy(), &StopAt::default(), d, |_| Ok(()))
        };
        let tokens = decode(&on_gpu.model, &g)?;
        assert_eq!(tokens, decode(&decoded.model, &Device::cpu())?, "{what}");
    }
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}
