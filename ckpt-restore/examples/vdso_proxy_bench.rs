//! What the vdso proxy costs a restored process: `clock_gettime(CLOCK_MONOTONIC)` through
//! libc (which calls the vdso through the pointer it found at start-up) timed in
//!
//! * a fresh process (the baseline),
//! * a restored one whose vdso was this kernel's (moved in place, as before the proxy),
//! * a restored one whose vdso is taken for another kernel's (the image's vdso with one
//!   padding byte changed: the same code, so the difference is the proxy's jump alone).
//!
//! `cargo run --release -p ckpt-restore --example vdso_proxy_bench -- [RUNS] [ITER]`
//! (root). Each run does the three in turn (interleaved, so machine noise hits all
//! three); each process times 5 rounds of ITER calls (default 20,000,000) and reports
//! its median ns/call. Prints every run, then the medians over the runs and the ratios to
//! the fresh process.

use ckpt_format::{Event, Revision, VmaKind};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn wait_for(path: &Path, what: &str) -> String {
    let t0 = Instant::now();
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(what) {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no {what:?} in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn waitpid(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: st is a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(r, pid, "waitpid {pid}");
    st
}

/// ns/call of the rounds printed in `out` after "ready".
fn ns_per_call(out: &str) -> f64 {
    let v: Vec<f64> = out.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(!v.is_empty(), "no rounds in {out:?}");
    median(v)
}

/// The image with one padding byte at the end of its vdso changed (same code).
fn touch_vdso(bytes: &[u8]) -> Vec<u8> {
    let mut src = ckpt_format::open_slice(bytes).unwrap();
    let mut out = Vec::new();
    let mut done = false;
    {
        let mut enc = ckpt_format::encoder(Revision::Native1, &mut out);
        let mut kind = None;
        while let Some(ev) = src.next_event().unwrap() {
            let mut ev = ev.into_owned();
            if let Event::Vma(v) = &ev {
                kind = Some(v.kind);
            }
            if let (Event::Pages(p), Some(VmaKind::Vdso)) = (&mut ev, kind) {
                let mut d = p.data.to_vec();
                let last = d.len() - 1;
                assert_eq!(d[last], 0, "the vdso's last byte is padding");
                d[last] = 1;
                p.data = Cow::Owned(d);
                done = true;
            }
            if matches!(ev, Event::VmaEnd) {
                kind = None;
            }
            enc.event(&ev).unwrap();
        }
        enc.finish().unwrap();
    }
    assert!(done, "no vdso pages in the image");
    out
}

/// One process: fresh, or captured while it waits and restored (image edited by `edit`).
fn one(prog: &Path, dir: &Path, iter: &str, restored: Option<bool>) -> f64 {
    let go = dir.join("go");
    let out = dir.join("out");
    let _ = std::fs::remove_file(&go);
    let f = std::fs::File::create(&out).unwrap();
    if restored.is_none() {
        std::fs::write(&go, b"").unwrap();
    }
    // Reaped with waitpid by pid (the capture kills it; a restored one is our child too).
    #[allow(clippy::zombie_processes)]
    let c = Command::new(prog)
        .args([iter, "5", go.to_str().unwrap()])
        .stdout(f)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut pid = c.id() as i32;
    if let Some(proxy) = restored {
        wait_for(&out, "ready");
        let img = dir.join("img");
        let mut opts = ckpt_capture::Options::new(pid);
        opts.leave = ckpt_capture::Leave::Killed;
        let mut p = ckpt_capture::live::LiveCapture::new(opts.clone());
        ckpt_capture::capture_to_path(&mut p, &opts, &img, None).expect("capture");
        // The killing capture reaps it (it traced every thread); nothing is left to wait for.
        let mut bytes = std::fs::read(&img).unwrap();
        if proxy {
            bytes = touch_vdso(&bytes);
        }
        let o = ckpt_restore::Options {
            pid_mode: ckpt_restore::PidMode::Any,
            ..Default::default()
        };
        pid = ckpt_restore::restore_bytes(&bytes, &o).expect("restore")[0];
        std::fs::write(&go, b"").unwrap();
    }
    let st = waitpid(pid);
    assert!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "status {st:#x}"
    );
    ns_per_call(&wait_for(&out, "done"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).map_or(5, |a| a.parse().expect("RUNS"));
    let iter = args.get(2).cloned().unwrap_or_else(|| "20000000".into());
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/progs/vdso_bench.c");
    let prog: PathBuf = dir.path().join("vdso_bench");
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&prog)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    let (mut f, mut i, mut p) = (Vec::new(), Vec::new(), Vec::new());
    println!("run  fresh ns/call  restored in place  restored proxied");
    for r in 0..runs {
        let a = one(&prog, dir.path(), &iter, None);
        let b = one(&prog, dir.path(), &iter, Some(false));
        let c = one(&prog, dir.path(), &iter, Some(true));
        println!("{r:>3}  {a:>13.3}  {b:>17.3}  {c:>16.3}");
        f.push(a);
        i.push(b);
        p.push(c);
    }
    let (mf, mi, mp) = (median(f), median(i), median(p));
    println!(
        "median {mf:.3} / {mi:.3} / {mp:.3} ns per clock_gettime; in place {:.3}x, proxied {:.3}x the fresh process",
        mi / mf,
        mp / mf
    );
}
