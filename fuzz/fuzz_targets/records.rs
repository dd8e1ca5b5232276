//! The framing layer of every revision over a slice and over a stream.
#![no_main]
use ckpt_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    assert_heap_bound(data.len(), || {
        let mut a = Vec::new();
        if let Ok(mut r) = ckpt_format::open_records_slice(data) {
            while let Ok(Some(x)) = r.next_record() {
                a.push((x.offset, x.type_code, x.len, x.parent, x.objref));
                assert!(a.len() <= data.len() / 8 + 16);
            }
        }
        let mut b = Vec::new();
        if let Ok(mut r) = ckpt_format::open_records_reader(ShortReads::new(data, &[3, 1, 250])) {
            while let Ok(Some(x)) = r.next_record() {
                b.push((x.offset, x.type_code, x.len, x.parent, x.objref));
                assert!(b.len() <= data.len() / 8 + 16);
            }
        }
        assert_eq!(a, b);
    });
});
