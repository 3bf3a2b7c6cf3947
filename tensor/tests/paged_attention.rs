//! Attention over a paged KV cache against plain attention over the same rows gathered by hand:
//! odd block counts, a partial last block, blocks out of order, GQA/MQA/MHA groups, causal,
//! sliding-window and chunked masks, sinks, soft-capping, values that are the first columns of
//! the keys (MLA's layout), f32 and f64. The kernel sums its blocks in a different order from
//! the plain kernel's one GEMM over the rows, so results agree to rounding (1e-6 absolute /
//! 1e-5 relative in f32, 1e-12 in f64), not bit for bit.

use tensor::testing::{assert_close, randn};
use tensor::{AttentionMask, AttentionSpec, DType, Device, Result, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

/// The first `len` rows of `blocks` of a pool [N, H, S, D], laid end to end: [1, H, len, D].
fn gathered(pool: &Tensor, blocks: &[u32], len: usize) -> Result<Tensor> {
    let parts: Vec<Tensor> = blocks.iter().map(|&b| pool.narrow(0, b as usize, 1)).collect::<Result<_>>()?;
    Tensor::cat(&parts.iter().collect::<Vec<_>>(), 2)?.narrow(2, 0, len)
}

/// Checks the paged op against plain attention on the gathered rows for one setting.
#[allow(clippy::too_many_arguments)]
fn check(
    (hq, hkv, d, dv): (usize, usize, usize, usize),
    size: usize,
    blocks: &[u32],
    len: usize,
    tq: usize,
    mask: AttentionMask,
    sinks: bool,
    softcap: Option<f64>,
    dtype: DType,
    seed: u64,
) -> Result<()> {
    let pool_blocks = 13;
    let q = randn([1, hq, tq, d], seed, &cpu())?.to_dtype(dtype)?;
    let k_pool = randn([pool_blocks, hkv, size, d], seed + 1, &cpu())?.to_dtype(dtype)?;
    // dv == 0 stands for MLA: the values are the first columns of the keys.
    let v_pool = if dv == 0 {
        k_pool.narrow(3, 0, d - 2)?
    } else {
        randn([pool_blocks, hkv, size, dv], seed + 2, &cpu())?.to_dtype(dtype)?
    };
    let sinks = if sinks { Some(randn([hq], seed + 3, &cpu())?.to_dtype(dtype)?) } else { None };
    let spec = AttentionSpec { scale: 0.3, mask, softcap };
    let paged = Tensor::paged_attention(&q, &k_pool, &v_pool, sinks.as_ref(), blocks, len, &spec)?;
    let (k, v) = (gathered(&k_pool, blocks, len)?, gathered(&v_pool, blocks, len)?);
    let plain = Tensor::attention_with_sinks(&q, &k, &v, sinks.as_ref(), &spec)?;
    let (atol, rtol) = if dtype == DType::F64 { (1e-12, 1e-12) } else { (1e-6, 1e-5) };
    assert_close(&paged, &plain, atol, rtol)?;
    // And against the composite, the definition.
    let composite = Tensor::attention_composite_with_sinks(&q, &k, &v, sinks.as_ref(), &spec)?;
    assert_close(&paged, &composite, atol.max(1e-6), rtol.max(1e-5))
}

#[test]
fn paged_attention_equals_attention_over_the_gathered_rows() -> Result<()> {
    // 5 blocks out of order; 4 * 5 = 20 slots, 17 rows used (the last block partial).
    let blocks = [7u32, 2, 11, 0, 5];
    let heads = [(4, 2, 8, 8), (3, 1, 8, 5), (4, 4, 6, 6), (4, 2, 8, 0)];
    let mut seed = 1;
    for &shape in &heads {
        for (tq, mask) in [
            // A decoding step: one query at the last position.
            (1, AttentionMask::causal(16)),
            // A prefill chunk of 5 after 12 cached rows.
            (5, AttentionMask::causal(12)),
            // The whole prompt at once.
            (17, AttentionMask::causal(0)),
            // A sliding window whose cache starts at position 8 (earlier blocks freed).
            (3, AttentionMask { window: Some(6), k_start: 8, ..AttentionMask::causal(22) }),
            // Chunked attention (Llama 4) across a chunk boundary.
            (4, AttentionMask { chunk: Some(8), ..AttentionMask::causal(13) }),
        ] {
            for (sinks, softcap) in [(false, None), (true, None), (false, Some(2.5))] {
                check(shape, 4, &blocks, 17, tq, mask, sinks, softcap, DType::F32, seed)?;
                seed += 10;
            }
        }
    }
    // Blocks of 16 with 3 blocks and a partial last one, in f64 and f32; a full last block.
    for dtype in [DType::F32, DType::F64] {
        check((6, 2, 16, 16), 16, &[3, 9, 1], 40, 1, AttentionMask::causal(39), true, None, dtype, 500)?;
        check((6, 2, 16, 16), 16, &[3, 9, 1], 40, 7, AttentionMask::causal(33), false, None, dtype, 510)?;
        check((2, 1, 16, 16), 16, &[4], 16, 1, AttentionMask::causal(15), false, None, dtype, 520)?;
    }
    // Query blocks of 64 rows and more: a long prompt over 9 blocks of 8.
    let nine: Vec<u32> = vec![12, 3, 4, 0, 9, 1, 7, 2, 10];
    check((4, 2, 8, 8), 8, &nine, 70, 70, AttentionMask::causal(0), false, None, DType::F32, 600)?;
    Ok(())
}

#[test]
fn extra_blocks_past_len_are_ignored_and_bad_tables_are_errors() -> Result<()> {
    let q = randn([1, 2, 1, 4], 1, &cpu())?;
    let pool = randn([3, 1, 4, 4], 2, &cpu())?;
    let spec = AttentionSpec { scale: 0.5, mask: AttentionMask::causal(5), softcap: None };
    // Two blocks listed, six rows used; a third block (reserved for the next rows) is ignored.
    let with_spare = Tensor::paged_attention(&q, &pool, &pool, None, &[2, 0, 1], 6, &spec)?;
    let without = Tensor::paged_attention(&q, &pool, &pool, None, &[2, 0], 6, &spec)?;
    assert_eq!(with_spare.to_vec::<f32>()?, without.to_vec::<f32>()?);
    let err = Tensor::paged_attention(&q, &pool, &pool, None, &[2, 3], 6, &spec).unwrap_err();
    assert!(err.to_string().contains("block 3 is outside the pool of 3 blocks"), "{err}");
    let err = Tensor::paged_attention(&q, &pool, &pool, None, &[2], 6, &spec).unwrap_err();
    assert!(err.to_string().contains("6 rows do not fit in 1 blocks of 4"), "{err}");
    let batched = randn([2, 2, 1, 4], 3, &cpu())?;
    assert!(Tensor::paged_attention(&batched, &pool, &pool, None, &[2, 0], 6, &spec).is_err());
    Ok(())
}
