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
pub struct Var(Repr);

#[derive(Clone)]
enum Repr {
    /// Parameters, constants and the results of recorded ops: shared, so a leaf's value can be
    /// replaced in place (an optimizer step) and every clone sees it.
    Shared(Arc<VarInner>),
    /// The result of an op that records nothing (gradients off, or no input needs one): the
    /// tensor itself and an id, no shared cell. Inference runs every op this way, and the cell
    /// was a heap allocation per op (105 of a decoded token's 364 on the 4-layer fixture).
    Value { id: usize, value: Tensor },
}

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
        Var(Repr::Shared(Arc::new(VarInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            value: RwLock::new(value),
            requires_grad,
            node: Mutex::new(node),
        })))
    }

    /// The shared cell, or `None` for an unrecorded op's result.
    fn shared(&self) -> Option<&VarInner> {
        match &self.0 {
            Repr::Shared(inner) => Some(inner),
            Repr::Value { .. } => None,
        }
    }

    /// The op that produced this value, where one was recorded (see [`VarInner::node`]).
    pub(crate) fn node(&self) -> Option<&Mutex<Option<Node>>> {
        self.shared().map(|inner| &inner.node)
    }

    /// A leaf that gradients are taken with respect to (a parameter or an input being checked).
    pub fn parameter(value: Tensor) -> Var {
        Var::make(value, true, None)
    }

    /// A value no gradient flows into (data, masks, targets).
    pub fn constant(value: Tensor) -> Var {
        Var::make(value, false, None)
    }

    /// The result of an op computed outside the graph (an inference path that calls the tensor
    /// op directly): a value of its own, like an unrecorded [`Var::from_op`]. Unlike a
    /// [`Var::constant`] it is not a cell whose value can be replaced, so it allocates nothing.
    pub fn untracked(value: Tensor) -> Var {
        Var(Repr::Value { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), value })
    }

    /// The result of an op on `inputs`, recording `rule` for the backward pass when gradients
    /// are enabled and some input needs one; otherwise a constant that records nothing.
    pub fn from_op(value: Tensor, inputs: &[&Var], rule: impl Backward + 'static) -> Var {
        let needed = is_grad_enabled() && inputs.iter().any(|v| v.requires_grad());
        if !needed {
            return Var::untracked(value);
        }
        let node = Node::new(inputs.iter().map(|v| (*v).clone()).collect(), Box::new(rule));
        Var::make(value, true, Some(node))
    }

    /// A unique id (gradients are looked up by it).
    pub fn id(&self) -> usize {
        match &self.0 {
            Repr::Shared(inner) => inner.id,
            Repr::Value { id, .. } => *id,
        }
    }

    /// Whether gradients flow into this value.
    pub fn requires_grad(&self) -> bool {
        self.shared().is_some_and(|inner| inner.requires_grad)
    }

    /// Whether this is a leaf (no recorded op).
    pub fn is_leaf(&self) -> bool {
        self.node().is_none_or(|node| node.lock().map(|n| n.is_none()).unwrap_or(true))
    }

    /// The current value.
    pub fn value(&self) -> Tensor {
        match &self.0 {
            Repr::Shared(inner) => inner.value.read().unwrap_or_else(|p| p.into_inner()).clone(),
            Repr::Value { value, .. } => value.clone(),
        }
    }

    /// The shared cell of a leaf whose value may be replaced, or an error naming `op`.
    fn replaceable(&self, op: &str) -> Result<&VarInner> {
        match self.shared() {
            Some(inner) if self.is_leaf() => Ok(inner),
            Some(_) => Err(Error::shape(op, "only a leaf's value can be replaced")),
            None => Err(Error::shape(
                op,
                "this is the result of an op computed without gradients, a value of its own: make a new Var instead",
            )),
        }
    }

    /// Replaces a leaf's value (optimizer steps, loading weights). The new value must have the
    /// same shape and dtype.
    pub fn set_value(&self, value: Tensor) -> Result<()> {
        let mut slot = self.replaceable("set_value")?.value.write().unwrap_or_else(|p| p.into_inner());
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
        *self.replaceable("replace_value")?.value.write().unwrap_or_else(|p| p.into_inner()) = value;
        Ok(())
    }

    /// The same value, cut off from the graph.
    pub fn detach(&self) -> Var {
        Var::constant(self.value())
    }

    pub fn shape(&self) -> Shape {
        self.value().shape().clone()
    }
    /// The extents, inline ([`tensor::Dims`]): asked for at every layer, so no allocation.
    pub fn dims(&self) -> tensor::Dims {
        self.value().dims().into()
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
