//! Validation (the model checker on top of each revision's own checks), and
//! the native-1 decoder with page checksums off must never accept what it
//! rejects with them on, except for page-content checksums.
#![no_main]
use ckpt_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    assert_heap_bound(data.len(), || {
        if let Ok(mut src) = ckpt_format::open_slice(data) {
            let r = ckpt_format::validate::validate(&mut *src);
            assert!(r.events <= (data.len() / 8 + 16) as u64);
            if r.error.is_none() {
                // A valid image re-encodes to a valid native-1 image with the same events.
                let mut out = Vec::new();
                let mut src = ckpt_format::open_slice(data).unwrap();
                let mut enc = ckpt_format::native::Encoder::new(&mut out);
                if ckpt_format::pump(&mut *src, &mut enc).is_ok() {
                    drop(enc);
                    let mut a = ckpt_format::open_slice(data).unwrap();
                    let mut b = ckpt_format::open_slice(&out).unwrap();
                    let (ea, xa) = drain(&mut *a, data.len());
                    let (eb, xb) = drain(&mut *b, out.len());
                    assert!(xa.is_none() && xb.is_none(), "{xa:?} {xb:?}");
                    assert_eq!(ea.len(), eb.len());
                }
            }
        }
    });
});
