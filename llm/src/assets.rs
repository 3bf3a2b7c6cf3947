//! Where the files the `llm` command needs at run time live: the shipped model and its
//! tokenizer, the training corpus (`assets/`), and the tiny reference checkpoints the tour runs
//! (`tests/data/hf-tiny/`). In the source tree they are read in place; an installed binary
//! (`cargo install --path llm`) carries them inside itself and unpacks them once to a cache
//! folder, then points here with [`use_unpacked`].

use std::path::PathBuf;
use std::sync::OnceLock;

static UNPACKED: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();

/// The crate's source folder, as compiled in.
fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the source tree the binary was built from is still where it was.
pub fn source_tree_present() -> bool {
    source_dir().join("assets/tiny/model.safetensors").is_file() && source_dir().join("tests/data/hf-tiny").is_dir()
}

/// From now on, read the assets and the tour's checkpoints from these folders.
pub fn use_unpacked(assets: PathBuf, fixtures: PathBuf) {
    let _ = UNPACKED.set((assets, fixtures));
}

/// The assets folder: corpus, tokenizer and shipped model (`tiny/`), font.
pub fn assets_dir() -> PathBuf {
    match UNPACKED.get() {
        Some((assets, _)) => assets.clone(),
        None => source_dir().join("assets"),
    }
}

/// The tiny reference checkpoints, one folder per architecture with transformers' outputs.
pub fn fixtures_dir() -> PathBuf {
    match UNPACKED.get() {
        Some((_, fixtures)) => fixtures.clone(),
        None => source_dir().join("tests/data/hf-tiny"),
    }
}
