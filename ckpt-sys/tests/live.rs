//! ckpt-sys against real processes: freeze, registers, xsave, TLS, injection, release.

use ckpt_sys::freeze::{Frozen, Release};
use ckpt_sys::inject::Injector;
use ckpt_sys::{mem, procfs, ptrace};
use std::process::{Child, Command};
use std::time::Duration;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn state(pid: i32) -> u8 {
    procfs::stat(pid).unwrap().state
}

fn exercise(child: &Kill, sleeping: bool) {
    let pid = child.0.id() as i32;
    std::thread::sleep(Duration::from_millis(200));
    let before = state(pid);
    let mut f = Frozen::freeze(pid).unwrap();
    assert_eq!(f.threads(), vec![pid]);
    let regs = ptrace::get_regs(pid).unwrap();
    if sleeping {
        // Inside clock_nanosleep: orig_rax = 230 and rax = -ERESTART_RESTARTBLOCK or -ERESTARTNOHAND.
        assert_eq!(regs.orig_rax, 230, "{regs:?}");
        assert!([-516i64, -514, -513, -512].contains(&(regs.rax as i64)));
    }
    let xs = ptrace::get_xstate(pid).unwrap();
    assert!(xs.len() >= 576);
    assert_ne!(ptrace::xstate_xcr0(&xs) & 3, 0);
    ptrace::set_xstate(pid, &xs).unwrap();
    let tls = ptrace::get_tls(pid).unwrap();
    assert_eq!(tls.len(), 48);
    assert_eq!(u32::from_le_bytes(tls[0..4].try_into().unwrap()), 12);
    ptrace::set_tls(pid, &tls).unwrap();
    assert_eq!(ptrace::get_tls(pid).unwrap(), tls);
    // set_regs round trip, and a changed register reads back changed.
    let mut r2 = regs;
    r2.r12 ^= 0x5555;
    ptrace::set_regs(pid, &r2).unwrap();
    assert_eq!(ptrace::get_regs(pid).unwrap().r12, regs.r12 ^ 0x5555);
    ptrace::set_regs(pid, &regs).unwrap();

    let mut inj = Injector::new(pid).unwrap();
    assert_eq!(inj.syscall(libc::SYS_getpid, &[]).unwrap(), pid as i64);
    let addr = inj.mmap_scratch(8192).unwrap();
    mem::write_remote(pid, addr, b"hello-restore").unwrap();
    let mut b = [0u8; 13];
    mem::read_remote(pid, addr, &mut b).unwrap();
    assert_eq!(&b, b"hello-restore");
    assert!(procfs::maps(pid)
        .unwrap()
        .iter()
        .any(|m| m.start <= addr && addr < m.end));
    assert_eq!(inj.syscall(libc::SYS_munmap, &[addr, 8192]).unwrap(), 0);
    inj.finish().unwrap();
    let after = ptrace::get_regs(pid).unwrap();
    assert_eq!(format!("{regs:?}"), format!("{after:?}"));
    f.release(Release::Run).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(state(pid), before, "process state changed after release");
}

#[test]
fn sleeping_process_survives_injection() {
    let c = Kill(Command::new("sleep").arg("1000").spawn().unwrap());
    exercise(&c, true);
}

#[test]
fn busy_process_survives_injection() {
    let c = Kill(
        Command::new("sh")
            .arg("-c")
            .arg("while :; do :; done")
            .spawn()
            .unwrap(),
    );
    exercise(&c, false);
}

#[test]
fn page_scan_backends_agree() {
    let c = Kill(Command::new("sleep").arg("1000").spawn().unwrap());
    let pid = c.0.id() as i32;
    std::thread::sleep(Duration::from_millis(100));
    let _f = Frozen::freeze(pid).unwrap();
    let mut s = mem::PageScan::open(pid).unwrap();
    assert_eq!(
        s.backend(),
        mem::ScanBackend::Ioctl,
        "kernel 6.7+ has PAGEMAP_SCAN"
    );
    for m in procfs::maps(pid).unwrap() {
        if m.path.as_deref() == Some(b"[vvar]") || m.path.as_deref() == Some(b"[vsyscall]") {
            continue;
        }
        s.set_backend(mem::ScanBackend::Ioctl);
        let a = s.scan(m.start, m.end, mem::Select::Anon).unwrap();
        s.set_backend(mem::ScanBackend::Pagemap);
        let b = s.scan(m.start, m.end, mem::Select::Anon).unwrap();
        assert_eq!(a, b, "{m:?}");
    }
}
