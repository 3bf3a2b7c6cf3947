//! The KV cache: keys and values of the positions already processed, so each new token attends
//! to them without recomputing. A global layer's cache grows with the sequence; a sliding-window
//! layer keeps only what its window can still see (the last `window - 1` positions between
//! steps), and a chunked layer only the current chunk. That is why Gemma 3's 5 local : 1 global
//! pattern holds about a sixth of the memory of full attention on long sequences.
//!
//! Storage: per tensor a buffer [B, H, capacity, D]; new rows are written in place
//! (`Tensor::write_from` into a narrowed view), growing by doubling, so appending is amortised
//! O(1) instead of copying the whole cache every step. When the front rows fall out of view the
//! live rows are copied to the front of a fresh buffer.

use tensor::{Error, Result, Tensor};

use super::masks::MaskKind;

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
}

/// The rows a step attends to: views of the cache after appending, and the absolute position of
/// their first row.
pub struct CachedRows {
    pub tensors: Vec<Tensor>,
    pub k_start: usize,
}

impl KvCache {
    pub fn new(kind: MaskKind) -> KvCache {
        KvCache { kind, buffers: Vec::new(), head: 0, len: 0, start: 0 }
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

    /// Bytes allocated, including room for growth.
    pub fn capacity_in_bytes(&self) -> usize {
        self.buffers.iter().map(|b| b.elem_count() * b.dtype().size_in_bytes()).sum()
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

        let capacity = self.buffers.first().map_or(0, |b| b.dims()[2]);
        if self.buffers.is_empty() || self.head + self.len + n > capacity {
            self.reallocate(rows, n)?;
        }
        for (buffer, row) in self.buffers.iter().zip(rows) {
            buffer.narrow(2, self.head + self.len, n)?.write_from(&row.contiguous()?)?;
        }
        self.len += n;
        let tensors = self.buffers.iter().map(|b| b.narrow(2, self.head, self.len)).collect::<Result<Vec<_>>>()?;
        Ok(CachedRows { tensors, k_start: self.start })
    }

    /// Moves the live rows to the front of new buffers with room for `n` more (doubling).
    fn reallocate(&mut self, rows: &[&Tensor], n: usize) -> Result<()> {
        let capacity = ((self.len + n) * 2).max(16);
        let mut fresh = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let d = row.dims();
            let buffer = Tensor::zeros([d[0], d[1], capacity, d[3]], row.dtype(), row.device())?;
            if self.len > 0 {
                buffer
                    .narrow(2, 0, self.len)?
                    .write_from(&self.buffers[i].narrow(2, self.head, self.len)?.contiguous()?)?;
            }
            fresh.push(buffer);
        }
        self.buffers = fresh;
        self.head = 0;
        Ok(())
    }
}
