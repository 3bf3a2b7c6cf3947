//! Block-quantized matrices (`DeviceQMatrix`) over the adapter's storage binding limit, bound a
//! window of rows (or of whole experts) at a time (`src/split.rs`). This test process lowers the
//! limit to 1 MiB (`LLM_GPU_MAX_BINDING_MIB`, read when the device opens; every test here sets it
//! first), so matrices of 2-4 MiB take the paths a GGUF 8B model's 558 MB Q8_0 embedding takes on
//! lavapipe. No row's blocks span a multiple of the 256-byte window alignment, so windows start
//! inside a row before their first one (and, for Q8_0, Q4_0, Q5_0 and MXFP4, inside a word of
//! scales): every kernel must read through the window at the right offsets. Each result is
//! compared with the CPU's f32 product of the same blocks decoded (`quant::dequantize`), with
//! `qmatmul.rs`'s tolerance. Skipped with a note where there is no adapter.

mod common;

use common::{LOW_LIMIT, cpu, gpu_with_low_limit};

use gpu::kernels::matmul::{ExpertPath, force_expert_path};
use tensor::quant::{self, DeviceQMatrix, GgmlType};
use tensor::testing::{max_abs_diff, randn};
use tensor::{DType, Result, Tensor};

/// Every type `DeviceQMatrix` keeps, with a column count giving rows of blocks that are no
/// multiple of 256 bytes (and an odd number of 32-element units where scales are kept apart).
const TYPES: [(GgmlType, usize); 10] = [
    (GgmlType::Q8_0, 1056),
    (GgmlType::Q4_0, 1824),
    (GgmlType::Q4_1, 1824),
    (GgmlType::Q5_0, 1824),
    (GgmlType::Q5_1, 1824),
    (GgmlType::Q4_K, 1792),
    (GgmlType::Q5_K, 1792),
    (GgmlType::Q6_K, 1792),
    (GgmlType::MXFP4, 1824),
    (GgmlType::FP8_E4M3, 1056),
];

/// `n * k` values as `ty` blocks, and the same blocks decoded. MXFP4 (which `quant` does not
/// encode) takes random codes and scales near 2^0, as gpt-oss's files hold.
fn encoded(ty: GgmlType, n: usize, k: usize, seed: u64) -> Result<(Vec<u8>, Vec<f32>)> {
    let bytes = if ty == GgmlType::MXFP4 {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        };
        let block = |_| std::iter::once(120 + next() % 16).chain((0..16).map(|_| next())).collect::<Vec<_>>();
        (0..n * k / 32).flat_map(block).collect()
    } else {
        quant::quantize(ty, &randn([n, k], seed, &cpu())?.to_vec::<f32>()?)?
    };
    let mut decoded = vec![0.0f32; n * k];
    quant::dequantize(ty, &bytes, &mut decoded)?;
    Ok((bytes, decoded))
}

/// Ids covering the first, last and every window's rows, repeated and out of order.
fn ids_over(rows: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..rows as u32).step_by(97).collect();
    ids.extend([rows as u32 - 1, 0, 5, rows as u32 / 2, 5, rows as u32 - 2]);
    ids
}

/// `got` against `want` [m, n] = x [m, k] times decoded weights: 1e-5 relative plus 1e-5 *
/// sqrt(K) absolute, as `qmatmul.rs` allows (the same decoded values, summed in another order).
fn check_product(got: &Tensor, want: &Tensor, k: usize, what: &str) -> Result<()> {
    assert_eq!(got.dims(), want.dims(), "{what}");
    let scale = want.abs()?.max_all()?.to_scalar::<f32>()? as f64;
    let diff = max_abs_diff(got, want)?;
    assert!(
        diff <= 1e-5 * scale + 1e-5 * (k as f64).sqrt(),
        "{what}: differs by {diff:.2e} (largest output {scale:.2})"
    );
    Ok(())
}

#[test]
fn quantized_rows_and_products_over_the_limit_match_the_cpu() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else {
        println!("note: no GPU adapter; split quantized matrices were not exercised");
        return Ok(());
    };
    let n = 3001;
    for (t, (ty, k)) in TYPES.into_iter().enumerate() {
        let (bytes, decoded) = encoded(ty, n, k, 70 + t as u64)?;
        let q = DeviceQMatrix::upload(ty, n, k, &bytes, &g)?;
        assert!(q.device_bytes() > 2 * LOW_LIMIT, "{ty}: {} bytes do not need 3 windows", q.device_bytes());
        assert!(!(bytes.len() / n).is_multiple_of(256), "{ty}: rows must not start on the window alignment");

        // The embedding lookup: exactly the decoded rows (Q4_1's and Q5_1's `q * d + m` within a
        // rounding, as a GPU compiler may fuse it), by u32 and by i64 ids.
        let ids = ids_over(n);
        let fused = matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1);
        let same = |a: f32, b: f32| {
            if fused { (a - b).abs() <= 1e-6 * b.abs().max(1.0) } else { a.to_bits() == b.to_bits() }
        };
        for id_dtype in [DType::U32, DType::I64] {
            let on_gpu = Tensor::from_vec(ids.clone(), [ids.len()], &cpu())?.to_dtype(id_dtype)?.to(&g)?;
            let got: Vec<f32> = q.gather(&on_gpu)?.to(&cpu())?.to_vec()?;
            assert_eq!(got.len(), ids.len() * k);
            for (i, &id) in ids.iter().enumerate() {
                let want = &decoded[id as usize * k..(id as usize + 1) * k];
                let row = &got[i * k..(i + 1) * k];
                assert!(row.iter().zip(want).all(|(&a, &b)| same(a, b)), "{ty}: row {id} by {id_dtype} ids");
            }
        }

        // x @ W^T: the matrix-vector kernel (1 and 3 rows) and the tiled one (40 rows).
        let reference = Tensor::from_vec(decoded, [n, k], &cpu())?;
        for m in [1, 3, 40] {
            let x = randn([m, k], 80 + m as u64, &cpu())?;
            let got = q.matmul(&x.to(&g)?)?.to(&cpu())?;
            check_product(&got, &x.matmul(&reference.t()?)?, k, &format!("{ty} [{m}, {k}] x [{n}, {k}]^T"))?;
        }
    }
    Ok(())
}

#[test]
fn stacked_experts_over_the_limit_are_multiplied_a_window_of_experts_at_a_time() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else { return Ok(()) };
    // An odd count of experts of 200 rows each: a window holds a few whole experts.
    let (experts, n) = (9, 200);
    for (t, (ty, k)) in TYPES.into_iter().enumerate() {
        let (bytes, decoded) = encoded(ty, experts * n, k, 90 + t as u64)?;
        let q = DeviceQMatrix::upload_stack(ty, experts, n, k, &bytes, &g)?;
        assert!(q.device_bytes() > LOW_LIMIT + LOW_LIMIT / 2, "{ty}: the stack must need 2 windows or more");
        let stack = Tensor::from_vec(decoded, [experts, n, k], &cpu())?;
        // Every expert, the first and last twice, out of order.
        let ids: Vec<u32> = [8, 0, 3, 8, 1, 7, 2, 4, 0, 6, 5].into_iter().cycle().take(23).collect();
        let x = randn([ids.len(), k], 100 + t as u64, &cpu())?;
        let ids_gpu = Tensor::from_vec(ids.clone(), [ids.len()], &g)?;
        let mut want = Vec::new();
        for (r, &e) in ids.iter().enumerate() {
            let expert = stack.narrow(0usize, e as usize, 1)?.reshape([n, k])?;
            want.push(x.narrow(0usize, r, 1)?.matmul(&expert.t()?)?);
        }
        let want = Tensor::cat(&want.iter().collect::<Vec<_>>(), 0)?;
        for path in [ExpertPath::PerRow, ExpertPath::Grouped] {
            force_expert_path(Some(path));
            let got = q.expert_matmul(&x.to(&g)?, &ids_gpu).and_then(|t| t.to(&cpu()));
            force_expert_path(None);
            check_product(&got?, &want, k, &format!("{ty} experts {path:?}"))?;
        }
    }
    Ok(())
}

#[test]
fn out_of_range_ids_of_a_split_matrix_are_reported() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else { return Ok(()) };
    let (n, k) = (3001, 1056);
    let (bytes, decoded) = encoded(GgmlType::Q8_0, n, k, 7)?;
    let q = DeviceQMatrix::upload(GgmlType::Q8_0, n, k, &bytes, &g)?;
    let bad = Tensor::from_vec(vec![3u32, n as u32], [2], &g)?;
    let err = q.gather(&bad)?.to(&cpu()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("out of range"), "{err}");
    // The device goes on.
    let got: Vec<f32> = q.gather(&Tensor::from_vec(vec![n as u32 - 1], [1], &g)?)?.to(&cpu())?.to_vec()?;
    assert_eq!(got, decoded[(n - 1) * k..]);
    Ok(())
}
