//! Pending signals recorded by the capture: a Thread's [`PendingSignals`] record (its own
//! queue) and a Task's [`SharedPending`] record (the process-wide queue), each a sequence
//! of 128-byte x86-64 `siginfo_t` in queue order (docs/MODEL.md).
//!
//! [`PendingSignals`]: ckpt_format::PendingSignals
//! [`SharedPending`]: ckpt_format::SharedPending

use ckpt_format::SigInfo;

/// Size of one recorded `siginfo_t`.
pub const SIGINFO_SIZE: usize = SigInfo::LEN;

/// One pending signal: its number and its full `siginfo_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending<'a> {
    /// Signal number (`si_signo`), 1..=64.
    pub sig: i32,
    /// The 128 bytes of the `siginfo_t`.
    pub info: &'a [u8],
}

/// The pending signals of queue `q` (named `what` in errors). Refuses an entry that is
/// not 128 bytes, a signal number outside 1..=64, and `SIGKILL` (a process being killed
/// cannot be restored).
pub fn queue<'a>(q: &'a [SigInfo], what: &str) -> Result<Vec<Pending<'a>>, String> {
    let mut out = Vec::with_capacity(q.len());
    for (i, s) in q.iter().enumerate() {
        let info = s.0.as_slice();
        if info.len() != SIGINFO_SIZE {
            return Err(format!(
                "{what}: entry {i} is {} bytes, not a {SIGINFO_SIZE}-byte siginfo",
                info.len()
            ));
        }
        let sig = s.signo();
        if !(1..=64).contains(&sig) {
            return Err(format!("{what}: entry {i} has signal number {sig}"));
        }
        if sig == libc::SIGKILL {
            return Err(format!(
                "{what}: entry {i} is a pending SIGKILL (the process was being killed)"
            ));
        }
        out.push(Pending { sig, info });
    }
    Ok(out)
}

/// The thread-directed queue of `th` (empty when none was recorded).
pub fn thread_queue(th: &ckpt_format::Thread) -> &[SigInfo] {
    th.records
        .pending
        .as_ref()
        .map_or(&[], |p| p.queue.as_slice())
}

/// The process-wide queue of `t` (empty when none was recorded).
pub fn shared_queue(t: &ckpt_format::Task) -> &[SigInfo] {
    t.records
        .shared_pending
        .as_ref()
        .map_or(&[], |p| p.queue.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sig: i32, val: i32) -> SigInfo {
        let mut b = vec![0u8; SIGINFO_SIZE];
        b[..4].copy_from_slice(&sig.to_le_bytes());
        b[8..12].copy_from_slice(&(-1i32).to_le_bytes());
        b[24..28].copy_from_slice(&val.to_le_bytes());
        SigInfo(b)
    }

    #[test]
    fn parses_in_order_and_refuses_bad_values() {
        assert_eq!(queue(&[], "pending_signals").unwrap(), vec![]);
        let q = vec![info(35, 1), info(10, 2)];
        let p = queue(&q, "pending_signals").unwrap();
        assert_eq!(p.iter().map(|p| p.sig).collect::<Vec<_>>(), vec![35, 10]);
        assert_eq!(p[1].info, q[1].0.as_slice());

        let torn = vec![SigInfo(vec![0u8; 72])];
        assert!(queue(&torn, "pending_signals")
            .unwrap_err()
            .contains("72 bytes"));
        assert!(queue(&[info(65, 0)], "pending_signals")
            .unwrap_err()
            .contains("signal number 65"));
        assert!(queue(&[info(0, 0)], "pending_signals").is_err());
        assert!(queue(&[info(libc::SIGKILL, 0)], "shared_pending")
            .unwrap_err()
            .contains("shared_pending: entry 0 is a pending SIGKILL"));
    }
}
