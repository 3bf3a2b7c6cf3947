//! `QMatrix`: products on Q8_0 / Q4_0 blocks, every kernel this CPU runs against the scalar one
//! and against f64 sums of the decoded operands, on odd shapes (k a multiple of the block size of
//! 32, as the formats require; n odd; m from 1 to 9 and 64).

use tensor::quant::qmatmul::{QKernel, QuantizedActs};
use tensor::quant::{GgmlType, QMatrix};
use tensor::{Device, Tensor};

fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 3.0
        })
        .collect()
}

/// Σ_k w[j,k] x̂[i,k] in f64 over the decoded weights and the decoded (Q8_0-quantized)
/// activations: what every kernel computes up to the order of its f32 additions. Also
/// Σ|w x̂|, the scale of that rounding.
fn reference(w: &QMatrix, x: &[f32], m: usize) -> (Vec<f64>, Vec<f64>) {
    let (n, k) = (w.rows(), w.cols());
    let wd = w.dequantize().unwrap();
    let acts = QuantizedActs::new(x, k);
    let xd: Vec<f64> = acts.codes.iter().enumerate().map(|(i, &c)| c as f64 * acts.scales[i / 32] as f64).collect();
    let mut want = vec![0.0; m * n];
    let mut scale = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for t in 0..k {
                let p = wd[j * k + t] as f64 * xd[i * k + t];
                want[i * n + j] += p;
                scale[i * n + j] += p.abs();
            }
        }
    }
    (want, scale)
}

fn kernels() -> Vec<QKernel> {
    QKernel::ALL.into_iter().filter(|k| k.available()).collect()
}

#[test]
fn every_kernel_matches_the_decoded_product_on_odd_shapes() {
    eprintln!("kernels on this CPU: {:?}", kernels());
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
        for (n, k) in [(1, 32), (7, 96), (33, 160), (5, 1024)] {
            let w = QMatrix::quantize(ty, n, k, &values(n as u64 * 31 + k as u64, n * k)).unwrap();
            for m in (1..=9).chain([31, 64]) {
                let x = values(m as u64 + 7, m * k);
                let (want, scale) = reference(&w, &x, m);
                let scalar = w.matmul_blocks(&x, m, QKernel::Scalar);
                for kernel in kernels() {
                    let got = w.matmul_blocks(&x, m, kernel);
                    for (idx, (g, (want, scale))) in got.iter().zip(want.iter().zip(&scale)).enumerate() {
                        // Each block's integer sum is exact; only the f32 additions of the
                        // scaled block sums (at most k/32 + 8 of them) round: 1e-6 of Σ|w x|
                        // per addition bounds it.
                        let tol = 1e-6 * (k / 32 + 8) as f64 * scale + 1e-30;
                        assert!(
                            (*g as f64 - want).abs() <= tol,
                            "{ty} {kernel:?} n={n} k={k} m={m} out {idx}: {g} vs {want}"
                        );
                        assert!((*g - scalar[idx]).abs() as f64 <= 2.0 * tol, "{ty} {kernel:?} vs scalar");
                    }
                }
            }
        }
    }
}

/// From `GEMM_MIN_ROWS` rows on, panels of decoded weights go through the GEMM, with the
/// activations unquantized: the result is then the product of the decoded weights with `x`.
/// Where the bf16 GEMM runs (AVX512_BF16), the panels are bf16 and the GEMM rounds the
/// activations to bf16 too, so the reference rounds both.
#[test]
fn the_gemm_path_matches_the_decoded_weights() {
    let cpu = Device::cpu();
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let (n, k, m) = (301, 96, 40);
        let w = QMatrix::quantize(ty, n, k, &values(5, n * k)).unwrap();
        let x = values(6, m * k);
        let wd = Tensor::from_vec(w.dequantize().unwrap(), [n, k], &cpu).unwrap();
        let xt = Tensor::from_vec(x.clone(), [m, k], &cpu).unwrap();
        let round = |t: &Tensor| -> Tensor {
            if tensor::cpu::isa::bf16_gemm() {
                t.to_dtype(tensor::DType::BF16).unwrap().to_dtype(tensor::DType::F32).unwrap()
            } else {
                t.clone()
            }
        };
        let want = round(&xt).matmul(&round(&wd).t().unwrap()).unwrap();
        let got = w.matmul(&xt).unwrap();
        assert!(m >= tensor::quant::GEMM_MIN_ROWS);
        tensor::testing::assert_close(&got, &want, 1e-4, 1e-5).unwrap();
    }
}

/// Against unquantized activations the error is that of rounding each activation to its block's
/// step d = max|x|/127: at most Σ_k |w_k| d/2 (and far less on average).
#[test]
fn activation_rounding_stays_within_half_a_step_per_weight() {
    let cpu = Device::cpu();
    let (n, k) = (9, 256);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let w = QMatrix::quantize(ty, n, k, &values(11, n * k)).unwrap();
        let wd = w.dequantize().unwrap();
        let x = values(12, k);
        let got = w.matmul(&Tensor::from_vec(x.clone(), [1, k], &cpu).unwrap()).unwrap().to_vec::<f32>().unwrap();
        let steps: Vec<f32> = x.chunks(32).map(|b| b.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0).collect();
        for j in 0..n {
            let exact: f64 = (0..k).map(|t| wd[j * k + t] as f64 * x[t] as f64).sum();
            let bound: f64 = (0..k).map(|t| wd[j * k + t].abs() as f64 * steps[t / 32] as f64 * 0.5).sum();
            assert!((got[j] as f64 - exact).abs() <= bound * 1.01 + 1e-4, "{ty} row {j}: {} vs {exact}", got[j]);
        }
    }
}

#[test]
fn shapes_and_formats_are_checked() {
    assert!(QMatrix::new(GgmlType::Q8_0, 2, 48, vec![0; 200]).is_err(), "k not a multiple of 32");
    assert!(QMatrix::new(GgmlType::Q8_0, 2, 32, vec![0; 67]).is_err(), "too few bytes");
    assert!(QMatrix::new(GgmlType::Q4_K, 1, 256, vec![0; 144]).is_err(), "no kernel for Q4_K");
    let w = QMatrix::new(GgmlType::Q4_0, 3, 64, vec![0; 3 * 36]).unwrap();
    let cpu = Device::cpu();
    assert!(w.matmul(&Tensor::zeros([2, 32], tensor::DType::F32, &cpu).unwrap()).is_err());
    assert!(w.gather_rows(&[3]).is_err());
    assert_eq!(w.gather_rows(&[2, 0]).unwrap().len(), 128);
}
