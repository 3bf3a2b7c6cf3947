//! Fused ops against their composites, and the semantics of the masks: a sliding window of w
//! sees exactly the last w positions including itself; chunked attention never crosses a chunk
//! boundary; a query row with nothing visible gives zeros.

use tensor::testing::{assert_close, randn, uniform};
use tensor::{AttentionMask, AttentionSpec, DType, Device, GluActivation, Result, RmsNormSpec, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

#[test]
fn rms_norm_matches_its_composite_and_a_hand_value() -> Result<()> {
    let x = randn([3, 5, 16], 1, &cpu())?;
    let w = randn([16], 2, &cpu())?;
    for add_unit_offset in [false, true] {
        let spec = RmsNormSpec { eps: 1e-6, add_unit_offset };
        assert_close(&x.rms_norm(Some(&w), spec)?, &x.rms_norm_composite(Some(&w), spec)?, 1e-6, 1e-5)?;
    }
    let spec = RmsNormSpec { eps: 0.0, add_unit_offset: false };
    let v = Tensor::from_vec(vec![3.0f32, 4.0], [2], &cpu())?; // rms = sqrt(12.5)
    let r = 12.5f32.sqrt();
    assert_eq!(v.rms_norm(None, spec)?.to_vec::<f32>()?, [3.0 / r, 4.0 / r]);
    Ok(())
}

#[test]
fn add_rms_norm_is_the_add_then_the_norm() -> Result<()> {
    let (x, r, w) = (randn([2, 5, 12], 7, &cpu())?, randn([2, 5, 12], 8, &cpu())?, randn([12], 9, &cpu())?);
    for add_unit_offset in [false, true] {
        let spec = tensor::RmsNormSpec { eps: 1e-6, add_unit_offset };
        let (h, n) = x.add_rms_norm(&r, Some(&w), spec)?;
        assert_eq!(h.to_vec::<f32>()?, x.add(&r)?.to_vec::<f32>()?);
        assert_close(&n, &x.add(&r)?.rms_norm_composite(Some(&w), spec)?, 1e-6, 1e-5)?;
    }
    // Shapes that do not match are the add's error.
    assert!(
        x.add_rms_norm(
            &randn([2, 5, 11], 10, &cpu())?,
            None,
            tensor::RmsNormSpec { eps: 1e-6, add_unit_offset: false }
        )
        .is_err()
    );
    Ok(())
}

#[test]
fn rope_matches_its_composite_in_both_layouts_and_rotates_by_hand() -> Result<()> {
    let x = randn([2, 3, 7, 8], 3, &cpu())?;
    let angles = uniform([7, 4], 0.0, 6.0, 4, &cpu())?;
    let (cos, sin) = (angles.cos()?, angles.sin()?);
    for interleaved in [false, true] {
        assert_close(&x.rope(&cos, &sin, interleaved)?, &x.rope_composite(&cos, &sin, interleaved)?, 1e-6, 1e-5)?;
        // A rotation keeps the norm of every pair, so of every row.
        let norms = |t: &Tensor| t.sqr()?.sum(-1, false);
        assert_close(&norms(&x.rope(&cos, &sin, interleaved)?)?, &norms(&x)?, 1e-5, 1e-5)?;
    }
    // Tables given as rows 5..12 of larger ones (a view at an offset, read in place) rotate as
    // their copies do; and per-head RMSNorm then RoPE as one op equals the two ops.
    let big = uniform([20, 4], 0.0, 6.0, 5, &cpu())?;
    let (bc, bs) = (big.cos()?.narrow(0, 5, 7)?, big.sin()?.narrow(0, 5, 7)?);
    let (cc, cs) = (bc.deep_clone()?, bs.deep_clone()?);
    let w = randn([8], 6, &cpu())?;
    let spec = tensor::RmsNormSpec { eps: 1e-6, add_unit_offset: false };
    for interleaved in [false, true] {
        assert_eq!(x.rope(&bc, &bs, interleaved)?.to_vec::<f32>()?, x.rope(&cc, &cs, interleaved)?.to_vec::<f32>()?);
        let two_ops = x.rms_norm(Some(&w), spec)?.rope(&cc, &cs, interleaved)?;
        assert_close(&x.rms_norm_rope(Some(&w), spec, &bc, &bs, interleaved)?, &two_ops, 1e-6, 1e-6)?;
    }
    // (1, 0) rotated by 90 degrees is (0, 1).
    let unit = Tensor::from_vec(vec![1.0f32, 0.0], [1, 2], &cpu())?;
    let (c, s) = (Tensor::from_vec(vec![0.0f32], [1, 1], &cpu())?, Tensor::from_vec(vec![1.0f32], [1, 1], &cpu())?);
    assert_eq!(unit.rope(&c, &s, false)?.to_vec::<f32>()?, [0.0, 1.0]);
    Ok(())
}

#[test]
fn gated_units_match_their_composites() -> Result<()> {
    let (g, u) = (randn([4, 9], 5, &cpu())?, randn([4, 9], 6, &cpu())?);
    for act in [GluActivation::Silu, GluActivation::GeluTanh] {
        assert_close(&g.glu(&u, act)?, &g.glu_composite(&u, act)?, 1e-6, 1e-6)?;
    }
    Ok(())
}

#[test]
fn attention_matches_its_composite_for_every_mask() -> Result<()> {
    let causal = AttentionMask::causal;
    let masks = [
        causal(0),
        AttentionMask { window: Some(3), ..causal(0) },
        AttentionMask { chunk: Some(4), ..causal(0) },
        AttentionMask { window: Some(2), k_start: 3, ..causal(6) },
        AttentionMask::default(),
        // A decoding step: one query after 8 cached rows.
        causal(8),
    ];
    for (i, mask) in masks.into_iter().enumerate() {
        for (hq, hkv, dv, softcap) in [(4, 4, 8, None), (4, 2, 5, None), (3, 1, 8, Some(3.0))] {
            let (tq, tk) = match mask.q_start {
                0 => (9, 9),
                8 => (1, 9),
                _ => (3, 6),
            };
            let q = randn([2, hq, tq, 8], 10 + i as u64, &cpu())?;
            let k = randn([2, hkv, tk, 8], 20 + i as u64, &cpu())?;
            let v = randn([2, hkv, tk, dv], 30 + i as u64, &cpu())?;
            let spec = AttentionSpec { scale: 0.35, mask, softcap };
            assert_close(
                &Tensor::attention(&q, &k, &v, &spec)?,
                &Tensor::attention_composite(&q, &k, &v, &spec)?,
                1e-6,
                1e-5,
            )?;
        }
    }
    Ok(())
}

/// Prompts past the 16 query rows the kernel multiplies directly: the scores are a GEMM over
/// the keys copied transposed (`cpu::attention`'s `transposed_keys`), in blocks of 64 query
/// rows (150 rows: two whole blocks and a ragged one), under every mask kind, with GQA, and
/// with keys that are a view whose rows lie further apart than the head dimension (a
/// [B, T, H, D] tensor seen as [B, H, T, D]).
#[test]
fn long_prompts_attention_matches_its_composite() -> Result<()> {
    let causal = AttentionMask::causal;
    let masks = [
        causal(0),
        AttentionMask { window: Some(37), ..causal(0) },
        AttentionMask { chunk: Some(50), ..causal(0) },
        AttentionMask::default(),
    ];
    let (b, hq, hkv, t, d, dv) = (2, 4, 2, 150, 16, 12);
    for (i, mask) in masks.into_iter().enumerate() {
        let q = randn([b, hq, t, d], 40 + i as u64, &cpu())?;
        let k = randn([b, hkv, t, d], 50 + i as u64, &cpu())?;
        let k_view = randn([b, t, hkv, d], 55 + i as u64, &cpu())?.transpose(1, 2)?;
        let v = randn([b, hkv, t, dv], 60 + i as u64, &cpu())?;
        let spec = AttentionSpec { scale: 0.25, mask, softcap: None };
        for keys in [&k, &k_view] {
            assert_close(
                &Tensor::attention(&q, keys, &v, &spec)?,
                &Tensor::attention_composite(&q, keys, &v, &spec)?,
                1e-6,
                1e-5,
            )?;
        }
    }
    Ok(())
}

#[test]
fn attention_sinks_match_the_composite_and_a_hand_computed_row() -> Result<()> {
    let causal = AttentionMask::causal;
    for (i, mask) in [
        causal(0),
        AttentionMask { window: Some(3), ..causal(0) },
        AttentionMask { window: Some(2), k_start: 3, ..causal(6) },
    ]
    .into_iter()
    .enumerate()
    {
        let (tq, tk) = if mask.q_start > 0 { (3, 6) } else { (9, 9) };
        let q = randn([2, 4, tq, 8], 40 + i as u64, &cpu())?;
        let k = randn([2, 2, tk, 8], 50 + i as u64, &cpu())?;
        let v = randn([2, 2, tk, 5], 60 + i as u64, &cpu())?;
        let sinks = randn([4], 70 + i as u64, &cpu())?;
        let spec = AttentionSpec { scale: 0.35, mask, softcap: None };
        assert_close(
            &Tensor::attention_with_sinks(&q, &k, &v, Some(&sinks), &spec)?,
            &Tensor::attention_composite_with_sinks(&q, &k, &v, Some(&sinks), &spec)?,
            1e-6,
            1e-5,
        )?;
    }
    // One query, one key with logit q.k = 1, sink 0: the key gets e / (e + 1) of its value.
    let one = |v: f32| Tensor::from_vec(vec![v], [1, 1, 1, 1], &cpu());
    let spec = AttentionSpec { scale: 1.0, mask: causal(0), softcap: None };
    let sinks = Tensor::from_vec(vec![0.0f32], [1], &cpu())?;
    let out = Tensor::attention_with_sinks(&one(1.0)?, &one(1.0)?, &one(2.0)?, Some(&sinks), &spec)?;
    let e = std::f32::consts::E;
    assert!((out.to_vec::<f32>()?[0] - 2.0 * e / (e + 1.0)).abs() < 1e-6);
    Ok(())
}

#[test]
fn a_query_with_nothing_visible_gives_zeros() -> Result<()> {
    // Keys at positions 0..4, a query at 10 with a window of 2: nothing in reach.
    let spec = AttentionSpec {
        scale: 1.0,
        mask: AttentionMask { window: Some(2), ..AttentionMask::causal(10) },
        softcap: None,
    };
    let (q, k) = (randn([1, 1, 1, 4], 1, &cpu())?, randn([1, 1, 4, 4], 2, &cpu())?);
    let out = Tensor::attention(&q, &k, &k, &spec)?;
    assert_eq!(out.to_vec::<f32>()?, [0.0; 4]);
    assert_eq!(Tensor::attention_composite(&q, &k, &k, &spec)?.to_vec::<f32>()?, [0.0; 4]);
    Ok(())
}

#[test]
fn mask_semantics_window_and_chunk() {
    for w in 1..6 {
        let mask = AttentionMask { window: Some(w), ..AttentionMask::causal(0) };
        for q in 0..12 {
            let seen: Vec<usize> = (0..12).filter(|&k| mask.allows(q, k)).collect();
            let want: Vec<usize> = (q.saturating_sub(w - 1)..=q).collect();
            assert_eq!(seen, want, "window {w}, query {q}");
            assert_eq!(mask.visible_range(q, 12), want[0]..want[want.len() - 1] + 1);
        }
    }
    for c in 1..6 {
        let mask = AttentionMask { chunk: Some(c), ..AttentionMask::causal(0) };
        for q in 0..12 {
            for k in 0..12 {
                assert_eq!(mask.allows(q, k), k <= q && k / c == q / c, "chunk {c}: {q} {k}");
            }
            let r = mask.visible_range(q, 12);
            assert!((0..12).all(|k| mask.allows(q, k) == r.contains(&k)));
        }
    }
}

#[test]
fn matmul_glu_is_both_products_then_the_gated_unit() -> Result<()> {
    let x = randn([2, 3, 10], 11, &cpu())?;
    let (gate, up) = (randn([7, 10], 12, &cpu())?, randn([7, 10], 13, &cpu())?);
    let values = |t: Tensor| t.to_dtype(DType::F64)?.to_vec::<f64>();
    let three_ops =
        |x: &Tensor, gate: &Tensor, up: &Tensor, act| values(x.matmul(&gate.t()?)?.glu(&x.matmul(&up.t()?)?, act)?);
    // bf16 weights under f32 activations, f64 throughout, a transposed x.
    let (gate16, up16) = (gate.to_dtype(DType::BF16)?, up.to_dtype(DType::BF16)?);
    let (x64, gate64, up64) = (x.to_dtype(DType::F64)?, gate.to_dtype(DType::F64)?, up.to_dtype(DType::F64)?);
    let xt = randn([2, 10, 3], 14, &cpu())?.transpose(1, 2)?;
    for act in [GluActivation::Silu, GluActivation::GeluTanh] {
        assert_eq!(x.matmul_glu(&gate, &up, act)?.dims(), [2, 3, 7]);
        for (x, gate, up) in [(&x, &gate, &up), (&x, &gate16, &up16), (&x64, &gate64, &up64), (&xt, &gate, &up)] {
            assert_eq!(values(x.matmul_glu(gate, up, act)?)?, three_ops(x, gate, up, act)?);
        }
    }
    // Operands the op cannot take are errors naming it.
    let bad = [
        x.matmul_glu(&randn([7, 9], 15, &cpu())?, &up, GluActivation::Silu),
        x.matmul_glu(&gate, &randn([6, 10], 16, &cpu())?, GluActivation::Silu),
        randn([10], 17, &cpu())?.matmul_glu(&gate, &up, GluActivation::Silu),
        x.matmul_glu(&gate16, &up, GluActivation::Silu),
        x64.matmul_glu(&gate, &up, GluActivation::Silu),
    ];
    for (i, result) in bad.into_iter().enumerate() {
        let err = result.expect_err("refused").to_string();
        assert!(err.contains("matmul_glu"), "case {i}: {err}");
    }
    Ok(())
}

#[test]
fn matmul_each_is_one_matmul_per_weight() -> Result<()> {
    let x = randn([2, 3, 10], 21, &cpu())?;
    let weights = [randn([7, 10], 22, &cpu())?, randn([4, 10], 23, &cpu())?, randn([9, 10], 24, &cpu())?];
    let values = |t: &Tensor| t.to_dtype(DType::F64)?.to_vec::<f64>();
    // bf16 weights under f32 activations, f64 throughout, a transposed x; 1, 2 and 3 weights.
    let half: Vec<Tensor> = weights.iter().map(|w| w.to_dtype(DType::BF16)).collect::<Result<_>>()?;
    let wide: Vec<Tensor> = weights.iter().map(|w| w.to_dtype(DType::F64)).collect::<Result<_>>()?;
    let xt = randn([2, 10, 3], 25, &cpu())?.transpose(1, 2)?;
    let x64 = x.to_dtype(DType::F64)?;
    for (x, weights) in [(&x, &weights[..]), (&x, &half[..]), (&x64, &wide[..]), (&xt, &weights[..])] {
        let check = |products: &[Tensor], chosen: &[&Tensor]| -> Result<()> {
            assert_eq!(products.len(), chosen.len());
            for (product, w) in products.iter().zip(chosen) {
                assert_eq!(product.dims(), [2, 3, w.dims()[0]]);
                assert_eq!(values(product)?, values(&x.matmul(&w.t()?)?)?, "{} weights of {}", chosen.len(), w.dtype());
            }
            Ok(())
        };
        check(&x.matmul_each([&weights[0]])?, &[&weights[0]])?;
        check(&x.matmul_each([&weights[0], &weights[1]])?, &[&weights[0], &weights[1]])?;
        let all = [&weights[0], &weights[1], &weights[2]];
        check(&x.matmul_each(all)?, &all)?;
    }
    // Operands the op cannot take are errors naming it (an array in, whatever its length).
    let (w, w16) = (&weights[0], &half[0]);
    let bad = [
        x.matmul_each([]).map(|_| ()),
        x.matmul_each([w, w, w, w]).map(|_| ()),
        x.matmul_each([w, &randn([7, 9], 26, &cpu())?]).map(|_| ()),
        x.matmul_each([&randn([2, 7, 10], 27, &cpu())?]).map(|_| ()),
        randn([10], 28, &cpu())?.matmul_each([w]).map(|_| ()),
        x.matmul_each([w, w16]).map(|_| ()),
        x64.matmul_each([w]).map(|_| ()),
        x.to_dtype(DType::U32)?.matmul_each([&w.to_dtype(DType::U32)?]).map(|_| ()),
    ];
    for (i, result) in bad.into_iter().enumerate() {
        let err = result.expect_err("refused").to_string();
        assert!(err.contains("matmul_each"), "case {i}: {err}");
    }
    Ok(())
}

/// The CPU's fused kernels (`add_rms_norm`, `rms_norm_rope`) on what a decoding step and a
/// prefill hand them: query heads as a transposed view of the projection, tables as rows of a
/// larger table at an offset, Gemma's `1 + w` weights, one row and many (past the parallel
/// threshold). Each equals its two ops within f32 rounding of the same sums (1e-6); the add
/// is exact.
#[test]
fn fused_norms_on_views_match_their_ops() -> Result<()> {
    for (b, t, h, d) in [(1, 1, 16, 128), (2, 40, 5, 64), (1, 300, 8, 128)] {
        // [B, T, H * D] seen as heads [B, H, T, D].
        let proj = randn([b, t, h * d], 40, &cpu())?;
        let heads = proj.reshape([b, t, h, d])?.transpose(1, 2)?;
        let w = randn([d], 41, &cpu())?;
        let big = uniform([t + 9, d / 2], 0.0, 6.0, 42, &cpu())?;
        let (c, s) = (big.cos()?.narrow(0, 9, t)?, big.sin()?.narrow(0, 9, t)?);
        for add_unit_offset in [false, true] {
            let spec = RmsNormSpec { eps: 1e-6, add_unit_offset };
            for interleaved in [false, true] {
                let fused = heads.rms_norm_rope(Some(&w), spec, &c, &s, interleaved)?;
                let two_ops = heads.rms_norm(Some(&w), spec)?.rope(&c, &s, interleaved)?;
                assert_close(&fused, &two_ops, 1e-6, 1e-6)?;
            }
            let (r, w_row) = (randn([b, t, h * d], 43, &cpu())?, randn([h * d], 44, &cpu())?);
            let (sum, normed) = proj.add_rms_norm(&r, Some(&w_row), spec)?;
            assert_eq!(sum.to_vec::<f32>()?, proj.add(&r)?.to_vec::<f32>()?);
            assert_close(&normed, &proj.add(&r)?.rms_norm_composite(Some(&w_row), spec)?, 1e-6, 1e-5)?;
        }
    }
    Ok(())
}

/// A converting write lands each value rounded to the view's dtype, where the view selects
/// (a KV cache's rows for one step: a strided view of a larger buffer), as a cast and a copy
/// would; nothing else in the buffer changes; and dtypes that are not floats are refused.
#[test]
fn a_converting_write_rounds_into_the_view() -> Result<()> {
    let rows = randn([1, 3, 2, 8], 50, &cpu())?;
    for dtype in [DType::F16, DType::BF16, DType::F64] {
        let cache = Tensor::zeros([1, 3, 10, 8], dtype, &cpu())?;
        let expected = Tensor::zeros([1, 3, 10, 8], dtype, &cpu())?;
        cache.narrow(2, 4, 2)?.write_converted_from(&rows)?;
        expected.narrow(2, 4, 2)?.write_from(&rows.to_dtype(dtype)?)?;
        assert_eq!(cache.to_dtype(DType::F64)?.to_vec::<f64>()?, expected.to_dtype(DType::F64)?.to_vec::<f64>()?);
    }
    let ids = Tensor::zeros([1, 3, 2, 8], DType::U32, &cpu())?;
    assert!(ids.write_converted_from(&rows).is_err());
    let short = Tensor::zeros([1, 3, 1, 8], DType::F16, &cpu())?;
    assert!(short.write_converted_from(&rows).is_err());
    Ok(())
}
