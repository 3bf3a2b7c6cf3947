//! Which keys a layer's queries may see: causal (every decoder), sliding window (Gemma 3's local
//! layers, `sliding_window`), chunked (Llama 4's RoPE layers, `attention_chunk_size`). Each kind
//! turns into a `tensor::AttentionMask` for given query and key positions, and into a picture.

use tensor::AttentionMask;

/// A layer's attention pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskKind {
    /// Every earlier position and itself.
    Causal,
    /// The last `window` positions including itself: `0 <= q - k < window`.
    Sliding { window: usize },
    /// Earlier positions inside the query's block of `chunk`: `q / chunk == k / chunk`.
    Chunked { chunk: usize },
    /// Every position (encoders; not used by these decoders, kept for tests and pictures).
    Bidirectional,
}

impl MaskKind {
    /// The mask for queries at absolute positions `q_start..` over keys at `k_start..`.
    pub fn at(&self, q_start: usize, k_start: usize) -> AttentionMask {
        let base = AttentionMask { causal: true, q_start, k_start, window: None, chunk: None };
        match *self {
            MaskKind::Causal => base,
            MaskKind::Sliding { window } => AttentionMask { window: Some(window), ..base },
            MaskKind::Chunked { chunk } => AttentionMask { chunk: Some(chunk), ..base },
            MaskKind::Bidirectional => AttentionMask { causal: false, ..base },
        }
    }

    /// The earliest key position a query at `q` can see: what a cache must still hold.
    pub fn earliest_visible(&self, q: usize) -> usize {
        match *self {
            MaskKind::Causal | MaskKind::Bidirectional => 0,
            MaskKind::Sliding { window } => (q + 1).saturating_sub(window),
            MaskKind::Chunked { chunk } if chunk > 0 => q / chunk * chunk,
            MaskKind::Chunked { .. } => 0,
        }
    }

    /// The whole [t, t] mask as rows of booleans (for pictures and tests).
    pub fn grid(&self, t: usize) -> Vec<Vec<bool>> {
        let mask = self.at(0, 0);
        (0..t).map(|i| (0..t).map(|j| mask.allows(i, j)).collect()).collect()
    }

    pub fn name(&self) -> String {
        match self {
            MaskKind::Causal => "causal".to_string(),
            MaskKind::Sliding { window } => format!("sliding window {window}"),
            MaskKind::Chunked { chunk } => format!("chunked {chunk}"),
            MaskKind::Bidirectional => "bidirectional".to_string(),
        }
    }
}
