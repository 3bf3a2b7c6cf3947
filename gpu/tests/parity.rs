//! Every tensor op on the GPU against the CPU reference, on random inputs with odd sizes
//! (1, 7, 33, 1000), strided views (permuted, offset, broadcast) and every axis. The tables
//! (`UnaryOp::ALL`, ...) are iterated, so a new op is tested with no new test code.
//!
//! Tolerances: elementwise 1e-5 relative (+1e-6 absolute) for f32 transcendentals (erf's
//! approximation is within 1.5e-7); reductions and softmax 1e-5 relative (summation order);
//! matmul 1e-5 relative plus 1e-5 * sqrt(K) absolute (f32 accumulation in another order).

mod common;

use common::{cpu, gpu, same_on_both, views};
use tensor::ops::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use tensor::testing::{randn, uniform};
use tensor::{AttentionMask, AttentionSpec, DType, Device, GluActivation, Result, RmsNormSpec, Tensor};

const SIZES: [usize; 4] = [1, 7, 33, 1000];

#[test]
fn every_dtype_round_trips() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for n in SIZES {
        let base = randn([n], n as u64, &cpu())?.mul_scalar(100.0)?;
        for dtype in [DType::F32, DType::BF16, DType::F16, DType::U32, DType::I64] {
            let t = base.abs()?.to_dtype(dtype)?;
            let back = t.to(&g)?.to(&cpu())?;
            assert_eq!(back.to_host()?, t.to_host()?, "{dtype} x {n}");
        }
    }
    let f64_tensor = Tensor::ones([3], DType::F64, &cpu())?;
    let err = f64_tensor.to(&g).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("f64"), "{err}");
    Ok(())
}

#[test]
fn every_unary_op_on_every_view() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    for op in UnaryOp::ALL {
        for (i, n) in SIZES.into_iter().enumerate() {
            let x = if op.needs_positive_input() {
                uniform([n, 3], 0.1, 4.0, i as u64, &cpu())?
            } else {
                randn([n, 3], i as u64, &cpu())?.mul_scalar(2.0)?
            };
            for (view, t) in views(&x)? {
                same_on_both(&g, &[t], 1e-6, 1e-5, &format!("{} {view} [{n}, 3]", op.name()), |x| x[0].unary(op))?;
            }
        }
        // A broadcast (stride 0) input.
        let row = randn([1, 5], 9, &cpu())?.abs()?.add_scalar(0.5)?.broadcast_to([4, 5])?;
        same_on_both(&g, &[row], 1e-6, 1e-5, &format!("{} broadcast", op.name()), |x| x[0].unary(op))?;
    }
    Ok(())
}

#[test]
fn every_binary_op_with_broadcasting() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let shapes: [(&[usize], &[usize]); 4] =
        [(&[7, 1, 33], &[1, 5, 33]), (&[1000], &[1]), (&[1], &[7, 3]), (&[33, 7], &[33, 7])];
    for op in BinaryOp::ALL {
        for (i, (sa, sb)) in shapes.iter().enumerate() {
            let a = uniform(sa.to_vec(), 0.5, 2.0, i as u64, &cpu())?;
            let b = uniform(sb.to_vec(), 0.5, 2.0, 10 + i as u64, &cpu())?;
            same_on_both(&g, &[a.clone(), b.clone()], 1e-6, 1e-5, &format!("{} {sa:?} {sb:?}", op.name()), |x| {
                x[0].binary(op, &x[1])
            })?;
            let at = tensor::testing::non_contiguous(&a)?;
            same_on_both(&g, &[at, b], 1e-6, 1e-5, &format!("{} strided {sa:?}", op.name()), |x| {
                x[0].binary(op, &x[1])
            })?;
        }
        if op != BinaryOp::Pow {
            let a = Tensor::from_vec(vec![7u32, 0, 3, 100], [4], &cpu())?;
            let b = Tensor::from_vec(vec![2u32, 5, 0, 7], [4], &cpu())?;
            same_on_both(&g, &[a, b], 0.0, 0.0, &format!("{} u32", op.name()), |x| x[0].binary(op, &x[1]))?;
        }
    }
    Ok(())
}

#[test]
fn comparisons_and_where() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let a = randn([7, 33], 1, &cpu())?;
    let b = randn([33], 2, &cpu())?;
    let with_ties = Tensor::cat(&[&a, &b.unsqueeze(0)?], 0usize)?; // equal values appear
    for op in CmpOp::ALL {
        same_on_both(&g, &[with_ties.clone(), b.clone()], 0.0, 0.0, op.name(), |x| x[0].compare(op, &x[1]))?;
    }
    let mask = a.gt(&b)?;
    same_on_both(&g, &[mask, a.clone(), b.clone()], 0.0, 0.0, "where_cond", |x| x[0].where_cond(&x[1], &x[2]))?;
    let float_mask = a.gt(&b)?.to_dtype(DType::F32)?;
    same_on_both(&g, &[float_mask, a, b], 0.0, 0.0, "where_cond with an f32 mask", |x| x[0].where_cond(&x[1], &x[2]))?;
    Ok(())
}

#[test]
fn every_reduction_on_every_axis() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let x = randn([3, 7, 33], 3, &cpu())?;
    for op in ReduceOp::ALL {
        for axis in 0..3usize {
            for (view, t) in views(&x)? {
                same_on_both(&g, &[t], 1e-5, 1e-5, &format!("{} axis {axis} {view}", op.name()), |x| {
                    x[0].reduce(op, axis, true)
                })?;
            }
        }
        let long = randn([2, 1000], 4, &cpu())?;
        same_on_both(&g, &[long], 1e-4, 1e-5, &format!("{} long rows", op.name()), |x| x[0].reduce(op, -1, false))?;
        let ints = Tensor::from_vec(vec![3u32, 9, 9, 1, 4, 0], [2, 3], &cpu())?;
        same_on_both(&g, &[ints], 0.0, 0.0, &format!("{} u32", op.name()), |x| x[0].reduce(op, 1usize, false))?;
    }
    // Ties go to the first index, as on the CPU.
    let ties = Tensor::from_vec(vec![1.0f32, 5.0, 5.0, 2.0], [1, 4], &cpu())?;
    same_on_both(&g, &[ties], 0.0, 0.0, "argmax ties", |x| x[0].argmax(-1, false))?;
    // NaN wins max, min and their args (the first NaN), as on the CPU: greedy decoding on a GPU
    // relies on it to see NaN logits it never reads back. Rows long enough for the tree.
    let mut values = randn([3, 700], 7, &cpu())?.to_vec::<f32>()?;
    values[5] = f32::NAN;
    values[700 + 650] = f32::NAN;
    values[700 + 3] = f32::NAN;
    values[1400 + 10] = f32::INFINITY;
    let with_nan = Tensor::from_vec(values, [3, 700], &cpu())?;
    for op in ReduceOp::ALL.into_iter().filter(|op| !matches!(op, ReduceOp::Sum)) {
        same_on_both(&g, std::slice::from_ref(&with_nan), 0.0, 0.0, &format!("{} with NaN", op.name()), |x| {
            x[0].reduce(op, -1, false)
        })?;
    }
    Ok(())
}

#[test]
fn softmax_log_softmax_and_cumsum_on_every_axis() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let x = randn([3, 7, 33], 5, &cpu())?.mul_scalar(3.0)?;
    for axis in [0i32, 1, -1] {
        same_on_both(&g, std::slice::from_ref(&x), 1e-6, 1e-5, &format!("softmax axis {axis}"), |x| {
            x[0].softmax(axis)
        })?;
        same_on_both(&g, std::slice::from_ref(&x), 1e-5, 1e-5, &format!("log_softmax axis {axis}"), |x| {
            x[0].log_softmax(axis)
        })?;
        same_on_both(&g, std::slice::from_ref(&x), 1e-5, 1e-5, &format!("cumsum axis {axis}"), |x| x[0].cumsum(axis))?;
    }
    let extreme = Tensor::from_vec(vec![1e30f32, -1e30, 0.0, 1e4, -1e4, 3.0], [2, 3], &cpu())?;
    same_on_both(&g, &[extreme], 1e-6, 1e-5, "softmax of extreme logits", |x| x[0].log_softmax(-1))?;
    Ok(())
}

#[test]
fn topk_on_rows_and_columns() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let x = randn([7, 33], 6, &cpu())?;
    for (k, axis) in [(1usize, -1i32), (3, -1), (7, 0), (33, 1)] {
        same_on_both(&g, std::slice::from_ref(&x), 0.0, 0.0, &format!("topk values k {k} axis {axis}"), |x| {
            Ok(x[0].topk(k, axis)?.0)
        })?;
        same_on_both(&g, std::slice::from_ref(&x), 0.0, 0.0, &format!("topk ids k {k} axis {axis}"), |x| {
            Ok(x[0].topk(k, axis)?.1)
        })?;
    }
    let ties = Tensor::from_vec(vec![2.0f32, 5.0, 5.0, 5.0, 1.0], [1, 5], &cpu())?;
    same_on_both(&g, &[ties], 0.0, 0.0, "topk ties", |x| Ok(x[0].topk(3, -1)?.1))?;
    // NaN ranks first, as on the CPU (a router must see it).
    let nan = Tensor::from_vec(vec![2.0f32, f32::NAN, 5.0, 1.0, f32::NAN], [1, 5], &cpu())?;
    same_on_both(&g, &[nan], 0.0, 0.0, "topk NaN", |x| Ok(x[0].topk(3, -1)?.1))?;
    Ok(())
}

#[test]
fn matmul_shapes_views_and_weight_dtypes() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let cases: [(&[usize], &[usize]); 7] = [
        (&[1, 7], &[7, 33]),
        (&[33, 7], &[7, 1]),
        (&[65, 63], &[63, 67]),
        (&[2, 3, 17, 9], &[9, 5]),
        (&[2, 1, 4, 6], &[3, 6, 5]),
        (&[1, 1000], &[1000, 33]),
        (&[130, 20], &[20, 70]),
    ];
    for (i, (sa, sb)) in cases.iter().enumerate() {
        let a = randn(sa.to_vec(), 20 + i as u64, &cpu())?;
        let b = randn(sb.to_vec(), 30 + i as u64, &cpu())?;
        let k = sa[sa.len() - 1] as f64;
        let tol = 1e-5 * k.sqrt();
        same_on_both(&g, &[a.clone(), b.clone()], tol, 1e-5, &format!("matmul {sa:?} @ {sb:?}"), |x| {
            x[0].matmul(&x[1])
        })?;
        // Transposed operands: the same products through column-major views.
        let (at, bt) = (tensor::testing::non_contiguous(&a)?, tensor::testing::non_contiguous(&b)?);
        same_on_both(&g, &[at, bt], tol, 1e-5, &format!("matmul transposed {sa:?} @ {sb:?}"), |x| x[0].matmul(&x[1]))?;
    }
    // Decode: x [1, K] times a weight in both storage orders and all three weight dtypes (the
    // CPU side without its bf16-rounding kernels, see `common::gpu`).
    let x = randn([1, 33], 40, &cpu())?;
    let w = randn([7, 33], 41, &cpu())?; // HF layout [out, in]
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let wd = w.to_dtype(dtype)?;
        same_on_both(&g, &[x.clone(), wd.clone()], 1e-4, 1e-5, &format!("x @ W^T, {dtype}"), |t| {
            t[0].matmul(&t[1].t()?)
        })?;
        same_on_both(&g, &[x.clone(), wd.t()?.contiguous()?], 1e-4, 1e-5, &format!("x @ W, {dtype}"), |t| {
            t[0].matmul(&t[1])
        })?;
        let xs = randn([9, 33], 42, &cpu())?;
        same_on_both(&g, &[xs, wd], 1e-4, 1e-5, &format!("prefill @ W^T, {dtype}"), |t| t[0].matmul(&t[1].t()?))?;
    }
    Ok(())
}

/// The tiled kernel's edges and load widths: M, N and K around its 128x64 block and 16-deep
/// slices (one past, one short, much smaller), operands whose rows start 16-byte aligned (quads
/// read as one vec4, or four packed halves as one vec2<u32>) or not, each operand contiguous
/// along either dim, batched with its own batch stride, and f32/bf16/f16 weights.
#[test]
fn matmul_tiles_edges_and_load_widths() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    tensor::cpu::isa::force_bf16_gemm(Some(false));
    let shapes = [(129, 64, 65), (2, 16, 3), (127, 33, 63), (130, 20, 128), (5, 17, 4)];
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        let seed = 700 + 10 * i as u64;
        let tol = 1e-5 * (k as f64).sqrt();
        let x = randn([m, k], seed, &cpu())?;
        let w = randn([n, k], seed + 1, &cpu())?;
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let w = w.to_dtype(dtype)?;
            let what = format!("[{m}, {k}] @ [{k}, {n}] {dtype}");
            same_on_both(&g, &[x.clone(), w.clone()], tol, 1e-5, &format!("{what}, W stored [N, K]"), |t| {
                t[0].matmul(&t[1].t()?)
            })?;
            same_on_both(
                &g,
                &[x.clone(), w.t()?.contiguous()?],
                tol,
                1e-5,
                &format!("{what}, W stored [K, N]"),
                |t| t[0].matmul(&t[1]),
            )?;
            // x stored transposed (contiguous along M), and x at an offset of 1 (never aligned).
            same_on_both(
                &g,
                &[x.t()?.contiguous()?, w.clone()],
                tol,
                1e-5,
                &format!("{what}, x stored [K, M]"),
                |t| t[0].t()?.matmul(&t[1].t()?),
            )?;
            let padded = randn([m * k + 1], seed + 2, &cpu())?;
            same_on_both(&g, &[padded, w.clone()], tol, 1e-5, &format!("{what}, x at offset 1"), |t| {
                t[0].narrow(0usize, 1, m * k)?.reshape([m, k])?.matmul(&t[1].t()?)
            })?;
        }
        let xb = randn([3, m, k], seed + 3, &cpu())?;
        let wb = randn([3, n, k], seed + 4, &cpu())?;
        same_on_both(&g, &[xb, wb], tol, 1e-5, &format!("batched [3, {m}, {k}] @ [3, {k}, {n}]"), |t| {
            t[0].matmul(&t[1].transpose(1, 2)?)
        })?;
    }
    Ok(())
}

#[test]
fn expert_matmul_routes_rows() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let x = randn([7, 33], 50, &cpu())?;
    let w = randn([4, 5, 33], 51, &cpu())?; // [E, out, in]
    let ids = Tensor::from_vec(vec![3u32, 0, 0, 2, 3, 1, 0], [7], &cpu())?;
    for dtype in [DType::F32, DType::BF16] {
        same_on_both(
            &g,
            &[x.clone(), w.to_dtype(dtype)?, ids.clone()],
            1e-4,
            1e-5,
            &format!("expert_matmul {dtype}"),
            |t| t[0].expert_matmul(&t[1].transpose(1, 2)?, &t[2]),
        )?;
    }
    let i64_ids = ids.to_dtype(DType::I64)?;
    same_on_both(&g, &[x, w, i64_ids], 1e-4, 1e-5, "expert_matmul i64 ids", |t| {
        t[0].expert_matmul(&t[1].transpose(1, 2)?, &t[2])
    })?;
    Ok(())
}

#[test]
fn indexing_ops() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let table = randn([33, 7], 60, &cpu())?;
    for ids in [Tensor::from_vec(vec![3u32, 0, 32, 3], [4], &cpu())?, Tensor::from_vec(vec![5i64, 1], [2], &cpu())?] {
        same_on_both(&g, &[table.clone(), ids.clone()], 0.0, 0.0, "index_select axis 0", |t| {
            t[0].index_select(&t[1], 0usize)
        })?;
        same_on_both(&g, &[table.t()?, ids.clone()], 0.0, 0.0, "index_select axis 1 of a view", |t| {
            t[0].index_select(&t[1], 1usize)
        })?;
    }
    let tokens = Tensor::from_vec(vec![1i64, 4, 4, 0, 32, 2], [2, 3], &cpu())?;
    same_on_both(&g, &[table.clone(), tokens.clone()], 0.0, 0.0, "embedding with i64 ids", |t| t[0].embedding(&t[1]))?;
    // Half-precision tables are gathered as stored (exact): rows of odd length, so output words
    // straddle rows, and an odd number of picks, so the last word is half used.
    let ids = Tensor::from_vec(vec![3u32, 0, 32, 3, 31], [5], &cpu())?;
    for dtype in [DType::BF16, DType::F16] {
        let half = table.to_dtype(dtype)?;
        same_on_both(&g, &[half.clone(), ids.clone()], 0.0, 0.0, &format!("index_select {dtype} axis 0"), |t| {
            t[0].index_select(&t[1], 0usize)
        })?;
        same_on_both(
            &g,
            &[half.t()?, ids.clone()],
            0.0,
            0.0,
            &format!("index_select {dtype} axis 1 of a view"),
            |t| t[0].index_select(&t[1], 1usize),
        )?;
        same_on_both(&g, &[half, tokens.clone()], 0.0, 0.0, &format!("embedding {dtype}"), |t| t[0].embedding(&t[1]))?;
    }
    let src = randn([4, 7], 61, &cpu())?;
    let ids = Tensor::from_vec(vec![2u32, 2, 0, 9], [4], &cpu())?;
    same_on_both(&g, &[table.clone(), ids, src], 1e-6, 1e-6, "index_add with repeats", |t| {
        t[0].index_add(&t[1], &t[2], 0usize)
    })?;
    let index = Tensor::from_vec(vec![0u32, 6, 6, 1, 3, 0], [2, 3], &cpu())?;
    same_on_both(&g, &[table.clone(), index.clone()], 0.0, 0.0, "gather axis 1", |t| t[0].gather(&t[1], 1usize))?;
    let upd = randn([2, 3], 62, &cpu())?;
    same_on_both(&g, &[table.clone(), index.clone(), upd.clone()], 1e-6, 1e-6, "scatter_add axis 1", |t| {
        t[0].scatter_add(&t[1], &t[2], 1usize)
    })?;
    let index0 = Tensor::from_vec(vec![5u32, 5, 0], [3, 1], &cpu())?;
    let upd0 = randn([3, 1], 63, &cpu())?;
    same_on_both(&g, &[table.clone(), index0, upd0], 1e-6, 1e-6, "scatter_add axis 0", |t| {
        t[0].scatter_add(&t[1], &t[2], 0usize)
    })?;
    Ok(())
}

#[test]
fn concat_contiguous_copy_into_and_casts() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let a = randn([3, 7], 70, &cpu())?;
    let b = randn([3, 2], 71, &cpu())?;
    for dtype in [DType::F32, DType::BF16, DType::F16, DType::U32, DType::I64] {
        let (ad, bd) = (a.abs()?.mul_scalar(10.0)?.to_dtype(dtype)?, b.abs()?.mul_scalar(10.0)?.to_dtype(dtype)?);
        same_on_both(&g, &[ad.clone(), bd.clone()], 0.0, 0.0, &format!("cat {dtype}"), |t| {
            Tensor::cat(&[&t[0], &t[1], &t[0]], 1)
        })?;
        same_on_both(&g, std::slice::from_ref(&ad), 0.0, 0.0, &format!("contiguous of a transpose {dtype}"), |t| {
            t[0].t()?.contiguous()
        })?;
        for to in [DType::F32, DType::BF16, DType::F16, DType::U32, DType::I64] {
            same_on_both(&g, std::slice::from_ref(&ad), 0.0, 0.0, &format!("cast {dtype} -> {to}"), |t| {
                t[0].t()?.to_dtype(to)
            })?;
        }
    }
    // In-place writes into a narrowed view (a KV cache slot), in f32 and in a 16-bit type.
    for dtype in [DType::F32, DType::BF16] {
        let run = |dev: &Device| -> Result<Vec<f32>> {
            let cache = Tensor::zeros([2, 5, 4], dtype, dev)?;
            let rows = a.narrow(1, 0, 4)?.reshape([1, 3, 4])?.broadcast_to([2, 3, 4])?.to_dtype(dtype)?.to(dev)?;
            cache.narrow(1, 1, 3)?.write_from(&rows)?;
            cache.to_dtype(DType::F32)?.to_vec()
        };
        assert_eq!(run(&g)?, run(&cpu())?, "copy_into {dtype}");
    }
    Ok(())
}

#[test]
fn fused_norm_rope_and_gated_unit() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let x = randn([3, 7, 33], 80, &cpu())?;
    let w = randn([33], 81, &cpu())?;
    for add_unit_offset in [false, true] {
        let spec = RmsNormSpec { eps: 1e-6, add_unit_offset };
        same_on_both(&g, &[x.clone(), w.clone()], 1e-5, 1e-5, "rms_norm", |t| t[0].rms_norm(Some(&t[1]), spec))?;
    }
    let spec = RmsNormSpec { eps: 1e-5, add_unit_offset: false };
    same_on_both(&g, std::slice::from_ref(&x), 1e-5, 1e-5, "rms_norm weightless", |t| t[0].rms_norm(None, spec))?;
    // A residual add and the norm after it in one dispatch, against the CPU's two ops: the sum
    // and the normed sum, every weight form, rows wider than a workgroup, a transposed view.
    let residual = randn([3, 7, 33], 91, &cpu())?;
    for (weight, add_unit_offset) in [(true, false), (true, true), (false, false)] {
        let spec = RmsNormSpec { eps: 1e-6, add_unit_offset };
        for part in [0, 1] {
            let what = format!("add_rms_norm part {part} weight {weight} offset {add_unit_offset}");
            same_on_both(&g, &[x.clone(), residual.clone(), w.clone()], 1e-5, 1e-5, &what, |t| {
                let (h, n) = t[0].add_rms_norm(&t[1], weight.then_some(&t[2]), spec)?;
                Ok(if part == 0 { h } else { n })
            })?;
        }
    }
    let (wide, wide_r) = (randn([2, 700], 92, &cpu())?, randn([700, 2], 93, &cpu())?);
    same_on_both(&g, &[wide, wide_r, randn([700], 94, &cpu())?], 1e-5, 1e-5, "add_rms_norm wide rows, a view", |t| {
        Ok(t[0].add_rms_norm(&t[1].t()?, Some(&t[2]), RmsNormSpec { eps: 1e-6, add_unit_offset: false })?.1)
    })?;
    let q = randn([2, 3, 7, 8], 82, &cpu())?;
    let angles = uniform([7, 4], 0.0, 6.0, 83, &cpu())?;
    let (cos, sin) = (angles.cos()?, angles.sin()?);
    for interleaved in [false, true] {
        same_on_both(&g, &[q.clone(), cos.clone(), sin.clone()], 1e-6, 1e-5, "rope", |t| {
            t[0].rope(&t[1], &t[2], interleaved)
        })?;
    }
    // RMSNorm then RoPE in one dispatch, against the CPU's two ops: every weight form, both
    // pair layouts, heads wider than a workgroup (d = 600 > 2 x 256), a transposed view of heads.
    let head_w = randn([8], 85, &cpu())?;
    for interleaved in [false, true] {
        for (weight, add_unit_offset) in [(true, false), (true, true), (false, false)] {
            let spec = RmsNormSpec { eps: 1e-6, add_unit_offset };
            let what = format!("rms_norm_rope weight {weight} offset {add_unit_offset} interleaved {interleaved}");
            same_on_both(&g, &[q.clone(), head_w.clone(), cos.clone(), sin.clone()], 1e-5, 1e-5, &what, |t| {
                t[0].rms_norm_rope(weight.then_some(&t[1]), spec, &t[2], &t[3], interleaved)
            })?;
        }
        let heads_view = randn([2, 7, 3, 8], 86, &cpu())?.transpose(1, 2)?;
        same_on_both(
            &g,
            &[heads_view, head_w.clone(), cos.clone(), sin.clone()],
            1e-5,
            1e-5,
            "rms_norm_rope view",
            |t| {
                t[0].rms_norm_rope(
                    Some(&t[1]),
                    RmsNormSpec { eps: 1e-6, add_unit_offset: false },
                    &t[2],
                    &t[3],
                    interleaved,
                )
            },
        )?;
    }
    // Norm and rotation written into the rows of a cache [B, H, capacity, D] at positions
    // 2.., one token and several, one and two sequences (groups of rows one stride apart: the
    // fused kernel), and a cache narrowed to some of its heads (groups not one stride apart:
    // the op and a copy). The whole cache is compared, so rows outside the step must stay.
    for (b, heads, t, narrow_heads) in [(1, 3, 1, false), (1, 3, 5, false), (2, 3, 3, false), (2, 3, 3, true)] {
        let angles = uniform([t, 4], 0.0, 6.0, 95, &cpu())?;
        let x = randn([b, if narrow_heads { 2 } else { heads }, t, 8], 96, &cpu())?;
        for interleaved in [false, true] {
            for norm in [None, Some(false), Some(true)] {
                let what =
                    format!("rope_into b {b} t {t} narrowed {narrow_heads} norm {norm:?} interleaved {interleaved}");
                let inputs = [x.clone(), head_w.clone(), angles.cos()?, angles.sin()?];
                same_on_both(&g, &inputs, 1e-5, 1e-5, &what, |t| {
                    let cache = Tensor::full(7.0, [b, heads, 10, 8], DType::F32, t[0].device())?;
                    let mut dst = cache.narrow(2, 2, t[0].dims()[2])?;
                    if narrow_heads {
                        dst = dst.narrow(1, 1, 2)?;
                    }
                    let norm = norm.map(|unit| (Some(&t[1]), RmsNormSpec { eps: 1e-6, add_unit_offset: unit }));
                    t[0].rope_into(norm, &t[2], &t[3], interleaved, &dst, None)?;
                    Ok(cache)
                })?;
                // With the values copied alongside: rows of 6 read from a transposed view (a
                // prefill's heads), into a cache of their own; both caches compared.
                let values = randn([b, t, if narrow_heads { 2 } else { heads }, 6], 97, &cpu())?;
                let inputs = [x.clone(), head_w.clone(), angles.cos()?, angles.sin()?, values];
                same_on_both(&g, &inputs, 1e-5, 1e-5, &format!("{what}, values"), |t| {
                    let device = t[0].device();
                    let k_cache = Tensor::full(7.0, [b, heads, 10, 8], DType::F32, device)?;
                    let v_cache = Tensor::full(5.0, [b, heads, 9, 6], DType::F32, device)?;
                    let rows = t[0].dims()[2];
                    let (mut k_dst, mut v_dst) = (k_cache.narrow(2, 2, rows)?, v_cache.narrow(2, 3, rows)?);
                    if narrow_heads {
                        (k_dst, v_dst) = (k_dst.narrow(1, 1, 2)?, v_dst.narrow(1, 0, 2)?);
                    }
                    let norm = norm.map(|unit| (Some(&t[1]), RmsNormSpec { eps: 1e-6, add_unit_offset: unit }));
                    let v = t[4].transpose(1, 2)?;
                    t[0].rope_into(norm, &t[2], &t[3], interleaved, &k_dst, Some((&v, &v_dst)))?;
                    Tensor::cat(&[&k_cache.flatten_all()?, &v_cache.flatten_all()?], 0)
                })?;
            }
        }
    }
    // Tables as rows of larger ones (views at an offset, bound in place): narrowed on each
    // device, so the GPU side binds the larger buffer with the offset.
    let big = uniform([12, 4], 0.0, 6.0, 90, &cpu())?;
    let rows = |t: &Tensor, f: fn(&Tensor) -> Result<Tensor>| f(t)?.narrow(0, 5, 7);
    same_on_both(&g, &[q.clone(), head_w.clone(), big.clone()], 1e-5, 1e-5, "rms_norm_rope table rows", |t| {
        let (c, s) = (rows(&t[2], |a| a.cos())?, rows(&t[2], |a| a.sin())?);
        t[0].rms_norm_rope(Some(&t[1]), RmsNormSpec { eps: 1e-6, add_unit_offset: false }, &c, &s, true)
    })?;
    same_on_both(&g, &[q.clone(), big], 1e-6, 1e-5, "rope table rows", |t| {
        t[0].rope(&rows(&t[1], |a| a.cos())?, &rows(&t[1], |a| a.sin())?, false)
    })?;
    let wide = randn([1, 2, 3, 600], 87, &cpu())?;
    let wide_angles = uniform([3, 300], 0.0, 6.0, 88, &cpu())?;
    same_on_both(
        &g,
        &[wide, randn([600], 89, &cpu())?, wide_angles.cos()?, wide_angles.sin()?],
        1e-5,
        1e-5,
        "rms_norm_rope wide heads",
        |t| t[0].rms_norm_rope(Some(&t[1]), RmsNormSpec { eps: 1e-6, add_unit_offset: false }, &t[2], &t[3], false),
    )?;
    let up = randn([3, 7, 33], 84, &cpu())?;
    for act in [GluActivation::Silu, GluActivation::GeluTanh] {
        same_on_both(&g, &[x.clone(), up.clone()], 1e-6, 1e-5, "glu", |t| t[0].glu(&t[1], act))?;
    }
    Ok(())
}

#[test]
fn attention_with_every_mask_and_head_layout() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let causal = AttentionMask::causal;
    // (Hq, Hkv, Tq, Tk, D, Dv, mask, softcap)
    let cases = [
        (4, 4, 33, 33, 8, 8, causal(0), None),
        (4, 2, 7, 7, 16, 8, causal(0), None),
        (3, 1, 70, 70, 8, 8, AttentionMask { window: Some(5), ..causal(0) }, None),
        (2, 1, 40, 40, 8, 8, AttentionMask { chunk: Some(16), ..causal(0) }, None),
        (2, 2, 1, 90, 8, 8, causal(89), Some(5.0)),
        (2, 2, 3, 10, 8, 8, AttentionMask { window: Some(4), k_start: 6, ..causal(13) }, None),
        (2, 2, 5, 5, 8, 8, AttentionMask::default(), None),
        (2, 1, 4, 9, 576, 512, causal(5), None), // MLA's absorbed decode shape
    ];
    // Each shape through the tiled kernel (rows of a head together, keys staged once for them)
    // and the one-row kernel.
    for one_row in [false, true] {
        gpu::kernels::attention::force_one_row(one_row);
        for (i, (hq, hkv, tq, tk, d, dv, mask, softcap)) in cases.into_iter().enumerate() {
            let q = randn([2, hq, tq, d], 90 + i as u64, &cpu())?;
            let k = randn([2, hkv, tk, d], 100 + i as u64, &cpu())?;
            let v = randn([2, hkv, tk, dv], 110 + i as u64, &cpu())?;
            let spec = AttentionSpec { scale: (d as f64).powf(-0.5), mask, softcap };
            same_on_both(&g, &[q, k, v], 1e-5, 1e-4, &format!("attention case {i}, one row {one_row}"), |t| {
                Tensor::attention(&t[0], &t[1], &t[2], &spec)
            })?;
        }
    }
    gpu::kernels::attention::force_one_row(false);
    // Keys and values as views into a larger cache buffer (strided rows, an offset).
    let cache = randn([1, 2, 16, 8], 120, &cpu())?;
    let q = randn([1, 2, 1, 8], 121, &cpu())?;
    let spec = AttentionSpec { scale: 0.3, mask: causal(9), softcap: None };
    same_on_both(&g, &[q, cache], 1e-5, 1e-4, "attention over cache views", |t| {
        let kv = t[1].narrow(2, 3, 7)?;
        Tensor::attention(&t[0], &kv, &kv, &AttentionSpec { mask: AttentionMask { k_start: 3, ..spec.mask }, ..spec })
    })?;
    Ok(())
}

/// The decode path (Tq <= 4: flash-decoding, keys split across workgroups, one per KV head and
/// its group of query heads, then a combine pass) against the CPU's two-pass softmax. Tolerance
/// 1e-5 absolute and relative: both sum in f32, in different orders (per 64-key block, per split,
/// then across splits, against the CPU's one running sum), a few ulps of the largest terms for
/// a few thousand keys; the outputs are weighted means of N(0, 1) values, so well above 1e-5.
#[test]
fn flash_decoding_on_decode_shapes() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let causal = AttentionMask::causal;
    let window = |w: usize, q_start: usize| AttentionMask { window: Some(w), ..causal(q_start) };
    // (Hq, Hkv, Tq, Tk, D, Dv, mask, softcap, sinks)
    let cases = [
        (8, 8, 1, 1, 64, 64, causal(0), None, false),           // group 1, one key
        (8, 4, 1, 130, 128, 128, causal(129), None, false),     // group 2, a block and a bit
        (8, 2, 1, 700, 96, 96, causal(699), Some(30.0), false), // group 4, soft-capping, splits
        (16, 2, 1, 3000, 128, 128, causal(2999), None, false),  // group 8, 24 splits of 128
        (4, 1, 1, 4500, 32, 32, causal(4499), None, false),     // past 32 x 128: longer splits
        (4, 2, 1, 600, 40, 40, window(100, 599), None, false),  // sliding window: a few splits live
        (4, 2, 1, 300, 16, 16, AttentionMask { chunk: Some(128), ..causal(299) }, None, false),
        (8, 2, 4, 200, 33, 17, causal(196), None, false), // 16 rows per KV head: two chunks
        (6, 2, 3, 300, 8, 8, AttentionMask { window: Some(50), k_start: 10, ..causal(307) }, None, false),
        (4, 4, 2, 50, 5, 7, AttentionMask::default(), Some(2.0), false), // no mask, odd dims
        (4, 1, 1, 400, 576, 512, causal(399), None, false),              // MLA's absorbed decode: 4 rows a workgroup
        (2, 1, 2, 70, 1000, 1000, causal(68), None, false),              // the largest head dims
        (16, 2, 1, 500, 64, 64, window(128, 499), None, true),           // gpt-oss: sliding, sinks
        (8, 2, 1, 1000, 64, 64, causal(999), None, true),                // gpt-oss: full, sinks, splits
        (2, 2, 1, 3, 8, 8, AttentionMask { k_start: 5, ..causal(0) }, None, true), // nothing visible
        (2, 2, 1, 3, 8, 8, AttentionMask { k_start: 5, ..causal(0) }, None, false),
    ];
    for (i, (hq, hkv, tq, tk, d, dv, mask, softcap, with_sinks)) in cases.into_iter().enumerate() {
        let q = randn([2, hq, tq, d], 170 + i as u64, &cpu())?;
        let k = randn([2, hkv, tk, d], 190 + i as u64, &cpu())?;
        let v = randn([2, hkv, tk, dv], 210 + i as u64, &cpu())?;
        let sinks = randn([hq], 230 + i as u64, &cpu())?.mul_scalar(2.0)?;
        let spec = AttentionSpec { scale: (d as f64).powf(-0.5), mask, softcap };
        same_on_both(&g, &[q, k, v, sinks], 1e-5, 1e-5, &format!("flash-decoding case {i}"), |t| {
            Tensor::attention_with_sinks(&t[0], &t[1], &t[2], with_sinks.then_some(&t[3]), &spec)
        })?;
    }
    // A KV cache's live rows: a view of 2000 rows at offset 3 of a 4096-row buffer, k and v
    // interleaved in one tensor (strides not those of a contiguous [B, H, T, D]).
    let cache = randn([1, 4, 4096, 2, 64], 250, &cpu())?;
    let q = randn([1, 8, 1, 64], 251, &cpu())?;
    let spec = AttentionSpec { scale: 0.125, mask: AttentionMask { k_start: 3, ..causal(2002) }, softcap: None };
    same_on_both(&g, &[q, cache], 1e-5, 1e-5, "flash-decoding over cache views", |t| {
        let live = t[1].narrow(2, 3, 2000)?;
        let (k, v) = (live.narrow(3, 0, 1)?.squeeze(3)?, live.narrow(3, 1, 1)?.squeeze(3)?);
        Tensor::attention(&t[0], &k, &v, &spec)
    })?;
    Ok(())
}

#[test]
fn attention_with_sinks() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let causal = AttentionMask::causal;
    // gpt-oss's layer kinds (GQA, sliding and full), a decode row, a block of 70 keys that
    // crosses the kernel's 64-key blocks, and rows that see no key at all.
    let cases = [
        (4, 1, 21, 21, causal(0)),
        (4, 1, 21, 21, AttentionMask { window: Some(8), ..causal(0) }),
        (4, 2, 1, 70, causal(69)),
        (2, 2, 4, 3, AttentionMask { k_start: 2, ..causal(0) }),
    ];
    for one_row in [false, true] {
        gpu::kernels::attention::force_one_row(one_row);
        for (i, (hq, hkv, tq, tk, mask)) in cases.into_iter().enumerate() {
            let q = randn([2, hq, tq, 16], 130 + i as u64, &cpu())?;
            let k = randn([2, hkv, tk, 16], 140 + i as u64, &cpu())?;
            let v = randn([2, hkv, tk, 16], 150 + i as u64, &cpu())?;
            let sinks = randn([hq], 160 + i as u64, &cpu())?.mul_scalar(2.0)?;
            let spec = AttentionSpec { scale: 0.25, mask, softcap: None };
            let what = format!("attention with sinks, case {i}, one row {one_row}");
            same_on_both(&g, &[q, k, v, sinks], 1e-5, 1e-4, &what, |t| {
                Tensor::attention_with_sinks(&t[0], &t[1], &t[2], Some(&t[3]), &spec)
            })?;
        }
    }
    gpu::kernels::attention::force_one_row(false);
    Ok(())
}

/// Prefill shapes through the tiled kernel: up to 8 neighbouring query rows of a head per
/// workgroup (chunks that straddle two heads where Tq is not a multiple of 8), causal, sliding,
/// chunked and full masks over prompts of a few hundred tokens, GQA groups of 1 to 8, Gemma 3's
/// head dim of 256, MLA's 192/128, sinks, and a short prompt whose keys are also split (too few
/// rows to fill a GPU). Tolerance as for decoding: f32 sums in another order.
#[test]
fn tiled_attention_on_prefill_shapes() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let causal = AttentionMask::causal;
    // (Hq, Hkv, Tq, Tk, D, Dv, mask, softcap, sinks)
    let cases = [
        (4, 2, 300, 300, 64, 64, causal(0), None, false),
        (8, 1, 129, 129, 32, 32, causal(0), None, false),
        (4, 4, 37, 37, 256, 256, AttentionMask { window: Some(16), ..causal(0) }, Some(50.0), false),
        (4, 1, 200, 200, 16, 16, AttentionMask { chunk: Some(64), ..causal(0) }, None, false),
        (2, 2, 150, 150, 192, 128, causal(0), None, false),
        (4, 2, 90, 90, 32, 32, AttentionMask { window: Some(20), ..causal(0) }, None, true),
        (2, 1, 9, 1500, 16, 16, causal(1491), None, true),
        (3, 3, 20, 20, 8, 8, AttentionMask::default(), None, false),
    ];
    for (i, (hq, hkv, tq, tk, d, dv, mask, softcap, with_sinks)) in cases.into_iter().enumerate() {
        let q = randn([1, hq, tq, d], 300 + i as u64, &cpu())?;
        let k = randn([1, hkv, tk, d], 320 + i as u64, &cpu())?;
        let v = randn([1, hkv, tk, dv], 340 + i as u64, &cpu())?;
        let sinks = randn([hq], 360 + i as u64, &cpu())?.mul_scalar(2.0)?;
        let spec = AttentionSpec { scale: (d as f64).powf(-0.5), mask, softcap };
        same_on_both(&g, &[q, k, v, sinks], 1e-5, 1e-5, &format!("tiled prefill case {i}"), |t| {
            Tensor::attention_with_sinks(&t[0], &t[1], &t[2], with_sinks.then_some(&t[3]), &spec)
        })?;
    }
    Ok(())
}
