//! Attention over a paged KV cache on the GPU (the kernels reading the pools through the block
//! table) against the CPU's paged kernel: blocks out of order with a partial last one, GQA, MQA
//! and MHA, causal, sliding-window and chunked masks, sinks, soft-capping, MLA's values as the
//! first columns of the keys, one query row and several, through the tiled (split-K) kernels
//! and the one-row kernel. Tolerance 1e-5 absolute, 1e-4 relative: an online softmax sums in another order.

mod common;

use common::{cpu, gpu, same_on_both};
use tensor::testing::randn;
use tensor::{AttentionMask, AttentionSpec, Result, Tensor};

#[test]
fn paged_attention_matches_the_cpu() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let blocks = [7u32, 2, 11, 0, 5];
    let (size, pool) = (4, 13);
    let masks = [
        AttentionMask::causal(13),
        AttentionMask { window: Some(6), ..AttentionMask::causal(13) },
        AttentionMask { chunk: Some(8), ..AttentionMask::causal(13) },
        AttentionMask::default(),
    ];
    let mut case = 0;
    // Through the tiled kernels, then the one-row kernel (for every shape).
    for (hq, hkv, d, dv, one_row) in [
        (4, 2, 8, 8, false),
        (3, 1, 8, 5, false),
        (4, 4, 6, 6, false),
        (4, 2, 8, 0, false),
        (4, 2, 8, 8, true),
        (3, 1, 8, 5, true),
    ] {
        gpu::kernels::attention::force_one_row(one_row);
        for tq in [1, 4, 7] {
            for (m, mask) in masks.iter().enumerate() {
                case += 1;
                let len = 13 + tq.min(4);
                let q = randn([1, hq, tq, d], case, &cpu())?;
                let k_pool = randn([pool, hkv, size, d], case + 100, &cpu())?;
                let v_pool = randn([pool, hkv, size, dv.max(1)], case + 200, &cpu())?;
                let sinks = randn([hq], case + 300, &cpu())?;
                let with_sinks = m % 2 == 0;
                let spec =
                    AttentionSpec { scale: 0.3, mask: AttentionMask { q_start: len - tq, ..*mask }, softcap: None };
                let spec = if m == 3 { AttentionSpec { softcap: Some(5.0), ..spec } } else { spec };
                let what = format!("paged case {case}: heads {hq}/{hkv}, d {d}, dv {dv}, tq {tq}, mask {m}");
                same_on_both(&g, &[q, k_pool, v_pool, sinks], 1e-5, 1e-4, &what, |t| {
                    // dv == 0 stands for MLA: the values are the first columns of the keys.
                    let v = if dv == 0 { t[1].narrow(3usize, 0, d - 2)? } else { t[2].clone() };
                    let sinks = with_sinks.then_some(&t[3]);
                    Tensor::paged_attention(&t[0], &t[1], &v, sinks, &blocks, len, &spec)
                })?;
            }
        }
    }
    gpu::kernels::attention::force_one_row(false);
    let names = gpu::backend()?.pipelines.names();
    for kernel in ["attention/paged", "attention/split/paged"] {
        assert!(names.iter().any(|n| n == kernel), "{kernel} ran: {names:?}");
    }
    Ok(())
}
