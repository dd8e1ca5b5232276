//! Differential: the stream reader with input-chosen short reads must give
//! exactly the events and the error of the slice reader.
#![no_main]
use ckpt_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: Counting = Counting;

fuzz_target!(|input: &[u8]| {
    if input.is_empty() {
        return;
    }
    let k = (input[0] as usize % 16).min(input.len() - 1);
    let (sizes, data) = input[1..].split_at(k);
    let slice = match ckpt_format::open_slice(data) {
        Ok(mut s) => assert_heap_bound(data.len(), || drain(&mut *s, data.len())),
        Err(e) => (Vec::new(), Some(e)),
    };
    let stream = match ckpt_format::open_reader(ShortReads::new(data, sizes)) {
        Ok(mut s) => assert_heap_bound(data.len(), || drain(&mut *s, data.len())),
        Err(e) => (Vec::new(), Some(e)),
    };
    assert_eq!(slice, stream);
});
