//! The cr-v5 encoder's memory records: MM, VMA, page chunks, zero runs.

use super::*;

impl<W: Write> Encoder<W> {
    pub(super) fn mm(&mut self, m: &Mm) -> Result<()> {
        self.mm_planned(m, true)
    }

    /// Write an MM record. `planned`: an Mm event of the image, counted by
    /// the plan; otherwise the empty mm the encoder adds to a task without
    /// one (no VMAs, no plan entry).
    pub(super) fn mm_planned(&mut self, m: &Mm, planned: bool) -> Result<()> {
        if self.mm.is_some() {
            return self.item("a second mm: dropped".into());
        }
        if !m.auxv.is_empty() {
            self.item(format!("mm: auxv of {} words", m.auxv.len()))?;
        }
        if let Some(e) = &m.exe {
            self.item(format!("mm: exe `{}`", String::from_utf8_lossy(e)))?;
        }
        if m.personality != 0 {
            self.item(format!("mm: personality {:#x}", m.personality))?;
        }
        self.extras("mm", &m.extras, &["mm_objref"])?;
        let count = match &self.plan {
            Some(p) if planned => *p.map_counts.get(self.mm_index).ok_or_else(|| {
                Error::invalid(
                    self.out.pos,
                    "more mm events than the plan",
                    "a plan of this image",
                )
            })?,
            _ => 0,
        };
        if planned {
            self.mm_index += 1;
        }
        self.map_count = count;
        self.vmas = 0;
        let st = T.st("MM");
        let mut p = st.zeroed();
        st.put(&mut p, "objref", m.extras.u64("mm_objref").unwrap_or(0));
        st.put(&mut p, "map_count", count as u64);
        for (n, v) in [
            ("start_code", m.start_code),
            ("end_code", m.end_code),
            ("start_data", m.start_data),
            ("end_data", m.end_data),
            ("start_brk", m.start_brk),
            ("brk", m.brk),
            ("start_stack", m.start_stack),
            ("arg_start", m.arg_start),
            ("arg_end", m.arg_end),
            ("env_start", m.env_start),
            ("env_end", m.env_end),
        ] {
            st.put(&mut p, n, v);
        }
        let pid = self.pid;
        self.rec("MM", pid, &p)?;
        self.mm = Some(m.clone());
        self.mm_open = true;
        Ok(())
    }

    /// Close the mm section: MM_CONTEXT (derived: empty LDT), unless `ctx` carries the original.
    pub(super) fn close_mm(&mut self, ctx: Option<&Unknown<'_>>) -> Result<()> {
        if !self.mm_open {
            return Ok(());
        }
        self.mm_open = false;
        if self.plan.is_some() && self.vmas != self.map_count {
            return Err(Error::invalid(
                self.out.pos,
                format!("{} VMAs", self.vmas),
                format!("{} as planned", self.map_count),
            ));
        }
        let objref = self
            .mm
            .as_ref()
            .and_then(|m| m.extras.u64("mm_objref"))
            .unwrap_or(0) as u32;
        match ctx {
            Some(u) => {
                let n = T.st("MM_CONTEXT").size.min(u.payload.len());
                let (s, raw) = u.payload.split_at(n);
                self.rec("MM_CONTEXT", u.parent, s)?;
                self.out.put(raw)
            }
            None => {
                let st = T.st("MM_CONTEXT");
                let mut p = st.zeroed();
                st.put(&mut p, "ldt_entry_size", 8);
                self.rec("MM_CONTEXT", objref, &p)
            }
        }
    }

    pub(super) fn vma(&mut self, v: &Vma) -> Result<()> {
        if self.in_vma {
            return Err(Error::invalid(
                self.out.pos,
                "a VMA inside a VMA",
                "VmaEnd first",
            ));
        }
        let Some(mm) = self.mm.clone() else {
            return Err(Error::invalid(
                self.out.pos,
                "a VMA before the mm",
                "an Mm event first",
            ));
        };
        self.vmas += 1;
        self.in_vma = true;
        let at = format!("VMA {:#x}-{:#x}", v.start, v.end);
        let ty = match v.kind {
            VmaKind::File => {
                if v.file.is_none() {
                    self.item(format!("{at}: file mapping without a path"))?;
                }
                L::VMA_FILE
            }
            k @ (VmaKind::Anon | VmaKind::Heap | VmaKind::Stack) => {
                if derive::anon_kind(v.start, v.end, &mm) != k {
                    self.item(format!("{at}: kind {} (written as anonymous)", k.name()))?;
                }
                if v.file.is_some() {
                    self.item(format!("{at}: file path of an anonymous mapping"))?;
                }
                L::VMA_ANON
            }
            k => {
                self.item(format!("{at}: kind {} (written as anonymous)", k.name()))?;
                L::VMA_ANON
            }
        };
        if v.prot != derive::prot_of(v.flags) {
            self.item(format!("{at}: prot {:#x} differs from vm_flags", v.prot))?;
        }
        self.extras(&at, &v.extras, &["vm_page_prot"])?;
        let st = T.st("VMA");
        let mut p = st.zeroed();
        st.put(&mut p, "vma_type", ty as u64);
        st.put(&mut p, "vm_start", v.start);
        st.put(&mut p, "vm_end", v.end);
        let prot = v
            .extras
            .u64("vm_page_prot")
            .unwrap_or_else(|| derive::default_page_prot(Arch::X86_32, v.flags));
        st.put(&mut p, "vm_page_prot", prot);
        st.put(&mut p, "vm_flags", v.flags);
        st.put(&mut p, "vm_pgoff", v.pgoff);
        self.rec("VMA", 0, &p)?;
        if ty == L::VMA_FILE {
            let path = v.file.clone().unwrap_or_default();
            self.fname(&path)?;
        }
        Ok(())
    }

    pub(super) fn pages(&mut self, c: &PageChunk<'_>) -> Result<()> {
        let n = c.addrs.len();
        if c.data.len() as u64 != n as u64 * PAGE {
            return Err(Error::invalid(
                self.out.pos,
                format!("{} bytes of page data for {n} pages", c.data.len()),
                "4096 bytes per page",
            ));
        }
        let ps = PAGE as usize;
        let all: Vec<u64> = c.addrs.iter().collect();
        let high = all.iter().filter(|&&a| a > u32::MAX as u64).count();
        if high > 0 {
            self.item(format!(
                "{high} page(s) above 4 GiB (cr-v5 page addresses are 32-bit): dropped"
            ))?;
        }
        let mut start = 0;
        while start < n {
            let k = (n - start).min(L::PGARR_CHUNK);
            let idx = start..start + k;
            let kept: Vec<usize> = idx.filter(|&i| all[i] <= u32::MAX as u64).collect();
            if !kept.is_empty() {
                let mut addrs = Vec::with_capacity(kept.len() * 4);
                for &i in &kept {
                    addrs.extend_from_slice(&(all[i] as u32).to_le_bytes());
                }
                self.rec("PGARR", 0, &(kept.len() as u64).to_le_bytes())?;
                self.out.put(&addrs)?;
                if kept.len() == k {
                    self.out.put(&c.data[start * ps..(start + k) * ps])?;
                } else {
                    for &i in &kept {
                        self.out.put(&c.data[i * ps..(i + 1) * ps])?;
                    }
                }
            }
            start += k;
        }
        Ok(())
    }

    pub(super) fn zero_pages(&mut self, z: &ZeroRun) -> Result<()> {
        let per = ZEROS.len() / PAGE as usize;
        let mut left = z.count;
        let mut addr = z.start;
        self.zero_pages += z.count;
        while left > 0 {
            let k = left.min(per as u64) as usize;
            let mut addrs = Vec::with_capacity(k * 4);
            if addr.saturating_add(k as u64 * PAGE) > u32::MAX as u64 + 1 {
                self.item(format!(
                    "zero pages from {addr:#x} above 4 GiB (32-bit page addresses): dropped"
                ))?;
                left -= k as u64;
                addr = addr.saturating_add(k as u64 * PAGE);
                continue;
            }
            for i in 0..k as u64 {
                addrs.extend_from_slice(&((addr + i * PAGE) as u32).to_le_bytes());
            }
            self.rec("PGARR", 0, &(k as u64).to_le_bytes())?;
            self.out.put(&addrs)?;
            self.out.put(&ZEROS[..k * PAGE as usize])?;
            left -= k as u64;
            addr += k as u64 * PAGE;
        }
        Ok(())
    }
}
