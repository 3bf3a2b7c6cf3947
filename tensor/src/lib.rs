//! `tensor`: n-dimensional tensors from scratch.
//!
//! - A [`Tensor`] is a [`Layout`] (shape, strides, offset) over a shared [`Buffer`] on a
//!   [`Device`]. View ops (reshape, permute, narrow, broadcast, squeeze) change the layout only;
//!   shapes and strides are [`Dims`], kept inline, so a view or a clone does not allocate.
//! - Ops are defined once, in `ops/<family>.rs`: what they mean, how operands are checked and
//!   broadcast. Every op returns a [`Result`] whose error names the op and the shapes.
//! - Devices implement the object-safe [`Backend`] trait. The CPU backend (`cpu/<family>.rs`) is
//!   the reference; the `gpu` crate implements the same trait with WGSL kernels. Its results
//!   are written into recycled buffers (`cpu/pool.rs`): the last tensor on a buffer gives it
//!   back as it drops, so a decoding step reuses the last step's memory instead of allocating.
//! - [`DType`]: f32 is the working type, f64 serves gradient checks, bf16/f16 are storage (ops
//!   on them compute in f32), u32/i64 hold ids.
//!
//! ```
//! use tensor::{Device, DType, Tensor};
//! let cpu = Device::cpu();
//! let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], &cpu)?;
//! let b = a.matmul(&a.t()?)?.softmax(-1)?;
//! assert_eq!(b.dims(), &[2, 2]);
//! # Ok::<(), tensor::Error>(())
//! ```

pub mod backend;
pub mod cpu;
mod device;
mod dims;
mod display;
mod dtype;
mod error;
pub mod layout;
pub mod ops;
pub mod quant;
mod rng;
mod shape;
mod storage;
mod tensor;
pub mod testing;
mod view;

pub use backend::{AttentionMask, AttentionSpec, Backend, GluActivation, PagedKv, RmsNormSpec, Src};
pub use device::Device;
pub use dims::Dims;
pub use dtype::{DType, Element, FloatElement};
pub use error::{Error, Result, try_array};
pub use layout::Layout;
pub use rng::Rng;
pub use shape::{Axis, Shape};
pub use storage::{Buffer, BufferRef, CpuBuffer, HostData};
pub use tensor::Tensor;

pub use half::{bf16, f16};
