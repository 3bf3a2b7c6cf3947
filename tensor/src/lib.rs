//! n-dimensional tensors.
