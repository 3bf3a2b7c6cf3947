//! Paged attention uploads a sequence's block table once while it stays the same: the layers of
//! a decode step (and later steps, until the sequence takes a new block) reuse it. Counted with
//! the process-wide upload counter, so this test has its binary to itself; the results are
//! checked against the CPU's paged kernel too.

mod common;

use common::{cpu, gpu};
use tensor::testing::{assert_close, randn};
use tensor::{AttentionMask, AttentionSpec, Result, Tensor};

#[test]
fn a_block_table_is_uploaded_once_while_it_stays_the_same() -> Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let (hq, hkv, d, size, pool) = (4, 2, 8, 4, 9);
    let q = randn([1, hq, 1, d], 1, &cpu())?;
    let k_pool = randn([pool, hkv, size, d], 2, &cpu())?;
    let v_pool = randn([pool, hkv, size, d], 3, &cpu())?;
    let (gq, gk, gv) = (q.to(&g)?, k_pool.to(&g)?, v_pool.to(&g)?);
    let run = |blocks: &[u32], len: usize| -> Result<()> {
        let spec = AttentionSpec {
            scale: 0.35,
            mask: AttentionMask { q_start: len - 1, ..AttentionMask::causal(len) },
            softcap: None,
        };
        let want = Tensor::paged_attention(&q, &k_pool, &v_pool, None, blocks, len, &spec)?;
        let got = Tensor::paged_attention(&gq, &gk, &gv, None, blocks, len, &spec)?;
        assert_close(&got.to(&cpu())?, &want, 1e-5, 1e-4).map_err(|e| tensor::Error::shape("paged", e.to_string()))
    };
    let uploaded = || gpu::counters().bytes_uploaded;

    let table = [5u32, 1, 7];
    run(&table, 10)?; // the first use uploads it
    let before = uploaded();
    for len in [9, 10, 11, 12] {
        run(&table, len)?; // layers and steps that keep the same blocks
    }
    assert_eq!(uploaded() - before, 0, "the same table is not uploaded again");

    let grown = [5u32, 1, 7, 2];
    run(&grown, 13)?;
    assert_eq!(uploaded() - before, 16, "a new table is uploaded once (4 blocks of 4 bytes)");
    run(&grown, 14)?;
    run(&table, 12)?; // still kept
    assert_eq!(uploaded() - before, 16);
    Ok(())
}
