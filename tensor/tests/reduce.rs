//! Reductions over every axis against loops, ties, NaN, empty axes, and the composites built on
//! them (mean, several axes, summing back a broadcast).

use tensor::ops::ReduceOp;
use tensor::testing::randn;
use tensor::{DType, Device, Result, Shape, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

/// Reduces `values` of `dims` over `axis` with a plain loop.
fn reference(op: ReduceOp, values: &[f64], dims: &[usize], axis: usize) -> Vec<f64> {
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let k = dims[axis];
    let mut out = Vec::new();
    for o in 0..outer {
        for i in 0..inner {
            let column: Vec<f64> = (0..k).map(|j| values[(o * k + j) * inner + i]).collect();
            out.push(match op {
                ReduceOp::Sum => column.iter().sum(),
                ReduceOp::Max => column.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                ReduceOp::Min => column.iter().cloned().fold(f64::INFINITY, f64::min),
                ReduceOp::ArgMax => (0..k).fold(0, |b, j| if column[j] > column[b] { j } else { b }) as f64,
                ReduceOp::ArgMin => (0..k).fold(0, |b, j| if column[j] < column[b] { j } else { b }) as f64,
            });
        }
    }
    out
}

#[test]
fn every_reduction_on_every_axis_and_view() -> Result<()> {
    let x = randn([3, 4, 5], 1, &cpu())?;
    let views = [("contiguous", x.clone()), ("permuted", x.permute(&[2, 1, 0])?.contiguous()?.permute(&[2, 1, 0])?)];
    for op in ReduceOp::ALL {
        for axis in 0..3 {
            for (name, t) in &views {
                let got = t.reduce(op, axis, false)?.to_vec::<f64>()?;
                let want = reference(op, &x.to_vec::<f64>()?, x.dims(), axis);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "{} axis {axis} {name}: {got:?} vs {want:?}", op.name());
                }
                assert_eq!(t.reduce(op, axis, true)?.dims()[axis], 1, "keepdim");
            }
        }
        // Negative axes count from the end.
        assert_eq!(x.reduce(op, -1, false)?.to_vec::<f64>()?, x.reduce(op, 2usize, false)?.to_vec::<f64>()?);
    }
    Ok(())
}

#[test]
fn ties_nan_and_empty_axes() -> Result<()> {
    let ties = Tensor::from_vec(vec![1.0f32, 7.0, 7.0, 0.0], [4], &cpu())?;
    assert_eq!(ties.argmax(0usize, false)?.to_vec::<u32>()?, [1], "the first maximum");
    let nan = Tensor::from_vec(vec![1.0f32, f32::NAN, 3.0], [3], &cpu())?;
    assert!(nan.max_all()?.to_scalar::<f32>()?.is_nan(), "NaN propagates through max");
    assert!(nan.min_all()?.to_scalar::<f32>()?.is_nan(), "and min");
    let empty = Tensor::zeros([2, 0], DType::F32, &cpu())?;
    assert_eq!(empty.sum(1usize, false)?.to_vec::<f32>()?, [0.0, 0.0]);
    assert!(empty.max(1usize, false).is_err(), "no maximum of nothing");
    Ok(())
}

#[test]
fn mean_sum_all_and_sum_to_shape() -> Result<()> {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], &cpu())?;
    assert_eq!(x.mean(1usize, false)?.to_vec::<f32>()?, [2.0, 5.0]);
    assert_eq!(x.sum_all()?.to_scalar::<f32>()?, 21.0);
    assert_eq!(x.mean_all()?.to_scalar::<f32>()?, 3.5);
    // The adjoint of broadcasting: [2, 3] summed down to [1, 3] and to [3].
    assert_eq!(x.sum_to_shape(&Shape::from([1, 3]))?.to_vec::<f32>()?, [5., 7., 9.]);
    assert_eq!(x.sum_to_shape(&Shape::from([3]))?.to_vec::<f32>()?, [5., 7., 9.]);
    assert_eq!(x.sum_to_shape(&Shape::from([2, 1]))?.to_vec::<f32>()?, [6., 15.]);
    assert!(x.sum_to_shape(&Shape::from([2])).is_err());
    let ints = Tensor::from_vec(vec![3u32, 9, 1], [3], &cpu())?;
    assert_eq!(ints.sum(0usize, false)?.to_vec::<u32>()?, [13]);
    assert_eq!(ints.argmin(0usize, false)?.to_vec::<u32>()?, [2]);
    Ok(())
}

#[test]
fn large_reductions_run_in_parallel_and_agree() -> Result<()> {
    // Above the parallel threshold, both code paths (rows and columns).
    let x = randn([300, 500], 2, &cpu())?;
    let rows = x.sum(1usize, false)?.to_vec::<f64>()?;
    let cols = x.sum(0usize, false)?.to_vec::<f64>()?;
    let v = x.to_vec::<f64>()?;
    for (r, got) in rows.iter().enumerate() {
        let want: f64 = v[r * 500..(r + 1) * 500].iter().sum();
        assert!((got - want).abs() < 1e-3);
    }
    for (c, got) in cols.iter().enumerate() {
        let want: f64 = (0..300).map(|r| v[r * 500 + c]).sum();
        assert!((got - want).abs() < 1e-3);
    }
    Ok(())
}

/// The first index a strictly-better scan keeps, NaN winning (NumPy's argmax/argmin).
fn arg_scan(row: &[f32], max: bool) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        let better = if max { v > row[best] } else { v < row[best] };
        if !row[best].is_nan() && (v.is_nan() || better) {
            best = i;
        }
    }
    best as u32
}

/// Arg reductions along rows (a row of logits' argmax) against a scan, on rows of few distinct
/// values (many ties), with NaN at various places, signed zeros and infinities, read in place
/// (contiguous) and gathered (through a transposed view), in rows long enough for the parallel
/// split.
#[test]
fn arg_reductions_over_rows_match_a_scan() -> Result<()> {
    let (rows, k) = (6, 40_000);
    let mut s = 7u64;
    let mut values: Vec<f32> = (0..rows * k)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 5) as f32 - 2.0
        })
        .collect();
    values[k + 17] = f32::NAN; // row 1: one NaN
    values[2 * k + 5] = f32::NAN; // row 2: two
    values[2 * k + 30_000] = f32::NAN;
    for v in &mut values[3 * k..4 * k] {
        *v = if *v > 0.0 { -0.0 } else { 0.0 }; // row 3: only signed zeros
    }
    values[4 * k + 39_999] = f32::INFINITY; // row 4: +inf last
    values[5 * k + 3] = f32::NEG_INFINITY; // row 5: -inf early
    let x = Tensor::from_vec(values.clone(), [rows, k], &cpu())?;
    let transposed = x.t()?.contiguous()?.t()?;
    for (name, t) in [("contiguous", &x), ("transposed view", &transposed)] {
        let max = t.argmax(1usize, false)?.to_vec::<u32>()?;
        let min = t.argmin(1usize, false)?.to_vec::<u32>()?;
        for r in 0..rows {
            let row = &values[r * k..(r + 1) * k];
            assert_eq!(max[r], arg_scan(row, true), "{name}: argmax of row {r}");
            assert_eq!(min[r], arg_scan(row, false), "{name}: argmin of row {r}");
        }
    }
    assert_eq!(x.argmax(1usize, false)?.to_vec::<u32>()?[1], 17, "the NaN wins");
    assert_eq!(x.argmax(1usize, false)?.to_vec::<u32>()?[2], 5, "the first NaN wins");
    Ok(())
}
