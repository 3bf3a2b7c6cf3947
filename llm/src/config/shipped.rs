//! The real-scale configs shipped in `llm/configs/` (see its README for the release each comes
//! from), compiled into the library so the anatomy and the tour need no download and no files
//! beside the binary.

use super::ModelConfig;
use crate::Result;

/// One shipped config: the release it describes and its `config.json` text.
#[derive(Clone, Copy, Debug)]
pub struct ShippedConfig {
    /// The release, e.g. `DeepSeek-V3 (671B)`.
    pub release: &'static str,
    /// The file under `llm/configs/`.
    pub file: &'static str,
    pub json: &'static str,
}

impl ShippedConfig {
    pub fn parse(&self) -> Result<ModelConfig> {
        ModelConfig::from_json_str(self.json, &format!("llm/configs/{}", self.file))
    }
}

macro_rules! shipped {
    ($($release:expr => $file:expr),* $(,)?) => {
        /// The eleven configs, in the order of the architecture comparison.
        pub const SHIPPED: &[ShippedConfig] = &[
            $(ShippedConfig { release: $release, file: $file, json: include_str!(concat!("../../configs/", $file)) },)*
        ];
    };
}

shipped! {
    "DeepSeek-V3" => "deepseek-v3.json",
    "Kimi K2" => "kimi-k2.json",
    "OLMo 2 7B" => "olmo-2-7b.json",
    "Gemma 3 27B" => "gemma-3-27b.json",
    "Mistral Small 3.1 24B" => "mistral-small-3.1-24b.json",
    "Llama 4 Maverick" => "llama-4-maverick.json",
    "Qwen3 0.6B" => "qwen3-0.6b.json",
    "Qwen3 235B-A22B" => "qwen3-235b-a22b.json",
    "SmolLM3 3B" => "smollm3-3b.json",
    "gpt-oss-20b" => "gpt-oss-20b.json",
    "gpt-oss-120b" => "gpt-oss-120b.json",
}

#[cfg(test)]
mod tests {
    use super::SHIPPED;

    #[test]
    fn every_shipped_config_parses() {
        for s in SHIPPED {
            s.parse().unwrap_or_else(|e| panic!("{}: {e}", s.file));
        }
        assert_eq!(SHIPPED.len(), 11);
    }
}
