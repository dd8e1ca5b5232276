//! native-1 → ckpt-v21 → native-1 for an image shaped like what ckpt-capture
//! writes: one task with three threads, fs, 64 signal dispositions, 16
//! rlimits, credentials with groups and capability sets, /dev/null, a
//! directory fd and a pipe with data shared by two fds (docs/CONVERT.md).

#[path = "common/v21_restart.rs"]
mod v21_restart;

use ckpt_format::build::ImageBuilder;
use ckpt_format::convert::{convert, convert_slice, ConvertOptions, TargetKernel};
use ckpt_format::*;

fn opts(to: Revision) -> ConvertOptions {
    ConvertOptions {
        to,
        lossy: false,
        target_kernel: TargetKernel::Keep,
    }
}

fn page(fill: u8) -> Vec<u8> {
    (0..4096u32)
        .map(|i| (i as u8).wrapping_mul(3) ^ fill)
        .collect()
}

fn thread(tid: i32, rip: u64, sigmask: u64) -> Thread {
    let mut x = Extras::new();
    // Capture's per-thread keys that v21 carries (TASK fields, SIGPENDING)
    // or implies (the disabled sigaltstack next to clear_child_tid).
    x.set_u64("robust_list_head", 0x7f00_0000_1a20 + tid as u64 * 0x100);
    x.set_u64("robust_list_len", 24);
    x.set_u64("clear_child_tid", 0x7f00_0000_19d0 + tid as u64 * 0x100);
    x.set_u64("sigpending", if tid == 100 { 0 } else { 1 << 9 });
    x.set_u64("sigaltstack_sp", 0);
    x.set_u64("sigaltstack_flags", 2);
    x.set_u64("sigaltstack_size", 0);
    Thread {
        tid,
        regs: Regs {
            rip,
            rsp: 0x7ffd_0000_0f00 - tid as u64 * 0x1000,
            rax: u64::MAX - 3,
            orig_rax: 230,
            cs: 0x33,
            ss: 0x2b,
            eflags: 0x246,
            fs_base: 0x7f00_0000_1700 + tid as u64 * 0x100,
            ..Regs::default()
        },
        fpu: Some(Fpu {
            kind: FpuKind::Xsave,
            xfeatures: 0,
            data: (0..2688u32).map(|i| (i as u8) ^ (tid as u8)).collect(),
        }),
        // As ckpt-capture records it: three empty GDT TLS slots.
        tls: ckpt_format::layout::derive::empty_tls(),
        sigmask,
        records: Default::default(),
        extras: x,
    }
}

/// The image. `tool` sets the writer identity (capture sets it; v21 has no
/// place for it, conversion reports it as retargeted).
fn capture_like(tool: &str) -> ImageBuilder {
    let mut h = ImageBuilder::x86_64_header();
    h.tool = tool.into();
    h.tool_version = if tool.is_empty() { "" } else { "0.1.0" }.into();
    let mut b = ImageBuilder::new(h);
    let mut tx = Extras::new();
    for (k, v) in [
        ("cap_inh", 0),
        ("cap_prm", 0),
        ("cap_eff", 0),
        ("cap_bnd", 0x1ff_ffff_ffff),
        ("cap_amb", 0),
        ("seccomp_mode", 0),
        ("no_new_privs", 0),
    ] {
        tx.set_u64(k, v);
    }
    b.push(Event::Task(Task {
        pid: 100,
        tgid: 100,
        ppid: 0,
        pgid: 100,
        sid: 90,
        comm: b"server".to_vec(),
        state: 1,
        exit_state: 0,
        exit_code: 0,
        exit_signal: 17,
        creds: Creds {
            uid: [1000, 1000, 1000, 1000],
            gid: [1000, 1000, 1000, 1000],
            groups: vec![4, 24, 27, 1000],
        },
        records: Default::default(),
        extras: tx,
    }));
    b.push(Event::Thread(thread(100, 0x401000, 0)));
    b.push(Event::Thread(thread(101, 0x402000, 1 << 1)));
    b.push(Event::Thread(thread(102, 0x403000, (1 << 14) | (1 << 2))));
    b.push(Event::Mm(Mm {
        start_code: 0x400000,
        end_code: 0x404000,
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
        exe: Some(b"/usr/bin/server".to_vec()),
        personality: 0,
        extras: Extras::new(),
    }));
    b.vma(
        Vma {
            start: 0x400000,
            end: 0x404000,
            prot: 5,
            flags: 0x875,
            pgoff: 0,
            kind: VmaKind::File,
            file: Some(b"/usr/bin/server".to_vec()),
            records: Default::default(),
            extras: Extras::new(),
        },
        &[(0x400000, page(1)), (0x401000, page(2))],
    );
    b.vma(
        Vma {
            start: 0x602000,
            end: 0x604000,
            prot: 3,
            flags: 0x100073,
            pgoff: 0,
            kind: VmaKind::Heap,
            file: None,
            records: Default::default(),
            extras: Extras::new(),
        },
        &[(0x602000, page(3)), (0x603000, vec![0; 4096])],
    );
    b.vma(
        Vma {
            start: 0x7ffd_0000_0000,
            end: 0x7ffd_0000_1000,
            prot: 3,
            flags: 0x100173,
            pgoff: 0,
            kind: VmaKind::Stack,
            file: None,
            records: Default::default(),
            extras: Extras::new(),
        },
        &[(0x7ffd_0000_0000, page(4))],
    );
    b.push(Event::Fs(Fs {
        cwd: b"/srv/data".to_vec(),
        root: b"/".to_vec(),
        umask: 0,
    }));
    let acts = (1..=64u64)
        .map(|s| match s {
            13 => SigAction {
                handler: 1,
                ..SigAction::default()
            },
            10 | 15 => SigAction {
                handler: 0x401800 + s,
                flags: 0x0400_0004,
                restorer: 0x7f00_0004_2520,
                mask: 1 << (s - 1),
            },
            _ => SigAction::default(),
        })
        .collect();
    b.push(Event::SigActions(acts));
    let lims = (0..16u64)
        .map(|i| match i {
            7 => Rlimit {
                cur: 1024,
                max: 524288,
            },
            3 => Rlimit {
                cur: 8 << 20,
                max: u64::MAX,
            },
            _ => Rlimit {
                cur: u64::MAX,
                max: u64::MAX,
            },
        })
        .collect();
    b.push(Event::Rlimits(lims));
    let file = |id, kind, path: &[u8], flags, mode, pipe| File {
        id,
        kind,
        path: path.to_vec(),
        flags,
        mode,
        pos: 0,
        pipe,
        records: Default::default(),
        extras: Extras::new(),
    };
    let fd = |fd, file, cloexec| Event::Fd(Fd { fd, cloexec, file });
    b.push(Event::File(file(
        1,
        FileKind::CharDevice,
        b"/dev/null",
        0o2,
        0o20666,
        None,
    )));
    b.push(fd(0, 1, false));
    b.push(fd(1, 1, false));
    b.push(fd(2, 1, false));
    b.push(Event::Pipe(Pipe {
        id: 2,
        data: b"queued bytes"[..].into(),
    }));
    b.push(Event::File(file(
        3,
        FileKind::Pipe,
        b"",
        0,
        0o10600,
        Some(2),
    )));
    b.push(fd(3, 3, true));
    b.push(Event::File(file(
        4,
        FileKind::Pipe,
        b"",
        1,
        0o10600,
        Some(2),
    )));
    b.push(fd(4, 4, true));
    b.push(Event::File(file(
        5,
        FileKind::Directory,
        b"/srv/data",
        0o200000,
        0o40755,
        None,
    )));
    b.push(fd(5, 5, true));
    b.push(Event::File(file(
        6,
        FileKind::Regular,
        b"/srv/data/log",
        0o2101,
        0o100644,
        None,
    )));
    b.push(fd(6, 6, false));
    b.tail();
    // Capture writes typed records (the keys above are those of older images).
    for ev in &mut b.events {
        ckpt_format::model::records::adopt::event(ev).unwrap();
    }
    b
}

/// Byte equality, showing the first differing event on failure.
fn same_bytes(a: &[u8], b: &[u8]) {
    if a == b {
        return;
    }
    let events = |x: &[u8]| {
        let mut src = open_slice(x).unwrap();
        let mut v = Vec::new();
        while let Some(e) = src.next_event().unwrap() {
            v.push(format!("{:?}", e.into_owned()));
        }
        v
    };
    let (ea, eb) = (events(a), events(b));
    for (i, (x, y)) in ea.iter().zip(&eb).enumerate() {
        let cut = |s: &str| s.chars().take(900).collect::<String>();
        assert_eq!(cut(x), cut(y), "event {i}");
    }
    panic!("{} vs {} events; bytes differ", ea.len(), eb.len());
}

fn to_v21_and_back(native: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut v21 = Vec::new();
    convert_slice(native, &mut v21, &opts(Revision::CkptV21)).unwrap();
    let mut back = Vec::new();
    convert_slice(&v21, &mut back, &opts(Revision::Native1)).unwrap();
    (v21, back)
}

#[test]
fn capture_shaped_image_round_trips_through_v21_byte_for_byte() {
    let native = capture_like("").to_native_bytes().unwrap();
    let (v21, back) = to_v21_and_back(&native);
    same_bytes(&back, &native);
    // And v21 → native → v21 gives the v21 bytes back.
    let mut again = Vec::new();
    convert_slice(&back, &mut again, &opts(Revision::CkptV21)).unwrap();
    assert_eq!(again, v21);
}

#[test]
fn the_writer_identity_is_the_only_retargeted_field() {
    let native = capture_like("ckpt-capture").to_native_bytes().unwrap();
    let mut v21 = Vec::new();
    let r = convert_slice(&native, &mut v21, &opts(Revision::CkptV21)).unwrap();
    assert!(r.dropped.is_empty(), "{:?}", r.dropped);
    assert_eq!(r.retargeted.len(), 1, "{:?}", r.retargeted);
    assert!(r.retargeted[0].contains("ckpt-capture 0.1.0"));
    let mut back = Vec::new();
    convert_slice(&v21, &mut back, &opts(Revision::Native1)).unwrap();
    assert_eq!(back, capture_like("").to_native_bytes().unwrap());
}

#[test]
fn stream_path_gives_the_same_bytes() {
    let native = capture_like("").to_native_bytes().unwrap();
    let (v21_slice, back_slice) = to_v21_and_back(&native);
    let mut v21 = Vec::new();
    convert(&native[..], &mut v21, &opts(Revision::CkptV21)).unwrap();
    assert_eq!(v21, v21_slice);
    let mut back = Vec::new();
    convert(&v21[..], &mut back, &opts(Revision::Native1)).unwrap();
    assert_eq!(back, back_slice);
    assert_eq!(back, native);
}

/// The records of the v21 image, by name, in order.
fn record_names(b: &[u8]) -> Vec<&'static str> {
    let mut rs = ckpt_format::v21::open_records(b);
    let mut v = Vec::new();
    while let Some(r) = rs.next_record().unwrap() {
        v.push(r.name);
    }
    v
}

#[test]
fn v21_layout_follows_the_kernel_grammar() {
    let native = capture_like("").to_native_bytes().unwrap();
    let (v21, _) = to_v21_and_back(&native);
    let names = record_names(&v21);
    let tasks: Vec<usize> = (0..names.len()).filter(|&i| names[i] == "TASK").collect();
    assert_eq!(tasks.len(), 3, "one v21 task per thread");
    // Leader: TASK STRING THREAD RESTART_BLOCK CPU CPU_FPU, cred objects,
    // TASK_CREDS, namespace objects, TASK_NS (the kernel's order).
    let t0 = tasks[0];
    assert_eq!(
        &names[t0..t0 + 6],
        &[
            "TASK",
            "STRING",
            "THREAD",
            "RESTART_BLOCK",
            "CPU",
            "CPU_FPU"
        ]
    );
    let creds = names.iter().position(|&n| n == "TASK_CREDS").unwrap();
    assert!(names[t0 + 6..creds].contains(&"CRED"));
    assert!(names[t0 + 6..creds].contains(&"GROUPINFO"));
    let ns = names.iter().position(|&n| n == "TASK_NS").unwrap();
    for n in ["UTS_NS", "IPC_NS", "NS"] {
        assert!(names[creds..ns].contains(&n), "{n} before TASK_NS");
    }
    assert!(ns < names.iter().position(|&n| n == "MM").unwrap());
    // Leader section ends with TASK_OBJS, the signal object (SIGNAL and the
    // shared SIGPENDING, no OBJREF), then the private SIGPENDING and
    // SIGNAL_TASK (checkpoint_task_objs / checkpoint_task_signal, C/R v18-v20).
    assert_eq!(
        &names[tasks[1] - 5..tasks[1]],
        &[
            "TASK_OBJS",
            "SIGNAL",
            "SIGPENDING",
            "SIGPENDING",
            "SIGNAL_TASK"
        ]
    );
    // A thread's section: TASK_OBJS, SIGPENDING, SIGNAL_TASK.
    assert_eq!(
        &names[tasks[2] - 3..tasks[2]],
        &["TASK_OBJS", "SIGPENDING", "SIGNAL_TASK"]
    );
    for n in ["FS", "SIGHAND", "SIGNAL", "FILE_TABLE", "NS", "CONTAINER"] {
        assert_eq!(names.iter().filter(|&&x| x == n).count(), 1, "{n}");
    }
    // Threads: their own short section with shared objects by reference.
    for w in [&tasks[1..], &[names.len() - 1][..]].concat().windows(2) {
        assert_eq!(
            &names[w[0]..w[1]],
            &[
                "TASK",
                "STRING",
                "THREAD",
                "RESTART_BLOCK",
                "CPU",
                "CPU_FPU",
                "TASK_CREDS",
                "TASK_NS",
                "TASK_OBJS",
                "SIGPENDING",
                "SIGNAL_TASK"
            ]
        );
    }
    // And a v21 restart reads it to its end.
    let w = v21_restart::walk(&v21).unwrap();
    assert_eq!(w.tasks, 3);
}

#[test]
fn thread_table_and_kinds_are_what_was_captured() {
    let native = capture_like("").to_native_bytes().unwrap();
    let (v21, _) = to_v21_and_back(&native);
    let mut src = open_slice(&v21).unwrap();
    let mut tids = Vec::new();
    let mut kinds = Vec::new();
    let mut creds = None;
    while let Some(ev) = src.next_event().unwrap() {
        match ev {
            Event::Thread(t) => tids.push((t.tid, t.sigmask)),
            Event::File(f) => kinds.push(f.kind),
            Event::Task(t) => creds = Some(t.creds),
            _ => {}
        }
    }
    assert_eq!(tids, vec![(100, 0), (101, 2), (102, (1 << 14) | 4)]);
    assert_eq!(
        kinds,
        vec![
            FileKind::CharDevice,
            FileKind::Pipe,
            FileKind::Pipe,
            FileKind::Directory,
            FileKind::Regular
        ]
    );
    assert_eq!(creds.unwrap().groups, vec![4, 24, 27, 1000]);
}

/// What v21 still cannot hold is refused, item by item.
#[test]
fn what_v21_cannot_hold_is_refused_precisely() {
    let mut b = capture_like("");
    let ev = &mut b.events;
    for e in ev.iter_mut() {
        match e {
            Event::Header(h) => h.extras.set_u64("root_pid", 100),
            Event::Task(t) => {
                t.records.real_parent = Some(ckpt_format::RealParent { ppid: 1 });
                t.records.caps.as_mut().expect("capture-like caps").amb = 4;
            }
            Event::Fs(f) => f.umask = 0o022,
            Event::Vma(v) if v.kind == VmaKind::File => v.extras.set_u64("ino", 1234),
            Event::File(f) if f.id == 6 => f.extras.set_u64("mnt_id", 25),
            Event::Thread(t) if t.tid == 101 => {
                t.records
                    .sigaltstack
                    .as_mut()
                    .expect("capture-like sigaltstack")
                    .sp = 0x7000
            }
            _ => {}
        }
    }
    let native = b.to_native_bytes().unwrap();
    let err = convert_slice(&native, Vec::new(), &opts(Revision::CkptV21)).unwrap_err();
    let ErrorKind::Unrepresentable { items } = err.kind else {
        panic!("{err:?}");
    };
    let want = [
        "header extra `root_pid`",
        "task extra `real_ppid`",
        "`cap_amb` = 4",
        "fs umask 0o22",
        "extra `ino` = U64(1234)",
        "file 6 extra `mnt_id`",
        "thread 101: `sigaltstack_sp` = 0x7000",
    ];
    for w in want {
        assert!(items.iter().any(|i| i.contains(w)), "{w} not in {items:#?}");
    }
    assert_eq!(items.len(), want.len(), "{items:#?}");
}
