//! GGUF, llama.cpp's single-file model format: metadata (architecture hyperparameters, the
//! tokenizer) and block-quantized tensors. Specification:
//! <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>.

pub mod config;
mod export;
mod load;
pub mod names;
mod reader;
pub mod rope_freqs;
pub mod summary;
pub mod tokenizer;
mod value;
mod writer;

pub use export::{FileType, no_keys, unit_offset_norm, write_gguf, write_gguf_with_template};
pub use load::{is_gguf, load_gguf, permute_rows};
pub use reader::{DEFAULT_ALIGNMENT, GgufFile, MAGIC, MAX_DIMS, TensorInfo};
pub use value::{Array, Value, type_name};
pub use writer::GgufWriter;
