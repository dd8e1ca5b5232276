//! ckpt-v21's canonical object numbering and order (docs/CONVERT.md "Object
//! numbering and order"): what a model can hold that ckpt's v21 encoder cannot
//! give back is refused item by item (converted and reported when lossy);
//! what a v21 image numbers or orders its own way decodes to the canonical
//! model, so native-1 → ckpt-v21 → native-1 stays byte-identical.

use ckpt_format::convert::{convert_slice, ConvertOptions, ConvertReport, TargetKernel};
use ckpt_format::layout::v21::TABLE as T;
use ckpt_format::*;
use std::borrow::Cow;

fn opts(to: Revision, lossy: bool) -> ConvertOptions {
    ConvertOptions {
        to,
        lossy,
        target_kernel: TargetKernel::Keep,
    }
}

fn conv(b: &[u8], to: Revision, lossy: bool) -> Result<(Vec<u8>, ConvertReport)> {
    let mut out = Vec::new();
    let r = convert_slice(b, &mut out, &opts(to, lossy))?;
    Ok((out, r))
}

fn native(events: &[Event<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = encoder(Revision::Native1, &mut out);
        for ev in events {
            enc.event(ev).unwrap();
        }
        enc.finish().unwrap();
    }
    out
}

fn decode(bytes: &[u8]) -> Result<Vec<Event<'static>>> {
    let mut src = open_slice(bytes)?;
    let mut v = Vec::new();
    while let Some(ev) = src.next_event()? {
        v.push(ev.into_owned());
    }
    Ok(v)
}

/// The refusal items of a strict conversion of `n1` to ckpt-v21.
fn refused(n1: &[u8]) -> Vec<String> {
    let e = conv(n1, Revision::CkptV21, false).unwrap_err();
    match e.kind {
        ErrorKind::Unrepresentable { items } => items,
        _ => panic!("not a refusal: {e}"),
    }
}

/// native-1 → ckpt-v21 → native-1, strict; returns the v21 bytes.
fn round_trip(n1: &[u8]) -> Vec<u8> {
    let (v21, _) = conv(n1, Revision::CkptV21, false).unwrap();
    let (back, _) = conv(&v21, Revision::Native1, false).unwrap();
    assert_eq!(
        back, n1,
        "native-1 -> ckpt-v21 -> native-1 changed the image"
    );
    v21
}

/// (offset, type code, length) of every record of a v21 image.
fn records(b: &[u8]) -> Vec<(usize, u32, usize)> {
    let mut v = Vec::new();
    let mut at = 0;
    while at + 8 <= b.len() {
        let ty = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        v.push((at, ty, len));
        at += len;
    }
    v
}

/// Offset of the `nth` record named `name`.
fn rec(b: &[u8], name: &str, nth: usize) -> usize {
    records(b)
        .into_iter()
        .filter(|r| r.1 == T.code(name))
        .nth(nth)
        .unwrap_or_else(|| panic!("no {name} #{nth}"))
        .0
}

/// Offset of the OBJREF record defining an object of type `obj`.
fn objref_of(b: &[u8], obj: &str) -> usize {
    records(b)
        .into_iter()
        .find(|r| {
            r.1 == T.code("OBJREF")
                && u32::from_le_bytes(b[r.0 + 8..r.0 + 12].try_into().unwrap()) == T.obj_code(obj)
        })
        .unwrap_or_else(|| panic!("no OBJREF of a {obj}"))
        .0
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn field(name: &str, f: &str) -> usize {
    T.st(name)
        .fields
        .iter()
        .find(|x| x.name == f)
        .unwrap()
        .offset
}

fn header() -> Event<'static> {
    Event::Header(Header {
        flags: 1,
        ..Header::new(
            Revision::CkptV21,
            Arch::X86_64,
            Kernel::from_uname(b"2.6.33-ckpt", b"#1 SMP", b"x86_64"),
            1_272_000_000,
        )
    })
}

fn task(pid: i32) -> Event<'static> {
    Event::Task(Task {
        pid,
        tgid: pid,
        ppid: 1,
        pgid: pid,
        sid: pid,
        comm: b"canon".to_vec(),
        state: 1,
        exit_signal: 17,
        ..Task::default()
    })
}

fn thread(tid: i32) -> Event<'static> {
    Event::Thread(Thread {
        tid,
        regs: Regs {
            rip: 0x401000 + tid as u64,
            cs: 0x33,
            ss: 0x2b,
            eflags: 0x246,
            ..Regs::default()
        },
        tls: ckpt_format::layout::derive::empty_tls(),
        ..Thread::default()
    })
}

fn mm() -> Event<'static> {
    Event::Mm(Mm {
        start_code: 0x400000,
        end_code: 0x401000,
        ..Mm::default()
    })
}

fn anon_vma(start: u64) -> [Event<'static>; 2] {
    [
        Event::Vma(Vma {
            start,
            end: start + 0x1000,
            prot: 3,
            flags: 0x73,
            pgoff: 0,
            kind: VmaKind::Anon,
            file: None,
            records: Default::default(),
            extras: Extras::new(),
        }),
        Event::VmaEnd,
    ]
}

fn file(id: u32, path: &[u8]) -> Event<'static> {
    Event::File(File {
        id,
        kind: FileKind::Regular,
        path: path.to_vec(),
        flags: 2,
        mode: 0o100644,
        pos: 0,
        pipe: None,
        records: Default::default(),
        extras: Extras::new(),
    })
}

fn pipe_end(id: u32, pipe: u32, flags: u32) -> Event<'static> {
    Event::File(File {
        id,
        kind: FileKind::Pipe,
        path: Vec::new(),
        flags,
        mode: 0o10600,
        pos: 0,
        pipe: Some(pipe),
        records: Default::default(),
        extras: Extras::new(),
    })
}

fn pipe(id: u32, data: &[u8]) -> Event<'static> {
    Event::Pipe(Pipe {
        id,
        data: Cow::Owned(data.to_vec()),
    })
}

fn fd(fd: i32, file: u32) -> Event<'static> {
    Event::Fd(Fd {
        fd,
        cloexec: false,
        file,
    })
}

fn v21(code: &str, payload: Vec<u8>) -> Event<'static> {
    Event::Unknown(Unknown {
        revision: Revision::CkptV21,
        type_code: T.code(code),
        parent: 0,
        payload: Cow::Owned(payload),
    })
}

/// An OBJREF record of an object the model does not decode, as a decoder keeps it.
fn kept_objref(obj: &str, r: i32) -> Event<'static> {
    let mut p = T.obj_code(obj).to_le_bytes().to_vec();
    p.extend_from_slice(&r.to_le_bytes());
    v21("OBJREF", p)
}

/// A TASK_OBJS record kept from a source: 0 = the task's own object.
fn kept_task_objs(refs: [i32; 5]) -> Event<'static> {
    let mut p: Vec<u8> = refs.iter().flat_map(|r| r.to_le_bytes()).collect();
    p.extend_from_slice(&[0; 4]);
    v21("TASK_OBJS", p)
}

/// A task whose signal object is kept as records (a SIGNAL with itimers, as
/// the decoder keeps one), with `kept` as its objref, and whose TASK_OBJS
/// therefore travels as a record naming it.
fn kept_signal_model(kept: i32, threads: &[i32]) -> Vec<Event<'static>> {
    let mut ev = vec![header(), task(100), thread(100)];
    ev.extend(threads.iter().map(|&t| thread(t)));
    ev.push(mm());
    ev.extend(anon_vma(0x10000));
    ev.extend([
        kept_objref("SIGNAL", kept),
        // Not the size of a plain SIGNAL record: kept whole.
        v21("SIGNAL", vec![7; 24]),
        file(3, b"/dev/null"),
        fd(0, 3),
        kept_task_objs([0, 0, 0, 0, kept]),
        Event::Tail,
    ]);
    ev
}

#[test]
fn task_objs_naming_a_kept_object_round_trips_and_kept_numbers_are_not_reused() {
    // Objref 1 is the kept signal's: the encoder numbers its own objects around it.
    let n1 = native(&kept_signal_model(1, &[]));
    let v21 = round_trip(&n1);
    let mut refs: Vec<i32> = records(&v21)
        .into_iter()
        .filter(|r| r.1 == T.code("OBJREF"))
        .map(|r| i32::from_le_bytes(v21[r.0 + 12..r.0 + 16].try_into().unwrap()))
        .collect();
    let n = refs.len();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), n, "an objref defined twice: {refs:?}");
    let objs = rec(&v21, "TASK_OBJS", 0);
    let signal = i32::from_le_bytes(
        v21[objs + field("TASK_OBJS", "signal_objref")..][..4]
            .try_into()
            .unwrap(),
    );
    assert_eq!(signal, 1);
    // Threads repeat their leader's TASK_OBJS, kept fields included.
    let n1 = native(&kept_signal_model(1, &[101, 102]));
    let v21 = round_trip(&n1);
    let leader = rec(&v21, "TASK_OBJS", 0);
    for k in 1..3 {
        let t = rec(&v21, "TASK_OBJS", k);
        assert_eq!(v21[t..t + 32], v21[leader..leader + 32]);
    }
}

#[test]
fn another_numbering_of_a_v21_image_decodes_to_the_same_model() {
    let n1 = native(&kept_signal_model(40, &[]));
    let canonical = round_trip(&n1);
    // The same image with the file table numbered 90 (OBJREF and TASK_OBJS):
    // only the numbering differs, so the model is the same...
    let mut other = canonical.clone();
    let table = objref_of(&other, "FILE_TABLE");
    put32(&mut other, table + 12, 90);
    let objs = rec(&other, "TASK_OBJS", 0);
    put32(&mut other, objs + field("TASK_OBJS", "files_objref"), 90);
    assert_ne!(other, canonical);
    let (from_other, _) = conv(&other, Revision::Native1, false).unwrap();
    assert_eq!(from_other, n1);
    // ...and it comes back in the canonical numbering.
    let (again, _) = conv(&from_other, Revision::CkptV21, false).unwrap();
    assert_eq!(again, canonical);
}

#[test]
fn v21_task_objs_naming_what_it_cannot_is_an_error_at_its_record() {
    let good = round_trip(&native(&kept_signal_model(40, &[])));
    let objs = rec(&good, "TASK_OBJS", 0);
    let signal = objs + field("TASK_OBJS", "signal_objref");
    let err = |b: &[u8]| {
        let e = decode(b).unwrap_err();
        assert_eq!(e.offset, objs as u64, "{e}");
        e
    };
    // An objref no record defined.
    let mut b = good.clone();
    put32(&mut b, signal, 77);
    assert!(matches!(
        err(&b).kind,
        ErrorKind::ObjrefUndefined { id: 77 }
    ));
    // The objref of a file, not of a signal object.
    let mut b = good.clone();
    put32(&mut b, signal, 3);
    let e = err(&b);
    assert!(
        matches!(&e.kind, ErrorKind::Invalid { found, .. } if found.contains("an object of type FILE")),
        "{e}"
    );
    // fs_objref 0 although the task defines... nothing: fine; but naming the
    // kept signal object as the fs is the wrong kind.
    let mut b = good.clone();
    put32(&mut b, objs + field("TASK_OBJS", "fs_objref"), 40);
    let e = err(&b);
    assert!(
        matches!(&e.kind, ErrorKind::Invalid { expected, .. } if expected.contains("type FS")),
        "{e}"
    );
    // An objref defined twice (the kept object takes file 3's number).
    let mut b = good.clone();
    let kept = objref_of(&b, "SIGNAL");
    put32(&mut b, kept + 12, 3);
    let e = decode(&b).unwrap_err();
    let first = objref_of(&good, "FILE") as u64;
    assert!(
        matches!(e.kind, ErrorKind::ObjrefRedefined { id: 3, first: f } if f == first || f == kept as u64),
        "{e}"
    );
}

#[test]
fn task_objs_the_encoder_cannot_write_back_is_refused_item_by_item() {
    let mut ev = kept_signal_model(40, &[]);
    let at = ev
        .iter()
        .position(|e| matches!(e, Event::Unknown(u) if u.type_code == T.code("TASK_OBJS")))
        .unwrap();
    // files_objref names a number of the source; sighand names nothing kept.
    ev[at] = kept_task_objs([9, 0, 0, 55, 40]);
    // And an error record after it: TASK_OBJS is written after the task's objects.
    ev.insert(at + 1, Event::Error(b"late".to_vec()));
    let n1 = native(&ev);
    let items = refused(&n1);
    assert_eq!(items.len(), 3, "{items:#?}");
    assert!(
        items[0].contains("error after the task's TASK_OBJS"),
        "{items:#?}"
    );
    assert!(items[1].contains("`files_objref` = 9"), "{items:#?}");
    assert!(
        items[2].contains("`sighand_objref` = 55") && items[2].contains("no SIGHAND object"),
        "{items:#?}"
    );
    assert!(items.iter().all(|i| i.starts_with("task 100 (canon): ")));
    // Lossy writes the canonical form and reports the same items.
    let (v21, report) = conv(&n1, Revision::CkptV21, true).unwrap();
    assert_eq!(report.dropped, items);
    let back = decode(&v21).unwrap();
    assert!(back.iter().any(|e| *e == kept_task_objs([0, 0, 0, 0, 40])));
}

#[test]
fn a_pipe_apart_from_its_first_end_is_refused_and_reordered_when_lossy() {
    let ev = vec![
        header(),
        task(100),
        thread(100),
        pipe(4, b"hello"),
        file(7, b"/etc/motd"),
        fd(0, 7),
        pipe_end(3, 4, 0),
        fd(1, 3),
        Event::Tail,
    ];
    let n1 = native(&ev);
    let items = refused(&n1);
    assert_eq!(items.len(), 1, "{items:#?}");
    assert!(
        items[0].contains("pipe 4: followed by file rather than its first pipe end"),
        "{items:#?}"
    );
    let (v21, report) = conv(&n1, Revision::CkptV21, true).unwrap();
    assert_eq!(report.dropped, items);
    // The buffer went with the first end: the Pipe comes back right before it.
    let back = decode(&v21).unwrap();
    let want = [
        file(7, b"/etc/motd"),
        fd(0, 7),
        pipe(4, b"hello"),
        pipe_end(3, 4, 0),
        fd(1, 3),
    ];
    assert_eq!(back[3..8], want);
    // In that order the image round-trips.
    let mut canon = ev[..3].to_vec();
    canon.extend(want);
    canon.push(Event::Tail);
    round_trip(&native(&canon));
}

#[test]
fn a_v21_pipe_end_outside_the_file_table_brings_its_pipe_with_it() {
    let ev = vec![
        header(),
        task(100),
        thread(100),
        pipe(4, b"hello"),
        pipe_end(3, 4, 0),
        fd(0, 3),
        pipe_end(5, 4, 1),
        fd(1, 5),
        Event::Tail,
    ];
    let n1 = native(&ev);
    let img = round_trip(&n1);
    // Move the first end (OBJREF FILE PIPE_BUF) before the file table, with an
    // unknown record between them, as the fuzz input did.
    let file3 = objref_of(&img, "FILE");
    let buf = rec(&img, "PIPE_BUF", 0);
    let end = buf + records(&img).iter().find(|r| r.0 == buf).unwrap().2;
    let table = objref_of(&img, "FILE_TABLE");
    assert!(table < file3);
    let mut b = img[..table].to_vec();
    b.extend_from_slice(&img[file3..end]);
    b.extend_from_slice(&[3, 0, 0, 0, 12, 0, 0, 0, 1, 2, 3, 4]); // CONTAINER
    b.extend_from_slice(&img[table..file3]);
    b.extend_from_slice(&img[end..]);
    let events = decode(&b).unwrap();
    let mut want = ev.clone();
    want.insert(3, v21("CONTAINER", vec![1, 2, 3, 4]));
    assert_eq!(events[1..], want[1..]);
    // That model is canonical: native-1 -> ckpt-v21 -> native-1 is exact.
    let (n1b, _) = conv(&b, Revision::Native1, false).unwrap();
    round_trip(&n1b);
}

#[test]
fn threads_out_of_the_canonical_order_are_refused() {
    // A thread after the task's mm.
    let mut ev = vec![header(), task(100), thread(100), mm(), thread(101)];
    ev.extend(anon_vma(0x10000));
    ev.push(Event::Tail);
    let n1 = native(&ev);
    let items = refused(&n1);
    assert_eq!(items.len(), 1, "{items:#?}");
    assert!(items[0].contains("thread 101 after other events of its task"));
    let (v21, report) = conv(&n1, Revision::CkptV21, true).unwrap();
    assert_eq!(report.dropped, items);
    let back = decode(&v21).unwrap();
    assert_eq!(back[2..4], [thread(100), thread(101)]);
    // Another thread before the task's own.
    let ev = vec![header(), task(100), thread(101), thread(100), Event::Tail];
    let n1 = native(&ev);
    let items = refused(&n1);
    assert_eq!(items.len(), 1, "{items:#?}");
    assert!(items[0].contains("thread 101 before the task's own thread 100"));
    let (v21, _) = conv(&n1, Revision::CkptV21, true).unwrap();
    let back = decode(&v21).unwrap();
    assert_eq!(back[2..4], [thread(100), thread(101)]);
    // The canonical order round-trips.
    round_trip(&native(&[
        header(),
        task(100),
        thread(100),
        thread(101),
        Event::Tail,
    ]));
}

#[test]
fn records_between_an_mm_and_its_vmas_stay_there() {
    // A v21 image may hold a file table, fds and unknown records between an
    // mm and its VMAs; the encoder writes them there.
    let mut ev = vec![
        header(),
        task(100),
        thread(100),
        mm(),
        v21("CONTAINER", vec![9; 4]),
        file(3, b"/dev/null"),
        fd(0, 3),
    ];
    ev.extend(anon_vma(0x10000));
    ev.extend(anon_vma(0x20000));
    ev.push(Event::Error(b"after".to_vec()));
    ev.push(Event::Tail);
    round_trip(&native(&ev));
}

#[test]
fn a_signal_task_record_of_a_one_pass_decode_is_refused() {
    let ev = vec![
        header(),
        task(100),
        thread(100),
        v21("SIGNAL_TASK", vec![0; T.st("SIGNAL_TASK").size - 8]),
        Event::Tail,
    ];
    let items = refused(&native(&ev));
    assert_eq!(items.len(), 1, "{items:#?}");
    assert!(items[0].contains("SIGNAL_TASK record kept from a one-pass decode"));
    // A SIGPENDING record of its own (not the leader's) stays where it is.
    let mut ev = ev;
    ev[3] = v21("SIGPENDING", vec![0; T.st("SIGPENDING").size - 8]);
    round_trip(&native(&ev));
}

#[test]
fn a_zombie_with_memory_is_refused() {
    let ev = vec![
        header(),
        Event::Task(Task {
            exit_state: 16,
            ..match task(100) {
                Event::Task(t) => t,
                _ => unreachable!(),
            }
        }),
        mm(),
        Event::Tail,
    ];
    let items = refused(&native(&ev));
    assert_eq!(items.len(), 1, "{items:#?}");
    assert!(
        items[0].contains("zombie task 100 with memory"),
        "{items:#?}"
    );
}

#[test]
fn a_pipe_of_no_task_is_refused() {
    // What the decoder gives for a pipe end defined before any task and used by no fd.
    let ev = vec![header(), pipe(4, b"lost"), Event::Tail];
    let items = refused(&native(&ev));
    assert_eq!(
        items,
        ["pipe 4 referred to by no file: its data is dropped"],
        "{items:#?}"
    );
}
