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
