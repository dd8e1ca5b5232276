//! The vdso of another kernel: the captured vdso stays where the process expects it
//! (libc keeps pointers to its functions), the running kernel's vdso and vvar go to a free
//! place, and every function the captured vdso exports is redirected there by a jump
//! written over its entry point — a "vdso proxy" (CRIU's name for it).
//!
//! Compared with CRIU's x86 proxy (a fixed list of four or five symbols, always a 16-byte
//! `movabs rax; jmp rax` written without looking at the room the function has):
//! * every defined function of the captured vdso's dynamic symbol table is redirected, by
//!   name, to the function of the same name in ours (`clock_gettime`, `gettimeofday`,
//!   `time`, `getcpu`, `clock_getres`, `sgx_enter_enclave`, `getrandom`, ...); aliases at
//!   one address are patched once;
//! * the jump is a 5-byte `jmp rel32` when our vdso is within ±2 GiB (restore places it
//!   next to the captured one), else `movabs r11, imm64; jmp r11` (13 bytes; r11 is a
//!   scratch register in the SysV ABI and holds no argument);
//! * the room of each function (its `st_size`, and never past the next exported symbol)
//!   is checked: a jump that does not fit is refused, by name;
//! * a function our vdso does not export (e.g. `getrandom` after a downgrade below 6.11)
//!   gets `mov rax, -ENOSYS; ret`, which its callers treat as "not available", instead
//!   of running the old code against data that is gone; it is reported.

use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol, SymbolKind};

/// One exported function of a vdso: every name at one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its names (`__vdso_clock_gettime`, `clock_gettime`), sorted.
    pub names: Vec<String>,
    /// Offset from the start of the vdso mapping.
    pub offset: u64,
    /// Bytes that may be overwritten at `offset` (the function's size, not past the next
    /// entry or the end of its segment).
    pub room: u64,
}

/// The exported functions of a vdso image, by offset.
pub fn entries(elf: &[u8]) -> Result<Vec<Entry>, String> {
    let f = ElfFile64::<Endianness>::parse(elf).map_err(|e| format!("not an ELF64 object: {e}"))?;
    if f.architecture() != object::Architecture::X86_64 {
        return Err(format!(
            "an ELF object for {:?}, not x86-64",
            f.architecture()
        ));
    }
    let endian = f.endian();
    // (vaddr, file offset, file size) of every PT_LOAD: symbol values are addresses.
    let loads: Vec<(u64, u64, u64)> = f
        .elf_program_headers()
        .iter()
        .filter(|p| p.p_type(endian) == object::elf::PT_LOAD)
        .map(|p| (p.p_vaddr(endian), p.p_offset(endian), p.p_filesz(endian)))
        .collect();
    let mut raw: Vec<(u64, u64, u64, String)> = Vec::new(); // offset, size, segment end, name
    for s in f.dynamic_symbols() {
        if s.kind() != SymbolKind::Text || !s.is_definition() {
            continue;
        }
        let Ok(name) = s.name() else { continue };
        let a = s.address();
        let Some(&(v, o, n)) = loads.iter().find(|l| a >= l.0 && a - l.0 < l.2) else {
            return Err(format!(
                "symbol {name} at {a:#x} lies outside every loaded segment"
            ));
        };
        let off = a - v + o;
        if off >= elf.len() as u64 {
            return Err(format!(
                "symbol {name} at offset {off:#x} lies past the image"
            ));
        }
        raw.push((
            off,
            s.size(),
            (o + n).min(elf.len() as u64),
            name.to_string(),
        ));
    }
    if raw.is_empty() {
        return Err("it exports no function".into());
    }
    raw.sort();
    let mut out: Vec<Entry> = Vec::new();
    let mut sizes: Vec<(u64, u64)> = Vec::new(); // per entry: smallest nonzero size, segment end
    for (off, size, end, name) in raw {
        match out.last_mut() {
            Some(e) if e.offset == off => {
                if !e.names.contains(&name) {
                    e.names.push(name);
                }
                let s = sizes.last_mut().expect("one per entry");
                if size != 0 && (s.0 == 0 || size < s.0) {
                    s.0 = size;
                }
            }
            _ => {
                out.push(Entry {
                    names: vec![name],
                    offset: off,
                    room: 0,
                });
                sizes.push((size, end));
            }
        }
    }
    let next: Vec<u64> = out.iter().skip(1).map(|e| e.offset).collect();
    for (i, e) in out.iter_mut().enumerate() {
        let (size, end) = sizes[i];
        let mut limit = end;
        if let Some(&n) = next.get(i) {
            limit = limit.min(n);
        }
        let gap = limit.saturating_sub(e.offset);
        e.room = if size == 0 { gap } else { size.min(gap) };
        e.names.sort();
    }
    Ok(out)
}

/// What is written over one entry of the captured vdso.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    /// Offset from the start of the captured vdso.
    pub offset: u64,
    /// The instructions.
    pub bytes: Vec<u8>,
    /// For reports: `clock_gettime -> +0x6f0` (the offset in our vdso).
    pub what: String,
}

/// The redirections of a captured vdso to ours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxy {
    /// One per exported entry of the captured vdso.
    pub patches: Vec<Patch>,
    /// Entries our vdso does not export (they return `-ENOSYS`).
    pub missing: Vec<String>,
}

/// `mov rax, -ENOSYS; ret`.
const ENOSYS_STUB: [u8; 8] = [0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3];

/// The jump from `from` to `to`: `jmp rel32` when it reaches, else `movabs r11; jmp r11`.
pub fn jump(from: u64, to: u64) -> Vec<u8> {
    let rel = (to as i128) - (from as i128 + 5);
    if let Ok(r) = i32::try_from(rel) {
        let mut b = vec![0xe9];
        b.extend_from_slice(&r.to_le_bytes());
        b
    } else {
        let mut b = vec![0x49, 0xbb];
        b.extend_from_slice(&to.to_le_bytes());
        b.extend_from_slice(&[0x41, 0xff, 0xe3]);
        b
    }
}

/// The name an entry is known by in reports: the one without `__vdso_`.
fn label(e: &Entry) -> &str {
    e.names
        .iter()
        .find(|n| !n.starts_with("__vdso_"))
        .or(e.names.first())
        .map_or("?", |s| s.as_str())
}

/// Plan the redirection of the captured vdso `old` (mapped at `old_base`) to our vdso
/// `new` (mapped at `new_base`). Errors name the entry that cannot be redirected.
pub fn plan(old: &[u8], old_base: u64, new: &[u8], new_base: u64) -> Result<Proxy, String> {
    let olds = entries(old).map_err(|e| format!("the image's vdso: {e}"))?;
    let news = entries(new).map_err(|e| format!("this kernel's vdso: {e}"))?;
    let mut p = Proxy::default();
    for e in &olds {
        let target = e
            .names
            .iter()
            .find_map(|n| news.iter().find(|t| t.names.contains(n)));
        let at = old_base + e.offset;
        let (bytes, what) = match target {
            Some(t) => {
                let j = jump(at, new_base + t.offset);
                (j, format!("{} -> +{:#x}", label(e), t.offset))
            }
            None => {
                p.missing.push(label(e).to_string());
                (
                    ENOSYS_STUB.to_vec(),
                    format!("{} -> -ENOSYS (not in this kernel's vdso)", label(e)),
                )
            }
        };
        if (bytes.len() as u64) > e.room {
            return Err(format!(
                "vdso function {} at +{:#x} has {} bytes, its redirection needs {}",
                label(e),
                e.offset,
                e.room,
                bytes.len()
            ));
        }
        p.patches.push(Patch {
            offset: e.offset,
            bytes,
            what,
        });
    }
    Ok(p)
}

impl Proxy {
    /// Write the patches into a copy of the captured vdso.
    pub fn apply(&self, vdso: &mut [u8]) {
        for p in &self.patches {
            let o = p.offset as usize;
            if let Some(d) = vdso.get_mut(o..o + p.bytes.len()) {
                d.copy_from_slice(&p.bytes);
            }
        }
    }

    /// Whether `off` (from the start of the captured vdso) is an entry point: a thread
    /// stopped there runs the redirection next.
    pub fn is_entry(&self, off: u64) -> bool {
        self.patches.iter().any(|p| p.offset == off)
    }
}

/// Where to put our vdso and vvar (`span` bytes together) in a process whose address
/// space will hold `used` (sorted or not; `(start, end)`): the free place with a guard page
/// on each side that is nearest to `target` (the captured vdso, so that the jumps are
/// 5-byte `jmp rel32`), above `low` and below `high`.
pub fn place_near(used: &[(u64, u64)], target: u64, span: u64, low: u64, high: u64) -> Option<u64> {
    const G: u64 = 4096;
    let mut u: Vec<(u64, u64)> = used.iter().copied().filter(|r| r.0 < r.1).collect();
    u.sort_unstable();
    let mut best: Option<(u64, u64)> = None; // (distance, address)
    let mut prev = low;
    let mut consider = |gs: u64, ge: u64| {
        if ge <= gs || ge - gs < span + 2 * G {
            return;
        }
        let lo = gs + G;
        let hi = ge - G - span; // highest start
        let a = target.clamp(lo, hi) & !(G - 1);
        let a = if a < lo { a + G } else { a };
        if a < lo || a > hi {
            return;
        }
        let d = a.abs_diff(target);
        if best.is_none_or(|b| d < b.0) {
            best = Some((d, a));
        }
    };
    for &(s, e) in &u {
        if s > prev {
            consider(prev, s.min(high));
        }
        prev = prev.max(e);
        if prev >= high {
            break;
        }
    }
    if high > prev {
        consider(prev, high);
    }
    best.map(|b| b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn our_vdso() -> Vec<u8> {
        let (maps, bytes) = crate::check::own_vdso().expect("own vdso");
        assert!(maps.iter().any(|m| m.0 == b"[vdso]"));
        bytes
    }

    #[test]
    fn our_vdso_exports_the_clock_functions() {
        let v = our_vdso();
        let es = entries(&v).unwrap();
        let names: Vec<&str> = es.iter().map(label).collect();
        for want in [
            "clock_gettime",
            "gettimeofday",
            "time",
            "getcpu",
            "clock_getres",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let cgt = es.iter().find(|e| label(e) == "clock_gettime").unwrap();
        assert_eq!(cgt.names, ["__vdso_clock_gettime", "clock_gettime"]);
        assert!(cgt.room >= 13, "{cgt:?}");
        // Entries are distinct, sorted, inside the image.
        for w in es.windows(2) {
            assert!(w[0].offset < w[1].offset);
            assert!(w[0].offset + w[0].room <= w[1].offset);
        }
    }

    #[test]
    fn placement_next_to_the_captured_vdso() {
        const G: u64 = 4096;
        let vdso = (0x7ffd_0000_0000, 0x7ffd_0000_2000);
        let vvar = (0x7ffd_0000_2000 - 6 * G, 0x7ffd_0000_0000);
        let stack = (0x7ffc_f000_0000, 0x7ffc_f002_0000);
        let used = [stack, vvar, vdso, (0x5555_0000_0000, 0x5555_0001_0000)];
        let a = place_near(&used, vdso.0, 8 * G, 0x1000_0000, 0x7fff_ffff_f000).unwrap();
        // Right after the vdso, one guard page between.
        assert_eq!(a, vdso.1 + G);
        // The same layout with the space above taken: below the vvar.
        let top = (vdso.1, 0x7fff_ffff_f000);
        let used2 = [stack, vvar, vdso, top];
        let a = place_near(&used2, vdso.0, 8 * G, 0x1000_0000, 0x7fff_ffff_f000).unwrap();
        assert_eq!(a, vvar.0 - G - 8 * G);
        for &(s, e) in &used2 {
            assert!(
                a + 8 * G + G <= s || a >= e + G,
                "{a:#x} touches {s:#x}-{e:#x}"
            );
        }
        // No room at all.
        assert_eq!(
            place_near(
                &[(0x1000_0000, 0x7fff_ffff_f000)],
                vdso.0,
                G,
                0x1000_0000,
                0x7fff_ffff_f000
            ),
            None
        );
    }

    #[test]
    fn jumps_near_and_far() {
        let j = jump(0x7000_0000_1000, 0x7000_0000_3000);
        assert_eq!(j, [0xe9, 0xfb, 0x1f, 0, 0]);
        let j = jump(0x7000_0000_3000, 0x7000_0000_1000);
        assert_eq!(j, [0xe9, 0xfb, 0xdf, 0xff, 0xff]);
        let far = jump(0x1000, 0x7fff_0000_0000);
        assert_eq!(far.len(), 13);
        assert_eq!(&far[..2], &[0x49, 0xbb]);
        assert_eq!(&far[2..10], &0x7fff_0000_0000u64.to_le_bytes());
        assert_eq!(&far[10..], &[0x41, 0xff, 0xe3]);
    }

    #[test]
    fn proxy_of_our_vdso_to_itself_elsewhere() {
        let v = our_vdso();
        let p = plan(&v, 0x7f00_0000_0000, &v, 0x7f00_0010_0000).unwrap();
        let es = entries(&v).unwrap();
        assert_eq!(p.patches.len(), es.len());
        assert!(p.missing.is_empty());
        let mut patched = v.clone();
        p.apply(&mut patched);
        for e in &es {
            let o = e.offset as usize;
            assert_eq!(patched[o], 0xe9, "{e:?}");
            let rel = i32::from_le_bytes(patched[o + 1..o + 5].try_into().unwrap()) as i64;
            // Lands on the same function in the other copy.
            assert_eq!(
                0x7f00_0000_0000 + e.offset as i64 + 5 + rel,
                0x7f00_0010_0000 + e.offset as i64
            );
            assert!(p.is_entry(e.offset));
        }
        // Far away: absolute jumps, same targets.
        let p = plan(&v, 0x1000_0000, &v, 0x7f00_0000_0000).unwrap();
        assert!(p.patches.iter().all(|x| x.bytes.len() == 13));
    }

    #[test]
    fn a_function_missing_here_returns_enosys_and_bad_images_are_refused() {
        let v = our_vdso();
        // Rename our `time` in a copy of the string table (the weak `time` is the tail
        // of `__vdso_time` there): the "new" vdso lacks it.
        let mut other = v.clone();
        let pos = other
            .windows(12)
            .position(|w| w == b"__vdso_time\0")
            .expect("__vdso_time in the string table");
        other[pos + 7..pos + 11].copy_from_slice(b"tyme");
        let p = plan(&v, 0x7f00_0000_0000, &other, 0x7f00_0010_0000).unwrap();
        assert_eq!(p.missing, ["time"]);
        let t = entries(&v)
            .unwrap()
            .into_iter()
            .find(|e| label(e) == "time")
            .unwrap();
        let patch = p.patches.iter().find(|x| x.offset == t.offset).unwrap();
        assert_eq!(patch.bytes, ENOSYS_STUB);
        // Not an ELF, a truncated one: refused with a reason, no panic.
        assert!(plan(&[0u8; 64], 0, &v, 0)
            .unwrap_err()
            .contains("the image's vdso"));
        for n in [0usize, 16, 64, 200, v.len() / 2] {
            let _ = plan(&v[..n], 0, &v, 0x1000);
        }
    }
}
