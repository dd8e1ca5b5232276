//! Issue 15 point 7: `ckpt-restore -` reads a stream in bounded memory (it used to read
//! everything into memory: 2.2 GB from /dev/zero) and stops at once on input that is
//! not an image; a real image through a pipe restores like the file.
mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Wait for `pid` (spawned by `Command`, not waited through `Child`), with its peak RSS
/// in KiB; kills it after `limit` and panics (an endless read is a failure, not a hang).
fn wait_rusage(pid: i32, limit: Duration) -> (i32, i64) {
    let t0 = Instant::now();
    loop {
        let mut st = 0;
        // SAFETY: zeroed rusage is a valid out value; st is a valid out pointer.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: plain wait4 on our own child with valid out pointers.
        let r = unsafe { libc::wait4(pid, &mut st, libc::WNOHANG, &mut ru) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            let code = if libc::WIFEXITED(st) {
                libc::WEXITSTATUS(st)
            } else {
                128 + libc::WTERMSIG(st)
            };
            return (code, ru.ru_maxrss);
        }
        if t0.elapsed() > limit {
            // SAFETY: plain syscalls on our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut st, 0);
            }
            panic!("ckpt-restore {pid} still reading after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Run `ckpt-restore ARGS -` with `feed` writing its stdin (errors such as EPIPE once
/// the restorer stopped reading are expected); returns (exit code, peak RSS KiB, stderr).
fn restore_fed(
    args: &[&str],
    feed: impl FnOnce(&mut dyn Write) + Send + 'static,
) -> (i32, i64, String, String) {
    build_progs();
    let dir = tempfile::tempdir().unwrap();
    let errf = dir.path().join("err");
    let outf = dir.path().join("out");
    #[allow(clippy::zombie_processes)] // reaped by wait4 in wait_rusage
    let mut c = Command::new(env!("CARGO_BIN_EXE_ckpt-restore"))
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&outf).unwrap())
        .stderr(std::fs::File::create(&errf).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let t = std::thread::spawn(move || feed(&mut stdin));
    let (code, rss) = wait_rusage(c.id() as i32, Duration::from_secs(60));
    let _ = t.join();
    (
        code,
        rss,
        std::fs::read_to_string(&outf).unwrap(),
        std::fs::read_to_string(&errf).unwrap(),
    )
}

fn endless(byte: Option<u8>) -> impl FnOnce(&mut dyn Write) + Send + 'static {
    move |w| {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match byte {
                Some(b) => buf.fill(b),
                None => {
                    for c in buf.chunks_mut(8) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        c.copy_from_slice(&x.to_le_bytes());
                    }
                }
            }
            if w.write_all(&buf).is_err() {
                return;
            }
        }
    }
}

/// Peak RSS allowed for refusing a non-image (KiB): the binary itself is a few MiB.
const SMALL_KIB: i64 = 32 << 10;

#[test]
fn non_images_on_stdin_are_refused_at_once_in_bounded_memory() {
    // Endless zeros (as `ckpt-restore - </dev/zero`).
    let (code, rss, out, err) = restore_fed(&[], endless(Some(0)));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a checkpoint image"), "{err}");
    assert!(out.is_empty());
    assert!(rss < SMALL_KIB, "peak RSS {rss} KiB");
    eprintln!("endless zeros: refused, peak RSS {rss} KiB");
    // Endless random bytes.
    let (code, rss, _, err) = restore_fed(&[], endless(None));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a checkpoint image"), "{err}");
    assert!(rss < SMALL_KIB, "peak RSS {rss} KiB");
    eprintln!("endless random bytes: refused, peak RSS {rss} KiB");
    // The first 64 KiB of a real image, then endless zeros: a broken record, at once.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.out");
    let pid = spawn("restore_counter", &["100000", "1"], &out, dir.path());
    let _procs = Procs(vec![pid]);
    wait_lines(&out, 3);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    let head = std::fs::read(&img).unwrap()[..65536].to_vec();
    let (code, rss, _, err) = restore_fed(&[], move |w| {
        if w.write_all(&head).is_ok() {
            endless(Some(0))(w)
        }
    });
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("broken image"), "{err}");
    assert!(rss < SMALL_KIB, "peak RSS {rss} KiB");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "a process was created"
    );
}

#[test]
fn an_image_through_a_pipe_restores_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300", "64"];
    let want = reference("restore_counter", &args, dir.path());
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_counter", &args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 40);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    let bytes = std::fs::read(&img).unwrap();
    let n = bytes.len();
    let (code, rss, stdout, err) = restore_fed(&["--pid-same"], move |w| {
        let _ = w.write_all(&bytes);
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.trim().parse::<i32>().unwrap(), pid);
    eprintln!("{n}-byte image through a pipe: peak RSS {rss} KiB");
    assert_eq!(wait_exit(pid, Duration::from_secs(120)), 0);
    procs.0.clear();
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

/// The exit-code table of every ckpt binary, in `--help`; a missing image is exit 3.
#[test]
fn help_table_and_a_missing_image() {
    let o = Command::new(env!("CARGO_BIN_EXE_ckpt-restore"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains(ckpt_format::exit::HELP));
    let (code, _, err) = run_restore(&["/nonexistent/ckpt-image"]);
    assert_eq!(code, ckpt_format::exit::ENVIRONMENT, "{err}");
    assert!(err.contains("/nonexistent/ckpt-image"), "{err}");
}
