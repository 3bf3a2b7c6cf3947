//! The KV cache: keys and values of the positions already processed, so each new token attends
//! to them without recomputing. A global layer's cache grows with the sequence; a sliding-window
//! layer keeps only what its window can still see (the last `window - 1` positions between
//! steps), and a chunked layer only the current chunk. That is why Gemma 3's 5 local : 1 global
//! pattern holds about a sixth of the memory of full attention on long sequences.
//!
//! Storage: per tensor a buffer [B, H, capacity, D]; new rows are written in place
//! (`Tensor::write_from` into a narrowed view), so appending is amortised O(1) instead of copying
//! the whole cache every step. Capacity comes in large steps: at least `MIN_CAPACITY` rows (or
//! what [`KvCache::reserve`] asked for), then doubling, so a decode loop seldom reallocates and
//! a GPU allocates nothing between steps. When the front rows fall out of view (windows, chunks)
//! or room runs out, the live rows are copied once, straight from the old buffer, to the front of
//! a fresh one; the buffer of a windowed layer keeps its size, so the pool hands the same memory
//! back and forth.
//!
//! The rows are kept in the activations' dtype unless the cache is told otherwise
//! ([`KvCache::stored_as`]): f16 or bf16 halve its memory and what attention reads per token
//! (the GPU kernels widen each element as they load it; the CPU widens the rows per step).
//!
//! A server's cache is paged instead ([`KvCache::paged`], see [`super::paged`]): the rows live in
//! blocks of a pool shared by every sequence, and attention reads them through the block table.

use std::ops::Deref;
use std::sync::Arc;

use autograd::Var;
use tensor::{AttentionSpec, DType, Device, Error, Result, Tensor};

use super::masks::MaskKind;
use super::paged::{BlockPool, BlockTable, blocks_needed};

/// Rows a cache holds at least once it holds any.
const MIN_CAPACITY: usize = 256;

/// One layer's cache. It holds one or more tensors that share the sequence axis (2): keys and
/// values for standard attention; MLA's single latent-plus-rope-key tensor.
pub struct KvCache {
    kind: MaskKind,
    buffers: Vec<Tensor>,
    /// Row of the buffers holding the oldest live position.
    head: usize,
    /// Live rows.
    len: usize,
    /// Absolute position of the oldest live row.
    start: usize,
    /// Rows to allocate at first, from [`KvCache::reserve`].
    reserved: usize,
    /// A windowed layer's second set of buffers, which the live rows move into when the front
    /// ones fall out of view.
    spare: Vec<Tensor>,
    /// A paged cache's block table (then `buffers` stay empty and the rows live in the pool).
    table: Option<BlockTable>,
    /// The dtype rows are stored in (`None`: as they come).
    store: Option<DType>,
}

/// What one cached tensor's rows of a step look like: [B, H, n, D] of a dtype on a device, so
/// that a cache can make room for them before they exist ([`KvCache::slots`]).
#[derive(Clone, Debug)]
pub struct RowsLike {
    pub dims: [usize; 4],
    pub dtype: DType,
    pub device: Device,
}

impl RowsLike {
    /// The form of `rows`, which must be [B, H, n, D].
    pub fn of(rows: &Tensor) -> Result<RowsLike> {
        let dims = <[usize; 4]>::try_from(rows.dims())
            .map_err(|_| Error::shape("kv_cache", format!("rows must be [B, H, n, D], got {:?}", rows.shape())))?;
        Ok(RowsLike { dims, dtype: rows.dtype(), device: rows.device().clone() })
    }

    /// The forms of `rows` (at most [`MAX_QUANTITIES`]), inline: the first `rows.len()` count,
    /// the rest repeat the first.
    pub fn of_each(rows: &[&Tensor]) -> Result<[RowsLike; MAX_QUANTITIES]> {
        if rows.is_empty() || rows.len() > MAX_QUANTITIES {
            let got = rows.len();
            return Err(Error::shape("kv_cache", format!("expected 1 to {MAX_QUANTITIES} tensors per row, got {got}")));
        }
        let first = RowsLike::of(rows[0])?;
        let mut like: [RowsLike; MAX_QUANTITIES] = std::array::from_fn(|_| first.clone());
        for (l, row) in like.iter_mut().zip(rows).skip(1) {
            *l = RowsLike::of(row)?;
        }
        Ok(like)
    }
}

/// Cached quantities per row at most: keys and values (MLA caches one).
pub const MAX_QUANTITIES: usize = 2;

/// One tensor per cached quantity, held inline (no list allocated per decoding step): the
/// views a step writes into or attends to. Reads as a slice of tensors.
#[derive(Clone)]
pub struct CacheTensors {
    /// The first `len` are the tensors; the rest repeat the first (a shared handle, no copy).
    items: [Tensor; MAX_QUANTITIES],
    len: usize,
}

impl CacheTensors {
    /// The tensors of `iter`: one to [`MAX_QUANTITIES`], else an error.
    pub fn collect(iter: impl IntoIterator<Item = Result<Tensor>>) -> Result<CacheTensors> {
        let mut items: [Option<Tensor>; MAX_QUANTITIES] = std::array::from_fn(|_| None);
        let mut len = 0;
        for t in iter {
            let slot = items.get_mut(len).ok_or_else(|| {
                Error::shape("kv_cache", format!("a cache holds at most {MAX_QUANTITIES} tensors per row"))
            })?;
            *slot = Some(t?);
            len += 1;
        }
        let first = items[0].clone().ok_or_else(|| Error::shape("kv_cache", "no tensor to cache"))?;
        Ok(CacheTensors { items: items.map(|t| t.unwrap_or_else(|| first.clone())), len })
    }
}

impl Deref for CacheTensors {
    type Target = [Tensor];
    fn deref(&self) -> &[Tensor] {
        &self.items[..self.len]
    }
}

/// The rows a step attends to: views of the cache after appending, and the absolute position of
/// their first row.
pub struct CachedRows {
    /// The rows, one tensor per cached quantity; for a paged cache, the pool's storage.
    pub tensors: CacheTensors,
    pub k_start: usize,
    /// A paged cache's rows: the first `len` rows of these blocks of `tensors`.
    pub paged: Option<(Arc<Vec<u32>>, usize)>,
}

impl CachedRows {
    /// Attention of `q` over keys `k` and values `v`, each `tensors[i]` or a view of it
    /// narrowed on its last axis: plain attention over contiguous rows, or paged attention
    /// through the block table (inference only: no gradient flows into a paged cache).
    pub fn attention(&self, q: &Var, k: &Tensor, v: &Tensor, sinks: Option<&Var>, spec: &AttentionSpec) -> Result<Var> {
        match &self.paged {
            None => Var::attention_with_sinks(q, &Var::untracked(k.clone()), &Var::untracked(v.clone()), sinks, spec),
            Some((blocks, len)) => {
                let sinks = sinks.map(|s| s.value());
                let out = Tensor::paged_attention(&q.value(), k, v, sinks.as_ref(), blocks, *len, spec)?;
                Ok(Var::untracked(out))
            }
        }
    }
}

impl KvCache {
    pub fn new(kind: MaskKind) -> KvCache {
        KvCache {
            kind,
            buffers: Vec::new(),
            head: 0,
            len: 0,
            start: 0,
            reserved: 0,
            spare: Vec::new(),
            table: None,
            store: None,
        }
    }

    /// The same cache keeping its rows in `dtype` (`None`: as they come). Set before the first
    /// append; f16 and bf16 are for float rows under f32 queries.
    pub fn stored_as(self, dtype: Option<DType>) -> KvCache {
        KvCache { store: dtype, ..self }
    }

    /// An empty cache whose rows live in blocks of `pool`, returned to it when they fall out of
    /// view and when the cache is dropped.
    pub fn paged(kind: MaskKind, pool: Arc<BlockPool>) -> KvCache {
        KvCache { table: Some(BlockTable::new(pool)), ..KvCache::new(kind) }
    }

    pub fn is_paged(&self) -> bool {
        self.table.is_some()
    }

    /// For a paged cache: returns the blocks that fall out of view before the next step and
    /// takes those the step's `n` new rows need. False, with nothing taken, when the pool has
    /// too few free blocks; a contiguous cache always says true.
    pub fn reserve_blocks(&mut self, n: usize) -> bool {
        let next = self.next_position();
        let kind = self.kind;
        let Some(table) = self.table.as_mut() else {
            return true;
        };
        table.drop_out_of_view(kind, next);
        self.start = table.first * table.pool.block_size();
        self.len = next - self.start;
        table.reserve(next + n)
    }

    /// Blocks of the pool this cache holds (0 for a contiguous cache).
    pub fn blocks_held(&self) -> usize {
        self.table.as_ref().map_or(0, |t| t.len())
    }

    /// Room for `positions` positions in all (prompt plus new tokens), allocated at the first
    /// append, so a generation of known length never grows its cache. A windowed or chunked
    /// layer needs no more than its window or chunk, whatever is asked. A paged cache takes no
    /// block here (the engine does, step by step); its block table makes room for the ids.
    pub fn reserve(&mut self, positions: usize) {
        self.reserved = positions;
        let kind = self.kind;
        if let Some(table) = self.table.as_mut() {
            table.expect(blocks_needed(kind, positions, table.pool.block_size(), 1));
        }
    }

    /// The absolute position the next appended row will have.
    pub fn next_position(&self) -> usize {
        self.start + self.len
    }

    /// Live rows (positions held).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the live rows: what the cache needs to hold for the positions it still serves.
    pub fn size_in_bytes(&self) -> usize {
        if let Some(table) = &self.table {
            return self.len * table.pool.bytes() / (table.pool.total() * table.pool.block_size());
        }
        self.buffers
            .iter()
            .map(|b| {
                let d = b.dims();
                d[0] * d[1] * self.len * d[3] * b.dtype().size_in_bytes()
            })
            .sum()
    }

    /// Bytes allocated, including room for growth and a windowed layer's spare buffers.
    pub fn capacity_in_bytes(&self) -> usize {
        if let Some(table) = &self.table {
            return table.len() * table.pool.bytes() / table.pool.total();
        }
        self.buffers.iter().chain(&self.spare).map(|b| b.elem_count() * b.dtype().size_in_bytes()).sum()
    }

    /// Appends the rows of a step (each [B, H, n, D], at positions `next_position()..`) and
    /// returns every row the step's queries may need.
    pub fn append(&mut self, rows: &[&Tensor]) -> Result<CachedRows> {
        let first = *rows.first().ok_or_else(|| Error::shape("kv_cache", "nothing to append"))?;
        if rows.len() > MAX_QUANTITIES {
            return Err(Error::shape("kv_cache", format!("a cache holds at most {MAX_QUANTITIES} tensors per row")));
        }
        let n = first.dims()[2];
        // Arrays and inline lists throughout: a decoding step's append allocates nothing. Rows
        // of another dtype than the store's are converted as they are written into a contiguous
        // cache's slots; a paged cache takes them converted.
        let convert = self.store.filter(|&dtype| rows.iter().any(|r| r.dtype() != dtype));
        let stored = match convert {
            Some(dtype) if self.table.is_some() => Some(CacheTensors::collect(rows.iter().map(|r| r.to_dtype(dtype)))?),
            _ => None,
        };
        let mut refs = [first; MAX_QUANTITIES];
        for (i, (slot, row)) in refs.iter_mut().zip(rows).enumerate() {
            *slot = stored.as_ref().map_or(*row, |s| &s[i]);
        }
        let rows = &refs[..rows.len()];
        if self.table.is_some() {
            return self.append_paged(rows, n);
        }
        let mut like = RowsLike::of_each(rows)?;
        if let Some(dtype) = convert {
            like.iter_mut().for_each(|l| l.dtype = dtype);
        }
        let slots = self.make_room(&like[..rows.len()], n)?;
        for (slot, row) in slots.iter().zip(rows) {
            slot.write_converted_from(row)?;
        }
        self.commit(n)
    }

    /// The views the step's rows will occupy, for a caller that computes them straight into the
    /// cache (a GPU's keys are rotated into it, the values copied alongside, in one dispatch:
    /// `Tensor::rope_into`): one per cached tensor, each of the form `like` gives. After writing
    /// them, [`commit`](Self::commit) appends them. A paged cache reserves the step's blocks
    /// first and gives the views when the rows fall in one block (a decoding step's row does).
    /// `None` where rows are not written as they come: rows spanning blocks, or a cache storing
    /// another dtype than `like`'s.
    pub fn slots(&mut self, like: &[RowsLike]) -> Result<Option<CacheTensors>> {
        let n = like.first().map(|r| r.dims[2]).ok_or_else(|| Error::shape("kv_cache", "nothing to append"))?;
        if self.store.is_some_and(|dtype| like.iter().any(|r| r.dtype != dtype)) {
            return Ok(None);
        }
        if self.table.is_some() {
            if !self.reserve_blocks(n) {
                return Err(Error::shape("kv_cache", "the KV block pool has no free block left for this step"));
            }
            let at = self.next_position();
            return self.table.as_ref().expect("a paged cache").slots(like, at);
        }
        self.make_room(like, n).map(Some)
    }

    /// Counts the `n` rows written into the views [`slots`](Self::slots) returned, and returns
    /// every row the step's queries may need, as [`append`](Self::append) does.
    pub fn commit(&mut self, n: usize) -> Result<CachedRows> {
        self.len += n;
        if let Some(table) = &self.table {
            // `slots` handed out views of the pool's storage.
            return Ok(CachedRows {
                tensors: table.storage()?,
                k_start: self.start,
                paged: Some((table.ids(), self.len)),
            });
        }
        let tensors = CacheTensors::collect(self.buffers.iter().map(|b| b.narrow(2, self.head, self.len)))?;
        Ok(CachedRows { tensors, k_start: self.start, paged: None })
    }

    /// Drops the rows no new query can see, makes room for `n` more (shaped as `rows`), and
    /// returns the views they go into.
    fn make_room(&mut self, rows: &[RowsLike], n: usize) -> Result<CacheTensors> {
        if !self.buffers.is_empty() && rows.len() != self.buffers.len() {
            return Err(Error::shape(
                "kv_cache",
                format!("expected {} tensors, got {}", self.buffers.len(), rows.len()),
            ));
        }
        // Drop what no new query can see: the first new query is the earliest.
        let keep_from = self.kind.earliest_visible(self.next_position()).max(self.start);
        let dropped = (keep_from - self.start).min(self.len);
        self.head += dropped;
        self.len -= dropped;
        self.start += dropped;

        if self.len == 0 {
            // Nothing live (a new chunk): write from the front again, without moving anything.
            self.head = 0;
        }
        let capacity = self.buffers.first().map_or(0, |b| b.dims()[2]);
        if self.buffers.is_empty() || self.head + self.len + n > capacity {
            self.reallocate(rows, n)?;
        }
        CacheTensors::collect(self.buffers.iter().map(|b| b.narrow(2, self.head + self.len, n)))
    }

    /// Writes the rows into the blocks of the table (taking any the caller did not reserve).
    fn append_paged(&mut self, rows: &[&Tensor], n: usize) -> Result<CachedRows> {
        if !self.reserve_blocks(n) {
            return Err(Error::shape("kv_cache", "the KV block pool has no free block left for this step"));
        }
        let at = self.next_position();
        let table = self.table.as_ref().expect("a paged cache");
        let tensors = table.write(rows, at)?;
        self.len += n;
        Ok(CachedRows { tensors, k_start: self.start, paged: Some((table.ids(), self.len)) })
    }

    /// Moves the live rows to the front of buffers with room for `n` more. A growing cache
    /// takes its reservation when that holds them, else twice what it needs (at least
    /// `MIN_CAPACITY` rows); a chunked
    /// one twice its chunk (it starts again from the front at each new chunk); a sliding-window
    /// one keeps two buffers of twice its window and moves between them, so after its first
    /// step it never allocates.
    fn reallocate(&mut self, rows: &[RowsLike], n: usize) -> Result<()> {
        let needed = self.len + n;
        let windowed = max_visible(self.kind);
        let capacity = match windowed {
            Some(visible) => (2 * visible).max(needed),
            // A reservation that holds the rows is the whole generation's length: exactly that.
            None if self.reserved >= needed => self.reserved,
            None => (needed * 2).max(MIN_CAPACITY),
        };
        let allocate = |capacity: usize| -> Result<Vec<Tensor>> {
            rows.iter()
                .map(|row| {
                    let d = row.dims;
                    Tensor::zeros([d[0], d[1], capacity, d[3]], row.dtype, &row.device)
                })
                .collect()
        };
        let spare_fits = self.spare.first().is_some_and(|b| b.dims()[2] >= needed);
        let fresh = if spare_fits { std::mem::take(&mut self.spare) } else { allocate(capacity)? };
        if self.len > 0 {
            for (old, new) in self.buffers.iter().zip(&fresh) {
                new.narrow(2, 0, self.len)?.write_from(&old.narrow(2, self.head, self.len)?)?;
            }
        }
        let old = std::mem::replace(&mut self.buffers, fresh);
        if matches!(self.kind, MaskKind::Sliding { .. }) {
            let size = self.buffers[0].dims()[2];
            self.spare = if old.first().is_some_and(|b| b.dims()[2] == size) { old } else { allocate(size)? };
        }
        self.head = 0;
        Ok(())
    }
}

/// How many earlier rows one query can see at most: a window, a chunk, or unbounded.
fn max_visible(kind: MaskKind) -> Option<usize> {
    match kind {
        MaskKind::Sliding { window } if window > 0 => Some(window),
        MaskKind::Chunked { chunk } if chunk > 0 => Some(chunk),
        _ => None,
    }
}
