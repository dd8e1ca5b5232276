//! Event-loop files in ckpt-v21: the model's [`Eventfd`] as a
//! `ckpt_hdr_file_eventfd` FILE record (docs/V21-STREAM.md "Event-loop
//! files, sockets, ttys").
//!
//! Facts, from the eventfd patch of the C/R v20 series ([v20 83/96] "c/r:
//! checkpoint/restart eventfd"): the file object is one FILE record of
//! exactly 64 bytes with `f_type` `CKPT_FILE_EVENTFD` (7) and no record after
//! it; `count` is the eventfd's counter and `flags` the eventfd's own flags
//! (`EFD_SEMAPHORE` 1 and the `EFD_NONBLOCK`/`EFD_CLOEXEC` it was created
//! with); the restart re-creates it with `eventfd2(count, flags)` (a 32-bit
//! count) and then restores the common file fields.

use super::*;

/// The path the model gives an eventfd (its `/proc/PID/fd` link).
pub const EVENTFD_PATH: &[u8] = b"anon_inode:[eventfd]";
/// `EFD_SEMAPHORE`.
pub const EFD_SEMAPHORE: u64 = 1;
/// `O_NONBLOCK` (= `EFD_NONBLOCK`) on x86-64.
pub const O_NONBLOCK: u64 = 0o4000;

/// The `flags` ckpt writes for an eventfd whose file has `f_flags`:
/// `EFD_SEMAPHORE` as the model says, `EFD_NONBLOCK` when the file is
/// non-blocking (as `eventfd(.., EFD_NONBLOCK)` leaves both); the per-fd
/// close-on-exec travels in FILE_DESC.
pub fn eventfd_flags(e: &Eventfd, f_flags: u32) -> u64 {
    (e.semaphore as u64 * EFD_SEMAPHORE) | (f_flags as u64 & O_NONBLOCK)
}

/// The FILE_EVENTFD record (whole, header included) of file `f` with `e`.
pub fn eventfd_record(f: &File, e: &Eventfd) -> Vec<u8> {
    let st = T.st("FILE_EVENTFD");
    let mut b = st.zeroed();
    st.put(&mut b, "h.type", code("FILE") as u64);
    st.put(&mut b, "h.len", st.size as u64);
    st.put(&mut b, "f_type", L::FILE_EVENTFD as u64);
    st.put(&mut b, "f_mode", f.mode as u64);
    st.put(&mut b, "f_flags", f.flags as u64);
    st.put(&mut b, "f_pos", f.pos);
    for n in FILE_EXTRAS {
        st.put(&mut b, n, f.extras.u64(n).unwrap_or(0));
    }
    st.put(&mut b, "count", e.count);
    st.put(&mut b, "flags", eventfd_flags(e, f.flags));
    b
}

/// The model's File for a FILE_EVENTFD record `b` (whole) of objref `r`,
/// when it is one ckpt writes (length 64, flags as [`eventfd_flags`] gives
/// them, zero padding); `None` keeps it as records (another kernel's flags,
/// `EFD_CLOEXEC` among them).
pub fn eventfd_file(r: i32, b: &[u8]) -> Option<File> {
    let st = T.st("FILE_EVENTFD");
    if b.len() != st.size || !st.nonzero_padding(b).is_empty() {
        return None;
    }
    let f_flags = st.get(b, "f_flags") as u32;
    let e = Eventfd {
        count: st.get(b, "count"),
        semaphore: st.get(b, "flags") & EFD_SEMAPHORE != 0,
    };
    if st.get(b, "flags") != eventfd_flags(&e, f_flags) {
        return None;
    }
    let mut extras = Extras::new();
    for n in FILE_EXTRAS {
        let v = st.get(b, n);
        if v != 0 {
            extras.set_u64(n, v);
        }
    }
    let mut file = File {
        id: r as u32,
        kind: FileKind::Other,
        path: EVENTFD_PATH.to_vec(),
        flags: f_flags,
        mode: st.get(b, "f_mode") as u32,
        pos: st.get(b, "f_pos"),
        pipe: None,
        records: Default::default(),
        extras,
    };
    file.records.eventfd = Some(e);
    Some(file)
}
