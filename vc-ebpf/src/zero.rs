//! Zero-filled stack buffers without a call to `memset`.
//!
//! `mem::zeroed()` and `[0u8; N]` of more than a few bytes compile to a call of the
//! `memset` BPF subprogram, a byte-at-a-time loop: 64 bytes cost some 320 instructions, more
//! than a whole fast path. Volatile word stores cannot be merged back into that call, and the
//! value is used in place: moving it out would be a copy of zeros, which is a `memset` again.
use core::mem::{MaybeUninit, align_of, size_of};

/// Zeroes `slot` in 4-byte words and returns it initialised. `T` must be valid all-zero,
/// with a size that is a multiple of 4 and an alignment of at least 4 (checked at compile
/// time).
#[inline(always)]
pub fn init<T>(slot: &mut MaybeUninit<T>) -> &mut T {
    const {
        assert!(size_of::<T>().is_multiple_of(4) && align_of::<T>() >= 4);
    }
    let words = slot.as_mut_ptr().cast::<u32>();
    let mut i = 0;
    while i < size_of::<T>() / 4 {
        // SAFETY: word `i` lies inside `slot`, which is aligned for u32.
        unsafe { words.add(i).write_volatile(0) };
        i += 1;
    }
    // SAFETY: every byte was written, and callers use types that are valid all-zero.
    unsafe { slot.assume_init_mut() }
}
