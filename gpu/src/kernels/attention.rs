//! Launchers of fused attention (with optional attention sinks, gpt-oss). Tolerance against the
//! CPU ~1e-5 relative: the softmax is computed online (Milakov & Gimelshein 2018), so the exps and
//! sums run in another order than the CPU's two-pass softmax, f32 rounding of a few ulps per term.
//!
//! Every shape takes the tiled kernel (`attention_split.wgsl` then `attention_combine.wgsl`):
//! a workgroup serves up to 8 query rows of one KV head (at decode its group of query heads; at
//! prefill neighbouring positions of a head) over a range of keys staged through workgroup
//! memory with coalesced loads, so each key and value is read once for all its rows; a second
//! pass merges the ranges' partial softmaxes. At decode, Tq <= [`DECODE_MAX_TQ`], the keys are
//! cut into up to [`MAX_SPLITS`] ranges (flash-decoding, Dao et al. 2023): B * Hq query rows
//! alone would leave a large GPU idle. At prefill the rows fill the GPU and the keys are split
//! only for short prompts. `LLM_GPU_FLASH_DECODE=0` turns it off: every shape then takes the
//! one-row kernel (`attention.wgsl`: one workgroup per query row walking its visible keys).
//!
//! Either path also reads a paged KV cache in place ([`paged_attention`]): the pools' blocks
//! through the sequence's block table, bound after the kernel's other buffers, so serving many
//! sequences from one pool gathers nothing.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{AttentionSpec, BufferRef, DType, Error, PagedKv, Result, Src};

use super::{groups_2d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};

const BODY: &str = include_str!("attention.wgsl");
const SPLIT: &str = include_str!("attention_split.wgsl");
const COMBINE: &str = include_str!("attention_combine.wgsl");
const PARAMS: &str = include_str!("attention_params.wgsl");

/// The element type of a kernel's keys and values: f32, or a KV cache kept in half precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kv {
    F32,
    F16,
    Bf16,
}

impl Kv {
    fn of(dtype: DType) -> Result<Kv> {
        match dtype {
            DType::F32 => Ok(Kv::F32),
            DType::F16 => Ok(Kv::F16),
            DType::BF16 => Ok(Kv::Bf16),
            other => Err(Error::unsupported_dtype("attention", other)),
        }
    }

    /// The name's suffix.
    fn tag(self) -> &'static str {
        match self {
            Kv::F32 => "",
            Kv::F16 => "/f16",
            Kv::Bf16 => "/bf16",
        }
    }

    /// The bindings of `k` (2) and `v` (3) and their loads, element `i` as f32.
    fn loads(self) -> String {
        let (ty, widen) = match self {
            Kv::F32 => {
                return "@group(0) @binding(2) var<storage, read> k: array<f32>;\n\
                @group(0) @binding(3) var<storage, read> v: array<f32>;\n\
                fn load_k(i: u32) -> f32 { return k[i]; }\n\
                fn load_v(i: u32) -> f32 { return v[i]; }"
                    .to_string();
            }
            Kv::F16 => ("u32", "f16_to_f32"),
            Kv::Bf16 => ("u32", "bf16_to_f32"),
        };
        let load = |t: &str| {
            format!("fn load_{t}(i: u32) -> f32 {{ return {widen}(({t}[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }}")
        };
        format!(
            "@group(0) @binding(2) var<storage, read> k: array<{ty}>;\n@group(0) @binding(3) var<storage, read> v: array<{ty}>;\n{}\n{}",
            load("k"),
            load("v")
        )
    }
}

/// Where a kernel finds key row `j` of batch `bi`, KV head `kvh`: in strided views, or (paged)
/// in block `table[j / page]` of the pools, at row `j % page`. The table is bound at `binding`,
/// after the kernel's other buffers.
fn generated(kv: Kv, paged: bool, binding: u32) -> String {
    let rows = |t: &str| {
        if paged {
            format!(
                "fn {t}_row_start(bi: u32, kvh: u32, j: u32) -> u32 {{ return params.{t}_offset + table[j / params.page] * params.{t}_batch + kvh * params.{t}_head + (j % params.page) * params.{t}_row; }}"
            )
        } else {
            format!(
                "fn {t}_row_start(bi: u32, kvh: u32, j: u32) -> u32 {{ return params.{t}_offset + bi * params.{t}_batch + kvh * params.{t}_head + j * params.{t}_row; }}"
            )
        }
    };
    let table = if paged {
        format!("@group(0) @binding({binding}) var<storage, read> table: array<u32>;\n")
    } else {
        String::new()
    };
    format!("{PARAMS}\n{}\n{}\n{table}{}\n{}", super::unary::MATH, kv.loads(), rows("k"), rows("v"))
}

/// Which of the kernels reading keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pass {
    /// `attention.wgsl`: q, k, v, sinks, out.
    Prefill,
    /// `attention_split.wgsl`, the decode path's first pass: q, k, v, scratch.
    Split,
}

/// A kernel reading keys and values: its pass, their element type, and whether through a paged
/// cache's block table (bound after the other buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Attention {
    pass: Pass,
    kv: Kv,
    paged: bool,
}

impl KernelKey for Attention {
    fn name(&self) -> String {
        let pass = if self.pass == Pass::Split { "/split" } else { "" };
        format!("attention{pass}{}{}", if self.paged { "/paged" } else { "" }, self.kv.tag())
    }

    fn buffers(&self) -> &'static [Access] {
        use Access::{Read, ReadWrite};
        match (self.pass, self.paged) {
            (Pass::Prefill, false) => &[Read, Read, Read, Read, ReadWrite],
            (Pass::Prefill, true) => &[Read, Read, Read, Read, ReadWrite, Read],
            (Pass::Split, false) => &[Read, Read, Read, ReadWrite],
            (Pass::Split, true) => &[Read, Read, Read, ReadWrite, Read],
        }
    }

    fn source(&self) -> String {
        // The table's binding follows the kernel's other buffers.
        let (body, table) = match self.pass {
            Pass::Prefill => (BODY, 6),
            Pass::Split => (SPLIT, 5),
        };
        source(&generated(self.kv, self.paged, table), body)
    }
}

fixed_kernel!(
    /// Decode, the merge of the splits: scratch, sinks, out.
    Combine,
    "attention/combine",
    [Read, Read, ReadWrite],
    source(PARAMS, COMBINE)
);
/// Query rows per head up to which the split-K decode path is taken (decode, a few speculative
/// or multi-token-prediction rows).
pub const DECODE_MAX_TQ: usize = 4;
/// Splits of the keys per (batch, KV head, rows chunk): enough workgroups to fill a large GPU
/// even with few KV heads. Fixed, so the partials' buffer has the same size at every step and
/// the pool serves it (no allocation per token).
pub const MAX_SPLITS: usize = 32;
/// Fewest keys per split (a multiple of the kernel's 64-key blocks): below that, the combine
/// pass would cost more than the split saves.
const MIN_SPLIT_LEN: usize = 128;
/// Workgroups a prefill's tiled attention aims for before it also splits the keys: a few per
/// compute unit of a large GPU (132 SMs on an H100).
const PREFILL_WORKGROUPS: usize = 512;
/// Query rows one split workgroup serves at most (`MAX_ROWS` in the kernel), and the registers of
/// weighted value sums each thread keeps (`MAX_ACC`).
const SPLIT_MAX_ROWS: usize = 8;
const SPLIT_MAX_ACC: usize = 32;
/// Largest head dim the kernel keeps in workgroup memory (MLA's absorbed path needs 576).
const MAX_DIM: usize = 1024;

/// `attention_params.wgsl`'s uniform: shapes, k/v views, mask; then the decode path's cuts
/// ([`Cuts`], zero for the prefill kernel).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    b: u32,
    hq: u32,
    tq: u32,
    d: u32,
    hkv: u32,
    tk: u32,
    dv: u32,
    group: u32,
    k: [u32; 4],
    v: [u32; 4],
    scale: f32,
    softcap: f32,
    causal: u32,
    q_start: u32,
    k_start: u32,
    window: u32,
    chunk: u32,
    has_sinks: u32,
    cuts: Cuts,
}

/// How the split and combine kernels cut query rows and keys.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Cuts {
    rows_total: u32,
    rows_wg: u32,
    chunks: u32,
    splits: u32,
    split_len: u32,
    acc_base: u32,
    dv_t: u32,
    /// Positions per block of a paged cache (0: plain views).
    page: u32,
}

fn flash_decode_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !ONE_ROW.with(|f| f.get()) && *ON.get_or_init(|| std::env::var("LLM_GPU_FLASH_DECODE").as_deref() != Ok("0"))
}

thread_local! {
    static ONE_ROW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes this thread's later attention calls take the one-row kernel (`attention.wgsl`) for
/// every shape, as `LLM_GPU_FLASH_DECODE=0` does for a process, so tests check both kernels.
#[doc(hidden)]
pub fn force_one_row(on: bool) {
    ONE_ROW.with(|f| f.set(on));
}

fn u32_of(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::backend("attention", format!("{v} exceeds the GPU kernels' 32-bit indices")))
}

/// A paged cache's block table on the device, its positions per block and the sequence's length.
pub struct Paging {
    table: Arc<wgpu::Buffer>,
    page: usize,
    len: usize,
}

/// Attention of q [1, Hq, Tq, D] over one sequence's rows of a paged cache (see
/// `Backend::paged_attention`): the kernels read the pools through the block table (uploaded
/// once while it stays the same, `block_tables`), gathering nothing.
pub fn paged_attention(
    b: &GpuBackend,
    q: Src,
    kv: PagedKv,
    sinks: Option<Src>,
    spec: &AttentionSpec,
) -> Result<BufferRef> {
    const OP: &str = "paged_attention";
    let PagedKv { k_pool, v_pool, blocks, len } = kv;
    let page = k_pool.layout.dims()[2];
    if q.layout.dims()[0] != 1 || page == 0 || len > blocks.len() * page {
        return Err(Error::shape(OP, format!("{len} rows of one sequence in {} blocks of {page}", blocks.len())));
    }
    let table = b.block_tables.get(b, blocks)?;
    attention(b, q, k_pool, v_pool, sinks, spec, Some(Paging { table, page, len }))
}

/// Attention over k and v, views of [B, Hkv, Tk, D] caches, or, with `paging`, the pools of a
/// paged cache.
pub fn attention(
    b: &GpuBackend,
    q: Src,
    k: Src,
    v: Src,
    sinks: Option<Src>,
    spec: &AttentionSpec,
    paging: Option<Paging>,
) -> Result<BufferRef> {
    const OP: &str = "attention";
    for t in [&q].into_iter().chain(sinks.as_ref()) {
        if t.dtype != DType::F32 {
            return Err(Error::unsupported_dtype(OP, t.dtype));
        }
    }
    // Keys and values: f32, or a KV cache kept in f16 or bf16.
    let kv = Kv::of(k.dtype)?;
    if v.dtype != k.dtype {
        return Err(Error::dtype(OP, format!("keys in {} and values in {}", k.dtype, v.dtype)));
    }
    let qd = q.layout.dims();
    let (batch, hq, tq, d) = (qd[0], qd[1], qd[2], qd[3]);
    let (hkv, dv) = (k.layout.dims()[1], v.layout.dims()[3]);
    let tk = paging.as_ref().map_or(k.layout.dims()[2], |p| p.len);
    if d > MAX_DIM || dv > MAX_DIM {
        return Err(Error::unsupported(OP, format!("head dims up to {MAX_DIM} on the GPU, got {d} and {dv}")));
    }
    let q_buffer = if q.layout.is_contiguous() && q.layout.offset() == 0 {
        None
    } else {
        Some(super::copy::contiguous(b, OP, q)?)
    };
    let q_arc = match &q_buffer {
        Some(c) => c.buffer.clone(),
        None => b.buffer(OP, &q)?.buffer.clone(),
    };
    let rows = batch * hq * tq;
    let out = b.alloc(OP, rows * dv, DType::F32)?;
    if rows * dv == 0 {
        return Ok(Arc::new(out));
    }
    let (ks, vs) = (k.layout.strides(), v.layout.strides());
    let mask = spec.mask;
    let params = Params {
        b: batch as u32,
        hq: hq as u32,
        tq: tq as u32,
        d: d as u32,
        hkv: hkv as u32,
        tk: tk as u32,
        dv: dv as u32,
        group: (hq / hkv.max(1)) as u32,
        k: [u32_of(k.layout.offset())?, u32_of(ks[0])?, u32_of(ks[1])?, u32_of(ks[2])?],
        v: [u32_of(v.layout.offset())?, u32_of(vs[0])?, u32_of(vs[1])?, u32_of(vs[2])?],
        scale: spec.scale as f32,
        softcap: spec.softcap.unwrap_or(0.0) as f32,
        causal: mask.causal as u32,
        q_start: u32_of(mask.q_start)?,
        k_start: u32_of(mask.k_start)?,
        window: u32_of(mask.window.unwrap_or(0))?,
        chunk: u32_of(mask.chunk.unwrap_or(0))?,
        has_sinks: sinks.is_some() as u32,
        cuts: Cuts { page: u32_of(paging.as_ref().map_or(0, |p| p.page))?, ..Cuts::zeroed() },
    };
    // Sinks come contiguous from the tensor layer; without them q stands in, never read.
    let sinks_buffer = match &sinks {
        Some(s) if s.layout.is_contiguous() && s.layout.offset() == 0 => b.buffer(OP, s)?.buffer.clone(),
        Some(s) => super::copy::contiguous(b, OP, *s)?.buffer.clone(),
        None => q_arc.clone(),
    };
    let (k_buffer, v_buffer) = (&b.buffer(OP, &k)?.buffer, &b.buffer(OP, &v)?.buffer);
    let table = paging.as_ref().map(|p| &p.table);
    if hkv > 0 && hq % hkv == 0 && flash_decode_enabled() {
        let decode = tq <= DECODE_MAX_TQ;
        split_k(b, params, kv, [&q_arc, k_buffer, v_buffer, &sinks_buffer, &out.buffer], table, decode)?;
        return Ok(Arc::new(out));
    }
    let kernel = b.kernel(&Attention { pass: Pass::Prefill, kv, paged: table.is_some() })?;
    let mut buffers = vec![&q_arc, k_buffer, v_buffer, &sinks_buffer, &out.buffer];
    buffers.extend(table);
    b.dispatch(OP, kernel, &params, &buffers, groups_2d(rows))?;
    Ok(Arc::new(out))
}

/// The tiled path: [`MAX_SPLITS`] key ranges at most per (batch, KV head, rows chunk), each a
/// workgroup of `attention_split.wgsl` writing (max, sum, weighted values) per query row into a
/// scratch buffer, then one workgroup per query row of `attention_combine.wgsl` merging them.
/// Buffers: q, k, v, sinks (or a stand-in), out; and a paged cache's block table.
///
/// At `decode` (a few query rows) the keys are cut as finely as [`MAX_SPLITS`] allows, and the
/// scratch is sized for that many whatever the cache's length, so the pool serves it at every
/// step. At prefill the rows give the parallelism: a workgroup serves up to 8 neighbouring query
/// rows of a head, so each key and value row is read once per 8 query rows (the one-row kernel,
/// `attention.wgsl`, read it once per row, uncoalesced); the keys are split only while there are
/// fewer than [`PREFILL_WORKGROUPS`] workgroups.
fn split_k(
    b: &GpuBackend,
    base: Params,
    kv: Kv,
    [q, k, v, sinks, out]: [&Arc<wgpu::Buffer>; 5],
    table: Option<&Arc<wgpu::Buffer>>,
    decode: bool,
) -> Result<()> {
    const OP: &str = "attention";
    let (batch, hq, tq, hkv, tk, dv) =
        (base.b as usize, base.hq as usize, base.tq as usize, base.hkv as usize, base.tk as usize, base.dv as usize);
    let rows_total = (hq / hkv) * tq;
    let dv_t = dv.div_ceil(64).max(1);
    // Registers: rows_wg * dv_t weighted sums per thread (Dv up to 1024: 2 rows; 128: 8).
    let rows_wg = rows_total.min(SPLIT_MAX_ROWS).min(SPLIT_MAX_ACC / dv_t).max(1);
    let chunks = rows_total.div_ceil(rows_wg);
    let most_splits =
        if decode { MAX_SPLITS } else { PREFILL_WORKGROUPS.div_ceil(batch * hkv * chunks).clamp(1, MAX_SPLITS) };
    let split_len = tk.div_ceil(most_splits).next_multiple_of(64).max(MIN_SPLIT_LEN);
    let splits = tk.div_ceil(split_len).max(1);
    // At decode sized for MAX_SPLITS whatever tk is, so a growing cache asks the pool for the
    // same size.
    let n_parts = batch * hkv * if decode { MAX_SPLITS } else { splits } * rows_total;
    let scratch = b.alloc(OP, n_parts * (2 + dv), DType::F32)?;
    let params = Params {
        cuts: Cuts {
            rows_total: u32_of(rows_total)?,
            rows_wg: rows_wg as u32,
            chunks: u32_of(chunks)?,
            splits: splits as u32,
            split_len: u32_of(split_len)?,
            acc_base: u32_of(2 * n_parts)?,
            dv_t: dv_t as u32,
            page: base.cuts.page,
        },
        ..base
    };
    let kernel = b.kernel(&Attention { pass: Pass::Split, kv, paged: table.is_some() })?;
    let mut buffers = vec![q, k, v, &scratch.buffer];
    buffers.extend(table);
    b.dispatch(OP, kernel, &params, &buffers, groups_2d(batch * hkv * chunks * splits))?;
    let kernel = b.kernel(&Combine)?;
    b.dispatch(OP, kernel, &params, &[&scratch.buffer, sinks, out], groups_2d(batch * hq * tq))
}
