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

use tensor::{Error, Result, Tensor};

use super::masks::MaskKind;

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
}

/// The rows a step attends to: views of the cache after appending, and the absolute position of
/// their first row.
pub struct CachedRows {
    pub tensors: Vec<Tensor>,
    pub k_start: usize,
}

impl KvCache {
    pub fn new(kind: MaskKind) -> KvCache {
        KvCache { kind, buffers: Vec::new(), head: 0, len: 0, start: 0, reserved: 0, spare: Vec::new() }
    }

    /// Room for `positions` positions in all (prompt plus new tokens), allocated at the first
    /// append, so a generation of known length never grows its cache. A windowed or chunked
    /// layer needs no more than its window or chunk, whatever is asked.
    pub fn reserve(&mut self, positions: usize) {
        self.reserved = positions;
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
        self.buffers.iter().chain(&self.spare).map(|b| b.elem_count() * b.dtype().size_in_bytes()).sum()
    }

    /// Appends the rows of a step (each [B, H, n, D], at positions `next_position()..`) and
    /// returns every row the step's queries may need.
    pub fn append(&mut self, rows: &[&Tensor]) -> Result<CachedRows> {
        let n = rows.first().map(|r| r.dims()[2]).ok_or_else(|| Error::shape("kv_cache", "nothing to append"))?;
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
        for (buffer, row) in self.buffers.iter().zip(rows) {
            buffer.narrow(2, self.head + self.len, n)?.write_from(row)?;
        }
        self.len += n;
        let tensors = self.buffers.iter().map(|b| b.narrow(2, self.head, self.len)).collect::<Result<Vec<_>>>()?;
        Ok(CachedRows { tensors, k_start: self.start })
    }

    /// Moves the live rows to the front of buffers with room for `n` more. A growing cache
    /// takes twice what it needs (at least `MIN_CAPACITY` rows, or the reservation); a chunked
    /// one twice its chunk (it starts again from the front at each new chunk); a sliding-window
    /// one keeps two buffers of twice its window and moves between them, so after its first
    /// step it never allocates.
    fn reallocate(&mut self, rows: &[&Tensor], n: usize) -> Result<()> {
        let needed = self.len + n;
        let windowed = max_visible(self.kind);
        let capacity = match windowed {
            Some(visible) => (2 * visible).max(needed),
            None => (needed * 2).max(MIN_CAPACITY).max(self.reserved),
        };
        let allocate = |capacity: usize| -> Result<Vec<Tensor>> {
            rows.iter()
                .map(|row| {
                    let d = row.dims();
                    Tensor::zeros([d[0], d[1], capacity, d[3]], row.dtype(), row.device())
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
