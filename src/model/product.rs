//! Matrix products on the CPU for our own ops, through the `gemm` crate that candle's
//! matmul uses too, but on any strided block of a buffer (one head's columns of a
//! (batch, seq, hidden) tensor, a transposed view) so the ops need no copies.
//!
//! Hand-written around `gemm` for a measured reason: split by rows over candle's own
//! worker threads instead of gemm's rayon pool, small training steps went from
//! 79.5–86.2 to 98.6–98.8 sequences/s on two cores, and steadier (the two pools'
//! threads had contended for the cores). The views are raw pointers because one op's
//! tasks write disjoint blocks of one buffer at once; operands are checked against
//! their buffers always, targets in debug builds (which the tests run).

use std::marker::PhantomData;

/// A read-only strided matrix over a borrowed buffer: element (i, j) lives at
/// `ptr + i·row_stride + j·col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    ptr: *const f32,
    row_stride: usize,
    col_stride: usize,
    /// Elements from `ptr` to the end of the buffer, to check shapes against.
    available: usize,
    buffer: PhantomData<&'a [f32]>,
}

impl<'a> Strided<'a> {
    /// Row-major rows of `width` elements starting at `data[offset]`.
    pub(crate) fn rows(data: &'a [f32], offset: usize, width: usize) -> Self {
        Strided::new(data, offset, (width, 1))
    }

    /// The transpose of `rows(data, offset, width)`.
    pub(crate) fn transposed(data: &'a [f32], offset: usize, width: usize) -> Self {
        Strided::new(data, offset, (1, width))
    }

    fn new(data: &'a [f32], offset: usize, (row_stride, col_stride): (usize, usize)) -> Self {
        let ptr = data[offset..].as_ptr();
        Strided { ptr, row_stride, col_stride, available: data.len() - offset, buffer: PhantomData }
    }

    /// Whether a (rows × cols) matrix fits in the buffer.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.available
    }

    /// The matrix from row `start` on.
    fn skip_rows(self, start: usize) -> Self {
        let offset = (start * self.row_stride).min(self.available);
        // Safety: stays within the buffer (or at its end, for an empty matrix).
        Strided { ptr: unsafe { self.ptr.add(offset) }, available: self.available - offset, ..self }
    }
}

// Safety: a shared view of a borrowed `[f32]`, only read.
unsafe impl Sync for Strided<'_> {}

/// Where a product goes: row-major rows `row_stride` apart, from `ptr`, with
/// `available` elements from `ptr` to the end of its buffer (checked against the
/// product's shape in debug builds, which the tests run).
#[derive(Clone, Copy)]
pub(crate) struct Target {
    ptr: *mut f32,
    row_stride: usize,
    available: usize,
}

// Safety: `multiply`'s callers guarantee that no two threads write the same elements.
unsafe impl Sync for Target {}

impl Target {
    /// Row-major rows `row_stride` apart over all of `buffer`.
    pub(crate) fn rows(buffer: &mut [f32], row_stride: usize) -> Self {
        Target { ptr: buffer.as_mut_ptr(), row_stride, available: buffer.len() }
    }

    /// Rows `row_stride` apart from element `offset` of a buffer shared among threads.
    pub(crate) fn shared(buffer: super::fused::Shared, offset: usize, row_stride: usize) -> Self {
        Target { ptr: buffer.at(offset), row_stride, available: buffer.len() - offset }
    }

    /// Whether an (rows × cols) block fits between `ptr` and the buffer's end.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.row_stride + cols <= self.available
    }

    fn skip_rows(self, start: usize) -> Self {
        let offset = (start * self.row_stride).min(self.available);
        // Safety: stays within the buffer (or at its end, for an empty block).
        Target { ptr: unsafe { self.ptr.add(offset) }, available: self.available - offset, ..self }
    }
}

/// How a product is written into its target: `dst = scale · lhs · rhs`, plus what
/// `dst` held when `accumulate`; split over candle's threads when `all_threads` (for
/// one big product) or on the calling thread (for many small ones already spread over
/// the threads).
#[derive(Clone, Copy)]
pub(crate) struct Write {
    scale: f32,
    accumulate: bool,
    all_threads: bool,
}

impl Write {
    /// `dst = lhs · rhs` on the calling thread.
    pub(crate) const HERE: Write = Write { scale: 1.0, accumulate: false, all_threads: false };

    pub(crate) fn scaled(self, scale: f32) -> Self {
        Write { scale, ..self }
    }

    /// Adds the product to what the target holds.
    pub(crate) fn adding(self) -> Self {
        Write { accumulate: true, ..self }
    }

    pub(crate) fn on_all_threads(self) -> Self {
        Write { all_threads: true, ..self }
    }
}

/// `dst (m × n) = lhs (m × k) · rhs (k × n)` as `write` says.
///
/// On all threads, the rows of `dst` are split among candle's worker threads (the ones
/// our other ops run on) rather than letting `gemm` start its own on rayon's pool: the
/// two pools' threads would otherwise contend for the cores, since candle's workers
/// spin a while after each op before they sleep.
///
/// Safety: `dst` must address valid elements for every (i, j) of m × n, and no other
/// thread may touch them meanwhile. (The operands are checked against their buffers.)
pub(crate) unsafe fn multiply(
    dst: Target,
    (m, n, k): (usize, usize, usize),
    lhs: Strided<'_>,
    rhs: Strided<'_>,
    write: Write,
) {
    assert!(lhs.holds(m, k) && rhs.holds(k, n), "product operands do not hold {m}×{k} · {k}×{n}");
    // The target's bounds are the caller's promise; debug builds (the tests) check it.
    debug_assert!(dst.holds(m, n), "product target does not hold {m}×{n}");
    let pool = candle_core::utils::barrier_pool();
    let parts = pool.n_workers() + 1;
    if !write.all_threads || parts == 1 || m < 2 * parts {
        return multiply_on_this_thread(dst, (m, n, k), lhs, rhs, write);
    }
    let rows = m.div_ceil(parts);
    pool.execute(|part| {
        let start = (part * rows).min(m);
        let (dst, lhs) = (dst.skip_rows(start), lhs.skip_rows(start));
        // Safety: parts write disjoint row ranges of `dst`.
        unsafe { multiply_on_this_thread(dst, (rows.min(m - start), n, k), lhs, rhs, write) };
    });
}

unsafe fn multiply_on_this_thread(
    dst: Target,
    (m, n, k): (usize, usize, usize),
    lhs: Strided<'_>,
    rhs: Strided<'_>,
    write: Write,
) {
    if m == 0 {
        return;
    }
    debug_assert!(dst.holds(m, n) && lhs.holds(m, k), "a part of the product leaves its buffers");
    gemm::gemm(
        m,
        n,
        k,
        dst.ptr,
        1,
        dst.row_stride as isize,
        write.accumulate,
        lhs.ptr,
        lhs.col_stride as isize,
        lhs.row_stride as isize,
        rhs.ptr,
        rhs.col_stride as isize,
        rhs.row_stride as isize,
        1.0,
        write.scale,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// `lhs · rhs` into a new row-major (m × n) buffer, on all threads.
pub(crate) fn product((m, n, k): (usize, usize, usize), lhs: Strided<'_>, rhs: Strided<'_>) -> Vec<f32> {
    let mut dst = vec![0f32; m * n];
    let target = Target::rows(&mut dst, n);
    // Safety: `dst` is m × n and owned here.
    unsafe { multiply(target, (m, n, k), lhs, rhs, Write::HERE.on_all_threads()) };
    dst
}

#[cfg(test)]
mod bounds {
    use super::*;

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "product target does not hold 3×2")]
    fn a_target_too_small_for_the_product_is_caught_in_debug_builds() {
        let (a, b) = (vec![1.0; 6], vec![1.0; 4]);
        let mut dst = vec![0.0; 5];
        let target = Target::rows(&mut dst, 2);
        unsafe { multiply(target, (3, 2, 2), Strided::rows(&a, 0, 2), Strided::rows(&b, 0, 2), Write::HERE) };
    }

    #[test]
    fn a_target_that_fits_is_filled() {
        let (a, b) = (vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 0.0, 0.0, 1.0]);
        assert_eq!(product((2, 2, 2), Strided::rows(&a, 0, 2), Strided::rows(&b, 0, 2)), a);
    }
}
