// The uniform of reduce.wgsl and cumsum.wgsl (`Params` in reduce.rs): a contiguous tensor seen
// as [outer, k, inner] around the axis they work along. Prepended to both.

struct Params {
    outer: u32,
    k: u32,
    inner: u32,
    pad0: u32,
}
