//! The `ckpt-v21` revision: Linux-CR v21 (2010), fully framed `ckpt_hdr`, x86-64.
//!
//! ```text
//! record := ckpt_hdr{u32 type; u32 len (header included)} payload[len - 8]
//! image  := HEADER BUFFER(release) BUFFER(version) BUFFER(machine) HEADER_ARCH
//!           CONTAINER BUFFER(lsm name) LSM_INFO
//!           TREE BUFFER(ckpt_pids[nr_tasks]) task* TAIL
//! task   := TASK STRING(comm)                              (zombies stop here)
//!           THREAD(+TLS) RESTART_BLOCK CPU [CPU_FPU]
//!           cred objects TASK_CREDS  namespace objects TASK_NS
//!           [OBJREF FILE FILE_NAME] OBJREF(MM) MM BUFFER(auxv)
//!              ( [OBJREF FILE FILE_NAME] VMA chunk* PGARR(0) )* MM_CONTEXT MM_CONTEXT_LDT
//!           [OBJREF(FS) FS FILE_NAME FILE_NAME] [OBJREF(SIGHAND) SIGHAND]
//!           [OBJREF(SIGNAL) SIGNAL SIGPENDING]
//!           OBJREF(FILE_TABLE) FILE_TABLE ( [OBJREF FILE (FILE_NAME | PIPE_BUF)] FILE_DESC )*
//!           TASK_OBJS SIGNAL_TASK SIGPENDING
//!           thread*                    (each further thread of the task, a v21 task of its own)
//! thread := TASK STRING THREAD RESTART_BLOCK CPU [CPU_FPU] TASK_CREDS TASK_NS TASK_OBJS
//!           SIGNAL_TASK SIGPENDING
//! chunk  := PGARR(n) BUFFER(n x u64 vaddrs, n x 4096 pages)
//! ```
//!
//! That is the order a v21 kernel writes and its restart reads
//! (docs/V21-STREAM.md). The decoder also reads images without the container
//! section, restart blocks, task namespaces and SIGPENDING records (as ckpt
//! wrote them before), and drops those records when they are the ones ckpt
//! writes.
//!
//! Objects may come in any order before the record naming them. ERROR
//! records (+ STRING) may appear anywhere; records this codec does not model
//! (another LSM, other namespaces, itimers, sockets, ttys, ...) become
//! [`Event::Unknown`] and are written back verbatim. See docs/CONVERT.md "ckpt-v21: threads,
//! credentials, fs and signals". Layouts and codes come
//! from [`crate::layout::v21`]; [`Framer`] is the one framing function.
//!
//! Files: `frame` (record header, framing), `decode` (records to events:
//! `step` the record loop, `objects` OBJREF/FILE/VMA), `encode` (events to
//! records: `task`, `memory`, `files`), `tables` (constants and keys both share);
//! the table of record kinds and their layouts is [`crate::layout::v21`].

use crate::error::{Error, ErrorKind, Result};
use crate::input::{Input, SliceInput};
use crate::layout::derive;
use crate::layout::v21::{self as L, TABLE as T};
use crate::model::*;
use crate::stream::{EventSource, RawRecord, ReadOptions, RecordSource};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};

const PAGE: u64 = 4096;
const HDR: u64 = L::HDR_LEN as u64;
/// Pages per chunk the encoder writes (bounded below the kernel's batch so that
/// stream readers stay small).
const CHUNK_PAGES: usize = 1024;

fn code(name: &str) -> u32 {
    T.code(name)
}

pub(crate) mod anon;
mod decode;
mod encode;
mod frame;
pub(crate) mod kept;
mod siginfo;
mod tables;

pub use crate::legacy::kept_objref;
pub use decode::{
    open_slice, open_stream, open_stream_with_threads, scan_threads, Decoder, ThreadTable,
};
pub use encode::{encoder, Codec, Encoder};
pub use frame::{Framer, Hdr, Records};
pub(crate) use tables::*;
pub use tables::{arch_defaults, CONSTANTS};

/// Framing-layer records of a ckpt-v21 image in a slice (`ckpt-inspect records`).
pub fn open_records(b: &[u8]) -> Box<dyn RecordSource + '_> {
    Box::new(Records::new(SliceInput::new(b)))
}
