//! Typed records of files whose contents live only in the image (a deleted file,
//! a memfd, a deleted executable) and of file locks. Part of [`super`]; the codes
//! 0x0447..=0x044d.

use super::{hex, Record};

/// [`FileContents::kind`] of a regular file deleted (unlinked) while open or mapped.
pub const CONTENTS_DELETED: u32 = 1;
/// [`FileContents::kind`] of a memfd (`memfd_create(2)`).
pub const CONTENTS_MEMFD: u32 = 2;
/// Most bytes one [`FileData`] record holds (256 pages).
pub const MAX_FILE_CHUNK: usize = 1 << 20;
/// Most locks one [`FileLocks`] or [`PosixLocks`] record holds.
pub const MAX_LOCKS: u32 = 1 << 16;

/// The file object is an inode whose contents are in the image: restore creates it
/// again (a memfd, or a file created and unlinked again) from its [`FileData`]
/// records. Every other file object, VMA or executable of the same inode refers to it
/// ([`InodeOf`], [`MapContents`], [`ExeContents`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileContents {
    /// `st_size`.
    pub size: u64,
    /// [`CONTENTS_DELETED`] or [`CONTENTS_MEMFD`].
    pub kind: u32,
    /// A memfd's seals (`F_GET_SEALS`: `F_SEAL_SEAL` 1, `SHRINK` 2, `GROW` 4, `WRITE` 8,
    /// `FUTURE_WRITE` 16, `EXEC` 32); 0 for a deleted file.
    pub seals: u32,
}

impl FileContents {
    /// "deleted", "memfd" or the number.
    pub fn kind_name(&self) -> String {
        match self.kind {
            CONTENTS_DELETED => "deleted".into(),
            CONTENTS_MEMFD => "memfd".into(),
            k => k.to_string(),
        }
    }
}

impl Record for FileContents {
    const NAME: &'static str = "file_contents";
    const CODE: u32 = 0x0447;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("size", self.size.to_string()),
            ("kind", self.kind_name()),
            ("seals", hex(self.seals as u64)),
        ]
    }
}

/// A run of the contents of a [`FileContents`] file: `data` at `offset`. Runs are in
/// offset order, never overlap, end inside `size`; bytes in no run are zero (holes and
/// all-zero pages are not stored).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileData {
    /// Offset in the file.
    pub offset: u64,
    /// The bytes (1..=[`MAX_FILE_CHUNK`]).
    pub data: Vec<u8>,
}

impl Record for FileData {
    const NAME: &'static str = "file_data";
    const CODE: u32 = 0x0448;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("offset", hex(self.offset)),
            ("len", self.data.len().to_string()),
        ]
    }
}

/// This open file description is of the inode the file object `file` (with
/// [`FileContents`]) re-creates: restore opens that one again with this one's flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InodeOf {
    /// Id of the file object with the contents.
    pub file: u32,
}

impl Record for InodeOf {
    const NAME: &'static str = "inode_of";
    const CODE: u32 = 0x0449;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("file", self.file.to_string())]
    }
}

/// The VMA maps the inode the file object `file` (with [`FileContents`]) re-creates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapContents {
    /// Id of the file object with the contents.
    pub file: u32,
}

impl Record for MapContents {
    const NAME: &'static str = "map_contents";
    const CODE: u32 = 0x044a;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("file", self.file.to_string())]
    }
}

/// The task's executable (`/proc/PID/exe`) is the inode the file object `file` (with
/// [`FileContents`]) re-creates: it was deleted, or is a memfd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExeContents {
    /// Id of the file object with the contents.
    pub file: u32,
}

impl Record for ExeContents {
    const NAME: &'static str = "exe_contents";
    const CODE: u32 = 0x044b;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("file", self.file.to_string())]
    }
}

/// [`FileLock::kind`]: `flock(2)`.
pub const LOCK_FLOCK: u32 = 1;
/// [`FileLock::kind`]: an open-file-description lock (`F_OFD_SETLK`).
pub const LOCK_OFD: u32 = 2;

fn range(start: u64, len: u64) -> String {
    if len == 0 {
        format!("{start}-EOF")
    } else {
        format!("{start}+{len}")
    }
}

fn access(write: bool) -> &'static str {
    if write {
        "write"
    } else {
        "read"
    }
}

/// One lock held by an open file description.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileLock {
    /// [`LOCK_FLOCK`] or [`LOCK_OFD`].
    pub kind: u32,
    /// Exclusive (write) rather than shared (read).
    pub write: bool,
    /// First byte (OFD locks; 0 for flock).
    pub start: u64,
    /// Length in bytes, 0 = to the end of the file (OFD locks; 0 for flock).
    pub len: u64,
}

/// Locks held by the open file description (`flock` and OFD locks): taken again by
/// the restore before any task runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileLocks {
    /// The locks.
    pub locks: Vec<FileLock>,
}

impl Record for FileLocks {
    const NAME: &'static str = "file_locks";
    const CODE: u32 = 0x044c;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let v: Vec<String> = self
            .locks
            .iter()
            .map(|l| match l.kind {
                LOCK_FLOCK => format!("flock/{}", access(l.write)),
                LOCK_OFD => format!("ofd/{}/{}", access(l.write), range(l.start, l.len)),
                k => format!("{k}/{}/{}", access(l.write), range(l.start, l.len)),
            })
            .collect();
        vec![("locks", format!("[{}]", v.join(" ")))]
    }
}

/// One POSIX (`fcntl(F_SETLK)`) lock of a process, with the fd it was taken through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PosixLock {
    /// The fd (of this task) the lock's file is open on.
    pub fd: i32,
    /// A write lock rather than a read lock.
    pub write: bool,
    /// First byte.
    pub start: u64,
    /// Length in bytes, 0 = to the end of the file.
    pub len: u64,
}

/// The task's POSIX locks: taken again by the restored process itself before it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PosixLocks {
    /// The locks.
    pub locks: Vec<PosixLock>,
}

impl Record for PosixLocks {
    const NAME: &'static str = "posix_locks";
    const CODE: u32 = 0x044d;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let v: Vec<String> = self
            .locks
            .iter()
            .map(|l| format!("fd{}/{}/{}", l.fd, access(l.write), range(l.start, l.len)))
            .collect();
        vec![("locks", format!("[{}]", v.join(" ")))]
    }
}
