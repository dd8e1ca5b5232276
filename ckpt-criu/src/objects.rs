//! CRIU's live file objects onto the model's typed file records: eventfd, timerfd,
//! signalfd, eventpoll (with its targets), inotify (with its watches), pseudo-terminal
//! slaves (`tty_file_entry` + `tty-info.img`), sockets (`sockets.rs`), and file locks
//! (`filelocks.img`). Each function returns the model's File shape (kind, path, records)
//! or a loss naming what the model cannot carry.
//!
//! Facts of CRIU's format used here (CRIU 4.1.1 `images/*.proto`, `criu/file-lock.c`,
//! `criu/proc_parse.c`), as our own table:
//!
//! | CRIU | meaning |
//! |---|---|
//! | `eventfd_file_entry.flags` | the file's status flags; `EFD_SEMAPHORE` is not recorded (CRIU's own restore makes a counting eventfd) |
//! | `eventpoll_file_entry.tfd[]` (older dumps: `eventpoll-tfd.img`, `id` = the eventpoll's) | `tfd` is the target's fd number in the dumping task, `events`/`data` its `epoll_event` |
//! | `inotify_wd_entry` | `wd`, `mask`, `ignored_mask`, and the watched inode's file handle; `f_handle.path` the path CRIU found for it (absent: none found) |
//! | `tty_info_entry.type` | 1 pty, 2 console, 3 vt, 4 ctty, 5 external, 6 serial; `rdev` the device in the kernel's 32-bit `new_encode_dev` form (major 5 minor 2: `/dev/ptmx`, majors 136-143: pty slaves) |
//! | `termios_entry` | the `TCGETS` flags and line; `c_cc` is C library's 32-byte `c_cc` array copied as bytes over the `u32` words (4 control characters per word, little-endian: the kernel's 19 are the first 19 bytes of words 0..=4, the words after 7 are not written); no speeds (0): they follow from `c_cflag`'s baud bits |
//! | `file_lock_entry.flag` | 1 POSIX, 2 flock, 4 OFD, 8 lease; `type` 0 read, 1 write (with 32 `LOCK_MAND` for mandatory flock); `pid`/`fd` the owner and the fd it holds the file on; `len` 0 = to end of file |

use crate::image::{ImageFile, Result};
use crate::pb;
use crate::set::CriuImage;
use ckpt_format::model::{
    EpollTarget, Eventfd, Eventpoll, FileLock, FileRecords, Inotify, InotifyWatch, PosixLock,
    Signalfd, Timerfd, Tty, LOCK_FLOCK, LOCK_OFD,
};
use ckpt_format::FileKind;
use std::collections::HashMap;

/// The magic of `tty-info.img`, `filelocks.img`, `eventpoll-tfd.img`, `tty-data.img`.
const TTY_INFO: u32 = 0x5945_3036;
const FILE_LOCKS: u32 = 0x5432_3616;
const EVENTPOLL_TFD: u32 = 0x4443_3746;
const TTY_DATA: u32 = 0x5941_3026;

const TTY_PTY: i32 = 1;
const PTMX: (u32, u32) = (5, 2);

const FL_POSIX: u32 = 1;
const FL_FLOCK: u32 = 2;
const FL_OFD: u32 = 4;
const F_RDLCK: u32 = 0;
const F_WRLCK: u32 = 1;

/// `O_CLOEXEC`: the fd's flag, not the file's (CRIU keeps it in fdinfo).
const O_CLOEXEC: u32 = 0o2_000_000;

/// The dump-wide tables these objects refer to.
#[derive(Default)]
pub(crate) struct Objects {
    tty_info: HashMap<u32, pb::TtyInfoEntry>,
    tty_data: HashMap<u32, usize>,
    old_tfds: HashMap<u32, Vec<pb::EventpollTfdEntry>>,
    locks: Vec<pb::FileLockEntry>,
}

pub(crate) fn read(img: &CriuImage) -> Result<Objects> {
    let mut o = Objects::default();
    if let Some(b) = img.file("tty-info.img") {
        for t in ImageFile::expect("tty-info.img", b, TTY_INFO)?.all::<pb::TtyInfoEntry>()? {
            o.tty_info.insert(t.id, t);
        }
    }
    if let Some(b) = img.file("tty-data.img") {
        for t in ImageFile::expect("tty-data.img", b, TTY_DATA)?.all::<pb::TtyDataEntry>()? {
            *o.tty_data.entry(t.tty_id).or_default() += t.data.len();
        }
    }
    if let Some(b) = img.file("eventpoll-tfd.img") {
        let all = ImageFile::expect("eventpoll-tfd.img", b, EVENTPOLL_TFD)?
            .all::<pb::EventpollTfdEntry>()?;
        for t in all {
            o.old_tfds.entry(t.id).or_default().push(t);
        }
    }
    if let Some(b) = img.file("filelocks.img") {
        o.locks = ImageFile::expect("filelocks.img", b, FILE_LOCKS)?.all()?;
    }
    Ok(o)
}

/// A file object of one of the kinds here: what the model's File gets.
pub(crate) struct Shape {
    pub kind: FileKind,
    pub path: Vec<u8>,
    pub flags: u32,
    pub mode: u32,
    pub records: FileRecords,
}

fn anon(name: &str, flags: u32, records: FileRecords) -> Shape {
    Shape {
        kind: FileKind::Other,
        path: format!("anon_inode:{name}").into_bytes(),
        flags: flags & !O_CLOEXEC,
        mode: 0o600,
        records,
    }
}

/// The eventfd, timerfd, signalfd, eventpoll or inotify of `fe`; `Ok(None)` when `fe` is
/// none of them; `Err(loss)` when it is one the model cannot carry as dumped.
pub(crate) fn anon_file(o: &Objects, fe: &pb::FileEntry) -> Option<Result<Shape, String>> {
    let mut r = FileRecords::default();
    if let Some(e) = &fe.efd {
        r.eventfd = Some(Eventfd {
            count: e.counter,
            semaphore: false,
        });
        return Some(Ok(anon("[eventfd]", e.flags, r)));
    }
    if let Some(t) = &fe.tfd {
        let big = |v: u64| v > i64::MAX as u64;
        if big(t.vsec) || big(t.isec) || t.vnsec >= 1_000_000_000 || t.insec >= 1_000_000_000 {
            return Some(Err(format!(
                "timerfd {}: time {}.{} / period {}.{} out of range",
                t.id, t.vsec, t.vnsec, t.isec, t.insec
            )));
        }
        r.timerfd = Some(Timerfd {
            clock: t.clockid as i32,
            settime_flags: t.settime_flags,
            ticks: t.ticks,
            value_sec: t.vsec,
            value_nsec: t.vnsec,
            interval_sec: t.isec,
            interval_nsec: t.insec,
        });
        return Some(Ok(anon("[timerfd]", t.flags, r)));
    }
    if let Some(s) = &fe.sgfd {
        r.signalfd = Some(Signalfd { mask: s.sigmask });
        return Some(Ok(anon("[signalfd]", s.flags, r)));
    }
    if let Some(e) = &fe.epfd {
        let old = o.old_tfds.get(&e.id).map(Vec::as_slice).unwrap_or(&[]);
        let targets = e
            .tfd
            .iter()
            .chain(old)
            .map(|t| EpollTarget {
                fd: t.tfd as i32,
                events: t.events,
                data: t.data,
            })
            .collect();
        r.eventpoll = Some(Eventpoll { targets });
        return Some(Ok(anon("[eventpoll]", e.flags, r)));
    }
    if let Some(i) = &fe.ify {
        let mut watches = Vec::with_capacity(i.wd.len());
        for w in &i.wd {
            let Some(path) = w.f_handle.path.as_deref().filter(|p| !p.is_empty()) else {
                return Some(Err(format!(
                    "inotify {}: watch {} on inode {} of device {:#x} without a path (CRIU kept only its file handle)",
                    i.id, w.wd, w.i_ino, w.s_dev
                )));
            };
            watches.push(InotifyWatch {
                wd: w.wd as i32,
                mask: w.mask,
                ignored_mask: w.ignored_mask,
                path: path.as_bytes().to_vec(),
            });
        }
        watches.sort_by_key(|w| w.wd);
        r.inotify = Some(Inotify { watches });
        return Some(Ok(anon("inotify", i.flags, r)));
    }
    None
}

/// Major and minor of a device number in the kernel's 32-bit encoding.
fn dev(rdev: u32) -> (u32, u32) {
    (
        (rdev >> 8) & 0xfff,
        (rdev & 0xff) | ((rdev >> 12) & 0xf_ff00),
    )
}

/// A terminal file: a pty slave with its line settings and window size; the other kinds
/// are losses.
pub(crate) fn tty(
    o: &Objects,
    t: &pb::TtyFileEntry,
    reg_name: Option<Vec<u8>>,
) -> Result<Shape, String> {
    let Some(info) = o.tty_info.get(&t.tty_info_id) else {
        return Err(format!(
            "tty {}: its tty-info entry {} is not in the dump",
            t.id, t.tty_info_id
        ));
    };
    let (major, minor) = dev(info.rdev);
    if info.r#type != TTY_PTY {
        return Err(format!(
            "tty {}: a terminal of CRIU type {} (device {major}:{minor}), not a pseudo-terminal",
            t.id, info.r#type
        ));
    }
    let index = info.pty.as_ref().map_or(0, |p| p.index);
    if (major, minor) == PTMX {
        return Err(format!(
            "tty {}: the master end of pty {index} (ckpt restores pty slaves only)",
            t.id
        ));
    }
    if !(136..=143).contains(&major) {
        return Err(format!(
            "tty {}: a pty of device {major}:{minor} (not a Unix98 pty slave)",
            t.id
        ));
    }
    if o.tty_data.get(&info.id).is_some_and(|&n| n > 0) {
        return Err(format!(
            "tty {}: {} bytes queued in pty {index}",
            t.id, o.tty_data[&info.id]
        ));
    }
    if info.packet_mode || info.exclusive {
        return Err(format!(
            "tty {}: pty {index} in packet or exclusive mode",
            t.id
        ));
    }
    let Some(tm) = &info.termios else {
        return Err(format!("tty {}: pty {index} without line settings", t.id));
    };
    if tm.c_cc.len() < 5 {
        return Err(format!(
            "tty {}: pty {index} with {} control-character words (fewer than the 19 bytes of 5)",
            t.id,
            tm.c_cc.len()
        ));
    }
    let mut termios = Vec::with_capacity(ckpt_format::model::records::TERMIOS2_LEN);
    for w in [tm.c_iflag, tm.c_oflag, tm.c_cflag, tm.c_lflag] {
        termios.extend_from_slice(&w.to_le_bytes());
    }
    termios.push(tm.c_line as u8);
    let cc: Vec<u8> = tm.c_cc[..5].iter().flat_map(|w| w.to_le_bytes()).collect();
    termios.extend_from_slice(&cc[..19]);
    let (ispeed, ospeed) = speeds(tm.c_cflag);
    termios.extend_from_slice(&ispeed.to_le_bytes());
    termios.extend_from_slice(&ospeed.to_le_bytes());
    let w = info.winsize.unwrap_or_default();
    let ws = |v: u32| v.min(u16::MAX as u32) as u16;
    let records = FileRecords {
        tty: Some(Box::new(Tty {
            master: false,
            index: index as i32,
            sid: info.sid as i32,
            pgrp: info.pgrp as i32,
            winsize: [ws(w.ws_row), ws(w.ws_col), ws(w.ws_xpixel), ws(w.ws_ypixel)],
            termios,
        })),
        ..FileRecords::default()
    };
    Ok(Shape {
        kind: FileKind::CharDevice,
        path: reg_name.unwrap_or_else(|| format!("/dev/pts/{index}").into_bytes()),
        flags: t.flags & !O_CLOEXEC,
        mode: 0o020_620,
        records,
    })
}

/// The input and output speeds `TCGETS2` reports for `c_cflag` (CRIU keeps none): the
/// baud code of `CBAUD` (with `CBAUDEX`), the input's from `CIBAUD` when set, else the
/// output's.
fn speeds(cflag: u32) -> (u32, u32) {
    const LOW: [u32; 16] = [
        0, 50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
    ];
    const HIGH: [u32; 16] = [
        0, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000,
        2000000, 2500000, 3000000, 3500000, 4000000,
    ];
    let rate = |code: u32| {
        let i = (code & 0o17) as usize;
        if code & 0o10000 != 0 {
            HIGH[i]
        } else {
            LOW[i]
        }
    };
    let out = rate(cflag & 0o10017);
    let inp = (cflag >> 16) & 0o10017;
    (if inp == 0 { out } else { rate(inp) }, out)
}

/// The POSIX locks task `pid` holds, and the losses among its locks.
pub(crate) fn posix_locks(o: &Objects, pid: u32) -> (Vec<PosixLock>, Vec<String>) {
    let mut out = Vec::new();
    let mut losses = Vec::new();
    for l in o.locks.iter().filter(|l| l.pid == pid as i32) {
        match lock(l) {
            Ok((FL_POSIX, write)) => out.push(PosixLock {
                fd: l.fd,
                write,
                start: l.start as u64,
                len: l.len as u64,
            }),
            Ok(_) => {}
            Err(e) => losses.push(format!("task {pid}: {e}")),
        }
    }
    (out, losses)
}

/// The flock and OFD locks held through fd `fd` of task `pid`.
pub(crate) fn file_locks(o: &Objects, pid: u32, fd: u32) -> Vec<FileLock> {
    o.locks
        .iter()
        .filter(|l| l.pid == pid as i32 && l.fd == fd as i32)
        .filter_map(|l| match lock(l) {
            Ok((FL_FLOCK, write)) => Some(FileLock {
                kind: LOCK_FLOCK,
                write,
                start: 0,
                len: 0,
            }),
            Ok((FL_OFD, write)) => Some(FileLock {
                kind: LOCK_OFD,
                write,
                start: l.start as u64,
                len: l.len as u64,
            }),
            _ => None,
        })
        .collect()
}

/// A lock's kind and whether it is a write lock, or why the model cannot hold it.
fn lock(l: &pb::FileLockEntry) -> Result<(u32, bool), String> {
    let what = format!("fd {}: lock", l.fd);
    if l.start < 0 || l.len < 0 {
        return Err(format!("{what} at {} of length {}", l.start, l.len));
    }
    let write = match l.r#type {
        F_RDLCK => false,
        F_WRLCK => true,
        t => return Err(format!("{what} of type {t:#x} (mandatory or lease)")),
    };
    match l.flag {
        FL_POSIX | FL_FLOCK | FL_OFD => Ok((l.flag, write)),
        f => Err(format!("{what} of kind {f:#x} (a lease)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_decode() {
        assert_eq!(dev(0x0502), (5, 2));
        assert_eq!(dev((136 << 8) | 3), (136, 3));
        assert_eq!(dev((137 << 8) | 0x10_0001), (137, 0x101));
    }

    #[test]
    fn speeds_follow_the_baud_bits() {
        assert_eq!(speeds(0xbf), (38400, 38400)); // B38400 | CS8 | CREAD
        assert_eq!(speeds(0o10002), (115200, 115200)); // B115200
        assert_eq!(speeds(0o15 | (0o17 << 16)), (38400, 9600)); // B9600 out, B38400 in
    }
}
