//! Writing tensors as a safetensors file (`llm train --save`, test fixtures).

use std::borrow::Cow;
use std::path::Path;

use safetensors::tensor::{Dtype, View};
use tensor::{DType, HostData, Tensor};

use crate::{Error, Result};

struct HostView {
    dtype: Dtype,
    shape: Vec<usize>,
    data: HostData,
}

impl View for &HostView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.data.as_bytes())
    }
    fn data_len(&self) -> usize {
        self.data.as_bytes().len()
    }
}

fn safetensors_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::BF16 => Dtype::BF16,
        DType::F16 => Dtype::F16,
        DType::U32 => Dtype::U32,
        DType::I64 => Dtype::I64,
    }
}

/// Writes named tensors (read back from any device) to `path`, with optional string metadata.
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            Ok((
                name.clone(),
                HostView { dtype: safetensors_dtype(t.dtype()), shape: t.dims().to_vec(), data: t.to_host()? },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views.iter().map(|(n, v)| (n.as_str(), v)), metadata, path)
        .map_err(|e| Error::format(path, format!("could not write safetensors: {e}")))
}
