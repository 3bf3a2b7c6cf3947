//! Softmax and log-softmax (rows sum to 1, finite for extreme logits, any axis), cumsum, top-k.

use tensor::testing::{assert_close, randn};
use tensor::{DType, Device, Result, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

#[test]
fn softmax_by_hand_and_rows_sum_to_one_on_every_axis() -> Result<()> {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], &cpu())?;
    let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    let total: f64 = e.iter().sum();
    for (g, w) in x.softmax(0usize)?.to_vec::<f64>()?.iter().zip(e.iter().map(|v| v / total)) {
        assert!((g - w).abs() < 1e-7);
    }
    let y = randn([3, 4, 5], 1, &cpu())?;
    for axis in 0..3usize {
        let sums = y.softmax(axis)?.sum(axis, false)?;
        assert_close(&sums, &sums.ones_like()?, 1e-6, 0.0)?;
        assert_close(&y.log_softmax(axis)?.exp()?, &y.softmax(axis)?, 1e-6, 1e-6)?;
    }
    Ok(())
}

#[test]
fn extreme_logits_stay_finite() -> Result<()> {
    let x = Tensor::from_vec(vec![1e30f32, -1e30, 0.0, 1e4, -1e4, 88.0, 89.0, 1000.0, -1000.0], [3, 3], &cpu())?;
    for v in x.log_softmax(-1)?.to_vec::<f32>()? {
        assert!(v.is_finite(), "log_softmax gave {v}");
    }
    for v in x.softmax(-1)?.to_vec::<f32>()? {
        assert!(v.is_finite() && (0.0..=1.0).contains(&v));
    }
    Ok(())
}

#[test]
fn cumsum_on_every_axis() -> Result<()> {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], &cpu())?;
    assert_eq!(x.cumsum(1usize)?.to_vec::<f32>()?, [1., 3., 6., 4., 9., 15.]);
    assert_eq!(x.cumsum(0usize)?.to_vec::<f32>()?, [1., 2., 3., 5., 7., 9.]);
    assert_eq!(x.t()?.cumsum(-1)?.to_vec::<f32>()?, [1., 5., 2., 7., 3., 9.]);
    Ok(())
}

#[test]
fn topk_orders_descending_with_lower_index_first_on_ties() -> Result<()> {
    let x = Tensor::from_vec(vec![3.0f32, 9.0, 1.0, 9.0, 4.0, 0.5], [2, 3], &cpu())?;
    let (v, i) = x.topk(2, -1)?;
    assert_eq!((v.to_vec::<f32>()?, i.to_vec::<u32>()?), (vec![9.0, 3.0, 9.0, 4.0], vec![1, 0, 0, 1]));
    let (v, i) = x.topk(1, 0usize)?;
    assert_eq!((v.to_vec::<f32>()?, i.to_vec::<u32>()?), (vec![9.0, 9.0, 1.0], vec![1, 0, 0]));
    let ties = Tensor::from_vec(vec![5.0f32, 5.0, 5.0], [3], &cpu())?;
    assert_eq!(ties.topk(2, 0usize)?.1.to_vec::<u32>()?, [0, 1]);
    assert_eq!(ties.to_dtype(DType::BF16)?.topk(1, 0usize)?.0.dtype(), DType::BF16);
    assert!(x.topk(4, -1).is_err());
    Ok(())
}
