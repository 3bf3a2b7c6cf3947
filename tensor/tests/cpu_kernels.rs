//! The SIMD CPU kernels on every instruction-set path this machine offers (scalar always; AVX2
//! and AVX-512 where present), against plain f64 references, over odd lengths (not multiples of
//! the 8- or 16-lane vectors), empty inputs, strided and transposed views.
//!
//! Kernel-level tests pass the path explicitly. The whole-op tests force a path process-wide
//! with `isa::force` and run every path in sequence inside one test; another test running
//! meanwhile may then take a forced path too, which changes nothing it checks (every path must
//! give the reference's answer).
//!
//! Tolerances: dot products accumulate in f32, so the error is bounded by ~K eps sum|x w|; we
//! allow 2e-6 sqrt(K+1) sum|x w| (several accumulators, pairwise-like). exp on the SIMD paths
//! is within 4 ulp (relative 4.8e-7) of f64's for results above f32's smallest normal; the
//! sigmoid family, built on it, within 1e-6 relative plus 1e-7 absolute (GELU's x^3 term and
//! the division add a few ulp); whole softmax / RMSNorm rows against the f64 kernels at 2e-6.

use half::{bf16, f16};
use tensor::cpu::cache_rows;
use tensor::cpu::isa::{self, Isa};
use tensor::cpu::matvec::{self, Weight};
use tensor::cpu::vmath::{self, Act};
use tensor::testing::{assert_close, non_contiguous, randn};
use tensor::{DType, Device, GluActivation, Layout, Result, RmsNormSpec, Rng, Tensor};

/// The paths this CPU can run.
fn paths() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|isa| isa.available()).collect()
}

/// `n` normal(0, 1) values from a seed.
fn normals(n: usize, seed: u64) -> Vec<f32> {
    let t = Tensor::randn(0.0, 1.0, [n], DType::F32, &mut Rng::new(seed), &Device::cpu()).expect("randn");
    t.to_vec::<f32>().expect("values")
}

const LENGTHS: [usize; 12] = [0, 1, 2, 7, 8, 15, 16, 17, 63, 64, 65, 1001];

fn check_dot<W: Weight>(to_w: impl Fn(f32) -> W) {
    for isa in paths() {
        for (s, &n) in LENGTHS.iter().enumerate() {
            let x = normals(n, s as u64);
            let w: Vec<W> = normals(n, 100 + s as u64).into_iter().map(&to_w).collect();
            let want: f64 = x.iter().zip(&w).map(|(&a, &b)| a as f64 * b.to_f32() as f64).sum();
            let size: f64 = x.iter().zip(&w).map(|(&a, &b)| (a as f64 * b.to_f32() as f64).abs()).sum();
            let got = W::dot(isa, &x, &w) as f64;
            let tol = 2e-6 * ((n + 1) as f64).sqrt() * size.max(1e-30);
            assert!((got - want).abs() <= tol, "{isa:?} dot of {n}: {got} vs {want}");
        }
    }
}

#[test]
fn dot_products_on_every_path_and_weight_type() {
    check_dot(|v| v);
    check_dot(bf16::from_f32);
    check_dot(f16::from_f32);
}

fn check_axpy4<W: Weight>(to_w: impl Fn(f32) -> W) {
    for isa in paths() {
        for (s, &n) in LENGTHS.iter().enumerate() {
            let rows: Vec<Vec<W>> =
                (0..4).map(|r| normals(n, 10 * s as u64 + r).into_iter().map(&to_w).collect()).collect();
            let a = [0.5f32, -1.25, 2.0, 0.0];
            let y0 = normals(n, 999);
            let mut y = y0.clone();
            W::axpy4(isa, &mut y, a, [&rows[0], &rows[1], &rows[2], &rows[3]]);
            for j in 0..n {
                let want = y0[j] as f64 + (0..4).map(|r| a[r] as f64 * rows[r][j].to_f32() as f64).sum::<f64>();
                assert!((y[j] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "{isa:?} axpy4 {n} at {j}");
            }
        }
    }
}

#[test]
fn scaled_row_sums_on_every_path_and_weight_type() {
    check_axpy4(|v| v);
    check_axpy4(bf16::from_f32);
    check_axpy4(f16::from_f32);
}

/// `R` query rows against `n` key rows at a stride wider than a row (a cache's keys of one kv
/// head, scored for a GQA group's stacked query heads), then `R` rows of probabilities times
/// `m` value rows (`cache_rows::dots`, `cache_rows::axpys`): K of 1-4 vectors and a tail, key
/// counts not a multiple of 4 or 2, value widths through every register block (128, 64, 32, 16
/// lanes on AVX-512; 32, 16, 8 on AVX2) and a tail, with and without accumulation.
fn check_cache_rows<W: Weight, const R: usize>(to_w: &impl Fn(f32) -> W) {
    for isa in paths() {
        for (k, n, gap) in [(1, 1, 0), (13, 7, 3), (16, 4, 0), (128, 9, 128), (37, 5, 1), (64, 2, 0)] {
            let stride = k + gap;
            let w: Vec<W> = normals(n * stride, (k * n) as u64).into_iter().map(to_w).collect();
            let xs: Vec<Vec<f32>> = (0..R).map(|r| normals(k, 7 + k as u64 + 100 * r as u64)).collect();
            for accumulate in [false, true] {
                let start: Vec<Vec<f32>> = (0..R).map(|r| normals(n, 3 + r as u64)).collect();
                let mut outs = start.clone();
                let mut rows = outs.iter_mut();
                let out_rows: [&mut [f32]; R] = std::array::from_fn(|_| rows.next().unwrap().as_mut_slice());
                cache_rows::dots(isa, std::array::from_fn(|r| xs[r].as_slice()), &w, stride, out_rows, accumulate);
                for r in 0..R {
                    for (j, &got) in outs[r].iter().enumerate() {
                        let key = &w[j * stride..][..k];
                        let terms = xs[r].iter().zip(key).map(|(&a, &b)| a as f64 * b.to_f32() as f64);
                        let (dot, size) = terms.fold((0.0, 0.0), |(s, z), t| (s + t, z + t.abs()));
                        let want = if accumulate { start[r][j] as f64 + dot } else { dot };
                        let tol = 2e-6 * ((k + 2) as f64).sqrt() * (size + start[r][j].abs() as f64).max(1e-30);
                        assert!(
                            (got as f64 - want).abs() <= tol,
                            "{isa:?} dots of {R} rows, k {k}, row {r} key {j} of {n}: {got} vs {want}"
                        );
                    }
                }
            }
        }
        for (width, m, gap) in [(1, 3, 0), (7, 5, 2), (16, 1, 0), (200, 6, 8), (128, 9, 128), (48, 4, 0), (0, 2, 1)] {
            let stride = width + gap;
            let w: Vec<W> = normals(m * stride, (width * 10 + m) as u64).into_iter().map(to_w).collect();
            let a: Vec<Vec<f32>> = (0..R).map(|r| normals(m, 11 + 50 * r as u64)).collect();
            let y0: Vec<Vec<f32>> = (0..R).map(|r| normals(width, 12 + r as u64)).collect();
            let mut ys = y0.clone();
            let mut rows = ys.iter_mut();
            let y_rows: [&mut [f32]; R] = std::array::from_fn(|_| rows.next().unwrap().as_mut_slice());
            cache_rows::axpys(isa, y_rows, std::array::from_fn(|r| a[r].as_slice()), &w, stride);
            for r in 0..R {
                for j in 0..width {
                    let term = |i: usize| a[r][i] as f64 * w[i * stride + j].to_f32() as f64;
                    let want = y0[r][j] as f64 + (0..m).map(term).sum::<f64>();
                    let size = y0[r][j].abs() as f64 + (0..m).map(|i| term(i).abs()).sum::<f64>();
                    let tol = 2e-6 * ((m + 2) as f64).sqrt() * size.max(1e-30);
                    assert!(
                        (ys[r][j] as f64 - want).abs() <= tol,
                        "{isa:?} axpys of {R} rows, width {width}, row {r} lane {j} over {m} value rows: {} vs {want}",
                        ys[r][j]
                    );
                }
            }
        }
    }
}

fn check_cache_rows_all_counts<W: Weight>(to_w: impl Fn(f32) -> W) {
    check_cache_rows::<W, 1>(&to_w);
    check_cache_rows::<W, 2>(&to_w);
    check_cache_rows::<W, 3>(&to_w);
    check_cache_rows::<W, 4>(&to_w);
}

#[test]
fn cache_rows_for_one_to_four_query_rows_on_every_path_and_weight_type() {
    check_cache_rows_all_counts(|v| v);
    check_cache_rows_all_counts(bf16::from_f32);
    check_cache_rows_all_counts(f16::from_f32);
}

#[test]
fn widening_is_exact_on_every_path() {
    for isa in paths() {
        for &n in &LENGTHS {
            let v = normals(n, 7);
            let b: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
            let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            let (mut wb, mut wh) = (vec![0.0f32; n], vec![0.0f32; n]);
            matvec::widen(isa, &b, &mut wb);
            matvec::widen(isa, &h, &mut wh);
            assert!(wb.iter().zip(&b).all(|(w, b)| *w == b.to_f32()), "{isa:?} bf16 widen of {n}");
            assert!(wh.iter().zip(&h).all(|(w, h)| *w == h.to_f32()), "{isa:?} f16 widen of {n}");
        }
    }
}

/// Transposition is a copy: exact, on every path, over sizes around the 8 x 8 blocks (whole
/// blocks, ragged rows, ragged columns, both), with strides past the widths on both sides, and
/// leaving the destination's cells outside the transpose as they were.
#[test]
fn transposition_is_exact_on_every_path() {
    use tensor::cpu::transpose::transpose;
    for isa in paths() {
        for rows in [1, 3, 8, 9, 16, 17, 31] {
            for cols in [1, 7, 8, 15, 16, 24, 33] {
                let (src_stride, dst_stride) = (cols + 3, rows + 5);
                let src = normals(rows * src_stride, (rows * 100 + cols) as u64);
                let mut dst = vec![f32::NAN; cols * dst_stride];
                transpose(isa, &src, src_stride, rows, cols, &mut dst, dst_stride);
                for c in 0..cols {
                    for r in 0..dst_stride {
                        let got = dst[c * dst_stride + r];
                        if r < rows {
                            assert_eq!(
                                got.to_bits(),
                                src[r * src_stride + c].to_bits(),
                                "{isa:?} {rows}x{cols} ({r}, {c})"
                            );
                        } else {
                            assert!(got.is_nan(), "{isa:?} {rows}x{cols}: wrote past the rows at ({r}, {c})");
                        }
                    }
                }
            }
        }
    }
}

/// The triple loop on [1, M, K] @ [1, K, N] (any views), in f64.
fn reference(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (a, b) = (a.to_dtype(DType::F64)?.contiguous()?, b.to_dtype(DType::F64)?.contiguous()?);
    let (m, k, n) = (a.dims()[0], a.dims()[1], b.dims()[1]);
    let (la, lb) = (Layout::contiguous([1, m, k]), Layout::contiguous([1, k, n]));
    let out = tensor::cpu::matmul::reference(&a.to_vec::<f64>()?, &la, &b.to_vec::<f64>()?, &lb);
    Tensor::from_vec(out, [m, n], &Device::cpu())
}

/// Every forced path, then back to automatic choice.
fn on_every_path(mut f: impl FnMut(Isa) -> Result<()>) -> Result<()> {
    let result = paths().into_iter().try_for_each(|isa| {
        isa::force(Some(isa));
        f(isa).map_err(|e| tensor::Error::shape("forced path", format!("{isa:?}: {e}")))
    });
    isa::force(None);
    result
}

#[test]
fn matmul_on_every_forced_path_with_linear_and_row_major_weights() -> Result<()> {
    let cpu = Device::cpu();
    // (m, k, n): matrix-vector (m = 1), a few rows (2 to 8 read each Linear weight row once for
    // all rows; against other layouts half weights stay matrix-vector up to 4), GEMMs, K not a
    // multiple of 16, and empty products.
    let shapes = [
        (1, 1, 1),
        (1, 17, 5),
        (1, 300, 129),
        (1, 2048, 64),
        (2, 1, 3),
        (3, 33, 70),
        (4, 16, 1),
        (5, 65, 9),
        (6, 1023, 40),
        (7, 47, 300),
        (8, 2048, 130),
        (9, 31, 17),
        (40, 130, 33),
        (1, 0, 3),
        (0, 4, 2),
    ];
    on_every_path(|_| {
        for (i, &(m, k, n)) in shapes.iter().enumerate() {
            let x = randn([m, k], i as u64, &cpu)?;
            let w = randn([n, k], 50 + i as u64, &cpu)?; // the Linear layout [out, in]
            let wr = randn([k, n], 80 + i as u64, &cpu)?; // row-major [K, N]
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let (wd, wrd) = (w.to_dtype(dtype)?, wr.to_dtype(dtype)?);
                let tol = 2e-5 * ((k + 1) as f64).sqrt();
                let what = |s: &str| format!("{m}x{k}x{n} {dtype} {s}");
                // The bf16 kernels (bf16 weights, AVX512_BF16) round the activations to bf16
                // first, by design (see gemm_bf16, matvec_bf16): their reference rounds them too.
                // The GEMM takes more than 4 rows; against a Linear's weight (unit row stride) the
                // matrix-vector and skinny kernels take fewer. Only up to 4 rows against a
                // row-major weight (the widening matrix-vector kernel) are not rounded.
                let want = |_: &Tensor, b: &Tensor| -> Result<Tensor> {
                    let linear = b.layout().strides()[0] == 1;
                    let rounds = m > 4 || linear;
                    let xr = if dtype == DType::BF16 && rounds && isa::bf16_gemm() {
                        x.to_dtype(DType::BF16)?.to_dtype(DType::F32)?
                    } else {
                        x.clone()
                    };
                    reference(&xr, b)
                };
                assert_close(&x.matmul(&wd.t()?)?, &want(&x, &wd.t()?)?, tol, 1e-5)
                    .map_err(|e| tensor::Error::shape("linear", format!("{}: {e}", what("x @ W^T"))))?;
                assert_close(&x.matmul(&wrd)?, &want(&x, &wrd)?, tol, 1e-5)
                    .map_err(|e| tensor::Error::shape("row-major", format!("{}: {e}", what("x @ W"))))?;
                // A strided activation (a column of a transposed matrix) and a strided weight.
                let xs = non_contiguous(&x)?;
                assert_close(&xs.matmul(&wd.t()?)?, &want(&xs, &wd.t()?)?, tol, 1e-5)?;
                let wn = non_contiguous(&wrd)?;
                assert_close(&x.matmul(&wn)?, &want(&x, &wn)?, tol, 1e-5)?;
            }
        }
        Ok(())
    })
}

/// Relative error in units of f32's epsilon.
fn ulps(got: f32, want: f64) -> f64 {
    (got as f64 - want).abs() / (want.abs() * f32::EPSILON as f64)
}

#[test]
fn exp_is_within_4_ulp_of_f64_and_handles_the_edges() {
    // A dense grid over the whole normal range, plus odd points.
    let xs: Vec<f32> = (0..200_001).map(|i| -87.0 + 175.7 * i as f32 / 200_000.0).collect();
    for isa in paths() {
        let mut out = vec![0.0f32; xs.len()];
        vmath::apply(isa, Act::Exp, &xs, None, &mut out);
        let worst = xs.iter().zip(&out).map(|(&x, &y)| ulps(y, (x as f64).exp())).fold(0.0, f64::max);
        assert!(worst <= 4.0, "{isa:?}: exp is {worst} ulp off");
        let edges = [f32::NEG_INFINITY, -200.0, -104.0, 0.0, -0.0, 89.0, 100.0, f32::INFINITY, f32::NAN];
        let mut e = vec![0.0f32; edges.len()];
        vmath::apply(isa, Act::Exp, &edges, None, &mut e);
        assert_eq!(&e[..4], &[0.0, 0.0, 0.0, 1.0], "{isa:?}");
        assert_eq!(e[4], 1.0);
        assert!(e[5].is_infinite() && e[6].is_infinite() && e[7].is_infinite(), "{isa:?}: {e:?}");
        assert!(e[8].is_nan(), "{isa:?}");
        // Subnormal results: within f32's smallest normal of the truth.
        let tiny = [-88.0f32, -95.0, -100.0];
        let mut t = [0.0f32; 3];
        vmath::apply(isa, Act::Exp, &tiny, None, &mut t);
        for (x, y) in tiny.iter().zip(t) {
            assert!((y as f64 - (*x as f64).exp()).abs() < f32::MIN_POSITIVE as f64, "{isa:?}: exp({x}) = {y}");
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn sigmoid_silu_gelu_and_the_gated_product_against_f64() {
    let xs: Vec<f32> = (0..20_003).map(|i| -30.0 + 60.0 * i as f32 / 20_002.0).collect();
    let up = normals(xs.len(), 3);
    let reference = |act: Act, x: f64| match act {
        Act::Exp => x.exp(),
        Act::Sigmoid => sigmoid(x),
        Act::Silu => x * sigmoid(x),
        Act::GeluTanh => 0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)).tanh()),
    };
    for isa in paths() {
        for act in [Act::Sigmoid, Act::Silu, Act::GeluTanh] {
            for len in [xs.len(), 13, 0] {
                let mut out = vec![0.0f32; len];
                vmath::apply(isa, act, &xs[..len], Some(&up[..len]), &mut out);
                for i in 0..len {
                    let want = reference(act, xs[i] as f64) * up[i] as f64;
                    let err = (out[i] as f64 - want).abs();
                    assert!(
                        err <= 1e-7 + 1e-6 * want.abs(),
                        "{isa:?} {act:?}({}) * {}: {} vs {want}",
                        xs[i],
                        up[i],
                        out[i]
                    );
                }
            }
        }
    }
}

#[test]
fn max_sum_of_squares_and_scaling_on_every_path() {
    for isa in paths() {
        for (s, &n) in LENGTHS.iter().enumerate() {
            let x = normals(n, 40 + s as u64);
            let want_max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            assert_eq!(vmath::max(isa, &x), want_max, "{isa:?} max of {n}");
            let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
            assert!((vmath::sum_squares(isa, &x) as f64 - ss).abs() <= 1e-6 * (1.0 + ss), "{isa:?} sum of squares {n}");
            let g = normals(n, 41);
            let mut y = x.clone();
            vmath::scale(isa, &mut y, 0.5, Some(&g));
            assert!(y.iter().zip(&x).zip(&g).all(|((y, x), g)| *y == x * 0.5 * g), "{isa:?} scale {n}");
        }
    }
}

/// f32 ops with the vectorised kernels against the same ops in f64 (the generic kernels).
#[test]
fn softmax_rms_norm_glu_and_activations_on_every_forced_path() -> Result<()> {
    let cpu = Device::cpu();
    let mut x = randn([7, 37], 5, &cpu)?.mul_scalar(4.0)?;
    // A row with -inf (a masked position) and a fully masked row.
    let mut rows = x.to_vec::<f32>()?;
    rows[3] = f32::NEG_INFINITY;
    rows[37..74].iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
    x = Tensor::from_vec(rows, [7, 37], &cpu)?;
    let big = randn([64, 1025], 6, &cpu)?; // large enough to run in parallel
    let w = randn([37], 7, &cpu)?;
    let up = randn([7, 37], 8, &cpu)?;
    on_every_path(|_| {
        for t in [&x, &non_contiguous(&x)?, &big] {
            let t64 = t.to_dtype(DType::F64)?;
            assert_close(&t.softmax(-1)?, &t64.softmax(-1)?, 1e-7, 2e-6)?;
            assert_close(&t.log_softmax(-1)?, &t64.log_softmax(-1)?, 2e-6, 2e-6)?;
        }
        let finite = randn([7, 37], 9, &cpu)?;
        for t in [&finite, &non_contiguous(&finite)?] {
            let t64 = t.to_dtype(DType::F64)?;
            let w64 = w.to_dtype(DType::F64)?;
            for add_unit_offset in [false, true] {
                let spec = RmsNormSpec { eps: 1e-6, add_unit_offset };
                assert_close(&t.rms_norm(Some(&w), spec)?, &t64.rms_norm(Some(&w64), spec)?, 1e-6, 2e-6)?;
                assert_close(&t.rms_norm(None, spec)?, &t64.rms_norm(None, spec)?, 1e-6, 2e-6)?;
            }
            let u64 = up.to_dtype(DType::F64)?;
            for act in [GluActivation::Silu, GluActivation::GeluTanh] {
                assert_close(&t.glu(&up, act)?, &t64.glu(&u64, act)?, 1e-7, 2e-6)?;
                assert_close(&t.glu(&non_contiguous(&up)?, act)?, &t64.glu(&u64, act)?, 1e-7, 2e-6)?;
            }
            assert_close(&t.silu()?, &t64.silu()?, 1e-7, 2e-6)?;
            assert_close(&t.gelu_tanh()?, &t64.gelu_tanh()?, 1e-7, 2e-6)?;
            assert_close(&t.exp()?, &t64.exp()?, 0.0, 1e-6)?;
            assert_close(&t.sigmoid()?, &t64.sigmoid()?, 1e-7, 2e-6)?;
        }
        Ok(())
    })
}
