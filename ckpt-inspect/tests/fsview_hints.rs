//! mount's read-ahead hints (issue 8): while building the tree, the headers
//! of PAGES records that follow at a regular stride are announced ahead of
//! the walk, and the tree is the same as without hints.

use ckpt_format::build::ImageBuilder;
use ckpt_format::{
    encoder, open_records_slice, Addrs, Event, Mm, PageChunk, Revision, Task, Thread, Vma, VmaKind,
    PROT_READ, PROT_WRITE,
};
use ckpt_inspect::fsview::tree::{Content, Kind, Tree};
use std::borrow::Cow;

const BASE: u64 = 0x7f00_0000_0000;

fn pages(enc: &mut dyn ckpt_format::EventSink, first: u64, n: u64) {
    let mut data = Vec::new();
    for i in 0..n {
        data.extend_from_slice(&[(first + i) as u8; 4096]);
    }
    let rb: Vec<u8> = [BASE + first * 4096, n]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    enc.event(&Event::Pages(PageChunk {
        addrs: Addrs::from_runs(&rb, 4096).unwrap(),
        data: Cow::Borrowed(&data),
    }))
    .unwrap();
}

/// One VMA of 10 records of 4 pages each, one of uneven records, one of 3
/// records of 4 pages.
fn image() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = encoder(Revision::Native1, &mut out);
        enc.event(&Event::Header(ImageBuilder::x86_64_header()))
            .unwrap();
        enc.event(&Event::Task(Task {
            pid: 1,
            tgid: 1,
            comm: b"t".to_vec(),
            ..Task::default()
        }))
        .unwrap();
        enc.event(&Event::Thread(Thread {
            tid: 1,
            ..Thread::default()
        }))
        .unwrap();
        enc.event(&Event::Mm(Mm::default())).unwrap();
        let vma = |start: u64, end: u64| {
            Event::Vma(Vma {
                start: BASE + start * 4096,
                end: BASE + end * 4096,
                prot: PROT_READ | PROT_WRITE,
                flags: 0x73,
                pgoff: 0,
                kind: VmaKind::Anon,
                file: None,
                records: Default::default(),
                extras: Default::default(),
            })
        };
        enc.event(&vma(0, 40)).unwrap();
        for r in 0..10 {
            pages(&mut *enc, r * 4, 4);
        }
        enc.event(&Event::VmaEnd).unwrap();
        enc.event(&vma(64, 80)).unwrap();
        pages(&mut *enc, 64, 1);
        pages(&mut *enc, 65, 3);
        pages(&mut *enc, 70, 2);
        enc.event(&Event::VmaEnd).unwrap();
        enc.event(&vma(96, 108)).unwrap();
        for r in 0..3 {
            pages(&mut *enc, 96 + r * 4, 4);
        }
        enc.event(&Event::VmaEnd).unwrap();
        enc.event(&Event::Tail).unwrap();
        enc.finish().unwrap();
    }
    out
}

#[test]
fn headers_of_regular_pages_records_are_announced_ahead() {
    let img = image();
    let mut hints: Vec<(usize, usize)> = Vec::new();
    let tree = Tree::build_with_hints(&img, &mut |o, n| hints.push((o, n))).unwrap();

    // (offset, type) of every record; PAGES is 0x0202 in native-1
    let mut recs = Vec::new();
    let mut rs = open_records_slice(&img).unwrap();
    while let Some(r) = rs.next_record().unwrap() {
        recs.push((r.offset as usize, r.type_code));
    }
    let pages: Vec<usize> = recs.iter().filter(|r| r.1 == 0x0202).map(|r| r.0).collect();
    assert_eq!(pages.len(), 16);
    // The stride is known from the second record of a VMA on; every later
    // record of that VMA has its header inside an announced range, announced
    // before the walk reached it (ranges are in walk order). The first VMA's
    // predictions, which run past its end, do not hold back the last VMA's.
    for &rec in pages[2..10].iter().chain(&pages[15..]) {
        let hdr = rec..rec + 24 + 16 + 16;
        let at = hints
            .iter()
            .position(|&(o, n)| o <= hdr.start && hdr.end <= o + n)
            .unwrap_or_else(|| panic!("header at {rec} not announced: {hints:?}"));
        // announced while walking an earlier record: before the hints that
        // lie beyond it
        assert!(
            hints[..at].iter().all(|&(o, _)| o < rec) || rec == pages[15],
            "{hints:?}"
        );
    }
    assert!(hints.iter().all(|&(o, n)| n > 0 && o + n <= img.len()));

    // The tree is the one `build` makes: same nodes, same mem contents.
    let plain = Tree::build(&img).unwrap();
    assert_eq!(tree.nodes.len(), plain.nodes.len());
    let task = tree.child(0, "task-1").unwrap();
    let mem = tree.child(task, "mem").unwrap();
    let Kind::File(c @ Content::Mem(_)) = &tree.nodes[mem].kind else {
        panic!("task-1/mem is not a memory file");
    };
    for page in [0u64, 5, 39, 64, 67, 71, 96, 107] {
        let at = BASE + page * 4096;
        let got = tree.read(&img, c, at, 4096);
        assert_eq!(got, vec![page as u8; 4096], "page {page}");
        assert_eq!(got, plain.read(&img, c, at, 4096));
    }
}
