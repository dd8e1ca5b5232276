//! Golden fixtures of cr-v5 and ckpt-v21 (fixtures/images/{cr-v5,ckpt-v21}),
//! their expected decoded events (fixtures/expected/), the committed schemas
//! (docs/SCHEMA-*.txt), truncation at every offset, short-read streams, and
//! every decoder error path from hand-made bytes.
//!
//! Regenerate with `CKPT_BLESS=1 cargo test -p ckpt-format --test legacy_golden`.

use ckpt_format::*;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bless() -> bool {
    std::env::var_os("CKPT_BLESS").is_some()
}

/// Compare `actual` with the file at `path`, or write it when blessing.
fn golden(path: &Path, actual: &[u8]) {
    if bless() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let want = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with CKPT_BLESS=1)", path.display()));
    assert!(
        want == actual,
        "{} differs from the actual output (run with CKPT_BLESS=1 to accept)",
        path.display()
    );
}

/// The fixtures: (revision dir, name). `c-*` come from fixtures/legacy/legacy.c,
/// `ours-*` from our encoder (see `ours_v21`).
const FIXTURES: [(&str, &str); 3] = [
    ("cr-v5", "c-basic"),
    ("ckpt-v21", "c-pipe"),
    ("ckpt-v21", "ours-mapped"),
];

fn image_path(rev: &str, name: &str) -> PathBuf {
    root().join(format!("fixtures/images/{rev}/{name}.img"))
}

/// One line per event; page contents summarised by a CRC-32.
fn dump(events: &[Event<'_>]) -> String {
    let mut s = String::new();
    for ev in events {
        match ev {
            Event::Pages(p) => {
                let addrs: Vec<String> = p.addrs.iter().map(|a| format!("{a:#x}")).collect();
                s += &format!(
                    "pages n={} width={} addrs=[{}] data_crc32={:#010x}\n",
                    p.addrs.len(),
                    p.addrs.width(),
                    addrs.join(","),
                    crc(&p.data)
                );
            }
            Event::Thread(t) => {
                let mut t = t.clone();
                let fpu = t.fpu.take().map(|f| {
                    format!(
                        "{:?} xfeatures={:#x} len={} crc32={:#010x}",
                        f.kind,
                        f.xfeatures,
                        f.data.len(),
                        crc(&f.data)
                    )
                });
                s += &format!("thread fpu={fpu:?} {t:?}\n");
            }
            e => s += &format!("{e:?}\n"),
        }
    }
    s
}

fn crc(b: &[u8]) -> u32 {
    // CRC-32 (IEEE), bitwise: small and dependency-free.
    let mut c = !0u32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn decode_slice(bytes: &[u8]) -> Result<Vec<Event<'static>>> {
    let mut src = open_slice(bytes)?;
    let mut v = Vec::new();
    while let Some(ev) = src.next_event()? {
        v.push(ev.into_owned());
    }
    Ok(v)
}

/// A reader returning at most `step` bytes per call.
struct Dribble<'a>(&'a [u8], usize);
impl Read for Dribble<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.1.min(out.len()).min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn decode_stream(bytes: &[u8], step: usize) -> Result<Vec<Event<'static>>> {
    let mut src = open_reader(Dribble(bytes, step))?;
    let mut v = Vec::new();
    while let Some(ev) = src.next_event()? {
        v.push(ev.into_owned());
    }
    Ok(v)
}

fn c_image(which: &str) -> Vec<u8> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let bin = tmp.join("ckpt-legacy-golden");
    let st = Command::new("cc")
        .args(["-std=gnu11", "-O1", "-o"])
        .arg(&bin)
        .arg(root().join("fixtures/legacy/legacy.c"))
        .status()
        .unwrap();
    assert!(st.success());
    let out = tmp.join(format!("golden-{which}.img"));
    assert!(Command::new(&bin)
        .arg(which)
        .arg(&out)
        .status()
        .unwrap()
        .success());
    std::fs::read(out).unwrap()
}

/// An x86-64 image from our encoder with what the C image lacks: an exe and a
/// file mapping (FILE objects before MM and VMA), a vdso, an ERROR record.
fn ours_v21() -> Vec<u8> {
    let c = c_image("v21");
    let mut src = open_slice(&c).unwrap();
    let mut events = Vec::new();
    while let Some(ev) = src.next_event().unwrap() {
        events.push(ev.into_owned());
    }
    for ev in &mut events {
        if let Event::Mm(m) = ev {
            m.exe = Some(b"/usr/bin/pipe-demo".to_vec());
        }
    }
    let at = events
        .iter()
        .position(|e| matches!(e, Event::Vma(_)))
        .unwrap();
    events.insert(at, Event::VmaEnd);
    events.insert(
        at,
        Event::Vma(Vma {
            start: 0x400000,
            end: 0x401000,
            prot: 5,
            flags: 0x875,
            pgoff: 0,
            kind: VmaKind::File,
            file: Some(b"/usr/bin/pipe-demo".to_vec()),
            records: Default::default(),
            extras: Extras::new(),
        }),
    );
    let end = events
        .iter()
        .rposition(|e| matches!(e, Event::VmaEnd))
        .unwrap();
    events.insert(end + 1, Event::VmaEnd);
    events.insert(
        end + 1,
        Event::Vma(Vma {
            start: 0x7fff_0000_4000,
            end: 0x7fff_0000_5000,
            prot: 5,
            flags: 0x75,
            pgoff: 0,
            kind: VmaKind::Vdso,
            file: None,
            records: Default::default(),
            extras: Extras::new(),
        }),
    );
    let tail = events.len() - 1;
    events.insert(
        tail,
        Event::Error(b"[err -16][pos 6230] checkpoint interrupted".to_vec()),
    );
    let mut out = Vec::new();
    let mut enc = encoder(Revision::CkptV21, &mut out);
    for ev in &events {
        enc.event(ev).unwrap();
    }
    enc.finish().unwrap();
    drop(enc);
    out
}

#[test]
fn golden_images_and_expected_events() {
    // The committed C images are what the C program writes today.
    golden(&image_path("cr-v5", "c-basic"), &c_image("crv5"));
    golden(&image_path("ckpt-v21", "c-pipe"), &c_image("v21"));
    golden(&image_path("ckpt-v21", "ours-mapped"), &ours_v21());
    for (rev, name) in FIXTURES {
        let bytes = std::fs::read(image_path(rev, name)).unwrap();
        let events = decode_slice(&bytes).unwrap();
        golden(
            &root().join(format!("fixtures/expected/{rev}/{name}.events.txt")),
            dump(&events).as_bytes(),
        );
        // Streams with short reads decode to the same events.
        for step in [1, 7, 4096] {
            assert_eq!(
                decode_stream(&bytes, step).unwrap(),
                events,
                "{name} step {step}"
            );
        }
        // Re-encoding the events gives the image back.
        let r = Revision::from_name(rev).unwrap();
        let mut out = Vec::new();
        let mut enc = encoder(r, &mut out);
        for ev in &events {
            enc.event(ev).unwrap();
        }
        enc.finish().unwrap();
        drop(enc);
        assert!(out == bytes, "{name}: re-encoding differs");
    }
}

#[test]
fn schemas_match_the_committed_copies() {
    for (rev, file) in [(Revision::CrV5, "cr-v5"), (Revision::CkptV21, "ckpt-v21")] {
        golden(
            &root().join(format!("docs/SCHEMA-{file}.txt")),
            schema::schema(rev).as_bytes(),
        );
    }
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    for (rev, name) in FIXTURES {
        let bytes = std::fs::read(image_path(rev, name)).unwrap();
        for cut in 0..bytes.len() {
            let part = &bytes[..cut];
            assert!(
                decode_slice(part).is_err(),
                "{name} cut at {cut}: slice decoded"
            );
            if cut % 97 == 0 || cut + 64 > bytes.len() {
                let r = std::panic::catch_unwind(|| decode_stream(part, 5));
                assert!(r.unwrap().is_err(), "{name} cut at {cut}: stream decoded");
            }
        }
    }
}

#[test]
fn records_layer_walks_every_byte() {
    for (rev, name) in FIXTURES {
        let bytes = std::fs::read(image_path(rev, name)).unwrap();
        let mut recs = if rev == "cr-v5" {
            crv5::open_records(&bytes)
        } else {
            v21::open_records(&bytes)
        };
        let mut end = 0u64;
        let mut n = 0;
        while let Some(r) = recs.next_record().unwrap() {
            assert_eq!(r.offset, end, "{name}: records are contiguous");
            end = r.offset + r.len;
            n += 1;
        }
        assert_eq!(end, bytes.len() as u64, "{name}: records cover the image");
        assert!(n > 10);
    }
}

// ---------------------------------------------------------------- error paths

fn crv5_img() -> Vec<u8> {
    std::fs::read(image_path("cr-v5", "c-basic")).unwrap()
}
fn v21_img() -> Vec<u8> {
    std::fs::read(image_path("ckpt-v21", "c-pipe")).unwrap()
}

/// Offset of the `n`th (0-based) cr-v5 record of type `code`.
fn crv5_at(b: &[u8], code: u32, n: usize) -> usize {
    let mut recs = crv5::open_records(b);
    let mut k = 0;
    while let Some(r) = recs.next_record().unwrap() {
        let raw = ["PGARR_DATA", "TLS_ARRAY", "LDT_ARRAY"].contains(&r.name);
        if r.type_code == code && !raw {
            if k == n {
                return r.offset as usize;
            }
            k += 1;
        }
    }
    panic!("no record {code} #{n}");
}

fn v21_at(b: &[u8], code: u32, n: usize) -> usize {
    let mut recs = v21::open_records(b);
    let mut k = 0;
    while let Some(r) = recs.next_record().unwrap() {
        if r.type_code == code {
            if k == n {
                return r.offset as usize;
            }
            k += 1;
        }
    }
    panic!("no record {code} #{n}");
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn err(b: &[u8]) -> Error {
    let e = decode_slice(b).unwrap_err();
    // The stream decoder fails the same way.
    let s = decode_stream(b, 3).unwrap_err();
    assert_eq!(e.kind, s.kind);
    e
}

#[test]
fn crv5_error_paths() {
    use ErrorKind::*;
    let good = crv5_img();
    let m = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        err(&b)
    };
    // Bad tail magic.
    let t = crv5_at(&good, 5001, 0);
    assert!(matches!(m(&|b| b[t + 8] ^= 1).kind, BadMagic { .. }));
    // Negative s16 length.
    let task = crv5_at(&good, 101, 0);
    assert!(matches!(
        m(&|b| put16(b, task + 2, 0x8000)).kind,
        BadLength { .. }
    ));
    // Wrong struct size.
    assert!(matches!(
        m(&|b| put16(b, task + 2, 20)).kind,
        BadLength { found: 20, .. }
    ));
    // An unexpected (known) record where MM belongs.
    let mm0 = crv5_at(&good, 201, 0);
    assert!(matches!(
        m(&|b| put16(b, mm0, 202)).kind,
        UnexpectedRecord { .. }
    ));
    // Bad vma_type.
    let vma = crv5_at(&good, 202, 0);
    assert!(matches!(
        m(&|b| put32(b, vma + 8, 9)).kind,
        BadValue {
            field: "vma_type",
            ..
        }
    ));
    // FNAME without its NUL.
    let fname = crv5_at(&good, 3, 0);
    let e = m(&|b| b[fname + 8 + 13] = b'x');
    assert!(matches!(e.kind, Invalid { .. }), "{e}");
    assert_eq!(e.offset, fname as u64);
    // Bad parent tag on MM.
    let mm = crv5_at(&good, 201, 0);
    assert!(matches!(m(&|b| put32(b, mm + 4, 1)).kind, BadParent { .. }));
    // close_on_exec that is not 0/1; bad fd_type; FD_DATA parent not the objref.
    let fe = crv5_at(&good, 302, 0);
    assert!(matches!(
        m(&|b| put32(b, fe + 8 + 8, 2)).kind,
        BadValue {
            field: "close_on_exec",
            ..
        }
    ));
    let fd = crv5_at(&good, 303, 0);
    assert!(matches!(
        m(&|b| put16(b, fd + 8, 7)).kind,
        BadValue {
            field: "fd_type",
            ..
        }
    ));
    assert!(matches!(
        m(&|b| put32(b, fd + 4, 9)).kind,
        BadParent {
            found: 9,
            expected: 1
        }
    ));
    // A PGARR whose page count overflows the record limit.
    let pg = crv5_at(&good, 203, 1);
    assert!(matches!(
        m(&|b| b[pg + 8..pg + 16].copy_from_slice(&u64::MAX.to_le_bytes())).kind,
        TooLarge { .. }
    ));
    // Negative sizeof_tls_array.
    let th = crv5_at(&good, 102, 0);
    assert!(matches!(
        m(&|b| put16(b, th + 8 + 2, 0xffff)).kind,
        BadValue { .. }
    ));
    // CPU shorter than its fixed part.
    let cpu = crv5_at(&good, 103, 0);
    assert!(matches!(
        m(&|b| put16(b, cpu + 2, 100)).kind,
        BadLength { .. }
    ));
    // Trailing bytes after the tail; no tail at all.
    assert!(matches!(m(&|b| b.push(0)).kind, TrailingData { bytes: 1 }));
    assert!(matches!(
        m(&|b| b.truncate(t)).kind,
        MissingTerminator { .. }
    ));
    // Bad head magic is refused by detection.
    assert!(matches!(m(&|b| b[9] ^= 1).kind, UnrecognisedFormat { .. }));
}

#[test]
fn crv5_pad_warnings_and_unknown_records() {
    let mut b = crv5_img();
    let vma = crv5_at(&b, 202, 0);
    b[vma + 8 + 4] = 0xaa; // cr_hdr_vma._padding: uninitialised kernel heap
    let mut dec = crv5::Decoder::new(input::SliceInput::new(&b), ReadOptions::default());
    let mut n = 0;
    while dec.next_event().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, decode_slice(&crv5_img()).unwrap().len());
    assert_eq!(
        dec.warnings(),
        &[crv5::PadWarning {
            offset: (vma + 12) as u64,
            record: "VMA",
            field: "_padding"
        }]
    );
    // Padding comes back as zero: the only byte that differs on re-encoding.
    let events = decode_slice(&b).unwrap();
    let mut out = Vec::new();
    let mut enc = encoder(Revision::CrV5, &mut out);
    for ev in &events {
        enc.event(ev).unwrap();
    }
    enc.finish().unwrap();
    drop(enc);
    assert_eq!(out, crv5_img());

    // An unknown record type before the TAIL survives as Event::Unknown.
    let t = crv5_at(&b, 5001, 0);
    let mut u = crv5_img();
    let rec = [0x99u8, 0x0f, 3, 0, 7, 0, 0, 0, b'a', b'b', b'c'];
    u.splice(t..t, rec);
    let ev = decode_slice(&u).unwrap();
    let unk = ev.iter().find(|e| matches!(e, Event::Unknown(_))).unwrap();
    assert_eq!(
        unk,
        &Event::Unknown(Unknown {
            revision: Revision::CrV5,
            type_code: 0x0f99,
            parent: 7,
            payload: b"abc"[..].into()
        })
    );
}

#[test]
fn v21_error_paths() {
    use ErrorKind::*;
    let good = v21_img();
    let m = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        err(&b)
    };
    // Record length below the header.
    let task = v21_at(&good, 102, 0);
    assert!(matches!(
        m(&|b| put32(b, task + 4, 4)).kind,
        BadLength { found: 4, .. }
    ));
    // Length beyond the input, and beyond the reader's record limit.
    let pb = v21_at(&good, 305, 0);
    assert!(matches!(
        m(&|b| put32(b, pb + 4, 0x10_0000)).kind,
        Truncated { .. }
    ));
    assert!(matches!(
        m(&|b| put32(b, pb + 4, 0x7fff_0000)).kind,
        TooLarge { .. }
    ));
    assert!(matches!(
        m(&|b| put32(b, task + 4, 72)).kind,
        BadLength { found: 72, .. }
    ));
    // Unsupported architecture.
    let e = m(&|b| put16(b, 16, 1));
    assert!(matches!(e.kind, UnsupportedRevision { .. }), "{e}");
    // Negative nr_tasks.
    let tree = v21_at(&good, 101, 0);
    assert!(matches!(
        m(&|b| put32(b, tree + 8, u32::MAX)).kind,
        BadValue {
            field: "nr_tasks",
            ..
        }
    ));
    // Nested pid namespaces.
    assert!(matches!(
        m(&|b| put32(b, tree + 16 + 8 + 20, 1)).kind,
        BadValue { field: "depth", .. }
    ));
    // A FILE_DESC referring to no object.
    let fd = v21_at(&good, 302, 0);
    assert!(matches!(
        m(&|b| put32(b, fd + 8, 77)).kind,
        ObjrefUndefined { id: 77 }
    ));
    // A page BUFFER of the wrong size.
    let pg = v21_at(&good, 403, 0);
    assert!(matches!(m(&|b| b[pg + 8] = 2).kind, BadLength { .. }));
    // Unsupported file type, VMA type.
    let file = v21_at(&good, 304, 0);
    assert!(matches!(
        m(&|b| put32(b, file + 8, 9)).kind,
        BadValue {
            field: "f_type",
            ..
        }
    ));
    let vma = v21_at(&good, 402, 0);
    assert!(matches!(
        m(&|b| put32(b, vma + 8, 4)).kind,
        BadValue {
            field: "vma_type",
            ..
        }
    ));
    // CPU_FPU size differs from HEADER_ARCH xstate_size.
    let fpu = v21_at(&good, 201, 0);
    assert!(matches!(
        m(&|b| put32(b, fpu + 4, 8)).kind,
        BadLength { .. }
    ));
    // TASK_OBJS naming another table.
    let to = v21_at(&good, 104, 0);
    assert!(matches!(m(&|b| put32(b, to + 8, 9)).kind, Invalid { .. }));
    // Tail magic, trailing data, missing tail.
    let t = v21_at(&good, 9001, 0);
    assert!(matches!(m(&|b| b[t + 8] ^= 1).kind, BadMagic { .. }));
    assert!(matches!(
        m(&|b| b.extend_from_slice(&[0; 3])).kind,
        TrailingData { bytes: 3 }
    ));
    assert!(matches!(
        m(&|b| b.truncate(t)).kind,
        MissingTerminator { .. }
    ));
    // A redefined file objref.
    let o2 = v21_at(&good, 6, 10);
    assert!(matches!(
        m(&|b| put32(b, o2 + 12, 3)).kind,
        ObjrefRedefined { id: 3, .. }
    ));
}

#[test]
fn v21_unknown_records_survive_a_round_trip() {
    let good = v21_img();
    let lsm = v21_at(&good, 7, 0);
    let mut b = good.clone();
    // A container section of another security module (not modelled): the
    // name BUFFER says "smack" and LSM_INFO holds 4 bytes of its own.
    let name = v21_at(&good, 3, 0) + 8;
    b[name + 8..name + 13].copy_from_slice(b"smack");
    let info = [7u8, 0, 0, 0, 12, 0, 0, 0, 1, 2, 3, 4];
    b.splice(lsm..lsm + 13, info);
    let events = decode_slice(&b).unwrap();
    assert!(events.iter().any(
        |e| matches!(e, Event::Unknown(u) if u.type_code == 7 && u.payload[..] == [1, 2, 3, 4])
    ));
    assert!(events.iter().any(
        |e| matches!(e, Event::Unknown(u) if u.type_code == 4 && u.payload.starts_with(b"smack"))
    ));
    let mut out = Vec::new();
    let mut enc = encoder(Revision::CkptV21, &mut out);
    for ev in &events {
        enc.event(ev).unwrap();
    }
    enc.finish().unwrap();
    drop(enc);
    assert_eq!(out, b);
}
