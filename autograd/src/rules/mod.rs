//! The ops of `Var`, one file per op family named like `tensor/src/ops/<family>.rs`: each op's
//! forward (the tensor op) sits next to its backward rule, so a reader finds an op's derivative
//! by its name. Rules are written with tensor ops, so they run on whichever device the values
//! live on.

pub mod attention;
pub mod binary;
pub mod compare;
pub mod concat;
pub mod cumsum;
pub mod glu;
pub mod index;
pub mod matmul;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod topk;
pub mod unary;
pub mod view;

use tensor::{Result, Tensor};

use crate::graph::Backward;

/// A backward rule from a closure, for ops whose rule needs no more than a few lines.
pub(crate) struct FnRule<F> {
    pub name: &'static str,
    pub f: F,
}

impl<F> Backward for FnRule<F>
where
    F: Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync,
{
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        (self.f)(grad)
    }
}

/// Builds a closure rule.
pub(crate) fn rule<F>(name: &'static str, f: F) -> FnRule<F>
where
    F: Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync,
{
    FnRule { name, f }
}
