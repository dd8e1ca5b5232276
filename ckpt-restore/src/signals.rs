//! Pending signals recorded by the capture: the `siginfo_pending` extra of a Thread (its
//! own queue) and the `siginfo_shared` extra of a Task (the process-wide queue), each a
//! sequence of 128-byte x86-64 `siginfo_t` in queue order (docs/MODEL.md).

use ckpt_format::{Extra, Extras};

/// Size of one recorded `siginfo_t`.
pub const SIGINFO_SIZE: usize = 128;

/// One pending signal: its number and its full `siginfo_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending<'a> {
    /// Signal number (`si_signo`), 1..=64.
    pub sig: i32,
    /// The 128 bytes of the `siginfo_t`.
    pub info: &'a [u8],
}

/// The pending signals stored under `key` in `x` (none when absent). Refuses a value that
/// is not bytes, a length that is not a multiple of 128, a signal number outside 1..=64,
/// and `SIGKILL` (a process being killed cannot be restored).
pub fn queue<'a>(x: &'a Extras, key: &str) -> Result<Vec<Pending<'a>>, String> {
    let b = match x.0.get(key) {
        None => return Ok(Vec::new()),
        Some(Extra::Bytes(b)) => b.as_slice(),
        Some(Extra::U64(_)) => return Err(format!("{key}: an integer where siginfo bytes belong")),
    };
    if b.len() % SIGINFO_SIZE != 0 {
        return Err(format!(
            "{key}: {} bytes is not a whole number of {SIGINFO_SIZE}-byte siginfos",
            b.len()
        ));
    }
    let mut out = Vec::with_capacity(b.len() / SIGINFO_SIZE);
    for (i, info) in b.chunks_exact(SIGINFO_SIZE).enumerate() {
        let sig = i32::from_le_bytes([info[0], info[1], info[2], info[3]]);
        if !(1..=64).contains(&sig) {
            return Err(format!("{key}: entry {i} has signal number {sig}"));
        }
        if sig == libc::SIGKILL {
            return Err(format!(
                "{key}: entry {i} is a pending SIGKILL (the process was being killed)"
            ));
        }
        out.push(Pending { sig, info });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sig: i32, val: i32) -> Vec<u8> {
        let mut b = vec![0u8; SIGINFO_SIZE];
        b[..4].copy_from_slice(&sig.to_le_bytes());
        b[8..12].copy_from_slice(&(-1i32).to_le_bytes());
        b[24..28].copy_from_slice(&val.to_le_bytes());
        b
    }

    #[test]
    fn parses_in_order_and_refuses_bad_values() {
        let mut x = Extras::new();
        assert_eq!(queue(&x, "siginfo_pending").unwrap(), vec![]);
        let mut b = info(35, 1);
        b.extend(info(10, 2));
        x.set_bytes("siginfo_pending", &b);
        let q = queue(&x, "siginfo_pending").unwrap();
        assert_eq!(q.iter().map(|p| p.sig).collect::<Vec<_>>(), vec![35, 10]);
        assert_eq!(q[1].info, &b[128..]);

        x.set_bytes("siginfo_pending", &b[..200]);
        assert!(queue(&x, "siginfo_pending")
            .unwrap_err()
            .contains("200 bytes"));
        x.set_bytes("siginfo_pending", &info(65, 0));
        assert!(queue(&x, "siginfo_pending")
            .unwrap_err()
            .contains("signal number 65"));
        x.set_bytes("siginfo_pending", &info(0, 0));
        assert!(queue(&x, "siginfo_pending").is_err());
        x.set_bytes("siginfo_pending", &info(libc::SIGKILL, 0));
        assert!(queue(&x, "siginfo_pending")
            .unwrap_err()
            .contains("SIGKILL"));
        x.set_u64("siginfo_shared", 3);
        assert!(queue(&x, "siginfo_shared").is_err());
    }
}
