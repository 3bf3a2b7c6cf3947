//! `QMatrix`: products on Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q4_K / Q5_K / Q6_K / MXFP4 / FP8_E4M3
//! blocks, every kernel this CPU runs
//! against the scalar one and against f64 sums of the decoded operands, on odd shapes (k a
//! multiple of the block size, 32 or 256, as the formats require; n odd; m from 1 to 9 and more).

use tensor::cpu::isa::Isa;
use tensor::quant::qmatmul::scalar_k::{self, KFormat};
use tensor::quant::qmatmul::{QKernel, QuantizedActs, QuantizedActsK};
use tensor::quant::{GgmlType, QMatrix, q8_0};
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

/// Every kernel's product of `w` with `x` [m, k] against the f64 reference `want`, and against
/// the scalar kernel, allowing `ops` f32 roundings per output: 1e-6 of that output's `scale`
/// (Σ|w x|) each, twice that between two kernels. `case` names the shape in failures.
fn every_kernel_within(w: &QMatrix, x: &[f32], m: usize, (want, scale): (&[f64], &[f64]), ops: usize, case: &str) {
    let scalar = w.matmul_blocks(x, m, QKernel::Scalar);
    for kernel in kernels() {
        let got = w.matmul_blocks(x, m, kernel);
        for (idx, (g, (want, scale))) in got.iter().zip(want.iter().zip(scale)).enumerate() {
            let tol = 1e-6 * ops as f64 * scale + 1e-30;
            assert!((*g as f64 - want).abs() <= tol, "{case} {kernel:?} out {idx}: {g} vs {want} (tol {tol:.2e})");
            assert!((*g - scalar[idx]).abs() as f64 <= 2.0 * tol, "{case} {kernel:?} vs scalar");
        }
    }
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
                // Each block's integer sum is exact; only the f32 additions of the scaled block
                // sums (at most k/32 + 8 of them) round.
                every_kernel_within(&w, &x, m, (&want, &scale), k / 32 + 8, &format!("{ty} n={n} k={k} m={m}"));
            }
        }
    }
}

/// From `GEMM_MIN_ROWS` rows on, panels of decoded weights go through the GEMM, with the
/// activations unquantized: the result is then the product of the decoded weights with `x`.
/// Where the bf16 GEMM runs (AVX512_BF16), the panels are bf16 and the GEMM rounds the
/// activations to bf16 too, so the reference rounds both. 1100 rows are two panels (of 1024 and
/// 76), joined; each product runs twice, the second on panels recycled from the first (holding
/// its values until overwritten).
#[test]
fn the_gemm_path_matches_the_decoded_weights() {
    let cpu = Device::cpu();
    let k_blocks = [(GgmlType::Q4_K, KFormat::Q4K), (GgmlType::Q5_K, KFormat::Q5K), (GgmlType::Q6_K, KFormat::Q6K)];
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0].into_iter().chain(k_blocks.map(|t| t.0)) {
        let (n, k, m) = (1100, if ty.block_size() == 256 { 512 } else { 96 }, 40);
        let w = match k_blocks.iter().find(|t| t.0 == ty) {
            Some(&(_, f)) => QMatrix::new(ty, n, k, random_k_blocks(f, n, k, 5)).unwrap(),
            None => QMatrix::quantize(ty, n, k, &values(5, n * k)).unwrap(),
        };
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
        assert!(m >= tensor::quant::GEMM_MIN_ROWS);
        for _ in 0..2 {
            tensor::testing::assert_close(&w.matmul(&xt).unwrap(), &want, 1e-4, 1e-5).unwrap();
        }
    }
}

/// Against unquantized activations the error is that of rounding each activation to its block's
/// step d = max|x|/127: at most Σ_k |w_k| d/2 (and far less on average).
/// The activations' Q8_0 blocks on every path this CPU runs, bit for bit as ggml's reference
/// quantizer (`q8_0::quantize_block`): random rows, a block of zeros, and a block whose scale is
/// exactly 1 holding halves (rounded away from zero) and values just below a half.
#[test]
fn activations_quantize_as_ggml_on_every_path() {
    let k = 256;
    let mut x = values(7, 5 * k);
    let ties = [127.0, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 126.5, -126.5, 0.49999997, -0.49999997, 3.4999998, 99.5];
    x[..32].fill(0.25);
    x[..ties.len()].copy_from_slice(&ties);
    x[32..64].fill(0.0);
    for isa in Isa::ALL.into_iter().filter(|isa| isa.available()) {
        let acts = QuantizedActs::new_on(isa, &x, k);
        for (b, block) in x.chunks(32).enumerate() {
            let want = q8_0::quantize_block(block);
            let codes: Vec<i8> = want[2..].iter().map(|&c| c as i8).collect();
            let scale = half::f16::from_le_bytes([want[0], want[1]]).to_f32();
            assert_eq!(&acts.codes[b * 32..(b + 1) * 32], &codes[..], "{isa:?} block {b}'s codes");
            assert_eq!(acts.scales[b].to_bits(), scale.to_bits(), "{isa:?} block {b}'s scale");
            assert_eq!(acts.sums[b], codes.iter().map(|&c| c as i32).sum::<i32>(), "{isa:?} block {b}'s sum");
        }
    }
}

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

/// Random k-quant blocks: every byte random (so every code, 6-bit scale and minimum, and Q6_K's
/// signed scales down to -128 occur), with the f16 factors set to finite values of either sign
/// for `d` (ggml's quantizers write positive ones, but the format allows any).
fn random_k_blocks(f: KFormat, rows: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    let mut bytes: Vec<u8> = (0..rows * k / 256 * f.block_bytes()).map(|_| next() as u8).collect();
    for block in bytes.chunks_exact_mut(f.block_bytes()) {
        let mut factor = |at: usize| {
            let v = (next() % 2000) as f32 / 1000.0 - 1.0;
            block[at..at + 2].copy_from_slice(&half::f16::from_f32(v * 0.01).to_le_bytes());
        };
        match f {
            KFormat::Q6K => factor(208),
            _ => {
                factor(0);
                factor(2);
            }
        }
    }
    bytes
}

/// The k-quant analogue of [`reference`], with activations quantized to Q8_K. The rounding scale
/// counts the two terms each weight is computed from (d·sc·u and dmin·m, or d·sc·u and d·sc·32
/// for Q6_K), since the kernels add them separately and they may cancel.
fn reference_k(f: KFormat, w: &QMatrix, x: &[f32], m: usize) -> (Vec<f64>, Vec<f64>) {
    let (n, k) = (w.rows(), w.cols());
    let wd = w.dequantize().unwrap();
    let acts = QuantizedActsK::new(x, k);
    let xd: Vec<f64> = acts.codes.iter().enumerate().map(|(i, &c)| c as f64 * acts.scales[i / 256] as f64).collect();
    let mut mag = vec![0.0f64; n * k];
    for (j, row) in w.data().chunks_exact(w.row_bytes()).enumerate() {
        for (b, wb) in row.chunks_exact(f.block_bytes()).enumerate() {
            let (sc, mins, d, dmin) = scalar_k::block_scales(f, wb);
            for i in 0..256 {
                let g = i / 16;
                let u = scalar_k::code(f, wb, i) as f64;
                let (a, c) = match f {
                    KFormat::Q6K => ((d * sc[g] as f32) as f64 * u, (d * sc[g] as f32) as f64 * 32.0),
                    _ => ((d * sc[g] as f32) as f64 * u, (dmin * mins[g] as f32) as f64),
                };
                mag[j * k + 256 * b + i] = a.abs() + c.abs();
            }
        }
    }
    let mut want = vec![0.0; m * n];
    let mut scale = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for t in 0..k {
                want[i * n + j] += wd[j * k + t] as f64 * xd[i * k + t];
                scale[i * n + j] += mag[j * k + t] * xd[i * k + t].abs();
            }
        }
    }
    (want, scale)
}

#[test]
fn every_k_quant_kernel_matches_the_decoded_product_on_odd_shapes() {
    eprintln!("kernels on this CPU: {:?}", kernels());
    for (ty, f) in [(GgmlType::Q4_K, KFormat::Q4K), (GgmlType::Q5_K, KFormat::Q5K), (GgmlType::Q6_K, KFormat::Q6K)] {
        for (n, k) in [(1, 256), (7, 512), (33, 768), (5, 2048)] {
            let w = QMatrix::new(ty, n, k, random_k_blocks(f, n, k, n as u64 * 131 + k as u64)).unwrap();
            for m in (1..=9).chain([13]) {
                let mut x = values(m as u64 + 17, m * k);
                if k > 256 {
                    // An all-zero block: Q8_K's scale 0 and zero codes.
                    x[256..512].iter_mut().for_each(|v| *v = 0.0);
                }
                let (want, scale) = reference_k(f, &w, &x, m);
                // Integer sums are exact; what rounds is the widening of a block's sum to f32,
                // its products with d·dy and dmin·dy, and the additions of the blocks' terms and
                // of the 8 lanes.
                every_kernel_within(&w, &x, m, (&want, &scale), k / 256 + 12, &format!("{ty} n={n} k={k} m={m}"));
            }
        }
    }
}

/// Q8_K activations as ggml's `quantize_row_q8_K` makes them: the value of largest magnitude
/// maps to -127 (so its sign sets d's), codes never reach -128, and `bsums` are the sums of 16.
#[test]
fn q8_k_activations_follow_ggml() {
    let mut x = values(3, 512);
    x[5] = 4.0;
    x[300] = -4.0;
    let a = QuantizedActsK::new(&x, 512);
    assert_eq!(a.codes[5], -127);
    assert_eq!(a.scales[0], 4.0 / -127.0);
    assert_eq!(a.codes[256 + 44], -127);
    assert_eq!(a.scales[1], -4.0 / -127.0);
    assert!(a.codes.iter().all(|&c| c > -128));
    for (g, &s) in a.bsums.iter().enumerate() {
        assert_eq!(s as i32, a.codes[16 * g..16 * g + 16].iter().map(|&c| c as i32).sum::<i32>());
    }
}

/// Q8_K activations bit for bit alike on every path this CPU runs: random rows, an all-zero
/// block, magnitudes tied with opposite signs (the first sets the sign of d), a block whose
/// scale is exactly -1 holding halves (rounded to even), and blocks with a NaN or an infinity
/// (which the AVX-512 path hands to the scalar loop).
#[test]
fn q8_k_activations_quantize_alike_on_every_path() {
    let mut x = values(21, 7 * 256);
    x[256..512].fill(0.0);
    x[512 + 5] = -4.0;
    x[512 + 9] = 4.0;
    let halves = [127.0, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 126.5, -126.5, 0.49999997, 3.4999998, 99.5];
    x[768..768 + halves.len()].copy_from_slice(&halves);
    x[768 + 200] = -127.0;
    x[1024 + 7] = f32::NAN;
    x[1280 + 3] = f32::NEG_INFINITY;
    let scalar = QuantizedActsK::new_on(Isa::Scalar, &x, 256);
    assert_eq!(scalar.scales[2], -4.0 / -127.0, "the first of the tied magnitudes");
    assert_eq!(scalar.codes[768 + 1], -2, "2.5 at a scale of -1 rounds to even");
    for isa in Isa::ALL.into_iter().filter(|isa| isa.available()) {
        let got = QuantizedActsK::new_on(isa, &x, 256);
        assert_eq!(got.codes, scalar.codes, "{isa:?} codes");
        assert_eq!(got.bsums, scalar.bsums, "{isa:?} sums");
        let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got.scales), bits(&scalar.scales), "{isa:?} scales");
    }
}

#[test]
fn shapes_and_formats_are_checked() {
    assert!(QMatrix::new(GgmlType::Q8_0, 2, 48, vec![0; 200]).is_err(), "k not a multiple of 32");
    assert!(QMatrix::new(GgmlType::Q8_0, 2, 32, vec![0; 67]).is_err(), "too few bytes");
    assert!(QMatrix::new(GgmlType::Q8_1, 1, 32, vec![0; 40]).is_err(), "no kernel for Q8_1");
    assert!(QMatrix::new(GgmlType::Q5_0, 1, 32, vec![0; 21]).is_err(), "too few bytes");
    assert!(QMatrix::new(GgmlType::Q4_K, 1, 128, vec![0; 144]).is_err(), "k not a multiple of 256");
    assert!(QMatrix::new(GgmlType::Q6_K, 2, 256, vec![0; 419]).is_err(), "too few bytes");
    let w = QMatrix::new(GgmlType::Q4_0, 3, 64, vec![0; 3 * 36]).unwrap();
    let cpu = Device::cpu();
    assert!(w.matmul(&Tensor::zeros([2, 32], tensor::DType::F32, &cpu).unwrap()).is_err());
    assert!(w.gather_rows(&[3]).is_err());
    assert_eq!(w.gather_rows(&[2, 0]).unwrap().len(), 128);
}

/// Packed routed experts: each row through its own expert's matrix, as that matrix alone would
/// compute it; an expert no row chose is skipped, and bad ids or shapes are errors.
#[test]
fn expert_matmul_sends_each_row_through_its_expert() {
    let (out, k, rows) = (13, 64, 9);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K] {
        let k = if ty == GgmlType::Q4_K { 256 } else { k };
        let experts: Vec<QMatrix> =
            (0..4).map(|e| QMatrix::quantize(ty, out, k, &values(e as u64 + 90, out * k)).unwrap()).collect();
        let x_values = values(77, rows * k);
        let x = Tensor::from_vec(x_values.clone(), [rows, k], &Device::cpu()).unwrap();
        let ids_list = [3u32, 0, 3, 1, 0, 3, 3, 1, 0]; // expert 2 is never chosen
        let ids = Tensor::from_vec(ids_list.to_vec(), [rows], &Device::cpu()).unwrap();
        let y: Vec<f32> = tensor::quant::expert_matmul(&experts, &x, &ids).unwrap().to_vec().unwrap();
        for (r, &e) in ids_list.iter().enumerate() {
            let want = experts[e as usize].matmul_blocks(&x_values[r * k..(r + 1) * k], 1, QKernel::Scalar);
            for (j, (g, w)) in y[r * out..(r + 1) * out].iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{ty} row {r} expert {e} out {j}: {g} vs {w}");
            }
        }
        let bad = Tensor::from_vec(vec![0u32, 4, 0, 0, 0, 0, 0, 0, 0], [rows], &Device::cpu()).unwrap();
        let err = tensor::quant::expert_matmul(&experts, &x, &bad).unwrap_err().to_string();
        assert!(err.contains("expert id 4 of 4"), "{err}");
        let short = Tensor::from_vec(vec![0u32; 3], [3], &Device::cpu()).unwrap();
        assert!(tensor::quant::expert_matmul(&experts, &x, &short).is_err(), "3 ids for 9 rows");
    }
}

/// A stream of 31-bit pseudo-random numbers (Knuth's MMIX generator, the high bits).
fn lcg(seed: u64) -> impl FnMut() -> u32 {
    let mut s = seed;
    move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    }
}

/// Random MXFP4 blocks: scale bytes around 2^0 (122..131, so the values stay near 1) and every
/// code byte random, both nibbles' signs and -0 included.
fn random_mxfp4(rows: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut next = lcg(seed);
    let mut byte = move || next() as u8;
    (0..rows * k / 32)
        .flat_map(|_| std::iter::once(122 + byte() % 10).chain((0..16).map(|_| byte())).collect::<Vec<_>>())
        .collect()
}

/// Random Q4_1 blocks: every code byte random, the f16 scale and minimum finite values of either
/// sign.
fn random_q4_1(rows: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut next = lcg(seed);
    let half = |v: u32| half::f16::from_f32((v % 2001) as f32 / 1000.0 - 1.0).to_le_bytes();
    (0..rows * k / 32)
        .flat_map(|_| {
            let (d, m) = (half(next()), half(next()));
            d.into_iter().chain(m).chain((0..16).map(|_| next() as u8)).collect::<Vec<_>>()
        })
        .collect()
}

/// Random Q5_0 (`minimum` false) or Q5_1 blocks: the fifth bits `qh` and every code byte random,
/// the f16 scale (and Q5_1's minimum) finite values of either sign.
fn random_q5(rows: usize, k: usize, seed: u64, minimum: bool) -> Vec<u8> {
    let mut next = lcg(seed);
    let half = |v: u32| half::f16::from_f32((v % 2001) as f32 / 1000.0 - 1.0).to_le_bytes();
    (0..rows * k / 32)
        .flat_map(|_| {
            let d = half(next());
            let m = if minimum { half(next()).to_vec() } else { Vec::new() };
            let qh = (next() ^ next() << 16).to_le_bytes();
            d.into_iter().chain(m).chain(qh).chain((0..16).map(|_| next() as u8)).collect::<Vec<_>>()
        })
        .collect()
}

fn random_q5_0(rows: usize, k: usize, seed: u64) -> Vec<u8> {
    random_q5(rows, k, seed, false)
}

fn random_q5_1(rows: usize, k: usize, seed: u64) -> Vec<u8> {
    random_q5(rows, k, seed, true)
}

/// A block format's products against its decoded matrix: few rows on integer dots (Q8_0
/// activations) on every kernel this CPU has, and from `GEMM_MIN_ROWS` rows on decoded panels
/// through the GEMM, whose bf16 rounding (where the bf16 GEMM runs) the reference applies too.
/// `blocks(rows, k, seed)` makes the matrix's bytes.
fn products_match_the_decoded_matrix(ty: GgmlType, blocks: fn(usize, usize, u64) -> Vec<u8>) {
    for (n, k) in [(1, 32), (13, 96), (9, 1024)] {
        let w = QMatrix::new(ty, n, k, blocks(n, k, n as u64 * 7 + k as u64)).unwrap();
        for m in (1..=9).chain([31]) {
            let x = values(m as u64 + 5, m * k);
            let (want, scale) = reference(&w, &x, m);
            every_kernel_within(&w, &x, m, (&want, &scale), k / 32 + 8, &format!("{ty} n={n} k={k} m={m}"));
        }
    }
    gemm_path_matches_the_decoded_matrix(&QMatrix::new(ty, 37, 96, blocks(37, 96, 3)).unwrap());
}

/// From `GEMM_MIN_ROWS` rows on: decoded panels through the GEMM, whose bf16 rounding (where the
/// bf16 GEMM runs) the reference applies too.
fn gemm_path_matches_the_decoded_matrix(w: &QMatrix) {
    let (n, k, m) = (w.rows(), w.cols(), 40);
    let wd = Tensor::from_vec(w.dequantize().unwrap(), [n, k], &Device::cpu()).unwrap();
    let x = Tensor::from_vec(values(m as u64, m * k), [m, k], &Device::cpu()).unwrap();
    let round = |t: &Tensor| -> Tensor {
        if tensor::cpu::isa::bf16_gemm() {
            t.to_dtype(tensor::DType::BF16).unwrap().to_dtype(tensor::DType::F32).unwrap()
        } else {
            t.clone()
        }
    };
    assert!(m >= tensor::quant::GEMM_MIN_ROWS);
    let want = round(&x).matmul(&round(&wd).t().unwrap()).unwrap();
    tensor::testing::assert_close(&w.matmul(&x).unwrap(), &want, 1e-4, 1e-5).unwrap();
}

/// Q4_1 (weight = code · d + m): integer dots on the nibbles with the minimum times the
/// activations' block sum added.
#[test]
fn q4_1_products_match_the_decoded_matrix() {
    products_match_the_decoded_matrix(GgmlType::Q4_1, random_q4_1);
}

/// Q5_0 (weight = (code - 16) · d, the code a nibble and its fifth bit from `qh`): integer dots
/// on the 5-bit codes, their offset taken off with the activations' block sum.
#[test]
fn q5_0_products_match_the_decoded_matrix() {
    products_match_the_decoded_matrix(GgmlType::Q5_0, random_q5_0);
}

/// Q5_1 (weight = code · d + m, the code a nibble and its fifth bit): as Q4_1, on 5-bit codes.
#[test]
fn q5_1_products_match_the_decoded_matrix() {
    products_match_the_decoded_matrix(GgmlType::Q5_1, random_q5_1);
}

/// Q5_0 and Q5_1 matrices made by their quantizers (ggml's reference encoders, checked against
/// the `gguf` package in `llm/tests/gguf_reference.rs`), on the odd shapes above: every kernel
/// against the decoded product.
#[test]
fn quantized_q5_matrices_match_the_decoded_product() {
    for ty in [GgmlType::Q5_0, GgmlType::Q5_1] {
        for (n, k) in [(1, 32), (7, 96), (33, 160)] {
            let w = QMatrix::quantize(ty, n, k, &values(n as u64 * 17 + k as u64, n * k)).unwrap();
            for m in [1, 4, 5] {
                let x = values(m as u64 + 3, m * k);
                let (want, scale) = reference(&w, &x, m);
                every_kernel_within(&w, &x, m, (&want, &scale), k / 32 + 8, &format!("{ty} n={n} k={k} m={m}"));
            }
        }
    }
}

/// MXFP4 (gpt-oss's experts), as ggml's `ggml_vec_dot_mxfp4_q8_0` computes it. Its values have
/// at most 3 significant bits, so its panels are exact in bf16.
#[test]
fn mxfp4_products_match_the_decoded_matrix() {
    products_match_the_decoded_matrix(GgmlType::MXFP4, random_mxfp4);
}

/// Random FP8_E4M3 blocks: f32 scales of either sign around 1e-2, every code byte but the two
/// NaNs.
fn random_fp8(rows: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut next = lcg(seed);
    (0..rows * k / 32)
        .flat_map(|_| {
            let d = ((next() % 2001) as f32 / 1000.0 - 1.0) * 2e-2;
            let codes = (0..32).map(|_| next() as u8).map(|q| if q & 0x7F == 0x7F { q ^ 1 } else { q });
            d.to_le_bytes().into_iter().chain(codes).collect::<Vec<_>>()
        })
        .collect()
}

/// FP8_E4M3 (DeepSeek-V3's and Kimi K2's weights, kept as blocks): floating-point dots on the
/// codes, on every kernel this CPU has, against f64 sums over the decoded weights and the
/// activations as given. The `vdpbf16ps` path rounds the activations to bf16 (at most 2^-9
/// relative each), so the bound is that rounding of Σ|w x| plus the f32 sums'; the tight
/// per-path checks, with the rounding applied to the reference, are `qmatmul::fp8`'s unit test.
/// From `GEMM_MIN_ROWS` rows on, the decoded panels through the GEMM, as for the other formats.
#[test]
fn fp8_products_match_the_decoded_matrix() {
    for (n, k) in [(1, 32), (13, 96), (9, 1024)] {
        let w = QMatrix::new(GgmlType::FP8_E4M3, n, k, random_fp8(n, k, n as u64 * 3 + k as u64)).unwrap();
        let wd = w.dequantize().unwrap();
        for m in (1..=9).chain([31]) {
            let x = values(m as u64 + 11, m * k);
            for kernel in kernels() {
                let got = w.matmul_blocks(&x, m, kernel);
                for i in 0..m {
                    for j in 0..n {
                        let terms = wd[j * k..][..k].iter().zip(&x[i * k..][..k]).map(|(&a, &b)| a as f64 * b as f64);
                        let (want, scale) = terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()));
                        let tol = (2f64.powi(-9) + 1e-6 * (k / 32 + 8) as f64) * scale + 1e-30;
                        let g = got[i * n + j] as f64;
                        assert!(
                            (g - want).abs() <= tol,
                            "FP8 {kernel:?} n={n} k={k} m={m} out [{i}, {j}]: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }
    gemm_path_matches_the_decoded_matrix(&QMatrix::new(GgmlType::FP8_E4M3, 37, 96, random_fp8(37, 96, 5)).unwrap());
}
