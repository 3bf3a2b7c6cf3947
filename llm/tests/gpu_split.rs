//! A model whose embedding table and LM head are larger than one GPU storage binding: this
//! process lowers the binding limit to 1 MiB (`LLM_GPU_MAX_BINDING_MIB`), and a tiny Qwen3 with
//! a 20000-token vocabulary (a 5 MB f32 table, 2.5 MB in bf16) must greedily generate the same
//! tokens on the GPU as on the CPU, tied and untied, in f32 and bf16: the embedding lookup and
//! the head's product run a window of rows at a time (`gpu/src/split.rs`), as an 8B model's
//! 2 GB table does on an adapter with a smaller limit. Skipped where there is no adapter.

use llm::config::Family;
use llm::generate::{StopAt, generate};
use llm::models::CausalLm;
use llm::sample::Sampling;
use llm::tiny::{TinySizes, config_json, fresh_model_from};
use nn::ModuleExt;
use tensor::testing::assert_close;
use tensor::{DType, Device, Tensor};

const VOCAB: usize = 20_000;

/// The GPU with its binding limit lowered to 1 MiB for this whole process.
fn gpu() -> Option<Device> {
    // The CPU side multiplies f32 activations exactly, as the GPU does (no bf16 dot products).
    tensor::cpu::isa::force_bf16_gemm(Some(false));
    gpu::test_device_with_binding_limit(1)
}

/// A fresh tiny Qwen3 (the same weights every call) on `device`, its parameters in `dtype`.
fn model(tied: bool, dtype: DType, device: &Device) -> llm::Result<CausalLm> {
    let sizes = TinySizes { vocab_size: VOCAB, ..TinySizes::small() };
    let mut config = config_json(Family::Qwen3, &sizes)?;
    config["tie_word_embeddings"] = tied.into();
    // Wide weights make the logits far apart, so the CPU's and the GPU's sums (in different
    // orders) pick the same token.
    config["initializer_range"] = 0.5.into();
    let (_, model) = fresh_model_from(&config, 11, &Device::cpu())?;
    let table = model.named_parameters().into_iter().find(|(name, _)| name.contains("embed_tokens"));
    let (_, table) = table.expect("an embedding table");
    assert!(table.elem_count() * dtype.size_in_bytes() > 2 << 20, "the table must exceed the limit");
    model.to_dtype(dtype)?;
    model.to_device(device)?;
    Ok(model)
}

#[test]
fn a_model_whose_embedding_and_head_exceed_the_binding_limit_decodes_as_on_the_cpu() -> llm::Result<()> {
    let Some(g) = gpu() else {
        println!("note: no GPU adapter; split embeddings were not exercised");
        return Ok(());
    };
    let prompt = [1u32, 19_999, 12_345, 7, 10_001];
    for tied in [true, false] {
        for dtype in [DType::F32, DType::BF16] {
            let (on_cpu, on_gpu) = (model(tied, dtype, &Device::cpu())?, model(tied, dtype, &g)?);
            // The whole prompt's logits: the head's tiled product, one window of rows at a time.
            let ids = Tensor::from_vec(prompt.to_vec(), [1, prompt.len()], &Device::cpu())?;
            let want = on_cpu.forward(&ids, 0, None, false)?.logits.value();
            let got = on_gpu.forward(&ids.to(&g)?, 0, None, false)?.logits.value().to(&Device::cpu())?;
            assert_close(&got, &want, 1e-3, 1e-3)
                .map_err(|e| llm::Error::input(format!("tied {tied}, {dtype}: {e}")))?;
            // Cached decoding: the lookup of each new token and the head's matrix-vector product.
            let decode = |m: &CausalLm, d: &Device| {
                generate(m, &prompt, 12, Sampling::greedy(), &StopAt::default(), d, |_| Ok(()))
            };
            let tokens = decode(&on_gpu, &g)?;
            assert_eq!(tokens, decode(&on_cpu, &Device::cpu())?, "tied {tied}, {dtype}");
            eprintln!("tied {tied}, {dtype}: {tokens:?}");
        }
    }
    Ok(())
}
