//! `Var`: a differentiable value. It wraps a `Tensor`, and, when it was produced by an op on
//! values that need gradients, the node recording that op (its inputs and backward rule).
//! Leaves are the values gradients are taken with respect to: model parameters and inputs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tensor::{DType, Device, Error, Result, Shape, Tensor};

use crate::graph::{Backward, Node};
use crate::no_grad::is_grad_enabled;

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A tensor that remembers how it was computed. Cloning is cheap and shares the value.
#[derive(Clone)]
pub struct Var(pub(crate) Arc<VarInner>);

pub(crate) struct VarInner {
    pub(crate) id: usize,
    /// The value. Only leaves change it (an optimizer step, a checkpoint load).
    pub(crate) value: RwLock<Tensor>,
    pub(crate) requires_grad: bool,
    /// The op that produced this value; `None` for leaves and constants, and taken away once
    /// `backward` has used it, so the graph is freed.
    pub(crate) node: Mutex<Option<Node>>,
}

impl Var {
    fn make(value: Tensor, requires_grad: bool, node: Option<Node>) -> Var {
        Var(Arc::new(VarInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            value: RwLock::new(value),
            requires_grad,
            node: Mutex::new(node),
        }))
    }

    /// A leaf that gradients are taken with respect to (a parameter or an input being checked).
    pub fn parameter(value: Tensor) -> Var {
        Var::make(value, true, None)
    }

    /// A value no gradient flows into (data, masks, targets).
    pub fn constant(value: Tensor) -> Var {
        Var::make(value, false, None)
    }

    /// The result of an op on `inputs`, recording `rule` for the backward pass when gradients
    /// are enabled and some input needs one; otherwise a constant that records nothing.
    pub fn from_op(value: Tensor, inputs: &[&Var], rule: impl Backward + 'static) -> Var {
        let needed = is_grad_enabled() && inputs.iter().any(|v| v.requires_grad());
        if !needed {
            return Var::constant(value);
        }
        let node = Node::new(inputs.iter().map(|v| (*v).clone()).collect(), Box::new(rule));
        Var::make(value, true, Some(node))
    }

    /// A unique id (gradients are looked up by it).
    pub fn id(&self) -> usize {
        self.0.id
    }

    /// Whether gradients flow into this value.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Whether this is a leaf (no recorded op).
    pub fn is_leaf(&self) -> bool {
        self.0.node.lock().map(|n| n.is_none()).unwrap_or(true)
    }

    /// The current value.
    pub fn value(&self) -> Tensor {
        self.0.value.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces a leaf's value (optimizer steps, loading weights). The new value must have the
    /// same shape and dtype.
    pub fn set_value(&self, value: Tensor) -> Result<()> {
        if !self.is_leaf() {
            return Err(Error::shape("set_value", "only a leaf's value can be replaced"));
        }
        let mut slot = self.0.value.write().unwrap_or_else(|p| p.into_inner());
        if slot.shape() != value.shape() || slot.dtype() != value.dtype() {
            return Err(Error::shape(
                "set_value",
                format!(
                    "new value {:?} {} does not match {:?} {}",
                    value.shape(),
                    value.dtype(),
                    slot.shape(),
                    slot.dtype()
                ),
            ));
        }
        *slot = value;
        Ok(())
    }

    /// Replaces a leaf's value with one of any shape, dtype or device (moving a model, changing
    /// its dtype).
    pub fn replace_value(&self, value: Tensor) -> Result<()> {
        if !self.is_leaf() {
            return Err(Error::shape("replace_value", "only a leaf's value can be replaced"));
        }
        *self.0.value.write().unwrap_or_else(|p| p.into_inner()) = value;
        Ok(())
    }

    /// The same value, cut off from the graph.
    pub fn detach(&self) -> Var {
        Var::constant(self.value())
    }

    pub fn shape(&self) -> Shape {
        self.value().shape().clone()
    }
    pub fn dims(&self) -> Vec<usize> {
        self.value().dims().to_vec()
    }
    pub fn rank(&self) -> usize {
        self.value().rank()
    }
    pub fn dtype(&self) -> DType {
        self.value().dtype()
    }
    pub fn device(&self) -> Device {
        self.value().device().clone()
    }
    pub fn elem_count(&self) -> usize {
        self.value().elem_count()
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var(id={}, requires_grad={}, {:?})", self.id(), self.requires_grad(), self.value())
    }
}

impl From<Tensor> for Var {
    /// Plain tensors enter the graph as constants.
    fn from(t: Tensor) -> Var {
        Var::constant(t)
    }
}
