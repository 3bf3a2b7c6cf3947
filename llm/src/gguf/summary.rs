//! What `llm inspect` says about a GGUF file: its tensors by type, the memory each type takes and
//! the bits per weight overall (scales included), next to the file size.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};
use tensor::quant::GgmlType;

use super::reader::GgufFile;
use crate::anatomy::human_bytes;

/// Per tensor type: (tensors, weights, bytes).
pub fn by_type(file: &GgufFile) -> BTreeMap<GgmlType, (usize, u64, u64)> {
    let mut map: BTreeMap<GgmlType, (usize, u64, u64)> = BTreeMap::new();
    for t in &file.tensors {
        let e = map.entry(t.ty).or_default();
        e.0 += 1;
        e.1 += t.elements();
        e.2 += t.size;
    }
    map
}

/// Weights and bits per weight over all tensors.
pub fn totals(file: &GgufFile) -> (u64, u64, f64) {
    let (weights, bytes) = file.tensors.iter().fold((0u64, 0u64), |(w, b), t| (w + t.elements(), b + t.size));
    (weights, bytes, if weights == 0 { 0.0 } else { bytes as f64 * 8.0 / weights as f64 })
}

/// Lines for the terminal.
pub fn describe(file: &GgufFile) -> String {
    let (weights, bytes, bpw) = totals(file);
    let mut out = format!(
        "GGUF v{}: {} tensors, {} weights in {} ({bpw:.2} bits per weight), file {}",
        file.version,
        file.tensors.len(),
        weights,
        human_bytes(bytes),
        human_bytes(file.file_size())
    );
    for (ty, (n, w, b)) in by_type(file) {
        out.push_str(&format!(
            "\n  {:<6} {n:>4} tensors {w:>14} weights {:>10} ({:.4} bits per weight)",
            ty.name(),
            human_bytes(b),
            ty.bits_per_weight()
        ));
    }
    out
}

/// The same as one JSON object.
pub fn to_json(file: &GgufFile) -> Json {
    let (weights, bytes, bpw) = totals(file);
    let types: serde_json::Map<String, Json> = by_type(file)
        .into_iter()
        .map(|(ty, (n, w, b))| (ty.name().to_string(), json!({"tensors": n, "weights": w, "bytes": b})))
        .collect();
    json!({
        "version": file.version,
        "file_bytes": file.file_size(),
        "tensor_bytes": bytes,
        "weights": weights,
        "bits_per_weight": bpw,
        "by_type": types,
    })
}
