//! A real CRIU 4.1.1 dump (scripts/build-criu.sh) converted to native-1 by ckpt-criu and
//! restored by ckpt-restore: the process (a python loop) continues where CRIU stopped it.

mod common;

#[path = "../../ckpt-criu/tests/common/mod.rs"]
mod criu_common;

use common::{restore_all, Procs};
use std::path::Path;
use std::time::Duration;

fn counter(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_converted_criu_dump_of_a_python_loop_continues() {
    let Some((criu, _)) = criu_common::criu() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("count");
    // One process, no children (a shell's `sleep` children take pids a restore of the tree
    // would need back).
    let script = format!(
        "import os, time\ni = 0\nwhile True:\n    i += 1\n    open('{0}.t', 'w').write(str(i))\n    os.rename('{0}.t', '{0}')\n    time.sleep(0.05)\n",
        out.display()
    );
    let w = criu_common::Workload::start(&["/usr/bin/python3", "-c", &script]);
    criu_common::wait_for("the loop to count", || counter(&out) >= 3);
    let dir = tmp.path().join("dump");
    criu_common::dump(&criu, w.pid, &dir, &[]);
    let at_dump = counter(&out);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&out), at_dump, "the dump stopped the loop");

    // CRIU dump → native-1.
    let img = ckpt_criu::CriuImage::open(&dir).unwrap();
    let mut dec = ckpt_criu::Decoder::new(&img).unwrap();
    let native = tmp.path().join("loop.img");
    {
        let f = std::fs::File::create(&native).unwrap();
        let mut enc = ckpt_format::native::Encoder::new(std::io::BufWriter::new(f));
        ckpt_format::pump(&mut dec, &mut enc).unwrap();
    }
    assert!(dec.losses().is_empty(), "{:?}", dec.losses());
    drop(w); // reap the dumped (killed) process so that its pid is free

    let pids = restore_all(&native, &[]);
    let _guard = Procs(pids.clone());
    assert_eq!(pids.len(), tree_len(&img), "one pid per dumped task");
    criu_common::wait_for("the restored loop to count on", || {
        counter(&out) >= at_dump + 5
    });
    // It counts on from where it was, not from 1.
    assert!(counter(&out) > at_dump);
}

fn tree_len(img: &ckpt_criu::CriuImage) -> usize {
    let b = img.file("pstree.img").unwrap();
    let t: Vec<ckpt_criu::pb::PstreeEntry> = ckpt_criu::ImageFile::new("pstree.img", b)
        .unwrap()
        .all()
        .unwrap();
    t.len()
}
