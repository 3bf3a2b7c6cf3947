//! `Tensor`: a layout over a shared buffer on a device. Cloning is cheap (the buffer is shared);
//! every op returns a new tensor and leaves its inputs alone.

use std::sync::Arc;

use crate::backend::Src;
use crate::{BufferRef, DType, Device, Element, Error, HostData, Layout, Result, Shape};

#[derive(Clone)]
pub struct Tensor {
    buffer: BufferRef,
    layout: Layout,
    dtype: DType,
    device: Device,
}

/// The last tensor holding a CPU buffer gives its memory to the CPU's pool of output buffers,
/// for the next op of the same size ([`crate::cpu::pool`]).
impl Drop for Tensor {
    fn drop(&mut self) {
        crate::cpu::pool::release(&self.buffer);
    }
}

impl Tensor {
    // ---- construction ---------------------------------------------------------------------------

    /// Wraps a backend buffer. The layout must fit inside the buffer.
    pub fn from_parts(buffer: BufferRef, layout: Layout, dtype: DType, device: Device) -> Tensor {
        Tensor { buffer, layout, dtype, device }
    }

    /// A contiguous tensor of `shape` over a fresh backend buffer.
    pub(crate) fn from_buffer(buffer: BufferRef, shape: Shape, dtype: DType, device: &Device) -> Tensor {
        Tensor { buffer, layout: Layout::contiguous(shape), dtype, device: device.clone() }
    }

    /// Host data shaped as `shape`, uploaded to `device`.
    pub fn from_host(data: HostData, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_elem_count() != Some(data.len()) {
            return Err(Error::shape("from_host", format!("{} elements do not fill shape {shape:?}", data.len())));
        }
        let dtype = data.dtype();
        let buffer = device.backend().upload_owned(data)?;
        Ok(Tensor::from_buffer(buffer, shape, dtype, device))
    }

    /// A tensor from a vector of elements.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::from_host(HostData::from_vec(data), shape, device)
    }

    /// A tensor from a slice of elements.
    pub fn from_slice<T: Element>(data: &[T], shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape, device)
    }

    /// A 0-d tensor holding one value.
    pub fn scalar<T: Element>(value: T, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(vec![value], (), device)
    }

    /// Every element equal to `value`.
    pub fn full(value: f64, shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape
            .checked_elem_count()
            .ok_or_else(|| Error::shape("full", format!("shape {shape:?} has too many elements")))?;
        let buffer = device.backend().full(dtype, n, value)?;
        Ok(Tensor::from_buffer(buffer, shape, dtype, device))
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(0.0, shape, dtype, device)
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, dtype, device)
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape(), self.dtype, &self.device)
    }

    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape(), self.dtype, &self.device)
    }

    pub fn full_like(&self, value: f64) -> Result<Tensor> {
        Tensor::full(value, self.shape(), self.dtype, &self.device)
    }

    /// `start, start + step, ...` below `end`, as a 1-D tensor of `dtype`.
    pub fn arange_step(start: f64, end: f64, step: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::shape("arange", format!("bad range {start}..{end} step {step}")));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let values: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_host(HostData::F64(values).cast(dtype), n, device)
    }

    /// `0, 1, ..., end - 1`.
    pub fn arange(end: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::arange_step(0.0, end as f64, 1.0, dtype, device)
    }

    /// Uniform samples in `[low, high)` from a seeded generator.
    pub fn rand(
        low: f64,
        high: f64,
        shape: impl Into<Shape>,
        dtype: DType,
        rng: &mut crate::Rng,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let values: Vec<f64> = (0..shape.elem_count()).map(|_| low + (high - low) * rng.uniform()).collect();
        Tensor::from_host(HostData::F64(values).cast(dtype), shape, device)
    }

    /// Normal samples with the given mean and standard deviation from a seeded generator.
    pub fn randn(
        mean: f64,
        std: f64,
        shape: impl Into<Shape>,
        dtype: DType,
        rng: &mut crate::Rng,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let values: Vec<f64> = (0..shape.elem_count()).map(|_| mean + std * rng.normal()).collect();
        Tensor::from_host(HostData::F64(values).cast(dtype), shape, device)
    }

    // ---- accessors ---------------------------------------------------------------------------------

    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.layout.dims()
    }
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    pub fn elem_count(&self) -> usize {
        self.layout.elem_count()
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn buffer(&self) -> &BufferRef {
        &self.buffer
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// The extent of one axis (negative counts from the end).
    pub fn dim(&self, axis: impl crate::Axis) -> Result<usize> {
        Ok(self.dims()[axis.resolve(self.rank(), "dim")?])
    }

    /// Whether two tensors share one buffer (views of each other).
    pub fn shares_buffer_with(&self, other: &Tensor) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.buffer), Arc::as_ptr(&other.buffer))
    }

    /// The view backends read.
    pub fn src(&self) -> Src<'_> {
        Src { buffer: self.buffer.as_ref(), layout: &self.layout, dtype: self.dtype }
    }

    /// The same buffer seen through another layout (view ops build on this).
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor { buffer: self.buffer.clone(), layout, dtype: self.dtype, device: self.device.clone() }
    }

    /// A new contiguous tensor on this tensor's device, from a buffer a backend returned.
    pub(crate) fn new_like(&self, buffer: BufferRef, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::from_buffer(buffer, shape.into(), dtype, &self.device)
    }

    // ---- moving between devices, dtypes and the host ---------------------------------------------

    /// This tensor on `device` (a no-op when it is already there).
    pub fn to(&self, device: &Device) -> Result<Tensor> {
        if self.device.same_as(device) {
            return Ok(self.clone());
        }
        let host = self.device.backend().download(self.src())?;
        Tensor::from_host(host, self.shape().clone(), device)
    }

    /// This tensor with its elements converted to `dtype` (a no-op when it already has it).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype == dtype {
            return Ok(self.clone());
        }
        let buffer = self.device.backend().cast(self.src(), dtype)?;
        Ok(self.new_like(buffer, self.shape().clone(), dtype))
    }

    /// A row-major copy, or this tensor itself when it already is one starting at offset 0.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() && self.layout.offset() == 0 {
            return Ok(self.clone());
        }
        let buffer = self.device.backend().copy(self.src())?;
        Ok(self.new_like(buffer, self.shape().clone(), self.dtype))
    }

    /// This tensor where its elements are already row-major and adjacent, at whatever offset
    /// into its buffer (rows of a larger tensor: a decoding step's rows of a resident RoPE
    /// table, one of `matmul_each`'s products), else a contiguous copy. For the kernels that
    /// read a view from its offset; [`Tensor::contiguous`] also moves it to offset 0.
    pub(crate) fn contiguous_in_place(&self) -> Result<Tensor> {
        if self.is_contiguous() { Ok(self.clone()) } else { self.contiguous() }
    }

    /// A copy that shares nothing with this tensor (a fresh buffer even if already contiguous).
    pub fn deep_clone(&self) -> Result<Tensor> {
        let buffer = self.device.backend().copy(self.src())?;
        Ok(self.new_like(buffer, self.shape().clone(), self.dtype))
    }

    /// The elements in row-major order, as host data of this tensor's dtype.
    pub fn to_host(&self) -> Result<HostData> {
        self.device.backend().download(self.src())
    }

    /// The elements in row-major order, converted to `T`.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        Ok(self.to_host()?.to_vec())
    }

    /// The elements of a 2-D tensor as rows.
    pub fn to_vec2<T: Element>(&self) -> Result<Vec<Vec<T>>> {
        if self.rank() != 2 {
            return Err(Error::shape("to_vec2", format!("expected a 2-D tensor, got {:?}", self.shape())));
        }
        let cols = self.dims()[1];
        let flat = self.to_vec::<T>()?;
        Ok(if cols == 0 { vec![Vec::new(); self.dims()[0]] } else { flat.chunks(cols).map(|r| r.to_vec()).collect() })
    }

    /// The value of a one-element tensor.
    pub fn to_scalar<T: Element>(&self) -> Result<T> {
        if self.elem_count() != 1 {
            return Err(Error::shape("to_scalar", format!("expected one element, got shape {:?}", self.shape())));
        }
        Ok(self.to_vec::<T>()?[0])
    }

    /// Writes `src` into this tensor's elements in place. `self` is usually a view (`narrow`)
    /// of a preallocated buffer, such as a KV cache slot. Every tensor sharing the buffer sees
    /// the change: this is the one mutating op, kept for caches and optimizer state.
    pub fn write_from(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::shape(
                "write_from",
                format!("source {:?} does not match destination {:?}", src.shape(), self.shape()),
            ));
        }
        if src.dtype != self.dtype {
            return Err(Error::dtype("write_from", format!("source is {}, destination is {}", src.dtype, self.dtype)));
        }
        self.check_same_device("write_from", src)?;
        self.device.backend().copy_into(self.buffer.as_ref(), &self.layout, src.src())
    }

    /// [`write_from`](Self::write_from) for a source of another float dtype, converted to this
    /// view's as it is written (rounded to nearest even): a decoding step's f32 keys and values
    /// into an f16/bf16 KV cache. Where the backend converts while it copies (the CPU), that is
    /// one op instead of a cast into a new tensor and a copy of it, twice per layer and token.
    pub fn write_converted_from(&self, src: &Tensor) -> Result<()> {
        if src.dtype == self.dtype {
            return self.write_from(src);
        }
        let float = |d: DType| matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16);
        if !float(src.dtype) || !float(self.dtype) {
            return Err(Error::dtype(
                "write_converted_from",
                format!("converts between float dtypes; source is {}, destination is {}", src.dtype, self.dtype),
            ));
        }
        if src.shape() != self.shape() {
            return Err(Error::shape(
                "write_converted_from",
                format!("source {:?} does not match destination {:?}", src.shape(), self.shape()),
            ));
        }
        self.check_same_device("write_converted_from", src)?;
        match self.device.backend().copy_cast_into(self.buffer.as_ref(), &self.layout, self.dtype, src.src()) {
            Err(e) if e.is_unsupported() => self.write_from(&src.to_dtype(self.dtype)?),
            done => done,
        }
    }

    pub(crate) fn check_same_device(&self, op: &str, other: &Tensor) -> Result<()> {
        if !self.device.same_as(&other.device) {
            return Err(Error::device(
                op,
                format!(
                    "operands live on different devices ({} and {}); move one with .to()",
                    self.device, other.device
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_same_dtype(&self, op: &str, other: &Tensor) -> Result<()> {
        if self.dtype != other.dtype {
            return Err(Error::dtype(
                op,
                format!("operands have different dtypes ({} and {})", self.dtype, other.dtype),
            ));
        }
        Ok(())
    }
}
