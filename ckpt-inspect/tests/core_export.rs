//! export-core (issue 9): container checks with readelf and object, and gdb on a real capture.

use ckpt_format::build::ImageBuilder;
use ckpt_inspect::core_export::{export_core, ExportOptions};
use object::read::elf::{ElfFile64, ProgramHeader as _};
use object::{Endianness, Object, ObjectSegment};
use std::path::Path;
use std::process::Command;

fn example_core(dir: &Path) -> std::path::PathBuf {
    let img = ImageBuilder::example().to_native_bytes().unwrap();
    let out = dir.join("example.core");
    let rep = export_core(&img, ExportOptions::default(), &out).unwrap();
    assert_eq!(rep.pid, 100);
    assert_eq!(rep.threads, 2);
    out
}

fn tool(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn segments_and_contents() {
    let t = tempfile::tempdir().unwrap();
    let core = example_core(t.path());
    let bytes = std::fs::read(&core).unwrap();
    let f = ElfFile64::<Endianness>::parse(&*bytes).unwrap();
    assert_eq!(f.kind(), object::ObjectKind::Core);
    let e = Endianness::Little;
    let loads: Vec<(u64, u64, u64, u32)> = f
        .elf_program_headers()
        .iter()
        .filter(|p| p.p_type(e) == object::elf::PT_LOAD)
        .map(|p| (p.p_vaddr(e), p.p_memsz(e), p.p_filesz(e), p.p_flags(e).0))
        .collect();
    // code VMA: page 0x400000 not captured (filesz 0), 0x401000 captured;
    // heap: all four pages captured (two as zero pages), one segment; stack: gap then page; vdso.
    assert_eq!(
        loads,
        vec![
            (0x40_0000, 0x1000, 0, 5),
            (0x40_1000, 0x1000, 0x1000, 5),
            (0x60_1000, 0x4000, 0x4000, 6),
            (0x7ffc_0000_0000, 0x1000, 0, 6),
            (0x7ffc_0000_1000, 0x1000, 0x1000, 6),
            (0x7fff_f000_0000, 0x1000, 0x1000, 5),
        ]
    );
    let heap = f
        .segments()
        .find(|s| s.address() == 0x60_1000)
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(&heap[..16], b"hello, restore!\n");
    assert!(heap[0x1000..0x3000].iter().all(|&b| b == 0));
    assert!(heap[0x3000..0x4000].iter().all(|&b| b == 0xab));
    for s in f.segments() {
        let (off, len) = s.file_range();
        if len > 0 {
            assert_eq!(off % 4096, 0, "segment contents page aligned");
        }
    }
    // Segments without contents point where the next contents start (the
    // kernel's running offset), never at offset 0: BFD reads the notes again
    // for each PT_LOAD at offset 0 and gdb then re-creates every thread.
    let offs: Vec<(u64, u64)> = f
        .elf_program_headers()
        .iter()
        .filter(|p| p.p_type(e) == object::elf::PT_LOAD)
        .map(|p| (p.p_offset(e), p.p_filesz(e)))
        .collect();
    assert_eq!(
        offs,
        vec![
            (0x2000, 0),
            (0x2000, 0x1000),
            (0x3000, 0x4000),
            (0x7000, 0),
            (0x7000, 0x1000),
            (0x8000, 0x1000),
        ]
    );
    assert_eq!(bytes.len(), 0x9000);
}

#[test]
fn objdump_sees_one_register_section_per_thread() {
    let t = tempfile::tempdir().unwrap();
    let core = example_core(t.path());
    let Some(out) = tool("objdump", &["-h", core.to_str().unwrap()]) else {
        eprintln!("objdump not installed: skipped");
        return;
    };
    let regs: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|n| n.starts_with(".reg/"))
        .collect();
    assert_eq!(regs, [".reg/100", ".reg/101"], "{out}");
}

#[test]
fn readelf_lists_the_notes() {
    let t = tempfile::tempdir().unwrap();
    let core = example_core(t.path());
    let Some(out) = tool("readelf", &["-n", core.to_str().unwrap()]) else {
        eprintln!("readelf not installed: skipped");
        return;
    };
    let count = |s: &str| out.matches(s).count();
    assert_eq!(count("NT_PRSTATUS"), 2, "{out}");
    assert_eq!(count("NT_PRPSINFO"), 1, "{out}");
    assert_eq!(count("NT_AUXV"), 1, "{out}");
    assert_eq!(count("NT_FILE"), 1, "{out}");
    assert_eq!(count("NT_FPREGSET"), 2, "{out}");
    assert_eq!(count("NT_X86_XSTATE"), 2, "{out}");
    let h = tool("readelf", &["-h", core.to_str().unwrap()]).unwrap();
    assert!(h.contains("CORE (Core file)"), "{h}");
    assert!(h.contains("X86-64"), "{h}");
}

#[test]
fn note_contents() {
    let t = tempfile::tempdir().unwrap();
    let core = example_core(t.path());
    let bytes = std::fs::read(&core).unwrap();
    let f = ElfFile64::<Endianness>::parse(&*bytes).unwrap();
    let e = Endianness::Little;
    let ph = f
        .elf_program_headers()
        .iter()
        .find(|p| p.p_type(e) == object::elf::PT_NOTE)
        .unwrap();
    let mut notes = ph.notes(e, &*bytes).unwrap().unwrap();
    let mut seen = Vec::new();
    while let Some(n) = notes.next().unwrap() {
        let d = n.desc();
        match n.n_type(e).0 {
            1 => {
                let tid = i32::from_le_bytes(d[32..36].try_into().unwrap());
                let rip = u64::from_le_bytes(d[112 + 16 * 8..112 + 17 * 8].try_into().unwrap());
                seen.push(format!("prstatus {tid} {rip:#x}"));
            }
            3 => seen.push(format!(
                "prpsinfo {} {}",
                i32::from_le_bytes(d[24..28].try_into().unwrap()),
                String::from_utf8_lossy(&d[40..47])
            )),
            6 => assert_eq!(d, [6u64, 4096, 0, 0].map(u64::to_le_bytes).concat()),
            0x4649_4c45 => {
                let mut want = Vec::new();
                for v in [1u64, 4096, 0x40_0000, 0x40_2000, 0] {
                    want.extend_from_slice(&v.to_le_bytes());
                }
                want.extend_from_slice(b"/usr/bin/example\0");
                assert_eq!(d, &want[..]);
                seen.push("file".into());
            }
            2 => assert_eq!(d.len(), 512),
            0x202 => assert_eq!(d.len(), 832),
            x => panic!("unexpected note {x:#x}"),
        }
    }
    assert_eq!(
        seen,
        [
            "prstatus 100 0x401000",
            "prpsinfo 100 example",
            "file",
            "prstatus 101 0x401080"
        ]
    );
}

#[test]
fn unknown_pid_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let img = ImageBuilder::example().to_native_bytes().unwrap();
    let out = t.path().join("x.core");
    let e = export_core(&img, ExportOptions { pid: Some(7) }, &out).unwrap_err();
    assert_eq!(e.0, "image: no task with pid 7");
    assert!(!out.exists());
}
