//! Every ckpt-v21 image the project writes, walked in the reading order of a
//! Linux-CR v21 restart (tests/common/v21_restart.rs) to its end: the C
//! program's image, every v21 fixture re-encoded, every native-1 and cr-v5
//! fixture converted. (The live capture converted to v21 is walked by
//! ckpt-restore's tests/restart.rs.) Also: images as ckpt wrote them before
//! the full stream still read, and the record kinds ckpt does not model are
//! recognised by name and kept.

#[path = "common/v21_restart.rs"]
mod v21_restart;

use ckpt_format::convert::{convert_slice, ConvertOptions, TargetKernel};
use ckpt_format::layout::v21::TABLE as T;
use ckpt_format::*;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The image fixtures/legacy/legacy.c writes (built once per test binary).
fn c_v21() -> Vec<u8> {
    static IMG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    IMG.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let bin = tmp.join("ckpt-legacy-restart-order");
        let st = Command::new("cc")
            .args(["-std=gnu11", "-O1", "-o"])
            .arg(&bin)
            .arg(root().join("fixtures/legacy/legacy.c"))
            .status()
            .unwrap();
        assert!(st.success());
        let out = tmp.join("restart-order-c.img");
        assert!(Command::new(&bin)
            .arg("v21")
            .arg(&out)
            .status()
            .unwrap()
            .success());
        std::fs::read(out).unwrap()
    })
    .clone()
}

fn events(b: &[u8]) -> Vec<Event<'static>> {
    let mut src = open_slice(b).unwrap();
    let mut v = Vec::new();
    while let Some(ev) = src.next_event().unwrap() {
        v.push(ev.into_owned());
    }
    v
}

fn encode(evs: &[Event<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = encoder(Revision::CkptV21, &mut out);
    for e in evs {
        enc.event(e).unwrap();
    }
    enc.finish().unwrap();
    drop(enc);
    out
}

fn to_v21(b: &[u8], lossy: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let o = ConvertOptions {
        to: Revision::CkptV21,
        lossy,
        target_kernel: TargetKernel::Keep,
    };
    convert_slice(b, &mut out, &o).unwrap();
    out
}

fn images(rev: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(root().join("fixtures/images").join(rev))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "img"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {rev} fixtures");
    v
}

fn tasks_of(evs: &[Event<'_>]) -> usize {
    // A v21 task per thread of a live task, one per zombie.
    let mut n = 0;
    let mut zombie = false;
    for e in evs {
        match e {
            Event::Task(t) => {
                zombie = t.exit_state != 0;
                if zombie {
                    n += 1;
                }
            }
            Event::Thread(_) if !zombie => n += 1,
            _ => {}
        }
    }
    n
}

#[test]
fn the_c_image_walks_to_its_end() {
    let c = c_v21();
    let w = v21_restart::walk(&c).unwrap();
    assert_eq!(w.tasks, 1);
    assert_eq!(w.errors, 0);
    // The restart's prefix as user-cr reads it.
    let names: Vec<&str> = w.records.iter().map(|r| r.1).collect();
    assert_eq!(
        names[..11],
        [
            "HEADER",
            "BUFFER",
            "BUFFER",
            "BUFFER",
            "HEADER_ARCH",
            "CONTAINER",
            "BUFFER",
            "LSM_INFO",
            "TREE",
            "BUFFER",
            "TASK"
        ]
    );
    // And it is what our encoder writes from its events.
    assert!(
        encode(&events(&c)) == c,
        "the encoder differs from the C image"
    );
}

#[test]
fn every_v21_fixture_reencoded_walks_to_its_end() {
    for (name, b) in images("ckpt-v21") {
        let evs = events(&b);
        let out = encode(&evs);
        let w = v21_restart::walk(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(w.tasks, tasks_of(&evs), "{name}");
        let errors = evs.iter().filter(|e| matches!(e, Event::Error(_))).count();
        assert_eq!(w.errors, errors, "{name}");
        // Written before or after the full stream, the model is the same.
        assert_eq!(events(&out), evs, "{name}");
    }
}

#[test]
fn every_native_and_cr_v5_fixture_converted_walks_to_its_end() {
    let mut n = 0;
    for rev in ["native-1", "cr-v5"] {
        for (name, b) in images(rev) {
            let v21 = to_v21(&b, true);
            let w = v21_restart::walk(&v21).unwrap_or_else(|e| panic!("{rev} {name}: {e}"));
            assert_eq!(w.tasks, tasks_of(&events(&v21)), "{rev} {name}");
            n += 1;
        }
    }
    assert!(n >= 5);
}

#[test]
fn images_before_the_full_stream_read_but_do_not_walk() {
    // fixtures/legacy/pre-20/*.img: the v21 fixtures as ckpt wrote them
    // before issue 20 (no container section, restart blocks, task
    // namespaces or SIGPENDING records, tty_termios_ncc 19).
    let dir = root().join("fixtures/legacy/pre-20");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let b = std::fs::read(&p).unwrap();
        n += 1;
        let e = v21_restart::walk(&b).unwrap_err();
        assert!(
            e.contains("where a v21 restart reads CONTAINER"),
            "{name}: {e}"
        );
        let evs = events(&b);
        assert!(matches!(&evs[0], Event::Header(h) if h.extras.u64("tty_termios_ncc") == Some(19)));
        // The current fixture of the same name decodes to the same model,
        // but for the old header constant; written again, it walks.
        let now = std::fs::read(root().join("fixtures/images/ckpt-v21").join(&name)).unwrap();
        let mut now = events(&now);
        if let Event::Header(h) = &mut now[0] {
            h.extras.set_u64("tty_termios_ncc", 19);
        }
        assert_eq!(evs, now, "{name}");
        v21_restart::walk(&encode(&evs)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(n, 2);
}

#[test]
fn a_record_out_of_the_restart_order_is_named_with_its_offset() {
    let c = c_v21();
    let at = |name: &str| -> usize {
        let w = v21_restart::walk(&c).unwrap();
        w.records.iter().find(|r| r.1 == name).unwrap().0
    };
    let len =
        |b: &[u8], off: usize| u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
    for (name, want, here) in [
        (
            "RESTART_BLOCK",
            "CPU where a v21 restart reads RESTART_BLOCK",
            true,
        ),
        // (the task's objects after it are still read: the error is at TASK_OBJS)
        (
            "TASK_NS",
            "TASK_OBJS where a v21 restart reads TASK_NS",
            false,
        ),
        (
            "CONTAINER",
            "BUFFER where a v21 restart reads CONTAINER",
            true,
        ),
        (
            "SIGPENDING",
            "SIGNAL_TASK where a v21 restart reads SIGPENDING",
            true,
        ),
    ] {
        let off = at(name);
        let mut b = c.clone();
        b.drain(off..off + len(&c, off));
        let e = v21_restart::walk(&b).unwrap_err();
        assert!(e.contains(want), "{name}: {e}");
        assert_eq!(e.starts_with(&format!("@{off:#x}:")), here, "{name}: {e}");
    }
    // An LSM_INFO longer than user-cr's restart reads.
    let off = at("LSM_INFO");
    let mut b = c.clone();
    let extra = [b'x'; 200];
    b.splice(
        off + len(&c, off)..off + len(&c, off),
        extra.iter().copied(),
    );
    let l = (len(&c, off) + 200) as u32;
    b[off + 4..off + 8].copy_from_slice(&l.to_le_bytes());
    assert!(v21_restart::walk(&b)
        .unwrap_err()
        .contains("LSM_INFO over 200"));
}

/// A record: header + payload.
fn rec(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = T.code(name).to_le_bytes().to_vec();
    v.extend_from_slice(&(8 + payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn objref(kind: &str, r: i32) -> Vec<u8> {
    let mut p = T.obj_code(kind).to_le_bytes().to_vec();
    p.extend_from_slice(&r.to_le_bytes());
    rec("OBJREF", &p)
}

/// A struct record of `name` with fields set (zero elsewhere).
fn st(name: &str, fields: &[(&str, u64)]) -> Vec<u8> {
    let s = T.st(name);
    let mut b = s.zeroed();
    for (f, v) in fields {
        assert!(s.field(f).is_some(), "{name}.{f}");
        s.put(&mut b, f, *v);
    }
    // The file variants are FILE records.
    let code = if name.starts_with("FILE") {
        "FILE"
    } else {
        name
    };
    rec(code, &b[8..])
}

#[test]
fn object_kinds_ckpt_does_not_model_are_named_and_kept() {
    // Hand-made records of the kinds the model has no event for yet (a tty,
    // an eventfd, an epoll set, unix and inet sockets), as shared objects of
    // the task, spliced in before its MM: named by the records layer, kept
    // as records by the decoder and written back byte for byte.
    let c = c_v21();
    let w = v21_restart::walk(&c).unwrap();
    let mm = w
        .records
        .iter()
        .position(|r| r.1 == "MM")
        .map(|i| w.records[i - 1].0)
        .unwrap();
    let mut objs = Vec::new();
    objs.extend(objref("TTY", 50));
    objs.extend(st(
        "TTY",
        &[
            ("driver_type", 4),
            ("index", 3),
            ("termios.c_lflag", 0x8a3b),
        ],
    ));
    objs.extend(st("TTY_LDISC", &[("column", 2)]));
    objs.extend(objref("FILE", 51));
    objs.extend(st(
        "FILE_TTY",
        &[
            ("f_type", ckpt_format::layout::v21::FILE_TTY as u64),
            ("tty_objref", 50),
        ],
    ));
    objs.extend(objref("FILE", 52));
    objs.extend(st(
        "FILE_EVENTFD",
        &[
            ("f_type", ckpt_format::layout::v21::FILE_EVENTFD as u64),
            ("count", 7),
            ("flags", 0x800),
        ],
    ));
    objs.extend(objref("SOCK", 53));
    objs.extend(st(
        "SOCKET",
        &[
            ("sock_common.family", 1),
            ("sock.type", 1),
            ("sock.state", 1),
        ],
    ));
    objs.extend(st("SOCKET_UNIX", &[("this", 53), ("laddr_len", 12)]));
    objs.extend(objref("SOCK", 54));
    objs.extend(st(
        "SOCKET",
        &[
            ("sock_common.family", 2),
            ("sock.type", 1),
            ("sock.protocol", 6),
        ],
    ));
    objs.extend(st("SOCKET_INET", &[("tcp.snd_nxt", 99), ("laddr_len", 16)]));
    objs.extend(objref("FILE", 55));
    objs.extend(st(
        "FILE",
        &[("f_type", ckpt_format::layout::v21::FILE_EPOLL as u64)],
    ));
    objs.extend(st(
        "EPOLL_ITEMS",
        &[("epfile_objref", 55), ("num_items", 1)],
    ));
    let item = T.st("EPOLL_ITEM");
    let mut it = item.zeroed();
    item.put(&mut it, "fd", 4);
    item.put(&mut it, "file_objref", 52);
    item.put(&mut it, "events", 1);
    objs.extend(rec("BUFFER", &it));
    let mut b = c.clone();
    b.splice(mm..mm, objs.iter().copied());

    let mut names = Vec::new();
    let mut rs = v21::open_records(&b);
    while let Some(r) = rs.next_record().unwrap() {
        names.push(r.name);
    }
    for n in [
        "TTY",
        "TTY_LDISC",
        "SOCKET",
        "SOCKET_UNIX",
        "SOCKET_INET",
        "EPOLL_ITEMS",
    ] {
        assert!(names.contains(&n), "{n} not named");
    }
    let evs = events(&b);
    let kept = evs
        .iter()
        .filter(|e| matches!(e, Event::Unknown(_)))
        .count();
    assert_eq!(kept, 17, "every spliced record is kept");
    assert!(encode(&evs) == b, "kept records are written back in place");
}

#[test]
fn images_of_issue_20_read_to_the_same_model_but_do_not_walk() {
    // fixtures/legacy/issue-20/*.img: the v21 fixtures as ckpt wrote them
    // before the order was checked against the kernel patches (LSM name
    // "none", the signal object announced by an OBJREF before TASK_OBJS, a
    // thread's SIGNAL_TASK before its SIGPENDING). A v21 restart has no
    // restore method for a SIGNAL objref and reads SIGPENDING first.
    let dir = root().join("fixtures/legacy/issue-20");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let b = std::fs::read(&p).unwrap();
        n += 1;
        let e = v21_restart::walk(&b).unwrap_err();
        assert!(
            e.contains("an OBJREF announcing a SIGNAL object")
                || e.contains("SIGNAL_TASK where a v21 restart reads SIGPENDING"),
            "{name}: {e}"
        );
        let now = std::fs::read(root().join("fixtures/images/ckpt-v21").join(&name)).unwrap();
        assert_eq!(events(&b), events(&now), "{name}");
        // Written again: the kernel's order, byte for byte today's fixture.
        let again = encode(&events(&b));
        assert_eq!(again, now, "{name}");
        v21_restart::walk(&again).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(n, 2);
}

/// A restart block other than "none" (a thread checkpointed inside nanosleep, poll or a
/// futex wait, which the v21 kernel restarts from saved arguments) has no place in the
/// model: the image is refused at that record, naming the block's type and arguments.
#[test]
fn a_restart_block_other_than_none_is_refused_by_name() {
    let c = c_v21();
    let mut at = 0;
    let mut found = None;
    while at + 8 <= c.len() {
        let code = u32::from_le_bytes(c[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(c[at + 4..at + 8].try_into().unwrap()) as usize;
        if code == T.code("RESTART_BLOCK") {
            found = Some(at);
            break;
        }
        at += len;
    }
    let at = found.unwrap();
    let st = T.st("RESTART_BLOCK");
    for (ty, name) in [
        (7u64, "CKPT_RESTART_BLOCK_FUTEX (7)"),
        (2, "CKPT_RESTART_BLOCK_HRTIMER_NANOSLEEP (2)"),
        (99, "of an unknown type (99)"),
    ] {
        let mut b = c.clone();
        st.put(&mut b[at..at + st.size], "function_type", ty);
        st.put(&mut b[at..at + st.size], "arg_0", 0x1234);
        let mut src = open_slice(&b).unwrap();
        let err = loop {
            match src.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("decoded"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.offset, at as u64, "{err}");
        let m = err.to_string();
        assert!(
            m.contains(&format!(
                "restart block {name} with arguments [4660, 0, 0, 0, 0]"
            )) && m.contains("thread 300")
                && m.contains("CKPT_RESTART_BLOCK_NONE (1)"),
            "{m}"
        );
    }
}
