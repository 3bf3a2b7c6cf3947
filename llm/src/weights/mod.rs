//! Checkpoints in the Hugging Face safetensors layout: one `model.safetensors`, or shards listed
//! by `model.safetensors.index.json`. Files are memory-mapped, never read whole; a tensor's bytes
//! are copied out only when it is loaded, converted to the dtype asked for on the way.
//!
//! Headers are validated before anything is trusted (the `safetensors` crate checks that offsets
//! are contiguous, inside the file, and match each shape times its dtype size, with overflow
//! checks), so a hostile or truncated file is an error naming it, never a panic or a huge
//! allocation.

mod release;
mod save;

pub(crate) use release::release;
pub use save::save_safetensors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use tensor::quant::fp8;
use tensor::{DType, Device, HostData, Tensor};

use crate::{Error, Result};

/// One memory-mapped safetensors file and its validated header.
struct File {
    path: PathBuf,
    mmap: Mmap,
    /// Where the data section starts (8-byte length + header).
    data_start: usize,
    metadata: Metadata,
}

/// The tensors of a checkpoint, by name, across its files.
pub struct Checkpoint {
    files: Vec<File>,
    index: HashMap<String, usize>,
    /// The tile of FP8 weights' scales ([`Checkpoint::set_fp8_block`]).
    fp8_block: [usize; 2],
}

/// What a checkpoint says about one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorMeta {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

fn dtype_of(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::F64 => Some(DType::F64),
        Dtype::BF16 => Some(DType::BF16),
        Dtype::F16 => Some(DType::F16),
        Dtype::U32 => Some(DType::U32),
        Dtype::I64 => Some(DType::I64),
        // Read as i64 (ids saved by tools that use 32-bit ints).
        Dtype::I32 => Some(DType::I64),
        _ => None,
    }
}

impl Checkpoint {
    /// Opens a checkpoint directory (`model.safetensors`, or the shards of
    /// `model.safetensors.index.json`), or a single `.safetensors` file.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let files: Vec<PathBuf> = if path.is_file() {
            vec![path.to_path_buf()]
        } else if path.join("model.safetensors.index.json").is_file() {
            shard_files(&path.join("model.safetensors.index.json"))?
        } else if path.join("model.safetensors").is_file() {
            vec![path.join("model.safetensors")]
        } else if path.is_dir() {
            return Err(Error::format(path, "no model.safetensors or model.safetensors.index.json in this directory"));
        } else {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ));
        };
        let mut checkpoint = Checkpoint { files: Vec::new(), index: HashMap::new(), fp8_block: fp8::BLOCK };
        for file in files {
            checkpoint.add_file(&file)?;
        }
        Ok(checkpoint)
    }

    fn add_file(&mut self, path: &Path) -> Result<()> {
        let handle = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and private to this process. If another process truncates
        // the file while it is mapped, reads could fault; checkpoints are not edited while a
        // model loads from them, which is the contract of every memory-mapping loader.
        let mmap = unsafe { Mmap::map(&handle) }.map_err(|e| Error::io(path, e))?;
        let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| {
            // The crate's errors for a bad shape or byte count do not say which tensor; find it.
            let detail = match diagnose(&mmap) {
                Some(found) => format!("{e}: {found}"),
                None => e.to_string(),
            };
            Error::format(path, format!("not a valid safetensors file: {detail}"))
        })?;
        let file_index = self.files.len();
        for name in metadata.tensors().keys() {
            if self.index.insert(name.clone(), file_index).is_some() {
                return Err(Error::format(path, format!("tensor {name} appears in more than one file")));
            }
        }
        self.files.push(File { path: path.to_path_buf(), mmap, data_start: 8 + header_len, metadata });
        Ok(())
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.index.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn entry(&self, name: &str) -> Option<(&File, &TensorInfo)> {
        let file = &self.files[*self.index.get(name)?];
        Some((file, file.metadata.info(name)?))
    }

    /// The dtype a tensor is stored in, if the loader reads it.
    pub fn stored_dtype(&self, name: &str) -> Option<DType> {
        self.meta(name).map(|m| m.dtype)
    }

    /// The dtype and shape of a tensor as it loads, without reading it (an FP8 weight loads
    /// dequantized, as bf16 unless asked otherwise: see [`Checkpoint::load`]).
    pub fn meta(&self, name: &str) -> Option<TensorMeta> {
        let (_, info) = self.entry(name)?;
        let dtype = if info.dtype == Dtype::F8_E4M3 { DType::BF16 } else { dtype_of(info.dtype)? };
        Some(TensorMeta { dtype, shape: info.shape.clone() })
    }

    /// Whether tensor `name` is stored as FP8 E4M3.
    pub fn is_fp8(&self, name: &str) -> bool {
        self.entry(name).is_some_and(|(_, info)| info.dtype == Dtype::F8_E4M3)
    }

    /// The tile FP8 weights' `weight_scale_inv` scales cover, [rows, cols]: the config's
    /// `quantization_config.weight_block_size` (DeepSeek-V3's [128, 128] until set).
    pub fn set_fp8_block(&mut self, block: [usize; 2]) {
        self.fp8_block = block;
    }

    /// The bytes of a u8 tensor (MXFP4 codes and scales) and its shape, borrowed from the map;
    /// [`Checkpoint::release_tensor`] hands its pages back once they are copied or decoded.
    pub fn u8_bytes(&self, name: &str) -> Result<(&[u8], &[usize])> {
        let (file, info) =
            self.entry(name).ok_or_else(|| Error::format(&self.describe(), format!("missing tensor {name}")))?;
        if info.dtype != Dtype::U8 {
            return Err(Error::format(&file.path, format!("tensor {name} has dtype {:?}, expected U8", info.dtype)));
        }
        Ok((self.bytes_of(file, info, name)?, &info.shape))
    }

    /// Hands a tensor's pages back (see `release`); nothing happens for an unknown name.
    pub fn release_tensor(&self, name: &str) {
        if let Some((file, info)) = self.entry(name) {
            let (start, end) = info.data_offsets;
            release(&file.mmap, file.data_start + start, end - start);
        }
    }

    fn bytes_of<'a>(&self, file: &'a File, info: &TensorInfo, name: &str) -> Result<&'a [u8]> {
        let (start, end) = info.data_offsets;
        file.mmap
            .get(file.data_start + start..file.data_start + end)
            .ok_or_else(|| Error::format(&file.path, format!("tensor {name} lies outside the file")))
    }

    /// An FP8 E4M3 weight's shape and its `{name}_scale_inv` tile scales, checked against the
    /// tile (`weight_block_size`).
    fn fp8_scales(&self, name: &str, file: &File, info: &TensorInfo) -> Result<([usize; 2], Vec<f32>)> {
        let [rows, cols] = match *info.shape.as_slice() {
            [r, c] => [r, c],
            _ => {
                return Err(Error::format(
                    &file.path,
                    format!("tensor {name} is FP8 with shape {:?}; block scales cover matrices only", info.shape),
                ));
            }
        };
        let scale_name = format!("{name}_scale_inv");
        let scale_meta = self.meta(&scale_name).ok_or_else(|| {
            Error::format(
                &file.path,
                format!("tensor {name} is FP8 (E4M3) but {scale_name}, its block scales, is missing"),
            )
        })?;
        let want = fp8::scale_shape(rows, cols, self.fp8_block);
        if scale_meta.shape != want {
            return Err(Error::format(
                &file.path,
                format!(
                    "tensor {scale_name} has shape {:?}; a [{rows}, {cols}] weight in {}x{} tiles (weight_block_size) needs {want:?}",
                    scale_meta.shape, self.fp8_block[0], self.fp8_block[1]
                ),
            ));
        }
        let scales: Vec<f32> = self.load(&scale_name, Some(DType::F32), &Device::cpu())?.to_vec()?;
        Ok(([rows, cols], scales))
    }

    /// An FP8 E4M3 weight dequantized in f32 with its `{name}_scale_inv` tile scales, as
    /// DeepSeek's `weight_dequant` does, then converted to `dtype` (bf16 by default, as
    /// DeepSeek's own `fp8_cast_bf16` stores it). Matrices the model multiplies are kept as
    /// FP8_E4M3 blocks instead ([`Checkpoint::fp8_blocks`]) when the weights keep their dtype.
    fn load_fp8(
        &self,
        name: &str,
        file: &File,
        info: &TensorInfo,
        dtype: Option<DType>,
        device: &Device,
    ) -> Result<Tensor> {
        let ([rows, cols], scales) = self.fp8_scales(name, file, info)?;
        let values =
            fp8::dequantize_block_scaled(self.bytes_of(file, info, name)?, &scales, rows, cols, self.fp8_block)
                .map_err(|e| Error::format(&file.path, format!("tensor {name}: {e}")))?;
        self.release_tensor(name);
        if crate::finite::check_finite()
            && let Some(i) = values.iter().position(|v| !v.is_finite())
        {
            return Err(Error::format(
                &file.path,
                format!("tensor {name} holds {} at flat index {i} (LLM_CHECK_FINITE is on)", values[i]),
            ));
        }
        let host = HostData::F32(values);
        let host = match dtype.unwrap_or(DType::BF16) {
            DType::F32 => host,
            d => host.cast(d),
        };
        Ok(Tensor::from_host(host, info.shape.clone(), device)?)
    }

    /// The FP8 E4M3 weight `name` as FP8_E4M3 blocks (`tensor::quant::fp8::blocks_from_tiles`:
    /// each 32 codes with their tile's scale, 9 bits per weight, computed on as they are), or
    /// None when it is not stored as FP8 or its tiles are not whole blocks (a width or tile
    /// width that is not a multiple of 32; it then loads dequantized).
    pub fn fp8_blocks(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some((file, info)) = self.entry(name) else { return Ok(None) };
        if info.dtype != Dtype::F8_E4M3 {
            return Ok(None);
        }
        let ([rows, cols], scales) = self.fp8_scales(name, file, info)?;
        let blocks = fp8::blocks_from_tiles(self.bytes_of(file, info, name)?, &scales, rows, cols, self.fp8_block)
            .map_err(|e| Error::format(&file.path, format!("tensor {name}: {e}")))?;
        if blocks.is_some() {
            self.release_tensor(name);
        }
        Ok(blocks)
    }

    /// Total bytes of tensor data across the files.
    pub fn data_bytes(&self) -> usize {
        self.files.iter().map(|f| f.mmap.len() - f.data_start).sum()
    }

    /// Loads a tensor onto `device`, converted to `dtype` when given.
    pub fn load(&self, name: &str, dtype: Option<DType>, device: &Device) -> Result<Tensor> {
        let (file, info) = self
            .entry(name)
            .ok_or_else(|| Error::Format { path: self.describe(), msg: format!("missing tensor {name}") })?;
        if info.dtype == Dtype::F8_E4M3 {
            return self.load_fp8(name, file, info, dtype, device);
        }
        let stored = dtype_of(info.dtype).ok_or_else(|| {
            Error::format(
                &file.path,
                format!("tensor {name} has dtype {:?}, which this loader does not read", info.dtype),
            )
        })?;
        let (start, end) = info.data_offsets;
        let bytes = self.bytes_of(file, info, name)?;
        let host = if info.dtype == Dtype::I32 {
            let v: Vec<i32> = bytemuck_cast(bytes);
            HostData::I64(v.into_iter().map(i64::from).collect())
        } else {
            HostData::from_bytes(stored, bytes)?
        };
        release(&file.mmap, file.data_start + start, end - start);
        let check = crate::finite::check_finite();
        let narrowing = matches!(dtype, Some(DType::F16 | DType::BF16))
            && matches!(host.dtype(), DType::F32 | DType::F64)
            && dtype != Some(host.dtype());
        let stored_bad = if check || narrowing { crate::finite::first_non_finite(&host) } else { None };
        if check && let Some((i, x)) = stored_bad {
            return Err(Error::format(
                &file.path,
                format!("tensor {name} holds {x} at flat index {i} (LLM_CHECK_FINITE is on)"),
            ));
        }
        let source = narrowing.then(|| host.clone());
        let host = match dtype {
            Some(d) if d != host.dtype() => host.cast(d),
            _ => host,
        };
        // A finite f32 beyond 65504 becomes inf in f16 (beyond ~3.4e38 in bf16 from f64): say so
        // rather than hand the model an inf it did not have.
        if let Some(source) = source
            && stored_bad.is_none()
            && let Some((i, _)) = crate::finite::first_non_finite(&host)
        {
            let original = match &source {
                HostData::F32(v) => f64::from(v[i]),
                HostData::F64(v) => v[i],
                _ => f64::NAN,
            };
            return Err(Error::format(
                &file.path,
                format!(
                    "tensor {name}: value {original} at flat index {i} overflows {:?} on conversion; load it in a wider dtype",
                    host.dtype()
                ),
            ));
        }
        Ok(Tensor::from_host(host, info.shape.clone(), device)?)
    }

    /// Where the checkpoint lives, for messages.
    pub fn describe(&self) -> PathBuf {
        match self.files.as_slice() {
            [one] => one.path.clone(),
            [first, ..] => first.path.parent().map(Path::to_path_buf).unwrap_or_else(|| first.path.clone()),
            [] => PathBuf::from("<empty checkpoint>"),
        }
    }
}

/// Which tensor of a header the safetensors crate rejected, and why: its shape's element count
/// overflows, its byte count disagrees with its shape and dtype, or its offsets leave the data.
/// Reads only the header bytes the file holds (the length is checked against the file first), so
/// a lying length allocates nothing. None when no single tensor is at fault.
fn diagnose(file: &[u8]) -> Option<String> {
    let n = usize::try_from(u64::from_le_bytes(file.get(..8)?.try_into().ok()?)).ok()?;
    let header = file.get(8..8usize.checked_add(n)?)?;
    let data_len = file.len() - 8 - n;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().filter(|(k, _)| *k != "__metadata__").collect();
    entries.sort_by_key(|(_, v)| v.get("data_offsets").and_then(|o| o.get(0)).and_then(|s| s.as_u64()));
    for (name, v) in entries {
        let dtype: Dtype = serde_json::from_value(v.get("dtype")?.clone()).ok()?;
        let shape: Vec<u64> = serde_json::from_value(v.get("shape")?.clone()).ok()?;
        let offsets: [u64; 2] = serde_json::from_value(v.get("data_offsets")?.clone()).ok()?;
        let bits = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|e| e.checked_mul(dtype.bitsize() as u64));
        let Some(bits) = bits.filter(|b| *b <= usize::MAX as u64) else {
            return Some(format!("tensor {name}: shape {shape:?} has more elements than fit in memory"));
        };
        let [start, end] = offsets;
        if end < start || end > data_len as u64 {
            return Some(format!(
                "tensor {name}: data_offsets [{start}, {end}] do not lie within the {data_len} data bytes"
            ));
        }
        if bits % 8 != 0 || bits / 8 != end - start {
            return Some(format!(
                "tensor {name}: shape {shape:?} of {dtype} needs {} bytes, but data_offsets [{start}, {end}] hold {}",
                bits.div_ceil(8),
                end - start
            ));
        }
    }
    None
}

fn bytemuck_cast(bytes: &[u8]) -> Vec<i32> {
    bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The distinct shard files an index names, in order, resolved next to the index.
fn shard_files(index_path: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index_path).map_err(|e| Error::io(index_path, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::format(index_path, format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::format(index_path, "expected an object field \"weight_map\""))?;
    let dir = index_path.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| Error::format(index_path, format!("weight_map entry {name} is not a file name")))?;
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            return Err(Error::format(
                index_path,
                format!("weight_map entry {name} names {file:?}, which is not a plain file name"),
            ));
        }
        let path = dir.join(file);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::format(index_path, "weight_map is empty"));
    }
    Ok(files)
}
