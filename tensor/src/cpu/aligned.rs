//! Buffers that start on a 64-byte cache line, for kernels that load whole lines.
//!
//! Why: an AMX tile load (`tileloadd`) reads 16 rows of 64 bytes, and a row that starts off a
//! line boundary touches two lines. A `Vec<u32>` is only 4-byte aligned, and glibc places large
//! allocations 16 bytes past a page boundary, so packed tiles in one were on a line only by
//! chance.
//! Measured on an Emerald Rapids Xeon (one core, the tiles in L1, a loop of four tile loads and
//! four `tdpbf16ps`): rows 16 bytes off a line ran at 827 GFLOP/s, rows on a line at 2,140.
//! AVX-512 loads of 64 bytes split the same way.

/// One cache line of words: the element whose alignment the buffer inherits.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u32; 16]);

const ZERO: Line = Line([0; 16]);

/// A growable buffer of 32-bit words whose first word starts a cache line.
#[derive(Default)]
pub struct Lines(Storage);

/// Where a [`Lines`]' words live: the allocator's memory, or a mapping of its own on 2 MiB
/// pages ([`Lines::zeroed_huge`]).
enum Storage {
    Heap(Vec<Line>),
    Mapped(super::huge_pages::Mapping),
}

impl Default for Storage {
    fn default() -> Storage {
        Storage::Heap(Vec::new())
    }
}

impl Lines {
    /// An empty buffer (no allocation).
    pub const fn new() -> Lines {
        Lines(Storage::Heap(Vec::new()))
    }

    /// `len` zeroed words (rounded up to whole lines).
    pub fn zeroed(len: usize) -> Lines {
        Lines(Storage::Heap(vec![ZERO; len.div_ceil(16)]))
    }

    /// `len` zeroed words (rounded up to whole lines) on 2 MiB pages where the OS gives them:
    /// a mapping of their own from 2 MiB on ([`super::huge_pages::Mapping`], which says why),
    /// else the allocator's memory, advised before the zeros are written (a page is backed when
    /// first touched; `vec!` of an over-aligned type writes its zeros itself).
    pub fn zeroed_huge(len: usize) -> Lines {
        let lines = len.div_ceil(16);
        if let Some(m) = super::huge_pages::Mapping::zeroed(lines * 64) {
            return Lines(Storage::Mapped(m));
        }
        let mut v: Vec<Line> = Vec::with_capacity(lines);
        super::huge_pages::advise(v.as_mut_ptr().cast(), lines * 64);
        v.resize(lines, ZERO);
        Lines(Storage::Heap(v))
    }

    /// Grows the buffer to at least `len` words: what it held stays, new words are zero.
    pub fn grow(&mut self, len: usize) {
        if self.words().len() < len {
            if let Storage::Mapped(m) = &self.0 {
                // Mappings are made for what never grows (packed weights); a grown one moves to
                // the heap.
                self.0 = Storage::Heap(bytemuck::cast_slice(m.bytes()).to_vec());
            }
            if let Storage::Heap(v) = &mut self.0 {
                v.resize(len.div_ceil(16), ZERO);
            }
        }
    }

    fn lines(&self) -> &[Line] {
        match &self.0 {
            Storage::Heap(v) => v,
            Storage::Mapped(m) => bytemuck::cast_slice(m.bytes()),
        }
    }

    fn lines_mut(&mut self) -> &mut [Line] {
        match &mut self.0 {
            Storage::Heap(v) => v,
            Storage::Mapped(m) => bytemuck::cast_slice_mut(m.bytes_mut()),
        }
    }

    /// The buffer as words.
    pub fn words(&self) -> &[u32] {
        bytemuck::cast_slice(self.lines())
    }

    /// The buffer as words, to write.
    pub fn words_mut(&mut self) -> &mut [u32] {
        bytemuck::cast_slice_mut(self.lines_mut())
    }

    /// The buffer as f32 values, to write.
    pub fn floats_mut(&mut self) -> &mut [f32] {
        bytemuck::cast_slice_mut(self.lines_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_line_and_keeps_its_words_when_grown() {
        let mut b = Lines::zeroed(5);
        assert_eq!(b.words_mut().len(), 16);
        assert_eq!(b.words_mut().as_ptr() as usize % 64, 0);
        b.words_mut()[3] = 7;
        b.grow(1000);
        let words = b.words_mut();
        assert!(words.len() >= 1000);
        assert_eq!(words.as_ptr() as usize % 64, 0);
        assert_eq!(words[3], 7);
        assert!(words[4..].iter().all(|&w| w == 0));
        assert_eq!(b.floats_mut().as_ptr() as usize % 64, 0);
        assert_eq!(Lines::new().words_mut().len(), 0);
    }

    #[test]
    fn a_huge_buffer_is_zeroed_on_a_line_and_keeps_its_words_when_grown() {
        // Past 2 MiB: its own mapping where the OS gives one.
        let len = (3 << 20) / 4 + 5;
        let mut b = Lines::zeroed_huge(len);
        assert_eq!(b.words().len(), len.div_ceil(16) * 16);
        assert_eq!(b.words().as_ptr() as usize % 64, 0);
        assert!(b.words().iter().all(|&w| w == 0));
        b.words_mut()[len - 1] = 9;
        b.grow(len + 100);
        assert_eq!(b.words()[len - 1], 9);
        assert!(b.words().len() >= len + 100 && b.words()[len..].iter().all(|&w| w == 0));
        assert_eq!(Lines::zeroed_huge(20).words().len(), 32);
    }
}
