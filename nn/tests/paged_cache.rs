//! The paged KV cache: attention layers decoding through blocks of a shared pool give what
//! they give without a cache (every mask, MLA's latent cache, two sequences interleaved in
//! one pool), sliding-window and chunked layers hand back the blocks that fall out of view,
//! every block returns when its cache is dropped, and an empty pool is an error, not a panic.
//! Tolerance 1e-5: the paged kernel sums blocks in another order than the full forward.

use std::sync::Arc;

use autograd::Var;
use nn::Init;
use nn::attention::paged::blocks_needed;
use nn::attention::{BlockPool, GroupedQueryAttention, KvCache, MaskKind, MultiHeadLatentAttention, QkNorm};
use tensor::testing::{assert_close, randn};
use tensor::{Device, Result};

mod common;
use common::{gqa_config, mla_config};

const BLOCK: usize = 4;
const PIECES: [usize; 8] = [5, 1, 1, 1, 3, 7, 1, 4];

/// Runs `x [1, T, hidden]` in `PIECES` through a paged cache of `pool`, checking after each
/// piece that the cache holds no more blocks than its mask needs.
fn paged_steps(
    f: &dyn Fn(&Var, usize, &mut KvCache) -> Result<Var>,
    x: &Var,
    kind: MaskKind,
    pool: &Arc<BlockPool>,
) -> Result<Var> {
    let mut cache = KvCache::paged(kind, pool.clone());
    let mut outs = Vec::new();
    let mut start = 0;
    for n in PIECES {
        outs.push(f(&x.narrow(1, start, n)?, start, &mut cache)?);
        start += n;
        assert!(cache.blocks_held() <= blocks_needed(kind, start, BLOCK, 7), "{kind:?} at {start}");
        assert_eq!(pool.used(), cache.blocks_held());
    }
    Var::cat(&outs.iter().collect::<Vec<_>>(), 1)
}

#[test]
fn paged_decoding_equals_the_full_forward_and_windows_give_blocks_back() -> Result<()> {
    let cpu = Device::cpu();
    let total: usize = PIECES.iter().sum(); // 23 positions, 6 blocks of 4
    let x = Var::constant(randn([1, total, 16], 1, &cpu)?);
    let pool = BlockPool::new(64, BLOCK)?;
    for (i, kind) in
        [MaskKind::Causal, MaskKind::Sliding { window: 3 }, MaskKind::Chunked { chunk: 6 }].into_iter().enumerate()
    {
        let config = gqa_config(kind, QkNorm::PerHead { eps: 1e-6, gemma: false }, true, None);
        let mut init = Init::new(i as u64, &cpu);
        let attn = GroupedQueryAttention::new(config, &mut init)?.with_sinks(&mut init)?;
        let full = attn.forward(&x, 0, None)?;
        let mut cache = KvCache::paged(kind, pool.clone());
        let mut outs = Vec::new();
        let mut start = 0;
        for n in PIECES {
            outs.push(attn.forward(&x.narrow(1, start, n)?, start, Some(&mut cache))?);
            start += n;
            assert!(cache.blocks_held() <= blocks_needed(kind, start, BLOCK, 7), "{kind:?} at {start}");
            assert_eq!(pool.used(), cache.blocks_held());
        }
        if kind != MaskKind::Causal {
            assert!(cache.blocks_held() < total.div_ceil(BLOCK), "{kind:?} kept every block");
        }
        let stepped = Var::cat(&outs.iter().collect::<Vec<_>>(), 1)?;
        assert_close(&stepped.value(), &full.value(), 1e-5, 1e-5)
            .map_err(|e| tensor::Error::shape("case", format!("{kind:?}: {e}")))?;
        drop(cache);
        assert_eq!(pool.free(), pool.total(), "every block is back after {kind:?}");
    }
    Ok(())
}

#[test]
fn two_sequences_interleaved_in_one_pool_each_equal_their_own_forward() -> Result<()> {
    let cpu = Device::cpu();
    let attn =
        GroupedQueryAttention::new(gqa_config(MaskKind::Causal, QkNorm::None, true, None), &mut Init::new(3, &cpu))?;
    let pool = BlockPool::new(32, BLOCK)?;
    let (a, b) = (Var::constant(randn([1, 13, 16], 4, &cpu)?), Var::constant(randn([1, 9, 16], 5, &cpu)?));
    let (mut ca, mut cb) =
        (KvCache::paged(MaskKind::Causal, pool.clone()), KvCache::paged(MaskKind::Causal, pool.clone()));
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    // Alternate steps so the two sequences' blocks interleave in the pool.
    let (mut sa, mut sb) = (0, 0);
    for (na, nb) in [(3, 2), (1, 1), (5, 1), (1, 4), (3, 1)] {
        oa.push(attn.forward(&a.narrow(1, sa, na)?, sa, Some(&mut ca))?);
        ob.push(attn.forward(&b.narrow(1, sb, nb)?, sb, Some(&mut cb))?);
        sa += na;
        sb += nb;
    }
    assert_eq!((sa, sb), (13, 9));
    assert_eq!(pool.used(), 13usize.div_ceil(BLOCK) + 9usize.div_ceil(BLOCK));
    let cat = |o: &Vec<Var>| Var::cat(&o.iter().collect::<Vec<_>>(), 1);
    assert_close(&cat(&oa)?.value(), &attn.forward(&a, 0, None)?.value(), 1e-5, 1e-5)?;
    assert_close(&cat(&ob)?.value(), &attn.forward(&b, 0, None)?.value(), 1e-5, 1e-5)?;
    drop(ca);
    assert_eq!(pool.used(), 9usize.div_ceil(BLOCK), "the first sequence's blocks are back");
    drop(cb);
    assert_eq!(pool.free(), 32);
    Ok(())
}

#[test]
fn mla_decodes_through_a_paged_latent_cache() -> Result<()> {
    let cpu = Device::cpu();
    let mla = MultiHeadLatentAttention::new(mla_config(), &mut Init::new(7, &cpu))?;
    let total: usize = PIECES.iter().sum();
    let x = Var::constant(randn([1, total, 16], 2, &cpu)?);
    let plain = mla.forward_plain(&x, 0)?;
    let pool = BlockPool::new(16, BLOCK)?;
    let paged = paged_steps(&|x, s, c| mla.forward(x, s, Some(c)), &x, MaskKind::Causal, &pool)?;
    assert_close(&paged.value(), &plain.value(), 1e-5, 1e-5)?;
    // One tensor of latent + rope key per block: 16 blocks x 4 positions x 14 numbers x 4 bytes.
    assert_eq!(pool.bytes(), 16 * BLOCK * 14 * 4);
    assert_eq!(pool.free(), 16);
    Ok(())
}

#[test]
fn an_exhausted_pool_refuses_without_taking_anything_and_appending_is_an_error() -> Result<()> {
    let cpu = Device::cpu();
    let pool = BlockPool::new(3, BLOCK)?;
    let mut a = KvCache::paged(MaskKind::Causal, pool.clone());
    assert!(a.reserve_blocks(10)); // 3 blocks
    assert_eq!(pool.free(), 0);
    let mut b = KvCache::paged(MaskKind::Causal, pool.clone());
    assert!(!b.reserve_blocks(1));
    assert_eq!(b.blocks_held(), 0);
    let rows = randn([1, 2, 1, 8], 1, &cpu)?;
    let err = b.append(&[&rows, &rows]).err().expect("no block to write into");
    assert!(err.to_string().contains("no free block"), "{err}");
    drop(a);
    assert!(b.reserve_blocks(5));
    assert_eq!(pool.used(), 2);
    assert!(BlockPool::new(0, 16).is_err() && BlockPool::new(4, 0).is_err());
    Ok(())
}

/// The GPU has no paged kernel: attention gathers the sequence's rows from the pool's blocks
/// (on the device) and runs its plain kernel. Same layer, same steps, CPU against GPU (1e-4
/// relative plus 1e-5 absolute: f32 sums in another order).
#[test]
fn on_the_gpu_a_paged_cache_gives_what_it_gives_on_the_cpu() -> Result<()> {
    let Some(g) = gpu::test_device() else { return Ok(()) };
    let total: usize = PIECES.iter().sum();
    let run = |device: &Device, kind: MaskKind| -> Result<tensor::Tensor> {
        let attn =
            GroupedQueryAttention::new(gqa_config(kind, QkNorm::None, true, None), &mut Init::new(11, &Device::cpu()))?;
        nn::ModuleExt::to_device(&attn, device)?;
        let x = Var::constant(randn([1, total, 16], 12, &Device::cpu())?.to(device)?);
        let pool = BlockPool::new(16, BLOCK)?;
        let y = paged_steps(&|x, s, c| attn.forward(x, s, Some(c)), &x, kind, &pool)?;
        y.value().to(&Device::cpu())
    };
    for kind in [MaskKind::Causal, MaskKind::Sliding { window: 3 }] {
        assert_close(&run(&g, kind)?, &run(&Device::cpu(), kind)?, 1e-5, 1e-4)?;
    }
    Ok(())
}
