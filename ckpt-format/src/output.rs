//! Output files that never destroy what they are pointed at.
//!
//! Every command that writes an image or another output file (`ckpt-capture -o`,
//! `ckpt-inspect convert`, `implode`, `export-core` ...) opens it with [`Output::create`]:
//!
//! | the path names | what happens |
//! |---|---|
//! | `-` | standard output |
//! | nothing yet, or a regular file | a temporary file `.NAME.ckpt-tmp.PID.N` in the same directory, renamed over the name by [`Output::commit`] (an existing file keeps its permission bits and, for root, its owner); removed if the output is dropped uncommitted |
//! | a FIFO, a character or block device | opened and written through (`O_WRONLY`, no truncation); never replaced |
//! | a socket | refused (a socket cannot be opened by path) |
//! | a directory | refused |
//! | a symbolic link | followed (up to 40 links); the file it names is handled as above, so a link to a regular file has that file replaced and the link kept |
//!
//! A reader of the name never sees a half-written regular file; `/dev/null`, `/dev/full`,
//! a FIFO with a reader or a terminal stay what they are.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Most symbolic links followed before giving up (as the kernel's `ELOOP`).
pub const MAX_LINKS: usize = 40;

/// What [`resolve`] decided to do with an output path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `-`: standard output.
    Stdout,
    /// Write a temporary file next to `dest` and rename it over `dest` (which does not
    /// exist yet or is a regular file; symbolic links already followed).
    Replace {
        /// The path finally written.
        dest: PathBuf,
    },
    /// Write into the existing object at `path` without replacing it.
    Through {
        /// The object (symbolic links already followed).
        path: PathBuf,
        /// What it is: "FIFO", "character device" or "block device".
        kind: &'static str,
    },
}

fn err(kind: io::ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, msg)
}

/// Decide how `path` is written (see the module docs). Errors for a directory, a
/// socket, a loop of symbolic links, or a path without a file name.
pub fn resolve(path: &Path) -> io::Result<Target> {
    if path.as_os_str() == "-" {
        return Ok(Target::Stdout);
    }
    let mut cur = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let md = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if cur.file_name().is_none() {
                    return Err(err(
                        io::ErrorKind::InvalidInput,
                        format!("{}: not a file name", path.display()),
                    ));
                }
                return Ok(Target::Replace { dest: cur });
            }
            Err(e) => return Err(err(e.kind(), format!("{}: {e}", cur.display()))),
        };
        let ft = md.file_type();
        if ft.is_symlink() {
            let to = std::fs::read_link(&cur)
                .map_err(|e| err(e.kind(), format!("{}: {e}", cur.display())))?;
            cur = if to.is_absolute() {
                to
            } else {
                cur.parent().unwrap_or(Path::new(".")).join(to)
            };
            continue;
        }
        if ft.is_file() {
            return Ok(Target::Replace { dest: cur });
        }
        if ft.is_dir() {
            return Err(err(
                io::ErrorKind::IsADirectory,
                format!(
                    "{}: is a directory; give the name of a file to write",
                    cur.display()
                ),
            ));
        }
        let kind = if ft.is_fifo() {
            "FIFO"
        } else if ft.is_char_device() {
            "character device"
        } else if ft.is_block_device() {
            "block device"
        } else {
            return Err(err(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: is a socket; an image cannot be written to a socket by its path (connect to it and use `-o -`)",
                    cur.display()
                ),
            ));
        };
        return Ok(Target::Through { path: cur, kind });
    }
    Err(err(
        io::ErrorKind::InvalidInput,
        format!(
            "{}: more than {MAX_LINKS} symbolic links to follow",
            path.display()
        ),
    ))
}

enum Inner {
    Stdout(io::Stdout),
    Through(File),
    Temp {
        file: File,
        tmp: PathBuf,
        dest: PathBuf,
        committed: bool,
    },
}

/// An output being written; see the module docs. Drop it without [`Output::commit`] to
/// abandon a replacement (the temporary file is removed; the old file stays).
pub struct Output {
    inner: Inner,
    target: Target,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Output {
    /// Open `path` for writing as the module docs say. A FIFO is opened for writing
    /// the usual way (this waits for a reader).
    pub fn create(path: &Path) -> io::Result<Output> {
        let target = resolve(path)?;
        let inner = match &target {
            Target::Stdout => Inner::Stdout(io::stdout()),
            Target::Through { path: p, .. } => {
                let f = OpenOptions::new()
                    .write(true)
                    .open(p)
                    .map_err(|e| err(e.kind(), format!("{}: {e}", p.display())))?;
                Inner::Through(f)
            }
            Target::Replace { dest } => {
                let dir = match dest.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let name = dest.file_name().unwrap_or_default().to_string_lossy();
                let old = std::fs::metadata(dest).ok();
                let mut n = 0;
                let (file, tmp) = loop {
                    let tmp = dir.join(format!(
                        ".{name}.ckpt-tmp.{}.{}",
                        std::process::id(),
                        SEQ.fetch_add(1, Ordering::Relaxed)
                    ));
                    match OpenOptions::new()
                        .write(true)
                        .read(true)
                        .create_new(true)
                        .mode(0o666)
                        .open(&tmp)
                    {
                        Ok(f) => break (f, tmp),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                        Err(e) => {
                            return Err(err(
                                e.kind(),
                                format!("cannot create a file in {}: {e}", dir.display()),
                            ))
                        }
                    }
                };
                if let Some(old) = old {
                    // The replacement keeps what the old file's owner chose.
                    let _ =
                        file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777));
                    let _ = std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()));
                }
                Inner::Temp {
                    file,
                    tmp,
                    dest: dest.clone(),
                    committed: false,
                }
            }
        };
        Ok(Output { inner, target })
    }

    /// What is being written.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The open file (the temporary file of a replacement, or the written-through
    /// object); `None` for standard output.
    pub fn file(&self) -> Option<&File> {
        match &self.inner {
            Inner::Stdout(_) => None,
            Inner::Through(f) | Inner::Temp { file: f, .. } => Some(f),
        }
    }

    /// Finish: flush; a replacement is synced to disk and renamed over its name.
    pub fn commit(mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Stdout(s) => s.flush(),
            Inner::Through(f) => f.flush(),
            Inner::Temp {
                file,
                tmp,
                dest,
                committed,
            } => {
                file.flush()?;
                file.sync_all()
                    .map_err(|e| err(e.kind(), format!("{}: {e}", tmp.display())))?;
                std::fs::rename(&*tmp, &*dest).map_err(|e| {
                    err(
                        e.kind(),
                        format!("rename {} to {}: {e}", tmp.display(), dest.display()),
                    )
                })?;
                *committed = true;
                if let Some(d) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if let Ok(dir) = File::open(d) {
                        let _ = dir.sync_all();
                    }
                }
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Stdout(s) => s.write(buf),
            Inner::Through(f) | Inner::Temp { file: f, .. } => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Stdout(s) => s.flush(),
            Inner::Through(f) | Inner::Temp { file: f, .. } => f.flush(),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Inner::Temp {
            tmp,
            committed: false,
            ..
        } = &self.inner
        {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn write_all(p: &Path, b: &[u8]) -> io::Result<()> {
        let mut o = Output::create(p)?;
        o.write_all(b)?;
        o.commit()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("ckpt-tmp"))
            .collect()
    }

    #[test]
    fn new_and_regular_files_are_replaced_atomically() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        write_all(&p, b"one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        write_all(&p, b"two").unwrap();
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_ne!(md.ino(), ino, "replaced by rename, not rewritten in place");
        assert_eq!(md.mode() & 0o7777, 0o600, "permissions kept");
        // Abandoned: the old contents stay, nothing is left behind.
        let mut o = Output::create(&p).unwrap();
        o.write_all(b"half").unwrap();
        drop(o);
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn a_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = Output::create(d.path()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::IsADirectory);
        assert!(e.to_string().contains("is a directory"), "{e}");
        // also through a symbolic link
        let l = d.path().join("link");
        symlink(d.path(), &l).unwrap();
        assert!(Output::create(&l).is_err());
    }

    #[test]
    fn a_symlink_is_followed_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::write(&real, b"old").unwrap();
        let l = d.path().join("link");
        symlink("real", &l).unwrap();
        write_all(&l, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&l)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_link(&l).unwrap(), Path::new("real"));
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        // a dangling link creates the file it names
        let l2 = d.path().join("dangling");
        symlink("made", &l2).unwrap();
        write_all(&l2, b"x").unwrap();
        assert_eq!(std::fs::read(d.path().join("made")).unwrap(), b"x");
        assert!(std::fs::symlink_metadata(&l2)
            .unwrap()
            .file_type()
            .is_symlink());
        // a loop is an error, not a hang
        let a = d.path().join("a");
        let b = d.path().join("b");
        symlink("b", &a).unwrap();
        symlink("a", &b).unwrap();
        assert!(Output::create(&a).is_err());
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn a_char_device_is_written_through() {
        let p = Path::new("/dev/null");
        let ino = std::fs::metadata(p).unwrap().ino();
        assert_eq!(
            resolve(p).unwrap(),
            Target::Through {
                path: p.into(),
                kind: "character device"
            }
        );
        write_all(p, b"gone").unwrap();
        let md = std::fs::metadata(p).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.ino(), ino);
        // A device of our own that fails every write (as /dev/full, made with mknod in a
        // temporary directory so a regression cannot replace the machine's): the write
        // fails, the device stays.
        let d = tempfile::tempdir().unwrap();
        let full = d.path().join("full");
        let made = std::process::Command::new("mknod")
            .arg(&full)
            .args(["c", "1", "7"])
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            assert!(
                std::env::var_os("CI").is_none(),
                "mknod failed (root needed)"
            );
            eprintln!("skipped the mknod part: not root");
            return;
        }
        assert!(write_all(&full, &[1u8; 8192]).is_err());
        let md = std::fs::symlink_metadata(&full).unwrap();
        assert!(md.file_type().is_char_device());
        assert_eq!(md.rdev(), libc_makedev(1, 7));
        assert!(leftovers(d.path()).is_empty());
    }

    fn libc_makedev(major: u64, minor: u64) -> u64 {
        ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
    }

    #[test]
    fn a_fifo_with_a_reader_is_written_through() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&f)
            .status()
            .unwrap();
        assert!(st.success());
        let f2 = f.clone();
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            File::open(&f2).unwrap().read_to_end(&mut v).unwrap();
            v
        });
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        write_all(&f, &data).unwrap();
        assert_eq!(reader.join().unwrap(), data);
        assert!(std::fs::symlink_metadata(&f).unwrap().file_type().is_fifo());
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn a_socket_is_refused_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("sock");
        let _l = std::os::unix::net::UnixListener::bind(&s).unwrap();
        assert!(Output::create(&s).is_err());
        assert!(std::fs::symlink_metadata(&s)
            .unwrap()
            .file_type()
            .is_socket());
    }
}
