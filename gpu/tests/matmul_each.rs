//! `matmul_each`'s fused kernel (`matvec_each.wgsl`: the matrix-vector product over up to three
//! weights, their products side by side in one buffer) against the CPU's separate products: 1, 2
//! and 3 weights of different row counts (the last one not a multiple of the 4 outputs a
//! workgroup takes), K with and without a tail past its last multiple of 8, weight rows that start
//! 16-byte aligned (vec4 loads) or not (scalar loads), weights at offsets of one table,
//! f32/bf16/f16 weights, both reductions and both ways of reading f16, each fallback forced in
//! turn; the one row the matrix-vector path takes in one dispatch, bitwise the GPU's separate
//! products, and more rows (or a first weight a workgroup would straddle) falling back to the
//! separate products, still right. The products are views of one buffer, which the per-head
//! norms, RoPE and a cache write after them read in place: one dispatch each, no copy. One test
//! in a file of its own: forcing a fallback is process-wide, and it counts dispatches.
//!
//! Tolerance: 1e-5 relative plus 1e-6 * sqrt(K) absolute (f32 sums of K terms in another order);
//! bf16/f16 weights are widened exactly on both sides, so they need no more.

mod common;

use common::{counted, cpu, gpu, on_each_matvec_path, same_on_both};
use tensor::testing::{assert_close, randn};
use tensor::{DType, Device, Result, RmsNormSpec, Tensor};

/// `x.matmul_each` over however many weights a case has (the op takes an array of 1 to 3).
fn matmul_each(x: &Tensor, weights: &[&Tensor]) -> Result<Vec<Tensor>> {
    Ok(match *weights {
        [a] => x.matmul_each([a])?.to_vec(),
        [a, b] => x.matmul_each([a, b])?.to_vec(),
        [a, b, c] => x.matmul_each([a, b, c])?.to_vec(),
        _ => unreachable!("the cases here have 1 to 3 weights"),
    })
}

/// The products of `x` with `weights`, side by side (compared in one piece).
fn side_by_side(x: &Tensor, weights: &[Tensor]) -> Result<Tensor> {
    let products = matmul_each(x, &weights.iter().collect::<Vec<_>>())?;
    Tensor::cat(&products.iter().collect::<Vec<_>>(), -1)
}

/// One row against every shape, count of weights, weight dtype and layout.
fn one_row(g: &Device) -> Result<()> {
    let shapes: [(&[usize], usize); 7] = [
        (&[1], 1),
        (&[4, 3], 7),
        (&[8, 4, 4], 8),
        (&[32, 16, 13], 33),
        (&[12, 4], 64),
        (&[16, 8, 8], 1031),
        (&[4, 12, 5], 1000),
    ];
    for (i, &(widths, k)) in shapes.iter().enumerate() {
        let seed = 10 * i as u64;
        // [1, K] and [1, 1, K]: the row as a Linear sees it, with or without a batch dim.
        let shape = if i % 2 == 0 { vec![1, k] } else { vec![1, 1, k] };
        let x = randn(shape, seed, &cpu())?.mul_scalar(1.0 / (k as f64).sqrt())?;
        let weights: Vec<Tensor> = widths
            .iter()
            .enumerate()
            .map(|(j, &n)| randn([n, k], seed + 1 + j as u64, &cpu()))
            .collect::<Result<_>>()?;
        let tol = 1e-6 * (k as f64).sqrt();
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let weights: Vec<Tensor> = weights.iter().map(|w| w.to_dtype(dtype)).collect::<Result<_>>()?;
            let what = format!("x {:?}, weights {widths:?} x {k} {dtype}", x.shape());
            let inputs: Vec<Tensor> = std::iter::once(x.clone()).chain(weights.iter().cloned()).collect();
            same_on_both(g, &inputs, tol, 1e-5, &what, |t| side_by_side(&t[0], &t[1..]))?;
            // The weights as rows of one larger table, from an offset of 8 elements (rows stay
            // aligned when K is a multiple of 8) or of 1 (never aligned).
            let total: usize = widths.iter().sum();
            for skip in [1, 8] {
                let table = randn([total * k + skip], seed + 5, &cpu())?.to_dtype(dtype)?;
                let what = format!("weights {widths:?} x {k} {dtype} in one table from offset {skip}");
                same_on_both(g, &[x.clone(), table], tol, 1e-5, &what, |t| {
                    let rows = t[1].narrow(0usize, skip, total * k)?.reshape([total, k])?;
                    side_by_side(&t[0], &rows.split(widths, 0)?)
                })?;
            }
        }
    }
    Ok(())
}

/// One row is one dispatch for all the products, views of one buffer, bitwise the GPU's separate
/// products (each summed in the plain kernel's order); more rows, or a first weight whose rows a
/// workgroup would straddle, are the separate products, still right.
fn dispatches(g: &Device) -> Result<()> {
    let k = 72;
    for (widths, rows, expected) in
        [(&[16, 8, 8][..], 1, 1), (&[16, 8][..], 1, 1), (&[16, 8, 8], 2, 3), (&[6, 8], 1, 2)]
    {
        let weights: Vec<Tensor> = widths
            .iter()
            .enumerate()
            .map(|(j, &n)| randn([n, k], 90 + j as u64, &cpu())?.to_dtype(DType::BF16))
            .collect::<Result<_>>()?;
        let on_gpu: Vec<Tensor> = weights.iter().map(|w| w.to(g)).collect::<Result<_>>()?;
        let x = randn([1, rows, k], 95, &cpu())?.mul_scalar(1.0 / (k as f64).sqrt())?;
        let x_g = x.to(g)?;
        x_g.to(&cpu())?; // the upload done before counting
        let what = format!("{rows} rows, weights {widths:?}");
        let before = gpu::counters();
        let products = matmul_each(&x_g, &on_gpu.iter().collect::<Vec<_>>())?;
        let host: Vec<Tensor> = products.iter().map(|p| p.to(&cpu())).collect::<Result<_>>()?;
        assert_eq!(gpu::counters().delta(&before).dispatches, expected, "{what}: dispatches");
        let views = products.windows(2).all(|p| p[0].shares_buffer_with(&p[1]));
        assert_eq!(views, expected == 1, "{what}: the products are views of one buffer");
        let fused = Tensor::cat(&host.iter().collect::<Vec<_>>(), -1)?;
        let want = side_by_side(&x, &weights)?;
        assert_close(&fused, &want, 1e-6 * (k as f64).sqrt(), 1e-5)
            .map_err(|e| tensor::Error::shape("matmul_each", format!("{what}: {e}")))?;
        let separate: Vec<Tensor> = on_gpu.iter().map(|w| x_g.matmul(&w.t()?)).collect::<Result<_>>()?;
        let separate = Tensor::cat(&separate.iter().collect::<Vec<_>>(), -1)?.to(&cpu())?;
        assert_eq!(fused.to_vec::<f32>()?, separate.to_vec::<f32>()?, "{what}: bitwise the separate products");
    }
    Ok(())
}

/// An attention's projections of one decoded row as `matmul_each` gives them (q, k and v views at
/// offsets 0, 32 and 48 of one buffer), through what follows them in a layer: heads, the fused
/// per-head QK-norm + RoPE, RoPE alone, a whole-projection RMSNorm, a write into a cache, and the
/// norm and rotation written into the cache's rows (with the values alongside).
/// Each reads its view in place, one dispatch, no copy; the values are the CPU's.
fn views_read_in_place(g: &Device) -> Result<()> {
    let (k, hd) = (24, 8);
    let weights = [randn([32, k], 60, &cpu())?, randn([16, k], 61, &cpu())?, randn([16, k], 62, &cpu())?];
    let x = randn([1, 1, k], 63, &cpu())?;
    let norm_w = randn([hd], 64, &cpu())?;
    let (cos, sin) = (randn([1, hd / 2], 65, &cpu())?, randn([1, hd / 2], 66, &cpu())?);
    let spec = RmsNormSpec { eps: 1e-6, add_unit_offset: false };
    // Each step on one device: its result, and on the GPU the dispatches it took.
    let run = |device: &Device| -> Result<Vec<(Tensor, u64)>> {
        let on = |t: &Tensor| t.to(device);
        let w: Vec<Tensor> = weights.iter().map(on).collect::<Result<_>>()?;
        let cache = Tensor::zeros([1, 2, 4, hd], DType::F32, device)?;
        // Written by the last two steps (on the CPU a read-back result shares its buffer); the
        // last one's keys and values in two halves of one buffer.
        let caches =
            [Tensor::zeros([1, 2, 4, hd], DType::F32, device)?, Tensor::zeros([2, 2, 4, hd], DType::F32, device)?];
        let [q, kp, v] = on(&x)?.matmul_each([&w[0], &w[1], &w[2]])?;
        q.to(&cpu())?; // the product done before counting
        let heads = |t: &Tensor, n: usize| t.reshape([1, 1, n, hd])?.transpose(1, 2);
        let (norm_w, cos, sin) = (on(&norm_w)?, on(&cos)?, on(&sin)?);
        let steps: [&dyn Fn() -> Result<Tensor>; 6] = [
            &|| heads(&kp, 2)?.rms_norm_rope(Some(&norm_w), spec, &cos, &sin, false),
            &|| heads(&kp, 2)?.rope(&cos, &sin, true),
            &|| kp.rms_norm(None, spec),
            &|| {
                cache.narrow(2, 1, 1)?.write_from(&heads(&v, 2)?)?;
                Ok(cache.clone())
            },
            &|| {
                heads(&kp, 2)?.rope_into(
                    Some((Some(&norm_w), spec)),
                    &cos,
                    &sin,
                    false,
                    &caches[0].narrow(2, 2, 1)?,
                    None,
                )?;
                Ok(caches[0].clone())
            },
            &|| {
                let (k_cache, v_cache) = (caches[1].narrow(0, 0, 1)?, caches[1].narrow(0, 1, 1)?);
                let values = Some((&heads(&v, 2)?, &v_cache.narrow(2, 1, 1)?));
                heads(&kp, 2)?.rope_into(None, &cos, &sin, true, &k_cache.narrow(2, 3, 1)?, values)?;
                Ok(caches[1].clone())
            },
        ];
        steps.iter().map(counted).collect()
    };
    let names = [
        "rms_norm_rope",
        "rope",
        "rms_norm",
        "cache write",
        "rms_norm_rope into the cache",
        "rope and values into the cache",
    ];
    for ((name, (on_gpu, count)), (on_cpu, _)) in names.iter().zip(run(g)?).zip(run(&cpu())?) {
        assert_eq!(count, 1, "{name} of a view at an offset: one dispatch, no copy");
        assert_close(&on_gpu, &on_cpu, 1e-5, 1e-5).map_err(|e| tensor::Error::shape(name, e.to_string()))?;
    }
    Ok(())
}

#[test]
fn fused_products_match_the_separate_ones_on_every_path() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    on_each_matvec_path("matvec_each", || one_row(&g))?;
    dispatches(&g)?;
    views_read_in_place(&g)
}
