//! Reverse-mode automatic differentiation. Built by the autograd issue; empty until then.
