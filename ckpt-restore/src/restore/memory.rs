//! Memory: the injection area, the address space (vdso kept, VMAs mapped, pages
//! written, protections), and the mm fields.

use super::*;

/// Park our vdso/vvar inside the area, drop everything else, move them to the image's
/// vdso place — or, when the image's vdso is another kernel's, next to it, and make the
/// image's vdso the proxy (docs/RESTORE.md, "Another kernel"); then every VMA, the pages,
/// and the final protections. Returns our vdso's address when the image's is proxied.
#[allow(clippy::too_many_arguments)]
pub(super) fn address_space(
    main: &mut Remote,
    t: &TaskPlan,
    st: &Staged,
    image: &[u8],
    pid: i32,
    area: u64,
    area_len: u64,
    ours: &[(Vec<u8>, u64, u64)],
    shm: &[ShmLink],
    our_bytes: &[u8],
) -> Result<Option<u64>, Error> {
    // Park the vdso/vvar inside the area, drop everything else, move them into place.
    let img_vdso = t.vmas.iter().find(|v| v.vma.kind == VmaKind::Vdso);
    let park = area + AREA_PAGES * PAGE;
    let first = ours.first().map_or(0, |f| f.1);
    if img_vdso.is_some() {
        for o in ours {
            let len = o.2 - o.1;
            main.call(
                "mremap (park vdso)",
                libc::SYS_mremap,
                &[
                    o.1,
                    len,
                    len,
                    (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                    park + (o.1 - first),
                ],
            )?;
        }
    }
    main.call("munmap", libc::SYS_munmap, &[0, area])?;
    main.call(
        "munmap",
        libc::SYS_munmap,
        &[area + area_len, TASK_SIZE - (area + area_len)],
    )?;
    let our_vdso = ours.iter().find(|o| o.0 == b"[vdso]").map_or(0, |o| o.1);
    let fit = match img_vdso {
        None => check::VdsoFit::Absent,
        Some(_) => check::vdso_fit(t, ours, our_bytes, image)
            .map_err(|e| Error::Incompatible(vec![format!("task {}: {e}", t.task.pid)]))?,
    };
    // Where our vdso goes: the captured place, or (proxy) a free place near it.
    let dest_first = match (&fit, img_vdso) {
        (check::VdsoFit::InPlace, Some(iv)) => {
            Some(iv.vma.start.wrapping_add(first).wrapping_sub(our_vdso))
        }
        (check::VdsoFit::Proxy { .. }, Some(iv)) => {
            let span = ours.last().map_or(0, |l| l.2) - first;
            let mut used: Vec<(u64, u64)> = t
                .vmas
                .iter()
                .map(|v| (v.vma.start, v.vma.end))
                .filter(|r| r.1 <= TASK_SIZE)
                .collect();
            used.push((area, area + area_len));
            let at = crate::vdso::place_near(&used, iv.vma.start, span, 0x1000_0000, TASK_SIZE)
                .ok_or_else(|| {
                    Error::System("no room for this kernel's vdso in the image's layout".into())
                })?;
            Some(at)
        }
        _ => None,
    };
    if let Some(dest_first) = dest_first {
        for o in ours {
            let len = o.2 - o.1;
            main.call(
                "mremap (vdso into place)",
                libc::SYS_mremap,
                &[
                    park + (o.1 - first),
                    len,
                    len,
                    (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                    dest_first + (o.1 - first),
                ],
            )?;
        }
    }
    // Our vdso's new address when the image's is proxied to it.
    let proxy_to = match (&fit, dest_first) {
        (check::VdsoFit::Proxy { .. }, Some(d)) => Some(d + (our_vdso - first)),
        _ => None,
    };

    // Every VMA, then the pages, then the final protections.
    let mut reprotect: Vec<(u64, u64, u32)> = Vec::new();
    for v in &t.vmas {
        let link = shm.iter().find(|l| l.start == v.vma.start);
        if let (check::VdsoFit::Proxy { .. }, VmaKind::Vdso | VmaKind::Vvar) = (&fit, v.vma.kind) {
            proxy_map(main, v, &mut reprotect)?;
        } else if let Some(p) = map_vma(main, v, st, link, pid, area + PAGE)? {
            reprotect.push(p);
        }
    }
    write_pages(pid, t, image)?;
    if let (check::VdsoFit::Proxy { bytes, .. }, Some(iv), Some(to)) = (&fit, img_vdso, proxy_to) {
        let p = crate::vdso::plan(bytes, iv.vma.start, our_bytes, to)
            .map_err(|e| Error::Image(format!("task {}: vdso: {e}", t.task.pid)))?;
        let mut patched = bytes.clone();
        p.apply(&mut patched);
        sys::write_pairs(pid, &[(iv.vma.start, &patched)])
            .map_err(|e| sys_err("writing the proxied vdso", e))?;
    }
    for (s, l, prot) in reprotect {
        main.call("mprotect", libc::SYS_mprotect, &[s, l, prot as u64])?;
    }
    advise(main, t)?;
    Ok(proxy_to)
}

/// `vm_flags` bits that `madvise` sets, with the advice that sets each.
const ADVICE: [(u64, &str, u64); 8] = [
    (0x8000, "MADV_SEQUENTIAL", 2),       // VM_SEQ_READ "sr"
    (0x10000, "MADV_RANDOM", 1),          // VM_RAND_READ "rr"
    (0x20000, "MADV_DONTFORK", 10),       // VM_DONTCOPY "dc"
    (0x200_0000, "MADV_WIPEONFORK", 18),  // VM_WIPEONFORK "wf"
    (0x400_0000, "MADV_DONTDUMP", 16),    // VM_DONTDUMP "dd"
    (0x2000_0000, "MADV_HUGEPAGE", 14),   // VM_HUGEPAGE "hg"
    (0x4000_0000, "MADV_NOHUGEPAGE", 15), // VM_NOHUGEPAGE "nh"
    (0x8000_0000, "MADV_MERGEABLE", 12),  // VM_MERGEABLE "mg"
];
/// `VM_LOCKED` ("lo") and `VM_LOCKONFAULT` ("lf"): `mlock2`, with `MLOCK_ONFAULT`.
const VM_LOCKED: u64 = 0x2000;
const VM_LOCKONFAULT: u64 = 0x8_0000;

/// The per-mapping advice and locks of every VMA (its `vm_flags`), which a fresh mapping
/// does not have. A call the machine refuses (no KSM, `RLIMIT_MEMLOCK`) fails the
/// restore with that reason.
fn advise(main: &mut Remote, t: &TaskPlan) -> Result<(), Error> {
    for v in &t.vmas {
        let m = &v.vma;
        if matches!(m.kind, VmaKind::Vdso | VmaKind::Vvar | VmaKind::Other) {
            continue;
        }
        let len = m.end - m.start;
        for (bit, name, advice) in ADVICE {
            if m.flags & bit != 0 {
                main.call(
                    &format!("madvise({name}) of {:#x}-{:#x}", m.start, m.end),
                    libc::SYS_madvise,
                    &[m.start, len, advice],
                )?;
            }
        }
        if m.flags & VM_LOCKED != 0 {
            let onfault = u64::from(m.flags & VM_LOCKONFAULT != 0);
            main.call(
                &format!("mlock2 of {:#x}-{:#x}", m.start, m.end),
                libc::SYS_mlock2,
                &[m.start, len, onfault],
            )?;
        }
    }
    Ok(())
}

/// The image's vdso and vvar when the vdso is proxied: the vdso becomes private
/// anonymous memory (writable until the patched bytes are in, then its captured
/// protection), the vvar a reservation without access — the clock data it showed belongs
/// to the old kernel, and old code that still read it faults instead of misreading.
fn proxy_map(
    main: &mut Remote,
    v: &VmaPlan,
    reprotect: &mut Vec<(u64, u64, u32)>,
) -> Result<(), Error> {
    let m = &v.vma;
    let len = m.end - m.start;
    let (prot, flags) = if m.kind == VmaKind::Vdso {
        reprotect.push((m.start, len, m.prot & 7));
        (
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
        )
    } else {
        (
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
        )
    };
    let r = main.call(
        &format!("mmap {:#x}-{:#x} (proxied vdso/vvar)", m.start, m.end),
        libc::SYS_mmap,
        &[m.start, len, prot as u64, flags as u64, u64::MAX, 0],
    )?;
    if r != m.start {
        return Err(Error::System(format!(
            "mmap {:#x}-{:#x} landed at {r:#x}",
            m.start, m.end
        )));
    }
    Ok(())
}

/// The mm fields (prctl_mm_map with auxv and exe), the name and the personality.
pub(super) fn mm_fields(
    main: &mut Remote,
    t: &TaskPlan,
    pid: i32,
    data: u64,
    exe: Option<RawFd>,
    proxy_to: Option<u64>,
) -> Result<(), Error> {
    // mm fields, exe, name, personality.
    if let Some(mm) = &t.mm {
        let mut b = Vec::with_capacity(104);
        for v in [
            mm.start_code,
            mm.end_code,
            mm.start_data,
            mm.end_data,
            mm.start_brk,
            mm.brk,
            mm.start_stack,
            mm.arg_start,
            mm.arg_end,
            mm.env_start,
            mm.env_end,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let mut auxv_v = mm.auxv.clone();
        if let Some(to) = proxy_to {
            // AT_SYSINFO_EHDR: the kernel's copy of the auxv names the live vdso (the
            // process's own copy still names the proxy, a valid ELF image that jumps there).
            for pair in auxv_v.chunks_exact_mut(2) {
                if pair[0] == 33 {
                    pair[1] = to;
                }
            }
        }
        let auxv: Vec<u8> = auxv_v.iter().flat_map(|v| v.to_le_bytes()).collect();
        if auxv.len() > 1024 {
            return Err(Error::Image(format!(
                "auxv of {} bytes is too long",
                auxv.len()
            )));
        }
        let auxv_at = data + 256;
        b.extend_from_slice(&(if auxv.is_empty() { 0 } else { auxv_at }).to_le_bytes());
        b.extend_from_slice(&(auxv.len() as u32).to_le_bytes());
        let exe_fd = exe.map_or(u32::MAX, |f| f as u32);
        b.extend_from_slice(&exe_fd.to_le_bytes());
        sys::write_pairs(pid, &[(data, &b), (auxv_at, &auxv)])
            .map_err(|e| sys_err("writing prctl_mm_map", e))?;
        let r = main.raw(
            libc::SYS_prctl,
            &[
                libc::PR_SET_MM as u64,
                libc::PR_SET_MM_MAP as u64,
                data,
                104,
                0,
            ],
        )?;
        if r == -(libc::EPERM as i64) && exe.is_some() {
            // Without CAP_CHECKPOINT_RESTORE the exe link cannot be changed: keep the rest.
            eprintln!(
                "ckpt-restore: not permitted to set the exe link; /proc/PID/exe will be wrong"
            );
            let pos = 11 * 8 + 8 + 4;
            let mut b2 = b.clone();
            b2[pos..pos + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            sys::write_pairs(pid, &[(data, &b2)]).map_err(|e| sys_err("prctl_mm_map", e))?;
            main.call(
                "prctl(PR_SET_MM_MAP)",
                libc::SYS_prctl,
                &[
                    libc::PR_SET_MM as u64,
                    libc::PR_SET_MM_MAP as u64,
                    data,
                    104,
                    0,
                ],
            )?;
        } else if r < 0 {
            return Err(Error::System(format!(
                "prctl(PR_SET_MM_MAP) in the restored process: {}",
                std::io::Error::from_raw_os_error((-r) as i32)
            )));
        }
        if mm.personality != 0 {
            main.call(
                "personality",
                libc::SYS_personality,
                &[mm.personality as u64],
            )?;
        }
    }
    let mut comm = t.task.comm.clone();
    comm.truncate(15);
    comm.push(0);
    sys::write_pairs(pid, &[(data + 1536, &comm)]).map_err(|e| sys_err("writing comm", e))?;
    main.call(
        "prctl(PR_SET_NAME)",
        libc::SYS_prctl,
        &[libc::PR_SET_NAME as u64, data + 1536],
    )?;
    Ok(())
}

pub(super) fn place_area(main: &mut Remote, t: &TaskPlan, len: u64) -> Result<u64, Error> {
    // Gaps of the image's layout, highest first.
    let mut used: Vec<(u64, u64)> = t
        .vmas
        .iter()
        .map(|v| (v.vma.start, v.vma.end))
        .filter(|r| r.1 <= TASK_SIZE)
        .collect();
    used.sort_unstable();
    let mut gaps = Vec::new();
    let mut prev = 0x1000_0000u64;
    for &(s, e) in &used {
        if s > prev {
            gaps.push((prev, s));
        }
        prev = prev.max(e);
    }
    if TASK_SIZE > prev {
        gaps.push((prev, TASK_SIZE));
    }
    let mut tries = 0;
    for &(gs, ge) in gaps.iter().rev() {
        if ge - gs < len + 2 * PAGE {
            continue;
        }
        // Try a few spots inside the gap.
        let span = ge - gs - len - PAGE;
        for k in [1u64, 2, 3, 5, 7] {
            let a = (gs + PAGE + span * k / 8) & !(PAGE - 1);
            tries += 1;
            let r = main.raw(
                libc::SYS_mmap,
                &[
                    a,
                    len,
                    (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64,
                    (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64,
                    u64::MAX,
                    0,
                ],
            )?;
            if r as u64 == a {
                return Ok(a);
            }
            if r > 0 {
                main.raw(libc::SYS_munmap, &[r as u64, len])?;
            }
            if tries > 64 {
                break;
            }
        }
    }
    Err(Error::System(
        "no room for the injection area in both the image's and the new process's layout".into(),
    ))
}

/// Map one VMA; returns the protection to set after the pages are written, if it
/// differs from the one mapped.
pub(super) fn map_vma(
    main: &mut Remote,
    v: &VmaPlan,
    st: &Staged,
    link: Option<&ShmLink>,
    pid: i32,
    data: u64,
) -> Result<Option<(u64, u64, u32)>, Error> {
    let m = &v.vma;
    if let Some(l) = link {
        return map_linked(main, v, l, pid, data);
    }
    let (fd, off, file) = match m.kind {
        VmaKind::Vdso | VmaKind::Vvar => return Ok(None),
        VmaKind::Other => {
            if m.start >= TASK_SIZE {
                return Ok(None); // vsyscall: provided by the kernel
            }
            return Err(Error::Image(format!(
                "VMA {:#x}-{:#x} of an unknown special kind cannot be restored",
                m.start, m.end
            )));
        }
        VmaKind::File => {
            let path = m.file.clone().unwrap_or_default();
            let writable = m.flags & VM_SHARED != 0 && m.flags & VM_MAYWRITE != 0;
            let fd = match m.records.contents {
                Some(c) => st.inode_maps[&(c.file, writable)],
                None => st.maps[&(path, writable)],
            };
            (fd as u64, m.pgoff.saturating_mul(PAGE), true)
        }
        _ => (u64::MAX, 0, false),
    };
    let shared = m.flags & (VM_SHARED | VM_MAYSHARE) != 0 || m.kind == VmaKind::SharedAnon;
    let writes = !v.pages.is_empty() || (file && !shared && !v.zeros.is_empty());
    let mut prot = m.prot & 7;
    if writes {
        prot |= libc::PROT_WRITE as u32;
    }
    let mut flags = libc::MAP_FIXED
        | if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
    if !file {
        flags |= libc::MAP_ANONYMOUS;
    }
    if m.flags & VM_GROWSDOWN != 0 {
        flags |= libc::MAP_GROWSDOWN;
    }
    let len = m.end - m.start;
    let r = main.call(
        &format!("mmap {:#x}-{:#x}", m.start, m.end),
        libc::SYS_mmap,
        &[m.start, len, prot as u64, flags as u64, fd, off],
    )?;
    if r != m.start {
        return Err(Error::System(format!(
            "mmap {:#x}-{:#x} landed at {r:#x}",
            m.start, m.end
        )));
    }
    Ok((prot != m.prot & 7).then_some((m.start, len, m.prot & 7)))
}

/// A shared anonymous VMA mapping the object that another VMA (the first mapping of it
/// in image order, perhaps of another process) rebuilt.
#[derive(Clone, Debug)]
pub(super) struct ShmLink {
    /// This VMA's start.
    pub(super) start: u64,
    /// The restored pid holding the first mapping.
    pub(super) owner_pid: i32,
    /// The first mapping's range (the same addresses as captured).
    pub(super) owner_start: u64,
    pub(super) owner_end: u64,
    /// This VMA's offset in the rebuilt object, bytes.
    pub(super) offset: u64,
}

/// A shmem object: (device major, minor, inode).
type ShmKey = (u64, u64, u64);

/// The shmem object a shared anonymous VMA maps: (device major, minor, inode) as
/// captured; `None` for anything else and for System V segments (refused at capture).
fn shm_key(v: &VmaPlan) -> Option<ShmKey> {
    let m = &v.vma;
    if m.kind != VmaKind::SharedAnon || m.file.as_deref().is_some_and(|p| p.starts_with(b"/SYSV")) {
        return None;
    }
    let id = m.records.identity.filter(|i| i.ino != 0)?;
    Some((id.dev_major, id.dev_minor, id.ino))
}

/// For every shared anonymous object mapped by more than one VMA of the image: the
/// first mapping (image order: parents first, then by address) rebuilds it as a fresh
/// `MAP_SHARED|MAP_ANONYMOUS` mapping; each other VMA inside its range maps that object
/// through `/proc/OWNER/map_files/START-END`, so all of them share pages again (a fork's
/// shared memory). A VMA outside the first one's range (ckpt-capture refuses those when
/// they overlap another) keeps a fresh object of its own.
pub(super) fn link_shared_anon(procs: &mut [Proc]) {
    // object -> (restored pid, start, end, offset in bytes) of its first mapping
    let mut owners: BTreeMap<ShmKey, (i32, u64, u64, u64)> = BTreeMap::new();
    for p in procs.iter_mut() {
        for v in &p.t.vmas {
            let Some(key) = shm_key(v) else { continue };
            let (start, end, off) = (v.vma.start, v.vma.end, v.vma.pgoff.saturating_mul(PAGE));
            match owners.get(&key) {
                None => {
                    owners.insert(key, (p.pid, start, end, off));
                }
                Some(&(opid, os, oe, ooff)) => {
                    if off >= ooff && off + (end - start) <= ooff + (oe - os) {
                        p.shm.push(ShmLink {
                            start,
                            owner_pid: opid,
                            owner_start: os,
                            owner_end: oe,
                            offset: off - ooff,
                        });
                    }
                }
            }
        }
    }
}

/// Map `v` onto the object its first mapping rebuilt: open it in the restored process
/// through `/proc/OWNER/map_files/START-END` (needs CAP_SYS_ADMIN or
/// CAP_CHECKPOINT_RESTORE, as the process still has ours), map it shared at the
/// captured address and offset, close it.
fn map_linked(
    main: &mut Remote,
    v: &VmaPlan,
    l: &ShmLink,
    pid: i32,
    data: u64,
) -> Result<Option<(u64, u64, u32)>, Error> {
    let m = &v.vma;
    let path = format!(
        "/proc/{}/map_files/{:x}-{:x}\0",
        l.owner_pid, l.owner_start, l.owner_end
    );
    sys::write_pairs(pid, &[(data, path.as_bytes())])
        .map_err(|e| sys_err("writing a map_files path", e))?;
    let what = format!(
        "shared memory {:#x}-{:#x}: opening the object of {:#x}-{:#x} of pid {}",
        m.start, m.end, l.owner_start, l.owner_end, l.owner_pid
    );
    let fd = main.call(
        &what,
        libc::SYS_openat,
        &[libc::AT_FDCWD as u64, data, libc::O_RDWR as u64, 0],
    )?;
    let len = m.end - m.start;
    let mut prot = m.prot & 7;
    if !v.pages.is_empty() {
        prot |= libc::PROT_WRITE as u32;
    }
    let r = main.call(
        &format!("mmap (shared) {:#x}-{:#x}", m.start, m.end),
        libc::SYS_mmap,
        &[
            m.start,
            len,
            prot as u64,
            (libc::MAP_FIXED | libc::MAP_SHARED) as u64,
            fd,
            l.offset,
        ],
    );
    main.call("close", libc::SYS_close, &[fd])?;
    if r? != m.start {
        return Err(Error::System(format!(
            "mmap {:#x}-{:#x} landed elsewhere",
            m.start, m.end
        )));
    }
    Ok((prot != m.prot & 7).then_some((m.start, len, m.prot & 7)))
}

pub(super) static ZEROS: [u8; 65536] = [0; 65536];

pub(super) fn write_pages(pid: i32, t: &TaskPlan, image: &[u8]) -> Result<(), Error> {
    let mut pairs: Vec<(u64, &[u8])> = Vec::new();
    for v in &t.vmas {
        if matches!(v.vma.kind, VmaKind::Vdso | VmaKind::Vvar | VmaKind::Other) {
            continue;
        }
        for p in &v.pages {
            let data: &[u8] = match &p.data {
                PageData::Mapped { off, len } => image
                    .get(*off..*off + *len)
                    .ok_or_else(|| Error::Image("page data outside the image".into()))?,
                PageData::Owned(d) => d,
            };
            let mut cur = 0usize;
            for &(s, c) in &p.runs {
                let l = (c * PAGE) as usize;
                pairs.push((s, &data[cur..cur + l]));
                cur += l;
            }
        }
        let file_private =
            v.vma.kind == VmaKind::File && v.vma.flags & (VM_SHARED | VM_MAYSHARE) == 0;
        if file_private {
            for &(s, c) in &v.zeros {
                let mut a = s;
                let end = s + c * PAGE;
                while a < end {
                    let l = (end - a).min(ZEROS.len() as u64);
                    pairs.push((a, &ZEROS[..l as usize]));
                    a += l;
                }
            }
        }
    }
    write_parallel(pid, &pairs).map_err(|e| sys_err("process_vm_writev of the pages", e))
}

/// Each writer thread takes at least this many bytes (below twice this, one stream).
pub(super) const PARALLEL_MIN: usize = 16 << 20;

/// `process_vm_writev` of `pairs` from up to one thread per CPU (at most 4), each taking a
/// contiguous share of about the same number of bytes. The target's page faults (zeroing a
/// fresh page, then the copy) are most of a restore's time, and they scale with the threads:
/// the address ranges are disjoint and faults take the target's mm lock for reading only.
pub(super) fn write_parallel(pid: i32, pairs: &[(u64, &[u8])]) -> std::io::Result<()> {
    let total: usize = pairs.iter().map(|p| p.1.len()).sum();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = cpus.min(4).min(total / PARALLEL_MIN).max(1);
    if n == 1 {
        return sys::write_pairs(pid, pairs);
    }
    // Cut `pairs` where the running byte count passes k * total / n.
    let mut parts = Vec::with_capacity(n);
    let (mut start, mut acc) = (0usize, 0usize);
    for (i, p) in pairs.iter().enumerate() {
        acc += p.1.len();
        if acc * n >= total * (parts.len() + 1) && parts.len() + 1 < n {
            parts.push(&pairs[start..=i]);
            start = i + 1;
        }
    }
    parts.push(&pairs[start..]);
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| s.spawn(move || sys::write_pairs(pid, part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("writer panicked")))
            })
            .collect::<std::io::Result<Vec<()>>>()
            .map(|_| ())
    })
}
