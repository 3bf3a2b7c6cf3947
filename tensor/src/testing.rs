//! Helpers for tests in every crate: seeded random tensors, closeness checks that report the
//! worst element, and non-contiguous variants of a tensor (so every op is tried on strided views).

use crate::{DType, Device, Error, Result, Rng, Shape, Tensor};

/// A normal(0, 1) f32 tensor from a seed.
pub fn randn(shape: impl Into<Shape>, seed: u64, device: &Device) -> Result<Tensor> {
    Tensor::randn(0.0, 1.0, shape, DType::F32, &mut Rng::new(seed), device)
}

/// A uniform f32 tensor in [low, high) from a seed.
pub fn uniform(shape: impl Into<Shape>, low: f64, high: f64, seed: u64, device: &Device) -> Result<Tensor> {
    Tensor::rand(low, high, shape, DType::F32, &mut Rng::new(seed), device)
}

/// The same values as `t` seen through a non-contiguous layout: built transposed in storage,
/// then transposed back (so strides are permuted). Rank < 2 tensors are narrowed out of a
/// larger buffer instead (a non-zero offset).
pub fn non_contiguous(t: &Tensor) -> Result<Tensor> {
    if t.rank() >= 2 {
        let r = t.rank();
        t.transpose(r - 2, r - 1)?.contiguous()?.transpose(r - 2, r - 1)
    } else {
        let padded = Tensor::cat(&[&t.zeros_like()?, t], 0usize)?;
        let n = t.dims().first().copied().unwrap_or(1);
        if t.rank() == 0 { Ok(t.clone()) } else { padded.narrow(0usize, n, n) }
    }
}

/// The largest absolute difference between two tensors of one shape (compared in f64).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.shape() != b.shape() {
        return Err(Error::shape("max_abs_diff", format!("{:?} vs {:?}", a.shape(), b.shape())));
    }
    let (x, y) = (a.to_vec::<f64>()?, b.to_vec::<f64>()?);
    Ok(x.iter().zip(&y).map(|(p, q)| if p == q { 0.0 } else { (p - q).abs() }).fold(0.0, f64::max))
}

/// Checks `|a - b| <= atol + rtol * |b|` elementwise (NaN equals NaN), naming the first element
/// that fails.
pub fn assert_close(a: &Tensor, b: &Tensor, atol: f64, rtol: f64) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape("assert_close", format!("shapes differ: {:?} vs {:?}", a.shape(), b.shape())));
    }
    let (x, y) = (a.to_vec::<f64>()?, b.to_vec::<f64>()?);
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        let same = (p.is_nan() && q.is_nan()) || p == q;
        let within = (p - q).abs() <= atol + rtol * q.abs();
        if !same && !within {
            return Err(Error::shape(
                "assert_close",
                format!(
                    "element {i} of {:?}: {p} vs {q} (|diff| {:.3e} > atol {atol:.1e} + rtol {rtol:.1e})",
                    a.shape(),
                    (p - q).abs()
                ),
            ));
        }
    }
    Ok(())
}

/// Values as f64 in row-major order.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>().unwrap_or_default()
}

/// Fixed weights `sin(0.37 i)` of `shape` on `device`, for turning a tensor output into a scalar
/// loss `sum(y * w)` in gradient tests: every element matters, with its own weight, so a
/// gradient that lands on the wrong element shows.
pub fn readout_weights(shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    Tensor::arange(shape.elem_count(), DType::F32, &Device::cpu())?.mul_scalar(0.37)?.sin()?.reshape(shape)?.to(device)
}
