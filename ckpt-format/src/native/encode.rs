//! The native-1 encoder: events → records, streaming to any `io::Write`.

use super::payload::{arch_code, fpu_code, revision_code, Put};
use super::records;
use super::*;
use crate::model::*;
use crate::stream::EventSink;
use crate::validate::Checker;
use std::borrow::Cow;
use std::io::{BufWriter, Write};
use zerocopy::IntoBytes;

/// Writes events as a native-1 image. It streams (never seeks), so it can
/// write to a pipe, and refuses any event sequence that would make an
/// invalid image (the same [`Checker`] the decoders use).
pub struct Encoder<W: Write> {
    w: BufWriter<W>,
    offset: u64,
    records: u64,
    stream_crc: crc32fast::Hasher,
    checker: Checker,
    task_pid: u32,
    vma_pages: u64,
    vma_zeros: u64,
    page_size: u32,
    finished: bool,
}

impl<W: Write> Encoder<W> {
    /// An encoder writing to `w`. Nothing is written before the header event.
    pub fn new(w: W) -> Self {
        Encoder {
            w: BufWriter::with_capacity(256 << 10, w),
            offset: 0,
            records: 0,
            stream_crc: crc32fast::Hasher::new(),
            checker: Checker::new(),
            task_pid: 0,
            vma_pages: 0,
            vma_zeros: 0,
            page_size: 4096,
            finished: false,
        }
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Flush and return the inner writer.
    pub fn into_inner(self) -> Result<W> {
        let off = self.offset;
        self.w.into_inner().map_err(|e| Error::io(off, e.error()))
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.w
            .write_all(b)
            .map_err(|e| Error::io(self.offset, &e))?;
        self.offset += b.len() as u64;
        Ok(())
    }

    /// Write one record whose payload is `parts` concatenated; the first
    /// `checked` parts are covered by the header CRC (all of them for every
    /// type but PAGES).
    fn record(
        &mut self,
        ty: RecordType,
        parent: u32,
        objref: u32,
        parts: &[&[u8]],
        checked: usize,
    ) -> Result<()> {
        let plen: usize = parts.iter().map(|p| p.len()).sum();
        let len = HEADER_LEN as u64 + plen as u64;
        let len32 = u32::try_from(len)
            .ok()
            .filter(|&l| (l as u64) <= crate::input::MAX_RECORD_LEN)
            .ok_or_else(|| {
                Error::new(
                    self.offset,
                    ErrorKind::TooLarge {
                        found: len,
                        limit: crate::input::MAX_RECORD_LEN,
                    },
                )
                .in_record(ty.0, ty.name())
            })?;
        let mut h = RecordHeader {
            ty: ty.0.into(),
            len: len32.into(),
            parent: parent.into(),
            objref: objref.into(),
            crc: 0.into(),
            reserved: 0.into(),
        };
        let mut c = crc32fast::Hasher::new();
        c.update(&h.as_bytes()[..16]);
        for p in &parts[..checked] {
            c.update(p);
        }
        h.crc = c.finalize().into();
        if ty != RecordType::TAIL {
            self.records += 1;
            self.stream_crc.update(h.as_bytes());
        }
        self.put(h.as_bytes())?;
        for p in parts {
            self.put(p)?;
        }
        let pad = (pad8(len).unwrap_or(len) - len) as usize;
        self.put(&[0u8; 8][..pad])
    }

    fn simple(&mut self, ty: RecordType, parent: u32, objref: u32, payload: &[u8]) -> Result<()> {
        self.record(ty, parent, objref, &[payload], 1)
    }

    fn pages(&mut self, p: &PageChunk<'_>) -> Result<()> {
        let n = p.addrs.len();
        let ps = self.page_size as usize;
        let mut i = 0;
        while i < n {
            let k = (n - i).min(MAX_CHUNK_PAGES as usize);
            let data = &p.data[i * ps..(i + k) * ps];
            let runs = if i == 0 && k == n && p.addrs.is_runs() {
                // Already runs of this image's page size (from a native-1 decoder).
                Cow::Borrowed(p.addrs.as_bytes())
            } else {
                let part: Vec<u64> = p.addrs.iter().skip(i).take(k).collect();
                Cow::Owned(
                    Addrs::from_u64s(&part)
                        .to_runs(self.page_size)
                        .as_bytes()
                        .to_vec(),
                )
            };
            let mut head = [0u8; 16];
            head[..4].copy_from_slice(&(k as u32).to_le_bytes());
            head[4..8].copy_from_slice(&((runs.len() / 16) as u32).to_le_bytes());
            head[8..12].copy_from_slice(&crc32fast::hash(data).to_le_bytes());
            self.record(
                RecordType::PAGES,
                self.task_pid,
                0,
                &[&head, &runs, data],
                2,
            )?;
            i += k;
        }
        self.vma_pages += n as u64;
        Ok(())
    }
}

impl<W: Write> EventSink for Encoder<W> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if self.finished {
            return Err(Error::invalid(
                self.offset,
                format!("a {} event after finish", ev.kind_name()),
                "no event after finish",
            ));
        }
        self.checker.check(ev, self.offset)?;
        let pid = self.task_pid;
        match ev {
            Event::Header(h) => {
                self.put(&preamble())?;
                self.page_size = h.page_size;
                let mut p = Put::default();
                let features = if h.parent.is_some() {
                    BASE_FEATURES | FEATURE_PARENT
                } else {
                    BASE_FEATURES
                };
                p.u64(features)
                    .u64(0)
                    .u16(arch_code(h.arch))
                    .u16(h.kernel.major)
                    .u16(h.kernel.minor)
                    .u16(h.kernel.patch)
                    .u32(h.page_size)
                    .u32(0)
                    .u64(h.time)
                    .u64(h.flags)
                    .bstr(&h.kernel.release)
                    .bstr(&h.kernel.version)
                    .bstr(&h.kernel.machine)
                    .bstr(h.tool.as_bytes())
                    .bstr(h.tool_version.as_bytes())
                    .extras(&h.extras);
                if let Some(r) = &h.parent {
                    p.u64(r.records)
                        .u64(r.bytes)
                        .u32(r.stream_crc)
                        .u32(0)
                        .bstr(&r.path);
                }
                self.simple(RecordType::HEADER, 0, 0, &p.0)
            }
            Event::Task(t) => {
                self.task_pid = t.pid as u32;
                for (code, p) in records::encode_task(&t.records) {
                    self.simple(RecordType(code), t.pid as u32, 0, &p)?;
                }
                let mut p = Put::default();
                p.i32(t.pid)
                    .i32(t.tgid)
                    .i32(t.ppid)
                    .i32(t.pgid)
                    .i32(t.sid)
                    .u32(t.state)
                    .u32(t.exit_state)
                    .u32(t.exit_code)
                    .u32(t.exit_signal)
                    .u32(0);
                for u in t.creds.uid {
                    p.u32(u);
                }
                for g in t.creds.gid {
                    p.u32(g);
                }
                p.bstr(&t.comm).u32(t.creds.groups.len() as u32);
                for g in &t.creds.groups {
                    p.u32(*g);
                }
                p.extras(&t.extras);
                self.simple(RecordType::TASK, 0, 0, &p.0)
            }
            Event::Thread(t) => {
                for (code, p) in records::encode_thread(&t.records) {
                    self.simple(RecordType(code), pid, 0, &p)?;
                }
                let mut p = Put::default();
                p.i32(t.tid).u32(0).u64(t.sigmask);
                for r in t.regs.to_array() {
                    p.u64(r);
                }
                p.u32(fpu_code(&t.fpu)).u32(0);
                match &t.fpu {
                    Some(f) => p.u64(f.xfeatures).bstr(&f.data),
                    None => p.u64(0).bstr(&[]),
                };
                p.bstr(&t.tls).extras(&t.extras);
                self.simple(RecordType::THREAD, pid, 0, &p.0)
            }
            Event::Fs(f) => {
                let mut p = Put::default();
                p.u32(f.umask).bstr(&f.cwd).bstr(&f.root);
                self.simple(RecordType::FS, pid, 0, &p.0)
            }
            Event::SigActions(v) => {
                let mut p = Put::default();
                p.u32(v.len() as u32).u32(0);
                for s in v {
                    p.u64(s.handler).u64(s.flags).u64(s.restorer).u64(s.mask);
                }
                self.simple(RecordType::SIGACTIONS, pid, 0, &p.0)
            }
            Event::Rlimits(v) => {
                let mut p = Put::default();
                p.u32(v.len() as u32).u32(0);
                for r in v {
                    p.u64(r.cur).u64(r.max);
                }
                self.simple(RecordType::RLIMITS, pid, 0, &p.0)
            }
            Event::Mm(m) => {
                let mut p = Put::default();
                for x in [
                    m.start_code,
                    m.end_code,
                    m.start_data,
                    m.end_data,
                    m.start_brk,
                    m.brk,
                    m.start_stack,
                    m.arg_start,
                    m.arg_end,
                    m.env_start,
                    m.env_end,
                ] {
                    p.u64(x);
                }
                p.u32(m.personality)
                    .u32(m.exe.is_some() as u32)
                    .bstr(m.exe.as_deref().unwrap_or(&[]))
                    .u32(m.auxv.len() as u32);
                for a in &m.auxv {
                    p.u64(*a);
                }
                p.extras(&m.extras);
                self.simple(RecordType::MM, pid, 0, &p.0)
            }
            Event::Vma(v) => {
                for (code, p) in records::encode_vma(&v.records) {
                    self.simple(RecordType(code), pid, 0, &p)?;
                }
                self.vma_pages = 0;
                self.vma_zeros = 0;
                let mut p = Put::default();
                p.u64(v.start)
                    .u64(v.end)
                    .u64(v.flags)
                    .u64(v.pgoff)
                    .u32(v.prot)
                    .u32(v.kind.code())
                    .u32(v.file.is_some() as u32)
                    .u32(0)
                    .bstr(v.file.as_deref().unwrap_or(&[]))
                    .extras(&v.extras);
                self.simple(RecordType::VMA, pid, 0, &p.0)
            }
            Event::Pages(p) => self.pages(p),
            Event::ZeroPages(z) => {
                self.vma_zeros += z.count;
                let mut p = Put::default();
                p.u64(z.start).u64(z.count);
                self.simple(RecordType::ZERO_PAGES, pid, 0, &p.0)
            }
            Event::ParentPages(z) => {
                let mut p = Put::default();
                p.u64(z.start).u64(z.count);
                self.simple(RecordType::PARENT_PAGES, pid, 0, &p.0)
            }
            Event::VmaEnd => {
                let mut p = Put::default();
                p.u64(self.vma_pages).u64(self.vma_zeros);
                self.simple(RecordType::VMA_END, pid, 0, &p.0)
            }
            Event::File(f) => {
                for (code, p) in records::encode_file(&f.records) {
                    self.simple(RecordType(code), 0, 0, &p)?;
                }
                let mut p = Put::default();
                p.u32(f.kind.code())
                    .u32(f.flags)
                    .u32(f.mode)
                    .u32(f.pipe.unwrap_or(0))
                    .u64(f.pos)
                    .bstr(&f.path)
                    .extras(&f.extras);
                self.simple(RecordType::FILE, 0, f.id, &p.0)
            }
            Event::Pipe(p) => self.simple(RecordType::PIPE, 0, p.id, &p.data),
            Event::Fd(f) => {
                let mut p = Put::default();
                p.i32(f.fd).u32(f.cloexec as u32).u32(f.file).u32(0);
                self.simple(RecordType::FD, pid, 0, &p.0)
            }
            Event::Error(m) => self.simple(RecordType::ERROR, 0, 0, m),
            Event::Unknown(u) => {
                if u.revision == Revision::Native1 {
                    return Err(Error::new(
                        self.offset,
                        ErrorKind::Unrepresentable {
                            items: vec![format!(
                                "an unknown native-1 record of type {:#x}",
                                u.type_code
                            )],
                        },
                    ));
                }
                let mut p = Put::default();
                p.u32(revision_code(u.revision))
                    .u32(u.type_code)
                    .u32(u.parent)
                    .u32(0)
                    .bytes(&u.payload);
                self.simple(RecordType::FOREIGN, pid, 0, &p.0)
            }
            Event::Tail => {
                let mut p = Put::default();
                let crc = self.stream_crc.clone().finalize();
                p.u64(self.records).u64(self.offset).u32(crc).u32(0);
                self.simple(RecordType::TAIL, 0, 0, &p.0)
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.finished = true;
        self.w.flush().map_err(|e| Error::io(self.offset, &e))
    }
}
