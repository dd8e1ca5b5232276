//! Fixture images of ckpt-inspect's tests, made by the builder so that the
//! committed bytes can be checked against them (fixtures cannot rot).
#![allow(dead_code)]

use ckpt_format::build::ImageBuilder;
use ckpt_format::*;
use std::borrow::Cow;
use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ckpt-inspect"))
}

fn task(pid: i32, ppid: i32, comm: &[u8]) -> Event<'static> {
    Event::Task(Task {
        pid,
        tgid: pid,
        ppid,
        pgid: 200,
        sid: 200,
        comm: comm.to_vec(),
        state: 1,
        exit_signal: 17,
        creds: Creds {
            uid: [1000; 4],
            gid: [1000; 4],
            groups: vec![],
        },
        ..Task::default()
    })
}

fn thread(tid: i32, rip: u64, rsp: u64) -> Event<'static> {
    Event::Thread(Thread {
        tid,
        regs: Regs {
            rip,
            rsp,
            cs: 0x33,
            ss: 0x2b,
            eflags: 0x246,
            rax: tid as u64,
            ..Regs::default()
        },
        fpu: None,
        tls: Vec::new(),
        sigmask: 0,
        records: Default::default(),
        extras: Extras::new(),
    })
}

fn mm() -> Event<'static> {
    Event::Mm(Mm {
        start_code: 0x40_0000,
        end_code: 0x40_1000,
        start_stack: 0x7ffd_0000_0ff0,
        exe: Some(b"/bin/sh".to_vec()),
        auxv: vec![0, 0],
        ..Mm::default()
    })
}

fn vma(start: u64, end: u64, prot: u32, kind: VmaKind, file: Option<&[u8]>) -> Vma {
    Vma {
        start,
        end,
        prot,
        flags: 0x73,
        pgoff: 0,
        kind,
        file: file.map(<[u8]>::to_vec),
        records: Default::default(),
        extras: Extras::new(),
    }
}

fn page(seed: u64, ps: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(ps);
    while v.len() < ps {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(ps);
    v
}

/// A shell (200) with two children (201 writer, 202 reader) and a
/// grandchild (203), sharing one pipe and one log file.
pub fn tree_pipe() -> ImageBuilder {
    let mut b = ImageBuilder::new(ImageBuilder::x86_64_header());
    b.push(task(200, 1, b"sh"));
    b.push(thread(200, 0x40_0100, 0x7ffd_0000_0e00));
    b.push(mm());
    let mut text = page(1, 4096);
    text[..12].copy_from_slice(b"#!/bin/sh\0\0\0");
    b.vma(
        vma(
            0x40_0000,
            0x40_1000,
            PROT_READ | PROT_EXEC,
            VmaKind::File,
            Some(b"/bin/sh"),
        ),
        &[(0x40_0000, text)],
    );
    b.push(Event::Pipe(Pipe {
        id: 1,
        data: Cow::Owned(b"in flight".to_vec()),
    }));
    for (id, fl) in [(2u32, 0u32), (3, 1)] {
        b.push(Event::File(File {
            id,
            kind: FileKind::Pipe,
            path: Vec::new(),
            flags: fl,
            mode: 0o10600,
            pos: 0,
            pipe: Some(1),
            records: Default::default(),
            extras: Extras::new(),
        }));
    }
    b.push(Event::File(File {
        id: 4,
        kind: FileKind::Regular,
        path: b"/var/log/job.log".to_vec(),
        flags: 0o2001,
        mode: 0o100644,
        pos: 4096,
        pipe: None,
        records: Default::default(),
        extras: Extras::new(),
    }));
    b.push(Event::Fd(Fd {
        fd: 2,
        cloexec: false,
        file: 4,
    }));
    for (pid, comm, fd, file) in [(201, &b"writer"[..], 1, 3u32), (202, b"reader", 0, 2)] {
        b.push(task(pid, 200, comm));
        b.push(thread(pid, 0x40_0200, 0x7ffd_0000_0d00));
        if pid == 202 {
            b.push(thread(pid + 100, 0x40_0300, 0x7ffd_1000_0d00));
        }
        b.push(mm());
        b.vma(
            vma(
                0x7ffd_0000_0000,
                0x7ffd_0000_2000,
                PROT_READ | PROT_WRITE,
                VmaKind::Stack,
                None,
            ),
            &[
                (0x7ffd_0000_0000, vec![0; 4096]),
                (0x7ffd_0000_1000, page(pid as u64, 4096)),
            ],
        );
        b.push(Event::Fd(Fd {
            fd,
            cloexec: false,
            file,
        }));
        b.push(Event::Fd(Fd {
            fd: 2,
            cloexec: true,
            file: 4,
        }));
    }
    b.push(task(203, 202, b"sleep"));
    b.push(thread(203, 0x40_0400, 0x7ffd_0000_0c00));
    b.tail();
    b
}

/// The builder's example, ending in an ERROR record: the writer failed.
pub fn error_tail() -> ImageBuilder {
    let mut b = ImageBuilder::example();
    let tail = b.events.pop();
    assert_eq!(tail, Some(Event::Tail));
    b.push(Event::Error(
        b"capture of task 100 failed: /proc/100/mem: Input/output error".to_vec(),
    ));
    b.tail();
    b
}

/// One task with 1100 stored pages in 5 chunks, zero runs and gaps.
pub fn large() -> ImageBuilder {
    let mut b = ImageBuilder::new(ImageBuilder::x86_64_header());
    b.push(task(300, 1, b"large"));
    b.push(thread(300, 0x40_0500, 0x7ffd_0000_0b00));
    b.push(mm());
    let base = 0x7f00_0000_0000u64;
    let mut pages = Vec::new();
    for i in 0..1200u64 {
        if i % 97 == 5 {
            continue; // not captured
        }
        let p = if i % 50 < 3 {
            vec![0; 4096]
        } else {
            // Compressible contents, so the committed fixture stays small in git.
            let mut p: Vec<u8> = format!("page {i:06} of large; ")
                .into_bytes()
                .into_iter()
                .cycle()
                .take(4096)
                .collect();
            if i == 610 {
                p[4090..].copy_from_slice(b"NEEDLE");
            }
            if i == 611 {
                p[..4].copy_from_slice(b"-X-Y");
            }
            p
        };
        pages.push((base + i * 4096, p));
    }
    b.vma(
        vma(
            base,
            base + 1200 * 4096,
            PROT_READ | PROT_WRITE,
            VmaKind::Anon,
            None,
        ),
        &pages,
    );
    b.vma(
        vma(
            base + 1300 * 4096,
            base + 1310 * 4096,
            PROT_READ,
            VmaKind::File,
            Some(b"/usr/lib/libc.so.6"),
        ),
        &[],
    );
    b.tail();
    b
}

/// Every native-1 fixture: (file stem, builder).
pub fn native_fixtures() -> Vec<(&'static str, ImageBuilder)> {
    vec![
        ("example", ImageBuilder::example()),
        ("tree-pipe", tree_pipe()),
        ("error-tail", error_tail()),
        ("large", large()),
    ]
}
