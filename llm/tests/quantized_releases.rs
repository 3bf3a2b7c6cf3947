//! Releases that ship quantized weights in safetensors, as `tools/make_hub_variants.py` lays the
//! tiny fixtures out (`tests/data/hub-variants`):
//! - `gpt_oss_mxfp4`: gpt-oss's routed experts as MXFP4 `*_blocks` + `*_scales`, the rest bf16;
//! - `deepseek_v3_fp8`: DeepSeek-V3's projections as E4M3 with `weight_scale_inv` tile scales
//!   (non-square tiles with ragged edges, from `quantization_config.weight_block_size`).
//!
//! Each folder's `reference.safetensors` holds the logits transformers computes in float32 from
//! that folder (`logits`), and for FP8 also from its weights dequantized in f32 then rounded to
//! bf16 (`logits_bf16`), what this loader keeps by default.
//!
//! Tolerance 1e-4 max abs: MXFP4 values and E4M3 x f32 scale products are decoded exactly in
//! f32 (and MXFP4 exactly in bf16), so both sides compute one f32 model and differ by summation
//! order only (about 1e-5 here); a wrong nibble order, row interleave or tile index moves logits
//! by O(0.1) or more.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use llm::models::{LoadOptions, load};
use llm::weights::Checkpoint;
use nn::{Module, ModuleExt};
use safetensors::tensor::{Dtype, TensorView};
use tensor::testing::max_abs_diff;
use tensor::{DType, Device};

#[macro_use]
mod common;

const TOLERANCE: f64 = 1e-4;

fn variant(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hub-variants").join(name)
}

/// The model loaded from `dir` with `weight_dtype`, its logits for the reference's ids, and the
/// largest difference from the reference tensor `want`.
fn logits_diff(dir: &Path, device: &Device, weight_dtype: Option<DType>, want: &str) -> llm::Result<f64> {
    // Prefill products with bf16 weights would round activations to bf16 on CPUs with
    // AVX512_BF16; these references compute in f32 (as tests/hub_variants.rs explains).
    tensor::cpu::isa::force_bf16_gemm(Some(false));
    let loaded = load(dir, &LoadOptions { device: device.clone(), weight_dtype })?;
    let reference = Checkpoint::open(&dir.join("reference.safetensors"))?;
    let ids = reference.load("input_ids", Some(DType::U32), device)?;
    let out = autograd::no_grad(|| loaded.model.forward(&ids, 0, None, false))?;
    let cpu = Device::cpu();
    Ok(max_abs_diff(&out.logits.value().to(&cpu)?, &reference.load(want, None, &cpu)?)?)
}

/// gpt-oss's MXFP4 experts: kept as MXFP4 blocks by default (every expert slot filled, no dense
/// copy), dequantized exactly when a dtype is asked for; the logits are transformers' either way.
///
/// On the CPU, products of fewer than `GEMM_MIN_ROWS` rows would run integer dots on Q8_0-rounded
/// activations (as llama.cpp's do), which moves these logits by ~0.1; this test checks the
/// loading, so it sends every product through the exactly decoded panels (process-wide, and no
/// other test of this binary multiplies packed matrices). The integer dots are checked against
/// the decoded product in tensor/tests/quant_matmul.rs.
fn gpt_oss_mxfp4(name: &str, device: &Device) -> llm::Result<()> {
    tensor::quant::set_gemm_min_rows(Some(1));
    let dir = variant(name);
    let loaded = load(&dir, &LoadOptions { device: device.clone(), weight_dtype: None })?;
    let mut packed = 0;
    loaded.model.visit_packed("", &mut |slot_name, slot| {
        if slot_name.contains(".experts.") {
            assert!(slot.is_set(), "{slot_name} is not kept as MXFP4 blocks");
            packed += 1;
        }
    });
    assert_eq!(packed, 3 * loaded.config.num_hidden_layers, "gate, up and down of every layer");
    for (param, var) in loaded.model.named_parameters() {
        if var.rank() >= 2 && !param.contains(".experts.") {
            assert_eq!(var.dtype(), DType::BF16, "{param}: stored bf16, kept bf16");
        }
    }
    for dtype in [None, Some(DType::F32), Some(DType::BF16)] {
        let diff = logits_diff(&dir, device, dtype, "logits")?;
        eprintln!("{name} on {device}, weights {dtype:?}: max |logit diff| {diff:.2e}");
        assert!(diff <= TOLERANCE, "{name} on {device} with {dtype:?}: logits differ by {diff:.2e}");
    }
    Ok(())
}

/// DeepSeek-V3's FP8 weights: by default each matrix the model multiplies is kept as FP8_E4M3
/// blocks (the codes with their tile's scale, decoded exactly), the other FP8 tensors
/// (`kv_b_proj`; `q_b_proj`, whose 48 columns are not whole blocks) dequantized in f32, so the
/// model is transformers' f32 one; with a dtype asked for, every FP8 weight is dequantized and
/// converted to it (bf16 compared with transformers on the same bf16 rounding).
///
/// The products on the blocks run in f32 here (the bf16 GEMM is off, see `logits_diff`); the
/// `vdpbf16ps` path, which rounds activations to bf16, is checked against the decoded product in
/// tensor/tests/quant_matmul.rs.
fn deepseek_v3_fp8(name: &str, device: &Device) -> llm::Result<()> {
    let dir = variant(name);
    tensor::cpu::isa::force_bf16_gemm(Some(false));
    let loaded = load(&dir, &LoadOptions { device: device.clone(), weight_dtype: None })?;
    let checkpoint = Checkpoint::open(&dir)?;
    let packed: std::collections::HashSet<String> = {
        let mut set = std::collections::HashSet::new();
        loaded.model.visit_packed("", &mut |n, slot| {
            if slot.is_set() {
                set.insert(n.to_string());
            }
        });
        set
    };
    assert!(packed.iter().any(|n| n.contains(".experts.")), "FP8 experts kept as blocks: {packed:?}");
    assert!(packed.iter().any(|n| n.contains("o_proj")), "FP8 projections kept as blocks: {packed:?}");
    for (param, var) in loaded.model.named_parameters() {
        let fp8 = checkpoint.is_fp8(&param);
        if packed.contains(&param) {
            assert!(!param.contains("q_b_proj") && !param.contains("kv_b_proj"), "{param} cannot be blocks");
        } else if fp8 {
            assert_eq!(var.dtype(), DType::F32, "{param}: FP8 not kept as blocks loads as f32");
        } else if var.rank() >= 2 {
            assert_eq!(var.dtype(), DType::BF16, "{param}: stored bf16, kept bf16");
        }
    }
    for (dtype, want) in [(None, "logits"), (Some(DType::F32), "logits"), (Some(DType::BF16), "logits_bf16")] {
        let diff = logits_diff(&dir, device, dtype, want)?;
        eprintln!("{name} on {device}, weights {dtype:?}: max |logit diff| from {want} {diff:.2e}");
        assert!(diff <= TOLERANCE, "{name} on {device} with {dtype:?}: logits differ from {want} by {diff:.2e}");
    }
    Ok(())
}

on_cpu_and_gpu! { gpt_oss_mxfp4; gpt_oss_mxfp4 }
on_cpu_and_gpu! { deepseek_v3_fp8; deepseek_v3_fp8 }

/// A copy of `source`'s folder with its `model.safetensors` rewritten by `edit` (name -> dtype,
/// shape, bytes), for the malformed cases.
fn edited_copy(
    source: &Path,
    case: &str,
    edit: impl FnOnce(&mut HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>),
) -> PathBuf {
    let dir = common::tempdir(case);
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    dir
}

fn load_error(dir: &Path) -> String {
    match load(dir, &LoadOptions { device: Device::cpu(), weight_dtype: None }) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_quantized_tensors_are_errors_naming_them() {
    let fp8 = variant("deepseek_v3_fp8");
    let scale = "model.layers.0.self_attn.o_proj.weight_scale_inv";
    let dir = edited_copy(&fp8, "fp8-no-scale", |t| {
        t.remove(scale).expect("the variant has it");
    });
    let msg = load_error(&dir);
    assert!(msg.contains(scale) && msg.contains("missing"), "{msg}");

    let dir = edited_copy(&fp8, "fp8-scale-shape", |t| {
        let (_, shape, bytes) = t.get_mut(scale).unwrap();
        let n = shape.iter().product::<usize>() + 1;
        *shape = vec![n];
        bytes.resize(4 * n, 0);
    });
    let msg = load_error(&dir);
    assert!(msg.contains(scale) && msg.contains("weight_block_size"), "{msg}");

    // A NaN code in a weight kept as FP8 blocks: no trained weight is NaN (and the AVX2 kernel
    // would read the code as a number).
    let weight = "model.layers.1.self_attn.o_proj.weight";
    let dir = edited_copy(&fp8, "fp8-nan", |t| {
        t.get_mut(weight).unwrap().2[70] = 0xFF;
    });
    let msg = load_error(&dir);
    assert!(msg.contains(weight) && msg.contains("NaN code at [1, 6]"), "{msg}");

    let mxfp4 = variant("gpt_oss_mxfp4");
    let scales = "model.layers.1.mlp.experts.down_proj_scales";
    let dir = edited_copy(&mxfp4, "mxfp4-scales-shape", |t| {
        let (_, shape, bytes) = t.get_mut(scales).unwrap();
        shape[1] -= 1;
        bytes.truncate(shape.iter().product());
    });
    let msg = load_error(&dir);
    assert!(msg.contains(scales) && msg.contains("32 weights per scale"), "{msg}");

    let dir = edited_copy(&mxfp4, "mxfp4-blocks-dtype", |t| {
        let (dtype, shape, _) = t.get_mut("model.layers.0.mlp.experts.gate_up_proj_blocks").unwrap();
        *dtype = Dtype::I8;
        let _ = shape;
    });
    let msg = load_error(&dir);
    assert!(msg.contains("gate_up_proj_blocks") && msg.contains("expected U8"), "{msg}");
}

/// `llm quantize` on the MXFP4 release: in a Q8_0 file (as in every quantized type) gpt-oss's
/// experts are written as MXFP4, as llama.cpp's converter keeps them, and they come back
/// bit-identical to the release's values (ggml's quantizer re-encodes MXFP4 values exactly);
/// the other matrices are Q8_0. (llama.cpp computes YaRN with `truncate: true` only, so the
/// config is switched to it for writing; the weights are what this test is about.)
#[test]
fn gpt_oss_mxfp4_experts_are_written_to_gguf_as_the_same_mxfp4_values() -> llm::Result<()> {
    use llm::gguf::{FileType, GgufFile, write_gguf};
    use tensor::quant::GgmlType;
    let dir = variant("gpt_oss_mxfp4");
    let loaded = load(&dir, &LoadOptions::cpu())?;
    let mut config = loaded.config.clone();
    if let nn::rope::RopeScaling::Yarn { truncate, .. } = &mut config.rope.global.scaling {
        *truncate = true;
    }
    let out = common::tempdir("mxfp4-gguf").join("gpt_oss_mxfp4-q8_0.gguf");
    write_gguf(&loaded.model, &config, None, "gpt_oss_mxfp4", FileType::Q8_0, &out)?;
    let file = GgufFile::open(&out)?;
    for t in &file.tensors {
        let want = if t.name.contains("_exps.weight") {
            GgmlType::MXFP4
        } else if t.dims.len() >= 2 && !t.name.contains("ffn_gate_inp") && !t.name.ends_with(".bias") {
            GgmlType::Q8_0
        } else {
            GgmlType::F32
        };
        assert_eq!(t.ty, want, "{}", t.name);
    }
    let back = load(&out, &LoadOptions::cpu())?;
    let original: HashMap<String, autograd::Var> = loaded.model.named_parameters().into_iter().collect();
    let mut experts = 0;
    for (name, var) in back.model.named_parameters() {
        if name.contains(".experts.") && var.rank() == 3 {
            let (a, b): (Vec<f32>, Vec<f32>) = (var.value().to_vec()?, original[&name].value().to_vec()?);
            assert!(a.iter().zip(&b).all(|(x, y)| x == y), "{name} changed on the way through MXFP4");
            experts += 1;
        }
    }
    assert_eq!(experts, 3 * config.num_hidden_layers);
    std::fs::remove_file(&out).unwrap();
    Ok(())
}

/// `--quantize q8_0` on the FP8 release: each weight dequantized with its tile scales and
/// encoded as it is read (the routed experts expert by expert, never stacked at their bf16
/// width) gives the same model as quantizing the loaded f32 model afterwards; experts and
/// projections are packed. Bound: summation noise (both run the same blocks and kernels).
#[test]
fn quantizing_the_fp8_release_while_loading_equals_quantizing_it_after() -> llm::Result<()> {
    use llm::models::load_quantized;
    use llm::models::pack::quantize_weights;
    use tensor::quant::GgmlType;
    // The same process-wide switch `gpt_oss_mxfp4` sets (none restores it), so that both forwards
    // take the same path whichever test runs first.
    tensor::quant::set_gemm_min_rows(Some(1));
    let dir = variant("deepseek_v3_fp8");
    let cpu = Device::cpu();
    let streamed = load_quantized(&dir, &LoadOptions::cpu(), GgmlType::Q8_0)?;
    let after = load(&dir, &LoadOptions::cpu())?;
    let packed = quantize_weights(&after.model, GgmlType::Q8_0, &cpu)?;
    let mut set = 0;
    streamed.model.visit_packed("", &mut |_, slot| set += slot.is_set() as usize);
    assert_eq!(set, packed, "the same slots are packed");
    let mut experts = 0;
    streamed
        .model
        .visit_packed("", &mut |name, slot| experts += (name.contains(".experts.") && slot.is_set()) as usize);
    assert!(experts > 0, "the routed experts are packed");
    let reference = Checkpoint::open(&dir.join("reference.safetensors"))?;
    let ids = reference.load("input_ids", Some(DType::U32), &cpu)?;
    let a = autograd::no_grad(|| streamed.model.forward(&ids, 0, None, false))?.logits.value();
    let b = autograd::no_grad(|| after.model.forward(&ids, 0, None, false))?.logits.value();
    let diff = max_abs_diff(&a, &b)?;
    assert!(diff <= 1e-5, "quantized while loading differs by {diff:.2e}");
    Ok(())
}
