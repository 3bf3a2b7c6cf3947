//! Attention: the masks, the KV cache, standard multi-head attention with grouped kv heads
//! (MHA/GQA/MQA), and DeepSeek's multi-head latent attention (MLA).

pub mod kv_cache;
pub mod masks;
pub mod mha_gqa;
pub mod mla;
pub mod paged;
pub mod qk_clip;
pub mod segments;

pub use kv_cache::{CacheTensors, KvCache, RowsLike};
pub use masks::MaskKind;
pub use mha_gqa::{AttentionConfig, GroupedQueryAttention, QkNorm, TemperatureTuning};
pub use mla::{MlaConfig, MultiHeadLatentAttention};
pub use paged::BlockPool;
pub use segments::AttentionSegment;
