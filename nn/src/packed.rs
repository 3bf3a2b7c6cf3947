//! `PackedSlot`: where a `Linear`, an `Embedding` or the routed `Experts` keep their weights
//! block-quantized ([`QMatrix`]es straight from a GGUF file), so that CPU inference multiplies on
//! the blocks instead of on an f32 copy. On a GPU they keep their blocks on the device instead
//! ([`DeviceQMatrix`]), multiplied and gathered there by WGSL kernels. A loader fills the slot through [`crate::Module::visit_packed`] and leaves
//! the `Var` weight as its storage-free placeholder (right shape, no data).
//!
//! Packed weights are for inference: they have no gradient, and a forward pass that records
//! gradients through one is an error (training loads f32 weights instead).

use std::sync::{Arc, RwLock};

use tensor::Error;
use tensor::quant::{DeviceQMatrix, QMatrix};

#[derive(Default)]
pub struct PackedSlot(RwLock<Option<Packed>>);

/// What a slot holds: one matrix (a `Linear`'s or `Embedding`'s weight), or one per routed
/// expert (an `Experts` projection stacked as [E, out, in]).
#[derive(Clone)]
enum Packed {
    Matrix(Arc<QMatrix>),
    Stack(Arc<[QMatrix]>),
    /// A `Linear`'s or `Embedding`'s weight, or the stacked experts of a projection, on a GPU.
    Device(Arc<DeviceQMatrix>),
}

impl PackedSlot {
    fn read(&self) -> Option<Packed> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn write(&self, packed: Option<Packed>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = packed;
    }

    /// The packed weight, if a loader set one.
    pub fn get(&self) -> Option<Arc<QMatrix>> {
        match self.read() {
            Some(Packed::Matrix(q)) => Some(q),
            _ => None,
        }
    }

    /// The packed experts' matrices, if a loader set them.
    pub fn stack(&self) -> Option<Arc<[QMatrix]>> {
        match self.read() {
            Some(Packed::Stack(s)) => Some(s),
            _ => None,
        }
    }

    /// The packed weight kept on a device, if a loader set one.
    pub fn device(&self) -> Option<Arc<DeviceQMatrix>> {
        match self.read() {
            Some(Packed::Device(q)) => Some(q),
            _ => None,
        }
    }

    /// Keeps a weight (or a stack of experts) on its device.
    pub fn set_device(&self, weight: DeviceQMatrix) {
        self.write(Some(Packed::Device(Arc::new(weight))));
    }

    pub fn set(&self, weight: Option<QMatrix>) {
        self.write(weight.map(|q| Packed::Matrix(Arc::new(q))));
    }

    /// One matrix per expert, in expert order.
    pub fn set_stack(&self, experts: Vec<QMatrix>) {
        self.write(Some(Packed::Stack(experts.into())));
    }

    pub fn is_set(&self) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

/// The error for a gradient-recording pass through a packed weight.
pub(crate) fn no_gradient(q: &QMatrix, op: &str) -> Error {
    no_gradient_of(q.ty(), q.rows(), q.cols(), op)
}

/// [`no_gradient`] for a weight kept on a device.
pub(crate) fn no_gradient_device(q: &DeviceQMatrix, op: &str) -> Error {
    no_gradient_of(q.ty(), q.rows(), q.cols(), op)
}

fn no_gradient_of(ty: tensor::quant::GgmlType, rows: usize, cols: usize, op: &str) -> Error {
    Error::unsupported(
        op.to_string(),
        format!(
            "the weight is kept block-quantized ({ty} [{rows}, {cols}]) and has no gradient; load the model with f32 weights to train through it"
        ),
    )
}
