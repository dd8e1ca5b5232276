//! `timers::read` against a real process holding interval and POSIX timers.

use ckpt_sys::freeze::{Frozen, Release};
use ckpt_sys::inject::Injector;
use ckpt_sys::{attrs::Notify, timers};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const PROG: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    signal(SIGALRM, SIG_IGN);
    signal(SIGPROF, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    struct itimerval real = {{2, 500}, {100, 0}}, prof = {{0, 0}, {50, 0}};
    if (setitimer(ITIMER_REAL, &real, NULL) || setitimer(ITIMER_PROF, &prof, NULL)) return 1;
    struct sigevent se;
    memset(&se, 0, sizeof se);
    se.sigev_notify = SIGEV_SIGNAL;
    se.sigev_signo = SIGUSR1;
    se.sigev_value.sival_ptr = (void *)0x5eed;
    timer_t a, b;
    struct itimerspec its = {{3, 0}, {1000, 0}};
    if (timer_create(CLOCK_MONOTONIC, &se, &a) || timer_settime(a, 0, &its, NULL)) return 1;
    se.sigev_notify = SIGEV_NONE;
    if (timer_create(CLOCK_REALTIME, &se, &b)) return 1;
    printf("ready\n");
    fflush(stdout);
    for (;;) pause();
}
"#;

#[test]
fn interval_and_posix_timers_with_their_time_left() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("t.c");
    std::fs::write(&src, PROG).unwrap();
    let exe = dir.path().join("t");
    let st = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    let mut child = Command::new(&exe).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pid = child.id() as i32;
    let mut f = Frozen::freeze(pid).unwrap();
    let mut inj = Injector::new(pid).unwrap();
    let scratch = inj.mmap_scratch(4096).unwrap();
    let t = timers::read(&mut inj, pid, scratch).unwrap();
    assert_eq!(inj.syscall(libc::SYS_munmap, &[scratch, 4096]).unwrap(), 0);
    inj.finish().unwrap();
    f.release(Release::Run).unwrap();

    let [real, virt, prof] = t.itimers;
    assert_eq!(real.interval, (2, 500));
    assert!(
        real.armed() && (90..=100).contains(&real.value.0),
        "{real:?}"
    );
    assert!(!virt.armed());
    assert!(prof.armed() && prof.value.0 <= 50, "{prof:?}");
    assert_eq!(t.posix.len(), 2);
    let (a, b) = (&t.posix[0], &t.posix[1]);
    assert_eq!(
        (a.timer.clock, a.timer.notify, a.timer.signo),
        (1, Notify::Signal, libc::SIGUSR1)
    );
    assert_eq!(a.timer.value, 0x5eed);
    assert_eq!(a.interval, (3, 0));
    assert!((990..=1000).contains(&a.value.0), "{a:?}");
    assert_eq!(a.overrun, 0);
    assert_eq!((b.timer.clock, b.timer.notify), (0, Notify::None));
    assert_eq!((b.value, b.interval), ((0, 0), (0, 0)));
    assert!(b.timer.id > a.timer.id);
    // Still running, timers untouched (the same ids listed).
    assert_eq!(ckpt_sys::attrs::posix_timers(pid).unwrap().len(), 2);
    child.kill().unwrap();
    child.wait().unwrap();
}
