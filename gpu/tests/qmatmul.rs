//! Products on quantized blocks kept on the GPU (`DeviceQMatrix`, `qmatmul.wgsl`,
//! `qmatvec.wgsl`) against the CPU's f32 product of the dequantized matrix (`quant::dequantize`,
//! bit-exact with ggml's): every block type the GPU keeps, row counts that fill no whole
//! workgroup, the matrix-vector kernel (1 to 8 activation rows) and the tiled one (more), x as a
//! view at an offset; row gathers and per-expert products. (Their out-of-range ids are checked in
//! `errors.rs`: the error flag is per device.)
//!
//! Tolerance: 1e-5 relative plus 1e-5 * sqrt(K) absolute: both sides multiply the same decoded
//! f32 weights; only the order of the f32 sums differs.

mod common;

use common::gpu;
use tensor::quant::{self, DeviceQMatrix, GgmlType};
use tensor::testing::{max_abs_diff, randn};
use tensor::{Device, Result, Tensor};

/// The block types exercised on every kernel (MXFP4, which has no encoder in the `gguf`
/// package's sense here, has its own test below).
const TYPES: [GgmlType; 9] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::FP8_E4M3,
];

/// `n * k` normal values encoded as `ty`, and the same blocks decoded.
fn encoded(ty: GgmlType, n: usize, k: usize, seed: u64) -> Result<(Vec<u8>, Vec<f32>)> {
    let w: Vec<f32> = randn([n, k], seed, &Device::cpu())?.to_vec()?;
    let bytes = quant::quantize(ty, &w)?;
    let mut decoded = vec![0.0f32; n * k];
    quant::dequantize(ty, &bytes, &mut decoded)?;
    Ok((bytes, decoded))
}

#[test]
fn quantized_products_match_the_dequantized_matrix() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let cpu = Device::cpu();
    for (t, ty) in TYPES.into_iter().enumerate() {
        for (n, k) in [(37, 256), (70, 512)] {
            let (bytes, decoded) = encoded(ty, n, k, 10 + t as u64)?;
            let reference = Tensor::from_vec(decoded, [n, k], &cpu)?;
            let q = DeviceQMatrix::upload(ty, n, k, &bytes, &g)?;
            // The file's bytes, plus Q6_K's 2 bytes of padding per block and a half-word of
            // scale padding at most.
            let pad = if ty == GgmlType::Q6_K { n * k / 256 * 2 } else { 0 };
            assert!(q.device_bytes() >= bytes.len() + pad && q.device_bytes() <= bytes.len() + pad + 4);
            for m in [1, 3, 8, 9, 45] {
                let x = randn([m + 1, k], 20 + m as u64, &cpu)?;
                // Rows 1.. of x: a view at an offset, as a slice of a larger activation is.
                let x = x.narrow(0usize, 1, m)?;
                let want = x.matmul(&reference.t()?)?;
                let got = q.matmul(&x.to(&g)?)?.to(&cpu)?;
                assert_eq!(got.dims(), [m, n]);
                let scale = want.abs()?.max_all()?.to_scalar::<f32>()? as f64;
                let diff = max_abs_diff(&got, &want)?;
                assert!(
                    diff <= 1e-5 * scale + 1e-5 * (k as f64).sqrt(),
                    "{ty} [{m}, {k}] x [{n}, {k}]^T: differs by {diff:.2e} (largest output {scale:.2})"
                );
            }
        }
    }
    let names = gpu::backend()?.pipelines.names();
    for kind in ["matvec", "tiled"] {
        assert!(
            names.iter().any(|n| n.starts_with("qmatmul/") && n.ends_with(kind)),
            "the {kind} kernel ran: {names:?}"
        );
    }
    Ok(())
}

#[test]
fn gathered_rows_are_the_decoded_rows() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let cpu = Device::cpu();
    for (t, ty) in TYPES.into_iter().enumerate() {
        let (n, k) = (19, 512);
        let (bytes, decoded) = encoded(ty, n, k, 30 + t as u64)?;
        let q = DeviceQMatrix::upload(ty, n, k, &bytes, &g)?;
        let ids = [[18u32, 0, 7], [7, 1, 18]];
        let got: Vec<f32> = q.gather(&Tensor::from_vec(ids.concat(), [2, 3], &g)?)?.to(&cpu)?.to_vec()?;
        assert_eq!(got.len(), 6 * k);
        // Exactly the decoded values; Q4_1's and Q5_1's `q * d + m` within one rounding, as a GPU
        // compiler may fuse it into one multiply-add.
        let fused = matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1);
        let same = |got: &[f32], want: &[f32]| {
            got.iter().zip(want).all(|(&a, &b)| {
                if fused { (a - b).abs() <= 1e-6 * b.abs().max(1.0) } else { a.to_bits() == b.to_bits() }
            })
        };
        for (i, &id) in ids.concat().iter().enumerate() {
            let want = &decoded[id as usize * k..(id as usize + 1) * k];
            assert!(same(&got[i * k..(i + 1) * k], want), "{ty}: row {id} is not the decoded row");
        }
        // i64 ids too, as token ids often are.
        let got: Vec<f32> = q.gather(&Tensor::from_vec(vec![3i64], [1], &g)?)?.to(&cpu)?.to_vec()?;
        assert!(same(&got, &decoded[3 * k..4 * k]), "{ty}: row 3 by an i64 id");
    }
    Ok(())
}

#[test]
fn each_row_meets_its_own_experts_blocks() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let cpu = Device::cpu();
    for (t, ty) in TYPES.into_iter().enumerate() {
        let (experts, n, k) = (5, 11, 256);
        let (bytes, decoded) = encoded(ty, experts * n, k, 40 + t as u64)?;
        let q = DeviceQMatrix::upload_stack(ty, experts, n, k, &bytes, &g)?;
        let ids = vec![4u32, 0, 4, 2, 1, 3, 0];
        let x = randn([ids.len(), k], 50, &cpu)?;
        let got = q.expert_matmul(&x.to(&g)?, &Tensor::from_vec(ids.clone(), [ids.len()], &g)?)?.to(&cpu)?;
        // The reference: each row against its expert's decoded [n, k] matrix.
        let stack = Tensor::from_vec(decoded, [experts, n, k], &cpu)?;
        for (r, &e) in ids.iter().enumerate() {
            let want = x.narrow(0usize, r, 1)?.matmul(&stack.narrow(0usize, e as usize, 1)?.reshape([n, k])?.t()?)?;
            let diff = max_abs_diff(&got.narrow(0usize, r, 1)?, &want)?;
            assert!(diff <= 1e-4, "{ty}: row {r} (expert {e}) differs by {diff:.2e}");
        }
        assert!(q.matmul(&x.to(&g)?).is_err(), "a stack is not one matrix");
    }
    Ok(())
}

/// ggml MXFP4 blocks with random codes and scales near 2^0 (the `gguf` writer here does not
/// encode MXFP4; llama.cpp's gpt-oss files hold their experts so).
fn mxfp4_bytes(blocks: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u8
    };
    (0..blocks)
        .flat_map(|_| std::iter::once(120 + next() % 16).chain((0..16).map(|_| next())).collect::<Vec<_>>())
        .collect()
}

#[test]
fn mxfp4_blocks_multiply_and_gather_as_decoded() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let cpu = Device::cpu();
    let (n, k) = (21, 96);
    let bytes = mxfp4_bytes(n * k / 32, 5);
    let mut decoded = vec![0.0f32; n * k];
    quant::dequantize(GgmlType::MXFP4, &bytes, &mut decoded)?;
    let reference = Tensor::from_vec(decoded.clone(), [n, k], &cpu)?;
    let q = DeviceQMatrix::upload(GgmlType::MXFP4, n, k, &bytes, &g)?;
    for m in [1, 5, 12] {
        let x = randn([m, k], 60 + m as u64, &cpu)?;
        let want = x.matmul(&reference.t()?)?;
        let got = q.matmul(&x.to(&g)?)?.to(&cpu)?;
        let scale = want.abs()?.max_all()?.to_scalar::<f32>()? as f64;
        let diff = max_abs_diff(&got, &want)?;
        assert!(diff <= 1e-5 * scale, "MXFP4 [{m}, {k}] x [{n}, {k}]^T: differs by {diff:.2e} of {scale:.1}");
    }
    let rows: Vec<f32> = q.gather(&Tensor::from_vec(vec![20u32, 3], [2], &g)?)?.to(&cpu)?.to_vec()?;
    assert_eq!(&rows[..k], &decoded[20 * k..21 * k]);
    assert_eq!(&rows[k..], &decoded[3 * k..4 * k]);
    Ok(())
}

#[test]
fn malformed_blocks_and_activations_are_errors() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let bytes = quant::quantize(GgmlType::Q8_0, &[0.5f32; 64])?;
    // 64 values are two blocks: not a [2, 64] matrix.
    assert!(DeviceQMatrix::upload(GgmlType::Q8_0, 2, 64, &bytes, &g).is_err());
    assert!(DeviceQMatrix::upload(GgmlType::Q8_0, 1, 48, &bytes, &g).is_err());
    assert!(DeviceQMatrix::upload(GgmlType::Q4_1, 1, 64, &bytes, &g).is_err());
    let q = DeviceQMatrix::upload(GgmlType::Q8_0, 1, 64, &bytes, &g)?;
    let wrong = Tensor::zeros([2, 32], tensor::DType::F32, &g)?;
    assert!(q.matmul(&wrong).is_err(), "32 columns against a 64-column matrix");
    let on_cpu = Tensor::zeros([2, 64], tensor::DType::F32, &Device::cpu())?;
    assert!(q.matmul(&on_cpu).is_err(), "activations on another device");
    Ok(())
}
