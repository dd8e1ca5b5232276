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
    ("tty_termios_ncc", 19),
];

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
pub(crate) const TASK_KEYS: [&str; 7] = [
    "pdeath_signal",
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
pub(crate) const THREAD_ONLY_KEYS: [&str; 6] = [
    "sigpending",
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
