//! Attention over a half-precision KV cache (bf16, f16) under f32 queries on the CPU, dense and
//! paged, against the same attention over the keys and values widened to f32 first. A decoding
//! step's few query rows read the half cache as stored (its rows widened in registers by the
//! matrix-vector kernels); longer queries are refused by the backend and widened by the tensor
//! layer. Both are checked on every instruction-set path this machine offers, forced in turn,
//! over GQA groups, masks (causal, window, chunk), sinks, soft-capping, odd head sizes, a cache
//! view narrower than its buffer and a [B, T, H, D] cache seen as [B, H, T, D].
//!
//! Widening bf16/f16 to f32 is exact, so the two sides multiply the same numbers and differ
//! only in summation order (the direct kernels against the GEMM): 1e-6 absolute / 1e-5 relative.

use tensor::cpu::isa::{self, Isa};
use tensor::testing::{assert_close, randn};
use tensor::{AttentionMask, AttentionSpec, DType, Device, Result, Tensor};

fn cpu() -> Device {
    Device::cpu()
}

/// Every forced path, then back to automatic choice.
fn on_every_path(mut f: impl FnMut(Isa) -> Result<()>) -> Result<()> {
    let paths = Isa::ALL.into_iter().filter(|isa| isa.available());
    let result = paths.into_iter().try_for_each(|isa| {
        isa::force(Some(isa));
        f(isa).map_err(|e| tensor::Error::shape("forced path", format!("{isa:?}: {e}")))
    });
    isa::force(None);
    result
}

const HALVES: [DType; 2] = [DType::BF16, DType::F16];

/// The masks a cache of `tk` keys meets with `tq` queries at its end.
fn masks(tq: usize, tk: usize) -> Vec<AttentionMask> {
    let end = tk - tq;
    vec![
        AttentionMask::causal(end),
        AttentionMask { window: Some(5), ..AttentionMask::causal(end) },
        AttentionMask { chunk: Some(8), ..AttentionMask::causal(end) },
    ]
}

#[test]
fn dense_attention_over_a_half_cache_equals_it_over_the_widened_cache() -> Result<()> {
    on_every_path(|_| {
        let mut seed = 1;
        // (Hq, Hkv, D, Dv): GQA 2, MQA with odd head sizes, MHA.
        for (hq, hkv, d, dv) in [(4, 2, 16, 16), (3, 1, 13, 7), (2, 2, 8, 8)] {
            // 1-4 rows are read as stored; 6 goes through the widened fallback.
            for tq in [1, 3, 4, 6] {
                for mask in masks(tq, 21) {
                    for (sinks, softcap) in [(false, None), (true, None), (false, Some(2.5))] {
                        for half in HALVES {
                            let q = randn([2, hq, tq, d], seed, &cpu())?;
                            // A cache allocated for 30 rows of which 21 are filled: a narrowed view.
                            let k = randn([2, hkv, 30, d], seed + 1, &cpu())?.to_dtype(half)?.narrow(2, 0, 21)?;
                            // Values kept [B, T, H, Dv], seen as [B, H, T, Dv]: rows contiguous, heads strided.
                            let v = randn([2, 30, hkv, dv], seed + 2, &cpu())?
                                .to_dtype(half)?
                                .transpose(1, 2)?
                                .narrow(2, 0, 21)?;
                            let sinks = if sinks { Some(randn([hq], seed + 3, &cpu())?) } else { None };
                            let spec = AttentionSpec { scale: 0.3, mask, softcap };
                            let got = Tensor::attention_with_sinks(&q, &k, &v, sinks.as_ref(), &spec)?;
                            let (kw, vw) = (k.to_dtype(DType::F32)?, v.to_dtype(DType::F32)?);
                            let want = Tensor::attention_with_sinks(&q, &kw, &vw, sinks.as_ref(), &spec)?;
                            assert_eq!(got.dtype(), DType::F32);
                            assert_close(&got, &want, 1e-6, 1e-5)?;
                            seed += 10;
                        }
                    }
                }
            }
        }
        Ok(())
    })
}

/// The first `len` rows of `blocks` of a pool [N, H, S, D], laid end to end: [1, H, len, D].
fn gathered(pool: &Tensor, blocks: &[u32], len: usize) -> Result<Tensor> {
    let parts: Vec<Tensor> = blocks.iter().map(|&b| pool.narrow(0, b as usize, 1)).collect::<Result<_>>()?;
    Tensor::cat(&parts.iter().collect::<Vec<_>>(), 2)?.narrow(2, 0, len)
}

#[test]
fn paged_attention_over_half_pools_equals_it_over_the_widened_rows() -> Result<()> {
    // 5 blocks of 4 out of order, 18 rows used (the last block partial).
    let (blocks, len) = ([7u32, 2, 11, 0, 5], 18);
    on_every_path(|_| {
        let mut seed = 100;
        // A GQA group of 4 stacks 4 heads' rows (up to 16 with 4 queries); MLA-like values that
        // are the first columns of the keys (dv = 0 below).
        for (hq, hkv, d, dv) in [(8, 2, 16, 16), (3, 1, 13, 7), (4, 2, 10, 0)] {
            for tq in [1, 4, 6] {
                for mask in masks(tq, len) {
                    for (sinks, softcap) in [(false, None), (true, Some(3.0))] {
                        for half in HALVES {
                            let q = randn([1, hq, tq, d], seed, &cpu())?;
                            let k_pool = randn([13, hkv, 4, d], seed + 1, &cpu())?.to_dtype(half)?;
                            let v_pool = if dv == 0 {
                                k_pool.narrow(3, 0, d - 3)?
                            } else {
                                randn([13, hkv, 4, dv], seed + 2, &cpu())?.to_dtype(half)?
                            };
                            let sinks = if sinks { Some(randn([hq], seed + 3, &cpu())?) } else { None };
                            let spec = AttentionSpec { scale: 0.25, mask, softcap };
                            let got =
                                Tensor::paged_attention(&q, &k_pool, &v_pool, sinks.as_ref(), &blocks, len, &spec)?;
                            let k = gathered(&k_pool, &blocks, len)?.to_dtype(DType::F32)?;
                            let v = gathered(&v_pool, &blocks, len)?.to_dtype(DType::F32)?;
                            let want = Tensor::attention_with_sinks(&q, &k, &v, sinks.as_ref(), &spec)?;
                            assert_close(&got, &want, 1e-6, 1e-5)?;
                            seed += 10;
                        }
                    }
                }
            }
        }
        Ok(())
    })
}

#[test]
fn the_backend_reads_a_half_cache_for_a_decoding_step_only() -> Result<()> {
    let spec = AttentionSpec { scale: 0.5, mask: AttentionMask::causal(0), softcap: None };
    let k = randn([1, 2, 9, 8], 1, &cpu())?.to_dtype(DType::BF16)?;
    for (tq, native) in [(1, true), (4, true), (5, false)] {
        let q = randn([1, 4, tq, 8], 2, &cpu())?;
        let spec = AttentionSpec { mask: AttentionMask::causal(9 - tq), ..spec };
        let result = cpu().backend().attention(q.src(), k.src(), k.src(), None, &spec);
        match result {
            Ok(_) => assert!(native, "{tq} query rows over a bf16 cache should be widened by the tensor layer"),
            Err(e) => assert!(!native && e.is_unsupported(), "{tq} rows: {e}"),
        }
    }
    // f64 queries never read a half cache.
    let q = randn([1, 4, 1, 8], 3, &cpu())?.to_dtype(DType::F64)?;
    let err = cpu().backend().attention(q.src(), k.src(), k.src(), None, &spec).err();
    assert!(err.is_some_and(|e| e.is_unsupported()));
    Ok(())
}
