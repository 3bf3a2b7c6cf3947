//! CPU matmul. Matrix-matrix products go to the `gemm` crate (cache-blocked, SIMD microkernels
//! chosen at run time, AVX-512 included through its `x86-v4` feature, multithreaded through
//! rayon); matrix-vector products, the whole cost of batch-1 decoding, use our own streaming
//! kernels (`matvec`, on the instruction-set path `isa` chose) that read each weight once.
//! Half-precision weights are widened in registers for matrix-vector products, and to f32
//! panels in their stored order for GEMMs. `reference` is the plain triple loop the tests trust.

use std::any::TypeId;

use rayon::prelude::*;

use super::gemm_bf16;
use super::isa::{self, Isa};
use super::matvec::{self, Weight};
use super::matvec_bf16;

use crate::{Element, Error, FloatElement, HostData, Layout, Result};

/// Below this many multiply-adds a GEMM runs on one thread.
const GEMM_PARALLEL_MIN: usize = 64 * 64 * 64;
/// Columns of a half-precision weight widened to f32 at a time (bounds the scratch memory).
const WIDEN_COLUMNS: usize = 4096;
/// Up to this many rows, f32 x half-precision products run as matrix-vector products.
const HALF_MATVEC_ROWS: usize = 4;
/// Up to this many rows (a server's batched decoding step), products with a Linear's weight read
/// each weight row once for all rows ([`skinny`]).
const SKINNY_ROWS: usize = 8;
/// Up to this many rows (a short prompt), products with a Linear's f16 weight (or bf16 without
/// `vdpbf16ps`) run as skinny passes of `SKINNY_ROWS` rows, each streaming the weights once.
/// The `gemm` crate pays a fixed cost per product at few rows (an f32 Qwen3-0.6B-shaped
/// prefill took 0.75 s whatever the prompt up to ~64 tokens): 16 tokens 0.90 -> 0.25-0.26 s,
/// 64 tokens 1.11-1.13 -> 0.78-0.91 s; at 128 the GEMM was ahead again (1.42 against 1.50-1.59 s).
const CHUNKED_SKINNY_ROWS: usize = 64;
/// The same for f32 weights, which since [`gemm_transposed`] reach the crate as row-major
/// panels it packs by whole vectors: from 16 rows the GEMM is ahead (Zen 4 EPYC, 2 threads,
/// K 2048 x N 6144, medians of 10: 16 rows 7.4 against 8.9 ms, 64 rows 12.8 against 36.5 ms,
/// and 24 x 1024 x 3072 1.8 against 2.7 ms), below it far behind (9 rows 18.6 against 5.5 ms,
/// 12 rows 19.5 against 7.0 ms: the crate takes another path there).
const F32_CHUNKED_SKINNY_ROWS: usize = 15;

/// One operand of a batched product: storage, and its [B, rows, cols] layout.
struct Operand<'a, T> {
    data: &'a [T],
    layout: &'a Layout,
}

impl<T> Operand<'_, T> {
    fn dims(&self) -> (usize, usize, usize) {
        let d = self.layout.dims();
        (d[0], d[1], d[2])
    }
    /// (batch, row, col) strides.
    fn strides(&self) -> (usize, usize, usize) {
        let s = self.layout.strides();
        (s[0], s[1], s[2])
    }
    fn base(&self, batch: usize) -> usize {
        self.layout.offset() + batch * self.strides().0
    }
}

pub fn matmul(a: &HostData, la: &Layout, b: &HostData, lb: &Layout) -> Result<HostData> {
    for (data, layout, name) in [(a, la, "lhs"), (b, lb, "rhs")] {
        if layout.rank() != 3 || layout.storage_extent() > data.len() {
            return Err(Error::shape(
                "matmul",
                format!("{name} view {layout:?} does not fit its buffer of {}", data.len()),
            ));
        }
    }
    Ok(match (a, b) {
        (HostData::F32(x), HostData::F32(w)) => {
            HostData::F32(batched_f32(Operand { data: x, layout: la }, Operand { data: w, layout: lb }))
        }
        (HostData::F64(x), HostData::F64(w)) => {
            HostData::F64(batched(Operand { data: x, layout: la }, Operand { data: w, layout: lb }))
        }
        (HostData::F32(x), HostData::BF16(w)) => {
            HostData::F32(batched_f32(Operand { data: x, layout: la }, Operand { data: w, layout: lb }))
        }
        (HostData::F32(x), HostData::F16(w)) => {
            HostData::F32(batched_f32(Operand { data: x, layout: la }, Operand { data: w, layout: lb }))
        }
        (x, w) => return Err(Error::dtype("matmul", format!("cannot multiply {} by {}", x.dtype(), w.dtype()))),
    })
}

/// Same-type batched product.
fn batched<T: FloatElement>(a: Operand<T>, b: Operand<T>) -> Vec<T> {
    let (batch, m, k) = a.dims();
    let n = b.dims().2;
    let mut out = super::pool::zeroed(batch * m * n);
    if m * n == 0 {
        return out;
    }
    let per_batch = |bi: usize, dst: &mut [T], parallel: bool| {
        if m == 1 {
            matvec(&a.data[a.base(bi)..], a.strides().2, &b, bi, k, dst, parallel, |w| w);
        } else {
            gemm_into(dst, &a, bi, &b, bi, 0, n, m, k, parallel);
        }
    };
    run_batches(&mut out, batch, m * n, m * n * k, per_batch);
    out
}

/// f32 activations times f32, bf16 or f16 weights: our streaming kernels for matrix-vector
/// products (decode), the `gemm` crate for matrix-matrix ones (prefill), half-precision weights
/// widened to f32 panels first; except bf16 weights where `isa::bf16_gemm` allows, which go to
/// our `vdpbf16ps` GEMM (activations rounded to bf16, see `gemm_bf16`).
fn batched_f32<W: Weight>(a: Operand<f32>, b: Operand<W>) -> Vec<f32> {
    let (batch, m, k) = a.dims();
    let n = b.dims().2;
    let half = TypeId::of::<W>() != TypeId::of::<f32>();
    let isa = isa::active();
    let bf16_gemm = TypeId::of::<W>() == TypeId::of::<half::bf16>() && isa::bf16_gemm();
    let rows_in_order = b.strides().1 == 1 && a.strides().2 == 1;
    let chunked_rows = if half { CHUNKED_SKINNY_ROWS } else { F32_CHUNKED_SKINNY_ROWS };
    let path = if (2..=SKINNY_ROWS).contains(&m) && rows_in_order {
        Path::Skinny
    } else if !bf16_gemm && m > SKINNY_ROWS && m <= chunked_rows && rows_in_order {
        Path::ChunkedSkinny
    } else if m == 1 || (half && m <= HALF_MATVEC_ROWS) {
        Path::Matvec
    } else {
        Path::Gemm
    };
    // The GEMMs write every output (of a non-empty sum); the streaming kernels add into zeros.
    let mut out = if path == Path::Gemm && k > 0 {
        super::pool::overwritten(batch * m * n)
    } else {
        super::pool::zeroed(batch * m * n)
    };
    if m * n == 0 {
        return out;
    }
    let per_batch = |bi: usize, dst: &mut [f32], parallel: bool| {
        // A few rows against a Linear's weight: one pass over the weights for all rows.
        if path == Path::Skinny {
            skinny(isa, &a, &b, bi, dst, parallel);
            return;
        }
        // A short prompt against a Linear's f32 or f16 weight: skinny passes of SKINNY_ROWS
        // rows, each streaming the weights once (see `CHUNKED_SKINNY_ROWS`,
        // `F32_CHUNKED_SKINNY_ROWS`).
        if path == Path::ChunkedSkinny {
            let (a_bs, a_rs, _) = a.strides();
            for r0 in (0..m).step_by(SKINNY_ROWS) {
                let rows = SKINNY_ROWS.min(m - r0);
                let d = &mut dst[r0 * n..(r0 + rows) * n];
                let layout =
                    Layout::new(crate::Shape::from([bi + 1, rows, k]), [a_bs, a_rs, 1], a.layout.offset() + r0 * a_rs);
                let part = Operand { data: a.data, layout: &layout };
                if rows == 1 {
                    matvec_f32(isa, &a.data[part.base(bi)..], 1, &b, bi, k, d, parallel);
                } else {
                    skinny(isa, &part, &b, bi, d, parallel);
                }
            }
            return;
        }
        // One row, or a few against another layout: a matrix-vector product per row streams the
        // weights at memory speed, which a GEMM (or widening half weights for one) cannot beat.
        if path == Path::Matvec {
            for (row, d) in dst.chunks_mut(n).enumerate() {
                let x = &a.data[a.base(bi) + row * a.strides().1..];
                matvec_f32(isa, x, a.strides().2, &b, bi, k, d, parallel);
            }
            return;
        }
        if !half {
            // SAFETY-free reinterpretation: W is f32 here.
            let data: &[f32] = bytemuck_f32(b.data);
            let wide = Operand { data, layout: b.layout };
            gemm_into(dst, &a, bi, &wide, bi, 0, n, m, k, parallel);
            return;
        }
        // Prefill with bf16 weights on AVX512_BF16: our `vdpbf16ps` GEMM, twice the f32 rate.
        let (_, rs, cs) = b.strides();
        if bf16_gemm {
            let (_, a_rs, a_cs) = a.strides();
            let x = gemm_bf16::View { data: &a.data[a.base(bi)..], rs: a_rs, cs: a_cs };
            let w = gemm_bf16::View { data: &as_bf16(b.data)[b.base(bi)..], rs, cs };
            gemm_bf16::gemm(m, n, k, x, w, dst, n, parallel);
            return;
        }
        // Prefill with half weights: widen a block of columns to f32 in the order they are
        // stored (a contiguous conversion), then a full-speed GEMM on the panel.
        let block = WIDEN_COLUMNS.min(n);
        let mut widened = vec![0.0f32; k * block];
        for c0 in (0..n).step_by(WIDEN_COLUMNS) {
            let cols = WIDEN_COLUMNS.min(n - c0);
            let base = b.base(bi) + c0 * cs;
            let panel = &mut widened[..k * cols];
            let layout = if rs == 1 {
                // Column c of b is a contiguous row of the stored [N, K] weight.
                panel
                    .par_chunks_mut(k.max(1))
                    .enumerate()
                    .for_each(|(c, dst)| matvec::widen(isa, &b.data[base + c * cs..base + c * cs + k], dst));
                Layout::new(crate::Shape::from([1, k, cols]), [0, 1, k], 0)
            } else {
                panel.par_chunks_mut(cols).enumerate().for_each(|(kk, dst)| {
                    if cs == 1 {
                        matvec::widen(isa, &b.data[base + kk * rs..base + kk * rs + cols], dst)
                    } else {
                        for (j, v) in dst.iter_mut().enumerate() {
                            *v = b.data[base + kk * rs + j * cs].to_f32();
                        }
                    }
                });
                Layout::contiguous([1, k, cols])
            };
            let wide = Operand { data: &*panel, layout: &layout };
            gemm_into(dst, &a, bi, &wide, 0, c0, n, m, k, parallel);
        }
    };
    run_batches(&mut out, batch, m * n, m * n * k, per_batch);
    out
}

/// How [`batched_f32`] multiplies, chosen once per product from its shape and layouts.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    /// 2 to [`SKINNY_ROWS`] rows against a Linear's weight: one pass over it for all rows.
    Skinny,
    /// Up to [`F32_CHUNKED_SKINNY_ROWS`] rows against an f32 Linear weight, or
    /// [`CHUNKED_SKINNY_ROWS`] against an f16 one: skinny passes.
    ChunkedSkinny,
    /// One row (or a few against half weights in another layout): a matrix-vector product each.
    Matvec,
    /// A GEMM: the `gemm` crate's on f32 (or widened half) weights, ours on bf16.
    Gemm,
}

/// The f32 slice behind a weight slice whose element type is f32.
fn bytemuck_f32<W: Weight>(w: &[W]) -> &[f32] {
    assert_eq!(TypeId::of::<W>(), TypeId::of::<f32>());
    // SAFETY: W is f32 (checked above), so the slice is an f32 slice of the same length.
    unsafe { std::slice::from_raw_parts(w.as_ptr() as *const f32, w.len()) }
}

/// The bf16 slice behind a weight slice whose element type is bf16.
fn as_bf16<W: Weight>(w: &[W]) -> &[half::bf16] {
    assert_eq!(TypeId::of::<W>(), TypeId::of::<half::bf16>());
    // SAFETY: W is bf16 (checked above), so the slice is a bf16 slice of the same length.
    unsafe { std::slice::from_raw_parts(w.as_ptr() as *const half::bf16, w.len()) }
}

/// Rows per task of a parallel matrix-vector product over `n` rows of `row_bytes` each: about
/// 256 KiB of weights a task (a multiple of 4 rows, at least 16), but no fewer than 4 tasks a
/// thread (a block was an eighth of the product: 39 MB for Qwen3-0.6B's 311 MB head). Making
/// each block a piece of its own for rayon (`with_max_len(1)`, as the bf16 panels' tasks are)
/// measured no gain here (docs/BENCHMARKS.md, twenty-fifth session).
fn stream_chunk(n: usize, row_bytes: usize, threads: usize) -> usize {
    let by_bytes = (STREAM_TASK_BYTES / row_bytes.max(1)).next_multiple_of(4).max(16);
    by_bytes.min(n.div_ceil(threads * 4).next_multiple_of(4).max(16))
}

/// Weight bytes per task of a parallel matrix-vector product ([`stream_chunk`]).
const STREAM_TASK_BYTES: usize = 256 << 10;

/// `y[j] = sum_i x[i * x_stride] * b[i, j]` for f32 activations, streaming the weight once with
/// the SIMD kernels of `matvec`. Threads take contiguous blocks of the weight: blocks of output
/// rows when b is the transposed view of an [N, K] weight (one dot product per output), blocks
/// of K rows when b is a row-major [K, N] matrix (each thread sums its rows into its own copy of
/// y; the copies are added at the end).
#[allow(clippy::too_many_arguments)]
fn matvec_f32<W: Weight>(
    isa: Isa,
    x: &[f32],
    x_stride: usize,
    b: &Operand<W>,
    bi: usize,
    k: usize,
    y: &mut [f32],
    parallel: bool,
) {
    let n = y.len();
    let (_, rs, cs) = b.strides();
    let base = b.base(bi);
    let gathered: Vec<f32>;
    let xs: &[f32] = if x_stride == 1 || k <= 1 {
        &x[..k]
    } else {
        gathered = (0..k).map(|i| x[i * x_stride]).collect();
        &gathered
    };
    let threads = rayon::current_num_threads();
    let parallel = parallel && threads > 1 && n * k >= GEMM_PARALLEL_MIN;
    if rs == 1 && TypeId::of::<W>() == TypeId::of::<half::bf16>() && isa == Isa::Avx512 && isa::bf16_gemm() {
        // bf16 rows on `vdpbf16ps`, the activations rounded to bf16 once (see matvec_bf16).
        // The packed activations in a recycled vector, given back after (a decoding step's
        // products allocate nothing).
        let mut xp = super::pool::zeroed::<u32>(k.div_ceil(2));
        gemm_bf16::pack_pairs(xs, &mut xp);
        let w = as_bf16(b.data);
        let rows = |j0: usize, ys: &mut [f32]| {
            matvec_bf16::rows(&xp, k, ys, |j| &w[base + (j0 + j) * cs..base + (j0 + j) * cs + k])
        };
        if parallel {
            let chunk = stream_chunk(n, k * std::mem::size_of::<W>(), threads);
            y.par_chunks_mut(chunk).enumerate().for_each(|(c, ys)| rows(c * chunk, ys));
        } else {
            rows(0, y);
        }
        super::pool::give(xp);
    } else if rs == 1 || k == 1 {
        let rows = |j0: usize, ys: &mut [f32]| {
            // One row at a time in memory order: each thread's block of rows is one sequential
            // stream for the hardware prefetchers (see `matvec_bf16`). Four f32 rows side by
            // side with a software prefetch measured 32-36 GB/s against 48-50 for this on a
            // Zen 4 EPYC, over the Qwen3-0.6B shape's 2.4 GB of weights in alternating runs.
            for (j, v) in ys.iter_mut().enumerate() {
                *v = W::dot(isa, xs, &b.data[base + (j0 + j) * cs..base + (j0 + j) * cs + k]);
            }
        };
        if parallel {
            let chunk = stream_chunk(n, k * std::mem::size_of::<W>(), threads);
            y.par_chunks_mut(chunk).enumerate().for_each(|(c, ys)| rows(c * chunk, ys));
        } else {
            rows(0, y);
        }
    } else if cs == 1 {
        let rows = |k0: usize, k1: usize, ys: &mut [f32]| {
            let row = |i: usize| &b.data[base + i * rs..base + i * rs + n];
            let mut i = k0;
            while i + 4 <= k1 {
                W::axpy4(
                    isa,
                    ys,
                    [xs[i], xs[i + 1], xs[i + 2], xs[i + 3]],
                    [row(i), row(i + 1), row(i + 2), row(i + 3)],
                );
                i += 4;
            }
            while i < k1 {
                W::axpy4(isa, ys, [xs[i], 0.0, 0.0, 0.0], [row(i); 4]);
                i += 1;
            }
        };
        if parallel {
            let per = k.div_ceil(threads);
            let partial = (0..threads)
                .into_par_iter()
                .map(|t| {
                    let mut ys = vec![0.0f32; n];
                    rows((t * per).min(k), ((t + 1) * per).min(k), &mut ys);
                    ys
                })
                .reduce_with(|mut s, p| {
                    s.iter_mut().zip(&p).for_each(|(s, p)| *s += p);
                    s
                });
            if let Some(sum) = partial {
                y.copy_from_slice(&sum);
            }
        } else {
            rows(0, k, y);
        }
    } else {
        for (j, v) in y.iter_mut().enumerate() {
            *v = (0..k).map(|i| xs[i] * b.data[base + i * rs + j * cs].to_f32()).sum();
        }
    }
}

/// `dst [m, n] = a[bi] [m, k] @ b[bi]` for a few rows (2..=SKINNY_ROWS) when column j of b is
/// a contiguous run of k weights (the transposed view of a Linear's [N, K] weight) and a's rows
/// are contiguous: each weight row is read once and multiplied with all m activation rows
/// ([`Weight::dot_rows`]), so a batched decoding step streams the weights once for the whole
/// batch, where m matrix-vector products would stream them m times and a GEMM would pack (or
/// widen) them first. Threads take blocks of output columns, each streaming its own weights.
fn skinny<W: Weight>(isa: Isa, a: &Operand<f32>, b: &Operand<W>, bi: usize, dst: &mut [f32], parallel: bool) {
    let (_, m, k) = a.dims();
    let n = b.dims().2;
    let (a_rs, cs, base) = (a.strides().1, b.strides().2, b.base(bi));
    let x: Vec<&[f32]> = (0..m).map(|r| &a.data[a.base(bi) + r * a_rs..a.base(bi) + r * a_rs + k]).collect();
    // bf16 weights on `vdpbf16ps` (see matvec_bf16): the rows rounded and packed once.
    let dp = TypeId::of::<W>() == TypeId::of::<half::bf16>() && isa == Isa::Avx512 && isa::bf16_gemm();
    let packed: Vec<Vec<u32>> = if dp {
        x.iter()
            .map(|x| {
                let mut p = vec![0u32; k.div_ceil(2)];
                gemm_bf16::pack_pairs(x, &mut p);
                p
            })
            .collect()
    } else {
        Vec::new()
    };
    // Output columns j0..j1, column-major: m values per column.
    let columns = |j0: usize, j1: usize| -> Vec<f32> {
        let mut out = vec![0.0f32; (j1 - j0) * m];
        let column = |j: usize| &b.data[base + j * cs..base + j * cs + k];
        if dp {
            let packed: Vec<&[u32]> = packed.iter().map(|p| p.as_slice()).collect();
            let weights = |j: usize| as_bf16(column(j));
            macro_rules! rows {
                ($($r:literal => $c:literal)*) => {
                    match m {
                        $($r => dp_columns::<$r, $c>(&packed, k, weights, j0, j1, &mut out),)*
                        _ => unreachable!("skinny products take 2 to {SKINNY_ROWS} rows"),
                    }
                };
            }
            // Weight rows streamed at once: more for few activation rows, so that enough
            // streams are in flight to keep the memory busy (2 rows of 2 left batch 2 no faster
            // than batch 1), within 16 accumulators.
            rows!(2 => 4 3 => 4 4 => 4 5 => 4 6 => 4 7 => 3 8 => 3);
            return out;
        }
        for (j, o) in (j0..j1).zip(out.chunks_exact_mut(m)) {
            let w = column(j);
            macro_rules! rows {
                ($($r:literal)*) => {
                    match m {
                        $($r => o.copy_from_slice(&W::dot_rows::<$r>(isa, std::array::from_fn(|i| x[i]), w)),)*
                        _ => unreachable!("skinny products take 2 to {SKINNY_ROWS} rows"),
                    }
                };
            }
            rows!(2 3 4 5 6 7 8);
        }
        out
    };
    let mut scatter = |j0: usize, block: &[f32]| {
        for (c, values) in block.chunks_exact(m).enumerate() {
            for (r, &v) in values.iter().enumerate() {
                dst[r * n + j0 + c] = v;
            }
        }
    };
    let threads = rayon::current_num_threads();
    if parallel && threads > 1 && n * k * m >= GEMM_PARALLEL_MIN {
        let chunk = n.div_ceil(threads * 4).max(16);
        let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(chunk))
            .into_par_iter()
            .map(|c| (c * chunk, columns(c * chunk, ((c + 1) * chunk).min(n))))
            .collect();
        for (j0, block) in &blocks {
            scatter(*j0, block);
        }
    } else {
        scatter(0, &columns(0, n));
    }
}

/// Columns j0..j1 of a skinny product with bf16 weights on `vdpbf16ps`, into `out`
/// (column-major, R values per column): C weight rows at a time against the R packed rows.
fn dp_columns<'w, const R: usize, const C: usize>(
    packed: &[&[u32]],
    k: usize,
    weights: impl Fn(usize) -> &'w [half::bf16],
    j0: usize,
    j1: usize,
    out: &mut [f32],
) {
    let mut j = j0;
    while j < j1 {
        let cols = C.min(j1 - j);
        // The last group repeats its final row to fill C; the extra results are dropped.
        let w: [&[half::bf16]; C] = std::array::from_fn(|c| weights(j + c.min(cols - 1)));
        let v = matvec_bf16::dot_rows::<R, C>(std::array::from_fn(|i| packed[i]), k, w);
        for (c, values) in v.iter().take(cols).enumerate() {
            out[(j - j0 + c) * R..(j - j0 + c + 1) * R].copy_from_slice(values);
        }
        j += cols;
    }
}

/// Runs each batch entry: in parallel across entries when there are many small ones, else one
/// entry at a time with the parallelism inside the product.
fn run_batches<T: Send>(
    out: &mut [T],
    batch: usize,
    size: usize,
    work: usize,
    f: impl Fn(usize, &mut [T], bool) + Sync,
) {
    let threads = rayon::current_num_threads();
    if batch >= threads && batch > 1 && batch * work >= GEMM_PARALLEL_MIN {
        out.par_chunks_mut(size).enumerate().for_each(|(bi, dst)| f(bi, dst, false));
    } else {
        for (bi, dst) in out.chunks_mut(size).enumerate() {
            f(bi, dst, work >= GEMM_PARALLEL_MIN);
        }
    }
}

/// `dst[:, col0 .. col0 + cols(b)] = a[ba] @ b[bb]`, with `dst` row-major of row length `ldd`.
///
/// Threads: a product of at most [`COLUMN_SPLIT_MAX`] columns is cut into one block of columns
/// per thread, each a one-threaded `gemm` call that packs and streams its own part of b (a
/// Linear's output rows); wider products use the crate's own threading. At few columns the
/// crate's split measured slow: on an Emerald Rapids Xeon, 2 threads, the two ways alternated
/// seven times in one process (per-round ratios, ours against the crate's), 512 rows:
/// N 1024 at K 1024 1.07-1.49x, K 2048 1.20-1.39x, K 3072 1.09-1.46x, K 6144 1.18-1.33x;
/// N 512 at K 1024 1.07-1.38x; 128 rows, N 1024, K 3072 1.43-1.58x; 2048 rows 1.04-1.16x. At
/// N 1536 and above the two were even (0.88-1.05x, N 1536 to 12288), so the crate keeps those.
///
/// An f32 b that is the transposed view of a stored [N, K] matrix (a Linear's weight, the
/// usual case) goes through [`gemm_transposed`] instead of straight to the crate.
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: FloatElement>(
    dst: &mut [T],
    a: &Operand<T>,
    ba: usize,
    b: &Operand<T>,
    bb: usize,
    col0: usize,
    ldd: usize,
    m: usize,
    k: usize,
    parallel: bool,
) {
    let n = b.dims().2;
    let threads = rayon::current_num_threads();
    let parallel = parallel && m * n * k >= GEMM_PARALLEL_MIN && threads > 1;
    debug_assert!(dst.len() >= (m - 1) * ldd + col0 + n);
    let (_, b_rs, b_cs) = b.strides();
    // b's columns are the stored matrix's rows: b[:, j] is k values from b_cs * j, apart from
    // one another (a broadcast column, b_cs 0, stays a view for the crate).
    let stored_rows = TypeId::of::<T>() == TypeId::of::<f32>() && b_rs == 1 && b_cs >= k && k > 1 && n > 1;
    let out = gemm_bf16::Dst(dst.as_mut_ptr());
    if parallel && n <= COLUMN_SPLIT_MAX && n >= threads * COLUMN_SPLIT_MIN_PART {
        let part = n.div_ceil(threads).next_multiple_of(16);
        (0..n.div_ceil(part)).into_par_iter().for_each(|p| {
            let (j0, cols) = (p * part, part.min(n - p * part));
            let b_part = b.data.as_ptr().wrapping_add(b.base(bb) + j0 * b_cs);
            if stored_rows {
                // SAFETY: T is f32 (`stored_rows`); the part's columns of b are rows j0.. of
                // the stored matrix, inside b's buffer; dst as below.
                unsafe {
                    let rows = std::slice::from_raw_parts(b_part as *const f32, (cols - 1) * b_cs + k);
                    gemm_transposed(out.at(col0 + j0) as *mut f32, ldd, a, ba, rows, b_cs, m, cols, k, false);
                }
                return;
            }
            // SAFETY: as in `gemm_raw`; each part writes only its own columns j0..j0 + cols of
            // dst's m rows, and reads columns j0.. of b (offset j0 * b_cs from b's base).
            unsafe {
                gemm_raw(out.at(col0 + j0), ldd, a, ba, b_part, (b_rs, b_cs), m, cols, k, gemm::Parallelism::None)
            };
        });
        return;
    }
    if stored_rows {
        let base = b.base(bb);
        // SAFETY: T is f32 (`stored_rows`), so b's data is an f32 slice; dst as below.
        unsafe {
            let data = std::slice::from_raw_parts(b.data.as_ptr() as *const f32, b.data.len());
            let rows = &data[base..base + (n - 1) * b_cs + k];
            gemm_transposed(out.at(col0) as *mut f32, ldd, a, ba, rows, b_cs, m, n, k, parallel);
        }
        return;
    }
    let parallelism = if parallel { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the layouts were checked to lie inside their buffers (`storage_extent`), `dst`
    // holds m rows of `ldd` with the n columns from `col0` inside it.
    unsafe { gemm_raw(out.at(col0), ldd, a, ba, b.data.as_ptr().add(b.base(bb)), (b_rs, b_cs), m, n, k, parallelism) };
}

/// Bytes of one block of a weight copied transposed by [`gemm_transposed`]: 2 MiB, what the
/// caches keep between the copy and the product that reads it. Whole weights (48-100 MB at
/// Qwen3-1.7B's FFN) and 8 MiB blocks measured slower in a 1.7B f32 prefill on a Zen 4 EPYC
/// (63 tok/s with 8 MiB, 66 with 2 MiB, alternating in one process, before [`PANEL_PAD`]);
/// with the padding, 1, 2 and 4 MiB read the same within that machine's noise.
const TRANSPOSE_BLOCK_BYTES: usize = 2 << 20;

/// Values past each row of a [`gemm_transposed`] panel: rows of a power-of-two length (256
/// columns at K 2048) fell on a few cache sets, and the copy's stores, each row's 32 bytes at a
/// time, evicted one another: 8.1 GB/s, against 13.5 with a line of padding (one thread copying
/// a [6144, 2048] weight in 256-column panels, Zen 4 EPYC).
const PANEL_PAD: usize = 16;

/// `dst[i * ldd + j] = a[ba][i, :] . rows[j * stride .. j * stride + k]` for i < m, j < n: a
/// product with the transpose of a stored [n, k] matrix (a Linear's weight, `x @ W^T`).
///
/// Why not the crate directly: handed that transposed view, the `gemm` crate packs it one value
/// at a time at a stride of k (scalar loads and stores: 16% of a 512 x 2048 x 6144 product's
/// profile on a Zen 4 EPYC, and at 16-64 rows the product ran at a quarter of its 512-row
/// rate). Here the weight is copied transposed ([`super::transpose`], 8 x 8 blocks in
/// registers), a block of columns at a time into a scratch that stays in cache, and each block
/// is multiplied as a row-major [k, cols] matrix, which the crate packs by whole vectors. Same
/// sums in the same order (the results are bit for bit the crate's on the view). Measured on
/// a Zen 4 EPYC, 2 threads, medians of 10 (each of six weights in turn, so they come from
/// memory): 512 x 2048 x 6144 80.6 -> 65.7 ms, 512 x 6144 x 2048 83.3 -> 69.1 ms,
/// 512 x 1024 x 1024 6.5 -> 5.3 ms, and 64 x 2048 x 6144 36.5 ms (then skinny passes) -> 12.9
/// ms; a Qwen3-1.7B-shaped f32 prefill of 512 tokens 54.8 -> 65.8 tok/s in one process.
///
/// # Safety
/// `dst` holds m rows of `ldd` with n columns from its start; T of `a` is f32.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_transposed<T: FloatElement>(
    dst: *mut f32,
    ldd: usize,
    a: &Operand<T>,
    ba: usize,
    rows: &[f32],
    stride: usize,
    m: usize,
    n: usize,
    k: usize,
    parallel: bool,
) {
    let threads = rayon::current_num_threads();
    let isa = isa::active();
    let block = (TRANSPOSE_BLOCK_BYTES / (4 * k)).next_multiple_of(16).min(n);
    let mut scratch = super::pool::overwritten::<f32>((block + PANEL_PAD) * k);
    for j0 in (0..n).step_by(block) {
        let cols = block.min(n - j0);
        let width = cols + PANEL_PAD;
        let panel = &mut scratch[..width * k];
        let src = &rows[j0 * stride..];
        if parallel {
            // Each thread copies its own rows of the panel (a range of k).
            let per = k.div_ceil(threads * 4).next_multiple_of(8);
            panel.par_chunks_mut(per * width).enumerate().for_each(|(t, part)| {
                super::transpose::transpose(isa, &src[t * per..], stride, cols, part.len() / width, part, width)
            });
        } else {
            super::transpose::transpose(isa, src, stride, cols, k, panel, width);
        }
        let parallelism = if parallel { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        // SAFETY: the panel is a row-major [k, cols] f32 matrix with rows `width` apart; T is
        // f32 (the caller's contract), so both pointers are of the crate's element type; dst's
        // columns j0.. of its m rows are inside it.
        unsafe {
            gemm_raw(dst.add(j0) as *mut T, ldd, a, ba, panel.as_ptr() as *const T, (width, 1), m, cols, k, parallelism)
        };
    }
    super::pool::give(scratch);
}

/// At most this many columns, [`gemm_into`] splits a threaded product by columns itself.
const COLUMN_SPLIT_MAX: usize = 1024;
/// Each thread's block of columns in that split is at least this wide.
const COLUMN_SPLIT_MIN_PART: usize = 128;

/// One `gemm::gemm` call: `dst[i * ldd + j] = a[ba][i, :] . b[:, j]` for i < m, j < n, b given
/// by its first element and (row, column) strides.
///
/// # Safety
/// `dst` holds m rows of `ldd` with n columns from its start; `b` points at a k x n view with
/// those strides inside one live buffer; a's layout lies inside its buffer. T is f32 or f64,
/// which gemm supports.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw<T: FloatElement>(
    dst: *mut T,
    ldd: usize,
    a: &Operand<T>,
    ba: usize,
    b: *const T,
    (b_rs, b_cs): (usize, usize),
    m: usize,
    n: usize,
    k: usize,
    parallelism: gemm::Parallelism,
) {
    let (_, a_rs, a_cs) = a.strides();
    // SAFETY: the caller's contract; gemm reads a and b and writes dst within those bounds.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            ldd as isize,
            false,
            a.data.as_ptr().add(a.base(ba)),
            a_cs as isize,
            a_rs as isize,
            b,
            b_cs as isize,
            b_rs as isize,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `y[n] = sum_k x[k * x_stride] * b[k, n]` for one vector `x`, streaming the matrix once.
/// Two memory orders: b's rows contiguous (`x @ W` with W [K, N] row-major: accumulate scaled
/// rows), or b's columns contiguous (`x @ W^T` with W [N, K], the HF Linear layout: one dot
/// product per output).
#[allow(clippy::too_many_arguments)]
fn matvec<X: FloatElement, W: Copy + Send + Sync>(
    x: &[X],
    x_stride: usize,
    b: &Operand<W>,
    bi: usize,
    k: usize,
    y: &mut [X],
    parallel: bool,
    widen: impl Fn(W) -> X + Sync + Copy,
) {
    let n = y.len();
    let (_, rs, cs) = b.strides();
    let base = b.base(bi);
    let xs: Vec<X> = (0..k).map(|i| x[i * x_stride]).collect();
    let parallel = parallel && n * k >= GEMM_PARALLEL_MIN;
    if rs == 1 || (cs != 1 && rs < cs) {
        // Column n of b is W's row n: contiguous when rs == 1.
        let column = |j: usize| {
            let start = base + j * cs;
            if rs == 1 {
                dot(&xs, &b.data[start..start + k], widen)
            } else {
                (0..k).fold(X::zero(), |acc, i| acc + xs[i] * widen(b.data[start + i * rs]))
            }
        };
        if parallel {
            y.par_iter_mut().enumerate().with_min_len(64).for_each(|(j, v)| *v = column(j));
        } else {
            y.iter_mut().enumerate().for_each(|(j, v)| *v = column(j));
        }
    } else {
        // Rows of b are contiguous: y += x[k] * b[k, :], each thread owning a slice of y.
        let block = |j0: usize, ys: &mut [X]| {
            for (i, &xi) in xs.iter().enumerate() {
                let row = &b.data[base + i * rs + j0 * cs..];
                if cs == 1 {
                    let len = ys.len();
                    for (yv, &w) in ys.iter_mut().zip(&row[..len]) {
                        *yv = *yv + xi * widen(w);
                    }
                } else {
                    for (j, yv) in ys.iter_mut().enumerate() {
                        *yv = *yv + xi * widen(row[j * cs]);
                    }
                }
            }
        };
        if parallel {
            let chunk = n.div_ceil(rayon::current_num_threads() * 4).max(256);
            y.par_chunks_mut(chunk).enumerate().for_each(|(c, ys)| block(c * chunk, ys));
        } else {
            block(0, y);
        }
    }
}

/// A dot product over 16 independent accumulators, so the loop vectorises without reassociating
/// a single sum.
#[inline(always)]
fn dot<X: FloatElement, W: Copy>(x: &[X], w: &[W], widen: impl Fn(W) -> X) -> X {
    let mut acc = [X::zero(); 16];
    let xc = x.chunks_exact(16);
    let wc = w.chunks_exact(16);
    let (xt, wt) = (xc.remainder(), wc.remainder());
    for (xs, ws) in xc.zip(wc) {
        for i in 0..16 {
            acc[i] = acc[i] + xs[i] * widen(ws[i]);
        }
    }
    let mut total = acc.iter().fold(X::zero(), |s, &v| s + v);
    for (&a, &b) in xt.iter().zip(wt) {
        total = total + a * widen(b);
    }
    total
}

/// Mixture-of-experts product: rows grouped by expert, one GEMM per expert that has rows.
pub fn expert_matmul(
    x: &HostData,
    lx: &Layout,
    w: &HostData,
    lw: &Layout,
    ids: &HostData,
    li: &Layout,
) -> Result<HostData> {
    const OP: &str = "expert_matmul";
    let (r, k) = (lx.dims()[0], lx.dims()[1]);
    let (e, n) = (lw.dims()[0], lw.dims()[2]);
    let experts: Vec<usize> = match ids {
        HostData::U32(v) => crate::layout::StridedOffsets::new(li, 0)
            .map(|i| crate::ops::compare::index_value(OP, v[i], e))
            .collect::<Result<_>>()?,
        HostData::I64(v) => crate::layout::StridedOffsets::new(li, 0)
            .map(|i| crate::ops::compare::index_value(OP, v[i], e))
            .collect::<Result<_>>()?,
        other => return Err(Error::dtype(OP, format!("ids must be u32 or i64, got {}", other.dtype()))),
    };
    let xs = super::copy::copy(x, lx)?;
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); e];
    for (row, &ex) in experts.iter().enumerate() {
        rows_of[ex].push(row);
    }
    let mut out = HostData::zeros(xs.dtype(), r * n);
    for (ex, rows) in rows_of.iter().enumerate().filter(|(_, rows)| !rows.is_empty()) {
        // Gather this expert's rows, multiply by its [K, N] weight view, scatter the results.
        let gathered: Vec<usize> = rows.iter().flat_map(|&row| row * k..(row + 1) * k).collect();
        let xe =
            crate::with_host_data!(&xs, v => HostData::from_vec(gathered.iter().map(|&i| v[i]).collect::<Vec<_>>()));
        let le = Layout::contiguous([1, rows.len(), k]);
        let we = Layout::new(
            crate::Shape::from([1, k, n]),
            vec![0, lw.strides()[1], lw.strides()[2]],
            lw.offset() + ex * lw.strides()[0],
        );
        let ye = matmul(&xe, &le, w, &we)?;
        match (&mut out, &ye) {
            (HostData::F32(o), HostData::F32(y)) => scatter_rows(o, y, rows, n),
            (HostData::F64(o), HostData::F64(y)) => scatter_rows(o, y, rows, n),
            _ => return Err(Error::dtype(OP, format!("unsupported dtypes {} and {}", xs.dtype(), w.dtype()))),
        }
    }
    Ok(out)
}

fn scatter_rows<T: Copy>(out: &mut [T], y: &[T], rows: &[usize], n: usize) {
    for (i, &row) in rows.iter().enumerate() {
        out[row * n..(row + 1) * n].copy_from_slice(&y[i * n..(i + 1) * n]);
    }
}

/// The plain triple loop, accumulating in f64: the reference the fast kernels are tested against.
pub fn reference<T: Element>(a: &[T], la: &Layout, b: &[T], lb: &Layout) -> Vec<f64> {
    let (batch, m, k) = (la.dims()[0], la.dims()[1], la.dims()[2]);
    let n = lb.dims()[2];
    let mut out = vec![0.0; batch * m * n];
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for kk in 0..k {
                    acc += a[la.index_of(&[bi, i, kk])].as_f64() * b[lb.index_of(&[bi, kk, j])].as_f64();
                }
                out[(bi * m + i) * n + j] = acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::pool;

    /// The GEMM paths take their outputs from the pool without a fill (`pool::overwritten`), so
    /// whatever a released tensor left there must not show through: the pool is first handed
    /// NaN-filled vectors of the output's size, then every product must equal the plain loop.
    #[test]
    fn gemm_outputs_overwrite_what_the_pool_hands_them() {
        let (m, k, n) = (70, 37, 45);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 11) as f32 - 5.0) / 8.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 13) as f32 - 6.0) / 16.0).collect();
        let la = Layout::contiguous([1, m, k]);
        // The weight stored [n, k], read as its transposed view [k, n] (a Linear's).
        let lb = Layout::new(crate::Shape::from([1, k, n]), [0, 1, k], 0);
        let weights = [
            HostData::F32(w.clone()),
            HostData::BF16(w.iter().map(|&v| half::bf16::from_f32(v)).collect()),
            HostData::F16(w.iter().map(|&v| half::f16::from_f32(v)).collect()),
        ];
        for weight in &weights {
            let want = reference(&x, &la, &weight.to_vec::<f32>(), &lb);
            for _ in 0..3 {
                // Registers the size as one ops ask for, then leaves NaNs in it.
                let mut stale = pool::zeroed::<f32>(m * n);
                stale.fill(f32::NAN);
                pool::give(stale);
                let got = matmul(&HostData::F32(x.clone()), &la, weight, &lb).expect("matmul");
                let got: Vec<f32> = got.to_vec();
                for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                    // bf16 rounds the activations (2^-8 relative each); f32 sums otherwise.
                    let tol = 1e-4 + 2f64.powi(-8) * k as f64;
                    assert!((g as f64 - e).abs() <= tol, "{:?} weights, element {i}: {g} vs {e}", weight.dtype());
                }
            }
        }
    }
}
