//! explode / implode / mount of the filesystem view (issue 8).

use ckpt_format::build::ImageBuilder;
use ckpt_format::{open_slice, Event, Extras, Revision, Unknown};
use ckpt_inspect::fsview::{explode, implode, ImplodeOptions};
use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};

fn events(bytes: &[u8]) -> Vec<Event<'static>> {
    let mut src = open_slice(bytes).unwrap();
    let mut v = Vec::new();
    while let Some(ev) = src.next_event().unwrap() {
        v.push(ev.into_owned());
    }
    v
}

/// A scratch directory on a filesystem that holds sparse files at any
/// virtual address (tmpfs) when there is one.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn round_trip_in(bytes: &[u8], base: &Path) -> Vec<u8> {
    let dir = base.join("tree");
    explode(bytes, &dir).unwrap();
    let out = base.join("out.img");
    implode(&dir, &out, &ImplodeOptions::default()).unwrap();
    fs::read(&out).unwrap()
}

/// The example with typed records on every kind of owner, one of them repeated
/// (`file_data`): the tree spells each as a payload file under `records/`.
fn typed_sample() -> ImageBuilder {
    use ckpt_format::{Eventfd, FileContents, FileData, MapIdentity, RealParent, Rseq};
    let mut b = ImageBuilder::example();
    let mut files = 0;
    for ev in &mut b.events {
        match ev {
            Event::Task(t) => t.records.real_parent = Some(RealParent { ppid: 77 }),
            Event::Thread(t) => {
                t.records.rseq = Some(Rseq {
                    ptr: 0x7f00_0000_2000,
                    len: 32,
                    sig: 0x5305_3053,
                })
            }
            Event::Vma(v) => {
                v.records.identity = Some(MapIdentity {
                    dev_major: 8,
                    dev_minor: 1,
                    ino: 4242,
                })
            }
            Event::File(f) => {
                files += 1;
                if files == 1 {
                    f.records.eventfd = Some(Eventfd {
                        count: 5,
                        semaphore: true,
                    });
                } else if files == 2 {
                    f.records.contents = Some(FileContents {
                        size: 3 * 4096 + 5,
                        kind: ckpt_format::CONTENTS_DELETED,
                        seals: 0,
                    });
                    f.records.data = vec![
                        FileData {
                            offset: 0,
                            data: vec![0xab; 4096],
                        },
                        FileData {
                            offset: 3 * 4096,
                            data: b"tail!".to_vec(),
                        },
                    ];
                }
            }
            _ => {}
        }
    }
    assert!(files >= 2, "the example has two files");
    b
}

/// Images of every shape the builder makes, in every revision that can hold them.
fn samples() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let mut rich = ImageBuilder::example().chunk_pages(1);
    // extras, an unknown record inside a VMA and one outside, an error record
    let mut ev = rich.events.clone();
    if let Event::Header(h) = &mut ev[0] {
        h.extras.set_u64("answer", 42);
        h.extras.set_bytes("blob", b"\x00\x01binary\n");
    }
    let vma_at = ev.iter().position(|e| matches!(e, Event::Vma(_))).unwrap();
    ev.insert(
        vma_at + 1,
        Event::Unknown(Unknown {
            revision: Revision::CkptV21,
            type_code: 0x9999,
            parent: 100,
            payload: Cow::Owned(b"foreign bytes".to_vec()),
        }),
    );
    let tail = ev.len() - 1;
    ev.insert(tail, Event::Error(b"capture interrupted".to_vec()));
    if let Event::Task(t) = &mut ev[1] {
        t.extras = Extras::new();
        t.extras.set_u64("robust_futex_list", 0x7f00_0000_1000);
    }
    rich.events = ev;
    let typed = typed_sample();
    for rev in Revision::ALL {
        for (name, b) in [
            ("example", ImageBuilder::example()),
            ("rich", rich.clone()),
            ("typed", typed.clone()),
        ] {
            let mut out = Vec::new();
            if b.write(rev, &mut out).is_ok() {
                v.push((format!("{name}.{rev}"), out));
            }
        }
    }
    v
}

fn fixture_images() -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images"),
        &mut v,
    );
    v.sort();
    v
}

/// Every event of an image, owned.
fn events_of(b: &[u8]) -> Vec<ckpt_format::Event<'static>> {
    let mut src = open_slice(b).unwrap();
    let mut v = Vec::new();
    while let Some(e) = src.next_event().unwrap() {
        v.push(e.into_owned());
    }
    v
}

#[test]
fn round_trip_every_sample_and_fixture() {
    let mut n = 0;
    for (name, bytes) in samples() {
        let t = scratch();
        assert!(
            round_trip_in(&bytes, t.path()) == bytes,
            "{name}: not byte-identical"
        );
        eprintln!("round trip ok: {name} ({} bytes)", bytes.len());
        n += 1;
    }
    assert!(n >= 2, "at least the native-1 samples");
    for p in fixture_images() {
        let bytes = fs::read(&p).unwrap();
        if open_slice(&bytes).is_err()
            || ckpt_format::validate::validate(&mut *open_slice(&bytes).unwrap())
                .error
                .is_some()
        {
            continue; // fixtures of broken images are for error tests
        }
        let t = scratch();
        let back = round_trip_in(&bytes, t.path());
        if p.to_string_lossy().contains("before-records") {
            // An image written before typed records: implode writes today's encoding
            // (typed records instead of extras keys), with the same events.
            assert_ne!(back, bytes, "{}: re-encoded as it was", p.display());
            assert_eq!(events_of(&back), events_of(&bytes), "{}", p.display());
            continue;
        }
        assert!(back == bytes, "{}: not byte-identical", p.display());
    }
}

#[test]
fn round_trip_on_a_filesystem_with_small_files_uses_per_vma_mem() {
    // /tmp is ext4 here: files stop at 16 TiB, below the stack's addresses.
    let bytes = ImageBuilder::example().to_native_bytes().unwrap();
    let t = tempfile::tempdir().unwrap();
    assert_eq!(round_trip_in(&bytes, t.path()), bytes);
}

#[test]
fn layout_values() {
    let bytes = ImageBuilder::example().to_native_bytes().unwrap();
    let t = scratch();
    let d = t.path().join("tree");
    explode(&bytes, &d).unwrap();
    let r = |p: &str| fs::read_to_string(d.join(p)).unwrap();
    assert_eq!(r("header/revision"), "native-1\n");
    assert_eq!(r("header/arch"), "x86_64\n");
    assert_eq!(r("task-100/comm"), "example\n");
    assert_eq!(r("task-100/ppid"), "1\n");
    assert_eq!(r("task-100/threads/101/regs/rip"), "0x401080\n");
    assert_eq!(r("task-100/mm/brk"), "0x605000\n");
    assert_eq!(r("task-100/mm/vmas/601000-605000/prot"), "rw-\n");
    assert_eq!(r("task-100/mm/vmas/601000-605000/kind"), "heap\n");
    assert_eq!(
        r("task-100/mm/vmas/601000-605000/pages"),
        "pages 0x601000:1\nzero 0x602000:2\npages 0x604000:1\n"
    );
    assert_eq!(r("task-100/fds/3/coe"), "1\n");
    assert_eq!(
        fs::read_link(d.join("task-100/fds/3/file")).unwrap(),
        Path::new("../../../files/3")
    );
    assert_eq!(r("task-100/fds/3/file/kind"), "pipe\n");
    assert_eq!(r("files/1/f_pos"), "1234\n");
    assert_eq!(r("files/1/path"), "/home/example/data.txt\n");
    assert_eq!(
        fs::read(d.join("pipes/2/data")).unwrap(),
        b"unread pipe bytes"
    );
    assert_eq!(
        fs::read(d.join("task-100/threads/100/fpu")).unwrap().len(),
        832
    );
    // mem: byte at offset A is the byte at address A
    use std::os::unix::fs::FileExt;
    let mem = fs::File::open(d.join("task-100/mem")).unwrap();
    let mut b = [0u8; 16];
    mem.read_exact_at(&mut b, 0x60_1000).unwrap();
    assert_eq!(&b, b"hello, restore!\n");
    mem.read_exact_at(&mut b[..7], 0x40_1000).unwrap();
    assert_eq!(&b[..7], b"\x0f\x05ckpt!");
    assert_eq!(mem.metadata().unwrap().len(), 0x7fff_f000_1000);
}

fn exploded() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let bytes = ImageBuilder::example().to_native_bytes().unwrap();
    let t = scratch();
    let d = t.path().join("tree");
    explode(&bytes, &d).unwrap();
    (t, d, bytes)
}

fn implode_err(d: &Path) -> String {
    let out = d.parent().unwrap().join("bad.img");
    let e = implode(d, &out, &ImplodeOptions::default()).unwrap_err();
    assert!(!out.exists(), "no output on refusal");
    e.0
}

#[test]
fn edits_carry_exactly_that_change() {
    use std::os::unix::fs::FileExt;
    let (_t, d, bytes) = exploded();
    fs::write(d.join("files/1/f_pos"), "999\n").unwrap();
    let mem = fs::OpenOptions::new()
        .write(true)
        .open(d.join("task-100/mem"))
        .unwrap();
    mem.write_all_at(b"HELLO", 0x60_1000).unwrap();
    let out = d.parent().unwrap().join("edited.img");
    implode(&d, &out, &ImplodeOptions::default()).unwrap();
    let new = events(&fs::read(&out).unwrap());
    let mut want = events(&bytes);
    for ev in &mut want {
        match ev {
            Event::File(f) if f.id == 1 => f.pos = 999,
            Event::Pages(p) if p.addrs.get(0) == Some(0x60_1000) => {
                p.data.to_mut()[..5].copy_from_slice(b"HELLO");
            }
            _ => {}
        }
    }
    assert_eq!(new, want);
}

#[test]
fn a_byte_written_into_a_zero_page_splits_the_run() {
    use std::os::unix::fs::FileExt;
    let (_t, d, _) = exploded();
    let mem = fs::OpenOptions::new()
        .write(true)
        .open(d.join("task-100/mem"))
        .unwrap();
    mem.write_all_at(b"Z", 0x60_3010).unwrap();
    let out = d.parent().unwrap().join("edited.img");
    implode(&d, &out, &ImplodeOptions::default()).unwrap();
    let evs = events(&fs::read(&out).unwrap());
    let mut page = vec![0u8; 4096];
    page[0x10] = b'Z';
    let pos = evs
        .iter()
        .position(|e| matches!(e, Event::ZeroPages(z) if z.start == 0x60_2000))
        .unwrap();
    assert!(matches!(&evs[pos], Event::ZeroPages(z) if z.count == 1));
    match &evs[pos + 1] {
        Event::Pages(p) => {
            assert_eq!(p.addrs.iter().collect::<Vec<_>>(), vec![0x60_3000]);
            assert_eq!(&p.data[..], &page[..]);
        }
        e => panic!("expected pages, found {e:?}"),
    }
}

#[test]
fn broken_edits_are_refused_naming_the_path() {
    // An fd pointing to no file.
    let (_t, d, _) = exploded();
    let l = d.join("task-100/fds/0/file");
    fs::remove_file(&l).unwrap();
    std::os::unix::fs::symlink("../../../files/77", &l).unwrap();
    let e = implode_err(&d);
    assert!(
        e.starts_with("task-100/fds/0/file: points to ../../../files/77"),
        "{e}"
    );

    // A page outside every VMA (pages list edited).
    let (_t, d, _) = exploded();
    let p = d.join("task-100/mm/vmas/601000-605000/pages");
    fs::write(&p, "pages 0x601000:1\nzero 0x602000:2\npages 0x700000:1\n").unwrap();
    let e = implode_err(&d);
    assert!(e.starts_with("task-100/mm/vmas/601000-605000/pages line 3: refused: page 0x700000 lies outside this VMA"), "{e}");

    // Bytes written into mem outside every VMA.
    use std::os::unix::fs::FileExt;
    let (_t, d, _) = exploded();
    let mem = fs::OpenOptions::new()
        .write(true)
        .open(d.join("task-100/mem"))
        .unwrap();
    mem.write_all_at(b"x", 0x50_0000).unwrap();
    let e = implode_err(&d);
    assert_eq!(
        e,
        "task-100/mem: refused: byte at 0x500000 lies outside every VMA"
    );

    // A value that is not a number.
    let (_t, d, _) = exploded();
    fs::write(d.join("files/1/f_pos"), "lots\n").unwrap();
    let e = implode_err(&d);
    assert!(
        e.starts_with("files/1/f_pos: expected an unsigned number"),
        "{e}"
    );

    // Two fds with the same number: the model's checker refuses, named by path.
    let (_t, d, _) = exploded();
    fs::write(d.join("task-100/fds/4/fd_nr"), "3\n").unwrap();
    let e = implode_err(&d);
    assert!(e.starts_with("task-100/fds/4: refused:"), "{e}");
}

#[test]
fn explode_refuses_a_non_empty_directory() {
    let (_t, d, bytes) = exploded();
    let e = explode(&bytes, &d).unwrap_err();
    assert!(e.0.ends_with("exists and is not empty"), "{}", e.0);
}
