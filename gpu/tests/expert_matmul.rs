//! The mixture-of-experts product on the GPU against the CPU backend, on both of its paths (each
//! forced, whatever the shape): odd shapes (R = 1, 3, 17, 300; K and N off the tiles; E = 1, 3,
//! 64, and 1100, past one window of the grouping kernel), experts no row chose and every row on
//! one expert, f32, bf16 and f16 weights, u32 and i64 ids, weights stored either way round and
//! viewed at an offset, ids out of range, shapes past the grid, and no readback inside the op.
//! The product on quantized blocks (`DeviceQMatrix::expert_matmul`) too, on its two paths, against
//! the CPU's product of the decoded matrices.
//!
//! Tolerance: 1e-4 relative plus 1e-5 sqrt(K) absolute. Both devices sum the same f32 products
//! (half weights widen exactly) in different orders, which moves a sum by ~1e-7 sqrt(K) of the
//! magnitude of its terms; the absolute part covers outputs that cancel to near zero.
//!
//! The tests take one lock: the error flag and the counters are per process, so a test that
//! reads them must not see another's work.

mod common;

use std::sync::{Mutex, MutexGuard};

use common::{Stored, cpu, gpu, same_on_both};
use gpu::kernels::matmul::{ExpertPath, expert_path, force_expert_path};
use tensor::quant::{self, DeviceQMatrix, GgmlType};
use tensor::testing::{assert_close, randn};
use tensor::{DType, Device, Result, Tensor};

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

const PATHS: [ExpertPath; 2] = [ExpertPath::PerRow, ExpertPath::Grouped];

/// Leaves a buffer of `len` NaNs in the device's pool, which hands it out again to the next
/// tensor of that size (the product's output): a row the product fails to write reads as NaN,
/// rather than as a right value left by the run before.
fn poisoned(len: usize, device: &Device) -> Result<()> {
    Tensor::full(f64::NAN, [len], DType::F32, device).map(drop)
}

/// A fixed pseudo-random routing of `rows` rows over `experts` experts.
fn routed(rows: usize, experts: usize, seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..rows)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((s >> 33) % experts as u64) as u32
        })
        .collect()
}

/// One product to compare.
#[derive(Clone, Debug)]
struct Case {
    k: usize,
    n: usize,
    experts: usize,
    ids: Vec<u32>,
    dtype: DType,
    stored: Stored,
    ids_dtype: DType,
}

impl Case {
    fn new(rows: usize, k: usize, n: usize, experts: usize) -> Case {
        Case {
            k,
            n,
            experts,
            ids: routed(rows, experts, (rows * 31 + k * 7 + n * 3 + experts) as u64),
            dtype: DType::F32,
            stored: Stored::KContiguous,
            ids_dtype: DType::U32,
        }
    }

    fn inputs(&self, seed: u64) -> Result<[Tensor; 3]> {
        let rows = self.ids.len();
        let x = randn([rows, self.k], seed, &cpu())?;
        let w = self.stored.storage(self.experts, self.k, self.n, seed + 1)?.to_dtype(self.dtype)?;
        let ids = Tensor::from_vec(self.ids.clone(), [rows], &cpu())?.to_dtype(self.ids_dtype)?;
        Ok([x, w, ids])
    }

    /// The GPU's product on `path` against the CPU's.
    fn check(&self, g: &Device, path: ExpertPath) -> Result<()> {
        let what = format!("{path:?} R={} {self:?}", self.ids.len());
        let tol = 1e-5 * (self.k as f64).sqrt();
        force_expert_path(Some(path));
        let (stored, experts, k) = (self.stored, self.experts, self.k);
        let len = self.ids.len() * self.n;
        let result = same_on_both(g, &self.inputs(7)?, tol, 1e-4, &what, |t| {
            let w = stored.view(&t[1], experts, k)?;
            poisoned(len, t[0].device())?;
            t[0].expert_matmul(&w, &t[2])
        });
        force_expert_path(None);
        result
    }
}

#[test]
fn odd_shapes_on_both_paths() -> Result<()> {
    let _lock = lock();
    let Some(g) = gpu() else { return Ok(()) };
    let shapes = [
        (1, 33, 5, 3),
        (1, 256, 64, 64),
        (3, 64, 70, 1),
        (3, 7, 1, 3),
        (17, 130, 67, 64),
        (17, 1, 9, 3),
        (300, 33, 129, 3),
        (300, 96, 64, 64),
        (300, 40, 3, 1),
    ];
    for path in PATHS {
        for (rows, k, n, experts) in shapes {
            Case::new(rows, k, n, experts).check(&g, path)?;
        }
    }
    Ok(())
}

#[test]
fn weight_dtypes_layouts_and_id_dtypes() -> Result<()> {
    let _lock = lock();
    let Some(g) = gpu() else { return Ok(()) };
    for path in PATHS {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for stored in Stored::ALL {
                // Aligned for 16-byte loads (K and N multiples of 8), then not.
                for (rows, k, n) in [(40, 72, 36), (17, 33, 13)] {
                    for ids_dtype in [DType::U32, DType::I64] {
                        let case = Case { dtype, stored, ids_dtype, ..Case::new(rows, k, n, 5) };
                        case.check(&g, path)?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn routings_that_leave_experts_idle_or_crowd_one() -> Result<()> {
    let _lock = lock();
    let Some(g) = gpu() else { return Ok(()) };
    let spread = |rows: usize, chosen: &[u32]| (0..rows).map(|r| chosen[r % chosen.len()]).collect::<Vec<_>>();
    let cases = [
        // Most experts chosen by no row.
        Case { ids: spread(300, &[63, 0, 7]), ..Case::new(300, 48, 40, 64) },
        Case { ids: spread(17, &[5]), ..Case::new(17, 48, 40, 64) },
        // Every row on one expert: ten tiles of it, the last not full.
        Case { ids: vec![1; 300], ..Case::new(300, 48, 40, 3) },
        // One row each, in reverse.
        Case { ids: (0..64).rev().collect(), ..Case::new(64, 48, 40, 64) },
        // More experts than the grouping kernel counts at once (1024), the last ones chosen too.
        Case { ids: spread(300, &[1099, 3, 1024, 1023, 700]), ..Case::new(300, 8, 4, 1100) },
        Case::new(300, 8, 4, 1100),
    ];
    for path in PATHS {
        for case in &cases {
            case.check(&g, path)?;
        }
    }
    Ok(())
}

#[test]
fn an_id_out_of_range_gives_a_zero_row_and_is_reported() -> Result<()> {
    let _lock = lock();
    let Some(g) = gpu() else { return Ok(()) };
    let (rows, k, n, experts) = (40, 24, 20, 3);
    let x = randn([rows, k], 1, &cpu())?;
    let w = randn([experts, n, k], 2, &cpu())?;
    let mut ids = routed(rows, experts, 3);
    let bad = [5, 17, 39];
    for (r, id) in bad.iter().zip([3, 1000, u32::MAX]) {
        ids[*r] = id;
    }
    // The reference: the bad rows through expert 0, then zeroed.
    let fixed: Vec<u32> = ids.iter().map(|&e| if e < experts as u32 { e } else { 0 }).collect();
    let fixed = Tensor::from_vec(fixed, [rows], &cpu())?;
    let mut want = x.expert_matmul(&w.transpose(1, 2)?, &fixed)?.to_vec::<f32>()?;
    for r in bad {
        want[r * n..(r + 1) * n].fill(0.0);
    }
    let want = Tensor::from_vec(want, [rows, n], &cpu())?;
    let (xg, wg) = (x.to(&g)?, w.to(&g)?.transpose(1, 2)?);
    let ids = Tensor::from_vec(ids, [rows], &cpu())?;
    for path in PATHS {
        for ids_dtype in [DType::U32, DType::I64] {
            let idg = ids.to_dtype(ids_dtype)?.to(&g)?;
            poisoned(rows * n, &g)?;
            force_expert_path(Some(path));
            let y = xg.expert_matmul(&wg, &idg);
            force_expert_path(None);
            let y = y?;
            // Reported by the next synchronisation, then cleared; the rows are there to read.
            let err = g.synchronize().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("out of range"), "{path:?} {ids_dtype}: {err}");
            assert_close(&y.to(&cpu())?, &want, 1e-4, 1e-4)?;
            // And by the next readback.
            force_expert_path(Some(path));
            let y = xg.expert_matmul(&wg, &idg);
            force_expert_path(None);
            let err = y?.to(&cpu()).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("out of range"), "{path:?} {ids_dtype}: {err}");
        }
    }
    Ok(())
}

#[test]
fn neither_path_waits_for_the_gpu_or_counts_the_ids_on_the_host() -> Result<()> {
    let _lock = lock();
    let Some(g) = gpu() else { return Ok(()) };
    let (rows, k, n, experts) = (300, 32, 48, 8);
    let x = randn([rows, k], 1, &cpu())?.to(&g)?;
    let w = randn([experts, n, k], 2, &cpu())?.to(&g)?.transpose(1, 2)?;
    let spread = Tensor::from_vec(routed(rows, experts, 3), [rows], &cpu())?.to(&g)?;
    let crowded = Tensor::from_vec(vec![6u32; rows], [rows], &cpu())?.to(&g)?;
    // Chosen by the rows: 300 rows over 8 experts are grouped, 4 rows go one by one.
    assert_eq!(expert_path(rows, experts), ExpertPath::Grouped);
    assert_eq!(expert_path(4, experts), ExpertPath::PerRow);
    let few = x.narrow(0usize, 0, 4)?.contiguous()?;
    let few_ids = spread.narrow(0usize, 0, 4)?.contiguous()?;
    let runs: [(&str, Option<ExpertPath>, &Tensor, &Tensor, u64); 6] = [
        ("per row, spread", Some(ExpertPath::PerRow), &x, &spread, 1),
        ("per row, crowded", Some(ExpertPath::PerRow), &x, &crowded, 1),
        ("grouped, spread", Some(ExpertPath::Grouped), &x, &spread, 2),
        ("grouped, crowded", Some(ExpertPath::Grouped), &x, &crowded, 2),
        ("chosen, 300 rows", None, &x, &spread, 2),
        ("chosen, 4 rows", None, &few, &few_ids, 1),
    ];
    for (what, path, x, ids, dispatches) in runs {
        g.synchronize()?;
        let before = gpu::counters();
        force_expert_path(path);
        let y = x.expert_matmul(&w, ids);
        force_expert_path(None);
        let y = y?;
        let recorded = gpu::counters().delta(&before);
        assert_eq!(recorded.readbacks, 0, "{what}: the op waited for the GPU");
        g.synchronize()?;
        let run = gpu::counters().delta(&before);
        assert_eq!(run.dispatches, dispatches, "{what}: dispatches");
        drop(y);
    }
    Ok(())
}

#[test]
fn each_reduction_of_the_per_row_path() -> Result<()> {
    let _lock = lock();
    let Some(g) = gpu() else { return Ok(()) };
    let backend = gpu::backend()?;
    for dtype in [DType::F32, DType::F16] {
        let case = Case { dtype, ..Case::new(9, 64, 40, 4) };
        gpu::features::force_subgroups(Some(false));
        gpu::features::force_shader_f16(Some(false));
        let fallback = case.check(&g, ExpertPath::PerRow);
        gpu::features::force_subgroups(None);
        gpu::features::force_shader_f16(None);
        fallback?;
        case.check(&g, ExpertPath::PerRow)?;
    }
    let names = backend.pipelines.names();
    assert!(names.iter().any(|n| n == "expert_matvec/f32/true/vec4/tree"), "{names:?}");
    assert!(names.iter().any(|n| n == "expert_matvec/f16/true/vec4/tree"), "{names:?}");
    let info = backend.context();
    if info.features.subgroups && info.info.subgroup_min_size >= 4 {
        assert!(names.iter().any(|n| n == "expert_matvec/f32/true/vec4/subgroup"), "{names:?}");
    }
    if info.features.shader_f16 {
        assert!(names.iter().any(|n| n.starts_with("expert_matvec/f16/true/vec4/") && n.ends_with("/shader-f16")));
    }
    Ok(())
}

#[test]
fn shapes_past_the_grid_are_errors_naming_the_op() -> Result<()> {
    let _lock = lock();
    let Some(g) = gpu() else { return Ok(()) };
    // 70,000 rows: past the per-row grid's 65,535; over 70,000 experts, past the grouped one's.
    let rows = 70_000;
    let x = Tensor::ones([rows, 1], DType::F32, &g)?;
    let ids = Tensor::from_vec((0..rows as u32).collect::<Vec<_>>(), [rows], &g)?;
    let w = Tensor::ones([rows, 1, 1], DType::F32, &g)?;
    for path in PATHS {
        force_expert_path(Some(path));
        let y = x.expert_matmul(&w, &ids);
        force_expert_path(None);
        let err = y.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("expert_matmul") && err.contains("grid"), "{path:?}: {err}");
    }
    g.synchronize()?;
    Ok(())
}

/// `experts` [n, k] matrices of normal values encoded as `ty` blocks, stacked: the bytes, and the
/// decoded stack [experts, n, k] on the CPU.
fn quantized_stack(ty: GgmlType, experts: usize, n: usize, k: usize, seed: u64) -> Result<(Vec<u8>, Tensor)> {
    let w: Vec<f32> = randn([experts * n, k], seed, &cpu())?.to_vec()?;
    let bytes = quant::quantize(ty, &w)?;
    let mut decoded = vec![0.0f32; w.len()];
    quant::dequantize(ty, &bytes, &mut decoded)?;
    Ok((bytes, Tensor::from_vec(decoded, [experts, n, k], &cpu())?))
}

/// (rows, experts, n, k, ids), the ids routed at random where None.
type QuantizedCase = (usize, usize, usize, usize, Option<Vec<u32>>);

#[test]
fn quantized_experts_on_both_paths() -> Result<()> {
    let _lock = lock();
    let Some(g) = gpu() else { return Ok(()) };
    let types = [
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
    // Odd shapes, idle experts, every row on one; every other case with i64 ids.
    let cases: [QuantizedCase; 6] = [
        (1, 3, 11, 256, None),
        (3, 1, 70, 256, None),
        (17, 3, 65, 512, None),
        (300, 8, 11, 256, None),
        (100, 64, 33, 256, Some((0..100).map(|r| [63, 0, 9][r % 3]).collect())),
        (70, 3, 33, 256, Some(vec![2; 70])),
    ];
    for (t, ty) in types.into_iter().enumerate() {
        for (c, (rows, experts, n, k, ids)) in cases.iter().enumerate() {
            let (bytes, decoded) = quantized_stack(ty, *experts, *n, *k, (t * 10 + c) as u64)?;
            let q = DeviceQMatrix::upload_stack(ty, *experts, *n, *k, &bytes, &g)?;
            let ids = ids.clone().unwrap_or_else(|| routed(*rows, *experts, c as u64));
            let ids = Tensor::from_vec(ids, [*rows], &cpu())?;
            let ids = if c % 2 == 0 { ids } else { ids.to_dtype(DType::I64)? };
            let x = randn([*rows, *k], 100 + c as u64, &cpu())?;
            let want = x.expert_matmul(&decoded.transpose(1, 2)?, &ids)?;
            let (xg, idg) = (x.to(&g)?, ids.to(&g)?);
            for path in PATHS {
                poisoned(rows * n, &g)?;
                force_expert_path(Some(path));
                let got = q.expert_matmul(&xg, &idg);
                force_expert_path(None);
                let what = format!("{ty} {path:?} R={rows} E={experts} N={n} K={k}");
                assert_close(&got?.to(&cpu())?, &want, 1e-5 * (*k as f64).sqrt(), 1e-4)
                    .map_err(|e| tensor::Error::shape(&what, e.to_string()))?;
            }
        }
    }
    Ok(())
}

#[test]
fn quantized_experts_out_of_range_and_without_readback() -> Result<()> {
    let _lock = lock();
    let Some(g) = gpu() else { return Ok(()) };
    let (rows, experts, n, k) = (300, 8, 40, 256);
    let (bytes, decoded) = quantized_stack(GgmlType::Q8_0, experts, n, k, 5)?;
    let q = DeviceQMatrix::upload_stack(GgmlType::Q8_0, experts, n, k, &bytes, &g)?;
    let x = randn([rows, k], 6, &cpu())?;
    let mut ids = routed(rows, experts, 7);
    ids[10] = experts as u32;
    ids[200] = 1 << 20;
    let fixed: Vec<u32> = ids.iter().map(|&e| if e < experts as u32 { e } else { 0 }).collect();
    let mut want =
        x.expert_matmul(&decoded.transpose(1, 2)?, &Tensor::from_vec(fixed, [rows], &cpu())?)?.to_vec::<f32>()?;
    for r in [10, 200] {
        want[r * n..(r + 1) * n].fill(0.0);
    }
    let want = Tensor::from_vec(want, [rows, n], &cpu())?;
    let (xg, idg) = (x.to(&g)?, Tensor::from_vec(ids, [rows], &cpu())?.to(&g)?);
    for (path, dispatches) in [(ExpertPath::PerRow, 1), (ExpertPath::Grouped, 2)] {
        poisoned(rows * n, &g)?;
        g.synchronize()?;
        let before = gpu::counters();
        force_expert_path(Some(path));
        let y = q.expert_matmul(&xg, &idg);
        force_expert_path(None);
        let y = y?;
        assert_eq!(gpu::counters().delta(&before).readbacks, 0, "{path:?}: the op waited for the GPU");
        let err = g.synchronize().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("out of range"), "{path:?}: {err}");
        assert_eq!(gpu::counters().delta(&before).dispatches, dispatches, "{path:?}: dispatches");
        assert_close(&y.to(&cpu())?, &want, 1e-4, 1e-4)?;
    }
    Ok(())
}
