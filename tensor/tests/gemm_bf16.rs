//! The bf16 dot-product GEMM (`tensor::cpu::gemm_bf16`): the `vdpbf16ps` kernel against its
//! plain-Rust reference and an f64 triple loop, over odd shapes (M, N, K not multiples of the
//! 8x32 tile or the 256-value K block, K odd so the last pair is padded; K past AMX's chunk of
//! 1,024 values, so its blocks of C carry over between chunks; N of 41 panels, so AMX's tasks
//! end in groups of fewer than four panels), the Linear ([N, K]
//! stored, transposed view) and row-major [K, N] weight layouts, strided activations and
//! batches; then the whole `matmul` op with the bf16 GEMM switched on and off.
//!
//! Tolerances. The kernel rounds each activation to bf16 (round to nearest even: a relative
//! error of at most 2^-8, half an ulp of its 8-bit significand) and then sums exact products in f32. So:
//! - against an f64 sum over the *bf16-rounded* activations, only f32 accumulation error is
//!   left: we allow 2e-6 sqrt(K+1) sum|x w| (as the other kernel tests do);
//! - against an f64 sum over the *unrounded* activations, the rounding adds up to
//!   2^-8 sum|x w|: we allow 2^-8 sum|x w| plus the accumulation term.
//!
//! The AVX512_BF16 kernel only runs on CPUs that have it; elsewhere the tests of it print a
//! note and check the reference alone. Where the CPU also has AMX-BF16, the kernel tests run
//! twice, on AMX tiles (`gemm_bf16_amx`) and with AMX switched off (`vdpbf16ps`).

use std::sync::Mutex;

use half::bf16;
use tensor::cpu::gemm_bf16::{self, View};
use tensor::cpu::isa;
use tensor::{DType, Device, Result, Rng, Tensor};

/// Held by the tests that switch paths process-wide, so they do not see each other's switches.
static SWITCHES: Mutex<()> = Mutex::new(());

fn normals(n: usize, seed: u64) -> Vec<f32> {
    let t = Tensor::randn(0.0, 1.0, [n], DType::F32, &mut Rng::new(seed), &Device::cpu()).expect("randn");
    t.to_vec::<f32>().expect("values")
}

fn round(x: f32) -> f32 {
    bf16::from_f32(x).to_f32()
}

/// f64 sums of `x[i, :] . w[:, j]` and of their absolute terms, x row-major [m, k], w given by
/// element accessor.
fn exact(m: usize, n: usize, k: usize, x: &[f32], w: impl Fn(usize, usize) -> f32) -> (Vec<f64>, Vec<f64>) {
    let mut sums = vec![0.0; m * n];
    let mut sizes = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for kk in 0..k {
                let t = x[i * k + kk] as f64 * w(kk, j) as f64;
                sums[i * n + j] += t;
                sizes[i * n + j] += t.abs();
            }
        }
    }
    (sums, sizes)
}

fn check(what: &str, got: &[f32], want: &[f64], size: &[f64], tol: impl Fn(f64) -> f64) {
    for (idx, ((&g, &w), &s)) in got.iter().zip(want).zip(size).enumerate() {
        let t = tol(s.max(1e-30));
        assert!((g as f64 - w).abs() <= t, "{what}: element {idx}: {g} vs {w} (tolerance {t})");
    }
}

const MS: [usize; 6] = [1, 5, 7, 13, 64, 130];

/// The kernels to check, as `isa::force_amx` settings: AMX on and off where the CPU has it.
fn kernels() -> Vec<(&'static str, bool)> {
    if isa::amx() { vec![("amx", true), ("vdpbf16ps", false)] } else { vec![("vdpbf16ps", false)] }
}

/// `f` with AMX switched as `amx` says, the switch restored after.
fn with_amx<R>(amx: bool, f: impl FnOnce() -> R) -> R {
    isa::force_amx(Some(amx));
    let r = f();
    isa::force_amx(None);
    r
}
const KS: [usize; 7] = [1, 3, 17, 257, 1023, 1024, 2049];
const NS: [usize; 6] = [1, 31, 33, 64, 1000, 1300];

#[test]
fn kernel_and_reference_match_f64_on_odd_shapes_and_both_weight_layouts() {
    let _guard = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let kernel = gemm_bf16::available();
    if !kernel {
        println!("note: this CPU lacks AVX512_BF16; checking the reference only");
    }
    let mut seed = 0;
    for &m in &MS {
        for &k in &KS {
            for &n in &NS {
                // Keep the f64 reference loop affordable.
                if m * n * k > 40_000_000 {
                    continue;
                }
                seed += 1;
                let x = normals(m * k, seed);
                let w: Vec<bf16> = normals(n * k, 1000 + seed).into_iter().map(bf16::from_f32).collect();
                let xr: Vec<f32> = x.iter().map(|&v| round(v)).collect();
                // Linear layout: w stored [n, k]; B = w^T, element (kk, j) at j * k + kk.
                let linear = View { data: &w, rs: 1, cs: k };
                // Row-major [k, n]: the same numbers read as B directly.
                let row_major = View { data: &w, rs: n, cs: 1 };
                for (name, b, at) in [
                    (
                        "x @ W^T",
                        linear,
                        Box::new(|kk: usize, j: usize| w[j * k + kk].to_f32()) as Box<dyn Fn(_, _) -> _>,
                    ),
                    ("x @ W", row_major, Box::new(|kk: usize, j: usize| w[kk * n + j].to_f32())),
                ] {
                    let (want_r, size) = exact(m, n, k, &xr, &at);
                    let (want, _) = exact(m, n, k, &x, &at);
                    let acc = |s: f64| 2e-6 * ((k + 1) as f64).sqrt() * s;
                    let a = View { data: &x, rs: k, cs: 1 };
                    let what = format!("{m}x{k}x{n} {name}");
                    let reference = gemm_bf16::reference(m, n, k, a, b);
                    check(&format!("reference {what}"), &reference, &want_r, &size, acc);
                    for (path, amx) in kernels().into_iter().filter(|_| kernel) {
                        let mut got = vec![f32::NAN; m * n];
                        with_amx(amx, || gemm_bf16::gemm(m, n, k, a, b, &mut got, n, true));
                        check(&format!("{path} {what}"), &got, &want_r, &size, acc);
                        check(&format!("{path} vs unrounded {what}"), &got, &want, &size, |s| {
                            s * 2f64.powi(-8) + acc(s)
                        });
                    }
                }
            }
        }
    }
}

#[test]
fn kernel_reads_strided_activations_and_writes_inside_a_wider_output() {
    if !gemm_bf16::available() {
        println!("note: this CPU lacks AVX512_BF16; skipped");
        return;
    }
    let _guard = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    // 13 rows: partial blocks only; 40: a whole 32 x 32 block (which AMX stores straight from
    // its tiles, at the output's row stride) beside partial ones.
    for (path, amx) in kernels() {
        for (m, n, k) in [(13, 70, 45), (40, 70, 45), (40, 70, 2049)] {
            // Activations as the transposed view of a stored [k, m]: element (i, kk) at kk * m + i.
            let xt = normals(k * m, 7);
            let x: Vec<f32> = (0..m * k).map(|idx| xt[(idx % k) * m + idx / k]).collect();
            let w: Vec<bf16> = normals(n * k, 8).into_iter().map(bf16::from_f32).collect();
            let b = View { data: &w, rs: 1, cs: k };
            let want = gemm_bf16::reference(m, n, k, View { data: &x, rs: k, cs: 1 }, b);
            // Output rows of 100 with sentinels around the m x n block, which must survive.
            let ldd = 100;
            let mut out = vec![-7.0f32; m * ldd];
            with_amx(amx, || gemm_bf16::gemm(m, n, k, View { data: &xt, rs: 1, cs: m }, b, &mut out, ldd, false));
            for i in 0..m {
                for j in 0..ldd {
                    let got = out[i * ldd + j];
                    if j < n {
                        let w = want[i * n + j];
                        assert!((got - w).abs() <= 1e-4 * (1.0 + w.abs()), "{path} {m}x{n} ({i}, {j}): {got} vs {w}");
                    } else {
                        assert_eq!(got, -7.0, "{path} {m}x{n} ({i}, {j}) outside the product was written");
                    }
                }
            }
        }
    }
    // k = 0 writes zeros.
    let mut out = vec![1.0f32; 6];
    gemm_bf16::gemm(2, 3, 0, View { data: &[], rs: 0, cs: 1 }, View { data: &[], rs: 1, cs: 0 }, &mut out, 3, true);
    assert_eq!(out, vec![0.0; 6]);
}

/// The f64 product of bf16-rounded activations and the weights, for the whole-op tests.
fn rounded_reference(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.to_dtype(DType::BF16)?.to_dtype(DType::F64)?.matmul(&w.to_dtype(DType::F64)?)
}

fn max_rel(got: &Tensor, want: &Tensor, size: &Tensor) -> Result<f64> {
    let (g, w, s) = (got.to_vec::<f32>()?, want.to_vec::<f64>()?, size.to_vec::<f64>()?);
    Ok(g.iter().zip(&w).zip(&s).map(|((&g, &w), &s)| (g as f64 - w).abs() / s.max(1e-30)).fold(0.0, f64::max))
}

#[test]
fn matmul_op_takes_the_bf16_gemm_when_on_and_widens_when_off() -> Result<()> {
    let _guard = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let cpu = Device::cpu();
    let on = gemm_bf16::available() && isa::active() == isa::Isa::Avx512;
    if !on {
        println!("note: no AVX512_BF16 on the active path; checking the widening path only");
    }
    let mut rng = Rng::new(3);
    // Batched, with m above the skinny products' cut-off (8 rows), odd k, both weight layouts.
    for &(batch, m, k, n) in &[(3usize, 9usize, 17usize, 33usize), (2, 64, 1023, 31), (1, 130, 64, 1000)] {
        let x = Tensor::randn(0.0, 1.0, [batch, m, k], DType::F32, &mut rng, &cpu)?;
        let w = Tensor::randn(0.0, 1.0, [batch, n, k], DType::F32, &mut rng, &cpu)?.to_dtype(DType::BF16)?;
        let wr = Tensor::randn(0.0, 1.0, [batch, k, n], DType::F32, &mut rng, &cpu)?.to_dtype(DType::BF16)?;
        for b in [w.transpose(1, 2)?, wr] {
            let exact = x.to_dtype(DType::F64)?.matmul(&b.to_dtype(DType::F64)?)?;
            let size = x.to_dtype(DType::F64)?.abs()?.matmul(&b.to_dtype(DType::F64)?.abs()?)?;
            let rounded = rounded_reference(&x, &b)?;
            let acc = 2e-6 * ((k + 1) as f64).sqrt();
            isa::force_bf16_gemm(Some(false));
            let widened = x.matmul(&b);
            isa::force_bf16_gemm(None);
            let widened = widened?;
            assert!(max_rel(&widened, &exact, &size)? <= acc, "{batch}x{m}x{k}x{n}: widening path");
            if on {
                isa::force_bf16_gemm(Some(true));
                let dot = x.matmul(&b);
                isa::force_bf16_gemm(None);
                let dot = dot?;
                assert!(max_rel(&dot, &rounded, &size)? <= acc, "{batch}x{m}x{k}x{n}: bf16 GEMM vs rounded");
                let err = max_rel(&dot, &exact, &size)?;
                assert!(err <= 2f64.powi(-8) + acc, "{batch}x{m}x{k}x{n}: bf16 GEMM vs exact {err}");
            }
        }
    }
    Ok(())
}

#[test]
fn forced_narrow_paths_do_not_take_the_bf16_gemm() {
    let _guard = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    for path in [isa::Isa::Scalar, isa::Isa::Avx2] {
        isa::force(Some(path));
        let taken = isa::bf16_gemm();
        isa::force(None);
        assert!(!taken, "{path:?} must keep the widening GEMM");
    }
    isa::force_bf16_gemm(Some(false));
    let (taken, amx) = (isa::bf16_gemm(), isa::amx());
    isa::force_bf16_gemm(None);
    assert!(!taken, "the switch turns it off");
    assert!(!amx, "AMX runs only as the bf16 GEMM");
    isa::force(Some(isa::Isa::Avx2));
    let amx = isa::amx();
    isa::force(None);
    assert!(!amx, "a forced avx2 path keeps AMX off too");
}

/// The AMX path keeps its packed activations from product to product on the calling thread.
/// A product after one whose activations were all NaN must not see them: its pairs past K/2
/// (K odd, and short of a whole tile) meet zero-padded weights, and a NaN left there would show
/// in every output. (Rows past M would not show: their outputs are never stored.)
#[test]
fn a_kept_packing_buffer_carries_nothing_into_the_next_product() {
    if !gemm_bf16::available() {
        println!("note: this CPU lacks AVX512_BF16; skipped");
        return;
    }
    let _guard = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    for (path, amx) in kernels() {
        let (m, k, n) = (40, 64, 33);
        let nan = vec![f32::NAN; m * k];
        let w: Vec<bf16> = normals(n * k, 1).into_iter().map(bf16::from_f32).collect();
        let mut out = vec![0f32; m * n];
        let b = View { data: &w, rs: 1, cs: k };
        with_amx(amx, || gemm_bf16::gemm(m, n, k, View { data: &nan, rs: k, cs: 1 }, b, &mut out, n, false));
        assert!(out.iter().all(|v| v.is_nan()), "{path}: NaN activations give NaN outputs");
        let (m, k) = (5, 33);
        let x = normals(m * k, 2);
        let w = &w[..n * k];
        let b = View { data: w, rs: 1, cs: k };
        let a = View { data: &x, rs: k, cs: 1 };
        let mut got = vec![f32::NAN; m * n];
        with_amx(amx, || gemm_bf16::gemm(m, n, k, a, b, &mut got, n, false));
        let want = gemm_bf16::reference(m, n, k, a, b);
        for (g, r) in got.iter().zip(&want) {
            assert!((g - r).abs() <= 1e-4 * (1.0 + r.abs()), "{path}: {g} vs the reference {r}");
        }
    }
}
