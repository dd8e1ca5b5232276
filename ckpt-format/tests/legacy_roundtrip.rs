//! Model → legacy bytes → model round trips, byte-exact re-encoding, and
//! conversion paths between revisions.

use ckpt_format::convert::{convert, convert_slice, ConvertOptions, TargetKernel};
use ckpt_format::*;
use std::borrow::Cow;

fn decode_all(bytes: &[u8]) -> Vec<Event<'static>> {
    let mut src = open_slice(bytes).unwrap();
    let mut v = Vec::new();
    while let Some(ev) = src.next_event().unwrap() {
        v.push(ev.into_owned());
    }
    v
}

fn encode(rev: Revision, events: &[Event<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = encoder(rev, &mut out);
        for ev in events {
            enc.event(ev).unwrap();
        }
        enc.finish().unwrap();
    }
    out
}

/// Compare event lists, reporting the first difference briefly.
fn same(a: &[Event<'_>], b: &[Event<'_>]) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            let (sx, sy) = (format!("{x:?}"), format!("{y:?}"));
            let cut = |s: &str| s.chars().take(600).collect::<String>();
            panic!(
                "event {i} differs:\n  left  {}\n  right {}",
                cut(&sx),
                cut(&sy)
            );
        }
    }
    assert_eq!(a.len(), b.len(), "event counts differ");
}

fn page(fill: u8) -> Vec<u8> {
    (0..4096u32).map(|i| (i as u8) ^ fill).collect()
}

pub fn v21_events() -> Vec<Event<'static>> {
    let mut regs = Regs {
        rip: 0x401000,
        rsp: 0x7ffd_0000_0f00,
        rax: 0xdead,
        cs: 0x33,
        ss: 0x2b,
        fs_base: 0x7f00_0000_1000,
        eflags: 0x246,
        ..Regs::default()
    };
    regs.orig_rax = u64::MAX;
    let mm = Mm {
        start_code: 0x400000,
        end_code: 0x401000,
        start_data: 0x600000,
        end_data: 0x601000,
        start_brk: 0x602000,
        brk: 0x604000,
        start_stack: 0x7ffd_0000_0ff0,
        arg_start: 0x7ffd_0000_0f80,
        arg_end: 0x7ffd_0000_0f90,
        env_start: 0x7ffd_0000_0f90,
        env_end: 0x7ffd_0000_0fe0,
        auxv: vec![6, 4096, 33, 0x7fff_f000, 0, 0],
        exe: Some(b"/bin/sleeper".to_vec()),
        personality: 0,
        extras: Extras::new(),
    };
    let two = [page(1), page(2)].concat();
    vec![
        Event::Header(Header {
            flags: 1,
            ..Header::new(
                Revision::CkptV21,
                Arch::X86_64,
                Kernel::from_uname(b"2.6.33-ckpt", b"#1 SMP", b"x86_64"),
                1_272_000_000,
            )
        }),
        Event::Task(Task {
            pid: 100,
            tgid: 100,
            ppid: 1,
            pgid: 100,
            sid: 100,
            comm: b"sleeper".to_vec(),
            state: 1,
            exit_signal: 17,
            ..Task::default()
        }),
        Event::Thread(Thread {
            tid: 100,
            regs,
            fpu: Some(Fpu {
                kind: FpuKind::Xsave,
                xfeatures: 0,
                data: (0..832u32).map(|i| i as u8).collect(),
            }),
            // Three empty GDT TLS slots, as ckpt-capture records them.
            tls: ckpt_format::layout::derive::empty_tls(),
            sigmask: 0,
            records: Default::default(),
            extras: Extras::new(),
        }),
        Event::Mm(mm),
        Event::Vma(Vma {
            start: 0x400000,
            end: 0x401000,
            prot: 5,
            flags: 0x875,
            pgoff: 0,
            kind: VmaKind::File,
            file: Some(b"/bin/sleeper".to_vec()),
            records: Default::default(),
            extras: Extras::new(),
        }),
        Event::VmaEnd,
        Event::Vma(Vma {
            start: 0x602000,
            end: 0x604000,
            prot: 3,
            flags: 0x100073,
            pgoff: 0,
            kind: VmaKind::Heap,
            file: None,
            records: Default::default(),
            extras: Extras::new(),
        }),
        Event::Pages(PageChunk {
            addrs: Addrs::from_u64s(&[0x602000, 0x603000]),
            data: Cow::Owned(two),
        }),
        Event::VmaEnd,
        Event::Vma(Vma {
            start: 0x7ffd_0000_0000,
            end: 0x7ffd_0000_1000,
            prot: 3,
            flags: 0x100173,
            pgoff: 0,
            kind: VmaKind::Stack,
            file: None,
            records: Default::default(),
            extras: Extras::new(),
        }),
        Event::Pages(PageChunk {
            addrs: Addrs::from_u64s(&[0x7ffd_0000_0000]),
            data: Cow::Owned(page(3)),
        }),
        Event::VmaEnd,
        Event::Pipe(Pipe {
            id: 7,
            data: Cow::Owned(b"hello".to_vec()),
        }),
        Event::File(File {
            id: 3,
            kind: FileKind::Pipe,
            path: Vec::new(),
            flags: 0,
            mode: 0x1d,
            pos: 0,
            pipe: Some(7),
            records: Default::default(),
            extras: Extras::new(),
        }),
        Event::Fd(Fd {
            fd: 0,
            cloexec: false,
            file: 3,
        }),
        Event::File(File {
            id: 4,
            kind: FileKind::Pipe,
            path: Vec::new(),
            flags: 1,
            mode: 0x1e,
            pos: 0,
            pipe: Some(7),
            records: Default::default(),
            extras: Extras::new(),
        }),
        Event::Fd(Fd {
            fd: 1,
            cloexec: false,
            file: 4,
        }),
        Event::File(File {
            id: 5,
            kind: FileKind::Regular,
            path: b"/tmp/log".to_vec(),
            flags: 0x441,
            mode: 0x1f,
            pos: 1234,
            pipe: None,
            records: Default::default(),
            extras: Extras::new(),
        }),
        Event::Fd(Fd {
            fd: 2,
            cloexec: true,
            file: 5,
        }),
        Event::Fd(Fd {
            fd: 3,
            cloexec: false,
            file: 5,
        }),
        Event::Tail,
    ]
}

pub fn crv5_events() -> Vec<Event<'static>> {
    let mut v = v21_events();
    for ev in &mut v {
        match ev {
            Event::Header(h) => {
                h.revision = Revision::CrV5;
                h.arch = Arch::X86_32;
                h.kernel.patch = 27;
                h.kernel.machine = b"i686".to_vec();
            }
            Event::Task(t) => {
                t.ppid = 0;
                t.pgid = 0;
                t.sid = 0;
            }
            Event::Thread(t) => {
                t.regs.fs_base = 0;
                t.regs.cs = 0x73;
                t.regs.ss = 0x7b;
                t.regs.ds = 0x7b;
                t.regs.es = 0x7b;
                t.regs.gs = 0x33;
                t.fpu = Some(Fpu {
                    kind: FpuKind::Legacy,
                    xfeatures: 0,
                    data: (0..512u32).map(|i| (i * 7) as u8).collect(),
                });
                t.tls = vec![
                    0xff, 0xff, 0, 0, 0, 0xf3, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0, 0,
                ];
                t.extras.set_u64("debugreg7", 0x400);
            }
            Event::Mm(m) => {
                m.auxv.clear();
                m.exe = None;
                m.start_stack = 0xbfff_0ff0;
            }
            Event::Vma(v) if v.kind == VmaKind::Stack => {
                v.start = 0xbfff_0000;
                v.end = 0xbfff_1000;
            }
            Event::Vma(v) if v.kind == VmaKind::File => {
                v.extras.set_u64("vm_page_prot", 0x125);
            }
            Event::Pages(p) if p.addrs.get(0) == Some(0x7ffd_0000_0000) => {
                p.addrs = Addrs::from_le_bytes(&[0, 0, 0xff, 0xbf], 4)
                    .unwrap()
                    .into_owned();
            }
            Event::Pages(p) => {
                let a: Vec<u8> = p
                    .addrs
                    .iter()
                    .flat_map(|a| (a as u32).to_le_bytes())
                    .collect();
                p.addrs = Addrs::from_le_bytes(&a, 4).unwrap().into_owned();
            }
            Event::File(f) => {
                f.extras.set_u64("f_version", 9);
            }
            _ => {}
        }
    }
    // No pipes in cr-v5; cr-v5 puts the thread last and has no page-address width 8.
    v.retain(|ev| {
        !matches!(ev, Event::Pipe(_)) && !matches!(ev, Event::File(f) if f.kind == FileKind::Pipe)
    });
    v.retain(|ev| !matches!(ev, Event::Fd(fd) if fd.file == 3 || fd.file == 4));
    let t = v
        .iter()
        .position(|e| matches!(e, Event::Thread(_)))
        .unwrap();
    let th = v.remove(t);
    let tail = v.len() - 1;
    v.insert(tail, th);
    v
}

#[test]
fn v21_model_round_trip_and_reencode() {
    let ev = v21_events();
    let bytes = encode(Revision::CkptV21, &ev);
    let back = decode_all(&bytes);
    same(&back, &ev);
    assert_eq!(encode(Revision::CkptV21, &back), bytes);
}

#[test]
fn crv5_model_round_trip_and_reencode() {
    let ev = crv5_events();
    let bytes = encode(Revision::CrV5, &ev);
    let back = decode_all(&bytes);
    same(&back, &ev);
    assert_eq!(encode(Revision::CrV5, &back), bytes);
}

fn keep(to: Revision) -> ConvertOptions {
    ConvertOptions {
        to,
        lossy: false,
        target_kernel: TargetKernel::Keep,
    }
}

#[test]
fn native_to_v21_to_native_is_byte_exact() {
    let native = encode_native(&v21_events());
    let mut v21 = Vec::new();
    convert_slice(&native, &mut v21, &keep(Revision::CkptV21)).unwrap();
    let mut again = Vec::new();
    convert_slice(&v21, &mut again, &keep(Revision::Native1)).unwrap();
    assert_eq!(again, native);
    // The same through the stream variant.
    let mut v21s = Vec::new();
    convert(&native[..], &mut v21s, &keep(Revision::CkptV21)).unwrap();
    assert_eq!(v21s, v21);
}

#[test]
fn crv5_to_native_to_crv5_is_byte_exact() {
    let orig = encode(Revision::CrV5, &crv5_events());
    let mut native = Vec::new();
    convert_slice(&orig, &mut native, &keep(Revision::Native1)).unwrap();
    let mut back = Vec::new();
    convert(&native[..], &mut back, &keep(Revision::CrV5)).unwrap();
    assert_eq!(back, orig);
}

fn encode_native(events: &[Event<'_>]) -> Vec<u8> {
    encode(Revision::Native1, events)
}

#[test]
fn refusal_lists_every_item_and_lossy_reports_them() {
    let v21 = encode(Revision::CkptV21, &v21_events());
    let e = convert_slice(&v21, &mut Vec::new(), &keep(Revision::CrV5)).unwrap_err();
    let ErrorKind::Unrepresentable { items } = e.kind else {
        panic!("{e}")
    };
    let has = |s: &str| items.iter().any(|i| i.contains(s));
    assert!(has("arch x86_64"), "{items:?}");
    assert!(has("pipe 7 with 5 bytes"), "{items:?}");
    assert!(has("ppid 1"), "{items:?}");
    assert!(has("auxv"), "{items:?}");
    assert!(has("fs_base"), "{items:?}");
    let mut out = Vec::new();
    let opts = ConvertOptions {
        lossy: true,
        ..keep(Revision::CrV5)
    };
    let report = convert_slice(&v21, &mut out, &opts).unwrap();
    assert_eq!(report.dropped, items);
    // The lossy image is a valid cr-v5 image with the rest of the content.
    let back = decode_all(&out);
    assert!(matches!(&back[0], Event::Header(h) if h.revision == Revision::CrV5));
    let pages: usize = back
        .iter()
        .map(|e| match e {
            Event::Pages(p) => p.addrs.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(
        pages, 2,
        "the two heap pages stay; the stack page above 4 GiB is dropped"
    );
}

#[test]
fn zero_runs_are_written_out_and_noted() {
    let mut ev = v21_events();
    let at = ev
        .iter()
        .position(|e| matches!(e, Event::Pages(_)))
        .unwrap();
    ev[at] = Event::ZeroPages(ZeroRun {
        start: 0x602000,
        count: 2,
    });
    let native = encode(Revision::Native1, &ev);
    let mut v21 = Vec::new();
    let r = convert_slice(&native, &mut v21, &keep(Revision::CkptV21)).unwrap();
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    // The v21 image holds the two pages as contents (8 + 2 x (8 + 4096))...
    let mut rs = ckpt_format::v21::open_records(&v21);
    let mut zero_buffers = 0;
    while let Some(r) = rs.next_record().unwrap() {
        if r.name == "BUFFER" && r.len == 8 + 2 * (8 + 4096) {
            assert!(r.payload[16..].iter().all(|&b| b == 0));
            zero_buffers += 1;
        }
    }
    assert_eq!(zero_buffers, 1);
    // ...and an all-zero chunk of consecutive pages decodes as a zero run.
    let back = decode_all(&v21);
    assert_eq!(
        back[at],
        Event::ZeroPages(ZeroRun {
            start: 0x602000,
            count: 2
        })
    );
    assert_eq!(back[1..], decode_all(&native)[1..]);
}

#[test]
fn header_is_retargeted() {
    let v21 = encode(Revision::CkptV21, &v21_events());
    let mut out = Vec::new();
    let opts = ConvertOptions {
        to: Revision::CkptV21,
        lossy: false,
        target_kernel: TargetKernel::Release("2.6.34-rc1-next".into()),
    };
    let r = convert_slice(&v21, &mut out, &opts).unwrap();
    assert_eq!(r.retargeted.len(), 1, "{:?}", r.retargeted);
    let Event::Header(h) = &decode_all(&out)[0] else {
        panic!()
    };
    assert_eq!((h.kernel.major, h.kernel.minor, h.kernel.patch), (2, 6, 34));
    assert_eq!(h.kernel.release, b"2.6.34-rc1-next");
    assert_eq!(h.kernel.version, b"#1 SMP");
    // The running kernel by default.
    let r = convert_slice(
        &v21,
        &mut Vec::new(),
        &ConvertOptions::new(Revision::Native1),
    )
    .unwrap();
    let running = ckpt_format::convert::running_kernel().unwrap();
    assert_eq!(
        r.retargeted.len(),
        usize::from(running.release != b"2.6.33-ckpt")
    );
}
