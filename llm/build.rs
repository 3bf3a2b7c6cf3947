//! Lists the tiny reference checkpoints (`tests/data/hf-tiny/<name>/`) that the `llm` binary
//! carries (`src/embedded.rs`), so that an architecture's fixture is embedded by being there:
//! no file but the architecture's own names it.

use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("tests/data/hf-tiny");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("config.json").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut code = String::from("&[\n");
    for name in &names {
        code.push_str("    &[\n");
        for file in ["config.json", "model.safetensors", "reference.safetensors"] {
            let path = root.join(name).join(file);
            println!("cargo:rerun-if-changed={}", path.display());
            let path = path.to_str().expect("the fixtures' paths are UTF-8");
            writeln!(code, "        ({:?}, include_bytes!({path:?})),", format!("hf-tiny/{name}/{file}")).unwrap();
        }
        code.push_str("    ],\n");
    }
    code.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("fixtures.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
