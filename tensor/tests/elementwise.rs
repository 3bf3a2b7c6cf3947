//! Unary and binary ops: known values, every table row on strided and broadcast views against
//! its scalar definition, integer arithmetic, half-precision storage, and broadcasting rules.

use tensor::ops::{BinaryOp, UnaryOp};
use tensor::testing::{assert_close, randn, uniform};
use tensor::{DType, Device, Result, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

fn one(op: UnaryOp, x: f64) -> f64 {
    Tensor::from_vec(vec![x], [1], &cpu()).and_then(|t| t.unary(op)).and_then(|t| t.to_vec::<f64>()).expect("op")[0]
}

#[test]
fn known_values() {
    let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    close(one(UnaryOp::Exp, 1.0), std::f64::consts::E);
    close(one(UnaryOp::Sigmoid, 0.0), 0.5);
    close(one(UnaryOp::Silu, 1.0), 0.731_058_578_630_004_9);
    close(one(UnaryOp::GeluErf, 1.0), 0.841_344_746_068_542_9);
    close(one(UnaryOp::GeluTanh, 1.0), 0.841_191_990_608_477);
    close(one(UnaryOp::Erf, 0.5), 0.520_499_877_813_046_5);
    close(one(UnaryOp::Rsqrt, 4.0), 0.5);
    close(one(UnaryOp::Powf(3.0), -2.0), -8.0);
    close(one(UnaryOp::Clamp { min: -1.0, max: 1.0 }, 7.0), 1.0);
    close(one(UnaryOp::Affine { mul: 2.0, add: 1.0 }, 3.0), 7.0);
    close(one(UnaryOp::Sign, -0.3), -1.0);
    // Large inputs neither overflow nor produce NaN.
    close(one(UnaryOp::Sigmoid, -1000.0), 0.0);
    close(one(UnaryOp::Sigmoid, 1000.0), 1.0);
    close(one(UnaryOp::Tanh, 1000.0), 1.0);
    close(one(UnaryOp::Silu, -1000.0), 0.0);
}

#[test]
fn every_unary_op_on_strided_views_matches_its_scalar_definition() -> Result<()> {
    for op in UnaryOp::ALL {
        let x =
            if op.needs_positive_input() { uniform([5, 7], 0.1, 3.0, 1, &cpu())? } else { randn([5, 7], 1, &cpu())? };
        let want: Vec<f64> = x.to_vec::<f64>()?.iter().map(|&v| op.apply(v)).collect();
        let want = Tensor::from_vec(want, [5, 7], &cpu())?;
        // Contiguous, transposed storage, and an offset view give the same elements.
        let strided = x.t()?.contiguous()?.t()?;
        let offset = Tensor::cat(&[&x, &x], 0usize)?.narrow(0usize, 5, 5)?;
        for (view, t) in [("contiguous", x.clone()), ("strided", strided), ("offset", offset)] {
            assert_close(&t.unary(op)?.to_dtype(DType::F64)?, &want, 1e-6, 1e-6)
                .map_err(|e| tensor::Error::shape(op.name(), format!("{view}: {e}")))?;
        }
    }
    Ok(())
}

#[test]
fn binary_ops_by_hand_with_broadcasting() -> Result<()> {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], &cpu())?;
    let row = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], [3], &cpu())?;
    let col = Tensor::from_vec(vec![2.0f32, 4.0], [2, 1], &cpu())?;
    assert_eq!(a.add(&row)?.to_vec::<f32>()?, [11., 22., 33., 14., 25., 36.]);
    assert_eq!(a.div(&col)?.to_vec::<f32>()?, [0.5, 1.0, 1.5, 1.0, 1.25, 1.5]);
    assert_eq!(col.sub(&row)?.dims(), &[2, 3]); // [2,1] - [3] -> [2,3]
    assert_eq!(a.maximum(&Tensor::full(3.5, (), DType::F32, &cpu())?)?.to_vec::<f32>()?, [3.5, 3.5, 3.5, 4., 5., 6.]);
    assert_eq!(a.pow(&Tensor::full(2.0, (), DType::F32, &cpu())?)?.to_vec::<f32>()?, [1., 4., 9., 16., 25., 36.]);
    // Every op on broadcast + strided operands against a scalar loop.
    let x = randn([4, 1, 3], 2, &cpu())?.abs()?.add_scalar(0.5)?;
    let y = randn([5, 3], 3, &cpu())?.abs()?.add_scalar(0.5)?.t()?.contiguous()?.t()?;
    for op in BinaryOp::ALL {
        let got = x.binary(op, &y)?;
        assert_eq!(got.dims(), &[4, 5, 3]);
        let (xs, ys, gs) = (x.to_vec::<f64>()?, y.to_vec::<f64>()?, got.to_vec::<f64>()?);
        for i in 0..4 {
            for j in 0..5 {
                for k in 0..3 {
                    let want = op.apply(xs[i * 3 + k], ys[j * 3 + k]);
                    assert!((gs[(i * 5 + j) * 3 + k] - want).abs() <= 1e-5 * want.abs().max(1.0), "{}", op.name());
                }
            }
        }
    }
    Ok(())
}

#[test]
fn integer_arithmetic_and_its_limits() -> Result<()> {
    let a = Tensor::from_vec(vec![7u32, 0, 9], [3], &cpu())?;
    let b = Tensor::from_vec(vec![2u32, 5, 0], [3], &cpu())?;
    assert_eq!(a.add(&b)?.to_vec::<u32>()?, [9, 5, 9]);
    assert_eq!(a.div(&b)?.to_vec::<u32>()?, [3, 0, 0], "division by zero gives 0");
    assert_eq!(a.sub(&b)?.to_vec::<u32>()?[1], u32::MAX - 4, "wrapping");
    assert!(a.pow(&b).is_err());
    assert!(a.exp().is_err(), "float ops refuse integer tensors");
    Ok(())
}

#[test]
fn half_precision_computes_in_f32_and_rounds_back() -> Result<()> {
    let x = Tensor::from_vec(vec![1.0f32, 2.5, -3.0], [3], &cpu())?;
    for dtype in [DType::BF16, DType::F16] {
        let h = x.to_dtype(dtype)?;
        let y = h.mul(&h)?.add_scalar(0.25)?;
        assert_eq!(y.dtype(), dtype);
        assert_eq!(y.to_vec::<f32>()?, [1.25, 6.5, 9.25]);
    }
    // bf16 keeps 8 bits of mantissa: 1 + 2^-9 rounds to 1, to the nearest even.
    let tiny = Tensor::from_vec(vec![1.0f32 + 1.0 / 512.0, 1.0 + 3.0 / 512.0], [2], &cpu())?;
    assert_eq!(tiny.to_dtype(DType::BF16)?.to_vec::<f32>()?, [1.0, 1.0 + 4.0 / 512.0]);
    Ok(())
}

#[test]
fn mismatched_operands_are_errors_naming_the_op_and_shapes() -> Result<()> {
    let a = Tensor::zeros([2, 3], DType::F32, &cpu())?;
    let b = Tensor::zeros([4], DType::F32, &cpu())?;
    let err = a.add(&b).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("add") && err.contains("[2, 3]") && err.contains("[4]"), "{err}");
    let err = a.mul(&a.to_dtype(DType::F64)?).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("mul") && err.contains("f64"), "{err}");
    Ok(())
}

/// Large contiguous operands take the parallel, chunked kernel (above `PARALLEL_MIN`, with a
/// ragged last chunk): every element must still be right.
#[test]
fn large_contiguous_arithmetic_matches_elementwise_loops() -> tensor::Result<()> {
    let cpu = tensor::Device::cpu();
    let n = (1 << 16) + 123;
    let a: Vec<f32> = (0..n).map(|i| (i % 97) as f32 - 40.0).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 13) as f32 + 0.5).collect();
    let (ta, tb) = (tensor::Tensor::from_vec(a.clone(), [n], &cpu)?, tensor::Tensor::from_vec(b.clone(), [n], &cpu)?);
    let sum: Vec<f32> = ta.add(&tb)?.to_vec()?;
    let quotient: Vec<f32> = ta.div(&tb)?.to_vec()?;
    for i in 0..n {
        assert_eq!(sum[i], a[i] + b[i], "add at {i}");
        assert_eq!(quotient[i], a[i] / b[i], "div at {i}");
    }
    Ok(())
}
