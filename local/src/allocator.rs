//! The local stack's memory allocator: mimalloc, with per-thread free lists. Under load
//! glibc's malloc and free (with their consolidations) took about a sixth of the stack's
//! CPU (docs/benchmarks.md). Built without transparent huge pages (`no_thp`), and set to
//! give freed memory back to the OS at once: each default alone held 6 to 20 MB more at
//! the peak.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// The allocator `main` installs.
pub type Allocator = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (the version libmimalloc-sys
/// builds; its Rust constants name v2's options). A test checks its default of 1,000 ms.
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// Makes the allocator return freed memory to the OS at once instead of a second later.
pub fn return_freed_memory_at_once() {
    // SAFETY: sets one of mimalloc's process-wide options; any thread may, at any time.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    use libmimalloc_sys::mi_option_get;

    use super::*;

    #[test]
    fn the_option_set_is_the_purge_delay() {
        // SAFETY: reads a process-wide option.
        let read = || unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(read(), 1000, "mimalloc v3's default purge delay, in ms");
        return_freed_memory_at_once();
        assert_eq!(read(), 0);
    }
}
