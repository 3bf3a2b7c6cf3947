//! The recorded graph and the backward pass: a topological walk from the output, each node's
//! rule turning its output gradient into its inputs' gradients, summed where a value was used
//! more than once (tied embedding and output weights are one parameter).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use tensor::{Error, Result, Tensor};

use crate::Var;

/// The derivative of one op: given the gradient of its output, the gradients of its inputs
/// (in the order they were recorded), `None` for an input that needs none.
pub trait Backward: Send + Sync {
    /// The op's name, for error messages.
    fn name(&self) -> &'static str;
    fn backward(&self, grad: &Tensor) -> Result<Vec<Option<Tensor>>>;
}

/// One recorded op: its inputs and its backward rule (which holds the tensors it saved).
pub(crate) struct Node {
    pub(crate) inputs: Vec<Var>,
    pub(crate) rule: Box<dyn Backward>,
}

static LIVE_NODES: AtomicUsize = AtomicUsize::new(0);

impl Node {
    pub(crate) fn new(inputs: Vec<Var>, rule: Box<dyn Backward>) -> Node {
        LIVE_NODES.fetch_add(1, Ordering::Relaxed);
        Node { inputs, rule }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        LIVE_NODES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many recorded ops are alive in the whole process: a training loop that frees its graphs
/// keeps this flat (tests assert it).
pub fn live_nodes() -> usize {
    LIVE_NODES.load(Ordering::Relaxed)
}

/// Gradients of the leaves, by `Var`.
#[derive(Default, Debug)]
pub struct Gradients {
    by_id: HashMap<usize, Tensor>,
}

impl Gradients {
    /// The gradient of `var`, if the backward pass reached it.
    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        self.by_id.get(&var.id())
    }

    /// The gradient of `var` to change in place (gradient clipping scales it).
    pub fn get_mut(&mut self, var: &Var) -> Option<&mut Tensor> {
        self.by_id.get_mut(&var.id())
    }

    /// Removes and returns the gradient of `var`.
    pub fn remove(&mut self, var: &Var) -> Option<Tensor> {
        self.by_id.remove(&var.id())
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

fn accumulate(map: &mut HashMap<usize, Tensor>, id: usize, grad: Tensor) -> Result<()> {
    match map.remove(&id) {
        Some(existing) => {
            map.insert(id, existing.add(&grad)?);
        }
        None => {
            map.insert(id, grad);
        }
    }
    Ok(())
}

impl Var {
    /// Reverse-mode differentiation from this scalar: the gradient of this value with respect
    /// to every leaf that needs one. The graph is consumed: its nodes (and the tensors they
    /// saved) are freed as the walk passes them, so a training loop holds steady memory.
    pub fn backward(&self) -> Result<Gradients> {
        if self.elem_count() != 1 {
            return Err(Error::shape("backward", format!("needs a scalar output, got shape {:?}", self.shape())));
        }
        let seed = self.value().ones_like()?;
        self.backward_with(seed)
    }

    /// Reverse-mode differentiation seeded with `grad` (the gradient of some scalar with respect
    /// to this value, same shape).
    pub fn backward_with(&self, grad: Tensor) -> Result<Gradients> {
        if grad.shape() != &self.shape() {
            return Err(Error::shape(
                "backward",
                format!("seed gradient {:?} does not match output {:?}", grad.shape(), self.shape()),
            ));
        }
        let mut leaves = Gradients::default();
        if !self.requires_grad() {
            return Ok(leaves);
        }
        let order = self.topological_order();
        let mut pending: HashMap<usize, Tensor> = HashMap::new();
        pending.insert(self.id(), grad);
        for var in order.iter().rev() {
            let Some(grad) = pending.remove(&var.id()) else {
                continue;
            };
            let node = var.node().and_then(|n| n.lock().unwrap_or_else(|p| p.into_inner()).take());
            let Some(node) = node else {
                // A leaf: this is a gradient the caller asked for.
                accumulate(&mut leaves.by_id, var.id(), grad)?;
                continue;
            };
            let input_grads = node
                .rule
                .backward(&grad)
                .map_err(|e| Error::backend(&format!("backward of {}", node.rule.name()), e.to_string()))?;
            if input_grads.len() != node.inputs.len() {
                return Err(Error::backend(
                    "backward",
                    format!(
                        "rule {} gave {} gradients for {} inputs",
                        node.rule.name(),
                        input_grads.len(),
                        node.inputs.len()
                    ),
                ));
            }
            for (input, g) in node.inputs.iter().zip(input_grads) {
                if let Some(g) = g.filter(|_| input.requires_grad()) {
                    if g.shape() != &input.shape() {
                        return Err(Error::shape(
                            &format!("backward of {}", node.rule.name()),
                            format!("gradient {:?} does not match input {:?}", g.shape(), input.shape()),
                        ));
                    }
                    accumulate(&mut pending, input.id(), g)?;
                }
            }
        }
        Ok(leaves)
    }

    /// Every var this one depends on (through vars that need gradients), each after its inputs.
    fn topological_order(&self) -> Vec<Var> {
        let mut order = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Iterative depth-first search: deep graphs (long unrolled sequences) must not overflow
        // the stack.
        let mut stack: Vec<(Var, bool)> = vec![(self.clone(), false)];
        while let Some((var, expanded)) = stack.pop() {
            if expanded {
                order.push(var);
                continue;
            }
            if !seen.insert(var.id()) {
                continue;
            }
            let inputs: Vec<Var> = var
                .node()
                .and_then(|n| n.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|n| n.inputs.clone()))
                .unwrap_or_default();
            stack.push((var, true));
            for input in inputs.into_iter().filter(|v| v.requires_grad()) {
                if !seen.contains(&input.id()) {
                    stack.push((input, false));
                }
            }
        }
        order
    }
}
