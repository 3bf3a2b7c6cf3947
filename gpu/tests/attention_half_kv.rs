//! Attention over a KV cache kept in f16 or bf16 under f32 queries: the GPU kernels widen each
//! key and value as they load it, as the CPU does for a decoding step's rows (it widens a
//! prefill's cache first, `tensor::ops::attention`).
//! Both compute on the same half-precision values, so they agree as f32 attention does (1e-5
//! absolute, 1e-4 relative: an online softmax sums in another order). Dense caches as views of
//! a larger buffer (the live rows of a growing cache), MLA's values as the first columns of the
//! keys, the tiled (split-K) and one-row kernels, and a paged cache's pools.

mod common;

use common::{cpu, gpu, same_on_both};
use tensor::testing::randn;
use tensor::{AttentionMask, AttentionSpec, DType, Result, Tensor};

#[test]
fn half_precision_caches_match_the_cpu() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let mut case = 0;
    // Through the tiled kernels, then the one-row prefill kernel.
    for (dtype, one_row) in [(DType::F16, false), (DType::BF16, false), (DType::F16, true), (DType::BF16, true)] {
        gpu::kernels::attention::force_one_row(one_row);
        for (hq, hkv, d, dv) in [(4, 2, 16, 16), (4, 1, 24, 0)] {
            for tq in [1, 3, 9] {
                case += 1;
                let tk = 37;
                let q = randn([1, hq, tq, d], case, &cpu())?;
                // Room for 50 rows, 37 live: a view, as a growing cache hands attention.
                let k = randn([1, hkv, 50, d], case + 100, &cpu())?.to_dtype(dtype)?;
                let v = randn([1, hkv, 50, dv.max(1)], case + 200, &cpu())?.to_dtype(dtype)?;
                let sinks = randn([hq], case + 300, &cpu())?;
                let spec = AttentionSpec { scale: 0.25, mask: AttentionMask::causal(tk - tq), softcap: None };
                let what = format!("{dtype} cache, case {case}: heads {hq}/{hkv}, d {d}, dv {dv}, tq {tq}");
                same_on_both(&g, &[q, k, v, sinks], 1e-5, 1e-4, &what, |t| {
                    let k = t[1].narrow(2usize, 0, tk)?;
                    let v = if dv == 0 { k.narrow(3usize, 0, d - 8)? } else { t[2].narrow(2usize, 0, tk)? };
                    Tensor::attention_with_sinks(&t[0], &k, &v, Some(&t[3]), &spec)
                })?;
            }
        }
        // A paged cache's pools in half precision, decode and prefill.
        let blocks = [5u32, 0, 3];
        for tq in [1, 6] {
            case += 1;
            let len = 11;
            let q = randn([1, 4, tq, 8], case, &cpu())?;
            let k_pool = randn([6, 2, 4, 8], case + 100, &cpu())?.to_dtype(dtype)?;
            let v_pool = randn([6, 2, 4, 8], case + 200, &cpu())?.to_dtype(dtype)?;
            let spec = AttentionSpec { scale: 0.3, mask: AttentionMask::causal(len - tq), softcap: None };
            same_on_both(&g, &[q, k_pool, v_pool], 1e-5, 1e-4, &format!("{dtype} paged pools, tq {tq}"), |t| {
                Tensor::paged_attention(&t[0], &t[1], &t[2], None, &blocks, len, &spec)
            })?;
        }
    }
    gpu::kernels::attention::force_one_row(false);
    let names = gpu::backend()?.pipelines.names();
    for kernel in ["attention/f16", "attention/split/bf16", "attention/split/paged/f16", "attention/paged/bf16"] {
        assert!(names.iter().any(|n| n == kernel), "{kernel} ran: {names:?}");
    }
    Ok(())
}

#[test]
fn keys_and_values_of_different_dtypes_are_refused() -> Result<()> {
    let q = randn([1, 2, 1, 8], 1, &cpu())?;
    let k = randn([1, 2, 5, 8], 2, &cpu())?.to_dtype(DType::F16)?;
    let v = randn([1, 2, 5, 8], 3, &cpu())?.to_dtype(DType::BF16)?;
    let spec = AttentionSpec { scale: 0.3, mask: AttentionMask::default(), softcap: None };
    assert!(Tensor::attention(&q, &k, &v, &spec).is_err());
    // Half queries with f32 keys are not a half cache either.
    let q16 = q.to_dtype(DType::F16)?;
    let k32 = randn([1, 2, 5, 8], 2, &cpu())?;
    assert!(Tensor::attention(&q16, &k32, &k32, &spec).is_err());
    Ok(())
}
