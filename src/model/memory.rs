//! Keeps freed tensor memory in the process for reuse.
//!
//! A training or inference step frees and re-allocates tensors of the same sizes over
//! and over. By default glibc serves blocks over 128 KiB with fresh `mmap`s and trims
//! the heap top back to the kernel, so each step paid for newly zeroed pages: a
//! profile of `reviewloop bench train` spent about a quarter of its time in the
//! kernel clearing pages. Raising both thresholds lets freed blocks be reused.

/// Blocks up to this size come from the heap (glibc's largest allowed value on 64-bit).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the heap top kept before any is handed back to the kernel.
const TRIM_THRESHOLD: i32 = 512 << 20;

/// Call once at start, before models are loaded.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: mallopt only changes allocator parameters; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
