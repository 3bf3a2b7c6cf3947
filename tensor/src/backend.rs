//! The `Backend` trait: the primitive ops every device provides. The CPU implements it in
//! `cpu/`, the GPU crate with WGSL kernels. It is object-safe and generic-free: a `Device`
//! holds an `Arc<dyn Backend>`, and a tensor op is one call through it.
//!
//! Contract for every method:
//! - Inputs come as [`Src`] views (buffer, layout, dtype) of buffers that belong to this
//!   backend. Layouts may be strided (permuted, narrowed, broadcast with stride 0) unless a
//!   method says it needs contiguous input; the tensor layer has already checked shapes, so
//!   a backend only reports errors of its own (out-of-range ids, device failures).
//! - Outputs are new, contiguous, row-major buffers whose shape the tensor layer knows.
//! - f32 and f64 are the compute types for float ops (a backend may reject f64, as GPUs do);
//!   bf16/f16 appear only in `upload`/`download`/`copy`/`cast`/`copy_into` and as the weight
//!   operand of `matmul` and `expert_matmul`. u32 and i64 are the index types.

use crate::ops::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use crate::{Buffer, BufferRef, DType, Error, HostData, Layout, Result};

/// A strided view of a backend buffer: what a kernel reads.
#[derive(Clone, Copy, Debug)]
pub struct Src<'a> {
    pub buffer: &'a dyn Buffer,
    pub layout: &'a Layout,
    pub dtype: DType,
}

/// One sequence's rows in a paged KV cache: `k_pool` [N, Hkv, S, D] and `v_pool` [N, Hkv, S, Dv]
/// hold N blocks of S positions each; key row `j < len` is row `j % S` of block `blocks[j / S]`.
/// The pools may be strided views whose last dim is contiguous (MLA's values are the first
/// columns of its keys).
#[derive(Clone, Copy, Debug)]
pub struct PagedKv<'a> {
    pub k_pool: Src<'a>,
    pub v_pool: Src<'a>,
    pub blocks: &'a [u32],
    pub len: usize,
}

/// RMSNorm: `y = x / sqrt(mean(x^2) + eps) * w`, or Gemma's `* (1 + w)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormSpec {
    /// `rms_norm_eps` from the model config.
    pub eps: f64,
    /// Gemma stores its norm weights zero-centred and multiplies by `(1 + w)`.
    pub add_unit_offset: bool,
}

/// The activation of a gated linear unit `act(gate) * up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GluActivation {
    /// SwiGLU (Shazeer 2020), `hidden_act: silu`: Llama, Qwen, Mistral, DeepSeek, OLMo.
    Silu,
    /// GeGLU with the tanh form of GELU, `hidden_activation: gelu_pytorch_tanh`: Gemma 3.
    GeluTanh,
}

/// Which keys each query may attend to. Positions are absolute: query row `i` sits at position
/// `q_start + i`, key row `j` at `k_start + j` (a sliding-window cache that dropped old keys
/// has `k_start > 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AttentionMask {
    /// Keys after the query are hidden.
    pub causal: bool,
    pub q_start: usize,
    pub k_start: usize,
    /// Sliding window (Gemma 3, `sliding_window`): key `p` is visible to query `q` only if
    /// `q - p < window`, so a query sees exactly `window` positions including itself.
    pub window: Option<usize>,
    /// Chunked attention (Llama 4, `attention_chunk_size`): query and key must lie in the same
    /// block of `chunk` positions.
    pub chunk: Option<usize>,
}

impl AttentionMask {
    /// Plain causal attention where queries are the last rows of the keys' positions.
    pub fn causal(q_start: usize) -> AttentionMask {
        AttentionMask { causal: true, q_start, ..Default::default() }
    }

    /// Whether query row `i` may attend to key row `j`.
    #[inline]
    pub fn allows(&self, i: usize, j: usize) -> bool {
        let (q, k) = (self.q_start + i, self.k_start + j);
        if self.causal && k > q {
            return false;
        }
        if let Some(w) = self.window {
            // Only keys behind the query are limited, so the visible keys stay an interval.
            if q >= k && q - k >= w {
                return false;
            }
        }
        if let Some(c) = self.chunk.filter(|&c| c > 0) {
            return q / c == k / c;
        }
        true
    }

    /// The key rows query row `i` may see, out of `tk`. Every mask here (causal, window, chunk)
    /// keeps an interval of keys, and so does their intersection; kernels loop over just it.
    pub fn visible_range(&self, i: usize, tk: usize) -> std::ops::Range<usize> {
        let q = self.q_start + i;
        let (mut lo, mut hi) = (0usize, usize::MAX);
        if self.causal {
            hi = hi.min(q + 1);
        }
        if let Some(w) = self.window {
            lo = lo.max((q + 1).saturating_sub(w));
        }
        if let Some(c) = self.chunk.filter(|&c| c > 0) {
            lo = lo.max(q / c * c);
            hi = hi.min((q / c + 1) * c);
        }
        let lo = lo.saturating_sub(self.k_start).min(tk);
        let hi = hi.saturating_sub(self.k_start).min(tk);
        lo..hi.max(lo)
    }
}

/// Scaled dot-product attention: `softmax(mask(q k^T * scale)) v`, with optional tanh
/// soft-capping of the logits (`cap * tanh(logit / cap)`, Gemma 2's `attn_logit_softcapping`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    pub scale: f64,
    pub mask: AttentionMask,
    pub softcap: Option<f64>,
}

pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A human-readable name: `"cpu"`, or the GPU adapter and API.
    fn name(&self) -> String;

    fn is_cpu(&self) -> bool {
        false
    }

    // ---- memory -------------------------------------------------------------------------
    /// Copies host data into a new buffer of this device.
    fn upload(&self, data: &HostData) -> Result<BufferRef>;
    /// [`Backend::upload`] of data the caller gives away: the CPU keeps the vector itself
    /// instead of copying it (every `Tensor::from_vec`).
    fn upload_owned(&self, data: HostData) -> Result<BufferRef> {
        self.upload(&data)
    }
    /// Reads a view back to host memory in row-major order. The only call that waits for the
    /// device to finish queued work.
    fn download(&self, src: Src) -> Result<HostData>;
    /// Waits until every queued op has finished.
    fn synchronize(&self) -> Result<()>;
    /// A new buffer of `len` elements, all equal to `value`.
    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<BufferRef>;
    /// A contiguous copy of a view (`Tensor::contiguous`).
    fn copy(&self, src: Src) -> Result<BufferRef>;
    /// Writes `src` into the elements `dst_layout` selects of `dst`, in place. Same dtype, same
    /// shape. Used by KV caches and optimizers; the only mutating op.
    fn copy_into(&self, dst: &dyn Buffer, dst_layout: &Layout, src: Src) -> Result<()>;
    /// `copy_into` with the values converted to `dst_dtype`, the destination's float dtype (a
    /// step's f32 keys and values into an f16/bf16 KV cache) in one op. Optional: the tensor
    /// layer casts and then copies where a backend has no such kernel.
    fn copy_cast_into(&self, dst: &dyn Buffer, dst_layout: &Layout, dst_dtype: DType, src: Src) -> Result<()> {
        let _ = (dst, dst_layout, dst_dtype, src);
        Err(Error::unsupported("copy_cast_into", "no converting copy on this device"))
    }
    /// Converts elements to `dtype`.
    fn cast(&self, src: Src, dtype: DType) -> Result<BufferRef>;

    // ---- elementwise ----------------------------------------------------------------------
    fn unary(&self, op: UnaryOp, src: Src) -> Result<BufferRef>;
    /// `lhs` and `rhs` have the same shape (already broadcast, stride 0 where repeated) and dtype.
    fn binary(&self, op: BinaryOp, lhs: Src, rhs: Src) -> Result<BufferRef>;
    /// Like `binary`, producing u32 0/1.
    fn compare(&self, op: CmpOp, lhs: Src, rhs: Src) -> Result<BufferRef>;
    /// `cond != 0 ? on_true : on_false`; all three share one (broadcast) shape.
    fn where_cond(&self, cond: Src, on_true: Src, on_false: Src) -> Result<BufferRef>;

    // ---- reductions and scans ---------------------------------------------------------------
    /// Reduces `axis` to extent 1 (the tensor layer drops it unless keepdim). ArgMax/ArgMin give
    /// u32 indices, the first one on ties.
    fn reduce(&self, op: ReduceOp, src: Src, axis: usize) -> Result<BufferRef>;
    /// Inclusive prefix sum along `axis`.
    fn cumsum(&self, src: Src, axis: usize) -> Result<BufferRef>;
    /// Softmax (or log-softmax) over the last axis.
    fn softmax(&self, src: Src, log: bool) -> Result<BufferRef>;
    /// The `k` largest entries of each row of the last axis, in descending order (the lower
    /// index first on ties): values (src dtype) and u32 indices.
    fn topk(&self, src: Src, k: usize) -> Result<(BufferRef, BufferRef)>;

    // ---- matmul -------------------------------------------------------------------------------
    /// Batched matmul: `lhs` is [B, M, K], `rhs` is [B, K, N] (batch stride 0 where broadcast);
    /// the output is [B, M, N] in lhs's dtype. In each operand's last two dims one stride is 1
    /// (row- or column-major). `rhs` may be bf16/f16 with f32 `lhs` (weights kept in half
    /// precision, accumulated in f32).
    fn matmul(&self, lhs: Src, rhs: Src) -> Result<BufferRef>;
    /// Mixture-of-experts matmul: row `r` of `x` [R, K] times the weight of expert `ids[r]`
    /// from `weights` [E, K, N] (either of its last two dims may be the contiguous one), giving
    /// [R, N]. One call over all chosen experts instead of a loop of small matmuls.
    fn expert_matmul(&self, x: Src, weights: Src, ids: Src) -> Result<BufferRef>;
    /// `act(x @ gate^T) * (x @ up^T)`: a gated feed-forward's gate and up products and the gated
    /// unit after them, x [M, K] f32 contiguous, gate and up [I, K] views of weights as a Linear
    /// stores them (f32, bf16 or f16), giving [M, I]. Optional: the tensor layer runs `matmul`
    /// twice and `glu` where a backend has no such kernel or reports a shape `Unsupported` (the
    /// CPU's three passes cost what one would; a GPU decoding a token saves two dispatches and
    /// the round trip of both products through memory).
    fn matmul_glu(&self, x: Src, gate: Src, up: Src, act: GluActivation) -> Result<BufferRef> {
        let _ = (x, gate, up, act);
        Err(Error::unsupported("matmul_glu", "no fused kernel on this device"))
    }
    /// `x @ W_i^T` for each of 1 to 3 `weights` W_i [N_i, K] (views of weights as a Linear
    /// stores them, one dtype: f32, bf16 or f16), x [M, K] f32 contiguous (at any offset): ONE
    /// buffer [M, sum N_i] holding the products side by side, which the tensor layer hands out as
    /// views. Optional: where a backend has no such kernel or reports a shape `Unsupported`, the
    /// tensor layer runs one `matmul` per weight (on the CPU one product costs what its share of
    /// a fused one would; a GPU decoding a token saves a dispatch per weight after the first).
    fn matmul_each(&self, x: Src, weights: &[Src]) -> Result<BufferRef> {
        let _ = (x, weights);
        Err(Error::unsupported("matmul_each", "no fused kernel on this device"))
    }
    /// `x` [M, K] f32 (contiguous) times the transpose of an [N, K] matrix of `ty` blocks held
    /// as u32 `words` in [`crate::quant::DeviceQMatrix`]'s layout: [M, N] f32. For backends
    /// that keep quantized weights on their device; the CPU multiplies its own
    /// [`crate::quant::QMatrix`] layout instead, so by default this is an error.
    fn qmatmul(&self, x: Src, words: Src, ty: crate::quant::GgmlType, n: usize, k: usize) -> Result<BufferRef> {
        let _ = (x, words, n, k);
        Err(Error::unsupported("qmatmul", format!("this device keeps no {ty} blocks (use QMatrix on the CPU)")))
    }
    /// Rows `ids` (u32 or i64, any shape) of such an [N, K] matrix, decoded: [len(ids), K] f32.
    /// An id past N is an error at the next readback (as `index_select`'s).
    fn qindex_select(&self, words: Src, ty: crate::quant::GgmlType, n: usize, k: usize, ids: Src) -> Result<BufferRef> {
        let _ = (words, n, k, ids);
        Err(Error::unsupported("qindex_select", format!("this device keeps no {ty} blocks (use QMatrix on the CPU)")))
    }
    /// Row `r` of `x` [R, K] f32 times the transpose of expert `ids[r]`'s matrix, the `shape`
    /// [E, N, K] experts' blocks stacked in `words` as one [E N, K] matrix: [R, N] f32. An
    /// expert id past E is an error at the next readback.
    fn qexpert_matmul(
        &self,
        x: Src,
        words: Src,
        ty: crate::quant::GgmlType,
        shape: [usize; 3],
        ids: Src,
    ) -> Result<BufferRef> {
        let _ = (x, words, shape, ids);
        Err(Error::unsupported("qexpert_matmul", format!("this device keeps no {ty} blocks (use QMatrix on the CPU)")))
    }

    // ---- indexing ------------------------------------------------------------------------------
    /// Picks entries of `axis` by the 1-D `ids` (u32 or i64): out[.., i, ..] = src[.., ids[i], ..].
    fn index_select(&self, src: Src, axis: usize, ids: Src) -> Result<BufferRef>;
    /// The adjoint of `index_select`: a copy of `dst` with `src[.., i, ..]` added into
    /// `dst[.., ids[i], ..]` (repeated ids accumulate).
    fn index_add(&self, dst: Src, axis: usize, ids: Src, src: Src) -> Result<BufferRef>;
    /// out[i][j][k] = src[i][index[i][j][k]][k] for `axis == 1`; `index` has the output's shape.
    fn gather(&self, src: Src, axis: usize, index: Src) -> Result<BufferRef>;
    /// The adjoint of `gather`: a copy of `dst` with out[i][index[i][j][k]][k] += src[i][j][k].
    fn scatter_add(&self, dst: Src, axis: usize, index: Src, src: Src) -> Result<BufferRef>;
    /// Joins views along `axis`; they agree on every other dim.
    fn concat(&self, parts: &[Src], axis: usize) -> Result<BufferRef>;

    // ---- fused ops (each has a composite reference in its `ops` file: rms_norm, rope, glu, attention)
    /// RMSNorm over the last axis of a contiguous `x`, possibly at an offset into its buffer (one
    /// of `matmul_each`'s products); `weight` has the last axis's extent.
    fn rms_norm(&self, x: Src, weight: Option<Src>, spec: RmsNormSpec) -> Result<BufferRef>;
    /// Rotary embedding of a contiguous `x` [.., T, D]: `cos`, `sin` are [T, D/2] tables. Each
    /// of the three may sit at an offset into its buffer (rows of a resident table, one of
    /// `matmul_each`'s products).
    /// Split-halves layout pairs element `i` with `i + D/2` (HF `rotate_half`); interleaved
    /// pairs `2i` with `2i + 1` (Meta's complex form, Llama 4, DeepSeek's rope dims).
    fn rope(&self, x: Src, cos: Src, sin: Src, interleaved: bool) -> Result<BufferRef>;
    /// `rope(rms_norm(x))` in one pass (per-head QK-norm then RoPE, Qwen3's and Gemma 3's
    /// attention): the same shapes and tables as the two ops; x may be any view. Optional: the
    /// tensor layer runs the two ops where a backend has no such kernel (fused, a GPU saves a
    /// dispatch and a round trip through memory, the CPU an output and a pass per step).
    fn rms_norm_rope(
        &self,
        x: Src,
        weight: Option<Src>,
        spec: RmsNormSpec,
        rope: (Src, Src, bool),
    ) -> Result<BufferRef> {
        let _ = (x, weight, spec, rope);
        Err(Error::unsupported("rms_norm_rope", "no fused kernel on this device"))
    }
    /// `rope(x)`, or `rms_norm_rope(x)` with `norm`, written into the view `dst` of x's shape
    /// instead of a new buffer, and `values` (v [.., T, Dv] with a row for each of x's rows)
    /// copied into their view: a decoding step's keys and values straight into its KV cache.
    /// x and v may be views; the destinations' rows are contiguous and their groups of T rows
    /// one stride apart (`ops::rope::row_groups`). Optional: the tensor layer runs the op and
    /// the copies where a backend has no such kernel.
    fn rope_into(
        &self,
        x: Src,
        norm: Option<(Option<Src>, RmsNormSpec)>,
        rope: (Src, Src, bool),
        dst: (&dyn Buffer, &Layout),
        values: Option<(Src, &dyn Buffer, &Layout)>,
    ) -> Result<()> {
        let _ = (x, norm, rope, dst, values);
        Err(Error::unsupported("rope_into", "no fused kernel on this device"))
    }
    /// `(x + r, rms_norm(x + r))` in one pass (a residual add and the norm that follows it in a
    /// pre-norm layer), x and r contiguous of one shape. Optional, as `rms_norm_rope`.
    fn add_rms_norm(&self, x: Src, r: Src, weight: Option<Src>, spec: RmsNormSpec) -> Result<(BufferRef, BufferRef)> {
        let _ = (x, r, weight, spec);
        Err(Error::unsupported("add_rms_norm", "no fused kernel on this device"))
    }
    /// `act(gate) * up`, same shapes.
    fn glu(&self, gate: Src, up: Src, act: GluActivation) -> Result<BufferRef>;
    /// Attention of a contiguous q [B, Hq, Tq, D] over k [B, Hkv, Tk, D] and v [B, Hkv, Tk, Dv]
    /// giving [B, Hq, Tq, Dv]. k and v may be strided views (a KV cache's live rows) whose last
    /// dim is contiguous (stride 1); other strides are arbitrary.
    /// Query head `h` reads kv head `h / (Hq / Hkv)` (GQA/MQA, no copies).
    /// `sinks` (contiguous [Hq], q's dtype) are attention sinks (gpt-oss `self_attn.sinks`): one
    /// more logit per head that joins each row's softmax denominator but reads no value, so the
    /// row's probabilities sum to less than 1.
    /// A query row with no visible key gives zeros.
    fn attention(&self, q: Src, k: Src, v: Src, sinks: Option<Src>, spec: &AttentionSpec) -> Result<BufferRef>;
    /// Attention of a contiguous q [1, Hq, Tq, D] over one sequence's rows of a paged KV cache
    /// ([`PagedKv`]). Otherwise as [`Backend::attention`]. A backend without a kernel says
    /// `Unsupported`, and the op gathers the rows and runs [`Backend::attention`].
    fn paged_attention(&self, q: Src, kv: PagedKv, sinks: Option<Src>, spec: &AttentionSpec) -> Result<BufferRef> {
        let _ = (q, kv, sinks, spec);
        Err(crate::Error::unsupported("paged_attention", "this device has no paged attention kernel"))
    }
}
