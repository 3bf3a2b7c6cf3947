//! The real-scale anatomy of each shipped config against the published figures (and against
//! the counts ARCHITECTURES.md derives from the configs, which reproduce them).

use std::path::PathBuf;

use llm::anatomy::Anatomy;
use llm::config::ModelConfig;
use tensor::DType;

fn anatomy(file: &str) -> Anatomy {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs").join(file);
    Anatomy::of(&ModelConfig::from_path(&path).expect("shipped config"))
}

/// `got` within `rel` (relative) of `want`.
fn near(got: u64, want: f64, rel: f64) -> bool {
    ((got as f64) - want).abs() <= rel * want
}

#[test]
fn deepseek_v3_is_671b_with_37b_active() {
    let a = anatomy("deepseek-v3.json");
    assert_eq!(a.total_params(), 671_026_404_352, "exactly the count from the config");
    assert!(near(a.active_params(), 37.55e9, 0.001), "{}", a.active_params()); // "37B activated"
    // MLA caches latent + rope key: (512 + 64) numbers x 61 layers, 2 bytes each in bf16.
    assert_eq!(a.kv_cache_bytes_per_token(DType::BF16), (512 + 64) * 61 * 2);
}

#[test]
fn deepseek_v3_attention_flops_are_counted_on_the_absorbed_path() {
    let a = anatomy("deepseek-v3.json");
    // Decoding scores each of 128 heads against the cached 512-dim latent + 64-dim rope key and
    // sums 512-dim latents: 2 FLOPs x 128 heads x (512 + 64 + 512) per position, 61 layers.
    let per_position = 61 * 2 * 128 * (512 + 64 + 512);
    assert_eq!(a.attention_flops_per_position, (per_position, 0, 0));
    let at_128k = a.flops_per_token(131_072) - a.flops_per_token(0);
    assert_eq!(at_128k, per_position * 131_072);
    // About 2.2 TFLOP per token at 128k, 3.4x what the expanded path (128 + 64 + 128) would cost.
    assert!(near(at_128k, 2.227e12, 0.001), "{at_128k}");
    let v3 = ModelConfig::from_path(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/deepseek-v3.json"))
        .expect("shipped config");
    let m = v3.mla.expect("MLA");
    let expanded = llm::anatomy::mla_expanded_flops_per_position(128, &m) * 61;
    assert_eq!(expanded, 61 * 2 * 128 * (128 + 64 + 128));
}

#[test]
fn kimi_k2_is_about_1t_with_32b_active() {
    let a = anatomy("kimi-k2.json");
    assert!(near(a.total_params(), 1026.4e9, 0.001), "{}", a.total_params());
    assert!(near(a.active_params(), 32.86e9, 0.001), "{}", a.active_params()); // report: 32.6B
}

#[test]
fn llama4_maverick_is_400b_with_17b_active() {
    let a = anatomy("llama-4-maverick.json");
    assert!(near(a.total_params(), 400.71e9, 0.001), "{}", a.total_params());
    assert!(near(a.active_params(), 17.18e9, 0.001), "{}", a.active_params());
    // 48 layers, 8 kv heads of 128: 2 x 8 x 128 numbers per layer; 36 of the layers are chunked.
    let per_layer = 2 * 8 * 128 * 2;
    assert_eq!(a.kv_cache_bytes_per_token(DType::BF16), 48 * per_layer);
    // At 128k, chunked layers hold one chunk of 8192, the 12 NoPE layers everything.
    assert_eq!(a.kv_cache_bytes(131_072, DType::BF16), (12 * 131_072 + 36 * 8192) * per_layer);
}

#[test]
fn qwen3_235b_is_235b_with_22b_active() {
    let a = anatomy("qwen3-235b-a22b.json");
    assert!(near(a.total_params(), 235.094e9, 0.0005), "{}", a.total_params());
    assert!(near(a.active_params(), 22.191e9, 0.0005), "{}", a.active_params());
    assert!(near(a.non_embedding_params(), 233.849e9, 0.0005), "{}", a.non_embedding_params());
}

#[test]
fn gemma3_27b_has_25_6b_non_embedding_and_a_mostly_windowed_cache() {
    let a = anatomy("gemma-3-27b.json");
    assert!(near(a.non_embedding_params(), 25.6e9, 0.001), "{}", a.non_embedding_params());
    // 62 layers: 52 sliding (window 1024), 10 global; 16 kv heads of 128.
    let per_layer = 2 * 16 * 128 * 2;
    let (full, sliding, chunked) = a.kv_numbers_per_token;
    assert_eq!((full * 2, sliding * 2, chunked), (10 * per_layer, 52 * per_layer, 0));
    assert_eq!(a.kv_cache_bytes(131_072, DType::BF16), (10 * 131_072 + 52 * 1024) * per_layer);
}

#[test]
fn dense_models_match_their_names() {
    let q = anatomy("qwen3-0.6b.json");
    assert!(near(q.total_params(), 0.596e9, 0.002) && near(q.non_embedding_params(), 0.440e9, 0.002)); // "0.6B (0.44B non-embedding)"
    assert!(near(anatomy("olmo-2-7b.json").total_params(), 7.299e9, 0.001));
    assert!(near(anatomy("mistral-small-3.1-24b.json").total_params(), 23.57e9, 0.001)); // 24B with the vision encoder
    assert!(near(anatomy("smollm3-3b.json").total_params(), 3.075e9, 0.001));
    // Dense: every parameter is active.
    assert_eq!(q.total_params(), q.active_params());
}

#[test]
fn json_has_the_fields_tools_rely_on() {
    let j = anatomy("qwen3-0.6b.json").to_json(4096, DType::BF16);
    for field in
        ["total_params", "active_params", "kv_cache_bytes_per_token", "kv_cache_bytes_at_context", "flops_per_token"]
    {
        assert!(j[field].is_u64(), "{field}: {}", j[field]);
    }
    // 28 layers x 2 x 8 kv heads x 128 x 2 bytes.
    assert_eq!(j["kv_cache_bytes_per_token"], 28 * 2 * 8 * 128 * 2);
}

#[test]
fn gpt_oss_counts_exactly_as_transformers() {
    // transformers counts every bias (q/k/v/o, router, experts) and the attention sinks.
    for (file, layers, total, active) in [
        ("gpt-oss-20b.json", 24u64, 20_914_757_184u64, 4_187_440_704u64),
        ("gpt-oss-120b.json", 36, 116_829_156_672, 5_711_982_912),
    ] {
        let a = anatomy(file);
        assert_eq!(a.total_params(), total, "{file}");
        assert_eq!(a.active_params(), active, "{file}: 4 of the experts, embedding and head in full");
        // Half the layers slide over 128 tokens; 8 kv heads of 64, k and v, 2 bytes in bf16.
        let per_layer = 2 * 8 * 64 * 2;
        assert_eq!(a.kv_cache_bytes_per_token(DType::BF16), layers * per_layer, "{file}");
        assert_eq!(a.kv_cache_bytes(131_072, DType::BF16), (layers / 2) * (131_072 + 128) * per_layer, "{file}");
        assert!(a.attention_kind.contains("sinks"), "{}", a.attention_kind);
    }
}
