//! native-1: round trips, reader equivalence, and every error from hand-made bytes.

use ckpt_format::build::ImageBuilder;
use ckpt_format::input::{SliceInput, StreamInput};
use ckpt_format::native::{self, Decoder, RecordReader, RecordType};
use ckpt_format::validate::validate;
use ckpt_format::*;
use std::io::{self, Read};

fn example() -> Vec<u8> {
    ImageBuilder::example().to_native_bytes().unwrap()
}

/// All events of a source, owned, and the error that ended it (if any).
fn drain(src: &mut dyn EventSource) -> (Vec<Event<'static>>, Option<Error>) {
    let mut v = Vec::new();
    loop {
        match src.next_event() {
            Ok(Some(e)) => v.push(e.into_owned()),
            Ok(None) => return (v, None),
            Err(e) => {
                // A source stops for good after an error.
                assert!(src.next_event().unwrap().is_none());
                return (v, Some(e));
            }
        }
    }
}

/// A reader returning short reads of pseudo-random sizes (1..=max).
struct Jitter<'a> {
    data: &'a [u8],
    seed: u64,
    max: usize,
}
impl Read for Jitter<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (1 + (self.seed >> 33) as usize % self.max)
            .min(out.len())
            .min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn slice_events(b: &[u8]) -> (Vec<Event<'static>>, Option<Error>) {
    let mut d = Decoder::new(SliceInput::new(b), ReadOptions::default());
    drain(&mut d)
}

fn stream_events(b: &[u8], seed: u64, max: usize) -> (Vec<Event<'static>>, Option<Error>) {
    let mut d = Decoder::new(
        StreamInput::new(Jitter { data: b, seed, max }),
        ReadOptions::default(),
    );
    drain(&mut d)
}

#[test]
fn example_decodes_to_the_builder_events() {
    let b = ImageBuilder::example();
    let bytes = b.to_native_bytes().unwrap();
    let (evs, err) = slice_events(&bytes);
    assert_eq!(err, None);
    assert_eq!(evs.len(), b.events.len());
    for (got, want) in evs.iter().zip(&b.events) {
        match (got, want) {
            (Event::Header(g), Event::Header(w)) => {
                let mut w = w.clone();
                w.revision = Revision::Native1;
                assert_eq!(g, &w);
            }
            _ => assert_eq!(got, want),
        }
    }
}

#[test]
fn read_write_is_byte_identical() {
    let bytes = example();
    let mut src = open_slice(&bytes).unwrap();
    let mut out = Vec::new();
    {
        let mut enc = native::Encoder::new(&mut out);
        pump(&mut *src, &mut enc).unwrap();
    }
    assert_eq!(out, bytes);
}

#[test]
fn stream_reader_equals_slice_reader_with_short_reads() {
    let bytes = example();
    let want = slice_events(&bytes);
    for seed in 0..20 {
        for max in [1, 3, 7, 64, 4097] {
            assert_eq!(
                stream_events(&bytes, seed, max),
                want,
                "seed {seed} max {max}"
            );
        }
    }
    // open_reader recognises the revision on a stream too.
    let mut r = open_reader(Jitter {
        data: &bytes,
        seed: 9,
        max: 5,
    })
    .unwrap();
    assert_eq!(drain(&mut *r), want);
}

#[test]
fn truncation_anywhere_is_an_error_never_a_panic() {
    let bytes = example();
    for cut in 0..bytes.len() {
        let t = &bytes[..cut];
        let s = match open_slice(t) {
            Ok(mut src) => drain(&mut *src).1,
            Err(e) => Some(e),
        };
        let e = s.unwrap_or_else(|| panic!("cut at {cut} gave no error"));
        assert!(
            e.offset <= cut as u64,
            "cut {cut}: error offset {}",
            e.offset
        );
        // The stream reader agrees exactly when the revision is recognised.
        if cut >= 16 {
            assert_eq!(
                stream_events(t, cut as u64, 13).1.as_ref(),
                Some(&e),
                "cut {cut}"
            );
        }
    }
}

#[test]
fn every_single_byte_flip_is_detected() {
    // CRCs cover every byte that carries meaning; padding must be zero.
    let bytes = example();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x20;
        let e = match open_slice(&b) {
            Ok(mut src) => drain(&mut *src).1,
            Err(e) => Some(e),
        };
        assert!(e.is_some(), "flip at {i} not detected");
    }
}

// ---- hand-made images: a list of records re-serialised with valid CRCs ----

#[derive(Clone, Debug)]
struct Rec {
    ty: u32,
    parent: u32,
    objref: u32,
    payload: Vec<u8>,
}

fn records_of(bytes: &[u8]) -> Vec<Rec> {
    let mut r = RecordReader::new(SliceInput::new(bytes));
    let mut v = Vec::new();
    while let Some(x) = r.next_record().unwrap() {
        v.push(Rec {
            ty: x.type_code,
            parent: x.parent,
            objref: if matches!(RecordType(x.type_code), RecordType::FILE | RecordType::PIPE) {
                x.objref.unwrap()
            } else {
                0
            },
            payload: x.payload.to_vec(),
        });
    }
    v
}

/// Serialise records; the tail (if last) gets a correct count, offset and stream CRC.
fn serialise(recs: &[Rec]) -> Vec<u8> {
    let mut out = native::preamble().to_vec();
    let mut crc = crc32fast::Hasher::new();
    for (i, r) in recs.iter().enumerate() {
        let mut payload = r.payload.clone();
        if r.ty == RecordType::TAIL.0 && i == recs.len() - 1 {
            payload.clear();
            payload.extend_from_slice(&(i as u64).to_le_bytes());
            payload.extend_from_slice(&(out.len() as u64).to_le_bytes());
            payload.extend_from_slice(&crc.clone().finalize().to_le_bytes());
            payload.extend_from_slice(&0u32.to_le_bytes());
        }
        let h = raw_record(r.ty, r.parent, r.objref, &payload);
        if r.ty != RecordType::TAIL.0 {
            crc.update(&h[..24]);
        }
        out.extend_from_slice(&h);
    }
    out
}

fn raw_record(ty: u32, parent: u32, objref: u32, payload: &[u8]) -> Vec<u8> {
    let len = 24 + payload.len() as u32;
    let mut h = Vec::new();
    for v in [ty, len, parent, objref, 0, 0] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    let hdr = native::RecordHeader {
        ty: ty.into(),
        len: len.into(),
        parent: parent.into(),
        objref: objref.into(),
        crc: 0.into(),
        reserved: 0.into(),
    };
    let crc = native::record_crc(&hdr, payload);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(payload);
    while h.len() % 8 != 0 {
        h.push(0);
    }
    h
}

fn first_error(bytes: &[u8]) -> Error {
    let e = match open_slice(bytes) {
        Ok(mut s) => drain(&mut *s).1,
        Err(e) => Some(e),
    }
    .expect("an error");
    // Same error from a stream with short reads.
    if matches!(detect(bytes), Ok(Detected::Supported(Revision::Native1))) {
        assert_eq!(stream_events(bytes, 1, 5).1, Some(e.clone()));
    }
    e
}

fn idx(recs: &[Rec], ty: RecordType) -> usize {
    recs.iter().position(|r| r.ty == ty.0).unwrap()
}

fn offset_of(recs: &[Rec], i: usize) -> u64 {
    let b = serialise(&recs[..i]);
    b.len() as u64
}

#[test]
fn hand_made_records_round_trip_unchanged() {
    let bytes = example();
    assert_eq!(serialise(&records_of(&bytes)), bytes);
}

#[test]
fn error_bad_magic_and_unrecognised() {
    let mut b = example();
    b[1] = b'X';
    let e = first_error(&b);
    assert!(
        matches!(e.kind, ErrorKind::UnrecognisedFormat { .. }),
        "{e}"
    );
    assert_eq!(e.offset, 0);
    let e = first_error(b"hello world, not an image");
    assert!(e.to_string().contains("unrecognised image"), "{e}");
}

#[test]
fn error_unsupported_revision() {
    let mut b = example();
    b[8] = 2;
    let e = first_error(&b);
    assert!(
        matches!(&e.kind, ErrorKind::UnsupportedRevision { recognised } if recognised.contains("native-2")),
        "{e}"
    );
}

#[test]
fn error_preamble_checksum() {
    let mut b = example();
    b[13] ^= 1;
    let e = first_error(&b);
    assert!(matches!(e.kind, ErrorKind::BadChecksum { .. }), "{e}");
    assert_eq!(e.offset, 12);
}

#[test]
fn error_unknown_features() {
    let mut recs = records_of(&example());
    recs[0].payload[7] |= 0x80;
    let e = first_error(&serialise(&recs));
    assert_eq!(
        e.kind,
        ErrorKind::UnknownFeatures {
            found: 1 << 63,
            known: native::KNOWN_FEATURES
        }
    );
    assert_eq!(e.offset, 16 + 24);
    assert_eq!(e.record.clone().unwrap().name, "HEADER");
}

#[test]
fn error_bad_checksum_names_the_record() {
    let bytes = example();
    let recs = records_of(&bytes);
    let i = idx(&recs, RecordType::VMA);
    let off = offset_of(&recs, i);
    let mut b = bytes.clone();
    b[off as usize + 30] ^= 1;
    let e = first_error(&b);
    assert!(matches!(e.kind, ErrorKind::BadChecksum { .. }), "{e}");
    assert_eq!(e.offset, off + 16);
    assert_eq!(e.record.clone().unwrap().name, "VMA");
    assert!(e.to_string().contains(&format!("at byte {}", off + 16)));
}

#[test]
fn error_page_data_checksum_only_when_asked() {
    let bytes = example();
    let recs = records_of(&bytes);
    let i = idx(&recs, RecordType::PAGES);
    let off = offset_of(&recs, i) as usize;
    let mut b = bytes.clone();
    let last = off + 24 + recs[i].payload.len() - 1;
    b[last] ^= 0xff;
    let e = first_error(&b);
    assert!(matches!(e.kind, ErrorKind::BadChecksum { .. }), "{e}");
    assert_eq!(e.offset, off as u64 + 24 + 8);
    // A walk that skips page contents does not see it.
    let mut d = Decoder::new(
        SliceInput::new(&b),
        ReadOptions {
            check_page_data: false,
        },
    );
    assert_eq!(drain(&mut d).1, None);
}

#[test]
fn error_bad_length_and_truncated_header() {
    let bytes = example();
    let recs = records_of(&bytes);
    let i = idx(&recs, RecordType::TASK);
    let off = offset_of(&recs, i) as usize;
    let mut b = bytes.clone();
    b[off + 4..off + 8].copy_from_slice(&8u32.to_le_bytes());
    let e = first_error(&b);
    assert_eq!(
        e.kind,
        ErrorKind::BadLength {
            found: 8,
            expected: "at least 24".into()
        }
    );
    assert_eq!(e.offset, off as u64);
    // A length far beyond the input: truncated, named at the record.
    b[off + 4..off + 8].copy_from_slice(&(60u32 << 20).to_le_bytes());
    let e = first_error(&b);
    assert!(matches!(e.kind, ErrorKind::Truncated { .. }), "{e}");
    assert_eq!(e.offset, off as u64);
    // Beyond the cap: refused before any allocation.
    b[off + 4..off + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = first_error(&b);
    assert!(matches!(e.kind, ErrorKind::TooLarge { .. }), "{e}");
}

#[test]
fn error_payload_too_short_for_its_fields() {
    let mut recs = records_of(&example());
    let i = idx(&recs, RecordType::FD);
    recs[i].payload.truncate(6);
    let e = first_error(&serialise(&recs));
    assert!(matches!(e.kind, ErrorKind::BadLength { .. }), "{e}");
    assert_eq!(e.record.clone().unwrap().name, "FD");
    // And one too long.
    let mut recs = records_of(&example());
    recs[i].payload.extend_from_slice(&[0; 8]);
    let e = first_error(&serialise(&recs));
    assert!(matches!(e.kind, ErrorKind::BadLength { .. }), "{e}");
}

#[test]
fn error_unknown_record_type() {
    let mut recs = records_of(&example());
    recs.insert(
        2,
        Rec {
            ty: 0x7777,
            parent: 0,
            objref: 0,
            payload: vec![],
        },
    );
    let e = first_error(&serialise(&recs));
    assert_eq!(e.kind, ErrorKind::UnknownRecord { code: 0x7777 });
    assert_eq!(e.offset, offset_of(&recs, 2));
}

#[test]
fn error_unexpected_record_first() {
    let mut recs = records_of(&example());
    recs.swap(0, 1);
    let e = first_error(&serialise(&recs));
    assert!(matches!(e.kind, ErrorKind::UnexpectedRecord { .. }), "{e}");
    assert_eq!(e.offset, 16);
}

#[test]
fn error_bad_parent() {
    let mut recs = records_of(&example());
    let i = idx(&recs, RecordType::THREAD);
    recs[i].parent = 999;
    let e = first_error(&serialise(&recs));
    assert_eq!(
        e.kind,
        ErrorKind::BadParent {
            found: 999,
            expected: 100
        }
    );
    assert_eq!(e.offset, offset_of(&recs, i) + 8);
}

#[test]
fn error_objref_undefined_and_redefined() {
    let recs = records_of(&example());
    // An fd naming a file that was never defined.
    let mut r1 = recs.clone();
    let i = idx(&r1, RecordType::FD);
    r1[i].payload[8..12].copy_from_slice(&77u32.to_le_bytes());
    let e = first_error(&serialise(&r1));
    assert_eq!(e.kind, ErrorKind::ObjrefUndefined { id: 77 });
    assert_eq!(e.offset, offset_of(&r1, i));
    // Used before definition: move the FD above its FILE.
    let mut r2 = recs.clone();
    let f = idx(&r2, RecordType::FILE);
    r2.swap(f, f + 1);
    let e = first_error(&serialise(&r2));
    assert_eq!(e.kind, ErrorKind::ObjrefUndefined { id: 1 });
    // Defined twice.
    let mut r3 = recs.clone();
    let f = idx(&r3, RecordType::FILE);
    let dup = r3[f].clone();
    r3.insert(f + 1, dup);
    let e = first_error(&serialise(&r3));
    assert_eq!(
        e.kind,
        ErrorKind::ObjrefRedefined {
            id: 1,
            first: offset_of(&r3, f)
        }
    );
    // A record that defines nothing must carry objref 0.
    let mut r4 = recs.clone();
    r4[1].objref = 5;
    let e = first_error(&serialise(&r4));
    assert!(
        matches!(
            e.kind,
            ErrorKind::BadValue {
                field: "objref",
                ..
            }
        ),
        "{e}"
    );
}

fn vma_payload(start: u64, end: u64) -> Vec<u8> {
    let mut p = Vec::new();
    for v in [start, end, 0x73, 0] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    for v in [3u32, 1, 0, 0, 0, 0] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p
}

#[test]
fn error_vma_order() {
    let mut recs = records_of(&example());
    // Make the second VMA start below the first one's end.
    let vmas: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ty == RecordType::VMA.0)
        .map(|(i, _)| i)
        .collect();
    let j = vmas[1];
    let mut k = j + 1;
    while recs[k].ty != RecordType::VMA_END.0 {
        k += 1;
    }
    recs.drain(j + 1..k);
    recs[j + 1].payload = vec![0; 16];
    recs[j].payload = vma_payload(0x40_1000, 0x40_3000);
    let e = first_error(&serialise(&recs));
    assert_eq!(
        e.kind,
        ErrorKind::VmaOrder {
            start: 0x40_1000,
            prev_end: 0x40_2000
        }
    );
    assert_eq!(e.offset, offset_of(&recs, j));
}

fn zero_run(start: u64, count: u64) -> Vec<u8> {
    let mut p = start.to_le_bytes().to_vec();
    p.extend_from_slice(&count.to_le_bytes());
    p
}

#[test]
fn error_pages_unaligned_outside_and_out_of_order() {
    let recs = records_of(&example());
    let z = idx(&recs, RecordType::ZERO_PAGES); // heap zero run 0x602000 x2
    let cases: [(u64, u64, ErrorKind); 3] = [
        (0x60_2010, 2, ErrorKind::PageUnaligned { addr: 0x60_2010 }),
        (
            0x60_4000,
            2,
            ErrorKind::PageOutsideVma {
                addr: 0x60_4000,
                start: 0x60_1000,
                end: 0x60_5000,
            },
        ),
        (
            0x60_1000,
            2,
            ErrorKind::PageOrder {
                addr: 0x60_1000,
                prev: 0x60_1000,
            },
        ),
    ];
    for (start, count, want) in cases {
        let mut r = recs.clone();
        r[z].payload = zero_run(start, count);
        let e = first_error(&serialise(&r));
        assert_eq!(e.kind, want);
        assert_eq!(e.offset, offset_of(&r, z));
        assert_eq!(e.record.clone().unwrap().name, "ZERO_PAGES");
    }
}

#[test]
fn error_missing_terminators_and_trailing_data() {
    let recs = records_of(&example());
    // Drop a VMA_END: the next VMA comes while one is open.
    let mut r = recs.clone();
    let i = idx(&r, RecordType::VMA_END);
    r.remove(i);
    let e = first_error(&serialise(&r));
    assert!(matches!(e.kind, ErrorKind::MissingTerminator { .. }), "{e}");
    assert_eq!(e.offset, offset_of(&r, i));
    // Drop the tail: the stream ends without it.
    let b = serialise(&recs[..recs.len() - 1]);
    let e = first_error(&b);
    assert_eq!(
        e.kind,
        ErrorKind::MissingTerminator {
            expected: "a TAIL record"
        }
    );
    assert_eq!(e.offset, b.len() as u64);
    // Bytes after the tail.
    let mut b = example();
    let n = b.len() as u64;
    b.extend_from_slice(&[0; 8]);
    let e = first_error(&b);
    assert_eq!(e.kind, ErrorKind::TrailingData { bytes: 8 });
    assert_eq!(e.offset, n);
}

#[test]
fn error_vma_end_counts_and_tail_checks() {
    let recs = records_of(&example());
    let mut r = recs.clone();
    let i = idx(&r, RecordType::VMA_END);
    r[i].payload[0] = 9;
    let e = first_error(&serialise(&r));
    assert!(
        matches!(
            e.kind,
            ErrorKind::BadValue {
                field: "pages stored",
                found: 9,
                ..
            }
        ),
        "{e}"
    );
    // A tail whose stream CRC is off (records reordered is caught the same way).
    let mut b = example();
    let tail = b.len() - 48;
    b[tail + 24 + 16] ^= 1;
    // fix the tail's own record CRC so only the stream CRC is wrong
    let payload = b[tail + 24..tail + 48].to_vec();
    let fixed = raw_record(RecordType::TAIL.0, 0, 0, &payload);
    b[tail..].copy_from_slice(&fixed);
    let e = first_error(&b);
    assert!(matches!(e.kind, ErrorKind::BadChecksum { .. }), "{e}");
    assert_eq!(e.offset, tail as u64 + 24 + 16);
    assert_eq!(e.record.clone().unwrap().name, "TAIL");
}

#[test]
fn error_nonzero_padding_and_reserved() {
    let bytes = example();
    let recs = records_of(&bytes);
    let i = idx(&recs, RecordType::TASK);
    let off = offset_of(&recs, i) as usize;
    let len = 24 + recs[i].payload.len();
    assert!(len % 8 != 0, "TASK record has padding in the example");
    let mut b = bytes.clone();
    b[off + len] = 1;
    let e = first_error(&b);
    assert!(
        matches!(
            e.kind,
            ErrorKind::BadValue {
                field: "padding",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.offset, (off + len) as u64);
    let mut b = bytes.clone();
    b[off + 20] = 1;
    let e = first_error(&b);
    assert!(
        matches!(
            e.kind,
            ErrorKind::BadValue {
                field: "reserved",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn encoder_refuses_invalid_event_sequences() {
    let mut out = Vec::new();
    let mut enc = native::Encoder::new(&mut out);
    assert!(enc.event(&Event::Tail).is_err());
    let mut out = Vec::new();
    let mut enc = native::Encoder::new(&mut out);
    enc.event(&Event::Header(ImageBuilder::x86_64_header()))
        .unwrap();
    let e = enc
        .event(&Event::Fd(Fd {
            fd: 1,
            cloexec: false,
            file: 1,
        }))
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnexpectedRecord { .. }), "{e}");
}

#[test]
fn foreign_records_survive_native() {
    let mut b = ImageBuilder::new(ImageBuilder::x86_64_header());
    b.push(Event::Unknown(Unknown {
        revision: Revision::CkptV21,
        type_code: 0x1234,
        parent: 7,
        payload: b"opaque legacy payload".to_vec().into(),
    }));
    b.tail();
    let bytes = b.to_native_bytes().unwrap();
    let (evs, err) = slice_events(&bytes);
    assert_eq!(err, None);
    assert_eq!(evs[1], b.events[1]);
}

#[test]
fn validate_counts_pages() {
    let bytes = example();
    let mut src = open_slice(&bytes).unwrap();
    let r = validate(&mut *src);
    assert!(r.error.is_none());
    assert_eq!(r.pages, 5);
    assert_eq!(r.zero_pages, 2);
}

#[test]
fn error_page_runs() {
    let recs = records_of(&example());
    let i = idx(&recs, RecordType::PAGES);
    let cases: [(usize, u32, &str); 3] = [
        (4, 0, "run count"),         // no runs
        (4, 9, "run count"),         // more runs than pages
        (16 + 8, 0, "address runs"), // a run of zero pages
    ];
    for (at, v, field) in cases {
        let mut r = recs.clone();
        r[i].payload[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let e = first_error(&serialise(&r));
        match &e.kind {
            ErrorKind::BadValue { field: f, .. } => assert_eq!(*f, field, "{e}"),
            ErrorKind::BadLength { .. } => assert_eq!(field, "run count", "{e}"),
            _ => panic!("{e}"),
        }
        assert_eq!(e.record.clone().unwrap().name, "PAGES");
    }
}

#[test]
fn addresses_are_stored_as_runs_and_read_back_as_lists() {
    let mut b = ImageBuilder::new(ImageBuilder::x86_64_header());
    b.push(Event::Task(Task {
        pid: 5,
        ..Task::default()
    }));
    b.push(Event::Mm(Mm::default()));
    let pages: Vec<(u64, Vec<u8>)> = [0u64, 1, 2, 5, 6, 9]
        .iter()
        .map(|&i| (0x1000_0000 + i * 4096, vec![i as u8 + 1; 4096]))
        .collect();
    b.vma(
        Vma {
            start: 0x1000_0000,
            end: 0x1001_0000,
            prot: 3,
            flags: 0x73,
            pgoff: 0,
            kind: VmaKind::Anon,
            file: None,
            records: Default::default(),
            extras: Extras::new(),
        },
        &pages,
    );
    b.tail();
    let bytes = b.to_native_bytes().unwrap();
    let recs = records_of(&bytes);
    let p = &recs[idx(&recs, RecordType::PAGES)];
    assert_eq!(u32::from_le_bytes(p.payload[0..4].try_into().unwrap()), 6);
    assert_eq!(u32::from_le_bytes(p.payload[4..8].try_into().unwrap()), 3);
    let (evs, err) = slice_events(&bytes);
    assert_eq!(err, None);
    let Event::Pages(got) = &evs[4] else { panic!() };
    let want: Vec<u64> = pages.iter().map(|p| p.0).collect();
    assert_eq!(got.addrs.iter().collect::<Vec<_>>(), want);
    assert_eq!(got.addrs.get(3), Some(0x1000_5000));
    assert_eq!(got.page(5, 4096).unwrap()[0], 10);
}
