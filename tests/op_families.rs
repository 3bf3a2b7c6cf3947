//! One name per op family across the crates: every family of `tensor/src/ops` has its CPU
//! kernels in `tensor/src/cpu/<family>.rs`, its GPU launcher in `gpu/src/kernels/<family>.rs`
//! and its derivative in `autograd/src/rules/<family>.rs`. Any other file in those folders is a
//! shared helper, listed here with what it holds, so a new family cannot hide under another name.

use std::collections::BTreeSet;
use std::path::Path;

/// The `.rs` file stems of a folder of the workspace.
fn stems(folder: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            (path.extension()? == "rs").then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .filter(|stem| stem != "mod")
        .collect()
}

/// What each folder may hold besides the families.
const HELPERS: [(&str, &[&str]); 3] = [
    (
        "tensor/src/cpu",
        &[
            "aligned",         // cache-line-aligned buffers for the GEMMs' packed operands
            "attention_split", // attention's decoding step split over its keys across threads
            "bf16_panels",     // bf16 weights packed at load into the bf16 GEMMs' panels
            "cache_rows",      // attention's decoding kernels over a KV cache's rows
            "copy",            // strided copies and dtype casts, used by every family
            "gemm_bf16",       // matmul's vdpbf16ps GEMM for bf16 weights
            "gemm_bf16_amx",   // the same GEMM on AMX tiles
            "huge_pages",      // 2 MiB pages for the buffers a checkpoint loads into
            "isa",             // the run-time instruction-set choice
            "math",            // scalar element functions
            "matvec",          // matmul's streaming matrix-vector kernels
            "matvec_bf16",     // matmul's vdpbf16ps matrix-vector kernel for bf16 weights
            "paged_attention", // attention's kernel over a paged KV cache's block table
            "pool",            // recycled output buffers of every op
            "profile",         // LLM_CPU_PROFILE's step timings of a forward pass
            "strided",         // iteration over strided views
            "transpose",       // matmul's f32 transposition of a weight for the GEMM
            "vmath",           // vectorised exp/SiLU/GELU/softmax/RMSNorm/GLU
        ],
    ),
    // strided copies, fills and casts on the GPU; products on quantized blocks (the CPU's are
    // tensor/src/quant/qmatmul)
    ("gpu/src/kernels", &["copy", "qmatmul"]),
    ("autograd/src/rules", &["view"]), // reshapes, transposes and slices: views, no kernels
];

#[test]
fn every_op_family_has_one_name_in_every_crate() {
    let families = stems("tensor/src/ops");
    assert!(families.len() >= 10, "families found: {families:?}");
    for (folder, helpers) in HELPERS {
        let present = stems(folder);
        let missing: Vec<_> = families.difference(&present).collect();
        assert!(missing.is_empty(), "{folder} has no file for the op families {missing:?}");
        let helpers: BTreeSet<String> = helpers.iter().map(|h| h.to_string()).collect();
        let unknown: Vec<_> = present.iter().filter(|s| !families.contains(*s) && !helpers.contains(*s)).collect();
        assert!(
            unknown.is_empty(),
            "{folder} holds {unknown:?}, which name no op family of tensor/src/ops: rename them after \
             their family, or list them as helpers in this test with what they hold"
        );
    }
}
