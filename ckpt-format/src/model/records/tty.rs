//! Typed records of terminals and job control (codes 0x0470-0x047f): the state of a
//! pseudo-terminal an open file refers to; the signal that stopped a task.

use super::{hex, Record};

/// Size of `struct termios2` (x86-64).
pub const TERMIOS2_LEN: usize = 44;

/// A pseudo-terminal end (`/dev/ptmx` master or `/dev/pts/N` slave) with the state of
/// its terminal: line settings, window size, the session it controls and its foreground
/// process group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tty {
    /// True for the master end.
    pub master: bool,
    /// The pty number (`N` of `/dev/pts/N`).
    pub index: i32,
    /// The session it is the controlling terminal of (0: none).
    pub sid: i32,
    /// Its foreground process group (0: none).
    pub pgrp: i32,
    /// `ws_row`, `ws_col`, `ws_xpixel`, `ws_ypixel`.
    pub winsize: [u16; 4],
    /// `struct termios2` as `TCGETS2` gives it (c_iflag, c_oflag, c_cflag, c_lflag u32,
    /// c_line u8, c_cc\[19\], c_ispeed, c_ospeed u32): [`TERMIOS2_LEN`] bytes (kept on
    /// the heap: a File event stays small).
    pub termios: Vec<u8>,
}

impl Tty {
    fn word(&self, i: usize) -> u32 {
        self.termios
            .get(i * 4..i * 4 + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl Record for Tty {
    const NAME: &'static str = "tty";
    const CODE: u32 = 0x0470;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("end", if self.master { "master" } else { "slave" }.into()),
            ("index", self.index.to_string()),
            ("sid", self.sid.to_string()),
            ("pgrp", self.pgrp.to_string()),
            (
                "winsize",
                format!("{}x{}", self.winsize[0], self.winsize[1]),
            ),
            ("iflag", hex(self.word(0) as u64)),
            ("oflag", hex(self.word(1) as u64)),
            ("cflag", hex(self.word(2) as u64)),
            ("lflag", hex(self.word(3) as u64)),
        ]
    }
}

/// The signal that stopped a task captured in the stopped state (`T`, job control):
/// `SIGSTOP`, `SIGTSTP` (^Z), `SIGTTIN` or `SIGTTOU`, as its parent's `waitpid` reports it
/// (a shell's `jobs` shows "Stopped" for `SIGTSTP`, "Stopped (signal)" for `SIGSTOP`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct JobStop {
    /// The signal number.
    pub sig: u32,
}

impl Record for JobStop {
    const NAME: &'static str = "job_stop";
    const CODE: u32 = 0x0471;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("sig", self.sig.to_string())]
    }
}

/// A boxed record is the record (FileRecords keeps its larger records boxed).
impl<R: Record> Record for Box<R> {
    const NAME: &'static str = R::NAME;
    const CODE: u32 = R::CODE;
    fn fields(&self) -> Vec<(&'static str, String)> {
        (**self).fields()
    }
}
