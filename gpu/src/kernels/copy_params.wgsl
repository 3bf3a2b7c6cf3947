// The uniform of copy.wgsl and copy16.wgsl (`CopyParams` in copy.rs): n elements, read from
// the src view and written to the dst view. Prepended to both, which copy the same way and
// differ only in the width of an element.

struct Params {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    src: Layout,
    dst: Layout,
}
