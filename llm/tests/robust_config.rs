//! Property test of the config.json reader: a seeded loop mutates the fixture configs of every
//! family (fields removed, set to JSON of the wrong type, to zero, to huge numbers; numbers that
//! contradict each other; unknown model types; truncated and non-UTF-8 files) and checks that each
//! either parses into a model that builds or ends in one line naming the file and the field,
//! never a panic.

mod common;

use common::{PeakAlloc, Rng, no_panic, peak, reset_peak, tempdir};
use llm::config::ModelConfig;
use nn::Init;
use serde_json::{Map, Value, json};
use tensor::Device;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const FAMILIES: [&str; 10] = [
    "deepseek_v3",
    "gemma3",
    "kimi_k2",
    "llama4",
    "mistral_small",
    "olmo2",
    "qwen3",
    "qwen3_moe",
    "smollm3",
    "gpt_oss",
];

/// Fields any family may read, so mutations also add fields a fixture leaves out.
const FIELDS: [&str; 44] = [
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "intermediate_size_mlp",
    "vocab_size",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "sliding_window",
    "layer_types",
    "no_rope_layers",
    "no_rope_layer_interval",
    "attention_chunk_size",
    "n_routed_experts",
    "num_experts",
    "num_local_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "n_shared_experts",
    "n_group",
    "topk_group",
    "first_k_dense_replace",
    "moe_layer_freq",
    "q_lora_rank",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "eos_token_id",
    "tie_word_embeddings",
    "hidden_act",
    "moe_layers",
    "mlp_only_layers",
    "text_config",
    "swiglu_alpha",
    "swiglu_limit",
    "attention_bias",
    "quantization_config",
];

fn odd_value(rng: &mut Rng) -> Value {
    let long = "é".repeat(60);
    let values = [
        json!(null),
        json!(-1),
        json!(1.5),
        json!(0),
        json!(1),
        json!(3),
        json!(1u64 << 40),
        json!((1u64 << 40) - 1),
        json!(u64::MAX),
        json!(1e300),
        json!(-1e300),
        json!("7"),
        json!(long),
        json!([long]),
        json!(["sliding_attention"]),
        json!([]),
        json!({}),
        json!({"rope_type": "yarn"}),
        json!({"rope_type": "linear", "factor": -2.0}),
        json!({"type": "dynamic", "factor": 2.0}),
        json!({"quant_method": "fp8", "weight_block_size": [0, 128]}),
        json!({"quant_method": "fp8", "fmt": "e5m2"}),
        json!({"quant_method": "gptq", "bits": 4}),
        json!(true),
        json!([1, -1]),
        json!([[1]]),
    ];
    rng.pick(&values).clone()
}

/// A contradiction injected into a valid config, and the field its error must name.
fn contradiction(rng: &mut Rng, map: &mut Map<String, Value>) -> Option<&'static str> {
    let get = |map: &Map<String, Value>, k: &str| map.get(k).and_then(Value::as_u64);
    let heads = get(map, "num_attention_heads").unwrap_or(4);
    Some(match rng.below(10) {
        0 => {
            map.remove("head_dim");
            map.insert("hidden_size".into(), json!(heads * 16 + 1));
            // Families with a class-default head_dim need no division; the others must refuse.
            return if ["gemma3_text", "llama4_text", "qwen3", "qwen3_moe", "gpt_oss"]
                .contains(&map["model_type"].as_str()?)
            {
                None
            } else {
                Some("num_attention_heads")
            };
        }
        1 => {
            map.insert("num_key_value_heads".into(), json!(heads + 1));
            "num_key_value_heads"
        }
        2 => {
            let ctx = get(map, "max_position_embeddings").unwrap_or(4096);
            map.insert("sliding_window".into(), json!(ctx + 1 + rng.below(1000) as u64));
            // Only Gemma 3, Mistral and gpt-oss read a window.
            return if ["gemma3_text", "mistral", "gpt_oss"].contains(&map["model_type"].as_str()?) {
                Some("sliding_window")
            } else {
                None
            };
        }
        3 => {
            for k in ["n_routed_experts", "num_experts", "num_local_experts"] {
                if let Some(n) = get(map, k) {
                    map.insert("num_experts_per_tok".into(), json!(n + 1 + rng.below(5) as u64));
                    return Some("num_experts_per_tok");
                }
            }
            return None;
        }
        4 => {
            map.insert("num_hidden_layers".into(), json!(0));
            "num_hidden_layers"
        }
        5 => {
            map.insert("vocab_size".into(), json!(0));
            "vocab_size"
        }
        6 => {
            map.insert("num_attention_heads".into(), json!(0));
            "num_attention_heads"
        }
        7 => {
            let n = get(map, "num_hidden_layers").unwrap_or(2);
            map.insert("layer_types".into(), json!(vec!["full_attention"; n as usize + 1]));
            "layer_types"
        }
        8 => {
            // A layer list naming a layer past the last one.
            let n = get(map, "num_hidden_layers").unwrap_or(2);
            let field = match map["model_type"].as_str()? {
                "llama4_text" => "moe_layers",
                "qwen3_moe" => "mlp_only_layers",
                _ => return None,
            };
            map.insert(field.into(), json!([0, n + rng.below(3) as u64]));
            field
        }
        _ => {
            map.insert("rms_norm_eps".into(), json!(-1e-6));
            "rms_norm_eps"
        }
    })
}

/// Whether a parsed config is small enough to build in a test.
fn modest(c: &ModelConfig) -> bool {
    let moe = c.moe.map_or(0, |m| m.num_experts.max(m.expert_intermediate_size));
    [c.vocab_size, c.hidden_size, c.num_hidden_layers, c.head_dim, c.dense_intermediate_size, moe]
        .iter()
        .all(|&n| n <= 4096)
        && c.num_attention_heads * c.head_dim <= 4096
}

#[test]
fn mutated_configs_end_in_errors_naming_file_and_field() {
    let _serial = common::serial();
    let dir = tempdir("config");
    let bases: Vec<(String, Map<String, Value>)> = FAMILIES
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(common::fixture(f).join("config.json")).unwrap();
            (f.to_string(), serde_json::from_str(&text).unwrap())
        })
        .collect();
    let mut rng = Rng::new(1202);
    const CASES: usize = 10_000;
    let (mut parsed, mut built, mut rejected) = (0usize, 0usize, 0usize);
    for i in 0..CASES {
        let (family, base) = rng.pick(&bases);
        let mut map = base.clone();
        let mut needle: Option<&str> = None;
        let mut raw: Option<Vec<u8>> = None;
        let what = match rng.below(7) {
            0 => {
                let k = map.keys().nth(rng.below(map.len())).unwrap().clone();
                map.remove(&k);
                format!("{k} removed")
            }
            1 | 2 => {
                let k = if rng.below(2) == 0 {
                    map.keys().nth(rng.below(map.len())).unwrap().clone()
                } else {
                    rng.pick(&FIELDS).to_string()
                };
                let v = odd_value(&mut rng);
                let shown = v.to_string();
                map.insert(k.clone(), v);
                format!("{k} = {shown}")
            }
            3 => {
                needle = contradiction(&mut rng, &mut map);
                format!("contradiction expecting {needle:?}")
            }
            4 => {
                let t = *rng.pick(&["llama", "gpt2", "", "QWEN3", "qwen3 ", "gemma3"]);
                map.insert("model_type".into(), json!(t));
                // gemma3 without a text_config is an error too, naming text_config.
                needle = Some(if t == "gemma3" { "text_config" } else { "model_type" });
                format!("model_type {t:?}")
            }
            5 => {
                // Several fields at once.
                for _ in 0..3 {
                    let k = rng.pick(&FIELDS).to_string();
                    map.insert(k, odd_value(&mut rng));
                }
                "three fields replaced".into()
            }
            _ => {
                let text = serde_json::to_vec(&map).unwrap();
                let bytes = match rng.below(3) {
                    0 => text[..rng.below(text.len())].to_vec(),
                    1 => (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect(),
                    _ => [text.as_slice(), &[0xff, 0xfe]].concat(),
                };
                raw = Some(bytes);
                "text garbled".into()
            }
        };
        let case = format!("#{i} {family}: {what}");
        let file = format!("case{i}.json");
        let path = dir.join(&file);
        std::fs::write(&path, raw.unwrap_or_else(|| serde_json::to_vec(&map).unwrap())).unwrap();
        reset_peak();
        let result = no_panic(&case, || {
            let config = ModelConfig::from_path(&path)?;
            if modest(&config) {
                llm::models::build(&config, &mut Init::placeholders(&Device::cpu()))?;
                return Ok(true);
            }
            llm::Result::Ok(false)
        });
        // Parsing and building with placeholder weights (broadcast scalars) needs little memory;
        // 64 MiB is far above what any fixture-sized model asks and far below what a size read
        // from a mutated field (2^40) would.
        assert!(peak() < 64 << 20, "case {case}: allocated {} bytes", peak());
        match result {
            Ok(b) => {
                assert!(needle.is_none(), "case {case}: accepted, but {needle:?} is contradictory");
                parsed += 1;
                built += b as usize;
            }
            Err(e) => {
                rejected += 1;
                let msg = e.to_string();
                assert!(msg.contains(&file), "case {case}: error does not name the file: {msg}");
                assert!(!msg.contains('\n'), "case {case}: more than one line: {msg}");
                assert!(msg.len() < 600, "case {case}: a {}-byte message", msg.len());
                if let Some(field) = needle {
                    assert!(msg.contains(field), "case {case}: error does not name {field}: {msg}");
                }
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
    println!("config mutation cases: {CASES} ({parsed} parsed, {built} of them built, {rejected} rejected)");
    assert_eq!(parsed + rejected, CASES);
    assert!(rejected >= 1000 && parsed >= 100, "{parsed} parsed, {rejected} rejected");
}

#[test]
fn pad_token_id_is_the_embedding_padding_idx() {
    let text = std::fs::read_to_string(common::fixture("olmo2").join("config.json")).unwrap();
    let mut map: Map<String, Value> = serde_json::from_str(&text).unwrap();
    let parse =
        |map: &Map<String, Value>| ModelConfig::from_json_str(&Value::Object(map.clone()).to_string(), "c.json");
    assert_eq!(parse(&map).unwrap().pad_token_id, Some(1));
    // PyTorch counts a negative padding_idx from the end of the table.
    map.insert("pad_token_id".into(), json!(-1));
    assert_eq!(parse(&map).unwrap().pad_token_id, Some(255));
    for bad in [json!(256), json!(-257), json!("x")] {
        map.insert("pad_token_id".into(), bad.clone());
        let err = parse(&map).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("c.json") && err.contains("pad_token_id"), "{bad}: {err}");
    }
}
