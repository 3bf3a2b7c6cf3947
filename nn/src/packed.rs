//! `PackedSlot`: where a `Linear`, an `Embedding` or the routed `Experts` keep their weights
//! block-quantized ([`QMatrix`]es straight from a GGUF file), so that CPU inference multiplies on
//! the blocks instead of on an f32 copy. On a GPU they keep their blocks on the device instead
//! ([`DeviceQMatrix`]), multiplied and gathered there by WGSL kernels. A loader fills the slot through [`crate::Module::visit_packed`] and leaves
//! the `Var` weight as its storage-free placeholder (right shape, no data).
//!
//! A `Linear`'s slot may instead hold its bf16 weight as bf16 panels ([`Bf16Panels`]), packed
//! once at load where the CPU multiplies bf16 with AVX512_BF16 or AMX, so that no product
//! repacks it.
//!
//! Packed weights are for inference: they have no gradient, and a forward pass that records
//! gradients through one is an error (training loads f32 weights instead).

use std::sync::{Arc, RwLock};

use tensor::Error;
use tensor::cpu::bf16_panels::Bf16Panels;
use tensor::quant::{DeviceQMatrix, QMatrix};

#[derive(Default)]
pub struct PackedSlot {
    packed: RwLock<Option<Packed>>,
    /// Whether the owner multiplies by [`Bf16Panels`] (a `Linear`; an embedding gathers rows).
    takes_panels: bool,
}

/// What a slot holds: one matrix (a `Linear`'s or `Embedding`'s weight), or one per routed
/// expert (an `Experts` projection stacked as [E, out, in]).
#[derive(Clone)]
enum Packed {
    Matrix(Arc<QMatrix>),
    Stack(Arc<[QMatrix]>),
    /// A `Linear`'s or `Embedding`'s weight, or the stacked experts of a projection, on a GPU.
    Device(Arc<DeviceQMatrix>),
    /// A `Linear`'s bf16 weight as the bf16 GEMMs' panels.
    Panels(Arc<Bf16Panels>),
}

impl PackedSlot {
    /// A `Linear`'s slot: it may also hold [`Bf16Panels`].
    pub fn for_linear() -> PackedSlot {
        PackedSlot { packed: RwLock::default(), takes_panels: true }
    }

    fn read(&self) -> Option<Packed> {
        self.packed.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn write(&self, packed: Option<Packed>) {
        *self.packed.write().unwrap_or_else(|p| p.into_inner()) = packed;
    }

    /// Whether the owner multiplies by panels ([`PackedSlot::set_panels`]).
    pub fn takes_panels(&self) -> bool {
        self.takes_panels
    }

    /// The weight as bf16 panels, if a loader packed it so.
    pub fn panels(&self) -> Option<Arc<Bf16Panels>> {
        match self.read() {
            Some(Packed::Panels(p)) => Some(p),
            _ => None,
        }
    }

    /// Keeps a `Linear`'s weight as panels; an error for a slot whose owner does not multiply
    /// by them ([`PackedSlot::takes_panels`]).
    pub fn set_panels(&self, panels: Bf16Panels) -> tensor::Result<()> {
        if !self.takes_panels {
            return Err(Error::unsupported("PackedSlot::set_panels", "only a Linear multiplies by bf16 panels"));
        }
        self.write(Some(Packed::Panels(Arc::new(panels))));
        Ok(())
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
        self.packed.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

/// The error for a gradient-recording pass through a packed weight.
pub(crate) fn no_gradient(q: &QMatrix, op: &str) -> Error {
    no_gradient_of(&format!("block-quantized ({} [{}, {}])", q.ty(), q.rows(), q.cols()), "with f32 weights", op)
}

/// [`no_gradient`] for a weight kept on a device.
pub(crate) fn no_gradient_device(q: &DeviceQMatrix, op: &str) -> Error {
    no_gradient_of(&format!("block-quantized ({} [{}, {}])", q.ty(), q.rows(), q.cols()), "with f32 weights", op)
}

/// [`no_gradient`] for a weight kept as bf16 panels.
pub(crate) fn no_gradient_panels(p: &Bf16Panels, op: &str) -> Error {
    no_gradient_of(&format!("as bf16 panels ([{}, {}])", p.rows(), p.cols()), "without packing", op)
}

/// The error for a gradient through a weight kept `kept` (its stored form), which the user
/// avoids by loading the model `instead`.
fn no_gradient_of(kept: &str, instead: &str, op: &str) -> Error {
    Error::unsupported(
        op.to_string(),
        format!("the weight is kept {kept} and has no gradient; load the model {instead} to train through it"),
    )
}
