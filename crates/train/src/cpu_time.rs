//! The CPU time of this process (user + system, every thread), for `timing.jsonl`: unlike wall-clock
//! seconds it does not grow when other jobs share the cores, so a study's cost can be measured on a busy
//! machine. It is the whole process's: exact for a `dsrm train` process (every run of an experiment or a
//! study is one), an over-count where one process trains several runs at once (tests, in-process loops).

/// CPU seconds this process has used since it started; `None` where the platform does not say.
pub(crate) fn process_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a whole `rusage` into the pointer it is given and reads nothing from it.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: the call succeeded, so the struct is initialised (and it was zeroed before).
        let usage = unsafe { usage.assume_init() };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu_seconds().expect("a unix test machine reports CPU time");
        // Busy work the optimiser cannot drop: ~50 M dependent multiply-adds.
        let mut x = 1.0f64;
        for i in 0..50_000_000u64 {
            x = std::hint::black_box(x * 1.000_000_001 + (i & 1) as f64 * 1e-12);
        }
        let after = process_cpu_seconds().unwrap();
        assert!(x.is_finite());
        assert!(after > before, "{before} -> {after}");
    }
}
