//! XSAVE areas on another kernel. `NT_X86_XSTATE` carries the standard (non-compacted)
//! XSAVE layout: the 512-byte legacy area (x87, SSE), the 64-byte header (`xstate_bv` at
//! 512, `xcomp_bv` at 520), then each enabled feature at the offset the CPU reports in
//! CPUID leaf 0xD sub-leaf *i* (EBX, size in EAX). The kernel takes exactly its own size
//! and refuses features it does not enable; which features it enables (XCR0) depends on
//! the kernel as well as the CPU (AMX needs 5.16, APX 6.16, ...).
//!
//! So: features whose state the thread uses (`xstate_bv`) must be enabled here — else the
//! restore is refused naming them; features enabled at capture but in their initial state
//! are dropped; when the sizes or enabled sets differ, the area is laid out again for this
//! kernel, component by component at this CPU's offsets. The captured layout is checked
//! against this CPU's (the size CPUID gives for the captured feature set must be the
//! captured size): an area from another CPU model is refused rather than misread.

/// Names of the XSAVE feature bits (Intel SDM vol. 1, 13.1).
pub fn feature_name(bit: u32) -> &'static str {
    match bit {
        0 => "x87",
        1 => "SSE",
        2 => "AVX",
        3 => "MPX bound registers",
        4 => "MPX bound config",
        5 => "AVX-512 opmask",
        6 => "AVX-512 ZMM_Hi256",
        7 => "AVX-512 Hi16_ZMM",
        8 => "PT",
        9 => "PKRU",
        10 => "PASID",
        11 => "CET user",
        12 => "CET supervisor",
        13 => "HDC",
        14 => "UINTR",
        15 => "LBR",
        16 => "HWP",
        17 => "AMX TILECFG",
        18 => "AMX TILEDATA",
        19 => "APX",
        _ => "unknown",
    }
}

/// `AVX (2), PKRU (9)`.
pub fn names(mask: u64) -> String {
    let v: Vec<String> = (0..64)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| format!("{} ({b})", feature_name(b)))
        .collect();
    v.join(", ")
}

/// The standard XSAVE layout of this CPU and kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// XCR0: the features the kernel enabled.
    pub xcr0: u64,
    /// The area size for `xcr0` (what `NT_X86_XSTATE` carries).
    pub size: usize,
    /// `(offset, size)` of feature *i* (0 for 0, 1 and features the CPU lacks).
    pub comp: [(u32, u32); 64],
}

impl Layout {
    /// Ours: XCR0 by `xgetbv`, offsets and sizes by CPUID 0xD. `None` without OSXSAVE.
    pub fn this_cpu() -> Option<Layout> {
        let (xcr0, size) = crate::sys::cpu_xstate()?;
        let mut comp = [(0u32, 0u32); 64];
        #[cfg(target_arch = "x86_64")]
        for (i, c) in comp.iter_mut().enumerate().skip(2) {
            let l = std::arch::x86_64::__cpuid_count(0xd, i as u32);
            // Supervisor components (ECX bit 0) have no place in the standard layout.
            if l.eax != 0 && l.ecx & 1 == 0 {
                *c = (l.ebx, l.eax);
            }
        }
        Some(Layout {
            xcr0,
            size: size as usize,
            comp,
        })
    }

    /// The size the standard layout has for the features of `mask` on this CPU.
    pub fn size_for(&self, mask: u64) -> usize {
        let mut end = 576usize;
        for b in 2..64 {
            if mask & (1u64 << b) != 0 {
                let (o, s) = self.comp[b];
                end = end.max(o as usize + s as usize);
            }
        }
        end
    }
}

fn u64_at(a: &[u8], off: usize) -> u64 {
    a.get(off..off + 8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// What happens to one captured XSAVE area here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Loaded as captured.
    AsIs,
    /// Laid out again for this kernel; the features dropped (enabled at capture, in
    /// their initial state, not enabled here) are named.
    Relayout {
        /// The area to load.
        area: Vec<u8>,
        /// Captured enabled set.
        from_xcr0: u64,
        /// Enabled here but not in the image.
        added: u64,
        /// Enabled in the image (unused) but not here.
        dropped: u64,
    },
}

/// Fit a captured area (`xcr0` as captured, 0 = read it from the area) to `here`.
pub fn fit(area: &[u8], xcr0: u64, here: &Layout) -> Result<Fit, String> {
    if area.len() < 576 {
        return Err(format!(
            "XSAVE area of {} bytes, shorter than its 576-byte legacy area and header",
            area.len()
        ));
    }
    let img_xcr0 = if xcr0 != 0 { xcr0 } else { u64_at(area, 464) };
    let in_use = u64_at(area, 512);
    if u64_at(area, 520) != 0 {
        return Err(
            "XSAVE area in the compacted format (xcomp_bv set); ptrace gives the standard one"
                .into(),
        );
    }
    let extra = in_use & !img_xcr0;
    if extra != 0 {
        return Err(format!(
            "XSAVE state of {} in use but not in the captured feature set {img_xcr0:#x}",
            names(extra)
        ));
    }
    let missing = in_use & !here.xcr0;
    if missing != 0 {
        return Err(format!(
            "XSAVE state of {} in use, which this kernel does not enable (it enables {})",
            names(missing),
            names(here.xcr0)
        ));
    }
    if area.len() == here.size && img_xcr0 == here.xcr0 {
        return Ok(Fit::AsIs);
    }
    // The captured layout must be this CPU's: the size CPUID gives for the captured
    // feature set is the captured size (a feature this CPU does not know counts as 0).
    let want = here.size_for(img_xcr0);
    if area.len() != want {
        return Err(format!(
            "XSAVE area of {} bytes for features {img_xcr0:#x}, this CPU's layout of them has {want} bytes: captured on another CPU model",
            area.len()
        ));
    }
    let mut out = vec![0u8; here.size];
    out[..576].copy_from_slice(&area[..576]);
    out[464..472].copy_from_slice(&here.xcr0.to_le_bytes());
    for b in 2..64 {
        if in_use & (1u64 << b) != 0 {
            let (o, s) = here.comp[b];
            let (o, s) = (o as usize, s as usize);
            match (area.get(o..o + s), out.get_mut(o..o + s)) {
                (Some(src), Some(dst)) => dst.copy_from_slice(src),
                _ => {
                    return Err(format!(
                        "XSAVE component {} does not fit the area",
                        names(1u64 << b)
                    ))
                }
            }
        }
    }
    Ok(Fit::Relayout {
        area: out,
        from_xcr0: img_xcr0,
        added: here.xcr0 & !img_xcr0,
        dropped: img_xcr0 & !here.xcr0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up CPU: AVX at 576 (256 bytes), AVX-512 at 1088/1152/1664, PKRU at 2688.
    fn layout(xcr0: u64) -> Layout {
        let mut comp = [(0u32, 0u32); 64];
        comp[2] = (576, 256);
        comp[5] = (1088, 64);
        comp[6] = (1152, 512);
        comp[7] = (1664, 1024);
        comp[9] = (2688, 8);
        let mut l = Layout {
            xcr0,
            size: 0,
            comp,
        };
        l.size = l.size_for(xcr0);
        l
    }

    fn area(l: &Layout, in_use: u64, fill: u8) -> Vec<u8> {
        let mut a = vec![0u8; l.size];
        a[..512].fill(fill);
        a[464..472].copy_from_slice(&l.xcr0.to_le_bytes());
        a[512..520].copy_from_slice(&in_use.to_le_bytes());
        for b in 2..64 {
            if in_use & (1 << b) != 0 {
                let (o, s) = l.comp[b];
                a[o as usize..(o + s) as usize].fill(b as u8);
            }
        }
        a
    }

    #[test]
    fn same_layout_is_loaded_as_is() {
        let l = layout(0x207);
        assert_eq!(fit(&area(&l, 0x207, 1), 0, &l), Ok(Fit::AsIs));
    }

    #[test]
    fn unused_avx512_is_dropped_and_components_keep_their_bytes() {
        let from = layout(0x2e7); // x87 SSE AVX AVX-512 PKRU
        let here = layout(0x207); // no AVX-512 on this kernel
        let a = area(&from, 0x207, 7);
        let Fit::Relayout {
            area: out,
            dropped,
            added,
            ..
        } = fit(&a, 0, &here).unwrap()
        else {
            panic!("expected a relayout")
        };
        assert_eq!(out.len(), here.size);
        assert_eq!(dropped, 0xe0);
        assert_eq!(added, 0);
        assert_eq!(&out[..464], &a[..464]);
        assert_eq!(u64_at(&out, 464), 0x207);
        assert_eq!(u64_at(&out, 512), 0x207);
        assert!(out[576..832].iter().all(|&x| x == 2));
        assert!(out[2688..2696].iter().all(|&x| x == 9));
        // And back, onto a kernel that enables more: the same bytes at the same places.
        let Fit::Relayout {
            area: back, added, ..
        } = fit(&out, 0, &from).unwrap()
        else {
            panic!("expected a relayout")
        };
        assert_eq!(added, 0xe0);
        assert_eq!(back.len(), from.size);
        assert_eq!(&back[576..832], &out[576..832]);
        assert_eq!(&back[2688..2696], &out[2688..2696]);
        assert!(back[1088..2688].iter().all(|&x| x == 0));
    }

    #[test]
    fn state_in_use_that_this_kernel_lacks_is_refused_by_name() {
        let from = layout(0x2e7);
        let here = layout(0x207);
        let e = fit(&area(&from, 0x47, 0), 0, &here).unwrap_err();
        assert!(
            e.starts_with("XSAVE state of AVX-512 ZMM_Hi256 (6) in use, which this kernel"),
            "{e}"
        );
    }

    #[test]
    fn another_cpus_layout_and_broken_areas_are_refused() {
        let here = layout(0x207);
        let mut a = area(&here, 0x7, 0);
        a.truncate(2440); // an AMD-like PKRU offset: not this CPU's layout
        assert!(fit(&a, 0, &layout(0x7)).is_err());
        assert!(fit(&a[..100], 0, &here).unwrap_err().contains("100 bytes"));
        let mut c = area(&here, 0x7, 0);
        c[520] = 1;
        assert!(fit(&c, 0, &here).unwrap_err().contains("compacted"));
        let d = area(&here, 0x1_0000_0007, 0);
        assert!(fit(&d, 0, &here)
            .unwrap_err()
            .contains("not in the captured"));
    }

    #[test]
    fn this_cpu_reports_a_consistent_layout() {
        let Some(l) = Layout::this_cpu() else { return };
        assert_eq!(l.size_for(l.xcr0), l.size, "{l:?}");
    }
}
