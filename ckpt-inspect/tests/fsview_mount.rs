//! `mount` over FUSE (issue 8): list the tree, read values, read `mem` at a
//! captured address and compare with the image, unmount cleanly. Needs root
//! and /dev/fuse (CI runs as root); skips with a message otherwise.

use ckpt_format::build::ImageBuilder;
use ckpt_format::{open_slice, Event};
use ckpt_inspect::fsview::mount::spawn;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

fn can_mount() -> bool {
    nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists()
}

fn mounted(mnt: &Path) -> bool {
    let m = fs::read_to_string("/proc/self/mounts").unwrap();
    let want = mnt.to_str().unwrap();
    m.lines().any(|l| l.split(' ').nth(1) == Some(want))
}

#[test]
fn mount_list_read_compare_unmount() {
    if !can_mount() {
        eprintln!("not root or no /dev/fuse: skipped");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("example.ckpt");
    let bytes = ImageBuilder::example()
        .chunk_pages(1)
        .to_native_bytes()
        .unwrap();
    fs::write(&img, &bytes).unwrap();
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();

    let session = spawn(&img, &mnt).unwrap();
    assert!(mounted(&mnt));

    let mut top: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["files", "header", "order", "pipes", "task-100"]);
    let r = |p: &str| fs::read_to_string(mnt.join(p)).unwrap();
    assert_eq!(r("header/revision"), "native-1\n");
    assert_eq!(r("task-100/comm"), "example\n");
    assert_eq!(r("task-100/threads/100/regs/rip"), "0x401000\n");
    assert_eq!(r("files/1/f_pos"), "1234\n");
    assert_eq!(r("task-100/fds/0/file/path"), "/home/example/data.txt\n");
    assert_eq!(
        fs::read_link(mnt.join("task-100/fds/3/file")).unwrap(),
        Path::new("../../../files/3")
    );
    assert_eq!(
        fs::read(mnt.join("pipes/2/data")).unwrap(),
        b"unread pipe bytes"
    );

    // mem at every captured page equals the image's page contents; holes read zeros.
    let mem = fs::File::open(mnt.join("task-100/mem")).unwrap();
    assert_eq!(mem.metadata().unwrap().len(), 0x7fff_f000_1000);
    let mut src = open_slice(&bytes).unwrap();
    let mut checked = 0;
    while let Some(ev) = src.next_event().unwrap() {
        if let Event::Pages(p) = ev {
            for (i, a) in p.addrs.iter().enumerate() {
                let mut buf = vec![0u8; 4096];
                mem.read_exact_at(&mut buf, a).unwrap();
                assert_eq!(&buf[..], p.page(i, 4096).unwrap(), "page {a:#x}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5);
    // a read straddling a captured page and a hole
    let mut buf = [0xffu8; 32];
    mem.read_exact_at(&mut buf, 0x40_1000 - 16).unwrap();
    assert_eq!(&buf[..16], &[0u8; 16]);
    assert_eq!(&buf[16..23], b"\x0f\x05ckpt!");
    drop(mem);

    // read-only
    assert!(fs::write(mnt.join("files/1/f_pos"), "1\n").is_err());

    session.umount_and_join().unwrap();
    assert!(!mounted(&mnt));
}
