//! Conversion: any decodable input is converted to native-1, then to every
//! other revision and back. Whatever a strict (non-lossy) conversion accepts
//! must come back byte-identical; a refusal must list what would be lost. The
//! lossy conversion must then succeed, report exactly those items and write an
//! image that converts back.
#![no_main]
use ckpt_format::convert::{convert_slice, ConvertOptions, TargetKernel};
use ckpt_format::{ErrorKind, Revision};
use ckpt_fuzz::*;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static A: Counting = Counting;

fn conv(b: &[u8], to: Revision, lossy: bool) -> ckpt_format::Result<Vec<u8>> {
    let mut out = Vec::new();
    let opts = ConvertOptions {
        to,
        lossy,
        target_kernel: TargetKernel::Keep,
    };
    convert_slice(b, &mut out, &opts).map(|_| out)
}

fuzz_target!(|data: &[u8]| {
    assert_heap_bound(data.len(), || {
        let Ok(n1) = conv(data, Revision::Native1, false) else {
            return;
        };
        // native-1 → native-1 is the identity on our own output.
        assert_eq!(conv(&n1, Revision::Native1, false).unwrap(), n1);
        for rev in [Revision::CrV5, Revision::CkptV21] {
            match conv(&n1, rev, false) {
                Ok(img) => {
                    let back = conv(&img, Revision::Native1, false)
                        .unwrap_or_else(|e| panic!("{rev} output does not convert back: {e}"));
                    assert_eq!(back, n1, "native-1 -> {rev} -> native-1 changed the image");
                }
                Err(e) => match &e.kind {
                    ErrorKind::Unrepresentable { items } => {
                        assert!(!items.is_empty());
                        // Lossy converts anyway, reports exactly what strict
                        // refused, and writes an image that reads back.
                        let mut out = Vec::new();
                        let opts = ConvertOptions {
                            to: rev,
                            lossy: true,
                            target_kernel: TargetKernel::Keep,
                        };
                        let report = convert_slice(&n1, &mut out, &opts)
                            .unwrap_or_else(|e| panic!("lossy conversion to {rev} failed: {e}"));
                        assert_eq!(
                            &report.dropped, items,
                            "lossy report differs from the refusal"
                        );
                        conv(&out, Revision::Native1, false).unwrap_or_else(|e| {
                            panic!("lossy {rev} output does not convert back: {e}")
                        });
                    }
                    _ => {
                        // Anything else is a problem of the input that native-1 accepted.
                        panic!("strict conversion to {rev} failed without a refusal list: {e}")
                    }
                },
            }
        }
    });
});
