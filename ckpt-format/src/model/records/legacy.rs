use super::*;
use crate::model::Event;
use std::borrow::Cow;

/// `ev` with its typed records (if any) turned into keys of its extras.
pub fn event<'e, 'a>(ev: &'e Event<'a>) -> Cow<'e, Event<'a>> {
    let empty = match ev {
        Event::Task(t) => t.records == TaskRecords::default(),
        Event::Thread(t) => t.records == ThreadRecords::default(),
        Event::Vma(v) => v.records == VmaRecords::default(),
        Event::File(f) => f.records == FileRecords::default(),
        _ => true,
    };
    if empty {
        return Cow::Borrowed(ev);
    }
    let mut ev = ev.clone();
    match &mut ev {
        Event::Task(t) => task(&std::mem::take(&mut t.records), &mut t.extras),
        Event::Thread(t) => thread(&std::mem::take(&mut t.records), &mut t.extras),
        Event::Vma(v) => vma(&std::mem::take(&mut v.records), &mut v.extras),
        Event::File(f) => file(&std::mem::take(&mut f.records), &mut f.extras),
        _ => {}
    }
    Cow::Owned(ev)
}

/// Thread records as keys, added to `ex`.
pub fn thread(r: &ThreadRecords, ex: &mut Extras) {
    if let Some(x) = &r.rseq {
        ex.set_u64("rseq_ptr", x.ptr);
        ex.set_u64("rseq_len", x.len as u64);
        ex.set_u64("rseq_sig", x.sig as u64);
    }
    if let Some(x) = &r.robust_list {
        ex.set_u64("robust_list_head", x.head);
        ex.set_u64("robust_list_len", x.len);
    }
    if let Some(x) = &r.sigaltstack {
        ex.set_u64("sigaltstack_sp", x.sp);
        ex.set_u64("sigaltstack_flags", x.flags as u64);
        ex.set_u64("sigaltstack_size", x.size);
    }
    if let Some(x) = &r.clear_child_tid {
        ex.set_u64("clear_child_tid", x.addr);
    }
    if let Some(x) = &r.pending {
        ex.set_u64("sigpending", x.mask);
        if !x.queue.is_empty() {
            ex.set_bytes("siginfo_pending", &join(&x.queue));
        }
    }
    // No legacy revision has this kind: a key, reported as lost.
    if let Some(a) = &r.attrs {
        ex.set_u64(ThreadAttrs::NAME, a.policy as u64);
    }
    if let Some(s) = &r.seccomp {
        ex.set_u64(SeccompFilters::NAME, s.filters.len() as u64);
    }
}

/// Task records as keys, added to `ex`.
pub fn task(r: &TaskRecords, ex: &mut Extras) {
    if let Some(c) = &r.caps {
        for (k, v) in [
            ("cap_inh", c.inh),
            ("cap_prm", c.prm),
            ("cap_eff", c.eff),
            ("cap_bnd", c.bnd),
            ("cap_amb", c.amb),
        ] {
            ex.set_u64(k, v);
        }
    }
    if let Some(s) = &r.security {
        ex.set_u64("no_new_privs", s.no_new_privs);
        ex.set_u64("seccomp_mode", s.seccomp_mode);
    }
    if let Some(s) = &r.shared_pending {
        ex.set_bytes("siginfo_shared", &join(&s.queue));
    }
    if let Some(p) = &r.real_parent {
        ex.set_u64("real_ppid", p.ppid as i64 as u64);
    }
    if let Some(p) = &r.pdeath_signal {
        ex.set_u64("pdeath_signal", p.sig);
    }
    // No legacy revision has these kinds: a key each, reported as lost.
    if let Some(t) = &r.itimers {
        let armed = t.timers.iter().filter(|t| t.value != (0, 0)).count();
        ex.set_u64(Itimers::NAME, armed as u64);
    }
    if let Some(t) = &r.posix_timers {
        ex.set_u64(PosixTimers::NAME, t.timers.len() as u64);
    }
    if let Some(a) = &r.attrs {
        ex.set_u64(ProcessAttrs::NAME, a.oom_score_adj as i64 as u64);
    }
    // No legacy revision has a place for these: keys only for the loss report.
    if let Some(x) = &r.exe {
        ex.set_u64(ExeContents::NAME, x.file as u64);
    }
    if let Some(x) = &r.posix_locks {
        ex.set_u64(PosixLocks::NAME, x.locks.len() as u64);
    }
    if let Some(x) = &r.securebits {
        ex.set_u64(Securebits::NAME, x.bits as u64);
    }
    if let Some(x) = &r.job_stop {
        ex.set_u64(JobStop::NAME, x.sig as u64);
    }
}

/// VMA records as keys, added to `ex`.
pub fn vma(r: &VmaRecords, ex: &mut Extras) {
    if let Some(i) = &r.identity {
        ex.set_u64("dev_major", i.dev_major);
        ex.set_u64("dev_minor", i.dev_minor);
        ex.set_u64("ino", i.ino);
    }
    if let Some(u) = &r.unknown_flags {
        ex.set_bytes("vm_flags_unknown", &u.names);
    }
    if let Some(x) = &r.contents {
        ex.set_u64(MapContents::NAME, x.file as u64);
    }
}

/// File records as keys, added to `ex`.
pub fn file(r: &FileRecords, ex: &mut Extras) {
    if let Some(i) = &r.identity {
        ex.set_u64("dev", i.dev);
        ex.set_u64("ino", i.ino);
        ex.set_u64("mnt_id", i.mnt_id);
    }
    if r.unsupported.is_some() {
        ex.set_u64("unsupported", 1);
    }
    // No legacy revision has these kinds: a key each, reported as lost.
    if let Some(e) = &r.eventfd {
        ex.set_u64(Eventfd::NAME, e.count);
    }
    if let Some(t) = &r.timerfd {
        ex.set_u64(Timerfd::NAME, t.clock as u64);
    }
    if let Some(s) = &r.signalfd {
        ex.set_u64(Signalfd::NAME, s.mask);
    }
    if let Some(e) = &r.eventpoll {
        ex.set_u64(Eventpoll::NAME, e.targets.len() as u64);
    }
    if let Some(i) = &r.inotify {
        ex.set_u64(Inotify::NAME, i.watches.len() as u64);
    }
    // No legacy revision has a place for these: keys only for the loss report.
    if let Some(x) = &r.contents {
        ex.set_u64(FileContents::NAME, x.size);
    }
    if !r.data.is_empty() {
        let n: usize = r.data.iter().map(|d| d.data.len()).sum();
        ex.set_u64(FileData::NAME, n as u64);
    }
    if let Some(x) = &r.inode_of {
        ex.set_u64(InodeOf::NAME, x.file as u64);
    }
    if let Some(x) = &r.locks {
        ex.set_u64(FileLocks::NAME, x.locks.len() as u64);
    }
    r.sock.legacy_keys(ex);
    if let Some(x) = &r.tty {
        ex.set_u64(Tty::NAME, x.index as i64 as u64);
    }
    if let Some(x) = &r.pidfd {
        ex.set_u64(Pidfd::NAME, x.pid as i64 as u64);
    }
    if let Some(x) = &r.fown {
        ex.set_u64(Fown::NAME, x.owner as i64 as u64);
    }
}
