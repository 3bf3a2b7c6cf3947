//! Launchers of matmul (tiled, `matmul.wgsl`, with a separate matrix-vector kernel when M = 1,
//! `matvec.wgsl`); in `expert`, of the mixture-of-experts matmul, which reuses their readers
//! and the matrix-vector partial sums and entry points; in `glu`, of `matmul_glu`, the
//! matrix-vector kernel over a gated feed-forward's gate and up weights at once; and in `each`,
//! of `matmul_each`, the matrix-vector kernel over up to three weights, their products side by
//! side. The weight operand may be f32, bf16 or f16 (read packed and widened in the kernel,
//! accumulated in f32), so half-precision weights halve memory traffic on any adapter. Tolerance
//! against the CPU: relative ~1e-6 * sqrt(K) (f32 sums in another order).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Error, Layout, Result, Shape, Src};

use super::{groups_2d, source};
use crate::backend::GpuBackend;
use crate::pipelines::{Access, KernelKey};
use crate::recorder::Binding;
use crate::split::Rows;

mod each;
mod expert;
mod glu;

pub use each::matmul_each;
pub use expert::{ExpertPath, expert_matmul, expert_path, force_expert_path};
pub(crate) use expert::{TILE_M as EXPERT_TILE_M, plan as expert_plan};
pub use glu::matmul_glu;

const TILED: &str = include_str!("matmul.wgsl");
/// The weights' side of a tiled product's slice, shared with the experts' (`matmul/expert.rs`).
const TILE_B: &str = include_str!("tile_b.wgsl");
const MATVEC: &str = include_str!("matvec.wgsl");
/// The matrix-vector kernels' partial sums over one or two matrices (`matvec.wgsl`,
/// `expert_matvec.wgsl`, `matvec_each.wgsl`).
const MATVEC_ROWS: &str = include_str!("matvec_rows.wgsl");
const MATVEC_TREE: &str = include_str!("matvec_tree.wgsl");
const MATVEC_SUBGROUP: &str = include_str!("matvec_subgroup.wgsl");
/// What `matvec_rows.wgsl` needs of a kernel over one matrix (a product, `MATS = 1`).
const ONE_MATRIX: &str = "const MATS: u32 = 1u;
fn load_w(m: u32, i: u32) -> f32 { return load_b(i); }
fn load_w8(m: u32, i: u32) -> Chunk { return load_b8(i); }
fn combine(sums: array<f32, MATS>) -> f32 { return sums[0]; }";
/// Weight rows a workgroup of the matrix-vector kernel reads (`SUMS` in `matvec_rows.wgsl`), and
/// its threads (`WG`).
const MATVEC_SUMS: usize = 4;
const MATVEC_WG: usize = 128;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TiledParams {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a: [u32; 4],
    b: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatvecParams {
    n: u32,
    k: u32,
    batch: u32,
    pad0: u32,
    a_offset: u32,
    a_batch: u32,
    a_col: u32,
    /// The second matrix's offset (`matmul_glu`'s up weights), 0 for a product.
    c_offset: u32,
    b: [u32; 4],
}

/// The weight operand's element type: f32, or half precision read packed two to a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Weight {
    F32,
    Bf16,
    F16,
}

impl Weight {
    fn of(dtype: DType) -> Result<Weight> {
        match dtype {
            DType::F32 => Ok(Weight::F32),
            DType::BF16 => Ok(Weight::Bf16),
            DType::F16 => Ok(Weight::F16),
            other => Err(Error::dtype("matmul", format!("weights of dtype {other} are not supported on the GPU"))),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Weight::F32 => "f32",
            Weight::Bf16 => "bf16",
            Weight::F16 => "f16",
        }
    }

    /// WGSL's `W` and `load_b`, one element at a time.
    fn reader(self) -> String {
        let word = if self == Weight::F32 { "f32" } else { "u32" };
        format!("alias W = {word};\n{}", self.scalar_load("b"))
    }

    /// WGSL's `load_<w>(i)`: element i of the weights bound as `w` (an array of `W` as
    /// [`Weight::reader`] has it), as f32.
    fn scalar_load(self, w: &str) -> String {
        let unpack = match self {
            Weight::F32 => return format!("fn load_{w}(i: u32) -> f32 {{ return {w}[i]; }}"),
            Weight::Bf16 => "bf16_to_f32",
            Weight::F16 => "f16_to_f32",
        };
        format!("fn load_{w}(i: u32) -> f32 {{ return {unpack}(({w}[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }}")
    }
}

/// The tiled product for one weight type, contiguity of each operand and load width
/// (`matmul.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tiled {
    weight: Weight,
    a_k_contiguous: bool,
    b_n_contiguous: bool,
    a_vec: bool,
    b_vec: bool,
}

impl KernelKey for Tiled {
    fn name(&self) -> String {
        let Tiled { weight, a_k_contiguous, b_n_contiguous, a_vec, b_vec } = *self;
        format!("matmul/{}/{a_k_contiguous}/{b_n_contiguous}/{a_vec}/{b_vec}", weight.tag())
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::Read, Access::ReadWrite]
    }

    fn source(&self) -> String {
        let Tiled { weight, a_k_contiguous, b_n_contiguous, a_vec, b_vec } = *self;
        let readers = tiled_readers(weight, a_vec, b_vec);
        source(
            &format!(
                "{readers}\nconst A_K_CONTIGUOUS: bool = {a_k_contiguous};\nconst B_N_CONTIGUOUS: bool = {b_n_contiguous};\nconst A_VEC: bool = {a_vec};\nconst B_VEC: bool = {b_vec};"
            ),
            &format!("{TILE_B}\n{TILED}"),
        )
    }
}

/// How the matrix-vector kernel sums a row's partial products across its threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Reduction {
    /// Through workgroup memory (`matvec_tree.wgsl`), on every adapter.
    Tree,
    /// With subgroup operations (`matvec_subgroup.wgsl`), where the adapter has them.
    Subgroup,
}

/// The matrix-vector product (`matvec.wgsl`) for one weight type and weight layout, load
/// width, reduction, and whether f16 weights are read as WGSL `f16` (SHADER_F16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Matvec {
    weight: Weight,
    k_contiguous: bool,
    vec: bool,
    reduction: Reduction,
    shader_f16: bool,
}

impl Matvec {
    /// The kernel's name under `family` (`matvec`, `expert_matvec`), with its variant.
    pub(crate) fn name_in(&self, family: &str) -> String {
        let Matvec { weight, k_contiguous, vec, reduction, shader_f16 } = *self;
        format!(
            "{family}/{}/{k_contiguous}/{}/{}{}",
            weight.tag(),
            if vec { "vec4" } else { "scalar" },
            if reduction == Reduction::Subgroup { "subgroup" } else { "tree" },
            if shader_f16 { "/shader-f16" } else { "" }
        )
    }

    /// The source of `body` (`matvec.wgsl` or a kernel built on `matvec_rows.wgsl` the same
    /// way) over one weight matrix, bound as `b`, with this variant's readers, flags and entry
    /// point.
    pub(crate) fn source_of(&self, body: &str) -> String {
        self.source_with(body, ONE_MATRIX)
    }

    /// [`Matvec::source_of`] with `matrices` in place of one matrix: what `matvec_rows.wgsl`
    /// needs (`MATS`, `load_w`, `load_w8`, `combine`) and the bindings and loads of the weights
    /// past `b`.
    fn source_with(&self, body: &str, matrices: &str) -> String {
        let Matvec { weight, k_contiguous, vec, reduction, shader_f16 } = *self;
        let reader = matvec_reader(weight, vec, shader_f16);
        let entry = if reduction == Reduction::Subgroup { MATVEC_SUBGROUP } else { MATVEC_TREE };
        let kernel = source(
            &format!("{reader}\n{matrices}\nconst VEC: bool = {vec};\nconst B_K_CONTIGUOUS: bool = {k_contiguous};"),
            &format!("{MATVEC_ROWS}\n{body}\n{entry}"),
        );
        if shader_f16 { format!("enable f16;\n{kernel}") } else { kernel }
    }
}

impl KernelKey for Matvec {
    fn name(&self) -> String {
        self.name_in("matvec")
    }

    fn buffers(&self) -> &'static [Access] {
        &[Access::Read, Access::Read, Access::ReadWrite]
    }

    fn source(&self) -> String {
        self.source_of(MATVEC)
    }
}

fn u32s(op: &str, values: &[usize]) -> Result<Vec<u32>> {
    values
        .iter()
        .map(|&v| {
            u32::try_from(v).map_err(|_| Error::backend(op, format!("{v} exceeds the GPU kernels' 32-bit indices")))
        })
        .collect()
}

/// The block of out one workgroup of `matmul.wgsl` computes.
const TILE_M: usize = 128;
const TILE_N: usize = 64;

/// The tiled kernel's bindings and loads (see `matmul.wgsl`): an operand whose quads along its
/// contiguous dim are aligned is bound as vec4 (f32) or vec2<u32> (four packed halves), so a
/// quad is one load; otherwise as scalars, and a quad is four loads.
fn tiled_readers(weight: Weight, a_vec: bool, b_vec: bool) -> String {
    let a = if a_vec {
        "alias A = vec4<f32>;
fn load_a(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn load_a4(i: u32) -> vec4<f32> { return a[i >> 2u]; }"
    } else {
        "alias A = f32;
fn load_a(i: u32) -> f32 { return a[i]; }
fn load_a4(i: u32) -> vec4<f32> { return vec4<f32>(a[i], a[i + 1u], a[i + 2u], a[i + 3u]); }"
    };
    let b = match (weight, b_vec) {
        (Weight::F32, true) => "alias W = vec4<f32>;
fn load_b(i: u32) -> f32 { return b[i >> 2u][i & 3u]; }
fn load_b4(i: u32) -> vec4<f32> { return b[i >> 2u]; }"
            .to_string(),
        (Weight::Bf16, true) => "alias W = vec2<u32>;
fn load_b(i: u32) -> f32 { return bf16_to_f32((b[i >> 2u][(i >> 1u) & 1u] >> ((i & 1u) * 16u)) & 0xffffu); }
fn bf16_pair(w: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }
fn load_b4(i: u32) -> vec4<f32> { let q = b[i >> 2u]; return vec4<f32>(bf16_pair(q.x), bf16_pair(q.y)); }"
            .to_string(),
        (Weight::F16, true) => "alias W = vec2<u32>;
fn load_b(i: u32) -> f32 { return f16_to_f32((b[i >> 2u][(i >> 1u) & 1u] >> ((i & 1u) * 16u)) & 0xffffu); }
fn load_b4(i: u32) -> vec4<f32> { let q = b[i >> 2u]; return vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y)); }"
            .to_string(),
        _ => format!(
            "{}
fn load_b4(i: u32) -> vec4<f32> {{ return vec4<f32>(load_b(i), load_b(i + 1u), load_b(i + 2u), load_b(i + 3u)); }}",
            weight.reader()
        ),
    };
    format!("{a}\n{b}")
}

/// The matrix-vector product's bindings and loads (see `matvec.wgsl`): with `vec`, x and the
/// weights are bound as arrays of vec4 so that 8 consecutive elements arrive in one or two
/// 16-byte loads; otherwise as scalars. `f16` (the device has SHADER_F16) reads f16 weights as
/// `mat2x4<f16>` rather than unpacking words; the kernel must then start with `enable f16;`.
/// The loads are those of binding `b`; [`matvec_loads`] gives them for another.
fn matvec_reader(weight: Weight, vec: bool, f16: bool) -> String {
    let a = if vec {
        "alias A = vec4<f32>;
fn load_a(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn load_a8(i: u32) -> Chunk { let j = i >> 2u; return Chunk(a[j], a[j + 1u]); }"
    } else {
        "alias A = f32;
fn load_a(i: u32) -> f32 { return a[i]; }
fn load_a8(i: u32) -> Chunk { return Chunk(vec4<f32>(a[i], a[i + 1u], a[i + 2u], a[i + 3u]), vec4<f32>(a[i + 4u], a[i + 5u], a[i + 6u], a[i + 7u])); }"
    };
    // bf16 is the top half of an f32: a word's low element shifted up, its high one masked.
    let w = match (weight, vec) {
        (Weight::F32, true) => "alias W = vec4<f32>;",
        (Weight::Bf16, true) => {
            "alias W = vec4<u32>;
fn bf16_pair(w: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }"
        }
        // With SHADER_F16 the weights are read as f16 vectors, widened by the load itself.
        (Weight::F16, true) if f16 => "alias W = mat2x4<f16>;",
        (Weight::F16, true) => "alias W = vec4<u32>;",
        (Weight::F32, false) => "alias W = f32;",
        (_, false) => "alias W = u32;",
    };
    format!("{a}\n{w}\n{}", matvec_loads(weight, vec, f16, "b"))
}

/// `load_<w>(i)` and `load_<w>8(i)` (element i, elements i..i+8, as f32) of the weights bound as
/// `w`, an array of [`matvec_reader`]'s `W`.
fn matvec_loads(weight: Weight, vec: bool, f16: bool, w: &str) -> String {
    let (unpack, pair) = match (weight, vec) {
        (Weight::F32, true) => {
            return format!(
                "fn load_{w}(i: u32) -> f32 {{ return {w}[i >> 2u][i & 3u]; }}
fn load_{w}8(i: u32) -> Chunk {{ let j = i >> 2u; return Chunk({w}[j], {w}[j + 1u]); }}"
            );
        }
        (Weight::F16, true) if f16 => {
            return format!(
                "fn load_{w}(i: u32) -> f32 {{ return f32({w}[i >> 3u][(i >> 2u) & 1u][i & 3u]); }}
fn load_{w}8(i: u32) -> Chunk {{ let q = {w}[i >> 3u]; return Chunk(vec4<f32>(q[0]), vec4<f32>(q[1])); }}"
            );
        }
        (Weight::Bf16, true) => ("bf16_to_f32", "bf16_pair"),
        (Weight::F16, true) => ("f16_to_f32", "unpack2x16float"),
        (_, false) => {
            return format!(
                "{}
fn load_{w}8(i: u32) -> Chunk {{ return Chunk(vec4<f32>(load_{w}(i), load_{w}(i + 1u), load_{w}(i + 2u), load_{w}(i + 3u)), vec4<f32>(load_{w}(i + 4u), load_{w}(i + 5u), load_{w}(i + 6u), load_{w}(i + 7u))); }}",
                weight.scalar_load(w)
            );
        }
    };
    // Eight packed halves a vec4<u32>.
    format!(
        "fn load_{w}(i: u32) -> f32 {{ let h = i >> 1u; return {unpack}(({w}[h >> 2u][h & 3u] >> ((i & 1u) * 16u)) & 0xffffu); }}
fn load_{w}8(i: u32) -> Chunk {{ let q = {w}[i >> 3u]; return Chunk(vec4<f32>({pair}(q.x), {pair}(q.y)), vec4<f32>({pair}(q.z), {pair}(q.w))); }}"
    )
}

impl Matvec {
    /// The variant for weights read along K (`k_contiguous`) or not, `vec` wide, on `b`'s
    /// adapter: subgroup sums where it has subgroups of at least 4 threads (unless switched off,
    /// `features::force_subgroups`), and f16 weights read as f16 where it has SHADER_F16 (unless
    /// `features::force_shader_f16`).
    fn on(b: &GpuBackend, weight: Weight, k_contiguous: bool, vec: bool) -> Matvec {
        let features = &b.ctx.features;
        let subgroups = k_contiguous && features.use_subgroups() && b.ctx.info.subgroup_min_size >= 4;
        Matvec {
            weight,
            k_contiguous,
            vec,
            reduction: if subgroups { Reduction::Subgroup } else { Reduction::Tree },
            shader_f16: vec && weight == Weight::F16 && features.use_shader_f16(),
        }
    }

    /// The grid over `n` outputs of `mats` matrices for each of `batch` rows (the grid's z):
    /// SUMS / mats outputs a workgroup along K (`matvec_rows.wgsl`), or an output a thread.
    pub(crate) fn groups(&self, mats: usize, n: usize, batch: usize) -> [u32; 3] {
        let per_group = if self.k_contiguous { MATVEC_SUMS / mats } else { MATVEC_WG };
        let mut groups = groups_2d(n.div_ceil(per_group));
        groups[2] = batch as u32;
        groups
    }
}

/// The matrix-vector kernel's variant for `params` (see `matvec.wgsl`): vec4 loads where x's and
/// every weight matrix's rows start 16-byte aligned and the `inputs` (x's and the weights'
/// bindings) hold whole vectors, on `b`'s adapter as [`Matvec::on`] chooses.
fn matvec_variant(b: &GpuBackend, weight: Weight, params: &MatvecParams, inputs: &[&Binding]) -> Matvec {
    let k_contiguous = params.b[2] == 1 && !(params.b[3] == 1 && params.n > 1 && params.k == 1);
    let batched = params.batch > 1;
    let x_starts = [params.a_offset, if batched { params.a_batch } else { 0 }];
    let w_starts = [params.b[0], params.c_offset, params.b[3], if batched { params.b[1] } else { 0 }];
    let vec = k_contiguous && params.a_col == 1 && vec_aligned(weight, &x_starts, &w_starts, inputs.iter().copied());
    Matvec::on(b, weight, k_contiguous, vec)
}

/// Whether x's rows and the weights' rows, read along K, all start on 16 bytes, so the
/// matrix-vector kernel may load them 8 elements at a time: `x_starts` (f32 offsets and strides
/// between rows) and `w_starts` (weight offsets and strides in their elements) are multiples of
/// 16 bytes, and the `inputs`, bound whole as arrays of 16-byte vectors, have sizes that are too
/// (the pool's always do) for their last elements to be reachable.
fn vec_aligned<'a>(
    weight: Weight,
    x_starts: &[u32],
    w_starts: &[u32],
    inputs: impl IntoIterator<Item = &'a Binding>,
) -> bool {
    let per16 = if weight == Weight::F32 { 4 } else { 8 };
    x_starts.iter().all(|s| s.is_multiple_of(4))
        && w_starts.iter().all(|s| s.is_multiple_of(per16))
        && inputs.into_iter().all(|b| b.size().is_multiple_of(16))
}

/// Records the matrix-vector product (M = 1) described by `params` (see `matvec.wgsl`) into
/// `buffers` (x, the weights, out), on the variant [`matvec_variant`] picks.
fn matvec(b: &GpuBackend, weight: Weight, params: &MatvecParams, buffers: Vec<Binding>) -> Result<()> {
    let key = matvec_variant(b, weight, params, &[&buffers[0], &buffers[1]]);
    let groups = key.groups(1, params.n as usize, params.batch as usize);
    b.dispatch_bound("matmul", b.kernel(&key)?, params, buffers, groups)
}

/// Whether `product` multiplies M rows of activations by the matrix-vector kernel (one row:
/// batch-1 decoding) rather than the tiled one. `matmul_glu` takes the rows it does.
fn takes_matvec(m: usize) -> bool {
    m == 1
}

/// The weight operand of one product: its view's offset and [batch, K, N] strides, its N
/// columns, and how it is bound (whole, or one window of a weight over the binding limit).
struct WeightView {
    offset: usize,
    strides: [usize; 3],
    n: usize,
    binding: Binding,
}

pub fn matmul(b: &GpuBackend, lhs: Src, rhs: Src) -> Result<BufferRef> {
    const OP: &str = "matmul";
    if lhs.dtype != DType::F32 {
        return Err(Error::dtype(OP, format!("activations must be f32 on the GPU, got {}", lhs.dtype)));
    }
    let weight = Weight::of(rhs.dtype)?;
    let (ld, rd) = (lhs.layout.dims(), rhs.layout.dims());
    let (batch, m, n) = (ld[0], ld[1], rd[2]);
    if batch > 65_535 {
        return Err(Error::backend(OP, format!("a batch of {batch} matrices exceeds the GPU grid (65535)")));
    }
    if b.is_split(&b.buffer(OP, &rhs)?.buffer) {
        return split_weight(b, weight, lhs, rhs);
    }
    let out = b.alloc(OP, batch * m * n, DType::F32)?;
    if batch * m * n == 0 {
        return Ok(Arc::new(out));
    }
    let rs = rhs.layout.strides();
    let w = WeightView {
        offset: rhs.layout.offset(),
        strides: [rs[0], rs[1], rs[2]],
        n,
        binding: Binding::whole(&b.buffer(OP, &rhs)?.buffer),
    };
    product(b, weight, &lhs, w, Binding::whole(&out.buffer))?;
    Ok(Arc::new(out))
}

/// `x @ W^T` with W over the binding limit (an untied LM head): W's rows, the output's
/// columns, are cut into windows (`split`); each window's product goes into an output of its
/// own, then into its columns of the result. Only the weight may be split, and only along its
/// rows (N, each row's K elements within one window); the activations and the result must fit
/// one binding each.
fn split_weight(b: &GpuBackend, weight: Weight, lhs: Src, rhs: Src) -> Result<BufferRef> {
    const OP: &str = "matmul";
    let (batch, m, k, n) = (lhs.layout.dims()[0], lhs.layout.dims()[1], lhs.layout.dims()[2], rhs.layout.dims()[2]);
    let rs = rhs.layout.strides();
    let span = if k == 0 { 0 } else { (k - 1) * rs[1] + 1 };
    if (batch > 1 && rs[0] != 0) || (n > 1 && rs[2] < span) {
        return Err(Error::backend(
            OP,
            format!(
                "a weight over this adapter's storage binding limit of {} bytes is multiplied only as one [N, K] matrix split by rows (x @ W^T); got a {:?}",
                b.binding_limit(),
                rhs.layout
            ),
        ));
    }
    let out = b.alloc(OP, batch * m * n, DType::F32)?;
    if batch * m * n == 0 {
        return Ok(Arc::new(out));
    }
    let rows =
        Rows { offset: rhs.layout.offset(), count: n, stride: rs[2], span, elem_bytes: rhs.dtype.size_in_bytes() };
    let whole = Layout::contiguous(Shape::new(vec![batch, m, n]));
    for window in b.row_windows(OP, &rhs, rows)? {
        let cols = window.rows.len();
        let part = b.alloc(OP, batch * m * cols, DType::F32)?;
        let w = WeightView { offset: window.offset, strides: [0, rs[1], rs[2]], n: cols, binding: window.binding };
        product(b, weight, &lhs, w, Binding::whole(&part.buffer))?;
        let part_layout = Layout::contiguous(Shape::new(vec![batch, m, cols]));
        let part_src = Src { buffer: &part, layout: &part_layout, dtype: DType::F32 };
        super::copy::copy_view(b, OP, part_src, &out, &whole.narrow(2, window.rows.start, cols)?)?;
    }
    Ok(Arc::new(out))
}

/// Records `lhs` [batch, M, K] times the weight `w` [batch, K, N] into `out` [batch, M, N]:
/// the matrix-vector kernel when M = 1, the tiled one otherwise.
fn product(b: &GpuBackend, weight: Weight, lhs: &Src, w: WeightView, out: Binding) -> Result<()> {
    const OP: &str = "matmul";
    let (ld, ls) = (lhs.layout.dims(), lhs.layout.strides());
    let (batch, m, k, n) = (ld[0], ld[1], ld[2], w.n);
    let rs = w.strides;
    let a_binding = Binding::whole(&b.buffer(OP, lhs)?.buffer);
    let bv = u32s(OP, &[w.offset, rs[0], rs[1], rs[2]])?;
    if takes_matvec(m) {
        let av = u32s(OP, &[lhs.layout.offset(), ls[0], ls[2]])?;
        let params = MatvecParams {
            n: n as u32,
            k: k as u32,
            batch: batch as u32,
            pad0: 0,
            a_offset: av[0],
            a_batch: av[1],
            a_col: av[2],
            c_offset: 0,
            b: [bv[0], bv[1], bv[2], bv[3]],
        };
        matvec(b, weight, &params, vec![a_binding, w.binding, out])
    } else {
        let (a_k, b_n) = (ls[2] == 1, rs[2] == 1);
        // Quads along the contiguous dim start on a multiple of 4 elements when every other
        // stride and the offset are multiples of 4 (and the contiguous dim's stride is 1).
        // Bound as arrays of vectors, a binding's size must be a multiple of one (the pool's
        // buffers and `split`'s windows always are).
        let aligned = |offset: usize, s: &[usize], contiguous: usize, binding: &Binding| {
            s[contiguous] == 1
                && offset.is_multiple_of(4)
                && s.iter().enumerate().all(|(d, &x)| d == contiguous || x.is_multiple_of(4))
                && binding.size().is_multiple_of(16)
        };
        let a_vec = aligned(lhs.layout.offset(), ls, if a_k { 2 } else { 1 }, &a_binding);
        let b_vec = aligned(w.offset, &rs, if b_n { 2 } else { 1 }, &w.binding);
        let kernel = b.kernel(&Tiled { weight, a_k_contiguous: a_k, b_n_contiguous: b_n, a_vec, b_vec })?;
        let av = u32s(OP, &[lhs.layout.offset(), ls[0], ls[1], ls[2]])?;
        let params = TiledParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            batch: batch as u32,
            a: [av[0], av[1], av[2], av[3]],
            b: [bv[0], bv[1], bv[2], bv[3]],
        };
        let groups = [n.div_ceil(TILE_N) as u32, m.div_ceil(TILE_M) as u32, batch as u32];
        if n.div_ceil(TILE_N) > 65_535 || m.div_ceil(TILE_M) > 65_535 {
            return Err(Error::backend(OP, format!("a {m}x{n} output exceeds the GPU grid")));
        }
        b.dispatch_bound(OP, kernel, &params, vec![a_binding, w.binding, out], groups)
    }
}
