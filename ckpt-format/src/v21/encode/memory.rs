//! The ckpt-v21 encoder's memory records: mapped files, MM, VMA, page chunks
//! and zero runs.

use super::*;

impl<W: Write> Encoder<W> {
    /// OBJREF FILE FILE_NAME for a mapped file (exe or VMA); returns its objref.
    pub(super) fn mapped_file(&mut self, path: &[u8], ex: &Extras, prefix: &str) -> Result<u32> {
        let r = self.internal();
        self.objref("FILE", r)?;
        let st = T.st("FILE");
        let mut b = st.zeroed();
        let g = |n: &str, d: u64| ex.u64(&format!("{prefix}{n}")).unwrap_or(d);
        st.put(&mut b, "f_type", L::FILE_GENERIC as u64);
        st.put(&mut b, "f_mode", g("f_mode", 1));
        st.put(&mut b, "f_flags", g("f_flags", 0));
        st.put(&mut b, "f_pos", g("f_pos", 0));
        for n in FILE_EXTRAS {
            st.put(&mut b, n, g(n, 0));
        }
        self.rec("FILE", b)?;
        let mut p = path.to_vec();
        p.push(0);
        self.raw(code("FILE_NAME"), &p)?;
        Ok(r)
    }

    pub(super) fn mm(&mut self, m: &Mm) -> Result<()> {
        if self.mm.is_some() {
            return self.item("a second mm: dropped".into());
        }
        let mut placed = vec!["def_flags", "mm_flags"];
        let exe_keys: Vec<String> = ["f_mode", "f_flags", "f_pos"]
            .iter()
            .chain(FILE_EXTRAS.iter())
            .map(|n| format!("exe_{n}"))
            .collect();
        placed.extend(exe_keys.iter().map(|s| s.as_str()));
        self.extras("mm", &m.extras, &placed)?;
        if m.personality != 0 {
            self.item(format!("mm: personality {:#x}", m.personality))?;
        }
        let exe = match &m.exe {
            Some(p) => self.mapped_file(p, &m.extras, "exe_")?,
            None => 0,
        };
        let count = match &self.plan {
            Some(p) => *p.map_counts.get(self.mm_index).ok_or_else(|| {
                Error::invalid(
                    self.out.pos,
                    "more mm events than planned",
                    "the plan of this image",
                )
            })?,
            None => 0,
        };
        self.mm_index += 1;
        self.map_count = count;
        self.vmas = 0;
        self.vdso = 0;
        self.mm_ref = self.internal();
        self.objref("MM", self.mm_ref)?;
        let st = T.st("MM");
        let mut b = st.zeroed();
        st.put(&mut b, "map_count", count as u64);
        st.put(&mut b, "exe_objref", exe as u64);
        st.put(&mut b, "def_flags", m.extras.u64("def_flags").unwrap_or(0));
        st.put(&mut b, "flags", m.extras.u64("mm_flags").unwrap_or(0));
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
            st.put(&mut b, n, v);
        }
        self.rec("MM", b)?;
        let words = self.consts["at_vector_size"] as usize;
        if m.auxv.len() > words {
            self.item(format!(
                "auxv of {} words (at_vector_size {words})",
                m.auxv.len()
            ))?;
        }
        let mut a = vec![0u8; words * 8];
        for (i, w) in m.auxv.iter().take(words).enumerate() {
            a[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        self.raw(code("BUFFER"), &a)?;
        self.mm = Some(m.clone());
        self.mm_open = true;
        Ok(())
    }

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
        match ctx {
            Some(u) => self.raw(u.type_code, &u.payload),
            None => {
                let st = T.st("MM_CONTEXT");
                let mut b = st.zeroed();
                st.put(&mut b, "vdso", self.vdso);
                st.put(&mut b, "ldt_entry_size", 8);
                self.rec("MM_CONTEXT", b)?;
                self.raw(code("MM_CONTEXT_LDT"), &[])
            }
        }
    }

    pub(super) fn vma(&mut self, v: &Vma) -> Result<()> {
        let Some(mm) = self.mm.clone() else {
            return Err(Error::invalid(
                self.out.pos,
                "a VMA before the mm",
                "an Mm event first",
            ));
        };
        self.vmas += 1;
        let at = format!("VMA {:#x}-{:#x}", v.start, v.end);
        let mut placed = vec![
            "vm_page_prot",
            "ino_objref",
            "ino_size",
            "f_mode",
            "f_flags",
            "f_pos",
        ];
        placed.extend(FILE_EXTRAS);
        self.extras(&at, &v.extras, &placed)?;
        if v.prot != derive::prot_of(v.flags) {
            self.item(format!("{at}: prot {:#x} differs from vm_flags", v.prot))?;
        }
        let (ty, r) = match v.kind {
            VmaKind::File => {
                let path = v.file.clone().unwrap_or_default();
                if v.file.is_none() {
                    self.item(format!("{at}: file mapping without a path"))?;
                }
                (L::VMA_FILE, self.mapped_file(&path, &v.extras, "")?)
            }
            VmaKind::Vdso => {
                self.vdso = v.start;
                (L::VMA_VDSO, 0)
            }
            k @ (VmaKind::Anon | VmaKind::Heap | VmaKind::Stack) => {
                if derive::anon_kind(v.start, v.end, &mm) != k {
                    self.item(format!("{at}: kind {} (written as anonymous)", k.name()))?;
                }
                (L::VMA_ANON, 0)
            }
            k => {
                self.item(format!("{at}: kind {} (written as anonymous)", k.name()))?;
                (L::VMA_ANON, 0)
            }
        };
        if v.file.is_some() && v.kind != VmaKind::File {
            self.item(format!("{at}: file path of a non-file mapping"))?;
        }
        let st = T.st("VMA");
        let mut b = st.zeroed();
        st.put(&mut b, "vma_type", ty as u64);
        st.put(&mut b, "vma_objref", r as u64);
        st.put(
            &mut b,
            "ino_objref",
            v.extras.u64("ino_objref").unwrap_or(0),
        );
        st.put(&mut b, "ino_size", v.extras.u64("ino_size").unwrap_or(0));
        st.put(&mut b, "vm_start", v.start);
        st.put(&mut b, "vm_end", v.end);
        let prot = v
            .extras
            .u64("vm_page_prot")
            .unwrap_or_else(|| derive::default_page_prot(Arch::X86_64, v.flags));
        st.put(&mut b, "vm_page_prot", prot);
        st.put(&mut b, "vm_flags", v.flags);
        st.put(&mut b, "vm_pgoff", v.pgoff);
        self.rec("VMA", b)
    }

    pub(super) fn chunk(&mut self, addrs: &[u8], data: &[u8]) -> Result<()> {
        let n = (addrs.len() / 8) as u64;
        let st = T.st("PGARR");
        let mut b = st.zeroed();
        st.put(&mut b, "nr_pages", n);
        self.rec("PGARR", b)?;
        let len = HDR + addrs.len() as u64 + data.len() as u64;
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&code("BUFFER").to_le_bytes());
        h[4..].copy_from_slice(&(len as u32).to_le_bytes());
        self.out.put(&h)?;
        self.out.put(addrs)?;
        self.out.put(data)
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
        let words = !c.addrs.is_runs() && c.addrs.width() == 8;
        let mut it = c.addrs.iter();
        let mut a = Vec::new();
        let mut start = 0;
        while start < n {
            let k = (n - start).min(CHUNK_PAGES);
            let d = &c.data[start * PAGE as usize..(start + k) * PAGE as usize];
            if words {
                let a = &c.addrs.as_bytes()[start * 8..(start + k) * 8];
                self.chunk(a, d)?;
            } else {
                a.clear();
                for x in it.by_ref().take(k) {
                    a.extend_from_slice(&x.to_le_bytes());
                }
                self.chunk(&a, d)?;
            }
            start += k;
        }
        Ok(())
    }

    /// A zero run as chunks of up to [`L::PGARR_BATCH`] pages (the kernel's
    /// batch); the decoder gives each all-zero chunk back as one zero run.
    pub(super) fn zero_pages(&mut self, z: &ZeroRun) -> Result<()> {
        let mut left = z.count;
        let mut addr = z.start;
        self.zero_pages += z.count;
        while left > 0 {
            let k = left.min(L::PGARR_BATCH as u64) as usize;
            let mut a = Vec::with_capacity(k * 8);
            for i in 0..k as u64 {
                a.extend_from_slice(&(addr + i * PAGE).to_le_bytes());
            }
            let st = T.st("PGARR");
            let mut b = st.zeroed();
            st.put(&mut b, "nr_pages", k as u64);
            self.rec("PGARR", b)?;
            let len = HDR + a.len() as u64 + k as u64 * PAGE;
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&code("BUFFER").to_le_bytes());
            h[4..].copy_from_slice(&(len as u32).to_le_bytes());
            self.out.put(&h)?;
            self.out.put(&a)?;
            let mut data = k * PAGE as usize;
            while data > 0 {
                let n = data.min(ZEROS.len());
                self.out.put(&ZEROS[..n])?;
                data -= n;
            }
            left -= k as u64;
            addr += k as u64 * PAGE;
        }
        Ok(())
    }
}
