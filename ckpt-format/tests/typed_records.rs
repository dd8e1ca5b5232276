//! Typed records (docs/MODEL.md, docs/FORMAT.md "Typed records"): native-1 round
//! trips, their place before their owner, images written before them (a fixture
//! captured by the previous release) and what readers do with what they do not know.

use ckpt_format::build::ImageBuilder;
use ckpt_format::model::records::LEGACY_KEYS;
use ckpt_format::*;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn events(b: &[u8]) -> Result<Vec<Event<'static>>> {
    let mut src = open_slice(b)?;
    let mut v = Vec::new();
    while let Some(e) = src.next_event()? {
        v.push(e.into_owned());
    }
    Ok(v)
}

fn siginfo(sig: i32, val: u8) -> SigInfo {
    let mut b = vec![val; SigInfo::LEN];
    b[..4].copy_from_slice(&sig.to_le_bytes());
    SigInfo(b)
}

/// The example image with every kind of typed record on its owners.
fn typed_example() -> ImageBuilder {
    let mut b = ImageBuilder::example();
    for ev in &mut b.events {
        match ev {
            Event::Task(t) => {
                t.records = TaskRecords {
                    caps: Some(Capabilities {
                        inh: 1,
                        prm: 0x1ff,
                        eff: 0xff,
                        bnd: 0x1ff_ffff_ffff,
                        amb: 0,
                    }),
                    security: Some(Security {
                        no_new_privs: 1,
                        seccomp_mode: 0,
                    }),
                    shared_pending: Some(SharedPending {
                        queue: vec![siginfo(10, 1), siginfo(35, 2)],
                    }),
                    real_parent: Some(RealParent { ppid: 4321 }),
                    pdeath_signal: Some(ParentDeathSignal { sig: 15 }),
                    itimers: Some(Itimers {
                        timers: [
                            Itimer {
                                interval: (1, 500_000),
                                value: (0, 250_000),
                            },
                            Itimer::default(),
                            Itimer {
                                interval: (0, 0),
                                value: (7, 1),
                            },
                        ],
                    }),
                    posix_timers: Some(PosixTimers {
                        timers: vec![
                            PosixTimer {
                                id: 0,
                                clock: 1,
                                notify: 0,
                                signo: 10,
                                value: 0xabcd,
                                tid: 0,
                                overrun: 2,
                                interval: (0, 100_000_000),
                                left: (0, 42),
                            },
                            PosixTimer {
                                id: 5,
                                clock: -6,
                                notify: 4,
                                signo: 34,
                                value: 0x7f00_0000_4000,
                                tid: t.pid + 1,
                                overrun: 0,
                                interval: (0, 0),
                                left: (3, 999_999_999),
                            },
                        ],
                    }),
                    attrs: Some(ProcessAttrs {
                        oom_score_adj: -17,
                        dumpable: 1,
                        coredump_filter: 0x33,
                        child_subreaper: 1,
                        thp_disable: 1,
                    }),
                    exe: Some(ExeContents { file: 1 }),
                    posix_locks: Some(PosixLocks {
                        locks: vec![
                            PosixLock {
                                fd: 3,
                                write: true,
                                start: 0x4000_0000,
                                len: 1,
                            },
                            PosixLock {
                                fd: 3,
                                write: false,
                                start: 0x4000_0002,
                                len: 0,
                            },
                        ],
                    }),
                    securebits: Some(Securebits { bits: 0x2f }),
                    job_stop: Some(JobStop { sig: 20 }),
                }
            }
            Event::Thread(t) => {
                t.records = ThreadRecords {
                    rseq: Some(Rseq {
                        ptr: 0x7f00_0000_1000 + t.tid as u64,
                        len: 32,
                        sig: 0x5305_3053,
                    }),
                    robust_list: Some(RobustList {
                        head: 0x7f00_0000_2000,
                        len: 24,
                    }),
                    sigaltstack: Some(SigAltStack {
                        sp: 0x7f00_0001_0000,
                        flags: 0,
                        size: 8192,
                    }),
                    clear_child_tid: Some(ClearChildTid {
                        addr: 0x7f00_0000_3000,
                    }),
                    pending: Some(PendingSignals {
                        mask: 1 << 11,
                        queue: vec![siginfo(12, 3)],
                    }),
                    attrs: Some(ThreadAttrs {
                        nice: -3,
                        policy: 2,
                        rt_priority: 9,
                        ioprio: 2 << 13 | 4,
                        timer_slack: 50_000,
                        affinity: vec![0b1011, 1],
                    }),
                    seccomp: Some(SeccompFilters {
                        shared: 1,
                        filters: vec![
                            SeccompFilter {
                                flags: 0,
                                insns: (0..16u8).collect(),
                            },
                            SeccompFilter {
                                flags: 2,
                                insns: vec![6, 0, 0, 0, 0, 0, 0xff, 0x7f],
                            },
                        ],
                    }),
                }
            }
            Event::Vma(v) => {
                v.records = VmaRecords {
                    identity: Some(MapIdentity {
                        dev_major: 254,
                        dev_minor: 0,
                        ino: v.start / 4096,
                    }),
                    unknown_flags: Some(UnknownVmFlags {
                        names: b"xx yy".to_vec(),
                    }),
                    contents: Some(MapContents { file: 1 }),
                }
            }
            Event::File(f) => {
                f.records = FileRecords {
                    identity: Some(FileIdentity {
                        dev: 0xfe00,
                        ino: 1000 + f.id as u64,
                        mnt_id: 27,
                    }),
                    unsupported: (f.id == 1).then_some(Unsupported),
                    eventfd: (f.id == 4).then_some(Eventfd {
                        count: u64::MAX - 1,
                        semaphore: true,
                    }),
                    timerfd: (f.id == 4).then_some(Timerfd {
                        clock: 7,
                        settime_flags: 1,
                        ticks: 3,
                        value_sec: 99,
                        value_nsec: 999_999_999,
                        interval_sec: 2,
                        interval_nsec: 500,
                    }),
                    signalfd: (f.id == 4).then_some(Signalfd { mask: 1 << 34 }),
                    eventpoll: (f.id == 4).then(|| Eventpoll {
                        targets: vec![
                            EpollTarget {
                                fd: 3,
                                events: 0x8000_0019,
                                data: 0x1122_3344_5566_7788,
                            },
                            EpollTarget {
                                fd: 4,
                                events: 0x4000_0000,
                                data: 7,
                            },
                        ],
                    }),
                    inotify: (f.id == 4).then(|| Inotify {
                        watches: vec![InotifyWatch {
                            wd: 1,
                            mask: 2,
                            ignored_mask: 0,
                            path: b"/var/log/a b".to_vec(),
                        }],
                    }),
                    contents: (f.id == 1).then_some(FileContents {
                        size: 3 * 4096 + 5,
                        kind: CONTENTS_MEMFD,
                        seals: 0xf,
                    }),
                    data: if f.id == 1 {
                        vec![
                            FileData {
                                offset: 0,
                                data: vec![7; 4096],
                            },
                            FileData {
                                offset: 2 * 4096,
                                data: b"tail of the memfd".repeat(300)[..4101].to_vec(),
                            },
                        ]
                    } else {
                        Vec::new()
                    },
                    inode_of: (f.id == 3).then_some(InodeOf { file: 1 }),
                    locks: Some(FileLocks {
                        locks: vec![
                            FileLock {
                                kind: LOCK_FLOCK,
                                write: f.id == 3,
                                start: 0,
                                len: 0,
                            },
                            FileLock {
                                kind: LOCK_OFD,
                                write: true,
                                start: 10,
                                len: 20,
                            },
                        ],
                    }),
                    pidfd: (f.id == 3).then_some(Pidfd { pid: 4322 }),
                    fown: (f.id == 3).then_some(Fown {
                        kind: 2,
                        owner: 4321,
                        signal: 34,
                    }),
                    tty: (f.id != 1).then(|| {
                        Box::new(Tty {
                            master: false,
                            index: 7,
                            sid: 4321,
                            pgrp: 4322,
                            winsize: [33, 99, 0, 0],
                            termios: (0..ckpt_format::model::records::TERMIOS2_LEN as u8).collect(),
                        })
                    }),
                    ..FileRecords::default()
                }
            }
            _ => {}
        }
    }
    b
}

#[test]
fn typed_records_round_trip_and_precede_their_owner() {
    let b = typed_example();
    let bytes = b.to_native_bytes().unwrap();
    let got = events(&bytes).unwrap();
    assert_eq!(got, b.events);
    // Written again: the same bytes.
    let mut again = Vec::new();
    let mut enc = encoder(Revision::Native1, &mut again);
    for ev in &got {
        enc.event(ev).unwrap();
    }
    enc.finish().unwrap();
    drop(enc);
    assert_eq!(again, bytes);
    // Each typed record right before its owner, in code order.
    let mut recs = open_records_slice(&bytes).unwrap();
    let mut names = Vec::new();
    while let Some(r) = recs.next_record().unwrap() {
        names.push(r.name);
    }
    let s = names.join(" ");
    assert!(
        s.contains("CAPABILITIES SECURITY SHARED_PENDING REAL_PARENT PARENT_DEATH_SIGNAL ITIMERS POSIX_TIMERS PROCESS_ATTRS SECUREBITS EXE_CONTENTS POSIX_LOCKS JOB_STOP TASK"),
        "{s}"
    );
    assert!(
        s.contains(
            "RSEQ ROBUST_LIST SIGALTSTACK CLEAR_CHILD_TID PENDING_SIGNALS THREAD_ATTRS SECCOMP_FILTERS THREAD"
        ),
        "{s}"
    );
    assert!(
        s.contains("MAP_IDENTITY UNKNOWN_VM_FLAGS MAP_CONTENTS VMA"),
        "{s}"
    );
    assert!(
        s.contains("FILE_IDENTITY UNSUPPORTED FILE_CONTENTS FILE_DATA FILE_DATA FILE_LOCKS FILE"),
        "{s}"
    );
    assert!(
        s.contains("FILE_IDENTITY INODE_OF FILE_LOCKS PIDFD FOWN TTY FILE"),
        "{s}"
    );
    assert!(s.contains("FILE_LOCKS TTY FILE"), "{s}");
    // Nothing of ours in extras.
    for ev in &b.events {
        if let Event::Thread(t) = ev {
            assert!(t.extras.is_empty());
        }
    }
}

/// Record type codes a native-1 reader knew before typed records.
const OLD_CODES: [u32; 17] = [
    0x1, 0x2, 0x3, 0x4, 0x100, 0x101, 0x102, 0x103, 0x104, 0x200, 0x201, 0x202, 0x203, 0x204,
    0x300, 0x301, 0x302,
];

#[test]
fn an_old_reader_stops_at_the_first_typed_record_and_an_image_without_any_is_unchanged() {
    // Typed records are record types an old reader does not define: it stops with
    // `unknown record type 0x4..` (checked by hand against the previous build, see
    // docs/FORMAT.md); no old record type is reused.
    let bytes = typed_example().to_native_bytes().unwrap();
    let mut recs = open_records_slice(&bytes).unwrap();
    let mut typed = 0;
    while let Some(r) = recs.next_record().unwrap() {
        if r.type_code & 0xff >= 0x10 {
            typed += 1;
            assert!(!OLD_CODES.contains(&r.type_code));
        } else {
            assert!(OLD_CODES.contains(&r.type_code), "{:#x}", r.type_code);
        }
    }
    // 12 task records, 7 per thread (2), 3 per VMA (4), an identity and locks per file
    // (3), one unsupported, one file_contents with two file_data, one inode_of, the five
    // anonymous-inode kinds on file 4, a tty on each file but the first (2), one pidfd and
    // one fown
    assert_eq!(typed, 12 + 7 * 2 + 3 * 4 + 3 * 2 + 1 + 3 + 1 + 5 + 2 + 2);
    // Without typed records, the bytes are those of the previous writer (the
    // committed example image was written by it).
    let plain = ImageBuilder::example().to_native_bytes().unwrap();
    let committed = std::fs::read(root().join("fixtures/images/native-1/example.img")).unwrap();
    assert_eq!(plain, committed);
}

#[test]
fn an_image_written_before_typed_records_reads_as_typed_records() {
    // Captured by ckpt-capture at f8a8bff..6da9414 (restore_signals with queued
    // signals, two threads); its extras keys come back as typed records.
    let p = root().join("fixtures/images/native-1/captured-before-records.img");
    let bytes = std::fs::read(p).unwrap();
    let evs = events(&bytes).unwrap();
    let (mut tasks, mut threads, mut vmas, mut files) = (0, 0, 0, 0);
    for ev in &evs {
        let ex = match ev {
            Event::Task(t) => {
                tasks += 1;
                let r = &t.records;
                assert!(r.caps.is_some() && r.security.is_some() && r.real_parent.is_some());
                let q = &r.shared_pending.as_ref().unwrap().queue;
                assert_eq!(q.len(), 7);
                assert_eq!(q[0].signo(), 35);
                &t.extras
            }
            Event::Thread(t) => {
                threads += 1;
                let r = &t.records;
                assert!(r.rseq.is_some_and(|q| q.len == 32 && q.sig == 0x5305_3053));
                assert!(r.robust_list.is_some() && r.clear_child_tid.is_some());
                assert_eq!(r.sigaltstack.unwrap().flags, 2);
                assert!(!r.pending.as_ref().unwrap().queue.is_empty());
                &t.extras
            }
            Event::Vma(v) => {
                vmas += 1;
                assert!(v.records.identity.is_some());
                &v.extras
            }
            Event::File(f) => {
                files += 1;
                assert!(f.records.identity.is_some());
                &f.extras
            }
            _ => continue,
        };
        for k in ex.0.keys() {
            assert!(!LEGACY_KEYS.contains(&k.as_str()), "{k} left in extras");
        }
    }
    assert_eq!((tasks, threads, vmas), (1, 2, 26));
    assert!(files >= 5);
    // Written again it is a typed image with the same events.
    let mut out = Vec::new();
    let mut enc = encoder(Revision::Native1, &mut out);
    for ev in &evs {
        enc.event(ev).unwrap();
    }
    enc.finish().unwrap();
    drop(enc);
    assert_ne!(out, bytes);
    assert_eq!(events(&out).unwrap(), evs);
}

/// Native-1 frame bytes: header, payload, padding.
fn frame(ty: u32, parent: u32, payload: &[u8]) -> Vec<u8> {
    let len = 24 + payload.len() as u32;
    let mut h = Vec::new();
    for v in [ty, len, parent, 0] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    let mut c = crc32fast::Hasher::new();
    c.update(&h);
    c.update(payload);
    h.extend_from_slice(&c.finalize().to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(payload);
    while h.len() % 8 != 0 {
        h.push(0);
    }
    h
}

/// The example image up to the end of its record named `name` (first one).
fn prefix_through(bytes: &[u8], name: &str) -> Vec<u8> {
    let mut recs = open_records_slice(bytes).unwrap();
    while let Some(r) = recs.next_record().unwrap() {
        if r.name == name {
            let end = (r.offset + r.len).div_ceil(8) * 8;
            return bytes[..end as usize].to_vec();
        }
    }
    panic!("no {name}");
}

fn record_bytes(bytes: &[u8], name: &str) -> Vec<u8> {
    let mut recs = open_records_slice(bytes).unwrap();
    while let Some(r) = recs.next_record().unwrap() {
        if r.name == name {
            let end = (r.offset + r.len).div_ceil(8) * 8;
            return bytes[r.offset as usize..end as usize].to_vec();
        }
    }
    panic!("no {name}");
}

fn first_error(b: &[u8]) -> Error {
    match events(b) {
        Err(e) => e,
        Ok(_) => panic!("decoded"),
    }
}

#[test]
fn misplaced_duplicated_and_unknown_typed_records_are_refused() {
    let bytes = ImageBuilder::example().to_native_bytes().unwrap();
    let pid = 100u32;
    let mut rseq = Vec::new();
    rseq.extend_from_slice(&0x1000u64.to_le_bytes());
    rseq.extend_from_slice(&32u32.to_le_bytes());
    rseq.extend_from_slice(&0x53053053u32.to_le_bytes());

    // An RSEQ record followed by an MM record instead of its THREAD.
    let mut b = prefix_through(&bytes, "TASK");
    let rseq_at = b.len() as u64;
    b.extend(frame(0x410, pid, &rseq));
    b.extend(record_bytes(&bytes, "MM"));
    let e = first_error(&b);
    let s = e.to_string();
    assert_eq!(e.offset, rseq_at, "{s}");
    assert!(s.contains("RSEQ followed by MM"), "{s}");

    // Twice before one THREAD.
    let mut b = prefix_through(&bytes, "TASK");
    b.extend(frame(0x410, pid, &rseq));
    b.extend(frame(0x410, pid, &rseq));
    let s = first_error(&b).to_string();
    assert!(s.contains("at most once"), "{s}");

    // A thread record under another task's pid.
    let mut b = prefix_through(&bytes, "TASK");
    b.extend(frame(0x410, pid + 1, &rseq));
    let s = first_error(&b).to_string();
    assert!(s.contains("parent"), "{s}");

    // A typed record this reader does not know (a newer writer's).
    let mut b = prefix_through(&bytes, "TASK");
    b.extend(frame(0x4ff, pid, &[0u8; 8]));
    let s = first_error(&b).to_string();
    assert!(s.contains("0x4ff"), "{s}");

    // A short payload.
    let mut b = prefix_through(&bytes, "TASK");
    b.extend(frame(0x410, pid, &rseq[..12]));
    let s = first_error(&b).to_string();
    assert!(s.contains("RSEQ"), "{s}");

    // A queue whose count exceeds the payload.
    let mut b = prefix_through(&bytes, "TASK");
    let mut p = Vec::new();
    p.extend_from_slice(&0u64.to_le_bytes());
    p.extend_from_slice(&1000u32.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    b.extend(frame(0x414, pid, &p));
    let s = first_error(&b).to_string();
    assert!(s.contains("queue length"), "{s}");
}

#[test]
fn an_unknown_feature_bit_is_refused_naming_the_bit() {
    // Hand-made: the example image's HEADER with required feature bit 5 set.
    let bytes = ImageBuilder::example().to_native_bytes().unwrap();
    let mut b = bytes.clone();
    let h = 16; // the HEADER record follows the 16-byte preamble
    let req = u64::from_le_bytes(b[h + 24..h + 32].try_into().unwrap());
    b[h + 24..h + 32].copy_from_slice(&(req | 1 << 5).to_le_bytes());
    let len = u32::from_le_bytes(b[h + 4..h + 8].try_into().unwrap()) as usize;
    let mut c = crc32fast::Hasher::new();
    c.update(&b[h..h + 16]);
    c.update(&b[h + 24..h + len]);
    b[h + 16..h + 20].copy_from_slice(&c.finalize().to_le_bytes());
    let e = first_error(&b);
    let s = e.to_string();
    assert!(
        matches!(e.kind, ErrorKind::UnknownFeatures { found: 0x20, .. }),
        "{s}"
    );
    assert!(s.contains("bit 5"), "{s}");
}

#[test]
fn a_malformed_queue_of_an_old_image_is_refused_naming_its_key() {
    for (value, want) in [
        (Extra::Bytes(vec![0u8; 100]), "siginfo_pending: 100 bytes"),
        (Extra::U64(7), "siginfo_pending: an integer"),
    ] {
        let mut b = ImageBuilder::example();
        for ev in &mut b.events {
            if let Event::Thread(t) = ev {
                t.extras.0.insert("siginfo_pending".into(), value.clone());
            }
        }
        let bytes = b.to_native_bytes().unwrap();
        let s = first_error(&bytes).to_string();
        assert!(s.contains(want) && s.contains("THREAD"), "{s}");
    }
}

#[test]
fn every_kind_is_a_named_record_type_and_is_in_the_schema() {
    let schema = ckpt_format::schema::schema(Revision::Native1);
    for (code, name, owner, _) in ckpt_format::native::records::KINDS {
        let t = ckpt_format::native::RecordType(*code);
        assert!(t.is_known(), "{code:#x}");
        assert_eq!(t.name(), name.to_uppercase(), "{code:#x}");
        assert!(ckpt_format::native::records::is_typed(*code), "{code:#x}");
        assert_eq!(ckpt_format::native::records::owner(*code), Some(*owner));
        assert!(schema.contains(&format!("{code:#x}  {name}")), "{schema}");
    }
    // Core record types keep their low byte below 0x10.
    for t in ckpt_format::native::RecordType::ALL {
        let typed = ckpt_format::native::records::owner(t.0).is_some();
        assert_eq!(ckpt_format::native::records::is_typed(t.0), typed, "{t}");
    }
}

#[test]
fn file_contents_and_locks_are_checked_before_anything_is_kept() {
    let bytes = ImageBuilder::example().to_native_bytes().unwrap();
    let contents = |size: u64| {
        let mut p = size.to_le_bytes().to_vec();
        p.extend_from_slice(&2u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p
    };
    let data = |off: u64, len: usize| {
        let mut p = off.to_le_bytes().to_vec();
        p.extend(std::iter::repeat_n(0xabu8, len));
        p
    };
    let err_of = |recs: &[Vec<u8>]| {
        let mut b = prefix_through(&bytes, "RLIMITS");
        for r in recs {
            b.extend_from_slice(r);
        }
        b.extend(record_bytes(&bytes, "FILE"));
        first_error(&b).to_string()
    };
    // Data without the contents record of its file.
    let s = err_of(&[frame(0x448, 0, &data(0, 10))]);
    assert!(s.contains("file_data after the file_contents"), "{s}");
    // A run past the file's size.
    let s = err_of(&[
        frame(0x447, 0, &contents(100)),
        frame(0x448, 0, &data(95, 10)),
    ]);
    assert!(
        s.contains("file data offset") && s.contains("100 bytes"),
        "{s}"
    );
    // Runs out of order (overlapping).
    let s = err_of(&[
        frame(0x447, 0, &contents(100)),
        frame(0x448, 0, &data(10, 10)),
        frame(0x448, 0, &data(15, 10)),
    ]);
    assert!(s.contains("at least 20"), "{s}");
    // An empty run, and one over 1 MiB.
    let s = err_of(&[
        frame(0x447, 0, &contents(100)),
        frame(0x448, 0, &data(0, 0)),
    ]);
    assert!(s.contains("file data length"), "{s}");
    let s = err_of(&[
        frame(0x447, 0, &contents(1 << 30)),
        frame(0x448, 0, &data(0, (1 << 20) + 1)),
    ]);
    assert!(s.contains("file data length"), "{s}");
    // A lock count the payload does not hold (nothing allocated for it).
    let mut p = u32::MAX.to_le_bytes().to_vec();
    p.extend_from_slice(&0u32.to_le_bytes());
    let s = err_of(&[frame(0x44c, 0, &p)]);
    assert!(s.contains("entry count"), "{s}");
    // A write flag that is neither 0 nor 1.
    let mut p = 1u32.to_le_bytes().to_vec();
    p.extend_from_slice(&0u32.to_le_bytes());
    for v in [1u32, 7] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&[0u8; 16]);
    let s = err_of(&[frame(0x44c, 0, &p)]);
    assert!(s.contains("write flag"), "{s}");
}

#[test]
fn legacy_revisions_report_file_contents_and_locks_as_lost() {
    use ckpt_format::convert::{convert_slice, ConvertOptions, TargetKernel};
    let native = typed_example().to_native_bytes().unwrap();
    for to in [Revision::CkptV21, Revision::CrV5] {
        let o = ConvertOptions {
            to,
            lossy: false,
            target_kernel: TargetKernel::Keep,
        };
        let err = convert_slice(&native, Vec::new(), &o).unwrap_err();
        let ErrorKind::Unrepresentable { items } = err.kind else {
            panic!("{err:?}");
        };
        for name in [
            "file_contents",
            "file_data",
            "inode_of",
            "file_locks",
            "map_contents",
            "exe_contents",
            "posix_locks",
            "job_stop",
        ] {
            assert!(
                items.iter().any(|i| i.contains(&format!("`{name}`"))),
                "{to:?}: {name} not reported lost in {items:#?}"
            );
        }
    }
}

/// A task of pid 0 (a foreign revision allows it; the fuzzer found a valid ckpt-v21 image
/// with one) keeps its typed records through native-1: they carry parent tag 0, which the
/// reader checks against the TASK that follows. (It used to refuse tag 0 outright, so an
/// image the validator accepted did not read back after conversion.)
#[test]
fn a_task_of_pid_0_keeps_its_typed_records() {
    let mut b = ImageBuilder::example();
    for ev in &mut b.events {
        if let Event::Task(t) = ev {
            t.pid = 0;
            t.records.real_parent = Some(RealParent { ppid: 1 });
        }
    }
    let bytes = b.to_native_bytes().unwrap();
    let evs = events(&bytes).unwrap();
    let kept = evs.iter().any(|e| {
        matches!(e, Event::Task(t) if t.pid == 0 && t.records.real_parent == Some(RealParent { ppid: 1 }))
    });
    assert!(kept, "{evs:?}");
}
