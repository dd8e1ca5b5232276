use super::*;
use crate::model::Event;

/// The keys of a task, thread, VMA or file event, as typed records. Fails on a
/// signal queue of the wrong shape, naming the key.
pub fn event(ev: &mut Event<'_>) -> Result<(), String> {
    match ev {
        Event::Task(t) => task(&mut t.records, &mut t.extras),
        Event::Thread(t) => thread(&mut t.records, &mut t.extras),
        Event::Vma(v) => {
            vma(&mut v.records, &mut v.extras);
            Ok(())
        }
        Event::File(f) => {
            file(&mut f.records, &mut f.extras);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn take(ex: &mut Extras, keys: &[&str]) -> Option<Vec<u64>> {
    let v: Option<Vec<u64>> = keys.iter().map(|k| ex.u64(k)).collect();
    if v.is_some() {
        for k in keys {
            ex.0.remove(*k);
        }
    }
    v
}

/// A signal queue under `key`: bytes, a whole number of siginfos. A value of
/// another shape is refused (it would otherwise be ignored, and a restore would
/// go without those signals).
fn take_queue(ex: &mut Extras, key: &str) -> Result<Option<Vec<SigInfo>>, String> {
    let q = match ex.0.get(key) {
        None => return Ok(None),
        Some(crate::model::Extra::U64(_)) => {
            return Err(format!("{key}: an integer where siginfo bytes belong"))
        }
        Some(crate::model::Extra::Bytes(b)) => SigInfo::split(b).ok_or_else(|| {
            format!(
                "{key}: {} bytes is not a whole number of {}-byte siginfos",
                b.len(),
                SigInfo::LEN
            )
        })?,
    };
    ex.0.remove(key);
    Ok(Some(q))
}

/// Thread keys: `rseq_*`, `robust_list_*`, `sigaltstack_*`, `clear_child_tid`,
/// `sigpending`, `siginfo_pending`.
pub fn thread(r: &mut ThreadRecords, ex: &mut Extras) -> Result<(), String> {
    if ex.is_empty() {
        return Ok(());
    }
    if let Some(v) = take(ex, &["rseq_ptr", "rseq_len", "rseq_sig"]) {
        r.rseq = Some(Rseq {
            ptr: v[0],
            len: v[1] as u32,
            sig: v[2] as u32,
        });
    }
    if let Some(v) = take(ex, &["robust_list_head", "robust_list_len"]) {
        r.robust_list = Some(RobustList {
            head: v[0],
            len: v[1],
        });
    }
    if let Some(v) = take(
        ex,
        &["sigaltstack_sp", "sigaltstack_flags", "sigaltstack_size"],
    ) {
        r.sigaltstack = Some(SigAltStack {
            sp: v[0],
            flags: v[1] as u32,
            size: v[2],
        });
    }
    if let Some(v) = take(ex, &["clear_child_tid"]) {
        r.clear_child_tid = Some(ClearChildTid { addr: v[0] });
    }
    let queue = take_queue(ex, "siginfo_pending")?;
    let mask = take(ex, &["sigpending"]).map(|v| v[0]);
    if mask.is_some() || queue.is_some() {
        r.pending = Some(PendingSignals {
            mask: mask.unwrap_or(0),
            queue: queue.unwrap_or_default(),
        });
    }
    Ok(())
}

/// Task keys: `cap_*`, `no_new_privs`, `seccomp_mode`, `siginfo_shared`, `real_ppid`,
/// `pdeath_signal`.
pub fn task(r: &mut TaskRecords, ex: &mut Extras) -> Result<(), String> {
    if ex.is_empty() {
        return Ok(());
    }
    if let Some(v) = take(ex, &["cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"]) {
        r.caps = Some(Capabilities {
            inh: v[0],
            prm: v[1],
            eff: v[2],
            bnd: v[3],
            amb: v[4],
        });
    }
    if let Some(v) = take(ex, &["no_new_privs", "seccomp_mode"]) {
        r.security = Some(Security {
            no_new_privs: v[0],
            seccomp_mode: v[1],
        });
    }
    if let Some(q) = take_queue(ex, "siginfo_shared")? {
        r.shared_pending = Some(SharedPending { queue: q });
    }
    if let Some(v) = take(ex, &["real_ppid"]) {
        r.real_parent = Some(RealParent { ppid: v[0] as i32 });
    }
    if let Some(v) = take(ex, &["pdeath_signal"]) {
        r.pdeath_signal = Some(ParentDeathSignal { sig: v[0] });
    }
    Ok(())
}

/// VMA keys: `dev_major`, `dev_minor`, `ino`, `vm_flags_unknown`.
pub fn vma(r: &mut VmaRecords, ex: &mut Extras) {
    if ex.is_empty() {
        return;
    }
    if let Some(v) = take(ex, &["dev_major", "dev_minor", "ino"]) {
        r.identity = Some(MapIdentity {
            dev_major: v[0],
            dev_minor: v[1],
            ino: v[2],
        });
    }
    if let Some(b) = ex.bytes("vm_flags_unknown") {
        r.unknown_flags = Some(UnknownVmFlags { names: b.to_vec() });
        ex.0.remove("vm_flags_unknown");
    }
}

/// File keys: `dev`, `ino`, `mnt_id`, `unsupported`.
pub fn file(r: &mut FileRecords, ex: &mut Extras) {
    if ex.is_empty() {
        return;
    }
    if let Some(v) = take(ex, &["dev", "ino", "mnt_id"]) {
        r.identity = Some(FileIdentity {
            dev: v[0],
            ino: v[1],
            mnt_id: v[2],
        });
    }
    if ex.u64("unsupported") == Some(1) {
        ex.0.remove("unsupported");
        r.unsupported = Some(Unsupported);
    }
}
