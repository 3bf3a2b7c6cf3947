//! GPU backend: the wgpu runtime and WGSL kernels. Built by the GPU issue; empty until then.
