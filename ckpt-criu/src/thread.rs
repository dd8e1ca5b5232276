//! A thread's state from its `core-TID.img`: x86-64 registers, the FXSAVE/XSAVE area rebuilt
//! from CRIU's per-field FPU record, TLS descriptors, and the per-thread state the model carries
//! (the capture's documented Thread keys of docs/MODEL.md).

use crate::image::{CriuError, Result};
use crate::pb;
use ckpt_format::{
    Capabilities, ClearChildTid, Fpu, FpuKind, PendingSignals, Regs, RobustList, Rseq, SigAltStack,
    SigInfo, Thread, ThreadRecords,
};

/// Offsets of the XSAVE components in the standard (non-compacted) layout as Intel CPUs place
/// them: (xstate bit, offset, size). The offsets are the CPU's to choose (CPUID leaf 0xD; AMD
/// CPUs without MPX put the AVX-512 parts elsewhere), so [`xsave_layout`] asks the CPU this
/// runs on and uses this table only where it cannot.
const XSAVE_PARTS: [(u32, usize, usize); 7] = [
    (2, 576, 256),   // AVX: the high halves of ymm0-15
    (3, 960, 64),    // MPX bound registers
    (4, 1024, 64),   // MPX bound config/status
    (5, 1088, 64),   // AVX-512 opmask k0-7
    (6, 1152, 512),  // AVX-512 ZMM_Hi256 (high halves of zmm0-15)
    (7, 1664, 1024), // AVX-512 Hi16_ZMM (zmm16-31)
    (9, 2688, 8),    // PKRU
];

/// The XSAVE layout of this machine: each component's (bit, offset, size), and the size of
/// the whole area for the features the OS enables (`None`: use the components' end). CRIU's
/// image does not record the dumping CPU's layout; a converted image is laid out for the CPU
/// the conversion runs on, which is the one a restore of it will check against.
pub fn xsave_layout() -> ([(u32, usize, usize); 7], Option<usize>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        if __cpuid(0).eax >= 0xd && __cpuid(1).ecx & (1 << 27) != 0 {
            let mut parts = XSAVE_PARTS;
            for p in parts.iter_mut() {
                let l = __cpuid_count(0xd, p.0);
                if l.eax != 0 {
                    p.1 = l.ebx as usize;
                    p.2 = l.eax as usize;
                }
            }
            let total = __cpuid_count(0xd, 0).ebx as usize;
            return (parts, Some(total).filter(|&t| t >= 576));
        }
    }
    (XSAVE_PARTS, None)
}

fn le32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn le64s(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The 512-byte FXSAVE image of CRIU's FPU record, then the XSAVE header and components when
/// the record has an xsave part. Returns `None` for a record of impossible sizes.
pub fn fpu_area(f: &pb::UserX86FpregsEntry) -> Option<Fpu> {
    let mut a = vec![0u8; 512];
    a[0..2].copy_from_slice(&(f.cwd as u16).to_le_bytes());
    a[2..4].copy_from_slice(&(f.swd as u16).to_le_bytes());
    a[4] = f.twd as u8;
    a[6..8].copy_from_slice(&(f.fop as u16).to_le_bytes());
    a[8..16].copy_from_slice(&f.rip.to_le_bytes());
    a[16..24].copy_from_slice(&f.rdp.to_le_bytes());
    a[24..28].copy_from_slice(&f.mxcsr.to_le_bytes());
    a[28..32].copy_from_slice(&f.mxcsr_mask.to_le_bytes());
    let st = le32s(&f.st_space);
    let xmm = le32s(&f.xmm_space);
    if st.len() > 128 || xmm.len() > 256 {
        return None;
    }
    a[32..32 + st.len()].copy_from_slice(&st);
    a[160..160 + xmm.len()].copy_from_slice(&xmm);
    let Some(x) = &f.xsave else {
        return Some(Fpu {
            kind: FpuKind::Fxsave,
            xfeatures: 0,
            data: a,
        });
    };
    let parts: [(u32, Vec<u8>); 7] = [
        (2, le32s(&x.ymmh_space)),
        (3, le64s(&x.bndreg_state)),
        (4, le64s(&x.bndcsr_state)),
        (5, le64s(&x.opmask_reg)),
        (6, le64s(&x.zmm_upper)),
        (7, le64s(&x.hi16_zmm)),
        (9, le32s(&x.pkru)),
    ];
    // The area is as large as this CPU's (or ends after the last component CRIU recorded);
    // PKRU's 4 bytes sit in an 8-byte component.
    let (layout, total) = xsave_layout();
    let mut size = 576;
    for ((bit, off, len), (b2, data)) in layout.iter().zip(parts.iter()) {
        debug_assert_eq!(bit, b2);
        if data.len() > *len {
            return None;
        }
        if !data.is_empty() {
            size = size.max(off + len);
        }
    }
    let size = match total {
        Some(t) if t >= size => t,
        _ => size,
    };
    a.resize(size, 0);
    a[512..520].copy_from_slice(&x.xstate_bv.to_le_bytes());
    for ((_, off, _), (_, data)) in layout.iter().zip(parts.iter()) {
        if !data.is_empty() {
            a[*off..off + data.len()].copy_from_slice(data);
        }
    }
    // xfeatures: x87 and SSE, plus every component CRIU recorded.
    let mut xfeatures = 3u64;
    for ((bit, _, _), (_, data)) in layout.iter().zip(parts.iter()) {
        if !data.is_empty() {
            xfeatures |= 1 << bit;
        }
    }
    Some(Fpu {
        kind: FpuKind::Xsave,
        xfeatures,
        data: a,
    })
}

/// The 16-byte `struct user_desc` of one CRIU TLS entry.
pub fn user_desc(d: &pb::UserDescT) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&d.entry_number.to_le_bytes());
    b[4..8].copy_from_slice(&d.base_addr.to_le_bytes());
    b[8..12].copy_from_slice(&d.limit.to_le_bytes());
    let contents = (d.contents_h as u32) << 1 | d.contents_l as u32;
    let flags = d.seg_32bit as u32
        | contents << 1
        | (d.read_exec_only as u32) << 3
        | (d.limit_in_pages as u32) << 4
        | (d.seg_not_present as u32) << 5
        | (d.usable as u32) << 6;
    b[12..16].copy_from_slice(&flags.to_le_bytes());
    b
}

/// The capability sets of a creds entry (each `u32` pair as one mask).
pub fn capabilities(c: &pb::CredsEntry) -> Capabilities {
    let cap = |v: &[u32]| {
        v.first().copied().unwrap_or(0) as u64 | (v.get(1).copied().unwrap_or(0) as u64) << 32
    };
    Capabilities {
        inh: cap(&c.cap_inh),
        prm: cap(&c.cap_prm),
        eff: cap(&c.cap_eff),
        bnd: cap(&c.cap_bnd),
        amb: cap(&c.cap_amb),
    }
}

/// A signal queue: its 128-byte siginfos in order (`None` when empty). A siginfo of
/// another size is an error naming `name`.
pub fn signal_queue(q: &pb::SignalQueueEntry, name: &str) -> Result<Option<Vec<SigInfo>>> {
    let mut v = Vec::with_capacity(q.signals.len());
    for (i, s) in q.signals.iter().enumerate() {
        if s.siginfo.len() != SigInfo::LEN {
            return Err(CriuError::new(
                name,
                0,
                format!("queued signal {i}: a siginfo of {} bytes", s.siginfo.len()),
                format!("{} bytes", SigInfo::LEN),
            ));
        }
        v.push(SigInfo(s.siginfo.clone()));
    }
    Ok((!v.is_empty()).then_some(v))
}

/// The model's thread `tid` from its core entry (`name` in errors). What the model cannot
/// carry is added to `losses`.
pub fn thread(
    core: &pb::CoreEntry,
    tid: u32,
    name: &str,
    losses: &mut Vec<String>,
) -> Result<Thread> {
    if core.mtype != pb::core_entry::March::X8664 as i32 {
        return Err(CriuError::new(
            name,
            0,
            format!("machine type {}", core.mtype),
            "X86_64 (1)",
        ));
    }
    let ti = core
        .thread_info
        .as_ref()
        .ok_or_else(|| CriuError::new(name, 0, "no thread_info", "x86 thread state"))?;
    let g = &ti.gpregs;
    if g.mode == Some(pb::UserX86RegsMode::Compat as i32) {
        losses.push(format!("thread {tid}: a 32-bit (compat) register set"));
    }
    let regs = Regs::from_array([
        g.r15, g.r14, g.r13, g.r12, g.bp, g.bx, g.r11, g.r10, g.r9, g.r8, g.ax, g.cx, g.dx, g.si,
        g.di, g.orig_ax, g.ip, g.cs, g.flags, g.sp, g.ss, g.fs_base, g.gs_base, g.ds, g.es, g.fs,
        g.gs,
    ]);
    let fpu = fpu_area(&ti.fpregs).ok_or_else(|| {
        CriuError::new(
            name,
            0,
            "FPU arrays longer than their areas",
            "x86 FPU state",
        )
    })?;
    if ti
        .fpregs
        .xsave
        .as_ref()
        .is_some_and(|x| x.cet.is_some_and(|c| c.cet != 0 || c.ssp != 0))
    {
        losses.push(format!("thread {tid}: CET shadow-stack state"));
    }
    let tls: Vec<u8> = ti.tls.iter().flat_map(user_desc).collect();
    let tc = core.thread_core.clone().unwrap_or_default();
    let sigmask = tc
        .blk_sigset
        .or(core.tc.as_ref().map(|t| t.blk_sigset))
        .unwrap_or(0);
    let mut r = ThreadRecords::default();
    if tc.futex_rla != 0 || tc.futex_rla_len != 0 {
        r.robust_list = Some(RobustList {
            head: tc.futex_rla,
            len: tc.futex_rla_len as u64,
        });
    }
    if let Some(s) = tc.sas {
        r.sigaltstack = Some(SigAltStack {
            sp: s.ss_sp,
            flags: s.ss_flags,
            size: s.ss_size,
        });
    }
    if let Some(q) = tc.rseq_entry.filter(|q| q.rseq_abi_pointer != 0) {
        r.rseq = Some(Rseq {
            ptr: q.rseq_abi_pointer,
            len: q.rseq_abi_size,
            sig: q.signature,
        });
    }
    if ti.clear_tid_addr != 0 {
        r.clear_child_tid = Some(ClearChildTid {
            addr: ti.clear_tid_addr,
        });
    }
    if let Some(q) = &tc.signals_p {
        // CRIU keeps the queue, not the pending mask: the mask is the queue's.
        if let Some(queue) = signal_queue(q, name)? {
            let mask = queue
                .iter()
                .filter(|s| (1..=64).contains(&s.signo()))
                .fold(0u64, |m, s| m | 1 << (s.signo() - 1));
            r.pending = Some(PendingSignals { mask, queue });
        }
    }
    // Scheduling: a record of its own; the parent-death signal is the task's (decode.rs).
    r.attrs = crate::process::thread_attrs(&tc);
    Ok(Thread {
        tid: tid as i32,
        regs,
        fpu: Some(fpu),
        tls,
        sigmask,
        records: r,
        extras: Default::default(),
    })
}
