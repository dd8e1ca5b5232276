//! Reading state from the frozen targets: procfs (header, ids, maps), registers,
//! and what only injected calls give (sigactions, brk, signal stack, tid address).

use super::*;

pub(super) fn read_trim(path: &str) -> Vec<u8> {
    std::fs::read(path)
        .map(|mut v| {
            while v.last() == Some(&b'\n') {
                v.pop();
            }
            v
        })
        .unwrap_or_default()
}

pub(crate) fn header() -> Header {
    let release = read_trim("/proc/sys/kernel/osrelease");
    let mut nums = String::from_utf8_lossy(&release)
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|x| x.parse::<u16>().unwrap_or(0))
        .collect::<Vec<_>>();
    nums.resize(3, 0);
    Header {
        revision: Revision::Native1,
        arch: Arch::X86_64,
        page_size: PAGE_SIZE as u32,
        kernel: Kernel {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            release,
            version: read_trim("/proc/sys/kernel/version"),
            machine: std::env::consts::ARCH.as_bytes().to_vec(),
        },
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        flags: 0,
        tool: "ckpt-capture".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        extras: Extras::new(),
        parent: None,
    }
}

pub(super) fn ids4(s: Option<&String>) -> [u32; 4] {
    let mut a = [0u32; 4];
    if let Some(s) = s {
        for (i, v) in s.split_whitespace().take(4).enumerate() {
            a[i] = v.parse().unwrap_or(0);
        }
    }
    a
}

pub(super) fn task_state(c: u8) -> u32 {
    match c {
        b'R' => 0,
        b'S' => 1,
        b'D' => 2,
        b'T' => 4,
        b't' => 8,
        b'Z' => 32,
        b'X' => 16,
        _ => 0,
    }
}

pub(super) fn regs_of(r: &libc::user_regs_struct) -> Regs {
    Regs {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        orig_rax: r.orig_rax,
        rip: r.rip,
        cs: r.cs,
        eflags: r.eflags,
        rsp: r.rsp,
        ss: r.ss,
        fs_base: r.fs_base,
        gs_base: r.gs_base,
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
    }
}

/// What injection found out about a task.
#[derive(Default)]
pub(super) struct Injected {
    pub(super) sigactions: Vec<SigAction>,
    pub(super) brk: Option<u64>,
    pub(super) per_thread: HashMap<i32, ThreadRecords>,
}

pub(super) fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

pub(super) const PR_GET_TID_ADDRESS: u64 = 40;

pub(super) fn thread_extras(
    inj: &mut Injector,
    pid: i32,
    scratch: u64,
) -> ckpt_sys::Result<ThreadRecords> {
    let mut x = ThreadRecords::default();
    if inj.syscall(libc::SYS_sigaltstack, &[0, scratch + 0x100])? == 0 {
        let mut b = [0u8; 24];
        mem::read_remote(pid, scratch + 0x100, &mut b)?;
        x.sigaltstack = Some(SigAltStack {
            sp: u64_at(&b, 0),
            flags: (u64_at(&b, 8) & 0xffff_ffff) as u32,
            size: u64_at(&b, 16),
        });
    }
    if inj.syscall(libc::SYS_prctl, &[PR_GET_TID_ADDRESS, scratch + 0x200])? == 0 {
        let mut b = [0u8; 8];
        mem::read_remote(pid, scratch + 0x200, &mut b)?;
        x.clear_child_tid = Some(ClearChildTid {
            addr: u64::from_le_bytes(b),
        });
    }
    Ok(x)
}

pub(super) fn inject_all(pid: i32, tids: &[i32]) -> ckpt_sys::Result<Injected> {
    let mut out = Injected::default();
    let mut lead = Injector::new(tids[0])?;
    let scratch = lead.mmap_scratch(PAGE_SIZE as u64)?;
    let r = (|| -> ckpt_sys::Result<()> {
        for sig in 1..=NSIG {
            let rc = lead.syscall(libc::SYS_rt_sigaction, &[sig, 0, scratch, 8])?;
            let mut sa = SigAction::default();
            if rc == 0 {
                let mut b = [0u8; 32];
                mem::read_remote(pid, scratch, &mut b)?;
                sa = SigAction {
                    handler: u64_at(&b, 0),
                    flags: u64_at(&b, 8),
                    restorer: u64_at(&b, 16),
                    mask: u64_at(&b, 24),
                };
            }
            out.sigactions.push(sa);
        }
        let brk = lead.syscall(libc::SYS_brk, &[0])?;
        if brk > 0 {
            out.brk = Some(brk as u64);
        }
        out.per_thread
            .insert(tids[0], thread_extras(&mut lead, pid, scratch)?);
        for &tid in &tids[1..] {
            let mut inj = Injector::new(tid)?;
            let x = thread_extras(&mut inj, pid, scratch)?;
            inj.finish()?;
            out.per_thread.insert(tid, x);
        }
        Ok(())
    })();
    let un = lead.syscall(libc::SYS_munmap, &[scratch, PAGE_SIZE as u64]);
    lead.finish()?;
    r?;
    if un? != 0 {
        return Err(ckpt_sys::SysError::other(
            format!("pid {pid}"),
            "munmap of the scratch page failed",
        ));
    }
    Ok(out)
}

pub(crate) enum Store {
    Nothing,
    All,
    Scan(Select),
}

pub(crate) fn classify(m: &MapEntry) -> (VmaKind, Option<Vec<u8>>, Store) {
    let shared = m.shared();
    let path = m.path.clone();
    match path.as_deref() {
        None if shared => (VmaKind::SharedAnon, None, Store::Scan(Select::Present)),
        None => (VmaKind::Anon, None, Store::Scan(Select::Anon)),
        Some(b"[vdso]") => (VmaKind::Vdso, None, Store::All),
        Some(b"[vvar]") | Some(b"[vvar_vclock]") => (VmaKind::Vvar, None, Store::Nothing),
        Some(b"[heap]") => (VmaKind::Heap, None, Store::Scan(Select::Anon)),
        Some(b"[stack]") => (VmaKind::Stack, None, Store::Scan(Select::Anon)),
        Some(p) if p.starts_with(b"[anon") => {
            if shared {
                (
                    VmaKind::SharedAnon,
                    path.clone(),
                    Store::Scan(Select::Present),
                )
            } else {
                (VmaKind::Anon, path.clone(), Store::Scan(Select::Anon))
            }
        }
        Some(p) if p.starts_with(b"[") => (VmaKind::Other, path.clone(), Store::Nothing),
        Some(p) if shared && (p.starts_with(b"/dev/zero") || p.starts_with(b"/SYSV")) => (
            VmaKind::SharedAnon,
            path.clone(),
            Store::Scan(Select::Present),
        ),
        // Contents live in the file, also when it is gone (deleted, memfd): then the
        // inode's contents are in the image (live/contents.rs).
        Some(_) if shared => (VmaKind::File, path.clone(), Store::Nothing),
        Some(_) => (VmaKind::File, path.clone(), Store::Scan(Select::Anon)),
    }
}
