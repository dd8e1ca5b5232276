//! Every cr-v5 image the project writes, walked in the reading order of a
//! Linux-CR RFC v5 restart (tests/common/crv5_restart.rs) to its end: the C
//! program's fixture and its re-encoding, and every native-1 and ckpt-v21
//! fixture converted to cr-v5 (lossy: era A holds one i386 task).

#[path = "common/crv5_restart.rs"]
mod crv5_restart;

use ckpt_format::convert::{convert_slice, ConvertOptions, TargetKernel};
use ckpt_format::*;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn images(rev: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("fixtures/images").join(rev))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "img"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn events(b: &[u8]) -> Vec<Event<'static>> {
    let mut src = open_slice(b).unwrap();
    let mut v = Vec::new();
    while let Some(ev) = src.next_event().unwrap() {
        v.push(ev.into_owned());
    }
    v
}

#[test]
fn the_cr_v5_fixture_and_its_reencoding_walk_to_their_end() {
    for (name, b) in images("cr-v5") {
        let w = crv5_restart::walk(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(w.pages > 0 && w.fds > 0, "{name}: {w:?}");
        let mut out = Vec::new();
        let mut enc = encoder(Revision::CrV5, &mut out);
        for e in &events(&b) {
            enc.event(e).unwrap();
        }
        enc.finish().unwrap();
        drop(enc);
        crv5_restart::walk(&out).unwrap_or_else(|e| panic!("{name} re-encoded: {e}"));
    }
}

#[test]
fn native_and_v21_fixtures_converted_to_cr_v5_walk_to_their_end() {
    let mut n = 0;
    for rev in ["native-1", "ckpt-v21"] {
        for (name, b) in images(rev) {
            let has_task = events(&b).iter().any(|e| matches!(e, Event::Task(_)));
            let mut out = Vec::new();
            let o = ConvertOptions {
                to: Revision::CrV5,
                lossy: true,
                target_kernel: TargetKernel::Keep,
            };
            convert_slice(&b, &mut out, &o).unwrap();
            match crv5_restart::walk(&out) {
                Ok(w) => {
                    assert!(has_task, "{rev} {name}");
                    n += 1;
                    assert_eq!(w.records[0].1, "HEAD");
                }
                // An image with no task is HEAD + TAIL: nothing to restart.
                Err(e) => assert!(
                    !has_task && e.contains("TAIL where a v5 restart reads TASK"),
                    "{rev} {name}: {e}"
                ),
            }
        }
    }
    assert!(n >= 4);
}

#[test]
fn a_missing_record_is_named_with_its_offset() {
    let (_, b) = images("cr-v5").remove(0);
    let w = crv5_restart::walk(&b).unwrap();
    // Drop the THREAD record and its TLS array: the CPU comes where THREAD is read.
    let (off, _) = *w.records.iter().find(|r| r.1 == "THREAD").unwrap();
    let (cpu, _) = *w.records.iter().find(|r| r.1 == "CPU").unwrap();
    let mut cut = b.clone();
    cut.drain(off..cpu);
    let e = crv5_restart::walk(&cut).unwrap_err();
    assert_eq!(e, format!("@{off:#x}: CPU where a v5 restart reads THREAD"));
}
