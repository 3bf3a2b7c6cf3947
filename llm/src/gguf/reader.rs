//! Reading a GGUF file (versions 2 and 3, little-endian): the header, the metadata key-value
//! pairs, the tensor infos, then tensor data at `general.alignment` (32 by default), memory-mapped.
//!
//! Nothing read from the file is trusted before it is checked against the file's size: a count
//! or length is compared with the bytes left before anything is allocated for it, so a hostile
//! file costs at most memory proportional to its size, and every failure is one error naming the
//! file and the field or tensor at fault.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use tensor::quant::GgmlType;

use super::value::{Array, Value, ty, type_name};
use crate::{Error, Result};

/// `GGUF` as the first four bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Arrays of arrays deeper than this are refused (no real file nests at all).
const MAX_NESTING: usize = 4;

/// What the file says about one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml's order: `dims[0]` is the innermost (contiguous) one.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
}

impl TensorInfo {
    /// The shape in row-major order (outermost first), as the rest of the project writes shapes:
    /// a ggml [ne0 = in, ne1 = out] matrix is [out, in].
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// An open GGUF file.
pub struct GgufFile {
    pub path: PathBuf,
    /// Shared so that packed weights can keep borrowing the file after it is read.
    mmap: Arc<Mmap>,
    pub version: u32,
    /// The metadata in file order.
    pub metadata: Vec<(String, Value)>,
    keys: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    pub alignment: u64,
    /// Where the data section starts in the file.
    pub data_start: u64,
}

/// A little-endian reader over the header bytes that says where it failed.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> std::result::Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "{} needs {n} bytes at byte {}, but the file ends after {} more",
                what(),
                self.pos,
                self.left()
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> std::result::Result<[u8; N], String> {
        Ok(self.take(N, what)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count or length of items of at least `min_size` bytes each, checked against the bytes
    /// left so that it can size an allocation.
    fn count(&mut self, min_size: usize, what: &dyn Fn() -> String) -> std::result::Result<usize, String> {
        let at = self.pos;
        let n = self.u64(what)?;
        let fits =
            usize::try_from(n).ok().and_then(|n| n.checked_mul(min_size.max(1))).is_some_and(|b| b <= self.left());
        if !fits {
            return Err(format!(
                "{} is {n} (at byte {at}), more than the {} bytes left in the file can hold",
                what(),
                self.left()
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> std::result::Result<String, String> {
        let n = self.count(1, &|| format!("the length of {}", what()))?;
        let at = self.pos;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{} (at byte {at}) is not valid UTF-8", what()))
    }
}

/// The fewest bytes one value of type `t` takes (for bounding array counts).
fn min_size(t: u32) -> usize {
    match t {
        ty::U8 | ty::I8 | ty::BOOL => 1,
        ty::U16 | ty::I16 => 2,
        ty::U32 | ty::I32 | ty::F32 => 4,
        _ => 8,
    }
}

fn read_value(c: &mut Cursor, t: u32, key: &str, depth: usize) -> std::result::Result<Value, String> {
    let what = || format!("metadata key {key:?}");
    Ok(match t {
        ty::U8 => Value::U8(u8::from_le_bytes(c.array(&what)?)),
        ty::I8 => Value::I8(i8::from_le_bytes(c.array(&what)?)),
        ty::U16 => Value::U16(u16::from_le_bytes(c.array(&what)?)),
        ty::I16 => Value::I16(i16::from_le_bytes(c.array(&what)?)),
        ty::U32 => Value::U32(c.u32(&what)?),
        ty::I32 => Value::I32(i32::from_le_bytes(c.array(&what)?)),
        ty::F32 => Value::F32(f32::from_le_bytes(c.array(&what)?)),
        ty::U64 => Value::U64(c.u64(&what)?),
        ty::I64 => Value::I64(i64::from_le_bytes(c.array(&what)?)),
        ty::F64 => Value::F64(f64::from_le_bytes(c.array(&what)?)),
        ty::BOOL => match c.array::<1>(&what)?[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => return Err(format!("metadata key {key:?}: bool byte is {b}, expected 0 or 1")),
        },
        ty::STRING => Value::String(c.string(&what)?),
        ty::ARRAY => Value::Array(read_array(c, key, depth)?),
        other => return Err(format!("metadata key {key:?} has value type {other}, which GGUF does not define")),
    })
}

fn read_array(c: &mut Cursor, key: &str, depth: usize) -> std::result::Result<Array, String> {
    if depth >= MAX_NESTING {
        return Err(format!("metadata key {key:?}: arrays nested deeper than {MAX_NESTING}"));
    }
    let et = c.u32(&|| format!("the element type of array {key:?}"))?;
    if et > ty::F64 {
        return Err(format!("metadata key {key:?}: array element type {et}, which GGUF does not define"));
    }
    let n = c.count(min_size(et), &|| format!("the length of array {key:?}"))?;
    macro_rules! typed {
        ($variant:ident, $t:ty) => {{
            let bytes = c.take(n * std::mem::size_of::<$t>(), &|| format!("array {key:?}"))?;
            Array::$variant(
                bytes
                    .chunks_exact(std::mem::size_of::<$t>())
                    .map(|b| <$t>::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            )
        }};
    }
    Ok(match et {
        ty::U8 => typed!(U8, u8),
        ty::I8 => typed!(I8, i8),
        ty::U16 => typed!(U16, u16),
        ty::I16 => typed!(I16, i16),
        ty::U32 => typed!(U32, u32),
        ty::I32 => typed!(I32, i32),
        ty::F32 => typed!(F32, f32),
        ty::U64 => typed!(U64, u64),
        ty::I64 => typed!(I64, i64),
        ty::F64 => typed!(F64, f64),
        ty::BOOL => {
            let bytes = c.take(n, &|| format!("array {key:?}"))?;
            if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                return Err(format!("metadata key {key:?}: bool array holds byte {b}, expected 0 or 1"));
            }
            Array::Bool(bytes.iter().map(|&b| b == 1).collect())
        }
        ty::STRING => {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                v.push(c.string(&|| format!("element {i} of array {key:?}"))?);
            }
            Array::String(v)
        }
        _ => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_array(c, key, depth + 1)?);
            }
            Array::Array(v)
        }
    })
}

impl GgufFile {
    /// Opens and validates `path`.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let handle = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: a read-only private map; see `weights::Checkpoint::add_file` for the contract.
        let mmap = unsafe { Mmap::map(&handle) }.map_err(|e| Error::io(path, e))?;
        Self::parse(path, mmap).map_err(|msg| Error::format(path, format!("not a valid GGUF file: {msg}")))
    }

    fn parse(path: &Path, mmap: Mmap) -> std::result::Result<GgufFile, String> {
        let mut c = Cursor { bytes: &mmap, pos: 0 };
        let magic = c.array::<4>(&|| "the magic number".to_string())?;
        if magic != MAGIC {
            return Err(format!("the file starts with {magic:02x?}, not the magic \"GGUF\""));
        }
        let version = c.u32(&|| "the version".to_string())?;
        match version {
            2 | 3 => {}
            1 => return Err("version 1 (32-bit counts) is not supported; convert it with a current llama.cpp".into()),
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
                return Err("the file is big-endian, and only little-endian GGUF is read".into());
            }
            v => return Err(format!("version {v}, expected 2 or 3")),
        }
        // Each tensor info takes at least 8 (name length) + 4 (dims) + 4 (type) + 8 (offset).
        let n_tensors = c.count(24, &|| "the tensor count".to_string())?;
        // Each pair takes at least 8 (key length) + 4 (type) + 1 (value).
        let n_kv = c.count(13, &|| "the metadata key count".to_string())?;
        let mut metadata = Vec::with_capacity(n_kv);
        let mut keys = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = c.string(&|| format!("metadata key {i}"))?;
            let t = c.u32(&|| format!("the type of metadata key {key:?}"))?;
            let value = read_value(&mut c, t, &key, 0)?;
            if keys.insert(key.clone(), metadata.len()).is_some() {
                return Err(format!("metadata key {key:?} appears twice"));
            }
            metadata.push((key, value));
        }
        let alignment = match keys.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
            Some(v) => {
                return Err(format!(
                    "general.alignment is {} ({}), expected a u32 power of two",
                    v.summary(),
                    type_name(v.type_id())
                ));
            }
        };
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors);
        let mut by_name = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = c.string(&|| format!("the name of tensor {i}"))?;
            let n_dims = c.u32(&|| format!("the dimension count of tensor {name}"))?;
            if n_dims > MAX_DIMS {
                return Err(format!("tensor {name} has {n_dims} dimensions, at most {MAX_DIMS} are allowed"));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                dims.push(c.u64(&|| format!("dimension {d} of tensor {name}"))?);
            }
            let type_id = c.u32(&|| format!("the type of tensor {name}"))?;
            let ty = GgmlType::from_id(type_id)
                .ok_or_else(|| format!("tensor {name} has type {type_id}, which is not a known ggml type"))?;
            let offset = c.u64(&|| format!("the data offset of tensor {name}"))?;
            let elements =
                dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).filter(|&e| e <= i64::MAX as u64).ok_or_else(
                    || format!("tensor {name}: dimensions {dims:?} have more elements than fit in memory"),
                )?;
            if dims.first().is_some_and(|&d0| d0 % ty.block_size() as u64 != 0) {
                return Err(format!(
                    "tensor {name}: its rows of {} weights are not a whole number of {ty} blocks of {}",
                    dims[0],
                    ty.block_size()
                ));
            }
            let size = ty
                .bytes_for(elements)
                .ok_or_else(|| format!("tensor {name}: {elements} weights are not a whole number of {ty} blocks"))?;
            if offset % alignment != 0 {
                return Err(format!(
                    "tensor {name}: data offset {offset} is not a multiple of the alignment {alignment}"
                ));
            }
            if by_name.insert(name.clone(), tensors.len()).is_some() {
                return Err(format!("tensor {name} appears twice"));
            }
            tensors.push(TensorInfo { name, dims, ty, offset, size });
        }
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        let data_len = (mmap.len() as u64).saturating_sub(data_start);
        for t in &tensors {
            let end = t.offset.checked_add(t.size);
            if end.is_none_or(|e| e > data_len) {
                return Err(format!(
                    "tensor {}: data [{}, +{}) lies outside the {data_len} bytes of tensor data",
                    t.name, t.offset, t.size
                ));
            }
        }
        let mut order: Vec<&TensorInfo> = tensors.iter().collect();
        order.sort_by_key(|t| t.offset);
        for pair in order.windows(2) {
            if pair[0].offset + pair[0].size > pair[1].offset {
                return Err(format!("tensors {} and {} overlap in the data section", pair[0].name, pair[1].name));
            }
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            mmap: Arc::new(mmap),
            version,
            metadata,
            keys,
            tensors,
            by_name,
            alignment,
            data_start,
        })
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.keys.get(key).map(|&i| &self.metadata[i].1)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor's bytes, borrowed from the map (bounds were checked when the file was opened).
    pub fn bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_start + info.offset) as usize;
        &self.mmap[start..start + info.size as usize]
    }

    /// The whole mapped file, to share with a tensor's users beyond this `GgufFile`, and where
    /// the tensor's bytes start in it.
    pub fn shared_bytes(&self, info: &TensorInfo) -> (Arc<dyn AsRef<[u8]> + Send + Sync>, usize) {
        (self.mmap.clone(), (self.data_start + info.offset) as usize)
    }

    /// Tells the kernel that a tensor's bytes, copied or decoded at load, will not be read through
    /// the map again, so that its pages stop counting towards this process's resident memory
    /// while tensors that borrow the map keep it alive. Advice only: failure changes nothing.
    pub fn release(&self, info: &TensorInfo) {
        crate::weights::release(&self.mmap, (self.data_start + info.offset) as usize, info.size as usize);
    }

    /// A tensor decoded to f32, with its row-major shape.
    pub fn dequantize(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let info = self.tensor(name).ok_or_else(|| Error::format(&self.path, format!("missing tensor {name}")))?;
        if !info.ty.can_dequantize() {
            return Err(Error::format(
                &self.path,
                format!("tensor {name} has type {}, which this project does not decode yet", info.ty),
            ));
        }
        let mut out = vec![0.0f32; info.elements() as usize];
        tensor::quant::dequantize(info.ty, self.bytes(info), &mut out)
            .map_err(|e| Error::format(&self.path, format!("tensor {name}: {e}")))?;
        Ok((out, info.shape()))
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.mmap.len() as u64
    }
}
