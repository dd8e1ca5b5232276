//! Queued signals in ckpt-v21 (docs/V21-STREAM.md "Queued signals"): the
//! thread's and the process's queues go into the SIGPENDING records as
//! `ckpt_siginfo` entries; native-1 → ckpt-v21 → native-1 and ckpt-v21 →
//! native-1 → ckpt-v21 are byte-identical on the fixture with pending signals
//! (fixtures/images/ckpt-v21/ours-signals.img, made here from the C program's
//! image); what the era cannot hold is named, item by item.
//!
//! Regenerate the fixture with `CKPT_BLESS=1 cargo test -p ckpt-format --test v21_siginfo`.

#[path = "common/v21_restart.rs"]
mod v21_restart;

use ckpt_format::convert::{convert_slice, ConvertOptions, TargetKernel};
use ckpt_format::layout::v21::TABLE as T;
use ckpt_format::model::{Itimer, Itimers};
use ckpt_format::*;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture() -> PathBuf {
    root().join("fixtures/images/ckpt-v21/ours-signals.img")
}

fn conv(b: &[u8], to: Revision, lossy: bool) -> Result<(Vec<u8>, Vec<String>)> {
    let mut out = Vec::new();
    let o = ConvertOptions {
        to,
        lossy,
        target_kernel: TargetKernel::Keep,
    };
    let r = convert_slice(b, &mut out, &o)?;
    Ok((out, r.dropped))
}

fn events(b: &[u8]) -> Vec<Event<'static>> {
    let mut src = open_slice(b).unwrap();
    let mut v = Vec::new();
    while let Some(ev) = src.next_event().unwrap() {
        v.push(ev.into_owned());
    }
    v
}

fn encode(rev: Revision, evs: &[Event<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = encoder(rev, &mut out);
    for ev in evs {
        enc.event(ev).unwrap();
    }
    enc.finish().unwrap();
    drop(enc);
    out
}

/// A user `siginfo_t` (128 bytes): signal, code, and 8-byte words at offsets.
fn si(signo: i32, code: i32, words: &[(usize, u64)]) -> SigInfo {
    let mut b = vec![0u8; SigInfo::LEN];
    b[..4].copy_from_slice(&signo.to_le_bytes());
    b[8..12].copy_from_slice(&code.to_le_bytes());
    for &(at, v) in words {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    SigInfo(b)
}

/// Signals every class of the era can hold: kill(2) (SI_USER, pid/uid), a
/// child's exit (SIGCHLD with status and times), a fault address, SIGPOLL
/// band/fd, a message queue notification (SI_MESGQ with a value).
fn thread_queue() -> Vec<SigInfo> {
    vec![
        si(10, 0, &[(16, 1000 << 32 | 4242)]),
        si(17, 1, &[(16, 1000 << 32 | 77), (24, 3), (32, 11), (40, 13)]),
        si(7, 2, &[(16, 0x7f00_dead_0000)]),
    ]
}

fn shared_queue() -> Vec<SigInfo> {
    vec![
        si(12, 0, &[(16, 4243)]),
        si(29, 1, &[(16, 1), (24, 9)]),
        si(34, -3, &[(16, 0x3e8_0000_0063), (24, 0x5555_0000_1234)]),
    ]
}

/// The C program's v21 image with pending signals on its first task: a queue
/// on its thread (mask with the blocked SIGUSR1/SIGCHLD/SIGBUS bits) and a
/// shared queue (in the signal object, with resource limits).
fn ours_signals() -> Vec<u8> {
    let c = c_v21();
    let mut evs = events(&c);
    let mut task_done = false;
    let mut thread_done = false;
    for ev in &mut evs {
        match ev {
            Event::Task(t) if !task_done => {
                task_done = true;
                t.records.shared_pending = Some(SharedPending {
                    queue: shared_queue(),
                });
            }
            Event::Thread(t) if !thread_done => {
                thread_done = true;
                t.sigmask = 1 << 9 | 1 << 16 | 1 << 6;
                t.records.pending = Some(PendingSignals {
                    mask: 1 << 9 | 1 << 16 | 1 << 6,
                    queue: thread_queue(),
                });
            }
            _ => {}
        }
    }
    assert!(task_done && thread_done);
    // The signal object that holds the shared queue comes with the limits
    // (capture's order: after the memory, before the files).
    let at = evs
        .iter()
        .position(|e| matches!(e, Event::Pipe(_)))
        .unwrap();
    let lims = (0..16u64)
        .map(|i| Rlimit {
            cur: 1000 + i,
            max: u64::MAX,
        })
        .collect();
    evs.insert(at, Event::Rlimits(lims));
    encode(Revision::CkptV21, &evs)
}

fn c_v21() -> Vec<u8> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let bin = tmp.join("ckpt-legacy-siginfo");
    let st = Command::new("cc")
        .args(["-std=gnu11", "-O1", "-o"])
        .arg(&bin)
        .arg(root().join("fixtures/legacy/legacy.c"))
        .status()
        .unwrap();
    assert!(st.success());
    let out = tmp.join("siginfo-c.img");
    assert!(Command::new(&bin)
        .arg("v21")
        .arg(&out)
        .status()
        .unwrap()
        .success());
    std::fs::read(out).unwrap()
}

/// (offset, code, whole record bytes) of each record.
fn records(b: &[u8]) -> Vec<(usize, u32, &[u8])> {
    let mut v = Vec::new();
    let mut at = 0;
    while at + 8 <= b.len() {
        let code = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        v.push((at, code, &b[at..at + len]));
        at += len;
    }
    v
}

#[test]
fn the_fixture_is_what_the_encoder_writes_and_holds_both_queues() {
    let made = ours_signals();
    if std::env::var_os("CKPT_BLESS").is_some() {
        std::fs::write(fixture(), &made).unwrap();
    }
    let bytes = std::fs::read(fixture()).expect("run with CKPT_BLESS=1");
    assert!(bytes == made, "ours-signals.img differs (CKPT_BLESS=1)");
    // A v21 restart reads it to its end (SIGPENDING lengths checked there).
    let w = v21_restart::walk(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert!(w.tasks >= 1);
    // The SIGPENDING records: the shared one after SIGNAL, the thread's
    // before its SIGNAL_TASK, each with its entries.
    let sp = T.st("SIGPENDING");
    let recs = records(&bytes);
    let pend: Vec<(u32, &[u8], u32)> = recs
        .windows(2)
        .filter(|w| w[1].1 == T.code("SIGPENDING"))
        .map(|w| (w[0].1, w[1].2, sp.get(w[1].2, "nr_pending") as u32))
        .collect();
    let (after_signal, shared, n) = pend[0];
    assert_eq!(after_signal, T.code("SIGNAL"));
    assert_eq!(n, 3);
    assert_eq!(shared.len(), 24 + 3 * 48);
    assert_eq!(sp.get(shared, "signal"), 1 << 11 | 1 << 28 | 1 << 33);
    let private = recs
        .windows(2)
        .find(|w| w[0].1 == T.code("SIGPENDING") && w[1].1 == T.code("SIGNAL_TASK"))
        .unwrap()[0]
        .2;
    assert_eq!(sp.get(private, "nr_pending"), 3);
    assert_eq!(sp.get(private, "signal"), 1 << 9 | 1 << 16 | 1 << 6);
    // The entries as the era's kernel filled them: internal si_code with
    // the class bits, pid/uid/status/times/address/band/fd in their fields.
    let e = T.st("SIGINFO");
    let entry = |rec: &[u8], i: usize, f: &str| e.get(&rec[24 + 48 * i..24 + 48 * (i + 1)], f);
    assert_eq!(
        (0..3)
            .map(|i| (entry(private, i, "signo"), entry(private, i, "code")))
            .collect::<Vec<_>>(),
        vec![(10, 0), (17, 4 << 16 | 1), (7, 3 << 16 | 2)]
    );
    assert_eq!(entry(private, 0, "pid"), 4242);
    assert_eq!(entry(private, 0, "uid"), 1000);
    assert_eq!(entry(private, 1, "sigval_int"), 3);
    assert_eq!(
        (entry(private, 1, "utime"), entry(private, 1, "stime")),
        (11, 13)
    );
    assert_eq!(entry(private, 2, "sigval_ptr"), 0x7f00_dead_0000);
    assert_eq!(entry(shared, 1, "code"), 2 << 16 | 1);
    assert_eq!(
        (entry(shared, 1, "pid"), entry(shared, 1, "sigval_int")),
        (1, 9)
    );
    assert_eq!(entry(shared, 2, "code"), 6 << 16 | 0xfffd);
    assert_eq!(entry(shared, 2, "sigval_ptr"), 0x5555_0000_1234);
    // Read back: the same typed records.
    let evs = events(&bytes);
    let task = evs.iter().find_map(|e| match e {
        Event::Task(t) => Some(t),
        _ => None,
    });
    assert_eq!(
        task.unwrap().records.shared_pending.as_ref().unwrap().queue,
        shared_queue()
    );
    let th = evs.iter().find_map(|e| match e {
        Event::Thread(t) => Some(t),
        _ => None,
    });
    let p = th.unwrap().records.pending.as_ref().unwrap();
    assert_eq!(p.queue, thread_queue());
    assert_eq!(p.mask, 1 << 9 | 1 << 16 | 1 << 6);
}

#[test]
fn round_trips_are_byte_identical_both_ways() {
    let v21 = std::fs::read(fixture()).unwrap();
    // ckpt-v21 → native-1 → ckpt-v21.
    let (n1, dropped) = conv(&v21, Revision::Native1, false).unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");
    let (again, dropped) = conv(&n1, Revision::CkptV21, false).unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");
    assert!(again == v21, "ckpt-v21 -> native-1 -> ckpt-v21 differs");
    // native-1 → ckpt-v21 → native-1.
    let (back, _) = conv(&again, Revision::Native1, false).unwrap();
    assert!(back == n1, "native-1 -> ckpt-v21 -> native-1 differs");
    // The events decoded and encoded again (v21 → model → v21).
    assert!(encode(Revision::CkptV21, &events(&v21)) == v21);
}

#[test]
fn what_the_era_cannot_hold_is_named_and_the_rest_kept() {
    let v21 = std::fs::read(fixture()).unwrap();
    let mut evs = events(&v21);
    for ev in &mut evs {
        match ev {
            Event::Task(t) => {
                if let Some(s) = t.records.shared_pending.as_mut() {
                    // A posix timer's signal.
                    s.queue.push(si(14, -2, &[(16, 5)]));
                }
            }
            Event::Thread(t) => {
                if let Some(p) = t.records.pending.as_mut() {
                    // sigqueue(3) (SI_QUEUE) and pthread_kill (SI_TKILL): the
                    // era kept negative codes without a class.
                    p.queue.insert(1, si(35, -1, &[(16, 7), (24, 101)]));
                    p.queue.push(si(12, -6, &[(16, 7)]));
                    // Bytes beyond what ckpt_siginfo holds.
                    p.queue.push(si(10, 0, &[(64, 1)]));
                }
            }
            _ => {}
        }
    }
    let n1 = encode(Revision::Native1, &evs);
    let e = conv(&n1, Revision::CkptV21, false).unwrap_err();
    let items = match e.kind {
        ErrorKind::Unrepresentable { items } => items,
        _ => panic!("not a refusal: {e}"),
    };
    let (out, dropped) = conv(&n1, Revision::CkptV21, true).unwrap();
    assert_eq!(items.len(), 4, "{items:#?}");
    assert_eq!(dropped.len(), 4, "{dropped:#?}");
    for want in [
        "thread 300: queued signal 35 si_code -1 (the era kept negative codes",
        "thread 300: queued signal 12 si_code -6 (the era kept negative codes",
        "thread 300: queued signal 10 si_code 0: bytes beyond the fields",
        "shared: queued signal 14 si_code SI_TIMER",
    ] {
        assert!(
            dropped.iter().any(|d| d.contains(want)),
            "{want}: {dropped:#?}"
        );
        assert!(items.iter().any(|d| d.contains(want)), "{want}: {items:#?}");
    }
    // The rest is there, as in the fixture: the lossy image is the fixture.
    assert!(out == v21, "the signals v21 can hold are written as before");
}

#[test]
fn entries_that_do_not_map_are_errors_at_their_offset() {
    let v21 = std::fs::read(fixture()).unwrap();
    let recs = records(&v21);
    let (at, _, _) = *recs
        .windows(2)
        .find(|w| w[0].1 == T.code("SIGPENDING") && w[1].1 == T.code("SIGNAL_TASK"))
        .map(|w| &w[0])
        .unwrap();
    // The second entry's si_code: the CHLD class on SIGUSR1's code.
    let mut bad = v21.clone();
    let code_at = at + 24 + 48 + 8;
    bad[code_at..code_at + 4].copy_from_slice(&(4u32 << 16 | 1).to_le_bytes());
    let mut bad2 = bad.clone();
    bad2[at + 24 + 48..at + 24 + 48 + 4].copy_from_slice(&10u32.to_le_bytes());
    let mut src = open_slice(&bad2).unwrap();
    let err = loop {
        match src.next_event() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("decoded"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.offset, at as u64, "{err}");
    let m = err.to_string();
    assert!(
        m.contains("ckpt_siginfo entry 1") && m.contains("do not select"),
        "{m}"
    );
    // nr_pending that does not match the length.
    let mut bad3 = v21.clone();
    bad3[at + 8..at + 12].copy_from_slice(&4u32.to_le_bytes());
    let mut src = open_slice(&bad3).unwrap();
    let err = loop {
        match src.next_event() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("decoded"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.offset, at as u64, "{err}");
    assert!(err.to_string().contains("nr_pending (4)"), "{err}");
}

/// Interval timers (the Task's `itimers`) go into the SIGNAL record's `it_*` fields as
/// nanoseconds [v20 itimers patch], and come back as the same record; a kernel's value
/// that is not whole microseconds (the model's unit) keeps the signal object as records.
#[test]
fn interval_timers_go_into_the_signal_record() {
    let v21 = std::fs::read(fixture()).unwrap();
    let mut evs = events(&v21);
    let x = Itimers {
        timers: [
            Itimer {
                interval: (0, 500_000),
                value: (2, 250_000),
            },
            Itimer::default(),
            Itimer {
                interval: (1, 0),
                value: (0, 999_999),
            },
        ],
    };
    for ev in &mut evs {
        if let Event::Task(t) = ev {
            t.records.itimers = Some(x);
        }
    }
    let n1 = encode(Revision::Native1, &evs);
    let (out, dropped) = conv(&n1, Revision::CkptV21, false).unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");
    v21_restart::walk(&out).unwrap_or_else(|e| panic!("{e}"));
    let st = T.st("SIGNAL");
    let (at, _, sig) = *records(&out)
        .iter()
        .find(|r| r.1 == T.code("SIGNAL"))
        .unwrap();
    for (f, ns) in [
        ("it_real_value", 2_250_000_000u64),
        ("it_real_incr", 500_000_000),
        ("it_virt_value", 0),
        ("it_virt_incr", 0),
        ("it_prof_value", 999_999_000),
        ("it_prof_incr", 1_000_000_000),
    ] {
        assert_eq!(st.get(sig, f), ns, "{f}");
    }
    let (back, _) = conv(&out, Revision::Native1, false).unwrap();
    assert!(back == n1, "native-1 -> ckpt-v21 -> native-1 differs");
    assert!(encode(Revision::CkptV21, &events(&out)) == out);
    let task = |evs: &[Event<'static>]| {
        evs.iter()
            .find_map(|e| match e {
                Event::Task(t) => Some(t.clone()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(task(&events(&out)).records.itimers, Some(x));
    // A kernel's remaining real time: 1234567 ns.
    let mut k = out.clone();
    st.put(&mut k[at..at + st.size], "it_real_value", 1_234_567);
    let kevs = events(&k);
    assert_eq!(task(&kevs).records.itimers, None);
    assert!(kevs
        .iter()
        .any(|e| matches!(e, Event::Unknown(u) if u.type_code == T.code("SIGNAL"))));
    // Written back (the encoder numbers the objects it writes itself, so the bytes
    // may differ in objrefs): the same model, and a stream a v21 restart reads.
    let again = encode(Revision::CkptV21, &kevs);
    v21_restart::walk(&again).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events(&again), kevs);
}
