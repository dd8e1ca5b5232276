//! The vdso proxy on this one kernel: an image whose vdso is not this kernel's (here: our
//! own vdso with every exported function body overwritten by `int3`, so any call that is
//! not redirected traps) restores with the captured vdso kept in place, every entry a jump
//! into this kernel's vdso mapped elsewhere, and the captured vvar reserved without access.
//! The workload (fixtures/progs/kexec_workload.c, 2 threads) checks its memory and every
//! vdso function against the system call it stands for on every step, through the
//! pointers it found in the (now proxied) vdso at start-up.

mod common;
use ckpt_format::{Event, Revision, VmaKind};
use common::*;
use std::borrow::Cow;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn build_workload() -> std::path::PathBuf {
    build_progs();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/progs/kexec_workload.c");
    let out = progs_dir().join("kexec_workload");
    let tmp = progs_dir().join(format!("kexec_workload.tmp{}", std::process::id()));
    let st = Command::new("cc")
        .args(["-O1", "-g", "-Wall", "-pthread", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// An address range `(start, end)`.
type Range = (u64, u64);

/// The image with every exported function of its vdso filled with `int3`; returns the
/// new image and the vdso's and vvar's captured ranges.
fn trap_vdso(bytes: &[u8]) -> (Vec<u8>, Range, Vec<Range>) {
    let mut src = ckpt_format::open_slice(bytes).unwrap();
    let mut out = Vec::new();
    let mut vdso = (0, 0);
    let mut vvar = Vec::new();
    {
        let mut enc = ckpt_format::encoder(Revision::Native1, &mut out);
        let mut kind = None;
        while let Some(ev) = src.next_event().unwrap() {
            let mut ev = ev.into_owned();
            if let Event::Vma(v) = &ev {
                kind = Some(v.kind);
                if v.kind == VmaKind::Vdso {
                    vdso = (v.start, v.end);
                }
                if v.kind == VmaKind::Vvar {
                    vvar.push((v.start, v.end));
                }
            }
            if let (Event::Pages(p), Some(VmaKind::Vdso)) = (&mut ev, kind) {
                assert_eq!(p.addrs.get(0), Some(vdso.0), "one chunk from the start");
                let mut d = p.data.to_vec();
                let entries = ckpt_restore::vdso::entries(&d).unwrap();
                assert!(entries.len() >= 5, "{entries:?}");
                for e in entries {
                    d[e.offset as usize..(e.offset + e.room) as usize].fill(0xcc);
                }
                p.data = Cow::Owned(d);
            }
            if matches!(ev, Event::VmaEnd) {
                kind = None;
            }
            enc.event(&ev).unwrap();
        }
        enc.finish().unwrap();
    }
    (out, vdso, vvar)
}

fn maps(pid: i32) -> Vec<(u64, u64, String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = f[0].split_once('-').unwrap();
            (
                u64::from_str_radix(s, 16).unwrap(),
                u64::from_str_radix(e, 16).unwrap(),
                f[1].to_string(),
                f.get(5).unwrap_or(&"").to_string(),
            )
        })
        .collect()
}

fn read_mem(pid: i32, addr: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, addr).unwrap();
    b
}

#[test]
fn another_kernels_vdso_is_proxied_to_ours() {
    let prog = build_workload();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let f = std::fs::File::create(&out).unwrap();
    #[allow(clippy::zombie_processes)] // reaped by capture_kill
    let c = Command::new(&prog)
        .args(["proxy", "2", "2", "steps:40"])
        .stdout(f)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = c.id() as i32;
    wait_lines(&out, 2); // READY, the first tick
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    // As captured, the vdso is this kernel's: remapped in place, nothing adapted.
    let orig = std::fs::read(&img).unwrap();
    let mut src = ckpt_format::open_slice(&orig).unwrap();
    let plan = ckpt_restore::Plan::collect(&mut *src, Some(&orig)).unwrap();
    assert_eq!(
        ckpt_restore::check::vdso_in_place(&plan, &orig),
        [format!("task {pid}: vdso identical to this kernel's: remapped in place (this kernel's vdso and vvar moved to the captured address)")]
    );
    assert!(ckpt_restore::check::adaptations(&plan, &orig).is_empty());
    let (trapped, vdso, vvar) = trap_vdso(&orig);
    assert!(vdso.1 > vdso.0);
    let timg = dir.path().join("trapped");
    std::fs::write(&timg, &trapped).unwrap();

    // The restorability check names the adaptation.
    let mut src = ckpt_format::open_slice(&trapped).unwrap();
    let plan = ckpt_restore::Plan::collect(&mut *src, Some(&trapped)).unwrap();
    let adapted = ckpt_restore::check::adaptations(&plan, &trapped);
    assert_eq!(adapted.len(), 1, "{adapted:?}");
    assert!(ckpt_restore::check::vdso_in_place(&plan, &trapped).is_empty());
    assert!(
        adapted[0].contains("vdso of another kernel build, proxied: ")
            && adapted[0].contains("clock_gettime -> +0x"),
        "{adapted:?}"
    );
    assert!(ckpt_restore::check::restorable(&plan, &trapped, Path::new("/")).is_empty());

    let (code, stdout, stderr) = run_restore(&[timg.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("proxied"), "{stderr}");
    let new: i32 = stdout.trim().parse().unwrap();
    let _procs = Procs(vec![new]);

    // [vdso] is this kernel's, somewhere else; the captured range is the proxy (anonymous,
    // r-x), the captured vvar range has no access.
    let m = maps(new);
    let live = m.iter().find(|x| x.3 == "[vdso]").expect("a [vdso]");
    assert_ne!(live.0, vdso.0, "our vdso was moved onto the captured one");
    let proxy = m
        .iter()
        .find(|x| x.0 == vdso.0 && x.1 == vdso.1)
        .expect("the captured vdso range is mapped");
    assert_eq!((proxy.2.as_str(), proxy.3.as_str()), ("r-xp", ""));
    for (s, e) in &vvar {
        assert!(
            m.iter().any(|x| x.0 <= *s && x.1 >= *e && x.2 == "---p"),
            "vvar {s:#x}-{e:#x} not reserved without access: {m:?}"
        );
    }
    assert!(!m
        .iter()
        .any(|x| x.3.starts_with("[vvar") && x.0 == vvar[0].0));
    // Every entry of the proxy jumps to the same function of the live vdso (both are
    // this kernel's layout here).
    let old = read_mem(new, vdso.0, (vdso.1 - vdso.0) as usize);
    let livebytes = read_mem(new, live.0, (live.1 - live.0) as usize);
    let entries = ckpt_restore::vdso::entries(&livebytes).unwrap();
    for e in &entries {
        let o = e.offset as usize;
        assert_eq!(old[o], 0xe9, "{e:?} is not a jmp rel32");
        let rel = i32::from_le_bytes(old[o + 1..o + 5].try_into().unwrap()) as i64;
        assert_eq!(
            vdso.0 as i64 + o as i64 + 5 + rel,
            live.0 as i64 + o as i64,
            "{e:?}"
        );
        assert_eq!(
            old[o + 5],
            0xcc,
            "the rest of the old body is the test's int3"
        );
    }
    // The kernel's auxv names the live vdso.
    let auxv = std::fs::read(format!("/proc/{new}/auxv")).unwrap();
    let ehdr = auxv
        .chunks_exact(16)
        .find(|p| u64::from_le_bytes(p[..8].try_into().unwrap()) == 33)
        .map(|p| u64::from_le_bytes(p[8..].try_into().unwrap()));
    assert_eq!(ehdr, Some(live.0));

    // The workload runs to its end, every check passing (no int3 was reached).
    assert_eq!(wait_exit(new, Duration::from_secs(120)), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("FAIL"), "{text}");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("KEXEC-WORKLOAD proxy PASS threads 2 steps "),
        "{text}"
    );
}
