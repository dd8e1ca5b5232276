//! Writing the image file with `O_DIRECT`, behind the capture (docs/CAPTURE.md, "Writing").
//!
//! A buffered `write` copies every page into the page cache: on this machine kind that copy,
//! with the page-cache allocation and accounting around it, is most of a capture's system
//! time, the same work `cat` does. With `O_DIRECT` the disk reads the bytes straight from our
//! buffers. [`DirectWriter`] collects the encoder's output in block-aligned staging buffers
//! of [`STAGE_BYTES`] and hands each full one to one of [`WRITERS`] threads, which `pwrite`s it
//! at its offset while the capture goes on reading the next pages (reading and writing
//! overlap; two writes in flight keep the disk busier than one). The last, partial block goes
//! through a second, buffered descriptor of the same file. Memory stays bounded by
//! [`STAGES`] buffers.
//!
//! If the file system refuses `O_DIRECT` (at open, or `EINVAL` on the first write: tmpfs,
//! some FUSE file systems), everything goes through the buffered descriptor instead; the
//! bytes written are the same either way.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Bytes per staging buffer (one `pwrite`).
pub const STAGE_BYTES: usize = 4 << 20;
/// Staging buffers (bounds the memory: `STAGES * STAGE_BYTES`).
pub const STAGES: usize = 8;
/// Writer threads (writes in flight).
pub const WRITERS: usize = 4;
/// Alignment of offsets, lengths and buffer addresses for `O_DIRECT`.
const ALIGN: usize = 4096;

/// A block-aligned buffer (an over-allocated `Vec` and the aligned window in it).
struct Stage {
    v: Vec<u8>,
    start: usize,
}

impl Stage {
    fn new() -> Stage {
        let v = vec![0u8; STAGE_BYTES + ALIGN];
        let start = v.as_ptr().align_offset(ALIGN);
        Stage { v, start }
    }
    fn buf(&mut self) -> &mut [u8] {
        &mut self.v[self.start..self.start + STAGE_BYTES]
    }
    fn data(&self, len: usize) -> &[u8] {
        &self.v[self.start..self.start + len]
    }
}

struct Job {
    stage: Stage,
    off: u64,
    len: usize,
}

/// Shared between the writer threads: the first error, and whether `O_DIRECT` was refused.
#[derive(Default)]
struct State {
    err: Option<io::Error>,
    buffered_only: bool,
}

/// An `io::Write` that writes a new file with `O_DIRECT` behind the caller (module docs).
pub struct DirectWriter {
    cur: Option<Stage>,
    fill: usize,
    off: u64,
    jobs: Option<SyncSender<Job>>,
    free: Receiver<Stage>,
    threads: Vec<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
    buffered: Arc<File>,
}

impl DirectWriter {
    /// Write `file` (a new, empty regular file open for writing) with `O_DIRECT`, through a
    /// second open file description of it; `None` when the file system refuses `O_DIRECT`
    /// (the caller then writes `file` the ordinary way).
    pub fn over(file: &File) -> io::Result<Option<DirectWriter>> {
        let direct = match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(DirectWriter::new(direct, Arc::new(file.try_clone()?))))
    }

    fn new(direct: File, buffered: Arc<File>) -> DirectWriter {
        let direct = Arc::new(direct);
        let (job_tx, job_rx) = sync_channel::<Job>(STAGES);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (free_tx, free_rx) = channel::<Stage>();
        for _ in 1..STAGES {
            let _ = free_tx.send(Stage::new());
        }
        let state = Arc::new(Mutex::new(State::default()));
        let threads = (0..WRITERS)
            .map(|_| {
                let (rx, tx, st) = (job_rx.clone(), free_tx.clone(), state.clone());
                let (d, b) = (direct.clone(), buffered.clone());
                std::thread::spawn(move || writer_thread(rx, tx, st, d, b))
            })
            .collect();
        DirectWriter {
            cur: Some(Stage::new()),
            fill: 0,
            off: 0,
            jobs: Some(job_tx),
            free: free_rx,
            threads,
            state,
            buffered,
        }
    }

    fn check(&self) -> io::Result<()> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| io::Error::other("writer panicked"))?;
        match st.err.take() {
            Some(e) => {
                let again = io::Error::new(e.kind(), e.to_string());
                st.err = Some(e);
                Err(again)
            }
            None => Ok(()),
        }
    }

    /// Hand the current (full) stage to a writer thread and take a free one.
    fn submit(&mut self) -> io::Result<()> {
        let stage = self
            .cur
            .take()
            .ok_or_else(|| io::Error::other("no stage"))?;
        let job = Job {
            stage,
            off: self.off,
            len: self.fill,
        };
        self.off += self.fill as u64;
        self.fill = 0;
        let tx = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("writer closed"))?;
        tx.send(job)
            .map_err(|_| io::Error::other("image writer threads stopped"))?;
        let next = self
            .free
            .recv()
            .map_err(|_| io::Error::other("image writer threads stopped"))?;
        self.cur = Some(next);
        self.check()
    }

    /// Write out everything (the last partial block through the buffered descriptor) and
    /// wait for the writer threads. Called by `flush`; writing after it is an error.
    fn close(&mut self) -> io::Result<()> {
        let Some(tx) = self.jobs.take() else {
            return self.check();
        };
        let aligned = self.fill / ALIGN * ALIGN;
        let mut tail: Vec<u8> = Vec::new();
        if let Some(mut stage) = self.cur.take() {
            tail = stage.buf()[aligned..self.fill].to_vec();
            if aligned > 0 {
                let job = Job {
                    stage,
                    off: self.off,
                    len: aligned,
                };
                let _ = tx.send(job);
            }
        }
        let tail_off = self.off + aligned as u64;
        self.off += self.fill as u64;
        self.fill = 0;
        drop(tx);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.check()?;
        if !tail.is_empty() {
            self.buffered.write_all_at(&tail, tail_off)?;
        }
        Ok(())
    }
}

fn writer_thread(
    jobs: Arc<Mutex<Receiver<Job>>>,
    free: Sender<Stage>,
    state: Arc<Mutex<State>>,
    direct: Arc<File>,
    buffered: Arc<File>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let failed = state.lock().map(|s| s.err.is_some()).unwrap_or(true);
        if !failed {
            let data = job.stage.data(job.len);
            let only_buffered = state.lock().map(|s| s.buffered_only).unwrap_or(true);
            let mut r = if only_buffered {
                buffered.write_all_at(data, job.off)
            } else {
                direct.write_all_at(data, job.off)
            };
            if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) && !only_buffered {
                // The file system took the O_DIRECT open but not the write.
                if let Ok(mut s) = state.lock() {
                    s.buffered_only = true;
                }
                r = buffered.write_all_at(data, job.off);
            }
            if let Err(e) = r {
                if let Ok(mut s) = state.lock() {
                    s.err.get_or_insert(e);
                }
            }
        }
        if free.send(job.stage).is_err() {
            return;
        }
    }
}

impl Write for DirectWriter {
    fn write(&mut self, mut b: &[u8]) -> io::Result<usize> {
        if self.jobs.is_none() {
            return Err(io::Error::other("write after the image was closed"));
        }
        let n = b.len();
        while !b.is_empty() {
            let fill = self.fill;
            let stage = self
                .cur
                .as_mut()
                .ok_or_else(|| io::Error::other("no stage"))?;
            let k = b.len().min(STAGE_BYTES - fill);
            stage.buf()[fill..fill + k].copy_from_slice(&b[..k]);
            self.fill += k;
            b = &b[k..];
            if self.fill == STAGE_BYTES {
                self.submit()?;
            }
        }
        Ok(n)
    }

    /// Completes the file: nothing may be written after a flush.
    fn flush(&mut self) -> io::Result<()> {
        self.close()
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    /// Every size around the stage and block boundaries, written in uneven pieces, reads
    /// back byte for byte (whichever path the file system under the temp dir takes).
    #[test]
    fn writes_exactly_the_bytes_given() {
        let dir = tempfile::tempdir().unwrap();
        for (i, &len) in [
            0usize,
            1,
            4095,
            4096,
            4097,
            STAGE_BYTES - 1,
            STAGE_BYTES,
            STAGE_BYTES + 24,
            3 * STAGE_BYTES + 12345,
            9 * STAGE_BYTES + 8,
        ]
        .iter()
        .enumerate()
        {
            let p = dir.path().join(format!("f{i}"));
            let data = pattern(len);
            let f = std::fs::File::create_new(&p).unwrap();
            let Some(mut w) = DirectWriter::over(&f).unwrap() else {
                // No O_DIRECT on this file system: capture_to_path writes the ordinary way.
                assert!(std::env::var_os("CI").is_none(), "O_DIRECT refused in CI");
                return;
            };
            let mut pos = 0;
            let mut step = 1;
            while pos < len {
                let k = step.min(len - pos);
                w.write_all(&data[pos..pos + k]).unwrap();
                pos += k;
                step = step * 3 + 1000;
            }
            w.flush().unwrap();
            drop(w);
            assert_eq!(std::fs::read(&p).unwrap(), data, "length {len}");
        }
    }

    #[test]
    fn writing_after_the_flush_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y");
        let f = std::fs::File::create_new(&p).unwrap();
        let Some(mut w) = DirectWriter::over(&f).unwrap() else {
            assert!(std::env::var_os("CI").is_none(), "O_DIRECT refused in CI");
            return;
        };
        w.write_all(b"abc").unwrap();
        w.flush().unwrap();
        assert!(w.write_all(b"d").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
    }
}
