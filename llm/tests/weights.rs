//! The safetensors reader on the fixtures, on shards, on every dtype, and on broken files.

use std::path::PathBuf;

use llm::weights::{Checkpoint, save_safetensors};
use tensor::{DType, Device, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf-tiny").join(name)
}

#[test]
fn reads_a_fixture_checkpoint() -> llm::Result<()> {
    let ckpt = Checkpoint::open(&fixture("qwen3"))?;
    let meta = ckpt.meta("model.embed_tokens.weight").expect("embedding present");
    assert_eq!(meta.dtype, DType::F32);
    assert_eq!(meta.shape[0], 256);
    let reference = Checkpoint::open(&fixture("qwen3").join("reference.safetensors"))?;
    let ids = reference.load("input_ids", None, &Device::cpu())?;
    assert_eq!(ids.dtype(), DType::I64);
    assert_eq!(ids.dims(), &[2, 21]);
    Ok(())
}

#[test]
fn round_trips_every_dtype_through_a_file_and_converts_on_load() -> llm::Result<()> {
    let dir = tempdir("roundtrip");
    let cpu = Device::cpu();
    let base = Tensor::from_vec(vec![1.5f32, -2.25, 3.0, 0.125], [2, 2], &cpu)?;
    let tensors: Vec<(String, Tensor)> =
        DType::ALL.iter().map(|&d| Ok((format!("t.{d}"), base.to_dtype(d)?))).collect::<tensor::Result<_>>()?;
    let path = dir.join("all.safetensors");
    save_safetensors(&path, &tensors, None)?;
    let ckpt = Checkpoint::open(&path)?;
    for (name, t) in &tensors {
        let back = ckpt.load(name, None, &cpu)?;
        assert_eq!(back.dtype(), t.dtype(), "{name}");
        assert_eq!(back.to_vec::<f64>()?, t.to_vec::<f64>()?, "{name}");
        assert_eq!(ckpt.load(name, Some(DType::F32), &cpu)?.dtype(), DType::F32);
    }
    Ok(())
}

#[test]
fn reads_sharded_checkpoints_through_the_index() -> llm::Result<()> {
    let dir = tempdir("sharded");
    let cpu = Device::cpu();
    let a = Tensor::from_vec(vec![1.0f32, 2.0], [2], &cpu)?;
    let b = Tensor::from_vec(vec![3.0f32], [1], &cpu)?;
    save_safetensors(&dir.join("model-00001-of-00002.safetensors"), &[("a".into(), a)], None)?;
    save_safetensors(&dir.join("model-00002-of-00002.safetensors"), &[("b".into(), b)], None)?;
    let index = r#"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#;
    std::fs::write(dir.join("model.safetensors.index.json"), index).map_err(|e| llm::Error::io(&dir, e))?;
    let ckpt = Checkpoint::open(&dir)?;
    assert_eq!(ckpt.names(), ["a", "b"]);
    assert_eq!(ckpt.load("b", None, &cpu)?.to_vec::<f32>()?, vec![3.0]);
    Ok(())
}

#[test]
fn broken_files_give_errors_naming_them() -> llm::Result<()> {
    let dir = tempdir("broken");
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty.safetensors", vec![]),
        ("short.safetensors", vec![1, 2, 3]),
        ("huge_header.safetensors", u64::MAX.to_le_bytes().to_vec()),
        ("bad_json.safetensors", [8u64.to_le_bytes().to_vec(), b"{not json".to_vec()].concat()),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| llm::Error::io(&path, e))?;
        let err = Checkpoint::open(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(name), "{name}: {err}");
    }
    let missing = Checkpoint::open(&dir.join("nope")).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(missing.contains("nope"), "{missing}");
    let ckpt = Checkpoint::open(&fixture("qwen3"))?;
    let err = ckpt.load("model.no_such.weight", None, &Device::cpu()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("model.no_such.weight"), "{err}");
    Ok(())
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-weights-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
