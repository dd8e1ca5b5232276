//! Every revision's decoder over a byte slice, driven to the end.
#![no_main]
use ckpt_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    assert_heap_bound(data.len(), || {
        if let Ok(mut src) = ckpt_format::open_slice(data) {
            drain(&mut *src, data.len());
        }
    });
});
