//! A decoding step's attention split over its keys across threads (`cpu::attention_split`),
//! against the same attention in one pass: the step run in a pool of four threads, where its
//! one to two tasks (batch rows x KV heads) leave threads free and the keys are cut into parts,
//! and in a pool of one thread, where nothing is split; and against the composite of tensor ops
//! (`attention_composite`), an implementation that shares no kernel with either.
//!
//! The parts only change the order of the additions: 1e-6 absolute / 1e-5 relative between the
//! two kernels, 1e-5 / 1e-4 against the composite (its softmax and products round differently).
//! Covered: a GQA group of 4 stacked on one KV head (Gemma 3 1B's layout), MHA, odd head sizes,
//! f32 and half caches, sinks, soft-capping, a sliding window, and chunked attention whose query
//! rows straddle a chunk boundary, so that some rows see no key of a part.

use tensor::testing::{assert_close, randn};
use tensor::{AttentionMask, AttentionSpec, DType, Device, Result, Tensor};

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool").install(f)
}

#[test]
fn split_keys_match_one_pass() -> Result<()> {
    let cpu = Device::cpu();
    let mut seed = 1;
    // (B, Hq, Hkv, D, Dv): one KV head under a group of 4, MHA over a batch of 2 (two tasks
    // per batch row: still fewer than four threads), an odd MQA.
    for (b, hq, hkv, d, dv) in [(1, 4, 1, 16, 16), (2, 2, 2, 8, 8), (1, 3, 1, 13, 7)] {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            // (query rows, keys, mask), each over at least 2,048 visible keys (two parts of the
            // 1,024 a part takes at least): decoding rows at the end of the cache, a window, and
            // four rows across the boundary of 2,048-key chunks (rows 2,048 and 2,049 see only
            // keys 2,048.., none of the first part's).
            let cases = [
                (1, 2100, AttentionMask::causal(2099)),
                (2, 2600, AttentionMask { window: Some(2100), ..AttentionMask::causal(2598) }),
                (4, 2050, AttentionMask { chunk: Some(2048), ..AttentionMask::causal(2046) }),
            ];
            for (tq, tk, mask) in cases {
                for (with_sinks, softcap) in [(false, None), (true, None), (false, Some(3.0))] {
                    let q = randn([b, hq, tq, d], seed, &cpu)?;
                    // A cache with room for more rows than are filled: a narrowed view.
                    let k = randn([b, hkv, tk + 9, d], seed + 1, &cpu)?.to_dtype(dtype)?.narrow(2, 0, tk)?;
                    let v = randn([b, hkv, tk + 9, dv], seed + 2, &cpu)?.to_dtype(dtype)?.narrow(2, 0, tk)?;
                    let sinks = if with_sinks { Some(randn([hq], seed + 3, &cpu)?) } else { None };
                    let spec = AttentionSpec { scale: 0.4, mask, softcap };
                    let run = || Tensor::attention_with_sinks(&q, &k, &v, sinks.as_ref(), &spec);
                    let split = in_pool(4, run)?;
                    let whole = in_pool(1, run)?;
                    let what = format!(
                        "B {b} Hq {hq} Hkv {hkv} D {d} {dtype:?} tq {tq} tk {tk} sinks {with_sinks} cap {softcap:?}"
                    );
                    assert_close(&split, &whole, 1e-6, 1e-5)
                        .map_err(|e| tensor::Error::shape("split", format!("{what}: {e}")))?;
                    let (kw, vw) = (k.to_dtype(DType::F32)?, v.to_dtype(DType::F32)?);
                    let composite = Tensor::attention_composite_with_sinks(&q, &kw, &vw, sinks.as_ref(), &spec)?;
                    assert_close(&split, &composite, 1e-5, 1e-4)
                        .map_err(|e| tensor::Error::shape("composite", format!("{what}: {e}")))?;
                    seed += 10;
                }
            }
        }
    }
    Ok(())
}
