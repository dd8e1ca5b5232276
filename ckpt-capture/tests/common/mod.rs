//! Helpers for the live tests: build the C fixtures, run them, decode images.
#![allow(dead_code)]

use ckpt_format::{open_slice, Event};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Once;

static BUILD: Once = Once::new();

/// Directory with the compiled fixture programs.
pub fn progs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ckpt-capture-progs")
}

/// The fixtures these tests use (`fixtures/progs/NAME.c`).
pub const PROGS: &[&str] = &[
    "counter",
    "threads",
    "files",
    "tree",
    "sock",
    "churn",
    "signals",
    "deleted",
    "uncarried",
    "locks",
    "vdso_spin",
];

/// Compile the [`PROGS`] fixtures (once per test binary).
pub fn build_progs() {
    BUILD.call_once(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/progs");
        let out = progs_dir();
        std::fs::create_dir_all(&out).unwrap();
        for stem in PROGS {
            let p = src.join(format!("{stem}.c"));
            let tmp = out.join(format!("{stem}.tmp{}", std::process::id()));
            let st = Command::new("cc")
                .args(["-O1", "-g", "-Wall", "-pthread", "-o"])
                .arg(&tmp)
                .arg(&p)
                .status()
                .expect("cc");
            assert!(st.success(), "cc {}", p.display());
            std::fs::rename(&tmp, out.join(stem)).unwrap();
        }
    });
}

/// A running fixture; killed on drop.
pub struct Target {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub out: BufReader<ChildStdout>,
}

impl Target {
    pub fn spawn(prog: &str, args: &[&str]) -> Target {
        build_progs();
        let mut child = Command::new(progs_dir().join(prog))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().unwrap());
        Target { child, stdin, out }
    }
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.out.read_line(&mut s).unwrap();
        assert!(!s.is_empty(), "target closed its output");
        s.trim_end().to_string()
    }
    pub fn send(&mut self, s: &str) {
        let i = self.stdin.as_mut().unwrap();
        i.write_all(s.as_bytes()).unwrap();
        i.flush().unwrap();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parse a hex address like `0x7f12...`.
pub fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// Decode every event of a native-1 image (owned).
pub fn decode(bytes: &[u8]) -> Vec<Event<'static>> {
    let mut src = open_slice(bytes).expect("image opens");
    let mut v = Vec::new();
    while let Some(ev) = src.next_event().expect("image decodes") {
        v.push(ev.into_owned());
    }
    v
}

/// Bytes at `addr..addr+len` of task `pid` as stored in the image (zero runs as zeros).
/// Panics if a page of the range is not in the image.
pub fn mem_of(evs: &[Event<'_>], pid: i32, addr: u64, len: usize) -> Vec<u8> {
    let mut pages = std::collections::HashMap::new();
    let mut cur = 0;
    for e in evs {
        match e {
            Event::Task(t) => cur = t.pid,
            Event::Pages(p) if cur == pid => {
                for (i, a) in p.addrs.iter().enumerate() {
                    pages.insert(a, p.page(i, 4096).unwrap().to_vec());
                }
            }
            Event::ZeroPages(z) if cur == pid => {
                for i in 0..z.count {
                    pages.insert(z.start + i * 4096, vec![0u8; 4096]);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(len);
    let mut a = addr;
    while out.len() < len {
        let base = a & !4095;
        let page = pages
            .get(&base)
            .unwrap_or_else(|| panic!("page {base:#x} not in image"));
        let off = (a - base) as usize;
        let n = (4096 - off).min(len - out.len());
        out.extend_from_slice(&page[off..off + n]);
        a += n as u64;
    }
    out
}

/// The events of task `pid` (from its Task event to the next Task or the Tail).
pub fn task_events<'a>(evs: &'a [Event<'static>], pid: i32) -> Vec<&'a Event<'static>> {
    let mut out = Vec::new();
    let mut inside = false;
    for e in evs {
        match e {
            Event::Task(t) => inside = t.pid == pid,
            Event::Tail => inside = false,
            _ => {}
        }
        if inside {
            out.push(e);
        }
    }
    out
}

/// Path of the ckpt-capture binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ckpt-capture")
}
