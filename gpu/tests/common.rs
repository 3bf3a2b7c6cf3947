#![allow(dead_code)] // each test file uses a different part

//! Helpers shared by the GPU test files: the device (skipped when absent, failing under CI),
//! and CPU-vs-GPU comparison.

use tensor::testing::{assert_close, randn};
use tensor::{Device, Result, Tensor};

/// The GPU under test. The CPU side of every comparison multiplies f32 activations exactly, as
/// the GPU does: the `vdpbf16ps` kernels, which round activations to bf16 by design, are switched
/// off for the whole test process here (every test asks for the device first, so none runs with
/// them on whatever the order the tests run in).
pub fn gpu() -> Option<Device> {
    tensor::cpu::isa::force_bf16_gemm(Some(false));
    gpu::test_device()
}

/// The storage binding limit the split tests lower the adapter's to: 1 MiB, so tables of a few
/// MiB take the paths an 8B model's take on a real adapter.
pub const LOW_LIMIT: usize = 1 << 20;

/// [`gpu`] with the binding limit lowered to [`LOW_LIMIT`] for this whole process: every test of
/// such a file gets its device here first (`gpu::test_device_with_binding_limit`).
pub fn gpu_with_low_limit() -> Option<Device> {
    tensor::cpu::isa::force_bf16_gemm(Some(false));
    gpu::test_device_with_binding_limit((LOW_LIMIT >> 20) as u64)
}

pub fn cpu() -> Device {
    Device::cpu()
}

/// Runs `f` on the CPU tensors and on their GPU copies, and compares within `atol + rtol |cpu|`.
pub fn same_on_both(
    gpu: &Device,
    inputs: &[Tensor],
    atol: f64,
    rtol: f64,
    what: &str,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let on_cpu = f(inputs)?;
    let moved = inputs.iter().map(|t| t.to(gpu)).collect::<Result<Vec<_>>>()?;
    let on_gpu = f(&moved)?;
    assert_eq!(on_gpu.device(), gpu, "{what}: result left the GPU");
    assert_eq!(on_gpu.dtype(), on_cpu.dtype(), "{what}: dtype");
    assert_close(&on_gpu.to(&cpu())?, &on_cpu, atol, rtol).map_err(|e| tensor::Error::shape(what, e.to_string()))
}

/// `f` on the GPU, read back, with the dispatches it took (a contiguous result is read back in
/// place, with none of its own).
pub fn counted(f: impl FnOnce() -> Result<Tensor>) -> Result<(Tensor, u64)> {
    let before = gpu::counters();
    let y = f()?.to(&cpu())?;
    Ok((y, gpu::counters().delta(&before).dispatches))
}

/// Runs `run` with the matrix-vector kernels' fallbacks forced (sums by the workgroup-memory
/// tree, f16 weights unpacked from words), then as the adapter offers, and checks that the
/// kernels named `family/..` ran in every variant: both load widths with the tree, the subgroup
/// sums where the adapter has subgroups, f16 weights read both ways where it has SHADER_F16 (a
/// note where it lacks either). Forcing is process-wide: a file calling this holds one test.
pub fn on_each_matvec_path(family: &str, run: impl Fn() -> Result<()>) -> Result<()> {
    let backend = gpu::backend()?;
    gpu::features::force_subgroups(Some(false));
    gpu::features::force_shader_f16(Some(false));
    run()?;
    gpu::features::force_subgroups(None);
    gpu::features::force_shader_f16(None);
    run()?;
    let keys = backend.pipelines.names();
    let has = |part: &str, end: &str| {
        keys.iter().any(|k| k.starts_with(&format!("{family}/")) && k.contains(part) && k.ends_with(end))
    };
    assert!(has("/vec4/tree", "") && has("/scalar/tree", ""), "both load widths ran: {keys:?}");
    let info = &backend.context().info;
    if backend.context().features.subgroups && info.subgroup_min_size >= 4 {
        assert!(has("/vec4/subgroup", "") && has("/scalar/subgroup", ""), "the subgroup reduction ran: {keys:?}");
    } else {
        println!("note: this adapter has no subgroups; only the tree reduction was exercised");
    }
    if backend.context().features.shader_f16 {
        let both = has("/f16/true/vec4/tree", "/tree") && has("/f16/true/vec4/", "/shader-f16");
        assert!(both, "f16 weights read both ways: {keys:?}");
    } else {
        println!("note: this adapter has no SHADER_F16; f16 weights were read as packed words only");
    }
    Ok(())
}

/// The same values through different layouts: contiguous, transposed storage (permuted
/// strides), and a narrowed view at a non-zero offset.
pub fn views(t: &Tensor) -> Result<Vec<(&'static str, Tensor)>> {
    let mut out = vec![("contiguous", t.clone()), ("permuted", tensor::testing::non_contiguous(t)?)];
    if t.rank() >= 1 && t.dims()[0] > 0 {
        let padded = Tensor::cat(&[t, t], 0usize)?;
        out.push(("offset", padded.narrow(0usize, t.dims()[0], t.dims()[0])?));
    }
    Ok(out)
}

/// How an [E, K, N] experts weight view lies in its storage (`expert_matmul.rs`, `split_experts.rs`).
#[derive(Clone, Copy, Debug)]
pub enum Stored {
    /// The transpose of a contiguous [E, N, K] (K stride 1), as the models hold their experts.
    KContiguous,
    /// A contiguous [E, K, N] (N stride 1), as the backward pass multiplies.
    NContiguous,
    /// Experts 1.. of an [E + 1, N, K] stack: an offset of whole rows.
    AlignedOffset,
    /// Columns 2.. of an [E + 1, N, K + 3] stack: an odd offset and row stride.
    OddOffset,
}

impl Stored {
    pub const ALL: [Stored; 4] = [Stored::KContiguous, Stored::NContiguous, Stored::AlignedOffset, Stored::OddOffset];

    /// The stored tensor, on the CPU.
    pub fn storage(self, experts: usize, k: usize, n: usize, seed: u64) -> Result<Tensor> {
        let dims = match self {
            Stored::KContiguous => [experts, n, k],
            Stored::NContiguous => [experts, k, n],
            Stored::AlignedOffset => [experts + 1, n, k],
            Stored::OddOffset => [experts + 1, n, k + 3],
        };
        randn(dims, seed, &cpu())
    }

    /// The [E, K, N] view of `storage`.
    pub fn view(self, storage: &Tensor, experts: usize, k: usize) -> Result<Tensor> {
        match self {
            Stored::KContiguous => storage.transpose(1, 2),
            Stored::NContiguous => Ok(storage.clone()),
            Stored::AlignedOffset => storage.narrow(0usize, 1, experts)?.transpose(1, 2),
            Stored::OddOffset => storage.narrow(0usize, 1, experts)?.narrow(2usize, 2, k)?.transpose(1, 2),
        }
    }
}
