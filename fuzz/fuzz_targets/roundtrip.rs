//! Structure-aware: an arbitrary image description → builder → native-1
//! writer → reader must give back exactly the events written, and writing
//! them again must give identical bytes.
#![no_main]
use arbitrary::Arbitrary;
use ckpt_format::build::ImageBuilder;
use ckpt_format::*;
use ckpt_fuzz::*;
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;

#[global_allocator]
static A: Counting = Counting;

#[derive(Arbitrary, Debug)]
struct Desc {
    arch32: bool,
    time: u64,
    flags: u64,
    release: Vec<u8>,
    header_extra: Option<(String, u64)>,
    tasks: Vec<TaskD>,
    foreign: Option<(u32, u32, Vec<u8>)>,
    error: Option<Vec<u8>>,
    /// An increment: the parent reference, and page code 2 means "in the parent".
    parent: Option<(u64, u64, u32, Vec<u8>)>,
}

#[derive(Arbitrary, Debug)]
struct TaskD {
    pid: u16,
    comm: Vec<u8>,
    state: u32,
    threads: Vec<ThreadD>,
    mm: Option<(u64, u64, Vec<u64>, Option<Vec<u8>>)>,
    vmas: Vec<VmaD>,
    pipe: Option<Vec<u8>>,
    files: Vec<(u8, u64, Vec<u8>, bool)>,
    sig: Option<Vec<(u64, u64)>>,
    extra: Option<(String, Vec<u8>)>,
    caps: Option<[u64; 5]>,
    security: Option<(u64, u64)>,
    shared: Option<Vec<u8>>,
    real_parent: Option<i32>,
    pdeath: Option<u64>,
    itimers: Option<[(i64, i64, i64, i64); 3]>,
    posix_timers: Option<Vec<(i32, i32, i32, i32, u64, i32, i32, [i64; 4])>>,
    proc_attrs: Option<(i32, u32, u64, u32, u32)>,
    vma_identity: Option<(u64, u64, u64)>,
    vm_flags: Option<Vec<u8>>,
    file_identity: Option<(u64, u64, u64)>,
    unsupported: bool,
    eventfd: Option<(u64, bool)>,
    timerfd: Option<(i32, u32, u64, [u64; 4])>,
    signalfd: Option<u64>,
    eventpoll: Option<Vec<(i32, u32, u64)>>,
    inotify: Option<Vec<(i32, u32, u32, Vec<u8>)>>,
    /// file_contents (size, kind, seals) of the first file, with its data runs (gap
    /// after the previous run, length, fill byte); the others refer to it (inode_of).
    contents: Option<((u64, u32, u32), Vec<(u16, u16, u8)>)>,
    /// file_locks of every file: (kind, write, start, len).
    file_locks: Option<Vec<(u32, bool, u64, u64)>>,
    /// posix_locks of the task: (fd, write, start, len).
    posix_locks: Option<Vec<(i32, bool, u64, u64)>>,
    /// job_stop of the task: the signal.
    job_stop: Option<u32>,
    exe_contents: Option<u32>,
    map_contents: Option<u32>,
    sock: Option<SockD>,
    /// tty of every file: (master, index, sid, pgrp, winsize, termios seed).
    tty: Option<(bool, i32, i32, i32, [u16; 4], u8)>,
    securebits: Option<u32>,
    /// pidfd of every file: the pid.
    pidfd: Option<i32>,
    /// fown of every file: (kind, owner, signal).
    fown: Option<(u8, i32, i32)>,
}

/// A socket's records (model/sockets.rs), built into their valid shape.
#[derive(Arbitrary, Debug)]
struct SockD {
    kind: (u32, u32, u32, u8, u8),
    backlog: Option<u32>,
    ino: (u32, Option<u32>),
    local: AddrD,
    peer: Option<AddrD>,
    flags: [bool; 6],
    tri: [Option<bool>; 3],
    nums: [i32; 6],
    keepalive: Option<(i32, i32, i32)>,
    timeo: (u64, u64),
    queue: Option<Vec<(Vec<u8>, Vec<u32>, Option<(i32, u32, u32)>)>>,
    tcp: Option<TcpD>,
    netlink: Option<Vec<u32>>,
}

#[derive(Arbitrary, Debug)]
enum AddrD {
    Unnamed,
    Path(Vec<u8>),
    Abstract(Vec<u8>),
    V4([u8; 4], u16),
    V6([u8; 16], u16, u32, u32),
    Netlink(u32, u32),
    Other(u16, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct TcpD {
    seqs: [u32; 5],
    opts: (u8, u8, u8),
    window: Option<[u32; 5]>,
    inq: Vec<u8>,
    outq: Vec<u8>,
    netlock: Vec<u8>,
}

fn addr(a: &AddrD) -> SockAddr {
    let name = |v: &[u8]| v[..v.len().min(108)].to_vec();
    match a {
        AddrD::Unnamed => SockAddr::Unnamed,
        AddrD::Path(v) if v.is_empty() => SockAddr::Unnamed,
        AddrD::Path(v) => SockAddr::Path(name(v)),
        AddrD::Abstract(v) => SockAddr::Abstract(name(v)),
        AddrD::V4(a, p) => SockAddr::V4(*a, *p),
        AddrD::V6(a, p, f, s) => SockAddr::V6(*a, *p, *f, *s),
        AddrD::Netlink(i, g) => SockAddr::Netlink(*i, *g),
        AddrD::Other(f, v) => SockAddr::Other(*f, v[..v.len().min(126)].to_vec()),
    }
}

fn sock(d: &SockD) -> SocketRecords {
    let (family, ty, protocol, state, shutdown) = d.kind;
    let [reuseaddr, reuseport, keepalive, broadcast, oobinline, passcred] = d.flags;
    let [priority, rcvbuf, sndbuf, rcvlowat, linger, peek_off] = d.nums;
    SocketRecords {
        socket: Some(Socket {
            family,
            ty,
            protocol,
            state,
            shutdown: shutdown & 3,
            backlog: d.backlog,
            ino: d.ino.0,
            peer_ino: d.ino.1,
            local: addr(&d.local),
            peer: d.peer.as_ref().map(addr),
            options: SockOptions {
                reuseaddr,
                reuseport,
                keepalive,
                broadcast,
                oobinline,
                passcred,
                priority,
                rcvbuf,
                sndbuf,
                rcvlowat,
                rcvtimeo_us: d.timeo.0,
                sndtimeo_us: d.timeo.1,
                linger: (linger >= 0).then_some(linger),
                peek_off,
                tcp_nodelay: d.tri[0],
                tcp_cork: d.tri[1],
                tcp_keepalive: d.keepalive,
                v6only: d.tri[2],
            },
        }),
        queue: d.queue.as_ref().map(|q| SocketQueue {
            messages: q
                .iter()
                .take(64)
                .map(|(data, files, creds)| QueuedMessage {
                    data: data.clone(),
                    files: files.iter().take(253).map(|&f| f.max(1)).collect(),
                    creds: *creds,
                })
                .collect(),
        }),
        tcp: d.tcp.as_ref().map(|t| TcpConnection {
            inq_seq: t.seqs[0],
            outq_seq: t.seqs[1],
            unsent: t.seqs[2].min(t.outq.len() as u32),
            mss: t.seqs[3],
            timestamp: t.seqs[4],
            options: t.opts.0 & 7,
            snd_wscale: t.opts.1,
            rcv_wscale: t.opts.2,
            window: t.window.map(|w| TcpWindow {
                snd_wl1: w[0],
                snd_wnd: w[1],
                max_window: w[2],
                rcv_wnd: w[3],
                rcv_wup: w[4],
            }),
            inq: t.inq.clone(),
            outq: t.outq.clone(),
            netlock: t
                .netlock
                .iter()
                .copied()
                .filter(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .take(64)
                .collect(),
        }),
        netlink: d.netlink.as_ref().map(|g| NetlinkSocket { groups: g.clone() }),
    }
}

#[derive(Arbitrary, Debug)]
struct ThreadD {
    rip: u64,
    rsp: u64,
    orig_rax: u64,
    fpu: Option<Vec<u8>>,
    tls: Vec<u8>,
    sigmask: u64,
    rseq: Option<(u64, u32, u32)>,
    robust: Option<(u64, u64)>,
    alt: Option<(u64, u32, u64)>,
    ctid: Option<u64>,
    pending: Option<(u64, Vec<u8>)>,
    attrs: Option<(i32, u32, u32, u32, u64, Vec<u64>)>,
    /// seccomp_filters: (shared, filters as (flags, instruction count 1..=8, fill byte)).
    seccomp: Option<(u8, Vec<(u32, u8, u8)>)>,
}

/// A signal queue: one 128-byte siginfo per seed byte (at most 4).
fn queue(seeds: &[u8]) -> Vec<SigInfo> {
    seeds
        .iter()
        .take(4)
        .map(|&s| {
            let mut b = vec![s; SigInfo::LEN];
            b[0] = s % 64 + 1;
            SigInfo(b)
        })
        .collect()
}

/// An extras key that is not one of the keys typed records had before them
/// (those are read back as typed records).
fn free_key(k: &str) -> bool {
    !ckpt_format::model::records::LEGACY_KEYS.contains(&k)
}

#[derive(Arbitrary, Debug)]
struct VmaD {
    gap: u8,
    pages: Vec<u8>, // per page: 0 = not captured, 1 = zero page, else fill byte
    prot: u8,
    file: Option<Vec<u8>>,
}

fn build(d: &Desc) -> ImageBuilder {
    let mut h = ImageBuilder::x86_64_header();
    if d.arch32 {
        h.arch = Arch::X86_32;
    }
    h.time = d.time;
    h.flags = d.flags;
    h.kernel.release = d.release.clone();
    if let Some((k, v)) = d.header_extra.as_ref().filter(|(k, _)| free_key(k)) {
        h.extras.set_u64(k, *v);
    }
    if let Some((records, bytes, stream_crc, path)) = &d.parent {
        h.parent = Some(ParentRef {
            records: *records,
            bytes: *bytes,
            stream_crc: *stream_crc,
            path: path.clone(),
        });
    }
    let mut b = ImageBuilder::new(h).chunk_pages(3);
    let mut next_id = 1u32;
    for (ti, t) in d.tasks.iter().take(3).enumerate() {
        let pid = t.pid as i32 + 1 + ti as i32 * 70000;
        let mut task = Task {
            pid,
            tgid: pid,
            comm: t.comm.iter().copied().take(16).collect(),
            state: t.state,
            ..Task::default()
        };
        if let Some((k, v)) = t.extra.as_ref().filter(|(k, _)| free_key(k)) {
            task.extras.set_bytes(k, v);
        }
        task.records = TaskRecords {
            caps: t.caps.map(|c| Capabilities {
                inh: c[0],
                prm: c[1],
                eff: c[2],
                bnd: c[3],
                amb: c[4],
            }),
            security: t.security.map(|(n, s)| Security {
                no_new_privs: n,
                seccomp_mode: s,
            }),
            shared_pending: t.shared.as_ref().map(|q| SharedPending { queue: queue(q) }),
            real_parent: t.real_parent.map(|ppid| RealParent { ppid }),
            pdeath_signal: t.pdeath.map(|sig| ParentDeathSignal { sig }),
            itimers: t.itimers.map(|v| Itimers {
                timers: v.map(|(a, b, c, d)| Itimer {
                    interval: (a, b),
                    value: (c, d),
                }),
            }),
            posix_timers: t.posix_timers.as_ref().map(|v| PosixTimers {
                timers: v
                    .iter()
                    .take(4)
                    .map(|&(id, clock, notify, signo, value, tid, overrun, t)| PosixTimer {
                        id,
                        clock,
                        notify,
                        signo,
                        value,
                        tid,
                        overrun,
                        interval: (t[0], t[1]),
                        left: (t[2], t[3]),
                    })
                    .collect(),
            }),
            attrs: t.proc_attrs.map(|(a, d, c, s, h)| ProcessAttrs {
                oom_score_adj: a,
                dumpable: d,
                coredump_filter: c,
                child_subreaper: s,
                thp_disable: h,
            }),
            exe: t.exe_contents.map(|file| ExeContents { file }),
            posix_locks: t.posix_locks.as_ref().map(|v| PosixLocks {
                locks: v
                    .iter()
                    .take(8)
                    .map(|&(fd, write, start, len)| PosixLock {
                        fd,
                        write,
                        start,
                        len,
                    })
                    .collect(),
            }),
            securebits: t.securebits.map(|bits| Securebits { bits }),
            job_stop: t.job_stop.map(|sig| JobStop { sig }),
        };
        b.push(Event::Task(task));
        for (i, th) in t.threads.iter().take(3).enumerate() {
            b.push(Event::Thread(Thread {
                tid: pid + i as i32,
                regs: Regs {
                    rip: th.rip,
                    rsp: th.rsp,
                    orig_rax: th.orig_rax,
                    ..Regs::default()
                },
                fpu: th.fpu.as_ref().map(|f| Fpu {
                    kind: FpuKind::Xsave,
                    xfeatures: 7,
                    data: f.clone(),
                }),
                tls: th.tls.clone(),
                sigmask: th.sigmask,
                records: ThreadRecords {
                    rseq: th.rseq.map(|(ptr, len, sig)| Rseq { ptr, len, sig }),
                    robust_list: th.robust.map(|(head, len)| RobustList { head, len }),
                    sigaltstack: th
                        .alt
                        .map(|(sp, flags, size)| SigAltStack { sp, flags, size }),
                    clear_child_tid: th.ctid.map(|addr| ClearChildTid { addr }),
                    pending: th.pending.as_ref().map(|(mask, q)| PendingSignals {
                        mask: *mask,
                        queue: queue(q),
                    }),
                    attrs: th.attrs.as_ref().map(|(n, p, r, io, sl, aff)| ThreadAttrs {
                        nice: *n,
                        policy: *p,
                        rt_priority: *r,
                        ioprio: *io,
                        timer_slack: *sl,
                        affinity: aff.iter().copied().take(4).collect(),
                    }),
                    seccomp: th.seccomp.as_ref().map(|(shared, v)| {
                        let filters: Vec<SeccompFilter> = v
                            .iter()
                            .take(4)
                            .map(|&(flags, n, fill)| SeccompFilter {
                                flags,
                                insns: vec![fill; (n as usize % 8 + 1) * 8],
                            })
                            .collect();
                        SeccompFilters {
                            shared: (*shared as u32).min(filters.len() as u32),
                            filters,
                        }
                    }),
                },
                extras: Extras::new(),
            }));
        }
        if t.mm.is_none() && !t.vmas.is_empty() {
            b.push(Event::Mm(Mm::default()));
        }
        if let Some((brk, stack, auxv, exe)) = &t.mm {
            b.push(Event::Mm(Mm {
                brk: *brk,
                start_stack: *stack,
                auxv: auxv.iter().copied().take(64).collect(),
                exe: exe.clone(),
                ..Mm::default()
            }));
        }
        let mut at = 0x10_0000u64;
        for v in t.vmas.iter().take(4) {
            at += v.gap as u64 * 4096;
            let n = v.pages.len().min(12) as u64;
            let pages: Vec<(u64, Vec<u8>)> = v
                .pages
                .iter()
                .take(12)
                .enumerate()
                .filter(|(_, &k)| k != 0)
                .map(|(i, &k)| {
                    let fill = if k == 1 { 0 } else { k };
                    (at + i as u64 * 4096, vec![fill; 4096])
                })
                .collect();
            let vma = Vma {
                start: at,
                end: at + (n + 1) * 4096,
                prot: (v.prot & 7) as u32,
                flags: 0x70,
                pgoff: 0,
                kind: if v.file.is_some() {
                    VmaKind::File
                } else {
                    VmaKind::Anon
                },
                file: v.file.clone(),
                records: VmaRecords {
                    identity: t.vma_identity.map(|(a, b, c)| MapIdentity {
                        dev_major: a,
                        dev_minor: b,
                        ino: c,
                    }),
                    unknown_flags: t.vm_flags.clone().map(|names| UnknownVmFlags { names }),
                    contents: t.map_contents.map(|file| MapContents { file }),
                },
                extras: Extras::new(),
            };
            if d.parent.is_some() {
                // One event per page: contents, zero, or kept in the parent (code 2).
                b.push(Event::Vma(vma));
                for (i, &k) in v.pages.iter().take(12).enumerate() {
                    let start = at + i as u64 * 4096;
                    let run = ZeroRun { start, count: 1 };
                    match k {
                        0 => {}
                        1 => {
                            b.push(Event::ZeroPages(run));
                        }
                        2 => {
                            b.push(Event::ParentPages(run));
                        }
                        _ => {
                            b.push(Event::Pages(PageChunk {
                                addrs: Addrs::from_u64s(&[start]),
                                data: Cow::Owned(vec![k; 4096]),
                            }));
                        }
                    }
                }
                b.push(Event::VmaEnd);
            } else {
                b.vma(vma, &pages);
            }
            at += (n + 1) * 4096;
        }
        if let Some(s) = &t.sig {
            b.push(Event::SigActions(
                s.iter()
                    .take(64)
                    .map(|&(h, f)| SigAction {
                        handler: h,
                        flags: f,
                        restorer: 0,
                        mask: 0,
                    })
                    .collect(),
            ));
        }
        let pipe_id = t.pipe.as_ref().map(|data| {
            let id = next_id;
            next_id += 1;
            b.push(Event::Pipe(Pipe {
                id,
                data: Cow::Owned(data.clone()),
            }));
            id
        });
        let mut inode = None;
        for (fd, (kind, pos, path, cloexec)) in t.files.iter().take(4).enumerate() {
            let id = next_id;
            next_id += 1;
            // The first file carries the contents, the others refer to it.
            let (contents, data, inode_of) = match (&t.contents, inode) {
                (Some(((size, kind, seals), runs)), None) => {
                    inode = Some(id);
                    let mut data = Vec::new();
                    let mut off = 0u64;
                    for &(gap, len, fill) in runs.iter().take(4) {
                        let start = off + gap as u64;
                        let len = len as u64 % 9000 + 1;
                        if start + len > *size {
                            break;
                        }
                        data.push(FileData {
                            offset: start,
                            data: vec![fill; len as usize],
                        });
                        off = start + len;
                    }
                    let c = FileContents {
                        size: *size,
                        kind: *kind,
                        seals: *seals,
                    };
                    (Some(c), data, None)
                }
                (_, Some(i)) => (None, Vec::new(), Some(InodeOf { file: i })),
                _ => (None, Vec::new(), None),
            };
            let locks = t.file_locks.as_ref().map(|v| FileLocks {
                locks: v
                    .iter()
                    .take(8)
                    .map(|&(kind, write, start, len)| FileLock {
                        kind,
                        write,
                        start,
                        len,
                    })
                    .collect(),
            });
            let is_pipe = kind % 2 == 1 && pipe_id.is_some();
            b.push(Event::File(File {
                id,
                kind: if is_pipe {
                    FileKind::Pipe
                } else {
                    FileKind::Regular
                },
                path: path.clone(),
                flags: 2,
                mode: 0o100644,
                pos: *pos,
                pipe: if is_pipe { pipe_id } else { None },
                records: FileRecords {
                    identity: t.file_identity.map(|(dev, ino, mnt_id)| FileIdentity {
                        dev,
                        ino,
                        mnt_id,
                    }),
                    unsupported: t.unsupported.then_some(Unsupported),
                    eventfd: t.eventfd.map(|(count, semaphore)| Eventfd { count, semaphore }),
                    timerfd: t.timerfd.map(|(clock, settime_flags, ticks, v)| Timerfd {
                        clock,
                        settime_flags,
                        ticks,
                        value_sec: v[0],
                        value_nsec: v[1],
                        interval_sec: v[2],
                        interval_nsec: v[3],
                    }),
                    signalfd: t.signalfd.map(|mask| Signalfd { mask }),
                    eventpoll: t.eventpoll.as_ref().map(|v| Eventpoll {
                        targets: v
                            .iter()
                            .map(|&(fd, events, data)| EpollTarget { fd, events, data })
                            .collect(),
                    }),
                    inotify: t.inotify.as_ref().map(|v| Inotify {
                        watches: v
                            .iter()
                            .map(|(wd, mask, ignored_mask, path)| InotifyWatch {
                                wd: *wd,
                                mask: *mask,
                                ignored_mask: *ignored_mask,
                                path: path.clone(),
                            })
                            .collect(),
                    }),
                    contents,
                    data,
                    inode_of,
                    locks,
                    pidfd: t.pidfd.map(|pid| Pidfd { pid }),
                    fown: t.fown.map(|(kind, owner, signal)| Fown {
                        kind: kind as u32 % 3,
                        owner,
                        signal,
                    }),
                    sock: t.sock.as_ref().map(sock).unwrap_or_default(),
                    tty: t.tty.map(|(master, index, sid, pgrp, winsize, seed)| {
                        Box::new(Tty {
                        master,
                        index,
                        sid,
                        pgrp,
                        winsize,
                        termios: (0..44u8).map(|i| seed.wrapping_add(i)).collect(),
                        })
                    }),
                },
                extras: Extras::new(),
            }));
            b.push(Event::Fd(Fd {
                fd: fd as i32,
                cloexec: *cloexec,
                file: id,
            }));
        }
    }
    if let Some((rev, code, payload)) = &d.foreign {
        b.push(Event::Unknown(Unknown {
            revision: if rev % 2 == 0 {
                Revision::CrV5
            } else {
                Revision::CkptV21
            },
            type_code: *code,
            parent: 0,
            payload: Cow::Owned(payload.clone()),
        }));
    }
    if let Some(e) = &d.error {
        b.push(Event::Error(e.clone()));
    }
    b.tail();
    b
}

fuzz_target!(|d: Desc| {
    let b = build(&d);
    let bytes = b.to_native_bytes().expect("a valid description encodes");
    let mut src = open_slice(&bytes).expect("recognised");
    let mut got = Vec::new();
    while let Some(ev) = src.next_event().expect("decodes") {
        got.push(ev.into_owned());
    }
    assert_eq!(got.len(), b.events.len());
    for (g, w) in got.iter().zip(&b.events) {
        match (g, w) {
            (Event::Header(g), Event::Header(w)) => {
                assert_eq!(g.kernel, w.kernel);
                assert_eq!(g.extras, w.extras);
            }
            _ => assert_eq!(g, w),
        }
    }
    let mut again = Vec::new();
    let mut src = open_slice(&bytes).unwrap();
    let mut enc = native::Encoder::new(&mut again);
    pump(&mut *src, &mut enc).unwrap();
    drop(enc);
    assert_eq!(again, bytes);
});
