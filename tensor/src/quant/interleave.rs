//! Q4_0 and Q8_0 weights kept as groups of 8 rows interleaved, the layout the CPU kernels read
//! (ggml's CPU backend repacks the same formats at load for the same reason: `block_q4_0x8`).
//!
//! A decoded token multiplies every weight row by the same activation row. Row by row, each
//! 32-weight block costs its own unpacking, scale conversion and sign handling besides the one
//! dot-product instruction that does the work, and Q4_0 decode ends up bound by instructions,
//! not memory. With 8 rows side by side, one 512-bit register holds 8 bytes of each of 8 rows, the
//! activation bytes they meet are one 8-byte broadcast shared by all 8, and the 8 scales are one
//! 16-byte load. The same bytes, moved: a group of 8 rows, for each block column `b`, is a tile of
//! - the 8 rows' f16 scales of block `b` (16 bytes), then
//! - for each 8-byte slice `o` of a block's code bytes (2 for Q4_0's 16 nibble bytes, 4 for Q8_0's
//!   32 codes): row 0's bytes `8o..8o + 8`, row 1's, ..., row 7's (64 bytes).
//!
//! The last group is padded with zero rows (scale 0) when the row count is not a multiple of 8.

use super::GgmlType;

/// Rows in a group.
pub const GROUP: usize = 8;

/// Whether `ty` is stored interleaved.
pub fn applies(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q8_0)
}

/// Code bytes of one block of one row (the block without its f16 scale).
fn code_bytes(ty: GgmlType) -> usize {
    ty.type_size() - 2
}

/// Bytes of one tile (a block column of a group).
pub fn tile_bytes(ty: GgmlType) -> usize {
    GROUP * ty.type_size()
}

/// Bytes of the interleaved form of `rows` x `cols`.
pub fn len(ty: GgmlType, rows: usize, cols: usize) -> usize {
    rows.div_ceil(GROUP) * (cols / ty.block_size()) * tile_bytes(ty)
}

/// Where byte `i` of row `r` (of its group) block `b`'s GGUF block lies in the group's bytes.
#[inline]
fn position(ty: GgmlType, r: usize, b: usize, i: usize) -> usize {
    let tile = b * tile_bytes(ty);
    if i < 2 { tile + 2 * r + i } else { tile + 2 * GROUP + (i - 2) / 8 * 64 + 8 * r + (i - 2) % 8 }
}

/// The interleaved form of `src`, `rows` rows of `cols` weights in GGUF's row-after-row blocks.
pub fn interleave(ty: GgmlType, rows: usize, cols: usize, src: &[u8]) -> Vec<u8> {
    debug_assert!(applies(ty) && code_bytes(ty).is_multiple_of(8));
    let (nb, bs) = (cols / ty.block_size(), ty.type_size());
    let group_bytes = nb * tile_bytes(ty);
    let mut out = vec![0u8; len(ty, rows, cols)];
    for (j, row) in src.chunks_exact(nb * bs).take(rows).enumerate() {
        let group = &mut out[j / GROUP * group_bytes..][..group_bytes];
        for (b, block) in row.chunks_exact(bs).enumerate() {
            for (i, &byte) in block.iter().enumerate() {
                group[position(ty, j % GROUP, b, i)] = byte;
            }
        }
    }
    out
}

/// Row `j` of the interleaved `data` back in GGUF's layout (`out`: one row's bytes).
pub fn gguf_row(ty: GgmlType, cols: usize, data: &[u8], j: usize, out: &mut [u8]) {
    let (nb, bs) = (cols / ty.block_size(), ty.type_size());
    let group_bytes = nb * tile_bytes(ty);
    let group = &data[j / GROUP * group_bytes..][..group_bytes];
    for (b, block) in out.chunks_exact_mut(bs).enumerate() {
        for (i, byte) in block.iter_mut().enumerate() {
            *byte = group[position(ty, j % GROUP, b, i)];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of every row lands in its own place and comes back, for row counts that fill
    /// the last group and that do not.
    #[test]
    fn interleaving_is_a_permutation_that_gguf_row_undoes() {
        for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
            for rows in [1, 8, 13] {
                let cols = 96;
                let row_bytes = cols / 32 * ty.type_size();
                let src: Vec<u8> = (0..rows * row_bytes).map(|i| (i * 7 + i / 251) as u8).collect();
                let data = interleave(ty, rows, cols, &src);
                assert_eq!(data.len(), len(ty, rows, cols));
                let mut hit = vec![0u32; cols / 32 * tile_bytes(ty)];
                for r in 0..GROUP {
                    for b in 0..cols / 32 {
                        for i in 0..ty.type_size() {
                            hit[position(ty, r, b, i)] += 1;
                        }
                    }
                }
                assert!(hit.iter().all(|&h| h == 1), "{ty}: each byte of a group is one row's byte");
                let mut row = vec![0u8; row_bytes];
                for j in 0..rows {
                    gguf_row(ty, cols, &data, j, &mut row);
                    assert_eq!(row, src[j * row_bytes..(j + 1) * row_bytes], "{ty} row {j} of {rows}");
                }
            }
        }
    }
}
