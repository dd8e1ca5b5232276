//! Event-loop files in ckpt-v21: the model's [`Eventfd`] as a
//! `ckpt_hdr_file_eventfd` FILE record, its [`Eventpoll`] as an epoll FILE
//! record and the task's EPOLL_ITEMS (docs/V21-STREAM.md "Event-loop files,
//! sockets, ttys").
//!
//! Facts, from the eventfd patch of the C/R v20 series ([v20 83/96] "c/r:
//! checkpoint/restart eventfd"): the file object is one FILE record of
//! exactly 64 bytes with `f_type` `CKPT_FILE_EVENTFD` (7) and no record after
//! it; `count` is the eventfd's counter and `flags` the eventfd's own flags
//! (`EFD_SEMAPHORE` 1 and the `EFD_NONBLOCK`/`EFD_CLOEXEC` it was created
//! with); the restart re-creates it with `eventfd2(count, flags)` (a 32-bit
//! count) and then restores the common file fields.
//!
//! From the epoll patch of the same series (`ep_eventpoll_checkpoint`,
//! `ep_items_checkpoint`, `ep_items_restore`): an epoll file is a plain
//! `ckpt_hdr_file` (48 bytes, `f_type` `CKPT_FILE_EPOLL` 6) with nothing after
//! it; its targets are written from the files deferqueue, which runs after the
//! task's last FILE_DESC at checkpoint and restart alike: per epoll file an
//! EPOLL_ITEMS `{epfile_objref, num_items}`, then, when `num_items` > 0, one
//! BUFFER of `num_items` x `ckpt_eventpoll_item {data, fd, file_objref,
//! events}` in the instance's tree order; the restart adds each with
//! `EPOLL_CTL_ADD` on the file the objref names, under `fd`.

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

/// A FILE-shaped record `st` (header, `f_type`, the file's mode, flags, position and
/// kept FILE extras), the rest zero: what every anonymous file ckpt writes starts with.
fn file_head(st: &crate::layout::Struct, f: &File, f_type: u64) -> Vec<u8> {
    let mut b = st.zeroed();
    st.put(&mut b, "h.type", code("FILE") as u64);
    st.put(&mut b, "h.len", st.size as u64);
    st.put(&mut b, "f_type", f_type);
    st.put(&mut b, "f_mode", f.mode as u64);
    st.put(&mut b, "f_flags", f.flags as u64);
    st.put(&mut b, "f_pos", f.pos);
    for n in FILE_EXTRAS {
        st.put(&mut b, n, f.extras.u64(n).unwrap_or(0));
    }
    b
}

/// The model's File (kind Other, at `path`, no records yet) of the FILE-shaped record `b`
/// of objref `r`: the inverse of [`file_head`].
fn file_of(st: &crate::layout::Struct, b: &[u8], r: i32, path: &[u8]) -> File {
    let mut extras = Extras::new();
    for n in FILE_EXTRAS {
        let v = st.get(b, n);
        if v != 0 {
            extras.set_u64(n, v);
        }
    }
    File {
        id: r as u32,
        kind: FileKind::Other,
        path: path.to_vec(),
        flags: st.get(b, "f_flags") as u32,
        mode: st.get(b, "f_mode") as u32,
        pos: st.get(b, "f_pos"),
        pipe: None,
        records: Default::default(),
        extras,
    }
}

/// The FILE_EVENTFD record (whole, header included) of file `f` with `e`.
pub fn eventfd_record(f: &File, e: &Eventfd) -> Vec<u8> {
    let st = T.st("FILE_EVENTFD");
    let mut b = file_head(st, f, L::FILE_EVENTFD as u64);
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
    let mut file = file_of(st, b, r, EVENTFD_PATH);
    file.records.eventfd = Some(e);
    Some(file)
}

/// The path the model gives an eventpoll instance.
pub const EVENTPOLL_PATH: &[u8] = b"anon_inode:[eventpoll]";

/// The FILE record (whole) of an epoll file `f`.
pub fn epoll_record(f: &File) -> Vec<u8> {
    file_head(T.st("FILE"), f, L::FILE_EPOLL as u64)
}

/// The model's File for an epoll FILE record `b` (whole) of objref `r`, with
/// no targets yet (EPOLL_ITEMS gives them); `None` for a record ckpt does not
/// write (another length, non-zero padding).
pub fn epoll_file(r: i32, b: &[u8]) -> Option<File> {
    let st = T.st("FILE");
    if b.len() != st.size || !st.nonzero_padding(b).is_empty() {
        return None;
    }
    let mut file = file_of(st, b, r, EVENTPOLL_PATH);
    file.records.eventpoll = Some(Eventpoll::default());
    Some(file)
}

/// EPOLL_ITEMS (whole) and, with items, its BUFFER payload, for epoll file
/// `ep_ref` whose targets are `items` (target, objref of its file).
pub fn epoll_items(ep_ref: u32, items: &[(EpollTarget, u32)]) -> (Vec<u8>, Option<Vec<u8>>) {
    let st = T.st("EPOLL_ITEMS");
    let mut h = st.zeroed();
    st.put(&mut h, "h.type", code("EPOLL_ITEMS") as u64);
    st.put(&mut h, "h.len", st.size as u64);
    st.put(&mut h, "epfile_objref", ep_ref as u64);
    st.put(&mut h, "num_items", items.len() as u64);
    if items.is_empty() {
        return (h, None);
    }
    let e = T.st("EPOLL_ITEM");
    let mut buf = Vec::with_capacity(items.len() * e.size);
    for (t, r) in items {
        let mut x = e.zeroed();
        e.put(&mut x, "data", t.data);
        e.put(&mut x, "fd", t.fd as u32 as u64);
        e.put(&mut x, "file_objref", *r as u64);
        e.put(&mut x, "events", t.events as u64);
        buf.extend_from_slice(&x);
    }
    (h, Some(buf))
}

/// The items of a BUFFER payload of EPOLL_ITEMS: (target, file objref);
/// `None` when its length is not `n` items or an item has non-zero padding.
pub fn parse_epoll_items(p: &[u8], n: usize) -> Option<Vec<(EpollTarget, i32)>> {
    let e = T.st("EPOLL_ITEM");
    if p.len() != n.checked_mul(e.size)? {
        return None;
    }
    p.chunks_exact(e.size)
        .map(|x| {
            e.nonzero_padding(x).is_empty().then(|| {
                (
                    EpollTarget {
                        fd: e.get(x, "fd") as u32 as i32,
                        events: e.get(x, "events") as u32,
                        data: e.get(x, "data"),
                    },
                    e.get_i(x, "file_objref") as i32,
                )
            })
        })
        .collect()
}
