//! `Dims`: the extents of a [`Shape`](crate::Shape) or the strides of a
//! [`Layout`](crate::Layout), kept inline up to [`Dims::INLINE`] entries.
//!
//! Why: every view op and every clone of a tensor builds a new shape and strides. Held in
//! `Vec`s, that was two heap allocations per clone, and most of the ~2,500 allocations a decoded
//! token made through the 4-layer qwen3 fixture (`dhat`): tensors are cloned into autograd's
//! variables, reshaped, permuted and narrowed at every layer. Real tensors have at most a
//! handful of axes, so those now live in the value itself; a rank past `INLINE` still works,
//! on the heap.

use std::ops::{Deref, DerefMut};

#[derive(Clone)]
pub struct Dims(Repr);

#[derive(Clone)]
enum Repr {
    /// `len` entries at the front of the array, the rest zero.
    Inline(u8, [usize; Dims::INLINE]),
    Heap(Vec<usize>),
}

impl Dims {
    /// Entries kept without allocating: attention's [batch, heads, positions, head_dim] and the
    /// stacked experts' [experts, rows, cols] views need at most 5.
    pub const INLINE: usize = 6;

    /// No entries (a scalar's shape).
    pub const fn new() -> Dims {
        Dims(Repr::Inline(0, [0; Dims::INLINE]))
    }

    /// `len` zeros.
    pub fn zeros(len: usize) -> Dims {
        Dims(if len <= Dims::INLINE { Repr::Inline(len as u8, [0; Dims::INLINE]) } else { Repr::Heap(vec![0; len]) })
    }

    pub fn push(&mut self, value: usize) {
        match &mut self.0 {
            Repr::Inline(len, v) if (*len as usize) < Dims::INLINE => {
                v[*len as usize] = value;
                *len += 1;
            }
            Repr::Inline(..) => {
                let mut heap = self.to_vec();
                heap.push(value);
                self.0 = Repr::Heap(heap);
            }
            Repr::Heap(v) => v.push(value),
        }
    }

    /// Inserts `value` before position `at` (`at == len` appends), as `Vec::insert`.
    pub fn insert(&mut self, at: usize, value: usize) {
        assert!(at <= self.len(), "Dims::insert: position {at} past the length {}", self.len());
        self.push(value);
        self[at..].rotate_right(1);
    }

    /// Removes and returns the entry at `at`, as `Vec::remove`.
    pub fn remove(&mut self, at: usize) -> usize {
        let value = self[at];
        self[at..].rotate_left(1);
        match &mut self.0 {
            Repr::Inline(len, v) => {
                *len -= 1;
                v[*len as usize] = 0;
            }
            Repr::Heap(v) => {
                v.pop();
            }
        }
        value
    }
}

impl Default for Dims {
    fn default() -> Dims {
        Dims::new()
    }
}

impl Deref for Dims {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        match &self.0 {
            Repr::Inline(len, v) => &v[..*len as usize],
            Repr::Heap(v) => v,
        }
    }
}

impl DerefMut for Dims {
    fn deref_mut(&mut self) -> &mut [usize] {
        match &mut self.0 {
            Repr::Inline(len, v) => &mut v[..*len as usize],
            Repr::Heap(v) => v,
        }
    }
}

// Equality and hashing by the entries, whichever way they are kept.
impl PartialEq for Dims {
    fn eq(&self, other: &Dims) -> bool {
        **self == **other
    }
}

impl Eq for Dims {}

impl std::hash::Hash for Dims {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl std::fmt::Debug for Dims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", &**self)
    }
}

impl<'a> IntoIterator for &'a Dims {
    type Item = &'a usize;
    type IntoIter = std::slice::Iter<'a, usize>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Dims {
    type Item = &'a mut usize;
    type IntoIter = std::slice::IterMut<'a, usize>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl Extend<usize> for Dims {
    fn extend<I: IntoIterator<Item = usize>>(&mut self, iter: I) {
        for value in iter {
            self.push(value);
        }
    }
}

impl FromIterator<usize> for Dims {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Dims {
        let mut dims = Dims::new();
        for value in iter {
            dims.push(value);
        }
        dims
    }
}

impl From<&[usize]> for Dims {
    fn from(values: &[usize]) -> Dims {
        values.iter().copied().collect()
    }
}

impl From<Vec<usize>> for Dims {
    fn from(values: Vec<usize>) -> Dims {
        if values.len() <= Dims::INLINE { Dims::from(&values[..]) } else { Dims(Repr::Heap(values)) }
    }
}

impl<const N: usize> From<[usize; N]> for Dims {
    fn from(values: [usize; N]) -> Dims {
        Dims::from(&values[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation gives what the same operation on a `Vec` gives, below, at and past the
    /// inline capacity (where the entries move to the heap and must compare equal to inline ones).
    #[test]
    fn behaves_as_a_vec_across_the_inline_capacity() {
        for len in 0..=Dims::INLINE + 2 {
            let values: Vec<usize> = (0..len).map(|i| 10 * i + 1).collect();
            let dims: Dims = values.iter().copied().collect();
            assert_eq!(&*dims, &values[..]);
            assert_eq!(Dims::from(values.clone()), dims);
            assert!(matches!(dims.0, Repr::Inline(..)) == (len <= Dims::INLINE));
            for at in 0..=len {
                let (mut d, mut v) = (dims.clone(), values.clone());
                d.insert(at, 99);
                v.insert(at, 99);
                assert_eq!(&*d, &v[..], "insert at {at} of {len}");
                assert_eq!(d.remove(at), 99);
                assert_eq!(&*d, &values[..], "remove at {at} of {len}");
            }
            assert_eq!(&*Dims::zeros(len), &vec![0; len][..]);
        }
        let heap = Dims(Repr::Heap(vec![1, 2]));
        let inline = Dims::from([1, 2]);
        assert_eq!(heap, inline);
        use std::hash::{BuildHasher, RandomState};
        let s = RandomState::new();
        assert_eq!(s.hash_one(&heap), s.hash_one(&inline));
    }
}
