//! Every architecture the library knows, one line each. The rest of the code looks an
//! architecture up here (by [`Family`], `model_type`, short name or GGUF name) instead of
//! keeping its own list; adding one is its file under `models/` and a line below.

use super::architecture::{Architecture, Gguf};
use super::{deepseek_v3, gemma3, gpt_oss, kimi_k2, llama4, mistral, olmo2, qwen3, qwen3_moe, smollm3};
use crate::config::Family;

/// The architectures, in the order of [`Family`] and of the tables.
pub const ALL: [&Architecture; 10] = [
    &deepseek_v3::ARCH,
    &kimi_k2::ARCH,
    &olmo2::ARCH,
    &gemma3::ARCH,
    &mistral::ARCH,
    &llama4::ARCH,
    &qwen3::ARCH,
    &qwen3_moe::ARCH,
    &smollm3::ARCH,
    &gpt_oss::ARCH,
];

/// The architecture of a family.
pub fn of(family: Family) -> &'static Architecture {
    // `ALL` follows the enum's order (checked by a test below).
    ALL[family as usize]
}

/// The architecture a `model_type` names, and whether its decoder sits in `text_config`.
pub fn by_model_type(model_type: &str) -> Option<(&'static Architecture, bool)> {
    ALL.iter().find_map(|a| a.model_types.iter().find(|t| t.name == model_type).map(|t| (*a, t.nested)))
}

/// The architecture of a short name (`gemma3`, the `--family` value).
pub fn by_id(id: &str) -> Option<&'static Architecture> {
    ALL.iter().copied().find(|a| a.id() == id)
}

/// The architecture llama.cpp calls `gguf_arch` (`general.architecture`).
pub fn by_gguf(gguf_arch: &str) -> Option<&'static Architecture> {
    ALL.iter().copied().find(|a| a.gguf.is_some_and(|g| g.arch == gguf_arch))
}

/// How llama.cpp's `gguf_arch` is read and written, if it is one of the registry's.
pub fn gguf(gguf_arch: &str) -> Option<Gguf> {
    by_gguf(gguf_arch).and_then(|a| a.gguf)
}

/// llama.cpp's names of the architectures read and written as GGUF, for messages.
pub fn gguf_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = ALL.iter().filter_map(|a| a.gguf.map(|g| g.arch)).collect();
    // (DeepSeek-V3 and Kimi K2 are both llama.cpp's `deepseek2`.)
    names.dedup();
    names
}

/// Every accepted `model_type`, for messages.
pub fn model_type_names() -> Vec<&'static str> {
    ALL.iter().flat_map(|a| a.model_types.iter().map(|t| t.name)).collect()
}

/// The architectures the tiny model can be built in.
pub fn tiny_families() -> impl Iterator<Item = &'static Architecture> {
    ALL.iter().copied().filter(|a| a.tiny.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_follows_the_family_order_and_names_are_unique() {
        for (i, arch) in ALL.iter().enumerate() {
            assert_eq!(arch.family as usize, i, "{} is out of place", arch.name());
        }
        let types = model_type_names();
        for (i, t) in types.iter().enumerate() {
            assert!(!types[i + 1..].contains(t), "model_type {t} is claimed twice");
        }
        for a in ALL {
            assert_eq!(by_id(a.id()).map(|b| b.name()), Some(a.name()));
            assert!(!a.model_types.is_empty() && !a.model_types[0].nested, "{}: text model_type first", a.name());
        }
    }
}
