//! The tables the ckpt-v21 decoder and encoder share: kernel constants of the
//! header, the TASK_OBJS fields, the task/thread/capability keys and the
//! HEADER_ARCH defaults. (The table of record kinds and their layouts is
//! [`crate::layout::v21`].)

use super::*;

/// Kernel constants the v21 header records, with the values of an x86-64
/// 2.6.33 kernel; the decoder keeps a constant in header extras (same key)
/// only when it differs.
pub const CONSTANTS: [(&str, u64); 12] = [
    ("task_comm_len", 16),
    ("at_vector_size", 44),
    ("signal_nsig", 64),
    ("uts_sysname_len", 65),
    ("uts_nodename_len", 65),
    ("uts_release_len", 65),
    ("uts_version_len", 65),
    ("uts_machine_len", 65),
    ("uts_domainname_len", 65),
    ("rlimit_nlimits", 16),
    ("n_tty_buf_size", 4096),
    ("tty_termios_ncc", L::TTY_NCC as u64),
];

/// The LSM name of the container section a kernel built without security
/// modules writes (its `DEFAULT_LSM_NAME`; BUFFER of
/// `CHECKPOINT_LSM_NAME_MAX + 1` bytes, NUL padded).
pub const LSM_NAME: &[u8] = b"lsm_none";
/// The LSM name ckpt wrote before it was checked against the kernel source
/// (images of issue 20); read as [`LSM_NAME`].
pub const LSM_NAME_OLD: &[u8] = b"none";
/// The LSM_INFO payload written with [`LSM_NAME`]: the kernel's dummy LSM
/// info, 5 bytes without a NUL (a restart without an LSM reads past it).
pub const LSM_INFO: &[u8] = b"dummy";

/// `ckpt_hdr_utsns` strings ckpt writes (the model carries no uts namespace):
/// `sysname`, `nodename` and `domainname` (the kernel's defaults for a new uts
/// namespace); `release`, `version`, `machine` are the header's.
pub const UTS_SYSNAME: &[u8] = b"Linux";
/// See [`UTS_SYSNAME`].
pub const UTS_NODENAME: &[u8] = b"(none)";
/// See [`UTS_SYSNAME`].
pub const UTS_DOMAINNAME: &[u8] = b"(none)";

/// `ckpt_hdr_ipcns` limits ckpt writes: the defaults of a 2.6.33 kernel
/// (SHMMAX, SHMALL, SHMMNI, MSGMAX, MSGMNB, MSGMNI, SEMMSL, SEMMNS, SEMOPM,
/// SEMMNI); an IPC namespace with no shm, msg or sem objects.
pub const IPC_LIMITS: [(&str, u64); 10] = [
    ("shm_ctlmax", 0x200_0000),
    ("shm_ctlall", 0x200_0000 / 4096 * (4096 / 16)),
    ("shm_ctlmni", 4096),
    ("msg_ctlmax", 8192),
    ("msg_ctlmnb", 16384),
    ("msg_ctlmni", 16),
    ("sem_ctl_msl", 250),
    ("sem_ctl_mns", 32000),
    ("sem_ctl_opm", 32),
    ("sem_ctl_mni", 128),
];

/// The three IPC sections of an IPC_NS, in order.
pub const IPC_SECTIONS: [&str; 3] = ["IPC_SHM", "IPC_MSG", "IPC_SEM"];

/// Object types of the namespace records (kept together as records when not
/// the ones ckpt writes).
pub(crate) const NS_OBJS: [&str; 5] = ["NS", "UTS_NS", "IPC_NS", "MNT_NS", "NET_NS"];

/// The UTS_NS record ckpt writes for `k` (header fields included).
pub fn uts_record(k: &Kernel) -> Vec<u8> {
    let st = T.st("UTS_NS");
    let mut b = st.zeroed();
    st.put(&mut b, "h.type", code("UTS_NS") as u64);
    st.put(&mut b, "h.len", st.size as u64);
    let cut = |v: &[u8]| v[..v.len().min(L::NEW_UTS_LEN)].to_vec();
    for (n, v) in [
        ("sysname", UTS_SYSNAME),
        ("nodename", UTS_NODENAME),
        ("release", &k.release[..]),
        ("version", &k.version[..]),
        ("machine", &k.machine[..]),
        ("domainname", UTS_DOMAINNAME),
    ] {
        st.put_bytes(&mut b, n, &cut(v));
    }
    b
}

/// The IPC_NS record ckpt writes (header fields included).
pub fn ipc_ns_record() -> Vec<u8> {
    let st = T.st("IPC_NS");
    let mut b = st.zeroed();
    st.put(&mut b, "h.type", code("IPC_NS") as u64);
    st.put(&mut b, "h.len", st.size as u64);
    for (n, v) in IPC_LIMITS {
        st.put(&mut b, n, v);
    }
    b
}

/// The empty IPC section record of `kind` (`IPC_SHM`, ...).
pub fn ipc_section_record(kind: &str) -> Vec<u8> {
    let st = T.st("IPC");
    let mut b = st.zeroed();
    st.put(&mut b, "h.type", code("IPC") as u64);
    st.put(&mut b, "h.len", st.size as u64);
    st.put(&mut b, "ipc_type", code(kind) as u64);
    b
}

/// The RESTART_BLOCK of a task in no restartable system call.
pub fn restart_block_none() -> Vec<u8> {
    let st = T.st("RESTART_BLOCK");
    let mut b = st.zeroed();
    st.put(&mut b, "h.type", code("RESTART_BLOCK") as u64);
    st.put(&mut b, "h.len", st.size as u64);
    st.put(&mut b, "function_type", L::RESTART_BLOCK_NONE);
    b
}

/// The five objrefs of `ckpt_hdr_task_objs`, in order.
pub(crate) const TASK_OBJS_FIELDS: [(&str, &str); 5] = [
    ("files_objref", "FILE_TABLE"),
    ("mm_objref", "MM"),
    ("fs_objref", "FS"),
    ("sighand_objref", "SIGHAND"),
    ("signal_objref", "SIGNAL"),
];

/// Per-thread fields of `ckpt_hdr_task`: (v21 field, [`Thread`] extra key).
/// Every thread is a v21 task of its own, so these are per thread.
pub(crate) const THREAD_TASK_FIELDS: [(&str, &str); 6] = [
    ("robust_futex_list", "robust_list_head"),
    ("robust_futex_head_len", "robust_list_len"),
    ("clear_child_tid", "clear_child_tid"),
    ("set_child_tid", "set_child_tid"),
    ("compat_robust_futex_list", "compat_robust_futex_list"),
    (
        "compat_robust_futex_head_len",
        "compat_robust_futex_head_len",
    ),
];
/// Task extras the encoder places: `pdeath_signal`, and the per-thread
/// TASK fields under their v21 names (older models kept them on the task).
pub(crate) const TASK_KEYS: [&str; 8] = [
    "pdeath_signal",
    "siginfo_shared",
    "robust_futex_list",
    "robust_futex_head_len",
    "clear_child_tid",
    "set_child_tid",
    "compat_robust_futex_list",
    "compat_robust_futex_head_len",
];
/// Capability sets (capture keys) and their `ckpt_capabilities` fields in CRED.
pub(crate) const CAP_KEYS: [(&str, &str); 4] = [
    ("cap_inh", "cap_i_mask"),
    ("cap_prm", "cap_p_mask"),
    ("cap_eff", "cap_e_mask"),
    ("cap_bnd", "cap_b_mask"),
];
/// Capture keys v21 has no field for; 0 is implied next to the capability sets.
pub(crate) const CAP_ZERO_KEYS: [&str; 3] = ["cap_amb", "no_new_privs", "seccomp_mode"];
/// Thread extras of a thread's own TASK record and its SIGPENDING.
pub(crate) const THREAD_ONLY_KEYS: [&str; 7] = [
    "sigpending",
    "siginfo_pending",
    "task_state",
    "exit_code",
    "exit_signal",
    "pdeath_signal",
    "comm",
];
/// sigaltstack keys of capture: v21 cannot hold them; the disabled stack
/// (sp 0, `SS_DISABLE`, size 0) is implied next to `clear_child_tid`.
pub(crate) const SIGALTSTACK_KEYS: [(&str, u64); 3] = [
    ("sigaltstack_sp", 0),
    ("sigaltstack_flags", 2),
    ("sigaltstack_size", 0),
];

/// File-object fields that have no named place in [`File`], kept when non-zero.
pub(crate) const FILE_EXTRAS: [&str; 3] = ["f_version", "f_credref", "f_secref"];

/// HEADER_ARCH `has_xsave` and `xstate_size` derived from the first FPU area
/// of the image (or 0 and 512 when no thread saved one).
pub fn arch_defaults(first_fpu: Option<(FpuKind, usize)>) -> (u64, u64) {
    match first_fpu {
        Some((k, n)) => ((k == FpuKind::Xsave) as u64, n as u64),
        None => (0, 512),
    }
}
