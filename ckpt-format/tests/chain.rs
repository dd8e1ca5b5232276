//! Parent images (pre-copy chains, docs/FORMAT.md "Parent images"): the header's parent
//! reference and PARENT_PAGES records round-trip, a chain flattens to the right contents,
//! and every broken link is refused.

use ckpt_format::build::ImageBuilder;
use ckpt_format::chain::{index_chain, tail_numbers, Flatten};
use ckpt_format::native::{Encoder, FEATURE_PARENT};
use ckpt_format::*;
use std::borrow::Cow;

const A: u64 = 0x10000;

fn vma() -> Vma {
    Vma {
        start: A,
        end: A + 8 * 4096,
        prot: 3,
        flags: 0x73,
        pgoff: 0,
        kind: VmaKind::Anon,
        file: None,
        records: Default::default(),
        extras: Extras::new(),
    }
}

fn page(b: u8) -> Vec<u8> {
    vec![b; 4096]
}

fn task() -> Task {
    Task {
        pid: 42,
        tgid: 42,
        ..Task::default()
    }
}

/// Parent: pages 0, 1 stored (0xA0, 0xA1), page 2 zero, page 5 stored (0xA5).
fn parent() -> Vec<u8> {
    let mut b = ImageBuilder::new(ImageBuilder::x86_64_header());
    b.push(Event::Task(task())).push(Event::Mm(Mm::default()));
    b.push(Event::Vma(vma()));
    b.push(Event::Pages(PageChunk {
        addrs: Addrs::from_u64s(&[A, A + 4096]),
        data: Cow::Owned([page(0xA0), page(0xA1)].concat()),
    }));
    b.push(Event::ZeroPages(ZeroRun {
        start: A + 2 * 4096,
        count: 1,
    }));
    b.push(Event::Pages(PageChunk {
        addrs: Addrs::from_u64s(&[A + 5 * 4096]),
        data: Cow::Owned(page(0xA5)),
    }));
    b.push(Event::VmaEnd).tail();
    b.to_native_bytes().unwrap()
}

/// Child of `p`: pages 0-2 in the parent, page 3 new (0xB3), page 5 in the parent.
fn child(p: &[u8], runs: &[(u64, u64)]) -> Vec<u8> {
    let (records, bytes, stream_crc) = tail_numbers(p).unwrap();
    let mut h = ImageBuilder::x86_64_header();
    h.parent = Some(ParentRef {
        records,
        bytes,
        stream_crc,
        path: b"parent.img".to_vec(),
    });
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    e.event(&Event::Header(h)).unwrap();
    e.event(&Event::Task(task())).unwrap();
    e.event(&Event::Mm(Mm::default())).unwrap();
    e.event(&Event::Vma(vma())).unwrap();
    for &(start, count) in runs {
        if start == A + 3 * 4096 {
            e.event(&Event::Pages(PageChunk {
                addrs: Addrs::from_u64s(&[start]),
                data: Cow::Owned(page(0xB3)),
            }))
            .unwrap();
        } else {
            e.event(&Event::ParentPages(ZeroRun { start, count }))
                .unwrap();
        }
    }
    e.event(&Event::VmaEnd).unwrap();
    e.event(&Event::Tail).unwrap();
    e.finish().unwrap();
    drop(e);
    out
}

fn standard_child(p: &[u8]) -> Vec<u8> {
    child(p, &[(A, 3), (A + 3 * 4096, 1), (A + 5 * 4096, 1)])
}

fn pages_of(src: &mut dyn EventSource) -> Vec<(u64, Option<u8>)> {
    let mut out = Vec::new();
    while let Some(ev) = src.next_event().unwrap() {
        match ev {
            Event::Pages(p) => {
                for (i, a) in p.addrs.iter().enumerate() {
                    out.push((a, Some(p.data[i * 4096])));
                }
            }
            Event::ZeroPages(z) => {
                for i in 0..z.count {
                    out.push((z.start + i * 4096, None));
                }
            }
            Event::ParentPages(_) => panic!("a flattened source shows no parent pages"),
            Event::Header(h) => assert!(h.parent.is_none()),
            _ => {}
        }
    }
    out
}

#[test]
fn header_parent_and_parent_pages_round_trip() {
    let p = parent();
    let c = standard_child(&p);
    // Feature bit 3 is set only in the child.
    let features = |b: &[u8]| u64::from_le_bytes(b[40..48].try_into().unwrap());
    assert_eq!(features(&p) & FEATURE_PARENT, 0);
    assert_eq!(features(&c) & FEATURE_PARENT, FEATURE_PARENT);
    let mut src = open_slice(&c).unwrap();
    let mut evs = Vec::new();
    while let Some(ev) = src.next_event().unwrap() {
        evs.push(ev.into_owned());
    }
    let Event::Header(h) = &evs[0] else { panic!() };
    let r = h.parent.as_ref().unwrap();
    assert_eq!(
        (r.records, r.bytes, r.stream_crc),
        tail_numbers(&p).unwrap()
    );
    assert_eq!(r.path, b"parent.img");
    let runs: Vec<ZeroRun> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ParentPages(z) => Some(*z),
            _ => None,
        })
        .collect();
    assert_eq!(
        runs,
        vec![
            ZeroRun { start: A, count: 3 },
            ZeroRun {
                start: A + 5 * 4096,
                count: 1
            }
        ]
    );
    // Re-encoding the decoded events gives the same bytes.
    let mut again = Vec::new();
    let mut e = Encoder::new(&mut again);
    for ev in &evs {
        e.event(ev).unwrap();
    }
    e.finish().unwrap();
    drop(e);
    assert_eq!(again, c);
    let rep = validate::validate(&mut *open_slice(&c).unwrap());
    assert!(rep.error.is_none(), "{:?}", rep.error);
    assert_eq!((rep.pages, rep.parent_pages), (1, 4));
}

#[test]
fn a_chain_flattens_to_the_parents_contents() {
    let p = parent();
    let c = standard_child(&p);
    let idx = index_chain(&[&p]).unwrap();
    let mut flat = Flatten::new(open_slice(&c).unwrap(), idx);
    assert_eq!(
        pages_of(&mut flat),
        vec![
            (A, Some(0xA0)),
            (A + 4096, Some(0xA1)),
            (A + 2 * 4096, None),
            (A + 3 * 4096, Some(0xB3)),
            (A + 5 * 4096, Some(0xA5)),
        ]
    );
    // Two levels: a grandchild keeping page 0 and 3 in the child (page 3 from the child,
    // page 0 from the grandparent through it).
    let (records, bytes, stream_crc) = tail_numbers(&c).unwrap();
    let mut h = ImageBuilder::x86_64_header();
    h.parent = Some(ParentRef {
        records,
        bytes,
        stream_crc,
        path: b"child.img".to_vec(),
    });
    let mut g = Vec::new();
    let mut e = Encoder::new(&mut g);
    for ev in [
        Event::Header(h),
        Event::Task(task()),
        Event::Mm(Mm::default()),
        Event::Vma(vma()),
        Event::ParentPages(ZeroRun { start: A, count: 1 }),
        Event::ParentPages(ZeroRun {
            start: A + 3 * 4096,
            count: 1,
        }),
        Event::VmaEnd,
        Event::Tail,
    ] {
        e.event(&ev).unwrap();
    }
    e.finish().unwrap();
    drop(e);
    let idx = index_chain(&[&c, &p]).unwrap();
    let mut flat = Flatten::new(open_slice(&g).unwrap(), idx);
    assert_eq!(
        pages_of(&mut flat),
        vec![(A, Some(0xA0)), (A + 3 * 4096, Some(0xB3))]
    );
    // Converting flattens too, and the result names no parent.
    let mut out = Vec::new();
    let opts = convert::ConvertOptions::new(Revision::Native1);
    convert::convert_chain(&g, &[&c, &p], &mut out, &opts).unwrap();
    assert_eq!(
        pages_of(&mut *open_slice(&out).unwrap()),
        vec![(A, Some(0xA0)), (A + 3 * 4096, Some(0xB3))]
    );
}

#[test]
fn broken_links_are_refused() {
    let p = parent();
    let c = standard_child(&p);
    // Another image as the parent: its tail does not match.
    let other = ImageBuilder::example().to_native_bytes().unwrap();
    let idx = index_chain(&[&other]).unwrap();
    let mut flat = Flatten::new(open_slice(&c).unwrap(), idx);
    let e = flat.next_event().unwrap_err();
    assert!(e.to_string().contains("parent image"), "{e}");
    // No parent given for an image that names one.
    let e = index_chain(&[&c]).unwrap_err();
    assert!(e.to_string().contains("parent"), "{e}");
    // A page the parent does not have (page 4).
    let bad = child(&p, &[(A + 4 * 4096, 1)]);
    let idx = index_chain(&[&p]).unwrap();
    let mut flat = Flatten::new(open_slice(&bad).unwrap(), idx);
    let err = loop {
        match flat.next_event() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("accepted a page the parent lacks"),
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("0x14000"), "{err}");
    // PARENT_PAGES in an image whose header names no parent.
    let mut out = Vec::new();
    let mut e = Encoder::new(&mut out);
    e.event(&Event::Header(ImageBuilder::x86_64_header()))
        .unwrap();
    e.event(&Event::Task(task())).unwrap();
    e.event(&Event::Mm(Mm::default())).unwrap();
    e.event(&Event::Vma(vma())).unwrap();
    let err = e
        .event(&Event::ParentPages(ZeroRun { start: A, count: 1 }))
        .unwrap_err();
    assert!(err.to_string().contains("parent"), "{err}");
    // A count of 0 and a run outside the VMA.
    for (start, count) in [(A, 0), (A + 8 * 4096, 1)] {
        let mut out = Vec::new();
        let mut h = ImageBuilder::x86_64_header();
        h.parent = Some(ParentRef::default());
        let mut e = Encoder::new(&mut out);
        e.event(&Event::Header(h)).unwrap();
        e.event(&Event::Task(task())).unwrap();
        e.event(&Event::Mm(Mm::default())).unwrap();
        e.event(&Event::Vma(vma())).unwrap();
        assert!(e
            .event(&Event::ParentPages(ZeroRun { start, count }))
            .is_err());
    }
}
