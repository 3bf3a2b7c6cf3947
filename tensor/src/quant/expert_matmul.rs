//! Routed experts kept block-quantized: one [`QMatrix`] per expert, each row of the activations
//! multiplied by its own expert's matrix (the packed counterpart of `Tensor::expert_matmul`).
//!
//! Rows are grouped by expert, so that each chosen expert's blocks are read once for all the rows
//! routed to it, and an expert no row chose is never read: a decoded token reads only its
//! `num_experts_per_tok` experts' weights, as stored. Each group is one [`QMatrix::matmul_f32`],
//! which picks integer dots or bf16/f32 panels by the group's row count.

use super::QMatrix;
use super::qmatmul::QKernel;
use crate::cpu::isa;
use crate::{DType, Error, Result, Tensor};

/// `x [R, in]` f32 on the CPU, `ids [R]` (u32 or i64) the expert of each row, `experts` one
/// [out, in] matrix each: `[R, out]`, row `r` being `x[r] W[ids[r]]^T`.
pub fn expert_matmul(experts: &[QMatrix], x: &Tensor, ids: &Tensor) -> Result<Tensor> {
    const OP: &str = "quant::expert_matmul";
    let Some(first) = experts.first() else {
        return Err(Error::shape(OP, "no experts".to_string()));
    };
    let (out, cols) = (first.rows(), first.cols());
    if experts.iter().any(|e| e.rows() != out || e.cols() != cols) {
        return Err(Error::shape(OP, format!("experts of different shapes (the first is {first:?})")));
    }
    let dims = x.dims();
    if !x.device().is_cpu() || x.dtype() != DType::F32 || dims.len() != 2 || dims[1] != cols {
        return Err(Error::shape(
            OP,
            format!("activations {dims:?} {} on {:?}; want [rows, {cols}] f32 on the CPU", x.dtype(), x.device()),
        ));
    }
    let rows = dims[0];
    let ids: Vec<i64> = ids.to_dtype(DType::I64)?.to_vec()?;
    if ids.len() != rows {
        return Err(Error::shape(OP, format!("{} expert ids for {rows} rows", ids.len())));
    }
    let mut by_expert: Vec<Vec<usize>> = vec![Vec::new(); experts.len()];
    for (r, &e) in ids.iter().enumerate() {
        let list = usize::try_from(e).ok().and_then(|e| by_expert.get_mut(e));
        list.ok_or_else(|| Error::index(OP, format!("expert id {e} of {} experts", experts.len())))?.push(r);
    }
    let x = x.to_vec::<f32>()?;
    let kernel = QKernel::for_isa(isa::active());
    let mut y = vec![0.0f32; rows * out];
    for (expert, chosen) in experts.iter().zip(&by_expert).filter(|(_, chosen)| !chosen.is_empty()) {
        let mut xe = Vec::with_capacity(chosen.len() * cols);
        for &r in chosen {
            xe.extend_from_slice(&x[r * cols..(r + 1) * cols]);
        }
        let ye = expert.matmul_f32(&xe, chosen.len(), kernel)?;
        for (&r, row) in chosen.iter().zip(ye.chunks_exact(out)) {
            y[r * out..(r + 1) * out].copy_from_slice(row);
        }
    }
    Tensor::from_vec(y, [rows, out], &crate::Device::cpu())
}
