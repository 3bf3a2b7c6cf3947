//! Printing tensors the way NumPy and PyTorch do, eliding the middle of large dims, so examples
//! can show what a block computed.

use crate::Tensor;

/// Entries shown at each end of a dim longer than `2 * EDGE`.
const EDGE: usize = 3;

impl std::fmt::Display for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values: Vec<f64> = match self.to_vec::<f64>() {
            Ok(v) => v,
            Err(e) => return write!(f, "Tensor(<unreadable: {e}>)"),
        };
        let int = self.dtype().is_int();
        let mut text = String::new();
        write_dim(&mut text, &values, self.dims(), 0, 0, int);
        write!(f, "tensor({text}, shape={:?}, dtype={}, device={})", self.dims(), self.dtype(), self.device())
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor(shape={:?}, dtype={}, device={}, layout={:?})",
            self.dims(),
            self.dtype(),
            self.device(),
            self.layout()
        )
    }
}

fn write_dim(out: &mut String, values: &[f64], dims: &[usize], depth: usize, offset: usize, int: bool) {
    if dims.len() == depth {
        let v = values.get(offset).copied().unwrap_or(f64::NAN);
        if int {
            out.push_str(&format!("{v}"));
        } else {
            out.push_str(&format!("{v:.4}"));
        }
        return;
    }
    let n = dims[depth];
    let stride: usize = dims[depth + 1..].iter().product();
    out.push('[');
    let shown: Vec<Option<usize>> = if n > 2 * EDGE {
        (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
    } else {
        (0..n).map(Some).collect()
    };
    for (i, entry) in shown.iter().enumerate() {
        if i > 0 {
            out.push_str(if depth + 1 < dims.len() { ",\n" } else { ", " });
            if depth + 1 < dims.len() {
                out.push_str(&" ".repeat(depth + 8));
            }
        }
        match entry {
            Some(j) => write_dim(out, values, dims, depth + 1, offset + j * stride, int),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}
