//! The dense mixture-of-experts product (`expert_matmul`) with stacked f32, bf16 and f16 experts
//! over the adapter's storage binding limit, bound a window of whole experts at a time
//! (`src/split.rs`, `kernels/matmul/expert.rs`), on both of its paths (each forced). This test
//! process lowers the limit to 1 MiB (`LLM_GPU_MAX_BINDING_MIB`, read when the device opens;
//! every test here sets it first), so stacks of 2-4 MiB take the path a bf16 Qwen3-30B-A3B
//! layer's 403 MB of experts takes on lavapipe. A window holds 2 or 3 experts, and no expert
//! spans a multiple of the 256-byte window alignment, so windows start inside the expert before
//! their first (the kernels must read from the window's offset). The weights are viewed K
//! contiguous (the transpose of a stored [E, N, K]), N contiguous, and at an odd offset and row
//! stride. 1, 5 and 40 rows, whose ids together cover every expert, repeat some and include ids
//! past the experts, are compared with the CPU's product within `expert_matmul.rs`'s tolerance
//! (1e-4 relative plus 1e-5 sqrt(K) absolute). The output's buffer is poisoned with NaN first,
//! so a row no window writes, or one a window overwrites with another's, shows. Each call's
//! dispatches are counted (at least one per window), the per-row path runs with both of its
//! reductions, and an expert larger than one binding is an error naming the op, while an empty
//! view of a split stack gives zero rows and reports the ids.
//!
//! The tests take one lock: the error flag and the counters are per process.

mod common;

use std::sync::{Mutex, MutexGuard};

use common::{LOW_LIMIT, Stored, cpu, gpu_with_low_limit};
use gpu::kernels::matmul::{ExpertPath, force_expert_path};
use tensor::testing::{assert_close, randn};
use tensor::{DType, Device, Result, Tensor};

const PATHS: [ExpertPath; 2] = [ExpertPath::PerRow, ExpertPath::Grouped];

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// 40 ids over `experts` (7 to 9): every expert within the first `experts`, out of order, then
/// repeats, with two past the experts (just past, and the largest u32) at rows 23 and 36.
fn ids_over(experts: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..40).map(|i| ((i * 5 + 2) % experts) as u32).collect();
    ids[23] = experts as u32;
    ids[36] = u32::MAX;
    ids
}

/// The products of one stack: `experts` [K, N] experts of `dtype` stored as `stored`.
fn check_stack(g: &Device, dtype: DType, stored: Stored, (experts, k, n): (usize, usize, usize)) -> Result<()> {
    let storage = stored.storage(experts, k, n, (experts * k + n) as u64)?.to_dtype(dtype)?;
    let bytes = storage.elem_count() * dtype.size_in_bytes();
    assert!(bytes > 2 * LOW_LIMIT, "{dtype} {stored:?}: the stack must need 3 windows or more");
    let w_cpu = stored.view(&storage, experts, k)?;
    let w_gpu = stored.view(&storage.to(g)?, experts, k)?;
    let ids = ids_over(experts);
    let x = randn([ids.len(), k], 5, &cpu())?;
    // The reference: rows of ids past the experts through expert 0, then zeroed.
    let fixed: Vec<u32> = ids.iter().map(|&e| if (e as usize) < experts { e } else { 0 }).collect();
    let mut want = x.expert_matmul(&w_cpu, &Tensor::from_vec(fixed, [ids.len()], &cpu())?)?.to_vec::<f32>()?;
    for (r, &e) in ids.iter().enumerate() {
        if e as usize >= experts {
            want[r * n..(r + 1) * n].fill(0.0);
        }
    }
    // Calls of 1 row (the first expert, the last, and an id past them), of 5 rows (every chunk of
    // the 40) and of all 40.
    let row_of = |e: u32| ids.iter().position(|&id| id == e).unwrap_or(0);
    let mut calls: Vec<(usize, usize)> = vec![(row_of(0), 1), (row_of(experts as u32 - 1), 1), (36, 1)];
    calls.extend((0..40).step_by(5).map(|r| (r, 5)));
    calls.push((0, 40));
    let run = |path: ExpertPath| -> Result<()> {
        for &(first, rows) in &calls {
            let what = format!("{dtype} {stored:?} E={experts} K={k} N={n} {path:?} rows {first}..{}", first + rows);
            let chunk = &ids[first..first + rows];
            let bad = chunk.iter().any(|&e| e as usize >= experts);
            let x_rows = x.narrow(0usize, first, rows)?.to(g)?;
            let ids_gpu = Tensor::from_vec(chunk.to_vec(), [rows], g)?;
            Tensor::full(f64::NAN, [rows * n], DType::F32, g).map(drop)?;
            g.synchronize()?;
            let before = gpu::counters();
            force_expert_path(Some(path));
            let y = x_rows.expert_matmul(&w_gpu, &ids_gpu);
            force_expert_path(None);
            let y = y?;
            let synced = g.synchronize();
            let dispatches = gpu::counters().delta(&before).dispatches;
            match synced {
                Err(e) => assert!(bad && e.to_string().contains("out of range"), "{what}: {e}"),
                Ok(()) => assert!(!bad, "{what}: an id past the experts was not reported"),
            }
            // A dispatch a window (and the plan): at least one per MiB of experts.
            let least = bytes.div_ceil(LOW_LIMIT) + usize::from(path == ExpertPath::Grouped);
            assert!(dispatches as usize >= least, "{what}: {dispatches} dispatches, fewer than {least} windows");
            let want = Tensor::from_vec(want[first * n..(first + rows) * n].to_vec(), [rows, n], &cpu())?;
            assert_close(&y.to(&cpu())?, &want, 1e-5 * (k as f64).sqrt(), 1e-4)
                .map_err(|e| tensor::Error::shape(&what, e.to_string()))?;
        }
        Ok(())
    };
    // The per-row path's sums through workgroup memory, then by subgroups where the adapter has
    // them (`expert_matvec.wgsl` with either entry point); the grouped path as the adapter offers.
    for (path, subgroups) in [(ExpertPath::PerRow, false), (ExpertPath::PerRow, true), (ExpertPath::Grouped, true)] {
        gpu::features::force_subgroups(if subgroups { None } else { Some(false) });
        let result = run(path);
        gpu::features::force_subgroups(None);
        result.map_err(|e| tensor::Error::shape(&format!("subgroups {subgroups}"), e.to_string()))?;
    }
    Ok(())
}

#[test]
fn f32_experts_over_the_limit_on_both_paths() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else { return Ok(()) };
    let _lock = lock();
    // 308,400 bytes an expert: 3 a window, the second and third windows' first experts 16 and
    // 32 bytes past their start. K contiguous (vec4 loads), then N contiguous (a thread per
    // output on the per-row path).
    check_stack(&g, DType::F32, Stored::KContiguous, (9, 300, 257))?;
    check_stack(&g, DType::F32, Stored::NContiguous, (9, 257, 300))?;
    // Both reductions of the per-row path ran on the windows (subgroups where the adapter has them).
    let backend = gpu::backend()?;
    let names = backend.pipelines.names();
    assert!(names.iter().any(|n| n == "expert_matvec/f32/true/vec4/tree"), "{names:?}");
    let info = backend.context();
    if info.features.subgroups && info.info.subgroup_min_size >= 4 {
        assert!(names.iter().any(|n| n == "expert_matvec/f32/true/vec4/subgroup"), "{names:?}");
    } else {
        println!("note: this adapter has no subgroups; only the tree reduction was exercised");
    }
    Ok(())
}

#[test]
fn bf16_experts_over_the_limit_on_both_paths() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else { return Ok(()) };
    let _lock = lock();
    // 412,880 bytes an expert: 2 a window, their first 160, 64 and 224 bytes past the start of
    // windows 2 to 4; K a multiple of 8 (16-byte loads).
    check_stack(&g, DType::BF16, Stored::KContiguous, (7, 520, 397))
}

#[test]
fn f16_experts_over_the_limit_on_both_paths() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else { return Ok(()) };
    let _lock = lock();
    // 403,872 bytes an expert (2 a window), at an odd offset and row stride: scalar loads.
    check_stack(&g, DType::F16, Stored::OddOffset, (8, 333, 601))?;
    // 307,200 bytes an expert (1200 x 256), 3 a window, each starting on its first expert;
    // N contiguous.
    check_stack(&g, DType::F16, Stored::NContiguous, (8, 512, 300))
}

#[test]
fn an_expert_larger_than_a_binding_is_an_error_and_no_expert_a_zero_row() -> Result<()> {
    let Some(g) = gpu_with_low_limit() else { return Ok(()) };
    let _lock = lock();
    // Two experts of 1.2 MB each: no window holds one.
    let w = randn([2, 500, 600], 1, &cpu())?.to(&g)?.transpose(1, 2)?;
    let x = randn([3, 600], 2, &cpu())?.to(&g)?;
    let ids = Tensor::from_vec(vec![0u32, 1, 0], [3], &g)?;
    for path in PATHS {
        force_expert_path(Some(path));
        let err = x.expert_matmul(&w, &ids).err().map(|e| e.to_string()).unwrap_or_default();
        force_expert_path(None);
        assert!(err.contains("expert_matmul") && err.contains("binding limit"), "{path:?}: {err}");
    }
    // No experts at all (an empty view of a stack over the limit): every id is out of range.
    let none = w.narrow(0usize, 1, 0)?;
    for path in PATHS {
        force_expert_path(Some(path));
        let y = x.expert_matmul(&none, &ids);
        force_expert_path(None);
        let err = g.synchronize().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("out of range"), "{path:?}: {err}");
        assert_eq!(y?.to(&cpu())?.to_vec::<f32>()?, vec![0.0; 3 * 500], "{path:?}");
    }
    // The device goes on.
    g.synchronize()
}
