//! Text and JSON rendering of a [`Summary`] (`show`).

use crate::fmt::{self, Align, Table};
use crate::summary::{Summary, TaskSummary};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

fn range(a: [u64; 2]) -> String {
    format!("{:#x}-{:#x}", a[0], a[1])
}

/// `show` as text.
pub fn show_text(s: &Summary, error: Option<&ckpt_format::Error>) -> String {
    let mut o = String::new();
    if !s.revision.is_empty() {
        let _ = writeln!(
            o,
            "Image     {} {}, page size {}",
            s.revision, s.arch, s.page_size
        );
        let mut k = s.kernel.release.clone();
        let extra: Vec<&str> = [s.kernel.version.as_str(), s.kernel.machine.as_str()]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect();
        if !extra.is_empty() {
            let _ = write!(k, " ({})", extra.join(", "));
        }
        let _ = writeln!(o, "Kernel    {k} [{}]", s.kernel.code);
        let _ = writeln!(o, "Time      {} ({})", s.time_utc, s.time);
        let _ = writeln!(o, "Flags     {:#x}", s.flags);
        if !s.tool.is_empty() {
            let _ = writeln!(o, "Writer    {} {}", s.tool, s.tool_version);
        }
    }
    for m in &s.writer_errors {
        let _ = writeln!(o, "INCOMPLETE: the writer recorded an error: {m}");
    }
    if !s.left_out.is_empty() {
        let _ = writeln!(
            o,
            "LEFT OUT: {} fd(s) recorded without their state (--allow-unsupported); a restore goes without them:",
            s.left_out.len()
        );
        for l in &s.left_out {
            let _ = writeln!(o, "  {l}");
        }
    }
    if !s.tasks.is_empty() {
        let _ = writeln!(o, "\nTask tree");
        tree(s, &mut o);
    }
    for t in &s.tasks {
        task(t, &mut o);
    }
    if !s.objects.is_empty() {
        let _ = writeln!(o, "\nShared objects");
        let mut tb = Table::new(&[
            ("ID", Align::Right),
            ("OBJECT", Align::Left),
            ("KIND", Align::Left),
            ("WHAT", Align::Left),
            ("REFERRED BY", Align::Left),
        ]);
        for ob in &s.objects {
            let what = match (&ob.path, ob.pipe, ob.buffered) {
                (_, Some(p), _) => format!("end of pipe {p}"),
                (Some(p), _, _) => p.clone(),
                (None, _, Some(b)) => format!("{b} bytes buffered"),
                _ => String::new(),
            };
            let refs: Vec<String> = ob
                .referred_by
                .iter()
                .map(|r| match r.via_file {
                    Some(f) => format!("{}:fd{} (file {f})", r.pid, r.fd),
                    None => format!("{}:fd{}", r.pid, r.fd),
                })
                .collect();
            tb.row(vec![
                ob.id.to_string(),
                ob.object.clone(),
                ob.kind.clone().unwrap_or_else(|| "-".into()),
                what,
                if refs.is_empty() {
                    "-".into()
                } else {
                    refs.join(", ")
                },
            ]);
        }
        tb.render(2, &mut o);
        let rs: Vec<_> = s.objects.iter().flat_map(|ob| ob.records.clone()).collect();
        if !rs.is_empty() {
            let _ = writeln!(o, "\nObject records");
            records(&rs, 2, &mut o);
        }
    }
    if s.unknown_records > 0 {
        let _ = writeln!(
            o,
            "\n{} record(s) not understood by the decoder (kept as unknown)",
            s.unknown_records
        );
    }
    let t = &s.totals;
    let ps = s.page_size as u64;
    let _ = writeln!(o, "\nTotals");
    let _ = writeln!(o, "  records     {}", t.records);
    let _ = writeln!(
        o,
        "  pages       {} ({})",
        t.pages,
        fmt::human(t.pages.saturating_mul(ps))
    );
    let _ = writeln!(
        o,
        "  zero pages  {} ({} elided)",
        t.zero_pages,
        fmt::human(t.zero_pages.saturating_mul(ps))
    );
    let _ = writeln!(o, "  bytes       {} ({})", t.bytes, fmt::human(t.bytes));
    if let Some(r) = &s.restorable {
        // Depends on this machine: the last section (golden tests cut it).
        let _ = write!(
            o,
            "\n{}",
            crate::check::text(&crate::check::CheckReport {
                left_out: Vec::new(), // listed above (LEFT OUT)
                ..r.clone()
            })
        );
    }
    if let Some(e) = error {
        let _ = writeln!(o, "\nINVALID: {e}");
    }
    o
}

fn tree(s: &Summary, o: &mut String) {
    let pids: BTreeSet<i32> = s.tasks.iter().map(|t| t.pid).collect();
    let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, t) in s.tasks.iter().enumerate() {
        if t.ppid != t.pid && pids.contains(&t.ppid) {
            children.entry(t.ppid).or_default().push(i);
        } else {
            roots.push(i);
        }
    }
    let mut seen = vec![false; s.tasks.len()];
    fn walk(
        s: &Summary,
        i: usize,
        depth: usize,
        children: &HashMap<i32, Vec<usize>>,
        seen: &mut [bool],
        o: &mut String,
    ) {
        if seen[i] {
            return;
        }
        seen[i] = true;
        let t = &s.tasks[i];
        let th = if t.threads.len() > 1 {
            format!(", {} threads", t.threads.len())
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  {}{} {} (ppid {}{th})",
            "  ".repeat(depth),
            t.pid,
            t.comm,
            t.ppid
        );
        for &c in children.get(&t.pid).map(Vec::as_slice).unwrap_or(&[]) {
            walk(s, c, depth + 1, children, seen, o);
        }
    }
    for r in roots {
        walk(s, r, 0, &children, &mut seen, o);
    }
    // Tasks in a parent cycle are not reachable from a root: list them flat.
    for i in 0..s.tasks.len() {
        walk(s, i, 0, &children, &mut seen, o);
    }
}

/// The task state as `ps` shows it (the `Task.state` values of docs/MODEL.md).
pub fn state_name(state: u32) -> &'static str {
    match state {
        0 => "R running",
        1 => "S sleeping",
        2 => "D disk sleep",
        4 => "T stopped",
        8 => "t tracing stop",
        16 => "X dead",
        32 => "Z zombie",
        _ => "unknown",
    }
}

/// A command line (NUL-separated arguments) as one line: arguments separated by a space,
/// those with spaces, quotes or nothing in them quoted, control bytes escaped.
pub fn cmdline(b: &[u8]) -> String {
    let b = match b.iter().rposition(|&c| c != 0) {
        Some(i) => &b[..=i],
        None => return String::new(),
    };
    b.split(|&c| c == 0)
        .map(|a| {
            let s = fmt::bytes(a);
            if s.is_empty() || s.contains([' ', '\'', '"']) {
                format!("{s:?}")
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `VM_SHARED` in `Vma.flags`.
const VM_SHARED: u64 = 0x8;

fn task(t: &TaskSummary, o: &mut String) {
    let _ = writeln!(o, "\nTask {} ({})", t.pid, t.comm);
    let _ = writeln!(
        o,
        "  pid {}  tgid {}  ppid {}  pgid {}  sid {}  state {} ({}){}  uid {}  gid {}",
        t.pid,
        t.tgid,
        t.ppid,
        t.pgid,
        t.sid,
        t.state,
        state_name(t.state),
        if t.exit_state != 0 {
            let how = match (t.exit_code & 0x7f, t.exit_code >> 8) {
                (0, c) => format!("exited {c}"),
                (s, _) if t.exit_code & 0x80 != 0 => format!("killed by signal {s}, core dumped"),
                (s, _) => format!("killed by signal {s}"),
            };
            format!(" (exit state {}, {how})", t.exit_state)
        } else {
            String::new()
        },
        t.uid[1],
        t.gid[1]
    );
    if let (Some(c), Some(r)) = (&t.cwd, &t.root) {
        let _ = writeln!(
            o,
            "  cwd {c}  root {r}  umask {:04o}",
            t.umask.unwrap_or_default()
        );
    }
    if !t.handled_signals.is_empty() {
        let sig: Vec<String> = t.handled_signals.iter().map(u32::to_string).collect();
        let _ = writeln!(o, "  signal handlers for {}", sig.join(" "));
    }
    if !t.threads.is_empty() {
        let _ = writeln!(o, "  Threads");
        let mut tb = Table::new(&[
            ("TID", Align::Right),
            ("RIP", Align::Right),
            ("RSP", Align::Right),
            ("SIGMASK", Align::Right),
            ("FPU", Align::Left),
        ]);
        for th in &t.threads {
            tb.row(vec![
                th.tid.to_string(),
                hex(th.regs.0.rip),
                hex(th.regs.0.rsp),
                hex(th.sigmask),
                th.fpu.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        tb.render(4, o);
    }
    if let Some(m) = &t.mm {
        let _ = writeln!(o, "  Memory");
        if let Some(e) = &m.exe {
            let _ = writeln!(o, "    exe    {e}");
        }
        if let Some(c) = &t.cmdline {
            let _ = writeln!(o, "    cmdline {}", cmdline(c));
        }
        let _ = writeln!(
            o,
            "    code   {}  data {}  brk {}",
            range(m.code),
            range(m.data),
            range(m.brk)
        );
        let _ = writeln!(
            o,
            "    stack  {:#x}  args {}  env {}  auxv {} entries  personality {:#x}",
            m.start_stack,
            range(m.args),
            range(m.env),
            m.auxv_entries,
            m.personality
        );
    }
    if !t.vmas.is_empty() {
        let (mut tp, mut tz, mut tsz) = (0u64, 0u64, 0u64);
        let mut tb = Table::new(&[
            ("START", Align::Right),
            ("END", Align::Right),
            ("SIZE", Align::Right),
            ("PROT", Align::Left),
            ("KIND", Align::Left),
            ("PAGES", Align::Right),
            ("ZERO", Align::Right),
            ("FILE", Align::Left),
        ]);
        for v in &t.vmas {
            let size = v.end.saturating_sub(v.start);
            tp = tp.saturating_add(v.pages);
            tz = tz.saturating_add(v.zero_pages);
            tsz = tsz.saturating_add(size);
            tb.row(vec![
                hex(v.start),
                hex(v.end),
                fmt::human(size),
                format!(
                    "{}{}",
                    v.prot,
                    if v.flags & VM_SHARED != 0 { 's' } else { 'p' }
                ),
                v.kind.clone(),
                v.pages.to_string(),
                v.zero_pages.to_string(),
                v.file.clone().unwrap_or_default(),
            ]);
        }
        let _ = writeln!(
            o,
            "  VMAs ({}, {} mapped, {} pages stored, {} zero)",
            t.vmas.len(),
            fmt::human(tsz),
            tp,
            tz
        );
        tb.render(4, o);
    }
    if !t.fds.is_empty() {
        let _ = writeln!(o, "  Files");
        let mut tb = Table::new(&[
            ("FD", Align::Right),
            ("OBJ", Align::Right),
            ("KIND", Align::Left),
            ("FLAGS", Align::Right),
            ("POS", Align::Right),
            ("CLOEXEC", Align::Left),
            ("PATH", Align::Left),
        ]);
        for f in &t.fds {
            let what = match (&f.socket, f.pipe) {
                (Some(s), _) => s.clone(),
                (None, Some(p)) => format!("pipe {p}"),
                (None, None) if f.path.is_empty() => "-".into(),
                (None, None) => f.path.clone(),
            };
            tb.row(vec![
                f.fd.to_string(),
                f.file.to_string(),
                f.kind.clone(),
                format!("{:#o}", f.flags),
                f.pos.to_string(),
                if f.cloexec { "yes" } else { "no" }.into(),
                what,
            ]);
        }
        tb.render(4, o);
    }
    if !t.records.is_empty() {
        let _ = writeln!(o, "  Records");
        records(&t.records, 4, o);
    }
}

/// Typed records as a table: owner, record, fields (`name=value ...`).
fn records(rs: &[crate::summary::RecordSummary], indent: usize, o: &mut String) {
    let mut tb = Table::new(&[
        ("OWNER", Align::Left),
        ("RECORD", Align::Left),
        ("FIELDS", Align::Left),
    ]);
    for r in rs {
        let f: Vec<String> = r.fields.iter().map(|[k, v]| format!("{k}={v}")).collect();
        tb.row(vec![r.owner.clone(), r.record.clone(), f.join(" ")]);
    }
    tb.render(indent, o);
}

/// `show --json`: the summary, plus `valid` and `error`.
#[derive(Serialize)]
pub struct ShowJson<'a> {
    /// The summary fields, flattened.
    #[serde(flatten)]
    pub summary: &'a Summary,
    /// False when decoding stopped at an error.
    pub valid: bool,
    /// The error, if any.
    pub error: Option<ErrorJson>,
}

/// An image error as JSON.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorJson {
    /// Byte offset.
    pub offset: u64,
    /// Record type name, when known.
    pub record: Option<String>,
    /// Record type code, when known.
    pub record_code: Option<u32>,
    /// The full message (offset, record, found vs expected).
    pub message: String,
}

impl ErrorJson {
    /// From a format error.
    pub fn from_error(e: &ckpt_format::Error) -> ErrorJson {
        ErrorJson {
            offset: e.offset,
            record: e.record.as_ref().map(|r| r.name.to_string()),
            record_code: e.record.as_ref().map(|r| r.code),
            message: e.to_string(),
        }
    }
}

/// `show --json` as a pretty-printed string with a trailing newline.
pub fn show_json(s: &Summary, error: Option<&ckpt_format::Error>) -> String {
    let j = ShowJson {
        summary: s,
        valid: error.is_none(),
        error: error.map(ErrorJson::from_error),
    };
    let mut out = serde_json::to_string_pretty(&j).unwrap_or_default();
    out.push('\n');
    out
}
