//! `implode DIR -o IMAGE [--rev REV]`: turn a (possibly edited) tree back into an image.
//!
//! (Over 800 lines: it is the inverse of tree.rs, one reader per kind of tree directory,
//! kept in one file so that the two mirror each other line for line; the per-event
//! readers are the place to split it when it grows.)
//!
//! The `order` file says which events to emit in which order; every value is
//! read from its file. Every event goes through the target revision's
//! encoder, whose checker enforces the model's rules; a refusal is reported
//! with the tree path the event came from. The output is written to a
//! temporary file next to IMAGE and renamed over it only on success.

use super::tree::{fpu_kind_name, MEM_LIMIT};
use super::{parse_prot, parse_u64, Error, Result};
use ckpt_format::{
    encoder, Addrs, Arch, Creds, Event, EventSink, Extras, Fd, File, FileKind, Fpu, FpuKind, Fs,
    Header, Kernel, Mm, PageChunk, Pipe, Regs, Revision, Rlimit, SigAction, Task, Thread, Unknown,
    Vma, VmaKind, ZeroRun,
};
use nix::unistd::{lseek, Whence};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind as IoKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Options of [`implode`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ImplodeOptions {
    /// Revision to write; default: `header/revision` of the tree.
    pub rev: Option<Revision>,
}

/// What [`implode`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImplodeReport {
    /// Revision written.
    pub revision: Revision,
    /// Events emitted.
    pub events: u64,
}

/// Most pages one `pages` line may name (bounds memory; the encoder splits
/// long chunks into records itself).
const MAX_LINE_PAGES: u64 = 1 << 16;

struct Dir<'a> {
    root: &'a Path,
}

impl Dir<'_> {
    fn raw(&self, rel: &str) -> Result<Vec<u8>> {
        fs::read(self.root.join(rel)).map_err(|e| Error(format!("{rel}: {e}")))
    }
    fn opt_raw(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.root.join(rel)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => Err(Error(format!("{rel}: {e}"))),
        }
    }
    /// A byte string: the file minus one trailing newline.
    fn bstr(&self, rel: &str) -> Result<Vec<u8>> {
        let mut b = self.raw(rel)?;
        if b.last() == Some(&b'\n') {
            b.pop();
        }
        Ok(b)
    }
    fn opt_bstr(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        if self.root.join(rel).symlink_metadata().is_err() {
            return Ok(None);
        }
        self.bstr(rel).map(Some)
    }
    fn string(&self, rel: &str) -> Result<String> {
        String::from_utf8(self.bstr(rel)?).map_err(|_| Error(format!("{rel}: not UTF-8 text")))
    }
    fn u64(&self, rel: &str) -> Result<u64> {
        let s = self.string(rel)?;
        parse_u64(&s).ok_or_else(|| {
            Error(format!(
                "{rel}: expected an unsigned number (decimal, 0x hex or 0o octal), found {:?}",
                s.trim()
            ))
        })
    }
    fn u32(&self, rel: &str) -> Result<u32> {
        let v = self.u64(rel)?;
        u32::try_from(v).map_err(|_| Error(format!("{rel}: {v} does not fit in 32 bits")))
    }
    fn u16(&self, rel: &str) -> Result<u16> {
        let v = self.u64(rel)?;
        u16::try_from(v).map_err(|_| Error(format!("{rel}: {v} does not fit in 16 bits")))
    }
    fn i32(&self, rel: &str) -> Result<i32> {
        let s = self.string(rel)?;
        s.trim().parse::<i32>().map_err(|_| {
            Error(format!(
                "{rel}: expected a 32-bit integer, found {:?}",
                s.trim()
            ))
        })
    }
    fn words(&self, rel: &str) -> Result<Vec<u64>> {
        let s = self.string(rel)?;
        s.split_whitespace()
            .map(|w| parse_u64(w).ok_or_else(|| Error(format!("{rel}: bad number {w:?}"))))
            .collect()
    }
    fn u32s(&self, rel: &str) -> Result<Vec<u32>> {
        self.words(rel)?
            .into_iter()
            .map(|v| u32::try_from(v).map_err(|_| Error(format!("{rel}: {v} exceeds 32 bits"))))
            .collect()
    }
    fn exists(&self, rel: &str) -> bool {
        self.root.join(rel).symlink_metadata().is_ok()
    }
    /// Numbered subdirectories `0..` or `1..` of `rel`, in order; they must be contiguous.
    fn numbered(&self, rel: &str, first: usize) -> Result<usize> {
        let mut n = 0usize;
        let rd = fs::read_dir(self.root.join(rel)).map_err(|e| Error(format!("{rel}: {e}")))?;
        let mut seen = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Error(format!("{rel}: {e}")))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let i: usize = name
                .parse()
                .map_err(|_| Error(format!("{rel}/{name}: expected a numbered directory")))?;
            seen.push(i);
            n += 1;
        }
        seen.sort_unstable();
        for (k, i) in seen.iter().enumerate() {
            if *i != k + first {
                return Err(Error(format!(
                    "{rel}: entries must be numbered {first}..{} without gaps (missing {})",
                    n + first - 1,
                    k + first
                )));
            }
        }
        Ok(n)
    }
    /// The typed records under `rel/records/` (see tree.rs), in code order and, for a kind
    /// that repeats (`NAME.0`, `NAME.1`, ...), in index order.
    fn typed_records(&self, rel: &str) -> Result<Vec<ckpt_format::native::records::Encoded>> {
        let d = format!("{rel}/records");
        let Ok(rd) = fs::read_dir(self.root.join(&d)) else {
            return Ok(Vec::new());
        };
        let mut v = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Error(format!("{d}: {e}")))?;
            let file = e.file_name().to_string_lossy().into_owned();
            let (name, index) = match file.rsplit_once('.') {
                Some((n, i)) if !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => {
                    let i: usize = i
                        .parse()
                        .map_err(|_| Error(format!("{d}/{file}: index too large")))?;
                    (n.to_string(), i)
                }
                _ => (file.clone(), 0),
            };
            let code = ckpt_format::native::records::code_of(&name).ok_or_else(|| {
                Error(format!(
                    "{d}/{file}: not a typed record name (expected one of `ckpt-inspect schema --rev native-1`'s typed records)"
                ))
            })?;
            v.push((code, index, self.raw(&format!("{d}/{file}"))?));
        }
        v.sort_by_key(|x| (x.0, x.1));
        Ok(v.into_iter().map(|(c, _, p)| (c, p)).collect())
    }
    fn extras(&self, rel: &str) -> Result<Extras> {
        let mut x = Extras::new();
        for (sub, is_u64) in [("u64", true), ("bytes", false)] {
            let d = format!("{rel}/extras/{sub}");
            let Ok(rd) = fs::read_dir(self.root.join(&d)) else {
                continue;
            };
            for e in rd {
                let e = e.map_err(|e| Error(format!("{d}: {e}")))?;
                let k = e.file_name().to_string_lossy().into_owned();
                let p = format!("{d}/{k}");
                if is_u64 {
                    x.set_u64(&k, self.u64(&p)?);
                } else {
                    x.set_bytes(&k, &self.raw(&p)?);
                }
            }
        }
        Ok(x)
    }
}

/// Data regions of `f` within `[lo, hi)` (SEEK_DATA / SEEK_HOLE).
fn data_ranges(f: &fs::File, lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut pos = lo;
    while pos < hi {
        let Ok(p) = i64::try_from(pos) else { break };
        let d = match lseek(f, p, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(_) => break, // ENXIO: no data after pos
        };
        if d >= hi {
            break;
        }
        let h = match lseek(f, d as i64, Whence::SeekHole) {
            Ok(h) => (h as u64).min(hi),
            Err(_) => hi,
        };
        out.push((d, h));
        if h <= d {
            break;
        }
        pos = h;
    }
    out
}

struct MemUse {
    file: fs::File,
    /// Task directory it belongs to and whether offsets are relative to `base`.
    base: u64,
    covered: Vec<(u64, u64)>,
    vmas: Vec<(u64, u64, String)>,
}

struct State<'a> {
    d: Dir<'a>,
    page_size: u64,
    mems: HashMap<String, MemUse>,
    task: String,
    events: u64,
}

impl State<'_> {
    /// The memory file holding page `addr` of the VMA at `vrel`, and its offset there.
    fn mem_for(&mut self, vrel: &str, vstart: u64, vend: u64) -> Result<(String, u64)> {
        let own = format!("{vrel}/mem");
        let (rel, base) = if self.d.exists(&own) {
            (own, vstart)
        } else if vend > MEM_LIMIT {
            return Err(Error(format!("{own}: missing (the VMA lies above the file-offset limit, so its pages live there)")));
        } else {
            (format!("{}/mem", self.task), 0)
        };
        if !self.mems.contains_key(&rel) {
            let file =
                fs::File::open(self.d.root.join(&rel)).map_err(|e| Error(format!("{rel}: {e}")))?;
            self.mems.insert(
                rel.clone(),
                MemUse {
                    file,
                    base,
                    covered: Vec::new(),
                    vmas: Vec::new(),
                },
            );
        }
        Ok((rel, base))
    }

    fn read_at(&self, rel: &str, off: u64, len: u64) -> Result<Vec<u8>> {
        let m = &self.mems[rel];
        let n = usize::try_from(len).map_err(|_| Error(format!("{rel}: read too large")))?;
        let mut buf = vec![0u8; n];
        m.file.read_exact_at(&mut buf, off).map_err(|e| {
            Error(format!(
                "{rel}: cannot read {len} bytes at offset {off:#x}: {e}"
            ))
        })?;
        Ok(buf)
    }
}

/// Implode the tree at `dir` into the image file `out`: a new or regular file is
/// replaced through a temporary file, a FIFO or device written through, a directory
/// refused ([`ckpt_format::output`]).
pub fn implode(dir: &Path, out: &Path, opts: &ImplodeOptions) -> Result<ImplodeReport> {
    let mut outf = ckpt_format::output::Output::create(out)
        .map_err(|e| Error(format!("{}: {e}", out.display())))?;
    let r = implode_to(dir, &mut outf, opts)?;
    outf.commit()
        .map_err(|e| Error(format!("{}: {e}", out.display())))?;
    Ok(r)
}

/// Implode the tree at `dir` into `outf` (the caller commits or abandons it).
pub fn implode_to(
    dir: &Path,
    outf: &mut dyn std::io::Write,
    opts: &ImplodeOptions,
) -> Result<ImplodeReport> {
    let out = Path::new("the output");
    let d = Dir { root: dir };
    let header = read_header(&d)?;
    let rev = opts.rev.unwrap_or(header.revision);
    let order = d.string("order")?;
    let mut st = State {
        d,
        page_size: header.page_size as u64,
        mems: HashMap::new(),
        task: String::new(),
        events: 0,
    };
    {
        let mut enc = encoder(rev, std::io::BufWriter::with_capacity(1 << 16, outf));
        let mut header = Some(header);
        for (ln, line) in order.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (kind, rel) = line.split_once(' ').unwrap_or((line, ""));
            let at = format!("order line {}", ln + 1);
            match kind {
                "header" => {
                    let h = header
                        .take()
                        .ok_or_else(|| Error(format!("{at}: a second header")))?;
                    emit(&mut *enc, &mut st, Event::Header(h), "header")?;
                }
                "task" => {
                    st.task = rel.to_string();
                    let t = read_task(&st.d, rel)?;
                    emit(&mut *enc, &mut st, Event::Task(t), rel)?;
                }
                "thread" => {
                    let t = read_thread(&st.d, rel)?;
                    emit(&mut *enc, &mut st, Event::Thread(t), rel)?;
                }
                "mm" => {
                    let m = read_mm(&st.d, rel)?;
                    emit(&mut *enc, &mut st, Event::Mm(m), rel)?;
                }
                "vma" => vma(&mut *enc, &mut st, rel)?,
                "fs" => {
                    let f = Fs {
                        cwd: st.d.bstr(&format!("{rel}/cwd"))?,
                        root: st.d.bstr(&format!("{rel}/root"))?,
                        umask: st.d.u32(&format!("{rel}/umask"))?,
                    };
                    emit(&mut *enc, &mut st, Event::Fs(f), rel)?;
                }
                "sigactions" => {
                    let n = st.d.numbered(rel, 1)?;
                    let mut v = Vec::with_capacity(n);
                    for i in 1..=n {
                        let p = format!("{rel}/{i}");
                        v.push(SigAction {
                            handler: st.d.u64(&format!("{p}/handler"))?,
                            flags: st.d.u64(&format!("{p}/flags"))?,
                            restorer: st.d.u64(&format!("{p}/restorer"))?,
                            mask: st.d.u64(&format!("{p}/mask"))?,
                        });
                    }
                    emit(&mut *enc, &mut st, Event::SigActions(v), rel)?;
                }
                "rlimits" => {
                    let n = st.d.numbered(rel, 0)?;
                    let mut v = Vec::with_capacity(n);
                    for i in 0..n {
                        let r = |f: &str| -> Result<u64> {
                            let p = format!("{rel}/{i}/{f}");
                            if st.d.string(&p)?.trim() == "unlimited" {
                                Ok(u64::MAX)
                            } else {
                                st.d.u64(&p)
                            }
                        };
                        v.push(Rlimit {
                            cur: r("cur")?,
                            max: r("max")?,
                        });
                    }
                    emit(&mut *enc, &mut st, Event::Rlimits(v), rel)?;
                }
                "file" => {
                    let f = read_file(&st.d, rel)?;
                    emit(&mut *enc, &mut st, Event::File(f), rel)?;
                }
                "pipe" => {
                    let p = Pipe {
                        id: st.d.u32(&format!("{rel}/id"))?,
                        data: Cow::Owned(st.d.raw(&format!("{rel}/data"))?),
                    };
                    emit(&mut *enc, &mut st, Event::Pipe(p), rel)?;
                }
                "fd" => {
                    let f = read_fd(&st.d, rel)?;
                    emit(&mut *enc, &mut st, Event::Fd(f), rel)?;
                }
                "unknown" => {
                    let u = read_unknown(&st.d, rel)?;
                    emit(&mut *enc, &mut st, Event::Unknown(u), rel)?;
                }
                "error" => {
                    let m = st.d.raw(rel)?;
                    emit(&mut *enc, &mut st, Event::Error(m), rel)?;
                }
                "tail" => emit(&mut *enc, &mut st, Event::Tail, "order")?,
                other => {
                    return Err(Error(format!(
                        "order line {}: unknown entry kind {other:?}",
                        ln + 1
                    )))
                }
            }
        }
        enc.finish()
            .map_err(|e| Error(format!("{}: {e}", out.display())))?;
    }
    check_stray(&st)?;
    Ok(ImplodeReport {
        revision: rev,
        events: st.events,
    })
}

fn emit(enc: &mut dyn EventSink, st: &mut State<'_>, mut ev: Event<'_>, rel: &str) -> Result<()> {
    st.events += 1;
    if matches!(
        ev,
        Event::Task(_) | Event::Thread(_) | Event::Vma(_) | Event::File(_)
    ) {
        let recs = st.d.typed_records(rel)?;
        ckpt_format::native::records::decode_into_event(&mut ev, &recs)
            .map_err(|e| Error(format!("{rel}/records: {e}")))?;
    }
    // Trees written before typed records had their own directory spell them as extras keys.
    ckpt_format::model::records::adopt::event(&mut ev).map_err(|e| Error(format!("{rel}: {e}")))?;
    enc.event(&ev)
        .map_err(|e| Error(format!("{rel}: refused: {e}")))
}

fn read_header(d: &Dir<'_>) -> Result<Header> {
    let rev = d.string("header/revision")?;
    let revision = Revision::from_name(rev.trim()).ok_or_else(|| {
        Error(format!(
            "header/revision: unknown revision {rev:?} (expected cr-v5, ckpt-v21 or native-1)"
        ))
    })?;
    let arch = match d.string("header/arch")?.trim() {
        "x86_64" => Arch::X86_64,
        "x86_32" => Arch::X86_32,
        a => {
            return Err(Error(format!(
                "header/arch: unknown arch {a:?} (expected x86_64 or x86_32)"
            )))
        }
    };
    Ok(Header {
        revision,
        arch,
        page_size: d.u32("header/page_size")?,
        kernel: Kernel {
            major: d.u16("header/kernel_major")?,
            minor: d.u16("header/kernel_minor")?,
            patch: d.u16("header/kernel_patch")?,
            release: d.bstr("header/kernel_release")?,
            version: d.bstr("header/kernel_version")?,
            machine: d.bstr("header/kernel_machine")?,
        },
        time: d.u64("header/time")?,
        flags: d.u64("header/flags")?,
        tool: d.string("header/tool")?,
        tool_version: d.string("header/tool_version")?,
        extras: d.extras("header")?,
        parent: None,
    })
}

fn four(d: &Dir<'_>, rel: &str) -> Result<[u32; 4]> {
    let v = d.u32s(rel)?;
    v.as_slice()
        .try_into()
        .map_err(|_| Error(format!("{rel}: expected 4 numbers, found {}", v.len())))
}

fn read_task(d: &Dir<'_>, rel: &str) -> Result<Task> {
    let f = |n: &str| format!("{rel}/{n}");
    Ok(Task {
        pid: d.i32(&f("pid"))?,
        tgid: d.i32(&f("tgid"))?,
        ppid: d.i32(&f("ppid"))?,
        pgid: d.i32(&f("pgid"))?,
        sid: d.i32(&f("sid"))?,
        comm: d.bstr(&f("comm"))?,
        state: d.u32(&f("state"))?,
        exit_state: d.u32(&f("exit_state"))?,
        exit_code: d.u32(&f("exit_code"))?,
        exit_signal: d.u32(&f("exit_signal"))?,
        creds: Creds {
            uid: four(d, &f("uid"))?,
            gid: four(d, &f("gid"))?,
            groups: d.u32s(&f("groups"))?,
        },
        records: Default::default(),
        extras: d.extras(rel)?,
    })
}

fn read_thread(d: &Dir<'_>, rel: &str) -> Result<Thread> {
    let f = |n: &str| format!("{rel}/{n}");
    let mut regs = [0u64; 27];
    for (i, name) in Regs::NAMES.iter().enumerate() {
        regs[i] = d.u64(&f(&format!("regs/{name}")))?;
    }
    let fpu = match d.opt_raw(&f("fpu"))? {
        None => None,
        Some(data) => {
            let k = d.string(&f("fpu_kind"))?;
            let kind = [FpuKind::Xsave, FpuKind::Fxsave, FpuKind::Legacy]
                .into_iter()
                .find(|x| fpu_kind_name(*x) == k.trim())
                .ok_or_else(|| {
                    Error(format!(
                        "{}: unknown FPU kind {k:?} (expected xsave, fxsave or legacy)",
                        f("fpu_kind")
                    ))
                })?;
            Some(Fpu {
                kind,
                xfeatures: d.u64(&f("fpu_xfeatures"))?,
                data,
            })
        }
    };
    Ok(Thread {
        tid: d.i32(&f("tid"))?,
        regs: Regs::from_array(regs),
        fpu,
        tls: d.raw(&f("tls"))?,
        sigmask: d.u64(&f("sigmask"))?,
        records: Default::default(),
        extras: d.extras(rel)?,
    })
}

fn read_mm(d: &Dir<'_>, rel: &str) -> Result<Mm> {
    let f = |n: &str| format!("{rel}/{n}");
    let personality = d.u32(&f("personality"))?;
    Ok(Mm {
        start_code: d.u64(&f("start_code"))?,
        end_code: d.u64(&f("end_code"))?,
        start_data: d.u64(&f("start_data"))?,
        end_data: d.u64(&f("end_data"))?,
        start_brk: d.u64(&f("start_brk"))?,
        brk: d.u64(&f("brk"))?,
        start_stack: d.u64(&f("start_stack"))?,
        arg_start: d.u64(&f("arg_start"))?,
        arg_end: d.u64(&f("arg_end"))?,
        env_start: d.u64(&f("env_start"))?,
        env_end: d.u64(&f("env_end"))?,
        auxv: d.words(&f("auxv"))?,
        exe: d.opt_bstr(&f("exe"))?,
        personality,
        extras: d.extras(rel)?,
    })
}

fn link_id(d: &Dir<'_>, rel: &str, prefix: &str, what: &str) -> Result<u32> {
    let t = fs::read_link(d.root.join(rel)).map_err(|e| Error(format!("{rel}: {e}")))?;
    let ts = t.to_string_lossy().into_owned();
    let id = ts
        .strip_prefix(prefix)
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| {
            Error(format!(
                "{rel}: link target {ts:?} is not of the form {prefix}ID"
            ))
        })?;
    let target = Path::new(rel).parent().unwrap_or(Path::new("")).join(&t);
    if !d.root.join(&target).is_dir() {
        return Err(Error(format!(
            "{rel}: points to {ts}, but the tree has no {what} {id}"
        )));
    }
    Ok(id)
}

fn read_file(d: &Dir<'_>, rel: &str) -> Result<File> {
    let f = |n: &str| format!("{rel}/{n}");
    let k = d.string(&f("kind"))?;
    let kind = (1..=7)
        .filter_map(FileKind::from_code)
        .find(|x| x.name() == k.trim())
        .ok_or_else(|| Error(format!("{}: unknown file kind {k:?}", f("kind"))))?;
    let pipe = if d.exists(&f("pipe")) {
        Some(link_id(d, &f("pipe"), "../../pipes/", "pipe")?)
    } else {
        None
    };
    Ok(File {
        id: d.u32(&f("id"))?,
        kind,
        path: d.bstr(&f("path"))?,
        flags: d.u32(&f("f_flags"))?,
        mode: d.u32(&f("f_mode"))?,
        pos: d.u64(&f("f_pos"))?,
        pipe,
        records: Default::default(),
        extras: d.extras(rel)?,
    })
}

fn read_fd(d: &Dir<'_>, rel: &str) -> Result<Fd> {
    let coe = d.u64(&format!("{rel}/coe"))?;
    if coe > 1 {
        return Err(Error(format!("{rel}/coe: expected 0 or 1, found {coe}")));
    }
    Ok(Fd {
        fd: d.i32(&format!("{rel}/fd_nr"))?,
        cloexec: coe == 1,
        file: link_id(d, &format!("{rel}/file"), "../../../files/", "file")?,
    })
}

fn read_unknown(d: &Dir<'_>, rel: &str) -> Result<Unknown<'static>> {
    let r = d.string(&format!("{rel}/revision"))?;
    Ok(Unknown {
        revision: Revision::from_name(r.trim())
            .ok_or_else(|| Error(format!("{rel}/revision: unknown revision {r:?}")))?,
        type_code: d.u32(&format!("{rel}/type_code"))?,
        parent: d.u32(&format!("{rel}/parent"))?,
        payload: Cow::Owned(d.raw(&format!("{rel}/payload"))?),
    })
}

fn parse_run(s: &str) -> Option<(u64, u64)> {
    let (a, c) = s.split_once(':')?;
    Some((parse_u64(a)?, parse_u64(c)?))
}

fn vma(enc: &mut dyn EventSink, st: &mut State<'_>, rel: &str) -> Result<()> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let (start, end) = name
        .split_once('-')
        .and_then(|(a, b)| {
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .ok_or_else(|| Error(format!("{rel}: a VMA directory is named START-END in hex")))?;
    let f = |n: &str| format!("{rel}/{n}");
    let k = st.d.string(&f("kind"))?;
    let kind = (1..=8)
        .filter_map(VmaKind::from_code)
        .find(|x| x.name() == k.trim())
        .ok_or_else(|| Error(format!("{}: unknown VMA kind {k:?}", f("kind"))))?;
    let ps = st.d.string(&f("prot"))?;
    let v = Vma {
        start,
        end,
        prot: parse_prot(ps.trim()).ok_or_else(|| {
            Error(format!(
                "{}: expected rwx letters or a number, found {ps:?}",
                f("prot")
            ))
        })?,
        flags: st.d.u64(&f("flags"))?,
        pgoff: st.d.u64(&f("pgoff"))?,
        kind,
        file: st.d.opt_bstr(&f("file"))?,
        records: Default::default(),
        extras: st.d.extras(rel)?,
    };
    emit(enc, st, Event::Vma(v), rel)?;
    let (mem, base) = st.mem_for(rel, start, end)?;
    if let Some(m) = st.mems.get_mut(&mem) {
        m.vmas.push((start, end, rel.to_string()));
    }
    let pages_rel = f("pages");
    let lines = st.d.string(&pages_rel)?;
    let ps = st.page_size;
    for (ln, line) in lines.lines().enumerate() {
        let at = format!("{pages_rel} line {}", ln + 1);
        let mut w = line.split_whitespace();
        let Some(k) = w.next() else { continue };
        let bad = |what: &str| Error(format!("{at}: {what}"));
        match k {
            "pages" => {
                let mut runs = Vec::new();
                let mut total = 0u64;
                for r in w {
                    let (s, c) = parse_run(r)
                        .ok_or_else(|| bad(&format!("bad run {r:?} (expected START:COUNT)")))?;
                    total = total.saturating_add(c);
                    runs.push((s, c));
                }
                if total == 0 || total > MAX_LINE_PAGES {
                    return Err(bad(&format!(
                        "a pages line names 1 to {MAX_LINE_PAGES} pages, found {total}"
                    )));
                }
                let mut rb = Vec::with_capacity(runs.len() * 16);
                let mut data = Vec::new();
                for &(s, c) in &runs {
                    rb.extend_from_slice(&s.to_le_bytes());
                    rb.extend_from_slice(&c.to_le_bytes());
                    let off = s
                        .checked_sub(base)
                        .filter(|_| s >= start && s < end)
                        .ok_or_else(|| {
                            bad(&format!(
                                "refused: page {s:#x} lies outside this VMA ({start:#x}..{end:#x})"
                            ))
                        })?;
                    let len = c
                        .checked_mul(ps)
                        .filter(|l| s.checked_add(*l).is_some_and(|e| e <= end))
                        .ok_or_else(|| {
                            bad(&format!(
                                "refused: pages {s:#x}+{c} run past the end of this VMA ({end:#x})"
                            ))
                        })?;
                    data.extend_from_slice(&st.read_at(&mem, off, len)?);
                    if let Some(m) = st.mems.get_mut(&mem) {
                        m.covered.push((off, off + len));
                    }
                }
                let addrs = Addrs::from_runs(&rb, ps as u32)
                    .ok_or_else(|| bad("runs overflow the address space"))?;
                let ev = Event::Pages(PageChunk {
                    addrs,
                    data: Cow::Owned(data),
                });
                emit(enc, st, ev, &at)?;
            }
            "zero" => {
                let r = w.next().unwrap_or("");
                let (s, c) = parse_run(r)
                    .ok_or_else(|| bad(&format!("bad run {r:?} (expected START:COUNT)")))?;
                let len = c.checked_mul(ps).ok_or_else(|| bad("run too long"))?;
                let off = s
                    .checked_sub(base)
                    .filter(|_| s >= start && s.checked_add(len).is_some_and(|e| e <= end))
                    .ok_or_else(|| bad(&format!("refused: zero pages {s:#x}+{c} lie outside this VMA ({start:#x}..{end:#x})")))?;
                if let Some(m) = st.mems.get_mut(&mem) {
                    m.covered.push((off, off + len));
                }
                zero_run(enc, st, &mem, base, s, c, &at)?;
            }
            "unknown" | "error" => {
                let r = w.next().unwrap_or("");
                let ev = if k == "unknown" {
                    Event::Unknown(read_unknown(&st.d, r)?)
                } else {
                    Event::Error(st.d.raw(r)?)
                };
                emit(enc, st, ev, r)?;
            }
            other => {
                return Err(bad(&format!(
                    "unknown entry {other:?} (expected pages, zero, unknown or error)"
                )))
            }
        }
    }
    emit(enc, st, Event::VmaEnd, rel)
}

/// Emit a zero run, or, where `mem` now holds non-zero bytes in it (an
/// edit), the run split around those pages.
#[allow(clippy::too_many_arguments)]
fn zero_run(
    enc: &mut dyn EventSink,
    st: &mut State<'_>,
    mem: &str,
    base: u64,
    start: u64,
    count: u64,
    at: &str,
) -> Result<()> {
    let ps = st.page_size;
    let lo = start - base;
    let hi = lo + count * ps;
    let mut dirty: Vec<u64> = Vec::new(); // page indexes with non-zero bytes
    for (d, h) in data_ranges(&st.mems[mem].file, lo, hi) {
        let first = (d - lo) / ps;
        let last = (h - lo).div_ceil(ps);
        for i in first..last {
            let page = st.read_at(mem, lo + i * ps, ps)?;
            if page.iter().any(|&b| b != 0) {
                dirty.push(i);
            }
        }
    }
    if dirty.is_empty() {
        return emit(enc, st, Event::ZeroPages(ZeroRun { start, count }), at);
    }
    let mut i = 0u64;
    let mut k = 0usize;
    while i < count {
        if k < dirty.len() && dirty[k] == i {
            let mut addrs = Vec::new();
            let mut data = Vec::new();
            while k < dirty.len() && dirty[k] == i {
                addrs.push(start + i * ps);
                data.extend_from_slice(&st.read_at(mem, lo + i * ps, ps)?);
                i += 1;
                k += 1;
            }
            let ev = Event::Pages(PageChunk {
                addrs: Addrs::from_u64s(&addrs),
                data: Cow::Owned(data),
            });
            emit(enc, st, ev, at)?;
        } else {
            let next = dirty.get(k).copied().unwrap_or(count);
            let ev = Event::ZeroPages(ZeroRun {
                start: start + i * ps,
                count: next - i,
            });
            emit(enc, st, ev, at)?;
            i = next;
        }
    }
    Ok(())
}

/// Refuse bytes written into a memory file where no captured page is.
fn check_stray(st: &State<'_>) -> Result<()> {
    for (rel, m) in &st.mems {
        let mut cov = m.covered.clone();
        cov.sort_unstable();
        let size = m.file.metadata().map(|x| x.len()).unwrap_or(0);
        for (d, h) in data_ranges(&m.file, 0, size) {
            let mut pos = d;
            let mut i = cov.partition_point(|c| c.1 <= pos);
            while pos < h {
                if i < cov.len() && cov[i].0 <= pos {
                    pos = cov[i].1;
                    i += 1;
                    continue;
                }
                let stop = cov.get(i).map_or(h, |c| c.0.min(h));
                // Only non-zero bytes count (an editor may rewrite holes as zeros).
                let mut off = pos;
                while off < stop {
                    let n = (stop - off).min(1 << 20);
                    let mut buf = vec![0u8; n as usize];
                    m.file
                        .read_exact_at(&mut buf, off)
                        .map_err(|e| Error(format!("{rel}: {e}")))?;
                    if let Some(j) = buf.iter().position(|&b| b != 0) {
                        let addr = m.base + off + j as u64;
                        let inside = m.vmas.iter().find(|v| v.0 <= addr && addr < v.1);
                        return Err(Error(match inside {
                            Some(v) => format!(
                                "{rel}: refused: byte at {addr:#x} is not in a captured page; list the page in {}/pages to add it",
                                v.2
                            ),
                            None => format!(
                                "{rel}: refused: byte at {addr:#x} lies outside every VMA"
                            ),
                        }));
                    }
                    off += n;
                }
                pos = stop;
            }
        }
    }
    Ok(())
}
