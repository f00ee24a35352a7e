//! Process-wide settings of libtorch: threads, seed, device.

use tch::Device;

/// Sets libtorch's intra-op threads and seeds its generator; the first call in a process also fixes the
/// inter-op threads to 1 (libtorch accepts that once, before any parallel work), so call it at start-up and
/// freely afterwards. With the simulator on the other core, 1 thread avoids oversubscription.
pub fn init(threads: usize, seed: u64) {
    static INTEROP: std::sync::Once = std::sync::Once::new();
    INTEROP.call_once(|| tch::set_num_interop_threads(1));
    tch::set_num_threads(threads.max(1) as i32);
    tch::manual_seed(seed as i64);
}

/// Keeps freed memory in the process instead of handing it back to the kernel after every tensor (glibc's
/// allocator only; elsewhere a no-op). libtorch frees and reallocates its large CPU tensors on every step (a
/// `[256, n_items]` logits matrix is 7.8 MB on KuaiRand-Pure), and glibc's defaults return such blocks to the
/// kernel (mmap above an adaptive threshold, heap trimming above twice it), so each update faulted its pages in
/// again. With blocks up to 256 MB served from the heap and no trimming below 512 MB free, the memory is reused:
/// measured, a flat PPO epoch on KuaiRand-Pure takes 25–30% fewer CPU seconds (`docs/benchmarks.md`), results
/// bit-identical. Call once at start-up, before other threads allocate. Returns whether both settings took.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; both are valid for glibc and take effect for later
        // allocations (earlier mmap'd blocks are unmapped on free as before).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Blocks below this many bytes come from the heap ([`keep_freed_memory`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 256 << 20;

/// Re-seeds libtorch's generator (e.g. per seed of a multi-seed run, or after restoring a checkpoint).
pub fn seed(seed: u64) {
    tch::manual_seed(seed as i64);
}

/// The GPU when the binary was built with `--features cuda` and one is present, else the CPU.
pub fn device() -> Device {
    Device::cuda_if_available()
}

/// Serialises sections that seed and then use libtorch's process-wide random generator. Test harnesses run
/// tests on several threads of one process: two tests that each call `manual_seed` and then draw would
/// interleave and get different numbers. Hold the guard for the whole seeded section.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_allocator_settings() {
        assert!(super::keep_freed_memory(), "mallopt refused M_MMAP_THRESHOLD or M_TRIM_THRESHOLD");
        // Still a working allocator: a block above glibc's default threshold, written, freed and made again.
        for _ in 0..2 {
            let v = vec![1u8; 64 << 20];
            assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 64 << 20);
        }
    }
}
