//! `--quantize q8_0|q4_0` (`llm::models::load_quantized`, each matrix quantized as it is read;
//! `llm::models::pack::quantize_weights` on a loaded model): a safetensors checkpoint whose
//! matrices are quantized at load computes exactly what the GGUF file of that type, written from
//! the same checkpoint, computes: the same ggml quantizer makes the same blocks, in the same
//! slots, multiplied by the same kernels. On the CPU (packed `QMatrix`es, routed experts one per
//! expert) and on the GPU (`DeviceQMatrix`), for a dense model with a tied head (qwen3) and a MoE
//! one (qwen3_moe). Bound: 1e-5 absolute, summation noise at most (the two loads run identical
//! arithmetic).

use std::path::Path;

use llm::gguf::FileType;
use llm::models::pack::quantize_weights;
use llm::models::{LoadOptions, load, load_quantized};
use nn::Module;
use tensor::quant::GgmlType;
use tensor::testing::max_abs_diff;
use tensor::{Device, Tensor};

mod common;
use common::{fixture, fixture_gguf, tempdir};

fn logits(model: &llm::models::CausalLm, ids: &Tensor, device: &Device) -> llm::Result<Tensor> {
    let ids = ids.to(device)?;
    let out = autograd::no_grad(|| model.forward(&ids, 0, None, false))?;
    Ok(out.logits.value().to(&Device::cpu())?)
}

fn compare(name: &str, ty: GgmlType, file_type: FileType, device: &Device, tmp: &Path) -> llm::Result<()> {
    let (ids, path) = fixture_gguf(name, file_type, tmp)?;
    let from_file = load(&path, &LoadOptions { device: device.clone(), weight_dtype: None })?;

    let quantized = load(&fixture(name), &LoadOptions::f32(device))?;
    let packed = quantize_weights(&quantized.model, ty, device)?;
    let mut slots = 0;
    quantized.model.visit_packed("", &mut |_, slot| slots += slot.is_set() as usize);
    assert!(
        packed >= 4 * quantized.config.num_hidden_layers && slots == packed,
        "{name}: {packed} packed, {slots} set"
    );

    let (want, got) = (logits(&from_file.model, &ids, device)?, logits(&quantized.model, &ids, device)?);
    let diff = max_abs_diff(&got, &want)?;
    assert!(
        diff <= 1e-5,
        "{name} {ty} on {device:?}: quantized after loading differs from the GGUF file by {diff:.2e}"
    );

    // What the CLI does: each matrix quantized as it is read.
    let streamed = load_quantized(&fixture(name), &LoadOptions::f32(device), ty)?;
    let mut set = 0;
    streamed.model.visit_packed("", &mut |_, slot| set += slot.is_set() as usize);
    assert_eq!(set, packed, "{name}: the same slots are packed");
    let diff = max_abs_diff(&logits(&streamed.model, &ids, device)?, &want)?;
    assert!(
        diff <= 1e-5,
        "{name} {ty} on {device:?}: quantized while loading differs from the GGUF file by {diff:.2e}"
    );
    let err = load_quantized(&path, &LoadOptions::f32(device), ty).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("GGUF file"), "{err}");
    Ok(())
}

#[test]
fn quantizing_at_load_equals_loading_the_gguf_file() -> llm::Result<()> {
    let tmp = tempdir("quantize-at-load");
    let mut devices = vec![Device::cpu()];
    devices.extend(gpu::test_device());
    for device in &devices {
        for name in ["qwen3", "qwen3_moe"] {
            compare(name, GgmlType::Q8_0, FileType::Q8_0, device, &tmp)?;
            compare(name, GgmlType::Q4_0, FileType::Q4_0, device, &tmp)?;
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}

#[test]
fn only_q8_0_and_q4_0_are_offered_and_a_packed_model_is_not_trained() -> llm::Result<()> {
    let loaded = load(&fixture("qwen3"), &LoadOptions::cpu())?;
    let err = quantize_weights(&loaded.model, GgmlType::Q6_K, &Device::cpu()).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("q8_0 or q4_0")));
    let err = load_quantized(&fixture("qwen3"), &LoadOptions::cpu(), GgmlType::Q4_K).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("q8_0 or q4_0")));
    quantize_weights(&loaded.model, GgmlType::Q8_0, &Device::cpu())?;
    let ids = Tensor::from_vec(vec![1u32, 2, 3], [1, 3], &Device::cpu())?;
    let Err(err) = loaded.model.forward(&ids, 0, None, false) else { panic!("a gradient pass is refused") };
    assert!(err.to_string().contains("block-quantized"), "{err}");
    Ok(())
}
