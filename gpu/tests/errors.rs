//! Out-of-range ids on the GPU. A kernel cannot return an error, so it flags the id and the next
//! readback reports it. The flag is per device, so this test lives alone in its own process.

mod common;

use common::{cpu, gpu};
use tensor::Tensor;
use tensor::testing::randn;

#[test]
fn an_out_of_range_id_is_reported_at_the_next_readback() -> tensor::Result<()> {
    let Some(g) = gpu() else { return Ok(()) };
    let table = randn([33, 7], 1, &cpu())?.to(&g)?;
    let bad = Tensor::from_vec(vec![1u32, 99], [2], &cpu())?.to(&g)?;
    let picked = table.index_select(&bad, 0usize)?;
    let err = picked.to(&cpu()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("out of range"), "{err}");
    // The flag is cleared: the next readback succeeds.
    assert!(table.to(&cpu()).is_ok());
    // An i64 id beyond 32 bits is caught on its way to u32.
    let huge = Tensor::from_vec(vec![1i64 << 40], [1], &cpu())?.to(&g)?;
    let err = table.index_select(&huge, 0usize)?.to(&cpu()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("out of range"), "{err}");
    // The same from a bf16 table (its own kernel).
    let half = randn([33, 7], 2, &cpu())?.to_dtype(tensor::DType::BF16)?.to(&g)?;
    let err = half.index_select(&bad, 0usize)?.to(&cpu()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("out of range"), "{err}");
    // Blocks kept on the device: an embedding row and an expert past the table.
    use tensor::quant::{self, DeviceQMatrix, GgmlType};
    let bytes = quant::quantize(GgmlType::Q8_0, &vec![0.25f32; 2 * 8 * 64])?;
    let rows = DeviceQMatrix::upload(GgmlType::Q8_0, 16, 64, &bytes, &g)?;
    let err = rows.gather(&bad)?.to(&cpu()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("out of range"), "a row past a table of blocks: {err}");
    let stack = DeviceQMatrix::upload_stack(GgmlType::Q8_0, 2, 8, 64, &bytes, &g)?;
    let x = Tensor::zeros([2, 64], tensor::DType::F32, &g)?;
    let err = stack.expert_matmul(&x, &bad)?.to(&cpu()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("out of range"), "an expert past a stack: {err}");
    Ok(())
}
