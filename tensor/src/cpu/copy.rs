//! Copies: a view into fresh contiguous memory, and contiguous values into a strided view.

use crate::layout::StridedOffsets;
use crate::{Error, HostData, Layout, Result, with_host_data};

use super::strided;

/// The elements of a view, contiguous and row-major, in the view's dtype.
pub fn copy(data: &HostData, layout: &Layout) -> Result<HostData> {
    if layout.storage_extent() > data.len() {
        return Err(Error::index("copy", format!("view {layout:?} reaches past a buffer of {} elements", data.len())));
    }
    Ok(with_host_data!(data, v => HostData::from_vec(strided::gather(v, layout))))
}

/// Writes `values` (row-major) into the elements of `dst` that `layout` selects.
pub fn write_strided(dst: &mut HostData, layout: &Layout, values: &HostData) -> Result<()> {
    if dst.dtype() != values.dtype() || values.len() != layout.elem_count() || layout.storage_extent() > dst.len() {
        return Err(Error::shape(
            "copy_into",
            format!(
                "cannot write {} {} values into view {layout:?} of a {} buffer of {}",
                values.len(),
                values.dtype(),
                dst.dtype(),
                dst.len()
            ),
        ));
    }
    macro_rules! write {
        ($d:expr, $s:expr) => {{
            if let Some(range) = layout.contiguous_range() {
                $d[range].copy_from_slice($s);
            } else if let Some(rows) = strided::Rows::of(layout) {
                // Contiguous runs (rows appended to a KV cache through a transposed view).
                for (r, run) in $s.chunks_exact(rows.len).enumerate() {
                    let at = rows.start(r);
                    $d[at..at + rows.len].copy_from_slice(run);
                }
            } else {
                for (i, &x) in StridedOffsets::new(layout, 0).zip($s.iter()) {
                    $d[i] = x;
                }
            }
        }};
    }
    match (dst, values) {
        (HostData::F32(d), HostData::F32(s)) => write!(d, s),
        (HostData::F64(d), HostData::F64(s)) => write!(d, s),
        (HostData::BF16(d), HostData::BF16(s)) => write!(d, s),
        (HostData::F16(d), HostData::F16(s)) => write!(d, s),
        (HostData::U32(d), HostData::U32(s)) => write!(d, s),
        (HostData::I64(d), HostData::I64(s)) => write!(d, s),
        _ => unreachable!("dtypes were checked above"),
    }
    Ok(())
}
