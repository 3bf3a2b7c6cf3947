//! The small blocks: names, gradients, and the loss's numerics.

use autograd::Var;
use autograd::gradcheck::{GradCheck, check_params};
use nn::loss::cross_entropy;
use nn::{Embedding, GatedFeedForward, Init, Linear, ModuleExt, RmsNorm};
use tensor::testing::randn;
use tensor::{DType, Device, GluActivation, Result, Tensor};

fn f64_init(seed: u64) -> Init {
    let mut init = Init::new(seed, &Device::cpu());
    init.dtype = DType::F64;
    init.std = 0.5;
    init
}

#[test]
fn linear_embedding_norm_and_ffn_gradients() -> Result<()> {
    let cpu = Device::cpu();
    let x = Var::constant(randn([3, 6], 1, &cpu)?.to_dtype(DType::F64)?);
    let mut init = f64_init(2);
    let linear = Linear::new(6, 4, true, &mut init)?;
    check_params(&linear.parameters(), || linear.forward(&x), GradCheck::default())?;
    let ids = Tensor::from_vec(vec![2u32, 0, 2, 4], [2, 2], &cpu)?;
    let emb = Embedding::new(5, 3, &mut init)?;
    check_params(&emb.parameters(), || emb.forward(&ids)?.tanh(), GradCheck::default())?;
    for norm in [RmsNorm::new(6, 1e-6, &mut init)?, RmsNorm::gemma(6, 1e-6, &mut init)?] {
        // Perturb the weights off their init (1 or 0) so the check sees a general point.
        for p in norm.parameters() {
            p.set_value(p.value().add(&randn([6], 3, &cpu)?.to_dtype(DType::F64)?.mul_scalar(0.1)?)?)?;
        }
        check_params(&norm.parameters(), || norm.forward(&x), GradCheck::default())?;
    }
    for act in [GluActivation::Silu, GluActivation::GeluTanh] {
        let ffn = GatedFeedForward::new(6, 5, act, &mut init)?;
        check_params(&ffn.parameters(), || ffn.forward(&x), GradCheck::default())?;
    }
    Ok(())
}

#[test]
fn hugging_face_names() -> Result<()> {
    let mut init = Init::new(0, &Device::cpu());
    let ffn = GatedFeedForward::new(4, 8, GluActivation::Silu, &mut init)?;
    let names: Vec<String> = ffn.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["gate_proj.weight", "up_proj.weight", "down_proj.weight"]);
    assert_eq!(ffn.num_parameters(), 3 * 32);
    Ok(())
}

#[test]
fn cross_entropy_gradient_and_ignored_rows() -> Result<()> {
    let cpu = Device::cpu();
    let mut init = f64_init(4);
    let head = Linear::new(3, 5, false, &mut init)?;
    let x = Var::constant(randn([4, 3], 5, &cpu)?.to_dtype(DType::F64)?);
    let labels = Tensor::from_vec(vec![1u32, 4, 9999, 0], [4], &cpu)?; // 9999: ignored (padding)
    check_params(&head.parameters(), || cross_entropy(&head.forward(&x)?, &labels, Some(9999)), GradCheck::default())?;
    // The ignored row changes nothing: same loss as the three other rows alone.
    let logits = head.forward(&x)?;
    let all = cross_entropy(&logits, &labels, Some(9999))?.value().to_scalar::<f64>()?;
    let kept = Tensor::from_vec(vec![0u32, 1, 3], [3], &cpu)?;
    let three = cross_entropy(&logits.index_select(&kept, 0)?, &Tensor::from_vec(vec![1u32, 4, 0], [3], &cpu)?, None)?
        .value()
        .to_scalar::<f64>()?;
    assert!((all - three).abs() < 1e-12);
    Ok(())
}

#[test]
fn cross_entropy_is_finite_for_extreme_logits() -> Result<()> {
    let cpu = Device::cpu();
    let logits = Var::constant(Tensor::from_vec(vec![1e30f32, -1e30, 0.0, -1e4, 1e4, 3.0], [2, 3], &cpu)?);
    let labels = Tensor::from_vec(vec![1u32, 0], [2], &cpu)?;
    let loss = cross_entropy(&logits, &labels, None)?.value().to_scalar::<f32>()?;
    assert!(loss.is_finite(), "loss {loss}");
    Ok(())
}

#[test]
fn cross_entropy_rejects_mismatched_shapes() -> Result<()> {
    let cpu = Device::cpu();
    let logits = Var::constant(randn([2, 3], 1, &cpu)?);
    let err = cross_entropy(&logits, &Tensor::from_vec(vec![0u32; 3], [3], &cpu)?, None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("cross_entropy"), "{err}");
    Ok(())
}
