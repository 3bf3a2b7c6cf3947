//! A paged KV cache for serving (Kwon et al. 2023, "Efficient Memory Management for Large
//! Language Model Serving with PagedAttention", vLLM): instead of each sequence owning buffers
//! that grow, the keys and values of every sequence live in fixed-size blocks of one pool,
//! allocated once from a budget. A sequence holds a block table per layer; a block goes back to
//! the pool the moment its sequence ends, or, on a sliding-window or chunked layer, the moment
//! no later query can see any of its positions.
//!
//! A block is `block_size` positions of one layer (its keys and values, or MLA's latent), so
//! layers that keep fewer positions (Gemma 3's local layers, Llama 4's chunked ones) hold fewer
//! blocks, and every block of the pool is interchangeable. The pool's storage is one tensor per
//! cached quantity, `[blocks, kv_heads, block_size, head_dim]`, allocated at the first write
//! (when the rows' shape, dtype and device are known) and never grown; every layer of a model
//! must cache rows of one shape, as every architecture here does.
//!
//! The pool is shared behind a mutex: the engine thread reserves blocks before a step (and
//! decides whom to preempt when there are none), the forward pass only writes into blocks
//! already reserved.

use std::sync::{Arc, Mutex, MutexGuard};

use tensor::{Error, Result, Tensor};

use super::kv_cache::{CacheTensors, RowsLike};
use super::masks::MaskKind;

/// The blocks of one server, shared by all its sequences.
pub struct BlockPool {
    block_size: usize,
    blocks: usize,
    state: Mutex<PoolState>,
}

struct PoolState {
    /// Ids of the free blocks (taken from the end).
    free: Vec<u32>,
    /// One tensor per cached quantity, `[blocks, heads, block_size, dim]`; empty until the
    /// first write.
    storage: Vec<Tensor>,
}

impl BlockPool {
    /// A pool of `blocks` blocks of `block_size` positions each.
    pub fn new(blocks: usize, block_size: usize) -> Result<Arc<BlockPool>> {
        if block_size == 0 || blocks == 0 || blocks > u32::MAX as usize {
            return Err(Error::shape("block_pool", format!("{blocks} blocks of {block_size} positions")));
        }
        let free = (0..blocks as u32).rev().collect();
        Ok(Arc::new(BlockPool { block_size, blocks, state: Mutex::new(PoolState { free, storage: Vec::new() }) }))
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the pool.
    pub fn total(&self) -> usize {
        self.blocks
    }

    /// Blocks no sequence holds.
    pub fn free(&self) -> usize {
        self.state().free.len()
    }

    pub fn used(&self) -> usize {
        self.blocks - self.free()
    }

    /// Bytes of the storage (0 before the first write).
    pub fn bytes(&self) -> usize {
        self.state().storage.iter().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum()
    }

    /// Moves `n` free blocks onto the end of `into`; false, moving none, when fewer are free.
    fn take_into(&self, n: usize, into: &mut Vec<u32>) -> bool {
        let mut state = self.state();
        let Some(left) = state.free.len().checked_sub(n) else { return false };
        into.extend(state.free.drain(left..));
        true
    }

    fn give_back(&self, blocks: impl IntoIterator<Item = u32>) {
        self.state().free.extend(blocks);
    }

    /// The storage tensors, allocated like `rows` ([1, H, n, D] each) at the first call.
    fn storage(&self, rows: &[RowsLike]) -> Result<CacheTensors> {
        let mut state = self.state();
        if state.storage.is_empty() {
            state.storage = rows
                .iter()
                .map(|r| {
                    let d = r.dims;
                    Tensor::zeros([self.blocks, d[1], self.block_size, d[3]], r.dtype, &r.device)
                })
                .collect::<Result<_>>()?;
        }
        let fits = state.storage.len() == rows.len()
            && state.storage.iter().zip(rows).all(|(s, r)| {
                s.dims()[1] == r.dims[1] && s.dims()[3] == r.dims[3] && s.dtype() == r.dtype && r.dims[0] == 1
            });
        if !fits {
            let pool: Vec<_> = state.storage.iter().map(|s| s.shape().clone()).collect();
            let got: Vec<_> = rows.iter().map(|r| r.dims).collect();
            return Err(Error::shape(
                "paged_kv_cache",
                format!(
                    "rows {got:?} do not match the pool's blocks {pool:?} (one sequence, one shape for every layer)"
                ),
            ));
        }
        CacheTensors::collect(state.storage.iter().cloned().map(Ok))
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        // A panic elsewhere cannot leave the free list half-written: every change is one call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Blocks a layer with mask `kind` holds at most for a sequence of `positions` positions fed
/// at most `step` at a time.
pub fn blocks_needed(kind: MaskKind, positions: usize, block_size: usize, step: usize) -> usize {
    let all = positions.div_ceil(block_size);
    let visible = match kind {
        MaskKind::Sliding { window } if window > 0 => window,
        MaskKind::Chunked { chunk } if chunk > 0 => chunk,
        _ => return all,
    };
    // A step's first query sees `visible - 1` earlier rows, its `step` rows are appended after
    // them, and the oldest kept block can start before the first visible row.
    all.min((visible - 1 + step.max(1)).div_ceil(block_size) + 1)
}

/// One layer's block table: blocks `first..first + blocks.len()` of the sequence (block `b`
/// holds positions `b * size..(b + 1) * size`) are `blocks[..]` of the pool.
pub(crate) struct BlockTable {
    pub pool: Arc<BlockPool>,
    pub first: usize,
    /// Shared with the step's attention ([`ids`](Self::ids)) rather than copied for it; changed
    /// in place once that step has dropped its handle (`Arc::make_mut`), so a decoding step
    /// allocates nothing for it.
    blocks: Arc<Vec<u32>>,
}

impl BlockTable {
    pub fn new(pool: Arc<BlockPool>) -> BlockTable {
        BlockTable { pool, first: 0, blocks: Arc::new(Vec::new()) }
    }

    /// The pool's ids of the blocks held, in order: a shared handle for a step's attention.
    pub fn ids(&self) -> Arc<Vec<u32>> {
        Arc::clone(&self.blocks)
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Room for the ids of `blocks` blocks held at once (at most the pool's), so that taking
    /// them one by one never grows the list.
    pub fn expect(&mut self, blocks: usize) {
        let blocks = blocks.min(self.pool.total());
        let list = Arc::make_mut(&mut self.blocks);
        list.reserve(blocks.saturating_sub(list.len()));
    }

    /// Returns the blocks no query at `next` or later can see to the pool.
    pub fn drop_out_of_view(&mut self, kind: MaskKind, next: usize) {
        let keep = (kind.earliest_visible(next) / self.pool.block_size).saturating_sub(self.first);
        let gone = keep.min(self.blocks.len());
        if gone > 0 {
            self.pool.give_back(Arc::make_mut(&mut self.blocks).drain(..gone));
            self.first += gone;
        }
    }

    /// Takes the blocks rows up to position `end` (exclusive) still need; false, taking none,
    /// when the pool has too few free.
    pub fn reserve(&mut self, end: usize) -> bool {
        let needed = end.div_ceil(self.pool.block_size).saturating_sub(self.first + self.blocks.len());
        if needed == 0 {
            return true;
        }
        self.pool.take_into(needed, Arc::make_mut(&mut self.blocks))
    }

    /// Writes `rows` ([1, H, n, D] each) at positions `at..at + n`, whose blocks are reserved.
    pub fn write(&self, rows: &[&Tensor], at: usize) -> Result<CacheTensors> {
        let like = RowsLike::of_each(rows)?;
        let storage = self.pool.storage(&like[..rows.len()])?;
        let size = self.pool.block_size;
        let n = rows[0].dims()[2];
        let mut done = 0;
        while done < n {
            let position = at + done;
            let block = self.blocks[position / size - self.first] as usize;
            let offset = position % size;
            let m = (size - offset).min(n - done);
            for (s, r) in storage.iter().zip(rows) {
                s.narrow(0, block, 1)?.narrow(2, offset, m)?.write_from(&r.narrow(2, done, m)?)?;
            }
            done += m;
        }
        Ok(storage)
    }
}

impl BlockTable {
    /// The views of the pool's storage that rows like `like` at positions `at..at + n` occupy,
    /// when they fall in one block (a decoding step's row always does), for a caller that
    /// writes them in place (`KvCache::slots`); `None` when they span blocks.
    pub fn slots(&self, like: &[RowsLike], at: usize) -> Result<Option<CacheTensors>> {
        let size = self.pool.block_size;
        let n = like.first().map_or(0, |r| r.dims[2]);
        let offset = at % size;
        if n == 0 || offset + n > size {
            return Ok(None);
        }
        let block = self.blocks[at / size - self.first] as usize;
        let storage = self.pool.storage(like)?;
        CacheTensors::collect(storage.iter().map(|s| s.narrow(0, block, 1)?.narrow(2, offset, n))).map(Some)
    }

    /// The pool's storage tensors as they are: an error before the first write.
    pub fn storage(&self) -> Result<CacheTensors> {
        CacheTensors::collect(self.pool.state().storage.iter().cloned().map(Ok))
    }
}

impl Drop for BlockTable {
    fn drop(&mut self) {
        self.pool.give_back(Arc::make_mut(&mut self.blocks).drain(..));
    }
}
