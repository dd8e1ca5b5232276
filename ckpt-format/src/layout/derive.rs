//! Values a legacy encoder derives when the model does not carry them, and
//! the matching rule its decoder uses to leave them out of the model.
//!
//! The rule that makes round trips exact in both directions: a decoder puts a
//! wire field into `Extras` only when it differs from what the encoder would
//! derive from the rest of the model; an encoder uses the extra when present
//! and the derivation otherwise. docs/MODEL.md lists every key.

use crate::model::{Arch, Mm, VmaKind};

/// `bytes` without trailing NULs (fixed-size C strings in the model).
pub fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// `vm_page_prot` the x86 kernel derives from `vm_flags` (`protection_map`):
/// present, user, accessed, read-write for shared writable mappings, and NX
/// on x86-64 for non-executable ones; `PAGE_NONE` without access rights.
pub fn default_page_prot(arch: Arch, vm_flags: u64) -> u64 {
    const P: u64 = 0x1;
    const RW: u64 = 0x2;
    const USER: u64 = 0x4;
    const ACCESSED: u64 = 0x20;
    const PROTNONE: u64 = 0x100;
    let nx = if arch == Arch::X86_64 { 1u64 << 63 } else { 0 };
    let (r, w, x, shared) = (
        vm_flags & 1 != 0,
        vm_flags & 2 != 0,
        vm_flags & 4 != 0,
        vm_flags & 8 != 0,
    );
    if !r && !w && !x {
        return PROTNONE | ACCESSED;
    }
    let mut v = P | USER | ACCESSED;
    if w && shared {
        v |= RW;
    }
    if !x {
        v |= nx;
    }
    v
}

/// Kind of an anonymous VMA as `/proc/PID/maps` labels it: `[heap]` when it
/// overlaps `start_brk..=brk`, `[stack]` when it holds `start_stack`.
pub fn anon_kind(start: u64, end: u64, mm: &Mm) -> VmaKind {
    if mm.brk != 0 && start <= mm.brk && end >= mm.start_brk {
        VmaKind::Heap
    } else if mm.start_stack != 0 && start <= mm.start_stack && end >= mm.start_stack {
        VmaKind::Stack
    } else {
        VmaKind::Anon
    }
}

/// `PROT_*` bits implied by `vm_flags` (VM_READ, VM_WRITE, VM_EXEC).
pub fn prot_of(vm_flags: u64) -> u32 {
    (vm_flags & 7) as u32
}

/// `GDT_ENTRY_TLS_MIN` on x86-64.
pub const GDT_ENTRY_TLS_MIN: u64 = 12;
/// `__USER32_CS` on x86-64.
pub const USER32_CS: u64 = 0x23;
/// `__USER_DS` (= `__USER32_DS`) on x86-64.
pub const USER_DS: u64 = 0x2b;
/// `__USER_CS` on x86-64.
pub const USER_CS: u64 = 0x33;

/// Selector value of a v21 symbolic segment code (`CKPT_X86_SEG_*`).
pub fn seg_decode(code: u16) -> Option<u64> {
    use crate::layout::v21::*;
    Some(match code {
        SEG_NULL => 0,
        SEG_USER32_CS => USER32_CS,
        SEG_USER32_DS => USER_DS,
        SEG_USER64_CS => USER_CS,
        SEG_USER64_DS => USER_DS,
        c if c & 0xc000 == SEG_TLS => {
            let i = (c & 0x3fff) as u64;
            if i >= 3 {
                return None;
            }
            ((GDT_ENTRY_TLS_MIN + i) << 3) | 3
        }
        c if c & 0xc000 == SEG_LDT => (((c & 0x3fff) as u64) << 3) | 7,
        _ => return None,
    })
}

/// Canonical symbolic code of a selector value, if it has one.
pub fn seg_encode(sel: u64) -> Option<u16> {
    use crate::layout::v21::*;
    Some(match sel {
        0 => SEG_NULL,
        USER32_CS => SEG_USER32_CS,
        USER_DS => SEG_USER64_DS,
        USER_CS => SEG_USER64_CS,
        s if s & 7 == 7 && (s >> 3) < 0x2000 => SEG_LDT | (s >> 3) as u16,
        s if s & 7 == 3 && (GDT_ENTRY_TLS_MIN..GDT_ENTRY_TLS_MIN + 3).contains(&(s >> 3)) => {
            SEG_TLS | ((s >> 3) - GDT_ENTRY_TLS_MIN) as u16
        }
        _ => return None,
    })
}

/// The three GDT TLS slots of a thread that set none, as `PTRACE_GET_THREAD_AREA` returns
/// them and ckpt-capture records them (`Thread::tls`: three empty `user_desc`, 48 bytes).
/// ckpt-v21 has no form for "no TLS at all", so images meant to convert use this.
pub fn empty_tls() -> Vec<u8> {
    (0..3u32).flat_map(|i| desc_to_user(0, i)).collect()
}

/// Convert one 8-byte GDT descriptor (TLS slot `idx`) to the 16-byte
/// `struct user_desc` that `PTRACE_GET_THREAD_AREA` returns (`fill_user_desc`).
pub fn desc_to_user(desc: u64, idx: u32) -> [u8; 16] {
    let a = desc as u32;
    let b = (desc >> 32) as u32;
    let base = (a >> 16) | ((b & 0xff) << 16) | (b & 0xff00_0000);
    let limit = (a & 0xffff) | (b & 0x000f_0000);
    let ty = (b >> 8) & 0xf;
    let p = (b >> 15) & 1;
    let avl = (b >> 20) & 1;
    let l = (b >> 21) & 1;
    let d = (b >> 22) & 1;
    let g = (b >> 23) & 1;
    let flags = d
        | ((ty >> 2) & 3) << 1
        | (((ty >> 1) & 1) ^ 1) << 3
        | g << 4
        | (p ^ 1) << 5
        | avl << 6
        | l << 7;
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&(GDT_ENTRY_TLS_MIN as u32 + idx).to_le_bytes());
    out[4..8].copy_from_slice(&base.to_le_bytes());
    out[8..12].copy_from_slice(&limit.to_le_bytes());
    out[12..16].copy_from_slice(&flags.to_le_bytes());
    out
}

/// Inverse of [`desc_to_user`] (`fill_ldt`; an empty `user_desc` gives 0).
pub fn user_to_desc(u: &[u8; 16]) -> u64 {
    let word = |i: usize| u32::from_le_bytes([u[i], u[i + 1], u[i + 2], u[i + 3]]);
    let (base, limit, fl) = (word(4), word(8), word(12));
    let seg_32bit = fl & 1;
    let contents = (fl >> 1) & 3;
    let read_exec_only = (fl >> 3) & 1;
    let limit_in_pages = (fl >> 4) & 1;
    let not_present = (fl >> 5) & 1;
    let useable = (fl >> 6) & 1;
    let lm = (fl >> 7) & 1;
    let empty = base == 0
        && limit == 0
        && contents == 0
        && read_exec_only == 1
        && seg_32bit == 0
        && limit_in_pages == 0
        && not_present == 1
        && useable == 0
        && lm == 0;
    if empty {
        return 0;
    }
    let ty = ((read_exec_only ^ 1) << 1) | (contents << 2);
    let a = (limit & 0xffff) | ((base & 0xffff) << 16);
    let b = ((base >> 16) & 0xff)
        | ty << 8
        | 1 << 12
        | 3 << 13
        | (not_present ^ 1) << 15
        | (limit & 0xf_0000)
        | useable << 20
        | lm << 21
        | seg_32bit << 22
        | limit_in_pages << 23
        | (base & 0xff00_0000);
    (a as u64) | ((b as u64) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        for code in [0u16, 1, 3, 4, 0x4000, 0x4001, 0x4002, 0x8000, 0x8005] {
            let sel = seg_decode(code).unwrap();
            assert_eq!(seg_encode(sel), Some(code), "code {code:#x}");
        }
        assert_eq!(seg_decode(2), Some(0x2b));
        assert_eq!(seg_encode(0x1234), None);
        assert_eq!(seg_decode(0x4003), None);
        assert_eq!(seg_decode(9), None);
    }

    #[test]
    fn tls_descriptors_round_trip() {
        // A typical glibc TLS descriptor: base 0xf7d8c6c0, 4 GiB limit in pages, 32-bit, RW.
        let mut u = [0u8; 16];
        u[0..4].copy_from_slice(&12u32.to_le_bytes());
        u[4..8].copy_from_slice(&0xf7d8_c6c0u32.to_le_bytes());
        u[8..12].copy_from_slice(&0xfffffu32.to_le_bytes());
        u[12..16].copy_from_slice(&0b0101_0001u32.to_le_bytes());
        let d = user_to_desc(&u);
        assert_eq!(desc_to_user(d, 0), u);
        // The empty slot is the all-zero descriptor and back.
        let e = desc_to_user(0, 1);
        assert_eq!(user_to_desc(&e), 0);
        assert_eq!(u32::from_le_bytes(e[12..16].try_into().unwrap()), 0b10_1000);
    }

    #[test]
    fn page_prot_defaults() {
        assert_eq!(default_page_prot(Arch::X86_64, 0), 0x120);
        assert_eq!(default_page_prot(Arch::X86_64, 0x3), 0x8000_0000_0000_0025);
        assert_eq!(default_page_prot(Arch::X86_64, 0xb), 0x8000_0000_0000_0027);
        assert_eq!(default_page_prot(Arch::X86_32, 0x5), 0x25);
    }
}
