//! `diff`: semantic differences between two images — header, tasks, threads
//! and registers, mm, VMAs, fds, and page contents by address.
//!
//! Both images are mapped (a stream is spooled to an unlinked temporary file
//! first); one pass over each builds its [`Summary`] and an index of page
//! runs that points into the mapping, so memory grows with the number of
//! runs, not with the page data. Pages are then compared run by run; a zero
//! run equals stored pages of zeros (contents are what counts, not encoding).

use crate::progress::Progress;
use crate::source::Image;
use crate::summary::{Summariser, Summary, TaskSummary};
use crate::{Failure, Result};
use ckpt_format::{Event, Regs};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

/// One difference.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What it is about: `header`, `task 100`, `task 100 thread 101`,
    /// `task 100 vma 0x400000-0x402000`, `task 100 fd 3`, `task 100 pages`.
    pub scope: String,
    /// The field, or `present` for something only one image has, or
    /// `contents` / `captured` for page ranges.
    pub field: String,
    /// Value in A (`null` when absent).
    pub a: Option<String>,
    /// Value in B (`null` when absent).
    pub b: Option<String>,
}

/// Every difference found.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct DiffReport {
    /// True when no difference was found.
    pub equal: bool,
    /// The differences, in image order.
    pub differences: Vec<Difference>,
}

#[derive(Clone, Copy, Debug)]
enum Loc {
    /// Offset of the run's first page in the mapped image.
    Mapped(usize),
    /// Offset in the owned arena (decoders that do not borrow).
    Arena(usize),
    Zero,
}

#[derive(Clone, Copy, Debug)]
struct Run {
    start: u64,
    count: u64,
    loc: Loc,
}

struct Indexed {
    summary: Summary,
    page_size: u64,
    runs: HashMap<i32, Vec<Run>>,
    arena: Vec<u8>,
}

fn index(bytes: &[u8], label: &str, pb: &Progress, base_pos: u64) -> Result<Indexed> {
    let (b0, blen) = (bytes.as_ptr() as usize, bytes.len());
    let invalid = |e: ckpt_format::Error| Failure::Negative(format!("{label} is invalid: {e}"));
    let mut src = ckpt_format::open_slice(bytes).map_err(invalid)?;
    let mut sm = Summariser::new();
    let mut runs: HashMap<i32, Vec<Run>> = HashMap::new();
    let mut arena = Vec::new();
    let (mut pid, mut ps, mut n) = (0i32, 4096u64, 0u64);
    loop {
        let ev = match src.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => return Err(invalid(e)),
        };
        sm.event(&ev);
        match &ev {
            Event::Header(h) => ps = h.page_size as u64,
            Event::Task(t) => pid = t.pid,
            Event::Pages(p) => {
                let d = &p.data[..];
                let at = d.as_ptr() as usize;
                let mapped = at >= b0 && at + d.len() <= b0 + blen;
                let first = if mapped {
                    at - b0
                } else {
                    let o = arena.len();
                    arena.extend_from_slice(d);
                    o
                };
                let list = runs.entry(pid).or_default();
                let mut i = 0u64;
                for (start, count) in p.addrs.runs() {
                    let off = first + (i * ps) as usize;
                    list.push(Run {
                        start,
                        count,
                        loc: if mapped {
                            Loc::Mapped(off)
                        } else {
                            Loc::Arena(off)
                        },
                    });
                    i += count;
                }
            }
            Event::ZeroPages(z) => runs.entry(pid).or_default().push(Run {
                start: z.start,
                count: z.count,
                loc: Loc::Zero,
            }),
            _ => {}
        }
        drop(ev);
        let off = src.offset();
        sm.record_offset(off);
        n += 1;
        if n % 256 == 0 {
            pb.set(base_pos + off);
        }
    }
    drop(src);
    Ok(Indexed {
        summary: sm.finish(blen as u64),
        page_size: ps,
        runs,
        arena,
    })
}

/// A value as diff prints it (`None` for an absent optional value).
trait Show {
    fn show(&self) -> Option<String>;
}

macro_rules! show_display {
    ($($t:ty),*) => {$(
        impl Show for $t {
            fn show(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
show_display!(i32, u32, u64, usize, bool, String);

impl<T: Show> Show for Option<T> {
    fn show(&self) -> Option<String> {
        self.as_ref().and_then(Show::show)
    }
}

impl<T: Show> Show for [T] {
    fn show(&self) -> Option<String> {
        let v: Vec<String> = self.iter().filter_map(Show::show).collect();
        Some(v.join(" "))
    }
}

impl<T: Show> Show for Vec<T> {
    fn show(&self) -> Option<String> {
        self.as_slice().show()
    }
}

impl<T: Show, const N: usize> Show for [T; N] {
    fn show(&self) -> Option<String> {
        self.as_slice().show()
    }
}

struct Ctx<'a> {
    out: Vec<Difference>,
    a_bytes: &'a [u8],
    b_bytes: &'a [u8],
}

impl Ctx<'_> {
    fn diff(&mut self, scope: &str, field: &str, a: Option<String>, b: Option<String>) {
        if a != b {
            self.out.push(Difference {
                scope: scope.into(),
                field: field.into(),
                a,
                b,
            });
        }
    }
    fn field<T: Show + PartialEq>(&mut self, scope: &str, field: &str, a: &T, b: &T) {
        if a != b {
            self.diff(scope, field, a.show(), b.show());
        }
    }
    fn hex(&mut self, scope: &str, field: &str, a: u64, b: u64) {
        if a != b {
            self.diff(
                scope,
                field,
                Some(format!("{a:#x}")),
                Some(format!("{b:#x}")),
            );
        }
    }
}

/// Compare two images.
pub fn diff(a: Image, b: Image) -> Result<DiffReport> {
    let a = a.into_addressable()?;
    let b = b.into_addressable()?;
    let a_bytes = a.slice().unwrap_or(&[]);
    let b_bytes = b.slice().unwrap_or(&[]);
    let pb = Progress::bytes("diff", (a_bytes.len() + b_bytes.len()) as u64);
    let ia = index(a_bytes, "A", &pb, 0)?;
    let ib = index(b_bytes, "B", &pb, a_bytes.len() as u64)?;
    let mut cx = Ctx {
        out: Vec::new(),
        a_bytes,
        b_bytes,
    };
    compare_summaries(&mut cx, &ia.summary, &ib.summary);
    let pa: BTreeMap<i32, usize> = ia
        .summary
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.pid, i))
        .collect();
    for t in &ib.summary.tasks {
        if pa.contains_key(&t.pid) {
            compare_pages(&mut cx, t.pid, &ia, &ib);
        }
    }
    pb.finish();
    let differences = cx.out;
    Ok(DiffReport {
        equal: differences.is_empty(),
        differences,
    })
}

fn compare_summaries(cx: &mut Ctx<'_>, a: &Summary, b: &Summary) {
    let h = "header";
    cx.diff(
        h,
        "revision",
        Some(a.revision.clone()),
        Some(b.revision.clone()),
    );
    cx.diff(h, "arch", Some(a.arch.clone()), Some(b.arch.clone()));
    cx.field(h, "page_size", &a.page_size, &b.page_size);
    cx.field(h, "kernel.release", &a.kernel.release, &b.kernel.release);
    cx.field(h, "kernel.version", &a.kernel.version, &b.kernel.version);
    cx.field(h, "kernel.machine", &a.kernel.machine, &b.kernel.machine);
    cx.field(h, "kernel.code", &a.kernel.code, &b.kernel.code);
    cx.field(h, "time", &a.time, &b.time);
    cx.hex(h, "flags", a.flags, b.flags);
    cx.field(h, "writer_errors", &a.writer_errors, &b.writer_errors);
    let tb: BTreeMap<i32, &TaskSummary> = b.tasks.iter().map(|t| (t.pid, t)).collect();
    let ta: BTreeMap<i32, &TaskSummary> = a.tasks.iter().map(|t| (t.pid, t)).collect();
    for t in &a.tasks {
        match tb.get(&t.pid) {
            Some(u) => compare_task(cx, t, u),
            None => cx.diff(
                &format!("task {}", t.pid),
                "present",
                Some(t.comm.clone()),
                None,
            ),
        }
    }
    for t in &b.tasks {
        if !ta.contains_key(&t.pid) {
            cx.diff(
                &format!("task {}", t.pid),
                "present",
                None,
                Some(t.comm.clone()),
            );
        }
    }
}

/// Typed records, by (owner, record): each field that differs, or the record's presence.
fn compare_records(
    cx: &mut Ctx<'_>,
    s: &str,
    a: &[crate::summary::RecordSummary],
    b: &[crate::summary::RecordSummary],
) {
    let map =
        |v: &[crate::summary::RecordSummary]| -> BTreeMap<(String, String), Vec<[String; 2]>> {
            v.iter()
                .map(|r| ((r.owner.clone(), r.record.clone()), r.fields.clone()))
                .collect()
        };
    let (ma, mb) = (map(a), map(b));
    let mut keys: Vec<_> = ma.keys().chain(mb.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let sc = format!("{s} {} {}", k.0, k.1);
        match (ma.get(&k), mb.get(&k)) {
            (Some(fa), Some(fb)) => {
                for ([n, va], [_, vb]) in fa.iter().zip(fb) {
                    cx.diff(&sc, n, Some(va.clone()), Some(vb.clone()));
                }
            }
            (fa, fb) => cx.diff(
                &sc,
                "present",
                fa.map(|_| "record".into()),
                fb.map(|_| "record".into()),
            ),
        }
    }
}

fn compare_task(cx: &mut Ctx<'_>, a: &TaskSummary, b: &TaskSummary) {
    let s = format!("task {}", a.pid);
    compare_records(cx, &s, &a.records, &b.records);
    cx.field(&s, "tgid", &a.tgid, &b.tgid);
    cx.field(&s, "ppid", &a.ppid, &b.ppid);
    cx.field(&s, "pgid", &a.pgid, &b.pgid);
    cx.field(&s, "sid", &a.sid, &b.sid);
    cx.field(&s, "comm", &a.comm, &b.comm);
    cx.field(&s, "state", &a.state, &b.state);
    cx.field(&s, "exit_state", &a.exit_state, &b.exit_state);
    cx.field(&s, "exit_code", &a.exit_code, &b.exit_code);
    cx.field(&s, "uid", &a.uid, &b.uid);
    cx.field(&s, "gid", &a.gid, &b.gid);
    cx.field(&s, "cwd", &a.cwd, &b.cwd);
    cx.field(&s, "root", &a.root, &b.root);
    cx.field(&s, "umask", &a.umask, &b.umask);
    cx.field(
        &s,
        "signal handlers",
        &a.handled_signals,
        &b.handled_signals,
    );
    // Threads by tid.
    let thb: BTreeMap<i32, _> = b.threads.iter().map(|t| (t.tid, t)).collect();
    let tha: BTreeMap<i32, _> = a.threads.iter().map(|t| (t.tid, t)).collect();
    for t in &a.threads {
        let sc = format!("{s} thread {}", t.tid);
        match thb.get(&t.tid) {
            None => cx.diff(&sc, "present", Some("thread".into()), None),
            Some(u) => {
                let (ra, rb) = (t.regs.0.to_array(), u.regs.0.to_array());
                for (i, name) in Regs::NAMES.iter().enumerate() {
                    cx.hex(&sc, name, ra[i], rb[i]);
                }
                cx.hex(&sc, "sigmask", t.sigmask, u.sigmask);
                cx.field(&sc, "fpu", &t.fpu, &u.fpu);
            }
        }
    }
    for t in &b.threads {
        if !tha.contains_key(&t.tid) {
            cx.diff(
                &format!("{s} thread {}", t.tid),
                "present",
                None,
                Some("yes".into()),
            );
        }
    }
    match (&a.mm, &b.mm) {
        (Some(x), Some(y)) => {
            let sc = format!("{s} mm");
            cx.field(&sc, "exe", &x.exe, &y.exe);
            for (f, p, q) in [
                ("code", x.code, y.code),
                ("data", x.data, y.data),
                ("brk", x.brk, y.brk),
                ("args", x.args, y.args),
                ("env", x.env, y.env),
            ] {
                if p != q {
                    cx.diff(
                        &sc,
                        f,
                        Some(format!("{:#x}-{:#x}", p[0], p[1])),
                        Some(format!("{:#x}-{:#x}", q[0], q[1])),
                    );
                }
            }
            cx.hex(&sc, "start_stack", x.start_stack, y.start_stack);
            cx.field(&sc, "auxv_entries", &x.auxv_entries, &y.auxv_entries);
            cx.hex(
                &sc,
                "personality",
                x.personality as u64,
                y.personality as u64,
            );
        }
        (x, y) => cx.diff(
            &s,
            "mm",
            x.as_ref().map(|_| "present".into()),
            y.as_ref().map(|_| "present".into()),
        ),
    }
    // VMAs by range.
    let key = |v: &crate::summary::VmaSummary| (v.start, v.end);
    let vb: BTreeMap<_, _> = b.vmas.iter().map(|v| (key(v), v)).collect();
    let va: BTreeMap<_, _> = a.vmas.iter().map(|v| (key(v), v)).collect();
    for v in &a.vmas {
        let sc = format!("{s} vma {:#x}-{:#x}", v.start, v.end);
        match vb.get(&key(v)) {
            None => cx.diff(&sc, "present", Some(v.kind.clone()), None),
            Some(u) => {
                cx.field(&sc, "prot", &v.prot, &u.prot);
                cx.hex(&sc, "flags", v.flags, u.flags);
                cx.field(&sc, "pgoff", &v.pgoff, &u.pgoff);
                cx.field(&sc, "kind", &v.kind, &u.kind);
                cx.field(&sc, "file", &v.file, &u.file);
            }
        }
    }
    for v in &b.vmas {
        if !va.contains_key(&key(v)) {
            let sc = format!("{s} vma {:#x}-{:#x}", v.start, v.end);
            cx.diff(&sc, "present", None, Some(v.kind.clone()));
        }
    }
    // Fds by number (object ids are an encoding detail and are not compared).
    let fb: BTreeMap<i32, _> = b.fds.iter().map(|f| (f.fd, f)).collect();
    let fa: BTreeMap<i32, _> = a.fds.iter().map(|f| (f.fd, f)).collect();
    for f in &a.fds {
        let sc = format!("{s} fd {}", f.fd);
        match fb.get(&f.fd) {
            None => cx.diff(&sc, "present", Some(f.kind.clone()), None),
            Some(g) => {
                cx.field(&sc, "kind", &f.kind, &g.kind);
                cx.field(&sc, "path", &f.path, &g.path);
                cx.diff(
                    &sc,
                    "flags",
                    Some(format!("{:#o}", f.flags)),
                    Some(format!("{:#o}", g.flags)),
                );
                cx.field(&sc, "pos", &f.pos, &g.pos);
                cx.field(&sc, "cloexec", &f.cloexec, &g.cloexec);
                cx.field(&sc, "socket", &f.socket, &g.socket);
                compare_records(cx, &sc, &f.records, &g.records);
            }
        }
    }
    for f in &b.fds {
        if !fa.contains_key(&f.fd) {
            let sc = format!("{s} fd {}", f.fd);
            cx.diff(&sc, "present", None, Some(f.kind.clone()));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cat {
    Differ,
    OnlyA,
    OnlyB,
}

/// Coalesces page addresses of one category into ranges.
struct Ranges {
    cur: Option<(Cat, u64, u64)>,
    done: Vec<(Cat, u64, u64)>,
}

impl Ranges {
    fn add(&mut self, cat: Cat, start: u64, end: u64) {
        match &mut self.cur {
            Some((c, _, e)) if *c == cat && *e == start => *e = end,
            _ => {
                if let Some(r) = self.cur.take() {
                    self.done.push(r);
                }
                self.cur = Some((cat, start, end));
            }
        }
    }
}

fn page<'x>(ix: &'x Indexed, bytes: &'x [u8], r: &Run, k: u64) -> Option<&'x [u8]> {
    let ps = ix.page_size as usize;
    let off = |o: usize| o.checked_add((k as usize).checked_mul(ps)?);
    match r.loc {
        Loc::Zero => None,
        Loc::Mapped(o) => off(o).and_then(|o| bytes.get(o..o + ps)),
        Loc::Arena(o) => off(o).and_then(|o| ix.arena.get(o..o + ps)),
    }
}

fn same(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y,
        (Some(x), None) | (None, Some(x)) => x.iter().all(|&c| c == 0),
    }
}

fn compare_pages(cx: &mut Ctx<'_>, pid: i32, a: &Indexed, b: &Indexed) {
    let ps = a.page_size;
    if ps != b.page_size {
        return; // reported in the header
    }
    let empty = Vec::new();
    let ra = a.runs.get(&pid).unwrap_or(&empty);
    let rb = b.runs.get(&pid).unwrap_or(&empty);
    let mut out = Ranges {
        cur: None,
        done: Vec::new(),
    };
    let (mut i, mut j, mut ka, mut kb) = (0usize, 0usize, 0u64, 0u64);
    while i < ra.len() || j < rb.len() {
        let pa = ra.get(i).map(|r| r.start + ka * ps);
        let pb = rb.get(j).map(|r| r.start + kb * ps);
        match (pa, pb) {
            (Some(x), y) if y.is_none_or(|y| x < y) => {
                let r = &ra[i];
                let left = r.count - ka;
                let n = y.map_or(left, |y| left.min((y - x) / ps).max(1));
                out.add(Cat::OnlyA, x, x + n * ps);
                ka += n;
            }
            (x, Some(y)) if x.is_none_or(|x| y < x) => {
                let r = &rb[j];
                let left = r.count - kb;
                let n = x.map_or(left, |x| left.min((x - y) / ps).max(1));
                out.add(Cat::OnlyB, y, y + n * ps);
                kb += n;
            }
            (Some(x), Some(_)) => {
                let (r, s) = (&ra[i], &rb[j]);
                let n = (r.count - ka).min(s.count - kb);
                if !(matches!(r.loc, Loc::Zero) && matches!(s.loc, Loc::Zero)) {
                    for k in 0..n {
                        let pa = page(a, cx.a_bytes, r, ka + k);
                        let pb = page(b, cx.b_bytes, s, kb + k);
                        if !same(pa, pb) {
                            let addr = x + k * ps;
                            out.add(Cat::Differ, addr, addr + ps);
                        }
                    }
                }
                ka += n;
                kb += n;
            }
            _ => break,
        }
        if ra.get(i).is_some_and(|r| ka >= r.count) {
            i += 1;
            ka = 0;
        }
        if rb.get(j).is_some_and(|r| kb >= r.count) {
            j += 1;
            kb = 0;
        }
    }
    if let Some(r) = out.cur.take() {
        out.done.push(r);
    }
    let sc = format!("task {pid} pages");
    for (cat, s, e) in out.done {
        let n = (e - s) / ps;
        let what = format!("{s:#x}-{e:#x} ({n} page{})", if n == 1 { "" } else { "s" });
        let d = match cat {
            Cat::Differ => Difference {
                scope: sc.clone(),
                field: "contents".into(),
                a: Some(what.clone()),
                b: Some(what),
            },
            Cat::OnlyA => Difference {
                scope: sc.clone(),
                field: "captured".into(),
                a: Some(what),
                b: None,
            },
            Cat::OnlyB => Difference {
                scope: sc.clone(),
                field: "captured".into(),
                a: None,
                b: Some(what),
            },
        };
        cx.out.push(d);
    }
}

/// Render a report as text: one line per difference.
pub fn render_text(r: &DiffReport) -> String {
    let mut o = String::new();
    for d in &r.differences {
        let line = match (d.field.as_str(), &d.a, &d.b) {
            ("contents", Some(a), _) => format!("{}: contents differ at {a}\n", d.scope),
            ("captured", Some(a), None) => format!("{}: only in A: {a}\n", d.scope),
            ("captured", None, Some(b)) => format!("{}: only in B: {b}\n", d.scope),
            ("present", Some(a), None) => format!("{}: only in A ({a})\n", d.scope),
            ("present", None, Some(b)) => format!("{}: only in B ({b})\n", d.scope),
            (f, a, b) => format!(
                "{}: {f}: {} -> {}\n",
                d.scope,
                a.as_deref().unwrap_or("(none)"),
                b.as_deref().unwrap_or("(none)")
            ),
        };
        o.push_str(&line);
    }
    if r.equal {
        o.push_str("no differences\n");
    } else {
        o.push_str(&format!("{} difference(s)\n", r.differences.len()));
    }
    o
}

/// Run `diff` and write the report; exit status 1 when the images differ.
pub fn run(a: Image, b: Image, json: bool, out: &mut dyn Write) -> Result<()> {
    let r = diff(a, b)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &r).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        out.write_all(render_text(&r).as_bytes())?;
    }
    if r.equal {
        Ok(())
    } else {
        Err(Failure::Negative(format!(
            "{} difference(s)",
            r.differences.len()
        )))
    }
}
