//! bf16 weights packed at load into the bf16 GEMMs' panels (`tensor::cpu::bf16_panels`): the
//! packing keeps every value (unpacked back, bit for bit), and products on the panels (up to 16
//! rows: the panels' own `vdpbf16ps` kernel; more: the AMX GEMM, or the `vdpbf16ps` GEMM,
//! reading the panels) equal an f64 sum over the bf16-rounded activations, over odd shapes: N
//! not a multiple of the 32-feature panel, K odd (the last pair's high half padded) and K past
//! both GEMMs' K blocks (512 and 1,024 values: blocks of C carried between them), M of one row,
//! of part of a tile and past one block of 32 rows.
//!
//! Tolerance: as `gemm_bf16.rs`, the activations are rounded to bf16 before the products, so
//! against the rounded activations only f32 accumulation is left: 2e-6 sqrt(K+1) sum|x w|.
//!
//! The fast paths run only where the CPU has AVX512_BF16 (AMX-BF16 for the AMX GEMM); each
//! test forces every path this CPU has in turn, down to the plain-Rust reference.

use std::sync::Mutex;

use half::bf16;
use tensor::cpu::bf16_panels::{self, Bf16Panels};
use tensor::cpu::isa;
use tensor::{DType, Device, Rng, Tensor};

static SWITCHES: Mutex<()> = Mutex::new(());

fn normals(n: usize, seed: u64) -> Vec<f32> {
    let t = Tensor::randn(0.0, 1.0, [n], DType::F32, &mut Rng::new(seed), &Device::cpu()).expect("randn");
    t.to_vec::<f32>().expect("values")
}

fn weights(n: usize, k: usize, seed: u64) -> Vec<bf16> {
    normals(n * k, seed).into_iter().map(bf16::from_f32).collect()
}

/// `x [m, k] @ w[n, k]^T` in f64 over the bf16-rounded activations, with the sums of |terms|.
fn exact(m: usize, n: usize, k: usize, x: &[f32], w: &[bf16]) -> (Vec<f64>, Vec<f64>) {
    let (mut sums, mut sizes) = (vec![0.0; m * n], vec![0.0; m * n]);
    for i in 0..m {
        for j in 0..n {
            for kk in 0..k {
                let t = bf16::from_f32(x[i * k + kk]).to_f64() * w[j * k + kk].to_f64();
                sums[i * n + j] += t;
                sizes[i * n + j] += t.abs();
            }
        }
    }
    (sums, sizes)
}

const SHAPES: [(usize, usize); 6] = [(1, 1), (31, 3), (33, 64), (70, 129), (64, 1024), (45, 2051)];

#[test]
fn packing_keeps_every_value() {
    for (n, k) in SHAPES {
        let w = weights(n, k, (n * 1000 + k) as u64);
        let panels = Bf16Panels::from_rows(&w, n, k);
        assert_eq!((panels.rows(), panels.cols()), (n, k));
        let back = panels.to_rows();
        assert!(back.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()), "[{n}, {k}] changed when packed");
    }
}

/// Panels past 2 MiB live in a mapping of their own (on huge pages where the OS gives them):
/// the same values, and a decoding step's product the same as the reference's.
#[test]
fn panels_past_two_mib_keep_every_value_and_multiply_the_same() {
    let (n, k) = (1100, 1024); // 35 panels of 512 pairs x 32 lanes: 2.3 MB
    let w = weights(n, k, 11);
    let panels = Bf16Panels::from_rows(&w, n, k);
    let back = panels.to_rows();
    assert!(back.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()), "[{n}, {k}] changed when packed");
    let x = normals(k, 12);
    let (want, size) = exact(1, n, k, &x, &w);
    let got: Vec<f32> = panels
        .matmul(&Tensor::from_vec(x.clone(), [1, k], &Device::cpu()).expect("x"))
        .expect("matmul")
        .to_vec()
        .expect("values");
    for (idx, ((&g, &e), &s)) in got.iter().zip(&want).zip(&size).enumerate() {
        let tol = 2e-6 * ((k + 1) as f64).sqrt() * s.max(1e-30);
        assert!((g as f64 - e).abs() <= tol, "element {idx}: {g} vs {e} (tolerance {tol})");
    }
}

#[test]
fn products_on_panels_equal_the_sums_on_every_path() {
    let _guard = SWITCHES.lock().unwrap_or_else(|p| p.into_inner());
    if !Bf16Panels::worth_packing() {
        eprintln!("note: no AVX512_BF16 here; the products run on the reference only");
    }
    // (AMX, the bf16 GEMM): AMX where the CPU has it, then the `vdpbf16ps` GEMM, then the
    // reference; a path the CPU lacks falls through to the next.
    for (amx, gemm) in [(None, None), (Some(false), None), (None, Some(false))] {
        isa::force_amx(amx);
        isa::force_bf16_gemm(gemm);
        let path = format!("amx {amx:?}, bf16 gemm {gemm:?}");
        for (n, k) in SHAPES {
            let w = weights(n, k, (7 * n + k) as u64);
            let panels = Bf16Panels::from_rows(&w, n, k);
            for m in [1, 2, 9, 16, 17, 33, 70] {
                let x = normals(m * k, (m * 31 + n + k) as u64);
                let (want, size) = exact(m, n, k, &x, &w);
                let xt = Tensor::from_vec(x.clone(), [m, k], &Device::cpu()).expect("x");
                let got: Vec<f32> = panels.matmul(&xt).expect("matmul").to_vec().expect("values");
                let mut reference = vec![0.0; m * n];
                bf16_panels::reference(&panels, &x, m, &mut reference);
                for (what, got) in [("matmul", &got), ("reference", &reference)] {
                    for (idx, ((&g, &e), &s)) in got.iter().zip(&want).zip(&size).enumerate() {
                        let tol = 2e-6 * ((k + 1) as f64).sqrt() * s.max(1e-30);
                        assert!(
                            (g as f64 - e).abs() <= tol,
                            "{what} ({path}) [{m}, {k}] x [{n}, {k}]^T: element {idx}: {g} vs {e} (tolerance {tol})"
                        );
                    }
                }
            }
        }
    }
    isa::force_amx(None);
    isa::force_bf16_gemm(None);
}

#[test]
fn wrong_inputs_are_errors() {
    let cpu = Device::cpu();
    let f32_weight = Tensor::zeros([4, 8], DType::F32, &cpu).expect("zeros");
    assert!(Bf16Panels::pack(&f32_weight).is_err());
    let stack = Tensor::zeros([2, 4, 8], DType::BF16, &cpu).expect("zeros");
    assert!(Bf16Panels::pack(&stack).is_err());
    let panels = Bf16Panels::pack(&Tensor::zeros([4, 8], DType::BF16, &cpu).expect("zeros")).expect("pack");
    let wrong_k = Tensor::zeros([3, 7], DType::F32, &cpu).expect("zeros");
    assert!(panels.matmul(&wrong_k).is_err());
    let batched = Tensor::ones([2, 3, 8], DType::F32, &cpu).expect("ones");
    let y = panels.matmul(&batched).expect("batched rows");
    assert_eq!(y.dims(), &[2, 3, 4]);
    assert!(y.to_vec::<f32>().expect("values").iter().all(|&v| v == 0.0));
}
