//! What an adapter must offer for these kernels to run, checked before a device is opened so an
//! adapter that cannot run them is passed over, or, if it is the only one, refused with an error
//! that names the missing capability and what to do, rather than failing later inside a kernel.
//!
//! No optional wgpu feature is needed: half-precision tensors are stored two to a `u32` and
//! converted in the kernels (`kernels/common.wgsl`), so `shader-f16` is not required. What the
//! kernels do need are compute shaders and a few limits, each the largest any kernel uses
//! (a test in this file reads the WGSL sources to keep these numbers true).

/// The smallest limits the kernels run under. All are at or below WebGPU's defaults, so every
/// Vulkan, Metal and DX12 adapter meets them; GL ES 3.0 and WebGL2 adapters (no compute
/// shaders, no storage buffers) do not.
pub struct Needs {
    /// `rms_norm_rope.wgsl`: x, the norm's weight, cos, sin and the output, and the values and
    /// their destination it copies alongside (a step's keys and values into the KV cache). The
    /// quantized experts' kernel binds 6 (`qmatmul_params.wgsl`'s blocks and scales and
    /// `qexperts.wgsl`'s four).
    pub storage_buffers_per_stage: u32,
    /// `@workgroup_size(256)` and `(16, 16)`.
    pub invocations_per_workgroup: u32,
    pub workgroup_size_x: u32,
    pub workgroup_size_y: u32,
    /// `matmul.wgsl`'s two padded f32 slices, [16][132] and [16][68].
    pub workgroup_storage_bytes: u32,
    /// Large dispatches are spread over two grid dims of at most 65,535 each.
    pub workgroups_per_dimension: u32,
}

pub const NEEDS: Needs = Needs {
    storage_buffers_per_stage: 7,
    invocations_per_workgroup: 256,
    workgroup_size_x: 256,
    workgroup_size_y: 16,
    workgroup_storage_bytes: 12_800,
    workgroups_per_dimension: 65_535,
};

/// Why an adapter with these capabilities cannot run the kernels, or `None` if it can.
pub fn unmet(downlevel: &wgpu::DownlevelCapabilities, limits: &wgpu::Limits) -> Option<String> {
    if !downlevel.flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
        return Some("it has no compute shaders".into());
    }
    let checks = [
        (
            "storage buffers per shader stage",
            limits.max_storage_buffers_per_shader_stage,
            NEEDS.storage_buffers_per_stage,
        ),
        ("invocations per workgroup", limits.max_compute_invocations_per_workgroup, NEEDS.invocations_per_workgroup),
        ("workgroup size x", limits.max_compute_workgroup_size_x, NEEDS.workgroup_size_x),
        ("workgroup size y", limits.max_compute_workgroup_size_y, NEEDS.workgroup_size_y),
        ("workgroup storage bytes", limits.max_compute_workgroup_storage_size, NEEDS.workgroup_storage_bytes),
        ("workgroups per dimension", limits.max_compute_workgroups_per_dimension, NEEDS.workgroups_per_dimension),
    ];
    let short: Vec<String> = checks
        .iter()
        .filter(|(_, has, needs)| has < needs)
        .map(|(name, has, needs)| format!("{name}: {has}, the kernels need {needs}"))
        .collect();
    (!short.is_empty()).then(|| short.join("; "))
}

/// An adapter as the choice sees it.
pub struct Candidate {
    /// "<name> (<backend>)".
    pub label: String,
    pub downlevel: wgpu::DownlevelCapabilities,
    pub limits: wgpu::Limits,
}

/// The first candidate (they come best first) that can run the kernels; when none can, an error
/// that lists each one and why, and says what to do.
pub fn choose(candidates: &[Candidate]) -> Result<usize, String> {
    let mut refused = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        match unmet(&c.downlevel, &c.limits) {
            None => return Ok(i),
            Some(why) => refused.push(format!("{}: {why}", c.label)),
        }
    }
    Err(format!(
        "no GPU adapter can run the kernels ({}): update the GPU driver (Vulkan, Metal or DX12), pick another adapter with LLM_GPU_ADAPTER, or run with --device cpu",
        refused.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> wgpu::DownlevelCapabilities {
        wgpu::DownlevelCapabilities::default()
    }

    #[test]
    fn webgpu_defaults_meet_the_needs() {
        assert_eq!(unmet(&full(), &wgpu::Limits::default()), None);
    }

    #[test]
    fn an_adapter_without_compute_shaders_is_refused_by_name() {
        let gl = wgpu::DownlevelCapabilities {
            flags: wgpu::DownlevelFlags::empty(),
            ..wgpu::DownlevelCapabilities::default()
        };
        let why = unmet(&gl, &wgpu::Limits::downlevel_webgl2_defaults()).unwrap();
        assert!(why.contains("compute shaders"), "{why}");
    }

    #[test]
    fn each_short_limit_is_named_with_what_it_has_and_what_is_needed() {
        let limits = wgpu::Limits {
            max_storage_buffers_per_shader_stage: 4,
            max_compute_workgroup_storage_size: 4096,
            ..wgpu::Limits::default()
        };
        let why = unmet(&full(), &limits).unwrap();
        assert!(why.contains("storage buffers per shader stage: 4, the kernels need 7"), "{why}");
        assert!(why.contains("workgroup storage bytes: 4096, the kernels need 12800"), "{why}");
        assert!(!why.contains("invocations"), "only the short limits are listed: {why}");
    }

    #[test]
    fn the_choice_passes_over_an_adapter_that_cannot_run_the_kernels() {
        let weak = wgpu::Limits { max_storage_buffers_per_shader_stage: 4, ..wgpu::Limits::default() };
        let candidates = [
            Candidate { label: "weak (Gl)".into(), downlevel: full(), limits: weak.clone() },
            Candidate { label: "good (Vulkan)".into(), downlevel: full(), limits: wgpu::Limits::default() },
        ];
        assert_eq!(choose(&candidates), Ok(1));
        let err = choose(&candidates[..1]).unwrap_err();
        assert!(err.contains("weak (Gl): storage buffers per shader stage: 4"), "{err}");
        assert!(err.contains("--device cpu") && err.contains("LLM_GPU_ADAPTER"), "{err}");
        let err = choose(&[]).unwrap_err();
        assert!(err.contains("--device cpu"), "{err}");
    }

    /// The numbers in `NEEDS` are the largest the WGSL sources use, so a new kernel that needs
    /// more fails here rather than on somebody's adapter.
    #[test]
    fn the_needs_cover_every_kernel() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kernels");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
                continue;
            }
            seen += 1;
            let src = std::fs::read_to_string(&path).unwrap();
            let name = path.display();
            let storage = src.matches("var<storage").count() as u32;
            assert!(storage <= NEEDS.storage_buffers_per_stage, "{name}: {storage} storage buffers");
            for size in src.split("@workgroup_size(").skip(1) {
                let dims: Vec<u32> =
                    size.split(')').next().unwrap().split(',').map(|d| d.trim().parse().unwrap()).collect();
                let x = dims[0];
                let y = dims.get(1).copied().unwrap_or(1);
                assert!(x <= NEEDS.workgroup_size_x && y <= NEEDS.workgroup_size_y, "{name}: {dims:?}");
                assert!(x * y <= NEEDS.invocations_per_workgroup, "{name}: {dims:?}");
            }
            let mut bytes = 0;
            for decl in src.split("var<workgroup>").skip(1) {
                // `name: array<f32, 1024>;` or `name: array<vec4<f32>, 256>;` (16 bytes each).
                let element = if decl.split(';').next().unwrap().contains("vec4<") { 16 } else { 4 };
                let len = decl.split(", ").nth(1).unwrap().split('>').next().unwrap().trim();
                bytes += element * len.parse::<u32>().unwrap();
            }
            assert!(bytes <= NEEDS.workgroup_storage_bytes, "{name}: {bytes} bytes of workgroup storage");
        }
        assert!(seen >= 10, "found only {seen} kernels in {}", dir.display());
    }
}
