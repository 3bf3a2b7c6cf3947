//! The 12 bytes of 6-bit scales and minimums that Q4_K and Q5_K share (ggml's
//! `get_scale_min_k4`): eight (scale, min) pairs, one per 32 weights of a 256-weight block.

/// The scale and minimum of sub-block `j` (0..8).
#[inline]
pub(crate) fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}
