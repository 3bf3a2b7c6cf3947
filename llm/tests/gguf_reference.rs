//! The GGUF reader and the block formats against data written by llama.cpp's own Python package
//! (`tools/make_gguf_reference.py`): metadata of every value type read back, every block type
//! decoded bit-identically to `gguf.quants.dequantize`, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and MXFP4
//! encoded byte-identically to `gguf.quants.quantize`, FP8 E4M3 against ml_dtypes, gpt-oss's MXFP4 layout against the
//! transformers decoding; and (`tools/make_kquant_reference.py`, bytes from ggml's own library)
//! Q4_K, Q5_K and Q6_K encoded byte-identically to ggml's reference quantizers, activations
//! quantized to Q8_K as ggml does.

use std::path::PathBuf;

use llm::gguf::{Array, GgufFile, Value};
use tensor::quant::{self, GgmlType};

fn reference() -> GgufFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf/reference.gguf");
    GgufFile::open(&path).expect("reference.gguf opens")
}

fn f32s(file: &GgufFile, name: &str) -> Vec<f32> {
    let info = file.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(info.ty, GgmlType::F32, "{name}");
    file.bytes(info).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn u8s(file: &GgufFile, name: &str) -> Vec<u8> {
    let info = file.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
    file.bytes(info).to_vec()
}

/// Bitwise equality, so -0.0 vs 0.0 and NaN payloads count.
fn assert_bits(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{name}[{i}]: got {g:e}, want {w:e}");
    }
}

#[test]
#[allow(clippy::approx_constant)] // the f64 written by the script, not an attempt at e
fn metadata_of_every_type_reads_back() {
    let f = reference();
    assert_eq!(f.version, 3);
    assert_eq!(f.get("general.architecture"), Some(&Value::String("reference".into())));
    assert_eq!(f.get("test.u8"), Some(&Value::U8(200)));
    assert_eq!(f.get("test.i8"), Some(&Value::I8(-100)));
    assert_eq!(f.get("test.u16"), Some(&Value::U16(60000)));
    assert_eq!(f.get("test.i16"), Some(&Value::I16(-30000)));
    assert_eq!(f.get("test.u32"), Some(&Value::U32(4_000_000_000)));
    assert_eq!(f.get("test.i32"), Some(&Value::I32(-2_000_000_000)));
    assert_eq!(f.get("test.f32"), Some(&Value::F32(0.15625)));
    assert_eq!(f.get("test.bool"), Some(&Value::Bool(true)));
    assert_eq!(f.get("test.string"), Some(&Value::String("héllo".into())));
    assert_eq!(f.get("test.u64"), Some(&Value::U64((1 << 63) + 5)));
    assert_eq!(f.get("test.i64"), Some(&Value::I64(-(1 << 62))));
    assert_eq!(f.get("test.f64"), Some(&Value::F64(2.718281828)));
    assert_eq!(f.get("test.array_i32"), Some(&Value::Array(Array::I32(vec![1, -2, 3]))));
    let strings = f.get("test.array_str").and_then(Value::as_array).and_then(Array::strings).unwrap();
    assert_eq!(strings, ["a", "bc", ""]);
    assert_eq!(f.get("test.array_f32"), Some(&Value::Array(Array::F32(vec![0.5, -1.5]))));
    let q = f.tensor("q4_k.packed").unwrap();
    assert_eq!((q.ty, q.dims.clone(), q.shape()), (GgmlType::Q4_K, vec![768, 2], vec![2, 768]));
}

#[test]
fn every_block_type_decodes_bit_identically_to_gguf_py() {
    let f = reference();
    for name in ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k", "mxfp4", "f16", "bf16"] {
        let (got, shape) = f.dequantize(&format!("{name}.packed")).unwrap();
        let want = f32s(&f, &format!("{name}.expected"));
        assert_eq!(shape, f.tensor(&format!("{name}.expected")).unwrap().shape(), "{name}");
        assert_bits(name, &got, &want);
    }
}

#[test]
fn q8_0_q4_0_q4_1_q5_0_q5_1_and_mxfp4_encode_byte_identically_to_gguf_py() {
    let f = reference();
    let types = [
        ("q8_0", GgmlType::Q8_0),
        ("q4_0", GgmlType::Q4_0),
        ("q4_1", GgmlType::Q4_1),
        ("q5_0", GgmlType::Q5_0),
        ("q5_1", GgmlType::Q5_1),
        ("mxfp4", GgmlType::MXFP4),
    ];
    for (name, ty) in types {
        let source = f32s(&f, &format!("{name}.source"));
        let want = u8s(&f, &format!("{name}.quantized"));
        let got = quant::quantize(ty, &source).unwrap();
        for (b, (g, w)) in got.chunks(ty.type_size()).zip(want.chunks(ty.type_size())).enumerate() {
            assert_eq!(g, w, "{name} block {b}");
        }
        assert_eq!(got.len(), want.len());
    }
}

fn kquants() -> GgufFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf/kquants.gguf");
    GgufFile::open(&path).expect("kquants.gguf opens")
}

#[test]
fn k_quants_encode_byte_identically_to_ggml() {
    let f = kquants();
    let source = f32s(&f, "source");
    for (name, ty) in [("q4_k", GgmlType::Q4_K), ("q5_k", GgmlType::Q5_K), ("q6_k", GgmlType::Q6_K)] {
        let want = u8s(&f, &format!("{name}.quantized"));
        let got = quant::quantize(ty, &source).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (b, (g, w)) in got.chunks(ty.type_size()).zip(want.chunks(ty.type_size())).enumerate() {
            assert_eq!(g, w, "{name} block {b}");
        }
    }
}

#[test]
fn activations_quantize_to_q8_k_as_ggml_does() {
    let f = kquants();
    let source = f32s(&f, "source");
    let acts = tensor::quant::qmatmul::QuantizedActsK::new(&source, 1024);
    let d = f32s(&f, "q8_k.d");
    assert_bits("q8_k.d", &acts.scales, &d);
    let qs: Vec<i8> = u8s(&f, "q8_k.qs").into_iter().map(|b| b as i8).collect();
    assert_eq!(acts.codes, qs, "q8_k.qs");
    let bsums: Vec<i16> = u8s(&f, "q8_k.bsums").chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(acts.bsums, bsums, "q8_k.bsums");
}

#[test]
fn fp8_e4m3_matches_ml_dtypes_and_block_scales_follow_deepseek() {
    let f = reference();
    let table = f32s(&f, "fp8.table");
    let mine: Vec<f32> = (0..=255u8).map(quant::fp8::e4m3_to_f32).collect();
    assert_bits("fp8 table", &mine, &table);
    let weight = u8s(&f, "fp8.weight");
    let scale = f32s(&f, "fp8.scale_inv");
    let got = quant::fp8::dequantize_block_scaled(&weight, &scale, 130, 136, quant::fp8::BLOCK).unwrap();
    assert_bits("fp8 block-scaled", &got, &f32s(&f, "fp8.expected"));
    let wrong = quant::fp8::dequantize_block_scaled(&weight, &scale[..3], 130, 136, [128, 128]).unwrap_err();
    assert!(wrong.to_string().contains("[2, 2] scales"), "{wrong}");
}

#[test]
fn mxfp4_in_gpt_oss_layout_matches_transformers() {
    let f = reference();
    let blocks = u8s(&f, "mxfp4_split.blocks");
    let scales = u8s(&f, "mxfp4_split.scales");
    let mut out = vec![0.0f32; 3 * 64];
    quant::mxfp4::dequantize_split(&blocks, &scales, &mut out).unwrap();
    assert_bits("mxfp4 split", &out, &f32s(&f, "mxfp4_split.expected"));
    assert!(quant::mxfp4::dequantize_split(&blocks, &scales[..5], &mut out).is_err());
    // Repacked as ggml blocks (how a released checkpoint's experts are kept), ggml's decoder
    // gives the same values (E2M1's -0.0 as +0.0).
    let ggml = quant::mxfp4::split_to_ggml(&blocks, &scales).unwrap();
    let mut decoded = vec![0.0f32; 3 * 64];
    quant::dequantize(GgmlType::MXFP4, &ggml, &mut decoded).unwrap();
    let positive_zero: Vec<f32> = out.iter().map(|&v| v + 0.0).collect();
    assert_bits("mxfp4 split as ggml blocks", &decoded, &positive_zero);
    assert!(quant::mxfp4::split_to_ggml(&blocks, &scales[..5]).is_err());
}

#[test]
fn block_sizes_and_bits_per_weight_match_ggml() {
    let types = [
        ("q8_0", 8.5),
        ("q4_0", 4.5),
        ("q4_1", 5.0),
        ("q5_0", 5.5),
        ("q5_1", 6.0),
        ("q4_k", 4.5),
        ("q5_k", 5.5),
        ("q6_k", 6.5625),
    ];
    for (name, bpw) in types {
        let ty = GgmlType::parse(name).unwrap();
        assert_eq!(ty.bits_per_weight(), bpw, "{name}");
        assert_eq!(GgmlType::from_id(ty.id()), Some(ty));
    }
    assert_eq!(GgmlType::from_id(4), None, "Q4_2 was retired");
    // The FP8 releases' blocks are this project's own: no GGUF id reads as them.
    assert_eq!(GgmlType::FP8_E4M3.bits_per_weight(), 9.0);
    assert_eq!(GgmlType::from_id(GgmlType::FP8_E4M3.id()), None);
    assert!(quant::quantize(GgmlType::Q8_0, &[0.0; 31]).is_err());
    let mut out = [0.0f32; 32];
    assert!(quant::dequantize(GgmlType::Q8_0, &[0; 33], &mut out).is_err());
}
