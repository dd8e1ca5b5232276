//! Event-loop files in ckpt-v21 (docs/V21-STREAM.md "Event-loop files, sockets, ttys"):
//! the model's eventfd is a FILE record of type CKPT_FILE_EVENTFD (7, 64 bytes, nothing
//! after it), its eventpoll an epoll FILE with EPOLL_ITEMS after the file table;
//! native-1 -> ckpt-v21 -> native-1 and back are byte-identical, the image walks in the
//! restart's order, and what v21 cannot say is named. The eventpoll test's image is the
//! fixture fixtures/images/ckpt-v21/ours-event-loop.img (regenerate with
//! `CKPT_BLESS=1 cargo test -p ckpt-format --test v21_event_loop`).

#[path = "common/v21_restart.rs"]
mod v21_restart;

use ckpt_format::convert::{convert_slice, ConvertOptions, TargetKernel};
use ckpt_format::layout::v21::TABLE as T;
use ckpt_format::model::{EpollTarget, Eventfd, Eventpoll};
use ckpt_format::*;
use std::path::Path;

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

fn native(evs: &[Event<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = encoder(Revision::Native1, &mut out);
    for ev in evs {
        enc.event(ev).unwrap();
    }
    enc.finish().unwrap();
    drop(enc);
    out
}

/// The C program's v21 image as native-1 events, with `extra` (File, Fd pairs)
/// after its last fd.
fn with_files(extra: Vec<Event<'static>>) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/ckpt-v21/c-pipe.img");
    let (n1, _) = conv(&std::fs::read(p).unwrap(), Revision::Native1, false).unwrap();
    let mut evs = events(&n1);
    let last_fd = evs.iter().rposition(|e| matches!(e, Event::Fd(_))).unwrap();
    evs.splice(last_fd + 1..last_fd + 1, extra);
    native(&evs)
}

fn eventfd(id: u32, fd: i32, path: &[u8], e: Eventfd, flags: u32) -> Vec<Event<'static>> {
    let mut f = File {
        id,
        kind: FileKind::Other,
        path: path.to_vec(),
        flags,
        mode: 0o600,
        pos: 0,
        pipe: None,
        records: Default::default(),
        extras: Extras::new(),
    };
    f.records.eventfd = Some(e);
    vec![
        Event::File(f),
        Event::Fd(Fd {
            fd,
            cloexec: true,
            file: id,
        }),
    ]
}

/// (offset, type code, whole record) of every v21 record.
fn records(b: &[u8]) -> Vec<(usize, u32, Vec<u8>)> {
    let mut v = Vec::new();
    let mut off = 0;
    while off + 8 <= b.len() {
        let ty = u32::from_le_bytes(b[off..off + 4].try_into().unwrap());
        let len = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
        v.push((off, ty, b[off..off + len].to_vec()));
        off += len;
    }
    v
}

#[test]
fn an_eventfd_is_a_file_eventfd_record_and_round_trips() {
    let e = Eventfd {
        count: 7,
        semaphore: true,
    };
    // O_RDWR | O_NONBLOCK, as eventfd(7, EFD_SEMAPHORE | EFD_NONBLOCK) leaves it.
    let n1 = with_files(eventfd(20, 9, b"anon_inode:[eventfd]", e, 0o4002));
    let (v21, items) = conv(&n1, Revision::CkptV21, false).unwrap();
    assert!(items.is_empty(), "{items:?}");

    // The record, byte for byte as ckpt_hdr_file_eventfd lays it out
    // (offsets from user-cr's header, checked in v21_user_cr.rs).
    let recs = records(&v21);
    let at = recs
        .iter()
        .position(|(_, ty, b)| *ty == T.code("FILE") && b.len() == 64)
        .expect("an eventfd FILE record");
    let mut want = vec![0u8; 64];
    want[0..4].copy_from_slice(&T.code("FILE").to_le_bytes());
    want[4..8].copy_from_slice(&64u32.to_le_bytes());
    want[8..12].copy_from_slice(&7u32.to_le_bytes()); // f_type CKPT_FILE_EVENTFD
    want[12..16].copy_from_slice(&0o600u32.to_le_bytes()); // f_mode
    want[16..20].copy_from_slice(&0o4002u32.to_le_bytes()); // f_flags
    want[48..56].copy_from_slice(&7u64.to_le_bytes()); // count
    want[56..60].copy_from_slice(&(1u32 | 0o4000).to_le_bytes()); // EFD_SEMAPHORE | EFD_NONBLOCK
    assert_eq!(recs[at].2, want);
    // Announced by its OBJREF, followed by the fd naming it (no FILE_NAME).
    assert_eq!(recs[at - 1].1, T.code("OBJREF"));
    assert_eq!(recs[at - 1].2[12..16], 20i32.to_le_bytes());
    assert_eq!(recs[at + 1].1, T.code("FILE_DESC"));
    assert_eq!(recs[at + 1].2[8..16], [20, 0, 0, 0, 9, 0, 0, 0]);

    v21_restart::walk(&v21).unwrap();
    // Both ways exact.
    let (back, _) = conv(&v21, Revision::Native1, false).unwrap();
    assert!(
        back == n1,
        "native-1 -> ckpt-v21 -> native-1 changed the image"
    );
    let (again, _) = conv(&back, Revision::CkptV21, false).unwrap();
    assert!(
        again == v21,
        "ckpt-v21 -> native-1 -> ckpt-v21 changed the image"
    );
    let file = events(&back)
        .into_iter()
        .find_map(|ev| match ev {
            Event::File(f) if f.id == 20 => Some(f),
            _ => None,
        })
        .unwrap();
    assert_eq!(file.records.eventfd, Some(e));
    assert_eq!(file.flags, 0o4002);
}

#[test]
fn what_a_v21_eventfd_cannot_say_is_named() {
    let big = Eventfd {
        count: 1 << 40,
        semaphore: false,
    };
    let mut extra = eventfd(20, 9, b"anon_inode:[eventfd]", big, 2);
    extra.extend(eventfd(
        21,
        10,
        b"/tmp/not-an-eventfd",
        Eventfd::default(),
        2,
    ));
    let n1 = with_files(extra);
    let e = conv(&n1, Revision::CkptV21, false).unwrap_err();
    let ErrorKind::Unrepresentable { items } = &e.kind else {
        panic!("{e}")
    };
    assert_eq!(items.len(), 2, "{items:#?}");
    assert!(items[0].contains("file 20: eventfd count 1099511627776 above 2^32-1"));
    assert!(items[1].contains("file 21: an eventfd of kind other with path `/tmp/not-an-eventfd`"));
    let (v21, dropped) = conv(&n1, Revision::CkptV21, true).unwrap();
    assert_eq!(&dropped, items);
    // The count is written as it is; the path is not.
    let back = events(&conv(&v21, Revision::Native1, false).unwrap().0);
    let files: Vec<_> = back
        .iter()
        .filter_map(|ev| match ev {
            Event::File(f) if f.id >= 20 => Some((f.path.clone(), f.records.eventfd)),
            _ => None,
        })
        .collect();
    assert_eq!(
        files,
        [
            (b"anon_inode:[eventfd]".to_vec(), Some(big)),
            (b"anon_inode:[eventfd]".to_vec(), Some(Eventfd::default())),
        ]
    );
}

#[test]
fn an_eventfd_with_other_flags_stays_records() {
    // A kernel's eventfd made with EFD_CLOEXEC keeps O_CLOEXEC in `flags`:
    // the model has no place for it, so the file object stays records.
    let n1 = with_files(eventfd(
        20,
        9,
        b"anon_inode:[eventfd]",
        Eventfd::default(),
        2,
    ));
    let (mut v21, _) = conv(&n1, Revision::CkptV21, false).unwrap();
    let (off, _, _) = records(&v21)
        .into_iter()
        .find(|(_, ty, b)| *ty == T.code("FILE") && b.len() == 64)
        .unwrap();
    v21[off + 56..off + 60].copy_from_slice(&0o2000000u32.to_le_bytes());
    // Not read as an eventfd: the file object stays records, and an fd naming a
    // file kept as records is refused, naming the objref.
    let mut src = open_slice(&v21).unwrap();
    let err = loop {
        match src.next_event() {
            Ok(Some(Event::File(f))) => assert!(f.records.eventfd.is_none()),
            Ok(Some(_)) => {}
            Ok(None) => panic!("read to its end"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err.kind, ErrorKind::ObjrefUndefined { id: 20 }),
        "{err}"
    );
}

fn eventpoll(id: u32, fd: i32, targets: Vec<EpollTarget>) -> Vec<Event<'static>> {
    let mut f = File {
        id,
        kind: FileKind::Other,
        path: b"anon_inode:[eventpoll]".to_vec(),
        flags: 2,
        mode: 0o600,
        pos: 0,
        pipe: None,
        records: Default::default(),
        extras: Extras::new(),
    };
    f.records.eventpoll = Some(Eventpoll { targets });
    vec![
        Event::File(f),
        Event::Fd(Fd {
            fd,
            cloexec: false,
            file: id,
        }),
    ]
}

#[test]
fn an_eventpoll_is_an_epoll_file_with_its_items_after_the_file_table() {
    // EPOLLET | EPOLLHUP | EPOLLERR | EPOLLIN on the eventfd (fd 9), EPOLLOUT on itself
    // registered under fd 12 (a dup of the eventfd: the same file object).
    let targets = vec![
        EpollTarget {
            fd: 9,
            events: 0x8000_0019,
            data: 0x1122_3344_5566_7788,
        },
        EpollTarget {
            fd: 12,
            events: 0x4,
            data: 12,
        },
    ];
    let mut extra = eventfd(20, 9, b"anon_inode:[eventfd]", Eventfd::default(), 2);
    extra.extend(eventpoll(21, 10, targets.clone()));
    extra.push(Event::Fd(Fd {
        fd: 12,
        cloexec: false,
        file: 20,
    }));
    let n1 = with_files(extra);
    let (v21, items) = conv(&n1, Revision::CkptV21, false).unwrap();
    assert!(items.is_empty(), "{items:?}");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/images/ckpt-v21/ours-event-loop.img");
    if std::env::var_os("CKPT_BLESS").is_some() {
        std::fs::write(&fixture, &v21).unwrap();
    }
    let bytes = std::fs::read(&fixture).expect("run with CKPT_BLESS=1");
    assert!(bytes == v21, "ours-event-loop.img differs (CKPT_BLESS=1)");

    let recs = records(&v21);
    // The epoll file: a plain ckpt_hdr_file of type CKPT_FILE_EPOLL, nothing after it.
    let at = recs
        .iter()
        .position(|(_, ty, b)| *ty == T.code("FILE") && b.len() == 48 && b[8] == 6)
        .expect("an epoll FILE record");
    let mut want = vec![0u8; 48];
    want[0..4].copy_from_slice(&T.code("FILE").to_le_bytes());
    want[4..8].copy_from_slice(&48u32.to_le_bytes());
    want[8..12].copy_from_slice(&6u32.to_le_bytes());
    want[12..16].copy_from_slice(&0o600u32.to_le_bytes());
    want[16..20].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(recs[at].2, want);
    assert_eq!(recs[at - 1].2[12..16], 21i32.to_le_bytes());
    assert_eq!(recs[at + 1].1, T.code("FILE_DESC"));
    // After the task's last FILE_DESC: EPOLL_ITEMS {21, 2}, then the items' BUFFER.
    let last_fd = recs
        .iter()
        .rposition(|(_, ty, _)| *ty == T.code("FILE_DESC"))
        .unwrap();
    let (_, ty, h) = &recs[last_fd + 1];
    assert_eq!(*ty, T.code("EPOLL_ITEMS"));
    assert_eq!(h[8..16], [21, 0, 0, 0, 2, 0, 0, 0]);
    let (_, ty, b) = &recs[last_fd + 2];
    assert_eq!(*ty, T.code("BUFFER"));
    let mut items = Vec::new();
    for (t, file) in [(&targets[0], 20u32), (&targets[1], 20)] {
        items.extend_from_slice(&t.data.to_le_bytes());
        items.extend_from_slice(&(t.fd as u32).to_le_bytes());
        items.extend_from_slice(&file.to_le_bytes());
        items.extend_from_slice(&t.events.to_le_bytes());
        items.extend_from_slice(&[0; 4]);
    }
    assert_eq!(b[8..], items[..]);
    assert_eq!(recs[last_fd + 3].1, T.code("TASK_OBJS"));

    v21_restart::walk(&v21).unwrap();
    let (back, _) = conv(&v21, Revision::Native1, false).unwrap();
    assert!(
        back == n1,
        "native-1 -> ckpt-v21 -> native-1 changed the image"
    );
    let (again, _) = conv(&back, Revision::CkptV21, false).unwrap();
    assert!(
        again == v21,
        "ckpt-v21 -> native-1 -> ckpt-v21 changed the image"
    );
    // A one-pass (stream) read gives the same targets.
    let mut src = open_reader(&v21[..]).unwrap();
    let mut seen = None;
    while let Some(ev) = src.next_event().unwrap() {
        if let Event::File(f) = ev {
            if f.id == 21 {
                seen = f.records.eventpoll.clone();
            }
        }
    }
    assert_eq!(seen, Some(Eventpoll { targets }));
}

#[test]
fn an_epoll_target_outside_the_task_is_named_and_bad_items_refused() {
    let t = |fd| EpollTarget {
        fd,
        events: 1,
        data: 0,
    };
    let mut extra = eventfd(20, 9, b"anon_inode:[eventfd]", Eventfd::default(), 2);
    extra.extend(eventpoll(21, 10, vec![t(9), t(42)]));
    let n1 = with_files(extra);
    let e = conv(&n1, Revision::CkptV21, false).unwrap_err();
    let ErrorKind::Unrepresentable { items } = &e.kind else {
        panic!("{e}")
    };
    assert_eq!(items.len(), 1, "{items:#?}");
    assert!(items[0].contains("eventpoll file 21: target fd 42 is not an fd of the task"));
    let (v21, dropped) = conv(&n1, Revision::CkptV21, true).unwrap();
    assert_eq!(&dropped, items);
    let back = events(&conv(&v21, Revision::Native1, false).unwrap().0);
    let ep = back
        .iter()
        .find_map(|ev| match ev {
            Event::File(f) if f.id == 21 => f.records.eventpoll.clone(),
            _ => None,
        })
        .unwrap();
    assert_eq!(ep.targets, [t(9)]);

    // An item naming another file than the task's fd holds is refused at its record.
    let recs = records(&v21);
    let (off, _, _) = recs
        .iter()
        .find(|(_, ty, _)| *ty == T.code("EPOLL_ITEMS"))
        .unwrap()
        .clone();
    let mut bad = v21.clone();
    // The item's file_objref (BUFFER header 8, then data 8, fd 4) names the epoll itself.
    let item = off + 16 + 8;
    bad[item + 12..item + 16].copy_from_slice(&21i32.to_le_bytes());
    let mut src = open_slice(&bad).unwrap();
    let err = loop {
        match src.next_event() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("read to its end"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.offset, off as u64, "{err}");
    assert!(
        err.to_string().contains("fd 9 naming file objref 21"),
        "{err}"
    );
}
