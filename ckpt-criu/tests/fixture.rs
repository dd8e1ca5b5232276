//! The committed real CRIU dump (fixtures/criu/tiny.pack, see its README): what the decoder
//! gives (values read with crit when the fixture was made), and that damaged copies of it are
//! refused with errors, never a panic or a hang.

use ckpt_criu::{CriuImage, Decoder};
use ckpt_format::{Event, EventSource, FileKind, VmaKind};

fn pack() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/criu/tiny.pack"
    ))
    .unwrap()
}

fn drain(img: &CriuImage) -> Result<(Vec<Event<'static>>, Vec<String>), String> {
    let mut d = Decoder::new(img).map_err(|e| e.to_string())?;
    let mut v = Vec::new();
    loop {
        match d.next_event() {
            Ok(Some(e)) => v.push(e.into_owned()),
            Ok(None) => return Ok((v, d.losses().to_vec())),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[test]
fn the_fixture_decodes_to_what_crit_shows() {
    let img = CriuImage::from_pack(&pack()).unwrap();
    let (evs, losses) = drain(&img).unwrap();
    assert!(losses.is_empty(), "{losses:?}");
    let tasks: Vec<_> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Task(t) = e {
                Some(t)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(tasks.len(), 1);
    assert_eq!((tasks[0].pid, tasks[0].ppid), (18790, 0));
    assert_eq!(tasks[0].comm, b"tiny");
    let th = evs
        .iter()
        .find_map(|e| {
            if let Event::Thread(t) = e {
                Some(t)
            } else {
                None
            }
        })
        .unwrap();
    // crit decode core-18790.img: ip, sp, orig_ax (pause = 34).
    assert_eq!(th.regs.rip, 4390046);
    assert_eq!(th.regs.rsp, 140721324117112);
    assert_eq!(th.regs.orig_rax, 34);
    assert_eq!(th.tls.len(), 3 * 16);
    let mm = evs
        .iter()
        .find_map(|e| if let Event::Mm(m) = e { Some(m) } else { None })
        .unwrap();
    assert_eq!(mm.exe.as_deref(), Some(&b"/tmp/tiny/tiny"[..]));
    // 6 pagemap runs, 15 pages, the static array's first bytes among them.
    let mut pages = 0;
    let mut marker = 0;
    for e in &evs {
        if let Event::Pages(p) = e {
            pages += p.addrs.len();
            for i in 0..p.addrs.len() {
                if p.page(i, 4096)
                    .unwrap()
                    .windows(17)
                    .any(|w| w == b"CKPT-CRIU-FIXTURE")
                {
                    marker += 1;
                }
            }
        }
    }
    assert_eq!(pages, 15);
    assert_eq!(marker, 1);
    let vvar = evs
        .iter()
        .filter(|e| matches!(e, Event::Vma(v) if v.kind == VmaKind::Vvar))
        .count();
    assert_eq!(vvar, 2, "CRIU's 6-page VVAR area as [vvar] + [vvar_vclock]");
    // The pipe with its 10 bytes, both ends.
    let pipe = evs
        .iter()
        .find_map(|e| {
            if let Event::Pipe(p) = e {
                Some(p)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(&pipe.data[..], b"pipe bytes");
    let ends = evs
        .iter()
        .filter(
            |e| matches!(e, Event::File(f) if f.kind == FileKind::Pipe && f.pipe == Some(pipe.id)),
        )
        .count();
    assert_eq!(ends, 2);
}

/// Files of a pack, in order.
fn files(b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let n = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
        let name = String::from_utf8(b[at + 2..at + 2 + n].to_vec()).unwrap();
        let l = u32::from_le_bytes(b[at + 2 + n..at + 6 + n].try_into().unwrap()) as usize;
        v.push((name, b[at + 6 + n..at + 6 + n + l].to_vec()));
        at += 6 + n + l;
    }
    v
}

fn repack(f: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, d) in f {
        out.extend_from_slice(&(n.len() as u16).to_le_bytes());
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(&(d.len() as u32).to_le_bytes());
        out.extend_from_slice(d);
    }
    out
}

#[test]
fn damaged_dumps_are_refused_with_the_file_named() {
    let orig = files(&pack());
    let mut refused = 0;
    for (i, (name, data)) in orig.iter().enumerate() {
        if name.starts_with("pages-") || name == "stats-dump" || name.starts_with("timens") {
            continue;
        }
        // Cut the file at every 7th byte, and flip every 5th byte.
        for cut in (0..data.len()).step_by(7) {
            let mut f = orig.clone();
            f[i].1.truncate(cut);
            let img = CriuImage::from_pack(&repack(&f));
            if let Err(e) = img.as_ref().map_err(|e| e.to_string()).and_then(drain) {
                assert!(
                    e.contains(name) || e.contains("inventory") || e.contains("pack"),
                    "{name} cut at {cut}: {e}"
                );
                refused += 1;
            }
        }
        for at in (0..data.len()).step_by(5) {
            let mut f = orig.clone();
            f[i].1[at] ^= 0xa5;
            if let Ok(img) = CriuImage::from_pack(&repack(&f)) {
                let _ = drain(&img);
            }
        }
    }
    assert!(refused > 100, "{refused} damaged dumps refused");
    // A missing file is named.
    let f: Vec<_> = orig
        .iter()
        .filter(|(n, _)| !n.starts_with("mm-"))
        .cloned()
        .collect();
    let e = drain(&CriuImage::from_pack(&repack(&f)).unwrap()).unwrap_err();
    assert!(e.contains("mm-18790.img"), "{e}");
}

/// Inputs the `criu` fuzz target once crashed on (fixtures/criu/fuzz/): each decodes to an
/// error naming the file at fault, not a panic.
#[test]
fn fuzz_findings_are_errors() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/criu/fuzz");
    // A pagemap whose run lengths add up beyond u64 (found by .ci/fuzz, 2026-12-03).
    let b = std::fs::read(format!("{dir}/pagemap-count-overflow.pack")).unwrap();
    let img = CriuImage::from_pack(&b).unwrap();
    let err = drain(&img).unwrap_err();
    assert!(err.contains("pagemap-"), "{err}");
    // A VMA whose end is below its start (found by a 10-minute fuzz run, 2026-12-03).
    let b = std::fs::read(format!("{dir}/vma-reversed.pack")).unwrap();
    let img = CriuImage::from_pack(&b).unwrap();
    let err = drain(&img).unwrap_err();
    assert!(err.contains("mm-") && err.contains("reversed"), "{err}");
}

/// Inputs the `criu` fuzz target (fuzz/fuzz_targets/criu.rs) once crashed on
/// (fixtures/criu/fuzz/, named by what they hold): read as a pack and as an
/// archive, each is an error or a dump, never a panic.
#[test]
fn inputs_the_fuzzer_crashed_on_are_errors() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/criu/fuzz");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let b = std::fs::read(&path).unwrap();
        if let Ok(img) = CriuImage::from_pack(&b) {
            let r = drain(&img);
            let _ = ckpt_criu::info::info(&img);
            assert!(r.is_err(), "{}: decoded", path.display());
        }
        if let Ok(img) = CriuImage::open_reader(&b[..], std::path::Path::new("fuzz.tar")) {
            let _ = drain(&img);
            let _ = ckpt_criu::info::info(&img);
        }
        n += 1;
    }
    assert!(n >= 3);
}

/// fixtures/criu/objects.pack (README): restore_criu.c's dump with the inet and netlink
/// entries of objects.rs written into it. Its live objects decode to the typed records
/// without a loss; damaged copies of the files holding them (cut at every 3rd byte, every
/// 3rd byte flipped) are errors naming the file or other dumps, never a panic.
#[test]
fn the_objects_fixture_decodes_and_damaged_copies_never_panic() {
    let b = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/criu/objects.pack"
    ))
    .unwrap();
    let img = CriuImage::from_pack(&b).unwrap();
    let (evs, losses) = drain(&img).unwrap();
    assert!(losses.is_empty(), "{losses:?}");
    let model: Vec<&ckpt_format::File> = evs
        .iter()
        .filter_map(|e| match e {
            Event::File(f) => Some(f),
            _ => None,
        })
        .collect();
    let has = |p: &dyn Fn(&ckpt_format::model::FileRecords) -> bool| {
        model.iter().filter(|f| p(&f.records)).count()
    };
    assert_eq!(has(&|r| r.eventfd.is_some_and(|e| e.count == 7)), 1);
    assert_eq!(has(&|r| r.timerfd.is_some()), 1);
    assert_eq!(has(&|r| r.signalfd.is_some_and(|s| s.mask == 1 << 11)), 1);
    assert_eq!(
        has(&|r| r.eventpoll.as_ref().is_some_and(|e| e.targets.len() == 2)),
        1
    );
    assert_eq!(has(&|r| r.inotify.is_some()), 1);
    assert_eq!(has(&|r| r.sock.queue.is_some()), 2);
    assert_eq!(
        has(&|r| r.sock.tcp.as_ref().is_some_and(|t| t.inq == b"abc")),
        1
    );
    assert_eq!(
        has(&|r| r.sock.netlink.as_ref().is_some_and(|n| n.groups == [1, 5])),
        1
    );
    assert_eq!(has(&|r| r.locks.is_some()), 1);

    let orig = files(&b);
    let mut refused = 0;
    for (i, (name, data)) in orig.iter().enumerate() {
        let live = name == "files.img"
            || name == "sk-queues.img"
            || name == "filelocks.img"
            || name.starts_with("tcp-stream-")
            || name.starts_with("fdinfo-");
        if !live {
            continue;
        }
        for at in (0..data.len()).step_by(3) {
            let mut f = orig.clone();
            f[i].1.truncate(at);
            if let Err(e) = CriuImage::from_pack(&repack(&f))
                .map_err(|e| e.to_string())
                .and_then(|img| drain(&img))
            {
                assert!(e.contains(name.as_str()), "{name} cut at {at}: {e}");
                refused += 1;
            }
            let mut f = orig.clone();
            f[i].1[at] ^= 0x5a;
            if let Ok(img) = CriuImage::from_pack(&repack(&f)) {
                let _ = drain(&img);
            }
        }
    }
    assert!(refused > 100, "{refused} cut copies refused");
}
