//! Compatibility checks made before anything is created: each one says what differs.

use crate::caps::Caps;
use crate::plan::{Plan, PAGE};
use crate::{signals, sys};
use ckpt_format::{FpuKind, VmaKind};
use ckpt_sys::procfs;

mod tty;
pub use tty::{is_new_pty, paired_ptys, tty_conflicts, TtyConflict, TtyWhy};

/// A vdso/vvar mapping of ours: `(name, start, end)`.
pub type Special = (Vec<u8>, u64, u64);

/// Our own `[vvar]`, `[vvar_vclock]` and `[vdso]` mappings in address order (a child we
/// fork has them at the same addresses), and the bytes of our vdso.
pub fn own_vdso() -> Result<(Vec<Special>, Vec<u8>), String> {
    let me = std::process::id() as i32;
    let maps = procfs::maps(me).map_err(|e| format!("reading our own maps: {e}"))?;
    let mut out = Vec::new();
    let mut bytes = Vec::new();
    for m in maps {
        let Some(p) = m.path.as_deref() else { continue };
        if p == b"[vdso]" || p.starts_with(b"[vvar") {
            if p == b"[vdso]" {
                bytes = vec![0u8; (m.end - m.start) as usize];
                ckpt_sys::mem::read_remote(me, m.start, &mut bytes)
                    .map_err(|e| format!("reading our vdso: {e}"))?;
            }
            out.push((p.to_vec(), m.start, m.end));
        }
    }
    Ok((out, bytes))
}

/// Check that `plan` can be restored on this machine by this caller. Returns every
/// difference found, one message each (empty = compatible).
pub fn compat(plan: &Plan, image: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if !cfg!(target_arch = "x86_64") {
        out.push("this restorer only runs on x86-64".to_string());
    }
    // Kernel facilities.
    match sys::mm_map_size() {
        Ok(104) => {}
        Ok(n) => out.push(format!(
            "kernel: PR_SET_MM_MAP expects a {n}-byte struct prctl_mm_map, this restorer writes 104"
        )),
        Err(e) => out.push(format!(
            "kernel: PR_SET_MM_MAP is not available ({e}); CONFIG_CHECKPOINT_RESTORE is needed"
        )),
    }
    if !std::path::Path::new("/proc/self/maps").exists() {
        out.push("/proc is not mounted".to_string());
    }
    // rseq: the area is registered again with its captured length (restore/threads.rs);
    // refused here, by name, when this kernel would reject that length.
    // SAFETY: getauxval reads our own auxiliary vector.
    let feature = unsafe { libc::getauxval(AT_RSEQ_FEATURE_SIZE) };
    for t in &plan.tasks {
        for th in &t.threads {
            if let Some(q) = th.records.rseq.filter(|q| q.ptr != 0) {
                if let Err(e) = rseq_len_fits(q.ptr, q.len, feature) {
                    out.push(format!("thread {}: rseq area: {e}", th.tid));
                }
            }
        }
    }
    // CPU state.
    let cpu = crate::xsave::Layout::this_cpu();
    for t in &plan.tasks {
        for th in &t.threads {
            let Some(f) = &th.fpu else { continue };
            match f.kind {
                FpuKind::Xsave => {
                    let Some(here) = &cpu else {
                        out.push(format!(
                            "thread {}: image has an XSAVE area, this CPU has no XSAVE enabled",
                            th.tid
                        ));
                        continue;
                    };
                    if let Err(e) = crate::xsave::fit(&f.data, f.xfeatures, here) {
                        out.push(format!("thread {}: {e}", th.tid));
                    }
                }
                FpuKind::Fxsave => {
                    if f.data.len() != 512 {
                        out.push(format!(
                            "thread {}: FXSAVE area of {} bytes (512 expected)",
                            th.tid,
                            f.data.len()
                        ));
                    }
                }
                FpuKind::Legacy => out.push(format!(
                    "thread {}: FPU state in a legacy kernel-internal layout cannot be loaded here",
                    th.tid
                )),
            }
        }
    }
    // vdso.
    match own_vdso() {
        Err(e) => out.push(e),
        Ok((ours, our_bytes)) => {
            for t in &plan.tasks {
                if let Err(e) = vdso_fit(t, &ours, &our_bytes, image) {
                    out.push(format!("task {}: {e}", t.task.pid));
                }
            }
        }
    }
    // Pending signals: well-formed queues only.
    for t in &plan.tasks {
        if let Err(e) = signals::queue(signals::shared_queue(&t.task), "shared_pending") {
            out.push(format!("task {}: {e}", t.task.pid));
        }
        for th in &t.threads {
            if let Err(e) = signals::queue(signals::thread_queue(th), "pending_signals") {
                out.push(format!("thread {}: {e}", th.tid));
            }
        }
    }
    // Capabilities: never more than the caller has.
    if plan.tasks.iter().any(|t| Caps::of_image(&t.task).is_some()) {
        match Caps::own() {
            Err(e) => out.push(e),
            Ok(ours) => {
                for t in &plan.tasks {
                    if let Some(c) = Caps::of_image(&t.task) {
                        for m in c.refusals(&ours) {
                            out.push(format!("task {}: {m}", t.task.pid));
                        }
                    }
                }
            }
        }
    }
    // Resource limits: a hard limit above ours needs CAP_SYS_RESOURCE to set.
    out.extend(rlimit_refusals(plan));
    // Attributes (nice, policies, affinity, oom_score_adj ...) beyond what we may grant.
    out.extend(crate::grant::refusals(&plan.tasks));
    // Credentials.
    let (uids, gids, groups) = sys::my_creds();
    if uids[1] != 0 {
        for t in &plan.tasks {
            let c = &t.task.creds;
            let bad_u = c.uid.iter().any(|u| !uids.contains(u));
            let bad_g = c.gid.iter().any(|g| !gids.contains(g))
                || c.groups
                    .iter()
                    .any(|g| !groups.contains(g) && !gids.contains(g));
            if bad_u || bad_g {
                out.push(format!(
                    "task {}: credentials uid {:?} gid {:?} groups {:?} differ from the caller's (uid {:?} gid {:?}); only root restores other credentials",
                    t.task.pid, c.uid, c.gid, c.groups, uids, gids
                ));
            }
        }
    }
    out
}

/// Our vvar pieces as (offset from our vdso, size).
pub fn vvar_pieces(ours: &[Special]) -> Vec<(i64, u64)> {
    let Some(ov) = ours.iter().find(|o| o.0 == b"[vdso]") else {
        return Vec::new();
    };
    ours.iter()
        .filter(|o| o.0 != b"[vdso]")
        .map(|o| (o.1 as i64 - ov.1 as i64, o.2 - o.1))
        .collect()
}

/// The captured vdso's bytes (every page of it), or why they are not all in the image.
pub fn image_vdso(iv: &crate::plan::VmaPlan, image: &[u8]) -> Result<Vec<u8>, String> {
    let len = iv.vma.end.saturating_sub(iv.vma.start);
    if len == 0 || len > 1 << 20 {
        return Err(format!("a vdso of {len} bytes"));
    }
    let mut out = vec![0u8; len as usize];
    let mut seen = 0u64;
    for p in &iv.pages {
        let data: &[u8] = match &p.data {
            crate::plan::PageData::Mapped { off, len } => image
                .get(*off..off.saturating_add(*len))
                .ok_or("the vdso's pages lie outside the image")?,
            crate::plan::PageData::Owned(v) => v,
        };
        let mut cur = 0usize;
        for &(s, c) in &p.runs {
            let n = (c * PAGE) as usize;
            let o = s.wrapping_sub(iv.vma.start) as usize;
            let (Some(dst), Some(src)) =
                (out.get_mut(o..o.saturating_add(n)), data.get(cur..cur + n))
            else {
                return Err("the vdso's pages do not fit it".into());
            };
            dst.copy_from_slice(src);
            cur += n;
            seen += c;
        }
    }
    for &(_, c) in &iv.zeros {
        seen += c;
    }
    if seen * PAGE != len {
        return Err("the image does not hold the whole vdso".into());
    }
    Ok(out)
}

/// How the image's vdso is restored here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VdsoFit {
    /// No vdso in the image: ours is unmapped.
    Absent,
    /// Byte-identical to ours, vvar pieces the same sizes at the same distances: ours
    /// (and its vvar) is moved to the captured place.
    InPlace,
    /// Another kernel's (or another boot's) vdso: the captured one is kept at its place
    /// with every exported function redirected to ours, which goes elsewhere; the
    /// captured vvar place is reserved without access (docs/RESTORE.md, "vdso").
    Proxy {
        /// The captured vdso.
        bytes: Vec<u8>,
        /// Functions redirected (`clock_gettime -> +0x6f0`, the offset in ours).
        redirected: Vec<String>,
        /// Functions ours lacks (they return -ENOSYS).
        missing: Vec<String>,
    },
}

/// Far from any vdso: the largest (13-byte) jumps, so the check covers any placement.
fn far_from(a: u64) -> u64 {
    if a > 1 << 40 {
        0x1000_0000
    } else {
        0x7f00_0000_0000
    }
}

/// How task `t`'s vdso is restored here (see [`VdsoFit`]), or why it cannot be.
pub fn vdso_fit(
    t: &crate::plan::TaskPlan,
    ours: &[Special],
    our_bytes: &[u8],
    image: &[u8],
) -> Result<VdsoFit, String> {
    let Some(iv) = t.vmas.iter().find(|v| v.vma.kind == VmaKind::Vdso) else {
        return Ok(VdsoFit::Absent);
    };
    if !ours.iter().any(|o| o.0 == b"[vdso]") {
        return Err("the image has a vdso, this process has none".into());
    }
    let bytes = image_vdso(iv, image).map_err(|e| format!("vdso: {e}"))?;
    let img_v: Vec<(i64, u64)> = t
        .vmas
        .iter()
        .filter(|v| v.vma.kind == VmaKind::Vvar)
        .map(|v| {
            (
                v.vma.start as i64 - iv.vma.start as i64,
                v.vma.end - v.vma.start,
            )
        })
        .collect();
    if bytes == our_bytes && img_v == vvar_pieces(ours) {
        return Ok(VdsoFit::InPlace);
    }
    let p = crate::vdso::plan(&bytes, iv.vma.start, our_bytes, far_from(iv.vma.start))
        .map_err(|e| format!("vdso of another kernel build cannot be proxied: {e}"))?;
    // A thread stopped inside the captured vdso (not at an entry) would go on running
    // its old code against clock data that is not there.
    for th in &t.threads {
        let rip = th.regs.rip;
        if rip >= iv.vma.start && rip < iv.vma.end && !p.is_entry(rip - iv.vma.start) {
            return Err(format!(
                "thread {} was stopped inside the vdso (at +{:#x}), which is another kernel's here: it cannot continue in its old code (captures by this ckpt-capture step threads out of the vdso first)",
                th.tid,
                rip - iv.vma.start
            ));
        }
    }
    Ok(VdsoFit::Proxy {
        bytes,
        redirected: p.patches.iter().map(|x| x.what.clone()).collect(),
        missing: p.missing,
    })
}

/// `AT_RSEQ_FEATURE_SIZE`: the auxv entry (Linux 6.3+) giving the size of the rseq area
/// fields this kernel knows; absent (0) before.
const AT_RSEQ_FEATURE_SIZE: libc::c_ulong = 27;

/// The original `struct rseq` size, the one length every kernel with rseq accepts.
const RSEQ_ORIG_LEN: u32 = 32;

/// Would this kernel (`feature`: its `AT_RSEQ_FEATURE_SIZE`, 0 when it has none) take
/// an rseq registration of `len` bytes at `ptr`? The rules of the rseq syscall: never
/// below 32 bytes; 32 bytes at a 32-byte aligned address everywhere; more only on a
/// kernel with extended rseq (6.3+, which reports a feature size), also 32-byte aligned.
pub fn rseq_len_fits(ptr: u64, len: u32, feature: u64) -> Result<(), String> {
    if len < RSEQ_ORIG_LEN {
        return Err(format!(
            "registered with {len} bytes; no kernel accepts fewer than {RSEQ_ORIG_LEN}"
        ));
    }
    if len > RSEQ_ORIG_LEN && feature == 0 {
        return Err(format!(
            "registered with {len} bytes; this kernel accepts only {RSEQ_ORIG_LEN} (it reports no AT_RSEQ_FEATURE_SIZE: extended rseq came with Linux 6.3)"
        ));
    }
    if ptr % 32 != 0 {
        return Err(format!("{ptr:#x} is not 32-byte aligned"));
    }
    Ok(())
}

/// The tasks whose vdso is this kernel's own (byte-identical, vvar pieces alike): a
/// restore moves this kernel's vdso and vvar to the captured place. One line each, for
/// `ckpt-inspect check` (a restore does not print them: nothing is adapted).
pub fn vdso_in_place(plan: &Plan, image: &[u8]) -> Vec<String> {
    let Ok((ours, our_bytes)) = own_vdso() else {
        return Vec::new();
    };
    plan.tasks
        .iter()
        .filter(|t| vdso_fit(t, &ours, &our_bytes, image) == Ok(VdsoFit::InPlace))
        .map(|t| {
            format!(
                "task {}: vdso identical to this kernel's: remapped in place (this kernel's vdso and vvar moved to the captured address)",
                t.task.pid
            )
        })
        .collect()
}

/// What a restore here adapts rather than restores as captured: a proxied vdso, XSAVE
/// areas laid out again. One line each, for `ckpt-inspect check` and ckpt-restore's
/// stderr. Refusals are [`compat`]'s.
pub fn adaptations(plan: &Plan, image: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok((ours, our_bytes)) = own_vdso() {
        for t in &plan.tasks {
            if let Ok(VdsoFit::Proxy {
                redirected,
                missing,
                ..
            }) = vdso_fit(t, &ours, &our_bytes, image)
            {
                let mut l = format!(
                    "task {}: vdso of another kernel build, proxied: {} function(s) redirected to this kernel's vdso ({})",
                    t.task.pid,
                    redirected.len(),
                    redirected.join(", ")
                );
                if !missing.is_empty() {
                    l.push_str(&format!(
                        "; not in this kernel's vdso, return -ENOSYS: {}",
                        missing.join(", ")
                    ));
                }
                out.push(l);
            }
        }
    }
    if let Some(here) = crate::xsave::Layout::this_cpu() {
        for t in &plan.tasks {
            for th in &t.threads {
                let Some(f) = &th.fpu else { continue };
                if f.kind != FpuKind::Xsave {
                    continue;
                }
                if let Ok(crate::xsave::Fit::Relayout {
                    from_xcr0,
                    added,
                    dropped,
                    ..
                }) = crate::xsave::fit(&f.data, f.xfeatures, &here)
                {
                    let mut l = format!(
                        "thread {}: XSAVE area laid out for this kernel ({} bytes, features {from_xcr0:#x} -> {} bytes, {:#x})",
                        th.tid,
                        f.data.len(),
                        here.size,
                        here.xcr0
                    );
                    if added != 0 {
                        l.push_str(&format!(
                            "; in their initial state: {}",
                            crate::xsave::names(added)
                        ));
                    }
                    if dropped != 0 {
                        l.push_str(&format!(
                            "; dropped (unused, not enabled here): {}",
                            crate::xsave::names(dropped)
                        ));
                    }
                    out.push(l);
                }
            }
        }
    }
    out
}

/// Everything that would make `ckpt-restore` refuse this plan here, found without
/// creating anything: the plan's own problems ([`Plan::problems`]), the machine and the
/// caller ([`compat`]), the process tree ([`crate::tree::plan_tree`]) and the files it
/// opens (present under `root`, mapped files still the captured inode). One message
/// each; empty = restorable here. `ckpt-capture --kill` runs this before killing, and
/// `ckpt-inspect check` on any image.
pub fn restorable(plan: &Plan, image: &[u8], root: &std::path::Path) -> Vec<String> {
    let mut out = plan.problems();
    let adopted;
    let plan = match own_vdso() {
        Ok((ours, _)) => {
            let mut p = plan.clone();
            if p.adopt_vvar(&vvar_pieces(&ours)) > 0 {
                adopted = p;
                &adopted
            } else {
                plan
            }
        }
        Err(_) => plan, // compat names it
    };
    out.extend(compat(plan, image));
    if let Err(e) = crate::tree::plan_tree(&plan.tasks, sys::my_session()) {
        out.push(e);
    }
    out.extend(files_present(plan, root));
    out
}

/// The files the restore opens exist under `root` (the deleted ones are
/// [`Plan::problems`]); a mapped file is still the captured inode.
pub fn files_present(plan: &Plan, root: &std::path::Path) -> Vec<String> {
    use ckpt_format::FileKind;
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let under = |p: &[u8]| {
        use std::os::unix::ffi::OsStrExt;
        let rel = std::ffi::OsStr::from_bytes(p.strip_prefix(b"/").unwrap_or(p));
        root.join(rel)
    };
    let show = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let deleted = |p: &[u8]| p.ends_with(b" (deleted)");
    let mut seen = std::collections::BTreeSet::new();
    let mut need = |what: String, p: &[u8], ino: Option<u64>, out: &mut Vec<String>| {
        if deleted(p) || !seen.insert(p.to_vec()) {
            return;
        }
        match std::fs::metadata(under(p)) {
            Err(e) => out.push(format!("{what} {}: {e}", show(p))),
            Ok(m) => {
                if let Some(want) = ino.filter(|&i| i != 0) {
                    if m.ino() != want {
                        out.push(format!(
                            "{what} {} is not the captured one (inode {}, captured {want}): it changed since the capture",
                            show(p),
                            m.ino()
                        ));
                    }
                }
            }
        }
    };
    let paired = paired_ptys(plan);
    for t in &plan.tasks {
        let pid = t.task.pid;
        if let Some(exe) = t.mm.as_ref().and_then(|m| m.exe.as_deref()) {
            need(format!("pid {pid}: executable"), exe, None, &mut out);
        }
        if let Some(fs) = t.fs.as_ref().filter(|f| !f.cwd.is_empty()) {
            need(format!("pid {pid}: cwd"), &fs.cwd, None, &mut out);
        }
        for v in &t.vmas {
            if let (VmaKind::File, Some(f)) = (v.vma.kind, &v.vma.file) {
                need(
                    format!("pid {pid}: mapped file"),
                    f,
                    v.vma.records.identity.map(|i| i.ino),
                    &mut out,
                );
            }
        }
        for fd in &t.fds {
            let f = &plan.files[&fd.file];
            // A /proc entry of a process of the image is opened on the restored process.
            if crate::restore::procfiles::entry(&f.path, &plan.tasks).is_some() {
                continue;
            }
            if matches!(
                f.kind,
                FileKind::Regular | FileKind::Directory | FileKind::CharDevice | FileKind::Fifo
            ) && !is_new_pty(f, &paired)
            {
                need(
                    format!("pid {pid} fd {}: file", fd.fd),
                    &f.path,
                    None,
                    &mut out,
                );
            }
        }
    }
    out
}

/// Every process of a tree that has its parent in the image must get its captured pid
/// back: its parent may hold that pid (`waitpid(pid)`, a shell's job table) and would
/// spin or wait forever on a stale one. Lists every such pid that is taken now, with
/// its holder and the parent that knows it (empty list = `Ok`). The root's pid may
/// change: its parent is not restored.
pub fn child_pids_free(plan: &Plan) -> Result<(), String> {
    let pids: std::collections::HashMap<i32, &[u8]> = plan
        .tasks
        .iter()
        .map(|t| (t.task.pid, t.task.comm.as_slice()))
        .collect();
    let mut taken = Vec::new();
    for t in &plan.tasks {
        let Some(parent) = pids.get(&t.task.ppid) else {
            continue;
        };
        if let Ok(st) = procfs::stat(t.task.pid) {
            taken.push(format!(
                "pid {} ({}) is taken by a running {}; its parent {} ({}) would hold a stale pid",
                t.task.pid,
                String::from_utf8_lossy(&t.task.comm),
                String::from_utf8_lossy(&st.comm),
                t.task.ppid,
                String::from_utf8_lossy(parent)
            ));
        }
    }
    if taken.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the tree cannot get its pids back:\n  {}\n(--pid-ns restores it with these pids in a new pid namespace; --pid-any under new pids)",
        taken.join("\n  ")
    ))
}

/// `RLIMIT_*` names in resource order (0..16).
pub const RLIMIT_NAMES: [&str; 16] = [
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

const CAP_SYS_RESOURCE: u32 = 24;

/// Hard limits of the image above ours, when we cannot raise them (no effective
/// `CAP_SYS_RESOURCE`): `prlimit64` would fail half-way through the restore.
fn rlimit_refusals(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if Caps::own().is_ok_and(|c| c.eff & (1 << CAP_SYS_RESOURCE) != 0) {
        return out;
    }
    let me = std::process::id() as i32;
    let Ok(ours) = procfs::rlimits(me) else {
        return out;
    };
    for t in &plan.tasks {
        for (i, l) in t.rlimits.iter().enumerate() {
            let Some(&(_, our_max)) = ours.get(i) else {
                continue;
            };
            if l.max > our_max {
                let show = |v: u64| {
                    if v == u64::MAX {
                        "unlimited".to_string()
                    } else {
                        v.to_string()
                    }
                };
                out.push(format!(
                    "task {}: hard limit {} is {} in the image, {} here; raising it needs CAP_SYS_RESOURCE, which this caller lacks (run ckpt-restore with it, or raise the limit of its shell: ulimit -H)",
                    t.task.pid,
                    RLIMIT_NAMES.get(i).copied().unwrap_or("RLIMIT_?"),
                    show(l.max),
                    show(our_max)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod rseq_tests {
    use super::rseq_len_fits;

    #[test]
    fn rseq_lengths_by_kernel() {
        // glibc's 32 bytes: every kernel.
        assert_eq!(rseq_len_fits(0x7f00_0000_1020, 32, 0), Ok(()));
        assert_eq!(rseq_len_fits(0x7f00_0000_1020, 32, 28), Ok(()));
        // An extended area (a 6.3+ libc): only where the kernel reports a feature size.
        assert_eq!(rseq_len_fits(0x7f00_0000_1040, 64, 28), Ok(()));
        let e = rseq_len_fits(0x7f00_0000_1040, 64, 0).unwrap_err();
        assert!(
            e.contains("registered with 64 bytes; this kernel accepts only 32"),
            "{e}"
        );
        assert!(e.contains("AT_RSEQ_FEATURE_SIZE"), "{e}");
        // Too short or misaligned: refused everywhere.
        assert!(rseq_len_fits(0x7f00_0000_1040, 28, 28)
            .unwrap_err()
            .contains("fewer than 32"));
        assert!(rseq_len_fits(0x7f00_0000_1010, 32, 0)
            .unwrap_err()
            .contains("0x7f0000001010 is not 32-byte aligned"));
        assert!(rseq_len_fits(0x7f00_0000_1010, 64, 28).is_err());
    }
}
