//! The reading order of a Linux-CR RFC v5/v6 restart (September–October
//! 2008, era A, i386), as our own walker: `cr_read_head`, then the one task
//! (`cr_read_task`: task struct and comm, mm with its VMAs and page chunks and
//! the mm context with the raw LDT, the file table, the thread with its raw
//! TLS array, the CPU state) and `cr_read_tail` (research
//! linux-cr-format.md §3.1, §3.4–3.7; the v5 patch mails in shared/seeds).
//! A fixed record is read by its type and exact payload length; raw blobs
//! follow PGARR (vaddrs and pages), MM_CONTEXT (LDT) and THREAD (TLS).

#![allow(dead_code)]

use ckpt_format::layout::crv5::TABLE as T;

/// What a walk saw.
#[derive(Debug, Default)]
pub struct Walk {
    /// Records read, in order: (offset, type name).
    pub records: Vec<(usize, &'static str)>,
    /// Pages read.
    pub pages: u64,
    /// Open files read (FD_ENT records).
    pub fds: usize,
}

struct Walker<'a> {
    img: &'a [u8],
    pos: usize,
    files: std::collections::HashSet<u32>,
    w: Walk,
}

type R<T> = Result<T, String>;

impl<'a> Walker<'a> {
    /// A record of `name`: (offset, parent, payload); `len` its exact payload length.
    fn expect(&mut self, name: &str, len: Option<usize>) -> R<(usize, u32, &'a [u8])> {
        let off = self.pos;
        let h = self.img.get(off..off + 8).ok_or(format!(
            "@{off:#x}: image ends where a v5 restart reads {name}"
        ))?;
        let ty = i16::from_le_bytes([h[0], h[1]]) as i32 as u32;
        let n = i16::from_le_bytes([h[2], h[3]]);
        let parent = u32::from_le_bytes(h[4..8].try_into().unwrap());
        if ty != T.code(name) {
            return Err(format!(
                "@{off:#x}: {} where a v5 restart reads {name}",
                T.name(ty)
            ));
        }
        if n < 0 {
            return Err(format!("@{off:#x}: negative length"));
        }
        let n = n as usize;
        if let Some(l) = len {
            if n != l {
                return Err(format!(
                    "@{off:#x}: {name} of {n} bytes, a v5 restart reads exactly {l}"
                ));
            }
        }
        let p = self
            .img
            .get(off + 8..off + 8 + n)
            .ok_or(format!("@{off:#x}: {name} cut"))?;
        self.pos = off + 8 + n;
        self.w.records.push((off, T.name(ty)));
        Ok((off, parent, p))
    }

    fn fixed(&mut self, name: &str) -> R<(usize, u32, &'a [u8])> {
        let n = T.st(name).size;
        self.expect(name, Some(n))
    }

    fn raw(&mut self, n: usize, what: &str) -> R<()> {
        if self.pos + n > self.img.len() {
            return Err(format!("@{:#x}: {what} cut", self.pos));
        }
        self.pos += n;
        Ok(())
    }

    fn zero_parent(&self, (off, parent, _): (usize, u32, &[u8]), name: &str) -> R<()> {
        if parent != 0 {
            return Err(format!("@{off:#x}: {name} with parent {parent}, read as 0"));
        }
        Ok(())
    }

    fn image(&mut self) -> R<()> {
        let h = self.fixed("HEAD")?;
        self.zero_parent(h, "HEAD")?;
        let t = self.fixed("TASK")?;
        self.zero_parent(t, "TASK")?;
        let comm = T.st("TASK").get(t.2, "task_comm_len") as usize;
        self.expect("STRING", Some(comm))?;
        // mm
        let (_, _, mm) = self.fixed("MM")?;
        for _ in 0..T.st("MM").get(mm, "map_count") {
            let v = self.fixed("VMA")?;
            self.zero_parent(v, "VMA")?;
            if T.st("VMA").get(v.2, "vma_type") == 2 {
                self.expect("FNAME", None)?;
            }
            loop {
                let pg = self.fixed("PGARR")?;
                self.zero_parent(pg, "PGARR")?;
                let n = T.st("PGARR").get(pg.2, "nr_pages") as usize;
                if n == 0 {
                    break;
                }
                self.raw(n * 4 + n * 4096, "page chunk")?;
                self.w.pages += n as u64;
            }
        }
        let (_, _, mc) = self.fixed("MM_CONTEXT")?;
        let s = T.st("MM_CONTEXT");
        let ldt =
            s.get_i(mc, "nldt").max(0) as usize * s.get_i(mc, "ldt_entry_size").max(0) as usize;
        self.raw(ldt, "LDT")?;
        // files
        let (_, _, f) = self.fixed("FILES")?;
        for _ in 0..T.st("FILES").get(f, "nfds") {
            let (_, _, e) = self.fixed("FD_ENT")?;
            self.w.fds += 1;
            let objref = T.st("FD_ENT").get(e, "objref") as u32;
            if self.files.insert(objref) {
                let (off, parent, _) = self.fixed("FD_DATA")?;
                if parent != objref {
                    return Err(format!(
                        "@{off:#x}: FD_DATA parent {parent}, fd objref {objref}"
                    ));
                }
                self.expect("FNAME", None)?;
            }
        }
        // thread, cpu
        let (_, _, th) = self.fixed("THREAD")?;
        self.raw(
            T.st("THREAD").get(th, "sizeof_tls_array") as usize,
            "TLS array",
        )?;
        let (off, _, c) = self.expect("CPU", None)?;
        if c.len() < T.st("CPU").size {
            return Err(format!("@{off:#x}: CPU shorter than cr_hdr_cpu"));
        }
        let tl = self.fixed("TAIL")?;
        self.zero_parent(tl, "TAIL")?;
        if T.st("TAIL").get(tl.2, "magic") != 0x002d_2a0c_c0de_ef00 {
            return Err(format!("@{:#x}: tail magic", tl.0));
        }
        if self.pos != self.img.len() {
            return Err(format!("@{:#x}: bytes after the TAIL", self.pos));
        }
        Ok(())
    }
}

/// Walk `img` in a v5 restart's reading order to its end.
pub fn walk(img: &[u8]) -> Result<Walk, String> {
    let mut w = Walker {
        img,
        pos: 0,
        files: Default::default(),
        w: Walk::default(),
    };
    w.image()?;
    Ok(w.w)
}
