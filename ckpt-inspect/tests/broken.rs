//! Broken images: each gives exit 1 and a message naming the right byte
//! offset; nothing panics, also over every truncation of a fixture.

mod common;

use ckpt_format::build::ImageBuilder;
use ckpt_format::native::{record_crc, RecordHeader};
use ckpt_inspect::source::{records_slice, Image};
use ckpt_inspect::{records, summary, verify};
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use zerocopy::FromBytes;

/// (offset, type name, len) of every record of a valid native-1 image.
fn layout(b: &[u8]) -> Vec<(u64, &'static str, u64)> {
    let (mut src, _) = records_slice(b).unwrap();
    let mut v = Vec::new();
    while let Some(r) = src.next_record().unwrap() {
        v.push((r.offset, r.name, r.len));
    }
    v
}

fn find(b: &[u8], name: &str, nth: usize) -> (u64, u64) {
    let l = layout(b);
    let r = l.iter().filter(|r| r.1 == name).nth(nth).unwrap();
    (r.0, r.2)
}

/// Recompute the header CRC of the record at `off` after an edit.
fn fix_crc(b: &mut [u8], off: u64) {
    let o = off as usize;
    let h = RecordHeader::read_from_bytes(&b[o..o + 24]).unwrap();
    let len = (h.len.get() as usize).max(24);
    let end = (o + len).min(b.len());
    let crc = record_crc(&h, &b[o + 24..end]);
    b[o + 16..o + 20].copy_from_slice(&crc.to_le_bytes());
}

fn put32(b: &mut [u8], at: u64, v: u32) {
    b[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
}
fn get32(b: &[u8], at: u64) -> u32 {
    u32::from_le_bytes(b[at as usize..at as usize + 4].try_into().unwrap())
}

/// Run `cmd` on `bytes` through a file and a pipe; both must exit `code`
/// and name `offset` on stderr. Returns the file run's stderr.
fn expect(cmd: &str, bytes: &[u8], code: i32, offset: u64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.img");
    std::fs::write(&p, bytes).unwrap();
    let o = Command::new(bin()).arg(cmd).arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{cmd}: {err}");
    let want = format!("at byte {offset} ({offset:#x})");
    assert!(err.contains(&want), "{cmd}: expected {want:?} in {err:?}");
    // The same from a pipe.
    let mut child = Command::new(bin())
        .arg(cmd)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let t = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let po = child.wait_with_output().unwrap();
    t.join().unwrap();
    let perr = String::from_utf8_lossy(&po.stderr).into_owned();
    assert_eq!(po.status.code(), Some(code), "{cmd} (pipe): {perr}");
    assert!(
        perr.contains(&want),
        "{cmd} (pipe): expected {want:?} in {perr:?}"
    );
    err
}

fn example() -> Vec<u8> {
    ImageBuilder::example().to_native_bytes().unwrap()
}

#[test]
fn truncated_at_several_places() {
    let b = example();
    let (pages, plen) = find(&b, "PAGES", 0);
    let (tail, _) = find(&b, "TAIL", 0);
    // Inside the preamble: the image is not even recognisable.
    let e = expect("verify", &b[..8], 1, 0);
    assert!(e.contains("unrecognised") || e.contains("truncated"), "{e}");
    // Inside the HEADER record's header.
    let e = expect("verify", &b[..16 + 10], 1, 16);
    assert!(e.contains("truncated"), "{e}");
    // Inside a PAGES record's page data: named at the record.
    let e = expect("verify", &b[..(pages + plen / 2) as usize], 1, pages);
    assert!(e.contains("record PAGES") && e.contains("truncated"), "{e}");
    expect("show", &b[..(pages + plen / 2) as usize], 1, pages);
    expect("records", &b[..(pages + plen / 2) as usize], 1, pages);
    // Exactly before the TAIL: the stream ends early, at that offset.
    let e = expect("verify", &b[..tail as usize], 1, tail);
    assert!(e.contains("expected a TAIL record"), "{e}");
}

#[test]
fn length_changed() {
    let mut b = example();
    let (vma, len) = find(&b, "VMA", 1);
    // One more payload byte claimed, CRC made consistent: the payload parse
    // of that VMA finds the extra byte.
    put32(&mut b, vma + 4, len as u32 + 8);
    fix_crc(&mut b, vma);
    let e = expect("verify", &b, 1, vma + len);
    assert!(
        e.contains("record VMA") && e.contains("found 88, expected 80"),
        "{e}"
    );
    // A length below the header size.
    let mut b = example();
    put32(&mut b, vma + 4, 8);
    fix_crc(&mut b, vma);
    let e = expect("records", &b, 1, vma);
    assert!(
        e.contains("bad length: found 8, expected at least 24"),
        "{e}"
    );
}

#[test]
fn count_changed() {
    // The TAIL's record count.
    let mut b = example();
    let (tail, _) = find(&b, "TAIL", 0);
    let n = get32(&b, tail + 24);
    put32(&mut b, tail + 24, n + 1);
    fix_crc(&mut b, tail);
    let e = expect("verify", &b, 1, tail + 24);
    assert!(
        e.contains("record TAIL") && e.contains("record count"),
        "{e}"
    );
    // A PAGES record's run count.
    let mut b = example();
    let (pages, _) = find(&b, "PAGES", 0);
    let runs = get32(&b, pages + 24 + 4);
    put32(&mut b, pages + 24 + 4, runs + 1);
    fix_crc(&mut b, pages);
    let e = expect("verify", &b, 1, pages + 24 + 4);
    assert!(
        e.contains("record PAGES") && e.contains("bad run count"),
        "{e}"
    );
}

#[test]
fn checksum_off() {
    // A flipped bit in page contents: verify finds it (the PAGES data CRC
    // at payload byte 8); show never reads page contents and succeeds.
    let mut b = example();
    let (pages, plen) = find(&b, "PAGES", 1);
    b[(pages + plen - 100) as usize] ^= 1;
    let e = expect("verify", &b, 1, pages + 24 + 8);
    assert!(
        e.contains("record PAGES") && e.contains("bad checksum"),
        "{e}"
    );
    let (_, err) = summary::summarise(&mut Image::Bytes(b.clone()));
    assert_eq!(err, None);
    // A record header CRC off: every command finds it (header CRC at +16).
    let mut b = example();
    let (th, _) = find(&b, "THREAD", 1);
    b[(th + 40) as usize] ^= 0x80;
    for cmd in ["verify", "show", "records"] {
        let e = expect(cmd, &b, 1, th + 16);
        assert!(
            e.contains("record THREAD") && e.contains("bad checksum"),
            "{e}"
        );
    }
}

#[test]
fn objref_used_before_definition() {
    let mut b = example();
    let (fd, _) = find(&b, "FD", 0);
    // FD payload: i32 fd, u32 flags, u32 file, u32 reserved.
    assert_eq!(get32(&b, fd + 24 + 8), 1);
    put32(&mut b, fd + 24 + 8, 9);
    fix_crc(&mut b, fd);
    for cmd in ["verify", "show"] {
        let e = expect(cmd, &b, 1, fd);
        assert!(
            e.contains("record FD") && e.contains("objref 9 used before definition"),
            "{e}"
        );
    }
}

fn all_commands(img_bytes: &[u8]) -> Vec<bool> {
    let mut oks = Vec::new();
    for stream in [false, true] {
        let mk = || {
            if stream {
                Image::Stream(Box::new(std::io::Cursor::new(img_bytes.to_vec())))
            } else {
                Image::Bytes(img_bytes.to_vec())
            }
        };
        let (_, e1) = summary::summarise(&mut mk());
        let (_, e2) = verify::verify(&mut mk());
        let mut sink = Vec::new();
        let r3 = records::records(&mut mk(), false, &mut sink);
        oks.extend([e1.is_none(), e2.is_none(), r3.is_ok()]);
    }
    oks
}

#[test]
fn every_truncation_fails_cleanly() {
    let mut images = vec![example(), tree_pipe().to_native_bytes().unwrap()];
    // One fixture of each legacy revision, when committed.
    for rel in ["cr-v5/c-basic.img", "ckpt-v21/c-pipe.img"] {
        if let Ok(b) = std::fs::read(root().join("fixtures/images").join(rel)) {
            images.push(b);
        }
    }
    for b in images {
        assert!(all_commands(&b).iter().all(|&ok| ok));
        for n in 0..b.len() {
            let oks = all_commands(&b[..n]);
            assert!(
                oks.iter().all(|&ok| !ok),
                "truncation at {n} of {} accepted: {oks:?}",
                b.len()
            );
        }
    }
}
