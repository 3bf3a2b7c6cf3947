//! # FP8: eight-bit floats, and the block scales that make them work
//!
//! Run it: `cargo run --release --example fp8` (a few seconds).
//! Picture: `target/examples-out/fp8/outliers.png`, the error of an FP8 matmul against the size
//! of one outlier channel, with one scale per tensor and with DeepSeek-V3's block scales.
//!
//! A float is a sign, an exponent (range) and a mantissa (precision). Fewer bits buy memory and
//! speed: an H800 multiplies FP8 at twice its bf16 rate. DeepSeek-V3 (arXiv 2412.19437, section
//! 3.3) pre-trained in FP8:
//! - **e4m3 for every GEMM input** (1 sign, 4 exponent, 3 mantissa bits; largest value 448);
//!   e5m2 (5 exponent bits, 2 mantissa, up to 57344) trades precision for range;
//! - **fine-grained scaling**: before casting, activations are divided by a scale per 1x128 tile
//!   (one token's 128 channels) and weights by a scale per 128x128 block, each scale chosen so the
//!   tile's largest value lands on 448;
//! - accumulation promoted to f32 every 128 products (the tensor cores keep fewer bits), the
//!   embedding, output head, MoE gates, norms and attention kept in bf16/f32, master weights and
//!   optimizer states in f32/bf16. The training loss stayed within 0.25% of a bf16 run.
//!
//! The released checkpoint keeps the weights that way: each linear weight is e4m3 with a
//! `weight_scale_inv` per 128x128 block (`quantization_config`: `fmt: e4m3`, `weight_block_size:
//! [128, 128]`), and weight = fp8 value x scale_inv.
//!
//! Everything here is simulated: values are rounded to the formats in software and multiplied in
//! f32, which shows the formats' rounding and range exactly (not the tensor cores' speed).

use llm::plot::{LineChart, Series};
use tensor::{DType, Device, Rng, Tensor};

mod common;

/// A floating-point format with an IEEE-style layout: `exponent` and `mantissa` bits, the
/// exponent biased by `2^(exponent-1) - 1`, subnormals below the smallest normal, and a largest
/// finite value (448 for e4m3, which gives its top exponent to numbers and keeps only one NaN
/// pattern; the IEEE formats reserve the top exponent for infinities and NaN).
#[derive(Clone, Copy, Debug)]
struct Format {
    name: &'static str,
    exponent: i32,
    mantissa: i32,
    max: f64,
}

impl Format {
    fn bias(&self) -> i32 {
        (1 << (self.exponent - 1)) - 1
    }

    fn min_normal(&self) -> f64 {
        2f64.powi(1 - self.bias())
    }

    fn min_subnormal(&self) -> f64 {
        2f64.powi(1 - self.bias() - self.mantissa)
    }

    /// `x` rounded to the nearest value of the format (ties to even), saturating at +-max as
    /// the FP8 casts in training kernels do.
    fn round(&self, x: f64) -> f64 {
        if x == 0.0 || !x.is_finite() {
            return x;
        }
        let a = x.abs();
        let e = a.log2().floor().max((1 - self.bias()) as f64) as i32;
        let quantum = 2f64.powi(e - self.mantissa);
        let q = (a / quantum).round_ties_even() * quantum;
        q.min(self.max).copysign(x)
    }
}

const FP32: Format = Format { name: "fp32", exponent: 8, mantissa: 23, max: 3.4028234663852886e38 };
const FP16: Format = Format { name: "fp16", exponent: 5, mantissa: 10, max: 65504.0 };
const BF16: Format = Format { name: "bf16", exponent: 8, mantissa: 7, max: 3.3895313892515355e38 };
const E4M3: Format = Format { name: "fp8 e4m3", exponent: 4, mantissa: 3, max: 448.0 };
const E5M2: Format = Format { name: "fp8 e5m2", exponent: 5, mantissa: 2, max: 57344.0 };

/// How a matrix is scaled before its cast to e4m3.
#[derive(Clone, Copy, Debug)]
enum Scaling {
    /// One scale for the whole tensor.
    PerTensor,
    /// One scale per `rows x cols` tile (1x128 for activations, 128x128 for weights).
    Blocks(usize, usize),
}

/// `m` ([rows, cols], row-major) quantised to `format` with `scaling` and dequantised again:
/// each tile is divided by `amax / format.max`, rounded, and multiplied back.
fn fake_quantize(m: &[f32], rows: usize, cols: usize, format: Format, scaling: Scaling) -> Vec<f32> {
    let (br, bc) = match scaling {
        Scaling::PerTensor => (rows, cols),
        Scaling::Blocks(r, c) => (r, c),
    };
    let mut out = vec![0.0f32; m.len()];
    for r0 in (0..rows).step_by(br) {
        for c0 in (0..cols).step_by(bc) {
            let cells =
                || (r0..(r0 + br).min(rows)).flat_map(move |r| (c0..(c0 + bc).min(cols)).map(move |c| r * cols + c));
            let amax = cells().map(|i| m[i].abs() as f64).fold(0.0, f64::max);
            let scale = if amax > 0.0 { amax / format.max } else { 1.0 };
            for i in cells() {
                out[i] = (format.round(m[i] as f64 / scale) * scale) as f32;
            }
        }
    }
    out
}

/// `x [t, k] @ w [n, k]^T` in f32, and its relative (Frobenius) error against `reference`.
fn matmul(x: &[f32], w: &[f32], t: usize, k: usize, n: usize) -> tensor::Result<Vec<f32>> {
    let cpu = Device::cpu();
    let x = Tensor::from_vec(x.to_vec(), [t, k], &cpu)?;
    let w = Tensor::from_vec(w.to_vec(), [n, k], &cpu)?;
    x.matmul(&w.t()?)?.to_vec::<f32>()
}

fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(g, w)| ((g - w) as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|w| (*w as f64).powi(2)).sum();
    (num / den).sqrt()
}

fn main() -> llm::Result<()> {
    run(false)
}

fn run(quick: bool) -> llm::Result<()> {
    let out = common::out_dir("fp8", quick)?;

    // ## 1. The formats: bits, range, precision
    // The relative step is 2^-mantissa: the gap between 1 and the next value. bf16 keeps fp32's
    // 8 exponent bits (its range) with 7 mantissa bits; e4m3 reaches only 448.
    println!(
        "{:<9} {:>4} {:>4} {:>4} {:>12} {:>12} {:>12} {:>10}",
        "format", "sign", "exp", "man", "largest", "min normal", "min subnorm", "rel. step"
    );
    for f in [FP32, FP16, BF16, E4M3, E5M2] {
        println!(
            "{:<9} {:>4} {:>4} {:>4} {:>12.4e} {:>12.4e} {:>12.4e} {:>10.2e}",
            f.name,
            1,
            f.exponent,
            f.mantissa,
            f.round(f64::MAX),
            f.min_normal(),
            f.min_subnormal(),
            2f64.powi(-f.mantissa)
        );
    }
    // Our bf16 rounding agrees with the tensor crate's f32 -> bf16 cast on random values.
    let cpu = Device::cpu();
    let mut rng = Rng::new(7);
    let probe = Tensor::randn(0.0, 3.0, [4096], DType::F32, &mut rng, &cpu)?;
    let crate_bf16 = probe.to_dtype(DType::BF16)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
    let ours: Vec<f32> = probe.to_vec::<f32>()?.iter().map(|&x| BF16.round(x as f64) as f32).collect();
    let same = ours.iter().zip(&crate_bf16).filter(|(a, b)| a == b).count();
    println!("our bf16 rounding equals the tensor crate's cast on {same} of 4096 random values");
    for x in [0.1, 1.0 / 3.0, 300.0, 1000.0] {
        println!("  {x:>9.5} -> e4m3 {:>9.5}, e5m2 {:>9.5}, bf16 {:>9.5}", E4M3.round(x), E5M2.round(x), BF16.round(x));
    }

    // ## 2. A matmul in simulated FP8, DeepSeek-V3's way, against bf16 and f32
    // Activations x [t, k] and a weight w [n, k], both Gaussian; the f32 product is the reference.
    let (t, k, n) = if quick { (16, 256, 128) } else { (128, 1024, 512) };
    let x = Tensor::randn(0.0, 1.0, [t, k], DType::F32, &mut rng, &cpu)?.to_vec::<f32>()?;
    let w = Tensor::randn(0.0, 0.02, [n, k], DType::F32, &mut rng, &cpu)?.to_vec::<f32>()?;
    let reference = matmul(&x, &w, t, k, n)?;
    let tile = Scaling::Blocks(1, 128);
    let block = Scaling::Blocks(128, 128);
    let error = |x: &[f32], fx: Format, sx: Scaling, fw: Format, sw: Scaling| -> tensor::Result<f64> {
        let y = matmul(&fake_quantize(x, t, k, fx, sx), &fake_quantize(&w, n, k, fw, sw), t, k, n)?;
        Ok(relative_error(&y, &reference))
    };
    println!("\nx [{t}, {k}] @ w [{n}, {k}]^T, relative error against f32:");
    let rows = [
        ("bf16 inputs", BF16, Scaling::PerTensor, BF16, Scaling::PerTensor),
        ("e4m3, one scale per tensor", E4M3, Scaling::PerTensor, E4M3, Scaling::PerTensor),
        ("e4m3, 1x128 tiles / 128x128 blocks", E4M3, tile, E4M3, block),
        ("e5m2, 1x128 tiles / 128x128 blocks", E5M2, tile, E5M2, block),
    ];
    for (name, fx, sx, fw, sw) in rows {
        println!("  {name:<36} {:.2e}", error(&x, fx, sx, fw, sw)?);
    }

    // ## 3. Outliers: why one scale per tensor is not enough
    // LLM activations carry a few channels far larger than the rest. Make channel 5 of every
    // token `size` times larger and grow `size`. With one scale, the outlier sets it, and the
    // ordinary values shrink towards e4m3's smallest numbers (2^-6 normal, 2^-9 subnormal):
    // while they stay normal they keep e4m3's relative precision, but past a ratio of about
    // 448 / 2^-6 = 28,672 they lose bits and then vanish. With 1x128 tiles only the tile
    // holding the outlier (1 of 8 here) is affected; the others keep their own scale.
    let sizes: Vec<f64> = (0..=12).map(|i| 10f64.powf(i as f64 / 2.0)).collect();
    let mut per_tensor = Vec::new();
    let mut per_tile = Vec::new();
    let mut bf16 = Vec::new();
    println!(
        "\none outlier channel x size: relative error of the other channels' product (weights e4m3, 128x128 blocks)"
    );
    println!("{:>10} {:>14} {:>14} {:>10}", "size", "one scale", "1x128 tiles", "bf16");
    // The error is measured on what the *other* channels carry: channel 5 is left out of both
    // products after quantising (its own rounding is the same in every scheme), so the numbers
    // show only the damage the outlier's scale does to its neighbours.
    let drop_outlier =
        |m: &[f32]| -> Vec<f32> { m.iter().enumerate().map(|(i, &v)| if i % k == 5 { 0.0 } else { v }).collect() };
    let reference_rest = matmul(&drop_outlier(&x), &w, t, k, n)?;
    for &size in &sizes {
        let xo: Vec<f32> = x.iter().enumerate().map(|(i, &v)| if i % k == 5 { v * size as f32 } else { v }).collect();
        let err = |fx: Format, sx: Scaling, fw: Format, sw: Scaling| -> tensor::Result<f64> {
            let xq = drop_outlier(&fake_quantize(&xo, t, k, fx, sx));
            let y = matmul(&xq, &fake_quantize(&w, n, k, fw, sw), t, k, n)?;
            Ok(relative_error(&y, &reference_rest))
        };
        let (a, b, c) = (
            err(E4M3, Scaling::PerTensor, E4M3, block)?,
            err(E4M3, tile, E4M3, block)?,
            err(BF16, Scaling::PerTensor, BF16, Scaling::PerTensor)?,
        );
        println!("{size:>10.0} {a:>14.2e} {b:>14.2e} {c:>10.2e}");
        per_tensor.push((size, a));
        per_tile.push((size, b));
        bf16.push((size, c));
    }
    let chart = LineChart::new(
        "FP8 matmul error against one outlier channel",
        "outlier channel size (x typical)",
        "relative error vs f32",
    )
    .log_x()
    .log_y()
    .with(Series::new("e4m3, one scale per activation tensor", per_tensor))
    .with(Series::new("e4m3, 1x128 activation tiles (DeepSeek-V3)", per_tile))
    .with(Series::new("bf16", bf16));
    let path = chart.save_png(out.join("outliers.png"))?;
    println!("wrote {}", path.display());

    // ## 4. The released checkpoint's layout
    // A weight [n, k] is stored as e4m3 values plus `weight_scale_inv` [n/128, k/128] in f32:
    // reading it back multiplies each 128x128 block by its scale_inv (= amax / 448).
    let blocks = (n.div_ceil(128), k.div_ceil(128));
    let stored = n * k + 4 * blocks.0 * blocks.1;
    println!(
        "\nw [{n}, {k}] as released: {} bytes of e4m3 + {} scales x 4 bytes = {:.4} bytes per weight (bf16: 2)",
        n * k,
        blocks.0 * blocks.1,
        stored as f64 / (n * k) as f64
    );
    Ok(())
}

#[test]
fn runs() -> llm::Result<()> {
    run(true)
}

#[test]
fn formats_round_as_their_specs_say() {
    // e4m3: 1 + 2^-3 is the next value above 1; 448 the largest; 2^-9 the smallest subnormal.
    assert_eq!(E4M3.round(1.0 + 1.0 / 16.0), 1.0); // a tie, to even
    assert_eq!(E4M3.round(1.0 + 3.0 / 32.0), 1.125);
    assert_eq!(E4M3.round(1e6), 448.0);
    assert_eq!(E4M3.min_subnormal(), 2f64.powi(-9));
    assert_eq!(E4M3.round(2f64.powi(-11)), 0.0);
    // e5m2: 57344 = 1.75 x 2^15 the largest; fp16 65504.
    assert_eq!(E5M2.round(1e9), 57344.0);
    assert_eq!(FP16.round(65519.0), 65504.0);
    // bf16 keeps 7 stored mantissa bits: 1 + 2^-7 exists, 1 + 2^-8 rounds to 1 (tie to even).
    assert_eq!(BF16.round(1.0 + 2f64.powi(-7)), 1.0 + 2f64.powi(-7));
    assert_eq!(BF16.round(1.0 + 2f64.powi(-8)), 1.0);
}
