//! `export-core IMAGE [--pid PID] -o CORE` (issue 9): one task of an image as
//! an ELF core file that gdb opens.
//!
//! Layout (see docs/EXPORT-CORE.md):
//! - ELF header (ET_CORE, EM_X86_64), program headers, one PT_NOTE, then the
//!   PT_LOAD contents, each segment at a page-aligned file offset.
//! - Notes in the kernel's order: for the first thread NT_PRSTATUS, then
//!   NT_PRPSINFO, NT_AUXV, NT_FILE, then the first thread's NT_PRFPREG and
//!   NT_X86_XSTATE; then for every other thread NT_PRSTATUS, NT_PRFPREG,
//!   NT_X86_XSTATE.
//! - Every VMA is covered by PT_LOAD segments: each maximal run of captured
//!   pages (pages with contents and all-zero pages alike) is one segment with
//!   `p_filesz == p_memsz`; each gap of pages that were not captured is a
//!   segment with `p_filesz == 0`, the way the kernel leaves file-backed text
//!   out of its cores, so gdb reads those bytes from the mapped files.

use ckpt_format::{
    open_slice, Arch, Event, FpuKind, Mm, Regs, Task, Thread, Vma, VmaKind, PROT_EXEC, PROT_READ,
    PROT_WRITE,
};
use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, Writer};
use object::write::StreamingBuffer;
use object::Endianness;
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::Path;

/// `NT_PRSTATUS`.
pub const NT_PRSTATUS: u32 = 1;
/// `NT_PRFPREG`.
pub const NT_PRFPREG: u32 = 2;
/// `NT_PRPSINFO`.
pub const NT_PRPSINFO: u32 = 3;
/// `NT_AUXV`.
pub const NT_AUXV: u32 = 6;
/// `NT_FILE`.
pub const NT_FILE: u32 = 0x4649_4c45;
/// `NT_X86_XSTATE`.
pub const NT_X86_XSTATE: u32 = 0x202;

/// Size of x86-64 `struct elf_prstatus`.
pub const PRSTATUS_SIZE: usize = 336;
/// Size of x86-64 `struct elf_prpsinfo`.
pub const PRPSINFO_SIZE: usize = 136;

/// An export error; the message names the image offset, the pid or the output path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Options of [`export_core`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// The task to export; default: the first task of the image.
    pub pid: Option<i32>,
}

/// What [`export_core`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The task exported.
    pub pid: i32,
    /// Threads (one NT_PRSTATUS each).
    pub threads: usize,
    /// PT_LOAD segments.
    pub loads: usize,
    /// PT_LOAD segments with contents.
    pub loads_with_data: usize,
    /// Bytes of the core file.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy)]
enum Data {
    /// `len` bytes at this offset of the image.
    Image(usize),
    /// Owned bytes: buffer index in `Collected::owned`, offset in it.
    Owned(usize, usize),
    /// All zero.
    Zero,
}

/// A run of captured pages.
#[derive(Debug, Clone, Copy)]
struct Run {
    addr: u64,
    len: u64,
    data: Data,
}

#[derive(Default)]
struct Collected {
    task: Option<Task>,
    threads: Vec<Thread>,
    mm: Option<Mm>,
    vmas: Vec<(Vma, Vec<Run>)>,
    owned: Vec<Vec<u8>>,
    page_size: u64,
}

fn offset_in(outer: &[u8], inner: &[u8]) -> Option<usize> {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    (!inner.is_empty() && i >= o && i.checked_add(inner.len())? <= o.checked_add(outer.len())?)
        .then(|| i - o)
}

fn collect(img: &[u8], want: Option<i32>) -> Result<Collected, Error> {
    let mut src = open_slice(img).map_err(|e| Error(format!("image: {e}")))?;
    let mut c = Collected {
        page_size: 4096,
        ..Collected::default()
    };
    let mut mine = false;
    let mut first_pid = None;
    loop {
        let ev = match src.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => return Err(Error(format!("image: {e}"))),
        };
        match ev {
            Event::Header(h) => {
                if h.arch != Arch::X86_64 {
                    return Err(Error(format!(
                        "image: tasks are {}, export-core writes x86_64 cores only",
                        h.arch
                    )));
                }
                c.page_size = h.page_size as u64;
            }
            Event::Task(t) => {
                if c.task.is_some() {
                    break; // the task we want is complete
                }
                first_pid.get_or_insert(t.pid);
                mine = want.is_none_or(|p| p == t.pid);
                if mine {
                    c.task = Some(t);
                }
            }
            _ if !mine => {}
            Event::Thread(t) => c.threads.push(t),
            Event::Mm(m) => c.mm = Some(m),
            Event::Vma(v) => c.vmas.push((v, Vec::new())),
            Event::Pages(p) => {
                let ps = c.page_size;
                let data = match offset_in(img, &p.data) {
                    Some(o) => Data::Image(o),
                    None => {
                        c.owned.push(p.data.to_vec());
                        Data::Owned(c.owned.len() - 1, 0)
                    }
                };
                let Some((_, runs)) = c.vmas.last_mut() else {
                    continue;
                };
                let mut k = 0u64;
                for (start, count) in p.addrs.runs() {
                    let d = match data {
                        Data::Image(o) => Data::Image(o + (k * ps) as usize),
                        Data::Owned(i, o) => Data::Owned(i, o + (k * ps) as usize),
                        Data::Zero => Data::Zero,
                    };
                    runs.push(Run {
                        addr: start,
                        len: count * ps,
                        data: d,
                    });
                    k += count;
                }
            }
            Event::ZeroPages(z) => {
                if let Some((_, runs)) = c.vmas.last_mut() {
                    runs.push(Run {
                        addr: z.start,
                        len: z.count.saturating_mul(c.page_size),
                        data: Data::Zero,
                    });
                }
            }
            _ => {}
        }
    }
    if c.task.is_none() {
        return Err(Error(match want {
            Some(p) => format!("image: no task with pid {p}"),
            None => "image: no task".into(),
        }));
    }
    if c.threads.is_empty() {
        return Err(Error(format!(
            "image: task {} has no thread",
            c.task.as_ref().map_or(0, |t| t.pid)
        )));
    }
    Ok(c)
}

/// A segment of the core: `len` bytes of address space at `addr`.
struct Seg {
    addr: u64,
    len: u64,
    flags: u32,
    /// Captured contents (pieces in address order), or `None` for a gap.
    pieces: Option<Vec<Run>>,
    offset: u64,
}

fn segments(c: &Collected) -> Vec<Seg> {
    let mut out = Vec::new();
    for (v, runs) in &c.vmas {
        let mut flags = 0;
        if v.prot & PROT_READ != 0 {
            flags |= elf::PF_R.0;
        }
        if v.prot & PROT_WRITE != 0 {
            flags |= elf::PF_W.0;
        }
        if v.prot & PROT_EXEC != 0 {
            flags |= elf::PF_X.0;
        }
        let mut runs = runs.clone();
        runs.sort_by_key(|r| r.addr);
        let mut pos = v.start;
        let mut i = 0;
        while pos < v.end {
            if i < runs.len() && runs[i].addr == pos {
                let mut pieces = Vec::new();
                let start = pos;
                while i < runs.len() && runs[i].addr == pos {
                    pos = runs[i].addr + runs[i].len;
                    pieces.push(runs[i]);
                    i += 1;
                }
                out.push(Seg {
                    addr: start,
                    len: pos - start,
                    flags,
                    pieces: Some(pieces),
                    offset: 0,
                });
            } else {
                let next = runs.get(i).map_or(v.end, |r| r.addr.min(v.end));
                let next = if next <= pos { v.end } else { next };
                out.push(Seg {
                    addr: pos,
                    len: next - pos,
                    flags,
                    pieces: None,
                    offset: 0,
                });
                pos = next;
            }
        }
    }
    out
}

fn note(out: &mut Vec<u8>, name: &[u8], ty: u32, desc: &[u8]) {
    let namesz = name.len() + 1;
    out.extend_from_slice(&(namesz as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(name);
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(desc);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// The parent pid to show: `Task.ppid`, or for the root task of a capture
/// (whose `ppid` is 0) the real parent kept in its [`ckpt_format::RealParent`] record.
pub fn parent_pid(task: &Task) -> i32 {
    if task.ppid != 0 {
        return task.ppid;
    }
    task.records.real_parent.map_or(0, |p| p.ppid)
}

/// x86-64 `struct elf_prstatus` for one thread.
pub fn prstatus(task: &Task, th: &Thread) -> Vec<u8> {
    let mut b = vec![0u8; PRSTATUS_SIZE];
    // pr_info (si_signo, si_code, si_errno) and pr_cursig stay 0: the task
    // was not killed by a signal, it was checkpointed.
    b[24..32].copy_from_slice(&th.sigmask.to_le_bytes()); // pr_sighold
    b[32..36].copy_from_slice(&th.tid.to_le_bytes()); // pr_pid
    b[36..40].copy_from_slice(&parent_pid(task).to_le_bytes());
    b[40..44].copy_from_slice(&task.pgid.to_le_bytes());
    b[44..48].copy_from_slice(&task.sid.to_le_bytes());
    for (i, r) in th.regs.to_array().iter().enumerate() {
        let at = 112 + i * 8;
        b[at..at + 8].copy_from_slice(&r.to_le_bytes());
    }
    let fpvalid = th.fpu.is_some() as u32;
    b[328..332].copy_from_slice(&fpvalid.to_le_bytes());
    b
}

/// x86-64 `struct elf_prpsinfo` for the task.
pub fn prpsinfo(task: &Task, mm: Option<&Mm>) -> Vec<u8> {
    let mut b = vec![0u8; PRPSINFO_SIZE];
    let (state, sname) = match task.state {
        0 => (0u8, b'R'),
        1 => (1, b'S'),
        2 => (2, b'D'),
        4 | 8 => (3, b'T'),
        _ => (4, b'Z'),
    };
    b[0] = state;
    b[1] = sname;
    b[2] = (task.exit_state != 0) as u8;
    b[16..20].copy_from_slice(&task.creds.uid[0].to_le_bytes());
    b[20..24].copy_from_slice(&task.creds.gid[0].to_le_bytes());
    b[24..28].copy_from_slice(&task.pid.to_le_bytes());
    b[28..32].copy_from_slice(&parent_pid(task).to_le_bytes());
    b[32..36].copy_from_slice(&task.pgid.to_le_bytes());
    b[36..40].copy_from_slice(&task.sid.to_le_bytes());
    let comm = &task.comm[..task.comm.len().min(15)];
    b[40..40 + comm.len()].copy_from_slice(comm);
    // pr_psargs: the executable path is what the image keeps; argv lives in
    // the stack pages, which gdb can read itself.
    if let Some(exe) = mm.and_then(|m| m.exe.as_deref()) {
        let n = exe.len().min(79);
        b[56..56 + n].copy_from_slice(&exe[..n]);
    } else {
        b[56..56 + comm.len()].copy_from_slice(comm);
    }
    b
}

/// `NT_FILE` contents: the file-backed VMAs (file mappings and shared
/// anonymous memory, which the kernel backs by a file; not the pseudo names
/// `[vsyscall]`, `[vdso]` … that have no file).
pub fn nt_file(vmas: &[&Vma], page_size: u64) -> Vec<u8> {
    let files: Vec<&&Vma> = vmas
        .iter()
        .filter(|v| {
            matches!(v.kind, VmaKind::File | VmaKind::SharedAnon)
                && v.file.as_deref().is_some_and(|f| !f.starts_with(b"["))
        })
        .collect();
    let mut b = Vec::new();
    b.extend_from_slice(&(files.len() as u64).to_le_bytes());
    b.extend_from_slice(&page_size.to_le_bytes());
    for v in &files {
        b.extend_from_slice(&v.start.to_le_bytes());
        b.extend_from_slice(&v.end.to_le_bytes());
        b.extend_from_slice(&v.pgoff.to_le_bytes());
    }
    for v in &files {
        b.extend_from_slice(v.file.as_deref().unwrap_or(&[]));
        b.push(0);
    }
    b
}

fn fpu_notes(out: &mut Vec<u8>, th: &Thread) {
    if let Some(f) = &th.fpu {
        if matches!(f.kind, FpuKind::Xsave | FpuKind::Fxsave) && f.data.len() >= 512 {
            note(out, elf::ELF_NOTE_CORE, NT_PRFPREG, &f.data[..512]);
        }
        if f.kind == FpuKind::Xsave {
            note(out, elf::ELF_NOTE_LINUX, NT_X86_XSTATE, &f.data);
        }
    }
}

fn notes(c: &Collected) -> Vec<u8> {
    let task = c.task.as_ref().map_or_else(Task::default, |t| t.clone());
    let mut out = Vec::new();
    for (i, th) in c.threads.iter().enumerate() {
        note(
            &mut out,
            elf::ELF_NOTE_CORE,
            NT_PRSTATUS,
            &prstatus(&task, th),
        );
        if i == 0 {
            note(
                &mut out,
                elf::ELF_NOTE_CORE,
                NT_PRPSINFO,
                &prpsinfo(&task, c.mm.as_ref()),
            );
            if let Some(m) = &c.mm {
                let a: Vec<u8> = m.auxv.iter().flat_map(|x| x.to_le_bytes()).collect();
                note(&mut out, elf::ELF_NOTE_CORE, NT_AUXV, &a);
            }
            let vmas: Vec<&Vma> = c.vmas.iter().map(|(v, _)| v).collect();
            note(
                &mut out,
                elf::ELF_NOTE_CORE,
                NT_FILE,
                &nt_file(&vmas, c.page_size),
            );
        }
        fpu_notes(&mut out, th);
    }
    out
}

fn piece_bytes<'a>(c: &'a Collected, img: &'a [u8], r: &Run) -> Option<&'a [u8]> {
    let len = usize::try_from(r.len).ok()?;
    match r.data {
        Data::Image(o) => img.get(o..o.checked_add(len)?),
        Data::Owned(buf, off) => c.owned.get(buf)?.get(off..off.checked_add(len)?),
        Data::Zero => None,
    }
}

/// Export the task `opts.pid` (default: the first) of the image `img` as an
/// ELF core file written to `out`: a new or regular file is replaced through a
/// temporary file, a FIFO or device written through, a directory refused
/// ([`ckpt_format::output`]).
pub fn export_core(img: &[u8], opts: ExportOptions, out: &Path) -> Result<ExportReport, Error> {
    let mut outf = ckpt_format::output::Output::create(out)
        .map_err(|e| Error(format!("{}: {e}", out.display())))?;
    let r = export_core_to(img, opts, &mut outf)?;
    outf.commit()
        .map_err(|e| Error(format!("{}: {e}", out.display())))?;
    Ok(r)
}

/// [`export_core`] into any writer (the caller commits or abandons it).
pub fn export_core_to(
    img: &[u8],
    opts: ExportOptions,
    outf: &mut dyn Write,
) -> Result<ExportReport, Error> {
    let c = collect(img, opts.pid)?;
    let mut segs = segments(&c);
    let notes = notes(&c);
    let ps = c.page_size.max(1);

    let werr = |e: &dyn fmt::Display| Error(format!("writing the core: {e}"));
    let mut buf =
        StreamingBuffer::new(BufWriter::with_capacity(1 << 20, Counted { w: outf, n: 0 }));
    {
        let mut w = Writer::new(Endianness::Little, true, &mut buf);
        w.reserve_file_header();
        w.reserve_program_headers(1 + segs.len() as u32);
        let note_off = w.reserve(notes.len() as u64, 4);
        for s in &mut segs {
            if s.pieces.is_some() {
                s.offset = w.reserve(s.len, ps);
            }
        }
        // A segment without contents gets the file offset where the next
        // contents start (the end of the file after the last ones), as the
        // kernel does. Offset 0 would point at the ELF header, and BFD (gdb)
        // then reads the note segment again for every such segment: each
        // reading re-creates the threads, so gdb printed `[New LWP …]` once
        // per gap and numbered the threads 29 and 30.
        let mut next = w.reserved_len();
        for s in segs.iter_mut().rev() {
            if s.pieces.is_some() {
                next = s.offset;
            } else {
                s.offset = next;
            }
        }
        w.write_file_header(&FileHeader {
            os_abi: elf::ELFOSABI_SYSV,
            abi_version: 0,
            e_type: elf::ET_CORE,
            e_machine: elf::EM_X86_64,
            e_entry: 0,
            e_flags: elf::FileFlags(0),
        })
        .map_err(|e| werr(&e))?;
        w.write_align_program_headers();
        w.write_program_header(&ProgramHeader {
            p_type: elf::PT_NOTE,
            p_flags: elf::ProgramFlags(0),
            p_offset: note_off,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: notes.len() as u64,
            p_memsz: 0,
            p_align: 4,
        });
        for s in &segs {
            w.write_program_header(&ProgramHeader {
                p_type: elf::PT_LOAD,
                p_flags: elf::ProgramFlags(s.flags),
                p_offset: s.offset,
                p_vaddr: s.addr,
                p_paddr: 0,
                p_filesz: if s.pieces.is_some() { s.len } else { 0 },
                p_memsz: s.len,
                p_align: ps,
            });
        }
        w.write_align(4);
        w.write(&notes);
        for s in &segs {
            let Some(pieces) = &s.pieces else { continue };
            w.write_align(ps);
            for r in pieces {
                match piece_bytes(&c, img, r) {
                    Some(b) => w.write(b),
                    None => {
                        // a zero run: write zeros in bounded pieces
                        let mut left = r.len;
                        let zeros = [0u8; 4096];
                        while left > 0 {
                            let n = left.min(4096);
                            w.write(&zeros[..n as usize]);
                            left -= n;
                        }
                    }
                }
            }
        }
    }
    buf.flush().map_err(|e| werr(&e))?;
    let mut inner = buf.into_inner();
    inner.flush().map_err(|e| werr(&e))?;
    let bytes = inner.get_ref().n;
    drop(inner);
    Ok(ExportReport {
        pid: c.task.as_ref().map_or(0, |t| t.pid),
        threads: c.threads.len(),
        loads: segs.len(),
        loads_with_data: segs.iter().filter(|s| s.pieces.is_some()).count(),
        bytes,
    })
}

/// Counts the bytes written through it (the output may be a FIFO: no size to stat).
struct Counted<W> {
    w: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let k = self.w.write(b)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// Register names in `NT_PRSTATUS` order (for documentation and tests).
pub fn prstatus_reg_names() -> [&'static str; 27] {
    Regs::NAMES
}
