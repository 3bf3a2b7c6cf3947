//! bf16 weights packed at load into the bf16 GEMMs' panels (`llm::models::pack::pack_bf16_panels`, what
//! `llm generate`, `chat` and `serve` do on a CPU with AVX512_BF16): a model computes what it computed
//! before packing, on the prompt's rows (the AMX or `vdpbf16ps` GEMM reading the panels) and on one row (the
//! panels' matrix-vector kernel), for a dense model with a tied head (qwen3), one with its own
//! head (olmo2), MLA (deepseek_v3, whose `kv_b_proj` is multiplied directly and must stay
//! unpacked) and a mixture of experts with sinks (gpt_oss). Every `Linear` with a bf16 weight
//! is packed, nothing else. Gradients through a packed weight are an error.
//!
//! Bound: both sides round the activations to bf16 and sum exact bf16 products in f32 (the
//! unpacked side on the `vdpbf16ps` kernels or AMX on per-product panels); only the order of
//! the f32 additions differs, so 1e-4 absolute on logits of magnitude ~1 through a few layers.
//!
//! Packing happens only where the CPU has AVX512_BF16; elsewhere the tests check that nothing is
//! packed and the logits are unchanged.

use autograd::Var;
use llm::models::pack::pack_bf16_panels;
use llm::models::{LoadOptions, load};
use nn::{Module, ModuleExt};
use tensor::cpu::bf16_panels::Bf16Panels;
use tensor::testing::max_abs_diff;
use tensor::{DType, Device, Tensor};

mod common;
use common::fixture;

fn ids(name: &str) -> Tensor {
    let reference = llm::weights::Checkpoint::open(&fixture(name).join("reference.safetensors")).expect("reference");
    reference.load("input_ids", Some(DType::U32), &Device::cpu()).expect("input_ids")
}

fn logits(model: &llm::models::CausalLm, ids: &Tensor) -> Tensor {
    autograd::no_grad(|| model.forward(ids, 0, None, false)).expect("forward").logits.value()
}

#[test]
fn packed_models_compute_what_they_computed() {
    for name in ["qwen3", "olmo2", "deepseek_v3", "gpt_oss"] {
        let loaded = load(&fixture(name), &LoadOptions { device: Device::cpu(), weight_dtype: Some(DType::BF16) })
            .expect("load");
        let model = &loaded.model;
        let ids = ids(name);
        let one = ids.narrow(1, 0, 1).expect("first token");
        let (before, before_one) = (logits(model, &ids), logits(model, &one));

        // What may be packed: a Linear's slot (`takes_panels`) over a bf16 matrix.
        let params: std::collections::HashMap<String, Var> = model.named_parameters().into_iter().collect();
        let mut linear = 0;
        model.visit_packed("", &mut |n, slot| {
            linear += (slot.takes_panels() && params[n].dtype() == DType::BF16 && params[n].rank() == 2) as usize;
        });
        let packed = pack_bf16_panels(model).expect("pack");
        if !Bf16Panels::worth_packing() {
            eprintln!("note: no AVX512_BF16 here; nothing is packed");
            assert_eq!(packed, 0, "{name}");
            continue;
        }
        assert!(packed > 0 && packed == linear, "{name}: {packed} packed of {linear} bf16 Linear weights");
        let mut set = 0;
        model.visit_packed("", &mut |_, slot| set += slot.panels().is_some() as usize);
        assert_eq!(set, packed, "{name}");

        let (after, after_one) = (logits(model, &ids), logits(model, &one));
        for (what, a, b) in [("prompt", &before, &after), ("one token", &before_one, &after_one)] {
            let d = max_abs_diff(a, b).expect("diff");
            assert!(d <= 1e-4, "{name}, {what}: packed logits differ by {d}");
        }
        // A second pack finds nothing left to pack.
        assert_eq!(pack_bf16_panels(model).expect("pack again"), 0, "{name}");
    }
}

#[test]
fn gradients_through_packed_weights_are_an_error() {
    let loaded =
        load(&fixture("qwen3"), &LoadOptions { device: Device::cpu(), weight_dtype: Some(DType::BF16) }).expect("load");
    if pack_bf16_panels(&loaded.model).expect("pack") == 0 {
        eprintln!("note: no AVX512_BF16 here; nothing is packed");
        return;
    }
    let err = loaded.model.forward(&ids("qwen3"), 0, None, false).err().expect("an error, not a gradient");
    assert!(err.to_string().contains("panels"), "{err}");
}
