//! Making images from a description, for fixtures, tests and benchmarks.
//!
//! [`ImageBuilder`] collects owned events with helpers that split page
//! contents into chunks and all-zero runs the way a capture would, and writes
//! them with any revision's encoder.

use crate::error::Result;
use crate::model::*;
use crate::{encoder, EventSink};
use std::borrow::Cow;
use std::io::Write;

/// An image under construction: a list of owned events.
#[derive(Clone, Debug, Default)]
pub struct ImageBuilder {
    /// The events so far, in order.
    pub events: Vec<Event<'static>>,
    page_size: usize,
    chunk_pages: usize,
}

impl ImageBuilder {
    /// Start an image with `header`.
    pub fn new(header: Header) -> Self {
        let page_size = header.page_size as usize;
        ImageBuilder {
            events: vec![Event::Header(header)],
            page_size,
            chunk_pages: crate::native::DEFAULT_CHUNK_PAGES as usize,
        }
    }

    /// A header for x86-64 with fixed, recognisable values.
    pub fn x86_64_header() -> Header {
        Header {
            revision: Revision::Native1,
            arch: Arch::X86_64,
            page_size: 4096,
            kernel: Kernel {
                major: 6,
                minor: 18,
                patch: 44,
                release: b"6.18.44-fixture".to_vec(),
                version: b"#1 SMP PREEMPT_DYNAMIC".to_vec(),
                machine: b"x86_64".to_vec(),
            },
            time: 1_700_000_000,
            flags: 0,
            tool: "ckpt-format builder".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            extras: Extras::new(),
            parent: None,
        }
    }

    /// Pages per chunk when splitting page contents (default 256).
    pub fn chunk_pages(mut self, n: usize) -> Self {
        self.chunk_pages = n.max(1);
        self
    }

    /// Append any event.
    pub fn push(&mut self, ev: Event<'static>) -> &mut Self {
        self.events.push(ev);
        self
    }

    /// Append a VMA with the given pages (address, contents of exactly one
    /// page each, ascending), then its end. All-zero pages become zero runs;
    /// the others are grouped into chunks of consecutive list entries.
    pub fn vma(&mut self, vma: Vma, pages: &[(u64, Vec<u8>)]) -> &mut Self {
        self.events.push(Event::Vma(vma));
        let ps = self.page_size as u64;
        let mut i = 0;
        while i < pages.len() {
            if pages[i].1.iter().all(|&b| b == 0) {
                let start = pages[i].0;
                let mut n = 0u64;
                while i < pages.len()
                    && pages[i].0 == start + n * ps
                    && pages[i].1.iter().all(|&b| b == 0)
                {
                    n += 1;
                    i += 1;
                }
                self.events
                    .push(Event::ZeroPages(ZeroRun { start, count: n }));
            } else {
                let mut addrs = Vec::new();
                let mut data = Vec::new();
                while i < pages.len()
                    && addrs.len() < self.chunk_pages
                    && !pages[i].1.iter().all(|&b| b == 0)
                {
                    addrs.push(pages[i].0);
                    data.extend_from_slice(&pages[i].1);
                    i += 1;
                }
                self.events.push(Event::Pages(PageChunk {
                    addrs: Addrs::from_u64s(&addrs),
                    data: Cow::Owned(data),
                }));
            }
        }
        self.events.push(Event::VmaEnd);
        self
    }

    /// Append the tail (call once, last).
    pub fn tail(&mut self) -> &mut Self {
        self.events.push(Event::Tail);
        self
    }

    /// Feed every event to `sink` and finish it.
    pub fn emit(&self, sink: &mut dyn EventSink) -> Result<()> {
        for ev in &self.events {
            sink.event(ev)?;
        }
        sink.finish()
    }

    /// Write the image in `rev` to `w`.
    pub fn write(&self, rev: Revision, w: impl Write) -> Result<()> {
        let mut enc = encoder(rev, w);
        self.emit(&mut *enc)
    }

    /// The image as native-1 bytes.
    pub fn to_native_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write(Revision::Native1, &mut out)?;
        Ok(out)
    }

    /// A small but complete example: one task (`example`, pid 100) with two
    /// threads, an mm, four VMAs (code, heap with data and zero pages, stack,
    /// vdso), cwd/umask, signal actions, rlimits, a regular file, a pipe with
    /// buffered bytes shared by two fds, and the tail.
    pub fn example() -> ImageBuilder {
        let mut b = ImageBuilder::new(Self::x86_64_header());
        b.push(Event::Task(Task {
            pid: 100,
            tgid: 100,
            ppid: 1,
            pgid: 100,
            sid: 100,
            comm: b"example".to_vec(),
            state: 1,
            exit_signal: 17,
            creds: Creds {
                uid: [1000; 4],
                gid: [1000; 4],
                groups: vec![1000, 27],
            },
            ..Task::default()
        }));
        for (tid, rip) in [(100, 0x40_1000u64), (101, 0x40_1080)] {
            let mut xsave = vec![0u8; 832];
            xsave[0] = 0x7f;
            xsave[464] = 0x07;
            b.push(Event::Thread(Thread {
                tid,
                regs: Regs {
                    rip,
                    rsp: 0x7ffc_0000_1f00 - (tid as u64 - 100) * 0x1000,
                    rax: u64::MAX - 3,
                    orig_rax: 0,
                    cs: 0x33,
                    ss: 0x2b,
                    eflags: 0x246,
                    fs_base: 0x7f00_0000_0740,
                    ..Regs::default()
                },
                fpu: Some(Fpu {
                    kind: FpuKind::Xsave,
                    xfeatures: 0x7,
                    data: xsave,
                }),
                tls: vec![0; 48],
                sigmask: 1 << 9,
                records: Default::default(),
                extras: Extras::new(),
            }));
        }
        b.push(Event::Mm(Mm {
            start_code: 0x40_0000,
            end_code: 0x40_2000,
            start_data: 0x60_0000,
            end_data: 0x60_1000,
            start_brk: 0x60_1000,
            brk: 0x60_5000,
            start_stack: 0x7ffc_0000_1ff0,
            arg_start: 0x7ffc_0000_1f00,
            arg_end: 0x7ffc_0000_1f20,
            env_start: 0x7ffc_0000_1f20,
            env_end: 0x7ffc_0000_1fe0,
            auxv: vec![6, 4096, 0, 0],
            exe: Some(b"/usr/bin/example".to_vec()),
            personality: 0,
            extras: Extras::new(),
        }));
        let page = |fill: u8| vec![fill; 4096];
        let mut text = page(0x90);
        text[..7].copy_from_slice(b"\x0f\x05ckpt!");
        b.vma(
            Vma {
                start: 0x40_0000,
                end: 0x40_2000,
                prot: PROT_READ | PROT_EXEC,
                flags: 0x75,
                pgoff: 0,
                kind: VmaKind::File,
                file: Some(b"/usr/bin/example".to_vec()),
                records: Default::default(),
                extras: Extras::new(),
            },
            &[(0x40_1000, text)],
        );
        let mut heap1 = page(0);
        heap1[..16].copy_from_slice(b"hello, restore!\n");
        b.vma(
            Vma {
                start: 0x60_1000,
                end: 0x60_5000,
                prot: PROT_READ | PROT_WRITE,
                flags: 0x100073,
                pgoff: 0,
                kind: VmaKind::Heap,
                file: None,
                records: Default::default(),
                extras: Extras::new(),
            },
            &[
                (0x60_1000, heap1),
                (0x60_2000, page(0)),
                (0x60_3000, page(0)),
                (0x60_4000, page(0xab)),
            ],
        );
        b.vma(
            Vma {
                start: 0x7ffc_0000_0000,
                end: 0x7ffc_0000_2000,
                prot: PROT_READ | PROT_WRITE,
                flags: 0x100173,
                pgoff: 0,
                kind: VmaKind::Stack,
                file: None,
                records: Default::default(),
                extras: Extras::new(),
            },
            &[(0x7ffc_0000_1000, page(0x5a))],
        );
        b.vma(
            Vma {
                start: 0x7fff_f000_0000,
                end: 0x7fff_f000_1000,
                prot: PROT_READ | PROT_EXEC,
                flags: 0x8040075,
                pgoff: 0,
                kind: VmaKind::Vdso,
                file: None,
                records: Default::default(),
                extras: Extras::new(),
            },
            &[(0x7fff_f000_0000, page(0xcc))],
        );
        b.push(Event::Fs(Fs {
            cwd: b"/home/example".to_vec(),
            root: b"/".to_vec(),
            umask: 0o022,
        }));
        b.push(Event::SigActions(
            (0..64)
                .map(|i| SigAction {
                    handler: if i == 1 { 0x40_1040 } else { 0 },
                    flags: if i == 1 { 0x0400_0000 } else { 0 },
                    restorer: if i == 1 { 0x40_1050 } else { 0 },
                    mask: 0,
                })
                .collect(),
        ));
        b.push(Event::Rlimits(
            (0..16)
                .map(|i| Rlimit {
                    cur: if i == 7 { 1024 } else { u64::MAX },
                    max: if i == 7 { 4096 } else { u64::MAX },
                })
                .collect(),
        ));
        b.push(Event::File(File {
            id: 1,
            kind: FileKind::Regular,
            path: b"/home/example/data.txt".to_vec(),
            flags: 0o2,
            mode: 0o100644,
            pos: 1234,
            pipe: None,
            records: Default::default(),
            extras: Extras::new(),
        }));
        b.push(Event::Fd(Fd {
            fd: 0,
            cloexec: false,
            file: 1,
        }));
        b.push(Event::Pipe(Pipe {
            id: 2,
            data: Cow::Owned(b"unread pipe bytes".to_vec()),
        }));
        for (id, fl) in [(3u32, 0u32), (4, 1)] {
            b.push(Event::File(File {
                id,
                kind: FileKind::Pipe,
                path: Vec::new(),
                flags: fl,
                mode: 0o10600,
                pos: 0,
                pipe: Some(2),
                records: Default::default(),
                extras: Extras::new(),
            }));
        }
        b.push(Event::Fd(Fd {
            fd: 3,
            cloexec: true,
            file: 3,
        }));
        b.push(Event::Fd(Fd {
            fd: 4,
            cloexec: false,
            file: 4,
        }));
        b.tail();
        b
    }
}
