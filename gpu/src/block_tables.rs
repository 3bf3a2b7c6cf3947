//! The block tables of paged attention, uploaded once and reused.
//!
//! A paged KV cache reads a sequence's key rows through its block table. That table is the same
//! for every layer of a decode step, and it changes only when the sequence takes a new block. So
//! uploading it for every layer's attention meant one small upload per layer and sequence, 28 a
//! step for one sequence of a Qwen3-0.6B. Instead, the tables uploaded last are kept by their
//! contents: a step uploads each sequence's table once. Uploaded tables are never written again,
//! so a kept buffer always holds what its key says.

use std::sync::{Arc, Mutex};

use tensor::{Backend, BufferRef, Error, HostData, Result};

use crate::GpuBackend;

/// Tables kept: more than the sequences of the largest batch `llm serve` runs, so that each
/// step's tables stay while the layers go round them.
const KEPT: usize = 64;

/// The most recently used tables first, each with the buffer holding it.
#[derive(Default)]
pub(crate) struct BlockTables(Mutex<Vec<(Vec<u32>, BufferRef)>>);

impl BlockTables {
    /// The device buffer holding `blocks`: one kept from an earlier call, or a new upload.
    pub(crate) fn get(&self, b: &GpuBackend, blocks: &[u32]) -> Result<Arc<wgpu::Buffer>> {
        let buffer_of = |r: &BufferRef| {
            r.as_any()
                .downcast_ref::<crate::pool::GpuBuffer>()
                .map(|g| g.buffer.clone())
                .ok_or_else(|| Error::backend("paged_attention", "the block table was uploaded elsewhere"))
        };
        let mut kept = self.0.lock().map_err(|_| Error::backend("paged_attention", "block tables poisoned"))?;
        if let Some(at) = kept.iter().position(|(t, _)| t == blocks) {
            let entry = kept.remove(at);
            let buffer = buffer_of(&entry.1);
            kept.insert(0, entry);
            return buffer;
        }
        let uploaded = b.upload(&HostData::U32(blocks.to_vec()))?;
        let buffer = buffer_of(&uploaded)?;
        kept.insert(0, (blocks.to_vec(), uploaded));
        kept.truncate(KEPT);
        Ok(buffer)
    }
}
