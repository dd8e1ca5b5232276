//! ckpt-v21 records kept as `Unknown` events in a native-1 image are written
//! into a ckpt-v21 image only when a ckpt-v21 reader gives them back as the
//! same records (docs/V21-STREAM.md "Records kept from the source").

use ckpt_format::convert::{convert_slice, ConvertOptions, ConvertReport, TargetKernel};
use ckpt_format::*;
use std::path::Path;

fn conv(b: &[u8], to: Revision, lossy: bool) -> Result<(Vec<u8>, ConvertReport)> {
    let mut out = Vec::new();
    let opts = ConvertOptions {
        to,
        lossy,
        target_kernel: TargetKernel::Keep,
    };
    convert_slice(b, &mut out, &opts).map(|r| (out, r))
}

/// (type code, payload) of every ckpt-v21 record kept as unknown.
fn kept(b: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut src = open_slice(b).unwrap();
    let mut v = Vec::new();
    while let Some(ev) = src.next_event().unwrap() {
        if let Event::Unknown(u) = ev {
            assert_eq!(u.revision, Revision::CkptV21);
            v.push((u.type_code, u.payload.to_vec()));
        }
    }
    v
}

/// The fuzz finding of fixtures/fuzz/README.md: a native-1 image keeping, after
/// a thread, an OBJREF of no known object type, a record of no known type, a
/// UTS_NS, and then an IPC namespace, an NS and a TASK_NS exactly as ckpt
/// writes its own (which a ckpt-v21 reader reads as ckpt's namespaces, i.e.
/// as nothing). The first three come back; the other eight are named.
#[test]
fn kept_namespace_records_a_reader_would_take_as_its_own_are_named() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/fuzz/convert-v21-foreign-signal-records.bin");
    let (n1, _) = conv(&std::fs::read(p).unwrap(), Revision::Native1, false).unwrap();
    let before = kept(&n1);
    let names: Vec<u32> = before.iter().map(|(c, _)| *c).collect();
    assert_eq!(names[3..], [6, 110, 501, 501, 501, 6, 108, 103]);

    let e = conv(&n1, Revision::CkptV21, false).unwrap_err();
    let ErrorKind::Unrepresentable { items } = &e.kind else {
        panic!("{e}")
    };
    let want: Vec<String> = [
        "OBJREF (6)",
        "IPC_NS (110)",
        "IPC (501)",
        "IPC (501)",
        "IPC (501)",
        "OBJREF (6)",
        "NS (108)",
        "TASK_NS (103)",
    ]
    .iter()
    .map(|r| format!("task 300 (pipe-demo): ckpt-v21 record {r} kept from the source would not be read back as that record in this place (a ckpt-v21 reader reads it as part of the image or not at all): not written"))
    .collect();
    assert_eq!(items, &want);

    // Lossy: exactly those are dropped; the rest comes back byte for byte.
    let (v21, report) = conv(&n1, Revision::CkptV21, true).unwrap();
    assert_eq!(report.dropped, want);
    let (back, _) = conv(&v21, Revision::Native1, false).unwrap();
    assert_eq!(kept(&back), before[..3]);
    // The lossy result is exact from there on.
    let (again, r) = conv(&back, Revision::CkptV21, false).unwrap();
    assert!(r.dropped.is_empty());
    assert!(conv(&again, Revision::Native1, false).unwrap().0 == back);
}

fn with_unknowns(src: &[u8], at: impl Fn(&Event<'_>) -> bool, recs: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut n1 = Vec::new();
    let mut enc = encoder(Revision::Native1, &mut n1);
    let mut s = open_slice(src).unwrap();
    while let Some(ev) = s.next_event().unwrap() {
        enc.event(&ev).unwrap();
        if at(&ev) {
            for (c, p) in recs {
                enc.event(&Event::Unknown(Unknown {
                    revision: Revision::CkptV21,
                    type_code: *c,
                    parent: 0,
                    payload: p.clone().into(),
                }))
                .unwrap();
            }
        }
    }
    enc.finish().unwrap();
    drop(enc);
    n1
}

fn c_pipe() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/ckpt-v21/c-pipe.img");
    conv(&std::fs::read(p).unwrap(), Revision::Native1, false)
        .unwrap()
        .0
}

/// Kept records equal to the container section ckpt writes itself (CONTAINER,
/// the LSM name `lsm_none`, LSM_INFO `dummy`) right after the header: a
/// ckpt-v21 reader drops them as ckpt's own, so they are named, and lossy
/// leaves them out.
#[test]
fn a_kept_container_section_equal_to_ckpts_own_is_named() {
    let mut name = b"lsm_none".to_vec();
    name.resize(11, 0);
    let recs = [(3, vec![]), (4, name), (7, b"dummy".to_vec())];
    let n1 = with_unknowns(&c_pipe(), |ev| matches!(ev, Event::Header(_)), &recs);
    let e = conv(&n1, Revision::CkptV21, false).unwrap_err();
    let ErrorKind::Unrepresentable { items } = &e.kind else {
        panic!("{e}")
    };
    let want: Vec<String> = ["CONTAINER (3)", "BUFFER (4)", "LSM_INFO (7)"]
        .iter()
        .map(|r| format!("ckpt-v21 record {r} kept from the source would not be read back as that record in this place (a ckpt-v21 reader reads it as part of the image or not at all): not written"))
        .collect();
    assert_eq!(items, &want);
    let (v21, report) = conv(&n1, Revision::CkptV21, true).unwrap();
    assert_eq!(report.dropped, want);
    assert!(conv(&v21, Revision::Native1, false).unwrap().0 == c_pipe());
    assert!(kept(&n1).len() == 3);
}

/// The same records with another LSM name are an LSM's container section a
/// reader keeps: written, and native-1 -> ckpt-v21 -> native-1 is exact.
#[test]
fn a_kept_container_section_of_another_lsm_comes_back() {
    let mut name = b"selinux".to_vec();
    name.resize(11, 0);
    let recs = [(3, vec![]), (4, name), (7, b"policy".to_vec())];
    let n1 = with_unknowns(&c_pipe(), |ev| matches!(ev, Event::Header(_)), &recs);
    let (v21, report) = conv(&n1, Revision::CkptV21, false).unwrap();
    assert!(report.dropped.is_empty());
    assert!(conv(&v21, Revision::Native1, false).unwrap().0 == n1);
    assert_eq!(kept(&n1).len(), 3);
}
