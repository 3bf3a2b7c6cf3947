//! Several sequences in one attention call: a server's batched decoding step lays the sequences'
//! new tokens end to end along the time axis, `x [1, N, hidden]`. Everything position-wise (the
//! projections) can run once on all N rows; attention itself is per sequence, against its own
//! keys and values at its own positions.

use super::kv_cache::KvCache;

/// One sequence's share of a packed attention call: its rows of `x` (`len` of them, after the
/// rows of the sequences before it), the absolute position of its first row, and its own cache.
pub struct AttentionSegment<'a> {
    pub start: usize,
    pub len: usize,
    pub cache: &'a mut KvCache,
}
