//! The CRIU source (ckpt-criu): a dump given as a pack (fixtures/criu/README.md) decoded to
//! the end — protobuf entries of every image kind, pagemap walking against the pages file and
//! the VMAs, files, pipes — and the same bytes read as a container checkpoint archive. Bad
//! input is an error, never a panic or a hang; the heap stays within a bound of the input
//! (protobuf fields widen: a 1-byte varint becomes an 8-byte integer, hence 32x).
#![no_main]
use ckpt_format::EventSource;
use ckpt_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: Counting = Counting;

fn drain(img: &ckpt_criu::CriuImage) -> usize {
    let Ok(mut d) = ckpt_criu::Decoder::new(img) else {
        return 0;
    };
    let mut n = 0;
    while let Ok(Some(_)) = d.next_event() {
        n += 1;
    }
    let _ = ckpt_criu::info::info(img);
    n
}

fuzz_target!(|data: &[u8]| {
    assert_heap_bound_x(data.len(), 32, || {
        if let Ok(img) = ckpt_criu::CriuImage::from_pack(data) {
            drain(&img);
        }
        if let Ok(img) = ckpt_criu::CriuImage::open_reader(data, std::path::Path::new("fuzz.tar")) {
            drain(&img);
        }
    });
});
