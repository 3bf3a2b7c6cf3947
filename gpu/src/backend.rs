//! `GpuBackend`: the tensor crate's `Backend` on a wgpu device. Each method checks its operands,
//! allocates its output from the pool and records a dispatch of one kernel family; nothing
//! waits until a result is read back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tensor::backend::{AttentionSpec, GluActivation, RmsNormSpec, Src};
use tensor::ops::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use tensor::{Backend, Buffer, BufferRef, DType, Error, HostData, Layout, Result};
use wgpu::util::DeviceExt;

use crate::context::Context;
use crate::counters;
use crate::kernels;
use crate::pipelines::{Kernel, KernelKey, Pipelines};
use crate::pool::{GpuBuffer, Pool};
use crate::recorder::{Batch, Binding, Stats};

pub struct GpuBackend {
    pub(crate) ctx: Context,
    pub(crate) pool: Arc<Pool>,
    pub pipelines: Pipelines,
    batch: Mutex<Batch>,
    pub stats: Stats,
    /// One word kernels set when they meet an id out of range (they cannot return an error);
    /// checked, and cleared, when results are read back.
    error_flag: Arc<wgpu::Buffer>,
    error_flag_used: AtomicBool,
    /// The mappable buffer readbacks land in, kept and grown (up to `MAX_KEPT_READBACK`).
    readback: Mutex<Option<wgpu::Buffer>>,
    uniform_alignment: u64,
    /// Paged attention's block tables, uploaded once per change (see `block_tables`).
    pub(crate) block_tables: crate::block_tables::BlockTables,
}

/// Readbacks up to this size reuse one staging buffer; larger ones (whole prefill logits,
/// weights) get a buffer of their own rather than pinning that much mappable memory.
const MAX_KEPT_READBACK: u64 = 64 << 20;

/// Uploads up to this size are staged in the batch; larger ones (weights at load time) are
/// written straight into their buffer after what is queued has been submitted.
const MAX_STAGED_UPLOAD: usize = 1 << 20;

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBackend({})", self.ctx.describe())
    }
}

impl GpuBackend {
    pub fn new() -> Result<GpuBackend> {
        let ctx = Context::new()?;
        // Buffers may be larger than one binding: such tensors are bound a window at a time.
        let pool = Arc::new(Pool::new(
            ctx.device.clone(),
            ctx.limits.max_buffer_size,
            ctx.limits.max_storage_buffer_binding_size,
        ));
        let error_flag = Arc::new(ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("error flag"),
            contents: &[0u8; 4],
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        }));
        counters::add(&counters::BUFFER_ALLOCATIONS, 1);
        let uniform_alignment = ctx.limits.min_uniform_buffer_offset_alignment.max(16) as u64;
        let stats = Stats::default();
        // `LLM_GPU_PROFILE=1`: time every kernel from the start (see `profile`).
        stats.profile.set(ctx.features.timestamps && std::env::var("LLM_GPU_PROFILE").is_ok_and(|v| v == "1"));
        Ok(GpuBackend {
            ctx,
            pool,
            pipelines: Pipelines::default(),
            batch: Mutex::new(Batch::default()),
            stats,
            error_flag,
            error_flag_used: AtomicBool::new(false),
            readback: Mutex::new(None),
            uniform_alignment,
            block_tables: Default::default(),
        })
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Destroys the wgpu device as a driver reset or an unplugged GPU would: wgpu calls the
    /// device-lost callback, and every later call on this backend fails with the lost-device
    /// advice. For tests of that path, which no real adapter can be made to take on demand.
    pub fn simulate_device_loss(&self) {
        self.ctx.device.destroy();
        // The callback runs when wgpu next polls the device.
        let _ = self.ctx.device.poll(wgpu::PollType::Poll);
    }

    /// Buffers created and reused by the pool so far.
    pub fn pool_counts(&self) -> (u64, u64) {
        (self.pool.created.load(Ordering::Relaxed), self.pool.reused.load(Ordering::Relaxed))
    }

    /// 32-bit words holding `n` elements of `dtype`.
    pub(crate) fn words(n: usize, dtype: DType) -> usize {
        match dtype.size_in_bytes() {
            2 => n.div_ceil(2),
            8 => 2 * n,
            _ => n,
        }
    }

    /// The GPU buffer behind a view, or an error naming `op` if it lives elsewhere.
    pub(crate) fn buffer<'a>(&self, op: &str, src: &Src<'a>) -> Result<&'a GpuBuffer> {
        src.buffer
            .as_any()
            .downcast_ref::<GpuBuffer>()
            .ok_or_else(|| Error::device(op, "a tensor from another device was passed to the GPU"))
    }

    /// A buffer for `n` elements of `dtype`.
    pub(crate) fn alloc(&self, op: &str, n: usize, dtype: DType) -> Result<GpuBuffer> {
        if dtype == DType::F64 {
            return Err(Error::dtype(op, "f64 is not supported on the GPU (gradient checks run on the CPU)"));
        }
        self.ctx.errors.check_lost(op)?;
        let bytes = (Self::words(n, dtype).max(1) * 4) as u64;
        self.check_buffer_size(op, bytes, &format!("a tensor of {n} {dtype} elements"))?;
        self.pool.allocate(bytes, op)
    }

    /// Refuses a tensor no buffer of this adapter can hold. One over the storage binding limit
    /// but within `max_buffer_size` is allowed: the ops that take such tensors bind them a
    /// window at a time (`split`), the others refuse them when they dispatch.
    fn check_buffer_size(&self, op: &str, bytes: u64, what: &str) -> Result<()> {
        let (largest, binding) = (self.ctx.limits.max_buffer_size, self.binding_limit());
        if bytes > largest {
            return Err(Error::backend(
                op,
                format!(
                    "{what} needs {bytes} bytes, more than this adapter's largest buffer of {largest} bytes (over its storage binding limit of {binding} bytes a tensor is split across bindings, but it must still fit one buffer)"
                ),
            ));
        }
        Ok(())
    }

    /// The most bytes one storage binding may hold (`LLM_GPU_MAX_BINDING_MIB` may lower it).
    pub fn binding_limit(&self) -> u64 {
        self.ctx.limits.max_storage_buffer_binding_size
    }

    /// Whether `buffer` is too large to bind whole, so ops must bind it a window at a time.
    pub(crate) fn is_split(&self, buffer: &wgpu::Buffer) -> bool {
        buffer.size() > self.binding_limit()
    }

    /// The kernel `key` describes, compiled on first use.
    pub(crate) fn kernel<K: KernelKey>(&self, key: &K) -> Result<Arc<Kernel>> {
        self.pipelines.get(&self.ctx, key)
    }

    /// Records a dispatch binding each buffer whole; submits the batch when it is full.
    pub(crate) fn dispatch<P: bytemuck::Pod>(
        &self,
        op: &str,
        kernel: Arc<Kernel>,
        params: &P,
        buffers: &[&Arc<wgpu::Buffer>],
        groups: [u32; 3],
    ) -> Result<()> {
        let bindings = buffers.iter().map(|b| Binding::whole(b)).collect();
        self.dispatch_bound(op, kernel, params, bindings, groups)
    }

    /// Records a dispatch with its bindings, whole buffers or windows of them. A buffer over
    /// the binding limit bound whole is refused here, before anything is recorded: every op
    /// that has no split path (see `split`) ends here with a clear error rather than a wgpu
    /// validation failure of the whole batch.
    pub(crate) fn dispatch_bound<P: bytemuck::Pod>(
        &self,
        op: &str,
        kernel: Arc<Kernel>,
        params: &P,
        bindings: Vec<Binding>,
        groups: [u32; 3],
    ) -> Result<()> {
        let limit = self.binding_limit();
        if let Some(big) = bindings.iter().find(|b| b.size() > limit) {
            return Err(Error::backend(
                op,
                format!(
                    "a tensor of {} bytes is over this adapter's storage binding limit of {limit} bytes, and {op} cannot split it across bindings (on the GPU only upload and download, index_select along dim 0, matmul with it as the weight, copies of views inside one binding's range, and a quantized matrix's row gather and products can)",
                    big.size()
                ),
            ));
        }
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        batch.dispatch(kernel, bytemuck::bytes_of(params), bindings, groups, self.uniform_alignment);
        if batch.should_flush() {
            batch.submit(&self.ctx, &self.stats, op)?;
        }
        Ok(())
    }

    /// Submits everything recorded.
    pub(crate) fn flush(&self, op: &str) -> Result<()> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner()).submit(&self.ctx, &self.stats, op)
    }

    /// The error flag, for kernels that check ids.
    pub(crate) fn error_flag(&self) -> Arc<wgpu::Buffer> {
        self.error_flag_used.store(true, Ordering::Relaxed);
        self.error_flag.clone()
    }

    /// Reads `bytes` bytes of `buffer` from byte `offset` (a multiple of 4) back, after
    /// everything recorded has run, together with the error flag when a kernel since the last
    /// check may have set it: one wait for both, so checking ids costs no extra drain. Reports
    /// an out-of-range id as the error of `op`.
    fn read_back(&self, op: &str, buffer: &Arc<wgpu::Buffer>, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        let size = bytes.div_ceil(4) * 4;
        let with_flag = self.error_flag_used.swap(false, Ordering::Relaxed);
        let total = (size + if with_flag { 4 } else { 0 }).max(4);
        counters::add(&counters::READBACKS, 1);
        let mut kept = self.readback.lock().unwrap_or_else(|p| p.into_inner());
        let staging = if total <= MAX_KEPT_READBACK {
            if kept.as_ref().is_none_or(|b| b.size() < total) {
                counters::add(&counters::BUFFER_ALLOCATIONS, 1);
                *kept = Some(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: total.next_power_of_two().max(1 << 16),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }));
            }
            Arc::new(kept.as_ref().expect("just created").clone())
        } else {
            counters::add(&counters::BUFFER_ALLOCATIONS, 1);
            Arc::new(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: total,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }))
        };
        {
            let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
            if size > 0 {
                batch.copy_at(buffer.clone(), offset, staging.clone(), 0, size);
            }
            if with_flag {
                batch.copy_at(self.error_flag.clone(), 0, staging.clone(), size, 4);
            }
            batch.submit(&self.ctx, &self.stats, op)?;
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        let slice = staging.slice(..total);
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::backend(op, format!("waiting for the GPU failed: {e}")))?;
        match receiver.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::backend(op, format!("reading back from the GPU failed: {e}"))),
            Err(_) => return Err(Error::backend(op, "the GPU never answered the readback")),
        }
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::backend(op, format!("mapping the readback failed: {e}")))?
            .to_vec();
        staging.unmap();
        drop(kept);
        self.ctx.errors.take(op)?;
        if with_flag && data[size as usize..size as usize + 4].iter().any(|&b| b != 0) {
            self.ctx.queue.write_buffer(&self.error_flag, 0, &[0u8; 4]);
            self.flush(op)?;
            return Err(Error::index(
                op,
                "an index or id was out of range in an earlier GPU op (index_select, gather, expert_matmul, qindex_select, qexpert_matmul or an i64 -> u32 cast)",
            ));
        }
        Ok(data[..bytes as usize].to_vec())
    }

    fn output(buffer: GpuBuffer) -> BufferRef {
        Arc::new(buffer)
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        self.ctx.describe()
    }

    fn upload(&self, data: &HostData) -> Result<BufferRef> {
        if data.dtype() == DType::F64 {
            return Err(Error::dtype(
                "to",
                "f64 tensors cannot move to the GPU (WGSL has no f64); convert to f32 first",
            ));
        }
        self.ctx.errors.check_lost("to")?;
        let bytes = data.as_bytes();
        let size = (bytes.len().div_ceil(4).max(1) * 4) as u64;
        self.check_buffer_size("to", size, &format!("a tensor of {} bytes", bytes.len()))?;
        let buffer = self.pool.allocate(size, "to")?;
        counters::add(&counters::BYTES_UPLOADED, bytes.len() as u64);
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        if bytes.len() <= MAX_STAGED_UPLOAD {
            // Staged in the batch and copied in order with the queued dispatches, so a recycled
            // buffer is not overwritten before earlier work has read it.
            if bytes.len().is_multiple_of(4) {
                batch.upload(bytes, buffer.buffer.clone());
            } else {
                let mut padded = bytes.to_vec();
                padded.resize(size as usize, 0);
                batch.upload(&padded, buffer.buffer.clone());
            }
            if batch.should_flush() {
                batch.submit(&self.ctx, &self.stats, "to")?;
            }
        } else {
            // Submitting what is queued first keeps the same order for a large write.
            batch.submit(&self.ctx, &self.stats, "to")?;
            let whole = bytes.len() / 4 * 4;
            self.ctx.queue.write_buffer(&buffer.buffer, 0, &bytes[..whole]);
            if whole < bytes.len() {
                let mut tail = bytes[whole..].to_vec();
                tail.resize(4, 0);
                self.ctx.queue.write_buffer(&buffer.buffer, whole as u64, &tail);
            }
        }
        Ok(Self::output(buffer))
    }

    fn download(&self, src: Src) -> Result<HostData> {
        let n = src.layout.elem_count();
        // A contiguous copy is held until the readback has been recorded: dropped earlier, its
        // buffer would go back to the pool, and another thread's op could write into it first.
        // A contiguous view starting on a word is read straight from its place, with no kernel
        // (so any run of rows of a tensor split across bindings can be read back).
        let copied;
        let start = (src.layout.offset() * src.dtype.size_in_bytes()) as u64;
        let (buffer, offset) = if src.layout.is_contiguous() && start.is_multiple_of(4) {
            (self.buffer("download", &src)?.buffer.clone(), start)
        } else {
            copied = kernels::copy::contiguous(self, "download", src)?;
            (copied.buffer.clone(), 0)
        };
        let bytes = (n * src.dtype.size_in_bytes()) as u64;
        let data = self.read_back("download", &buffer, offset, bytes)?;
        HostData::from_bytes(src.dtype, &data)
    }

    fn synchronize(&self) -> Result<()> {
        if self.error_flag_used.load(Ordering::Relaxed) {
            // The wait that reads the flag is the synchronisation.
            return self.read_back("synchronize", &self.error_flag.clone(), 0, 0).map(|_| ());
        }
        self.flush("synchronize")?;
        counters::add(&counters::READBACKS, 1);
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::backend("synchronize", format!("waiting for the GPU failed: {e}")))?;
        self.ctx.errors.take("synchronize")
    }

    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<BufferRef> {
        kernels::copy::fill(self, dtype, len, value)
    }

    fn copy(&self, src: Src) -> Result<BufferRef> {
        Ok(Self::output(kernels::copy::contiguous(self, "contiguous", src)?))
    }

    fn copy_into(&self, dst: &dyn Buffer, dst_layout: &Layout, src: Src) -> Result<()> {
        let dst = dst
            .as_any()
            .downcast_ref::<GpuBuffer>()
            .ok_or_else(|| Error::device("copy_into", "destination is not a GPU buffer"))?;
        // The source may be a view of the destination: copy it out first.
        let src_buffer = self.buffer("copy_into", &src)?;
        if Arc::ptr_eq(&src_buffer.buffer, &dst.buffer) {
            let tmp = kernels::copy::contiguous(self, "copy_into", src)?;
            let layout = Layout::contiguous(src.layout.shape().clone());
            return kernels::copy::copy_view(
                self,
                "copy_into",
                Src { buffer: &tmp, layout: &layout, dtype: src.dtype },
                dst,
                dst_layout,
            );
        }
        kernels::copy::copy_view(self, "copy_into", src, dst, dst_layout)
    }

    fn cast(&self, src: Src, dtype: DType) -> Result<BufferRef> {
        kernels::copy::cast(self, src, dtype)
    }

    fn unary(&self, op: UnaryOp, src: Src) -> Result<BufferRef> {
        kernels::unary::unary(self, op, src)
    }

    fn binary(&self, op: BinaryOp, lhs: Src, rhs: Src) -> Result<BufferRef> {
        kernels::binary::binary(self, op, lhs, rhs)
    }

    fn compare(&self, op: CmpOp, lhs: Src, rhs: Src) -> Result<BufferRef> {
        kernels::compare::compare(self, op, lhs, rhs)
    }

    fn where_cond(&self, cond: Src, on_true: Src, on_false: Src) -> Result<BufferRef> {
        kernels::compare::where_cond(self, cond, on_true, on_false)
    }

    fn reduce(&self, op: ReduceOp, src: Src, axis: usize) -> Result<BufferRef> {
        kernels::reduce::reduce(self, op, src, axis)
    }

    fn cumsum(&self, src: Src, axis: usize) -> Result<BufferRef> {
        kernels::cumsum::cumsum(self, src, axis)
    }

    fn softmax(&self, src: Src, log: bool) -> Result<BufferRef> {
        kernels::softmax::softmax(self, src, log)
    }

    fn topk(&self, src: Src, k: usize) -> Result<(BufferRef, BufferRef)> {
        kernels::topk::topk(self, src, k)
    }

    fn matmul(&self, lhs: Src, rhs: Src) -> Result<BufferRef> {
        kernels::matmul::matmul(self, lhs, rhs)
    }

    fn expert_matmul(&self, x: Src, weights: Src, ids: Src) -> Result<BufferRef> {
        kernels::matmul::expert_matmul(self, x, weights, ids)
    }

    fn matmul_glu(&self, x: Src, gate: Src, up: Src, act: GluActivation) -> Result<BufferRef> {
        kernels::matmul::matmul_glu(self, x, gate, up, act)
    }

    fn matmul_each(&self, x: Src, weights: &[Src]) -> Result<BufferRef> {
        kernels::matmul::matmul_each(self, x, weights)
    }

    fn qmatmul(&self, x: Src, words: Src, ty: tensor::quant::GgmlType, n: usize, k: usize) -> Result<BufferRef> {
        kernels::qmatmul::qmatmul(self, x, words, ty, n, k)
    }

    fn qindex_select(
        &self,
        words: Src,
        ty: tensor::quant::GgmlType,
        n: usize,
        k: usize,
        ids: Src,
    ) -> Result<BufferRef> {
        kernels::qmatmul::qindex_select(self, words, ty, n, k, ids)
    }

    fn qexpert_matmul(
        &self,
        x: Src,
        words: Src,
        ty: tensor::quant::GgmlType,
        shape: [usize; 3],
        ids: Src,
    ) -> Result<BufferRef> {
        let [experts, n, k] = shape;
        kernels::qmatmul::qexpert_matmul(self, x, words, ty, experts, n, k, ids)
    }

    fn index_select(&self, src: Src, axis: usize, ids: Src) -> Result<BufferRef> {
        kernels::index::index_select(self, src, axis, ids)
    }

    fn index_add(&self, dst: Src, axis: usize, ids: Src, src: Src) -> Result<BufferRef> {
        kernels::index::index_add(self, dst, axis, ids, src)
    }

    fn gather(&self, src: Src, axis: usize, index: Src) -> Result<BufferRef> {
        kernels::index::gather(self, src, axis, index)
    }

    fn scatter_add(&self, dst: Src, axis: usize, index: Src, src: Src) -> Result<BufferRef> {
        kernels::index::scatter_add(self, dst, axis, index, src)
    }

    fn concat(&self, parts: &[Src], axis: usize) -> Result<BufferRef> {
        kernels::concat::concat(self, parts, axis)
    }

    fn rms_norm(&self, x: Src, weight: Option<Src>, spec: RmsNormSpec) -> Result<BufferRef> {
        kernels::rms_norm::rms_norm(self, x, weight, spec)
    }

    fn rope(&self, x: Src, cos: Src, sin: Src, interleaved: bool) -> Result<BufferRef> {
        kernels::rope::rope(self, x, cos, sin, interleaved)
    }

    fn rms_norm_rope(
        &self,
        x: Src,
        weight: Option<Src>,
        spec: RmsNormSpec,
        rope: (Src, Src, bool),
    ) -> Result<BufferRef> {
        kernels::rms_norm::rms_norm_rope(self, x, weight, spec, rope)
    }

    fn add_rms_norm(&self, x: Src, r: Src, weight: Option<Src>, spec: RmsNormSpec) -> Result<(BufferRef, BufferRef)> {
        kernels::rms_norm::add_rms_norm(self, x, r, weight, spec)
    }

    fn rope_into(
        &self,
        x: Src,
        norm: Option<(Option<Src>, RmsNormSpec)>,
        rope: (Src, Src, bool),
        (dst, dst_layout): (&dyn Buffer, &Layout),
        values: Option<(Src, &dyn Buffer, &Layout)>,
    ) -> Result<()> {
        fn gpu(b: &dyn Buffer) -> Result<&GpuBuffer> {
            b.as_any()
                .downcast_ref::<GpuBuffer>()
                .ok_or_else(|| Error::device("rope_into", "destination is not a GPU buffer"))
        }
        let values = match values {
            Some((v, vy, layout)) => Some((v, gpu(vy)?, layout)),
            None => None,
        };
        kernels::rms_norm::rope_into(self, x, norm, rope, (gpu(dst)?, dst_layout), values)
    }

    fn glu(&self, gate: Src, up: Src, act: GluActivation) -> Result<BufferRef> {
        kernels::glu::glu(self, gate, up, act)
    }

    fn attention(&self, q: Src, k: Src, v: Src, sinks: Option<Src>, spec: &AttentionSpec) -> Result<BufferRef> {
        kernels::attention::attention(self, q, k, v, sinks, spec, None)
    }

    fn paged_attention(
        &self,
        q: Src,
        kv: tensor::PagedKv,
        sinks: Option<Src>,
        spec: &AttentionSpec,
    ) -> Result<BufferRef> {
        kernels::attention::paged_attention(self, q, kv, sinks, spec)
    }
}
