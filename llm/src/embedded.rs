//! Part of the `llm` binary only (not the library): the files it needs at run time, carried
//! inside it so that an installed copy (`cargo install --path llm`) runs the tour, generates
//! with the shipped model and pretrains from any folder once the source tree is gone. About
//! 17 MiB: the shipped model (6 MiB), the corpus (1.1 MiB) and the tiny reference checkpoints.
//! They are unpacked once into a cache folder named after the version and checked by size.

use std::path::{Path, PathBuf};

/// (path under the unpacked root, contents). `assets/...` mirrors `llm/assets`, `hf-tiny/...`
/// mirrors `llm/tests/data/hf-tiny`.
macro_rules! files {
    ($($path:expr => $source:expr),* $(,)?) => {
        &[$(($path, include_bytes!($source))),*]
    };
}

const ASSETS: &[(&str, &[u8])] = files! {
    "assets/tiny/config.json" => "../assets/tiny/config.json",
    "assets/tiny/model.safetensors" => "../assets/tiny/model.safetensors",
    "assets/tiny/tokenizer.json" => "../assets/tiny/tokenizer.json",
    "assets/corpus/pride-and-prejudice.txt" => "../assets/corpus/pride-and-prejudice.txt",
    "assets/corpus/persuasion.txt" => "../assets/corpus/persuasion.txt",
};

/// Every folder of `llm/tests/data/hf-tiny` (listed by `build.rs`).
const FIXTURES: &[&[(&str, &[u8])]] = include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// Reads the source tree when it is there (unless `LLM_EMBEDDED_ASSETS=1`, which tests use to
/// act as an installed copy); otherwise unpacks the carried files and points the library at them.
pub fn install() -> llm::Result<()> {
    let forced = std::env::var("LLM_EMBEDDED_ASSETS").is_ok_and(|v| v == "1");
    if llm::assets::source_tree_present() && !forced {
        return Ok(());
    }
    let root = cache_root().join(format!("llmforge-{}", env!("CARGO_PKG_VERSION")));
    for &(path, bytes) in ASSETS.iter().chain(FIXTURES.iter().flat_map(|f| f.iter())) {
        unpack(&root.join(path), bytes)?;
    }
    llm::assets::use_unpacked(root.join("assets"), root.join("hf-tiny"));
    Ok(())
}

/// `$XDG_CACHE_HOME`, `$HOME/.cache`, or the system's temporary folder.
fn cache_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}

/// Writes `bytes` to `path` unless a file of that size is already there; through a temporary
/// name and a rename, so two runs at once never see half a file.
fn unpack(path: &Path, bytes: &[u8]) -> llm::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(());
    }
    let dir = path.parent().expect("unpacked paths have a folder");
    std::fs::create_dir_all(dir).map_err(|e| llm::Error::io(dir, e))?;
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, bytes).map_err(|e| llm::Error::io(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| llm::Error::io(path, e))
}
