//! `cr-v5` tables: Linux-CR RFC v5/v6 (September–October 2008), era A, x86-32.
//!
//! Research: linux-cr-format.md §3.1 (framing), §3.2 (type codes, v5/v6
//! column), §3.4–3.5 (payload structs), §3.6 (memory chunks). Offsets are
//! within the payload: the 8-byte `cr_hdr` is not part of these structs.

use super::Ty::*;
use super::{f, Framing, Struct, Table};

/// `CR_VERSION` written by v5/v6 (bumped to 2 by the files patch).
pub const CR_VERSION: u16 = 2;
/// `TASK_COMM_LEN`.
pub const TASK_COMM_LEN: usize = 16;
/// Size of the `cr_hdr` pre-header.
pub const HDR_LEN: usize = 8;
/// Size of each utsname string in the head (`__NEW_UTS_LEN`).
pub const UTS_LEN: usize = 64;
/// `CR_VMA_ANON`.
pub const VMA_ANON: u32 = 1;
/// `CR_VMA_FILE`.
pub const VMA_FILE: u32 = 2;
/// `CR_FD_FILE`.
pub const FD_FILE: u16 = 1;
/// `CR_FD_DIR`.
pub const FD_DIR: u16 = 2;
/// `CR_FD_LINK` (v6–v10).
pub const FD_LINK: u16 = 3;
/// Pages per PGARR chunk the encoder writes (the kernel limit, `CR_PGARR_CHUNK`, is 4096 on i386).
pub const PGARR_CHUNK: usize = 1024;

/// The cr-v5 table.
pub static TABLE: Table = Table {
    revision: "cr-v5",
    framing: Framing::CrHdr,
    types: &[
        (1, "HEAD"),
        (2, "STRING"),
        (3, "FNAME"),
        (101, "TASK"),
        (102, "THREAD"),
        (103, "CPU"),
        (201, "MM"),
        (202, "VMA"),
        (203, "PGARR"),
        (204, "MM_CONTEXT"),
        (301, "FILES"),
        (302, "FD_ENT"),
        (303, "FD_DATA"),
        (5001, "TAIL"),
    ],
    objs: &[],
    structs: &[
        Struct {
            name: "HDR",
            c_name: "cr_hdr",
            size: 8,
            fields: &[
                f("type", 0, 2, S16),
                f("len", 2, 2, S16),
                f("parent", 4, 4, U32),
            ],
            trailer: "payload of `len` bytes (header excluded)",
        },
        Struct {
            name: "HEAD",
            c_name: "cr_hdr_head",
            size: 224,
            fields: &[
                f("magic", 0, 8, U64),
                f("major", 8, 2, U16),
                f("minor", 10, 2, U16),
                f("patch", 12, 2, U16),
                f("rev", 14, 2, U16),
                f("time", 16, 8, U64),
                f("flags", 24, 8, U64),
                f("release", 32, 64, Bytes),
                f("version", 96, 64, Bytes),
                f("machine", 160, 64, Bytes),
            ],
            trailer: "",
        },
        Struct {
            name: "TASK",
            c_name: "cr_hdr_task",
            size: 24,
            fields: &[
                f("state", 0, 4, U32),
                f("exit_state", 4, 4, U32),
                f("exit_code", 8, 4, U32),
                f("exit_signal", 12, 4, U32),
                f("task_comm_len", 16, 4, S32),
                f("_pad", 20, 4, Pad),
            ],
            trailer: "STRING record: comm, task_comm_len bytes",
        },
        Struct {
            name: "MM",
            c_name: "cr_hdr_mm",
            size: 96,
            fields: &[
                f("objref", 0, 4, U32),
                f("map_count", 4, 4, U32),
                f("start_code", 8, 8, U64),
                f("end_code", 16, 8, U64),
                f("start_data", 24, 8, U64),
                f("end_data", 32, 8, U64),
                f("start_brk", 40, 8, U64),
                f("brk", 48, 8, U64),
                f("start_stack", 56, 8, U64),
                f("arg_start", 64, 8, U64),
                f("arg_end", 72, 8, U64),
                f("env_start", 80, 8, U64),
                f("env_end", 88, 8, U64),
            ],
            trailer: "map_count x (VMA [FNAME] chunk* PGARR(0)), then MM_CONTEXT",
        },
        Struct {
            name: "VMA",
            c_name: "cr_hdr_vma",
            size: 48,
            fields: &[
                f("vma_type", 0, 4, U32),
                f("_padding", 4, 4, Pad),
                f("vm_start", 8, 8, U64),
                f("vm_end", 16, 8, U64),
                f("vm_page_prot", 24, 8, U64),
                f("vm_flags", 32, 8, U64),
                f("vm_pgoff", 40, 8, U64),
            ],
            trailer: "FNAME record when vma_type = CR_VMA_FILE",
        },
        Struct {
            name: "PGARR",
            c_name: "cr_hdr_pgarr",
            size: 8,
            fields: &[f("nr_pages", 0, 8, U64)],
            trailer: "raw: nr_pages x u32 vaddrs, then nr_pages x 4096-byte pages",
        },
        Struct {
            name: "MM_CONTEXT",
            c_name: "cr_hdr_mm_context",
            size: 8,
            fields: &[
                f("ldt_entry_size", 0, 2, S16),
                f("nldt", 2, 2, S16),
                f("_pad", 4, 4, Pad),
            ],
            trailer: "raw: nldt x ldt_entry_size bytes (struct desc_struct[])",
        },
        Struct {
            name: "FILES",
            c_name: "cr_hdr_files",
            size: 8,
            fields: &[f("objref", 0, 4, U32), f("nfds", 4, 4, U32)],
            trailer: "nfds x (FD_ENT [FD_DATA FNAME])",
        },
        Struct {
            name: "FD_ENT",
            c_name: "cr_hdr_fd_ent",
            size: 16,
            fields: &[
                f("objref", 0, 4, U32),
                f("fd", 4, 4, S32),
                f("close_on_exec", 8, 4, U32),
                f("_pad", 12, 4, Pad),
            ],
            trailer: "FD_DATA + FNAME on the first sight of objref",
        },
        Struct {
            name: "FD_DATA",
            c_name: "cr_hdr_fd_data",
            size: 24,
            fields: &[
                f("fd_type", 0, 2, U16),
                f("f_mode", 2, 2, U16),
                f("f_flags", 4, 4, U32),
                f("f_pos", 8, 8, U64),
                f("f_version", 16, 8, U64),
            ],
            trailer: "FNAME record (len includes the NUL); cr_hdr.parent = objref",
        },
        Struct {
            name: "THREAD",
            c_name: "cr_hdr_thread",
            size: 8,
            fields: &[
                f("gdt_entry_tls_entries", 0, 2, S16),
                f("sizeof_tls_array", 2, 2, S16),
                f("ntls", 4, 2, S16),
                f("_pad", 6, 2, Pad),
            ],
            trailer: "raw: sizeof_tls_array bytes (thread.tls_array)",
        },
        Struct {
            name: "CPU",
            c_name: "cr_hdr_cpu",
            size: 272,
            fields: &[
                f("r15", 0, 8, U64),
                f("r14", 8, 8, U64),
                f("r13", 16, 8, U64),
                f("r12", 24, 8, U64),
                f("bp", 32, 8, U64),
                f("bx", 40, 8, U64),
                f("r11", 48, 8, U64),
                f("r10", 56, 8, U64),
                f("r9", 64, 8, U64),
                f("r8", 72, 8, U64),
                f("ax", 80, 8, U64),
                f("cx", 88, 8, U64),
                f("dx", 96, 8, U64),
                f("si", 104, 8, U64),
                f("di", 112, 8, U64),
                f("orig_ax", 120, 8, U64),
                f("ip", 128, 8, U64),
                f("cs", 136, 8, U64),
                f("flags", 144, 8, U64),
                f("sp", 152, 8, U64),
                f("ss", 160, 8, U64),
                f("ds", 168, 8, U64),
                f("es", 176, 8, U64),
                f("fs", 184, 8, U64),
                f("gs", 192, 8, U64),
                f("debugreg0", 200, 8, U64),
                f("debugreg1", 208, 8, U64),
                f("debugreg2", 216, 8, U64),
                f("debugreg3", 224, 8, U64),
                f("debugreg4", 232, 8, U64),
                f("debugreg5", 240, 8, U64),
                f("debugreg6", 248, 8, U64),
                f("debugreg7", 256, 8, U64),
                f("uses_debug", 264, 2, U16),
                f("used_math", 266, 2, U16),
                f("has_fxsr", 268, 2, U16),
                f("_padding", 270, 2, Pad),
            ],
            trailer: "xstate: union thread_xstate, len - 272 bytes (inside the payload)",
        },
        Struct {
            name: "TAIL",
            c_name: "cr_hdr_tail",
            size: 8,
            fields: &[f("magic", 0, 8, U64)],
            trailer: "",
        },
    ],
};

/// Register names of the CPU record in wire order, paired with the index in
/// [`crate::model::Regs::to_array`].
pub const CPU_REGS: [(&str, usize); 25] = [
    ("r15", 0),
    ("r14", 1),
    ("r13", 2),
    ("r12", 3),
    ("bp", 4),
    ("bx", 5),
    ("r11", 6),
    ("r10", 7),
    ("r9", 8),
    ("r8", 9),
    ("ax", 10),
    ("cx", 11),
    ("dx", 12),
    ("si", 13),
    ("di", 14),
    ("orig_ax", 15),
    ("ip", 16),
    ("cs", 17),
    ("flags", 18),
    ("sp", 19),
    ("ss", 20),
    ("ds", 23),
    ("es", 24),
    ("fs", 25),
    ("gs", 26),
];
