//! `check`: would `ckpt-restore` restore this image on this machine, as this caller?
//!
//! The same check `ckpt-restore` runs before creating anything and `ckpt-capture
//! --kill` runs before killing ([`ckpt_restore::check::restorable`]): the image's own
//! problems (unsupported objects, every one named), the machine (CPU state, kernel
//! facilities, vdso), the caller (capabilities, credentials), the process tree, and the
//! files it would open. Page contents are not kept (but the vdso's), so memory stays
//! small on any image, from a file or a pipe.

use crate::source::Image;
use crate::{Failure, Result};
use ckpt_format::ReadOptions;
use ckpt_restore::plan::Collector;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// What `check` found (`check --json`).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// True when `ckpt-restore` would restore the image here.
    pub restorable: bool,
    /// Every reason it would not, one each.
    pub reasons: Vec<String>,
    /// What the image records without its state (`--allow-unsupported`): a restore goes
    /// without these.
    pub left_out: Vec<String>,
    /// What a restore here adapts instead of restoring as captured: this kernel's vdso
    /// remapped in place of an identical one ([`ckpt_restore::check::vdso_in_place`]), a
    /// vdso of another kernel build proxied, XSAVE areas laid out for this kernel
    /// ([`ckpt_restore::check::adaptations`]).
    pub adapted: Vec<String>,
}

/// Check `img` (see the module docs). Paths are resolved under `root`.
pub fn check(img: &mut Image, root: &Path) -> CheckReport {
    let (mut src, _) = match img.events(ReadOptions {
        check_page_data: true,
    }) {
        Ok(x) => x,
        Err(e) => return not(format!("broken image: {e}")),
    };
    let mut c = Collector::for_checks();
    loop {
        let off = src.offset();
        match src.next_event() {
            Ok(Some(ev)) => {
                if let Err(e) = c.push(off, ev, None) {
                    return not(e.0);
                }
            }
            Ok(None) => break,
            Err(e) => return not(format!("broken image: {e}")),
        }
    }
    drop(src);
    report(c, root)
}

/// The report of everything `c` was given (see the module docs).
pub fn report(c: Collector, root: &Path) -> CheckReport {
    let plan = match c.finish_unchecked() {
        Ok(p) => p,
        Err(e) => return not(e.0),
    };
    let mut reasons = ckpt_restore::check::restorable(&plan, &[], root);
    // A restore now (default pid mode) also needs the children's pids free.
    if let Err(e) = ckpt_restore::check::child_pids_free(&plan) {
        reasons.push(e);
    }
    reasons.extend(
        ckpt_restore::check::tty_conflicts(&plan, root)
            .iter()
            .map(|c| c.to_string()),
    );
    let mut adapted = ckpt_restore::check::vdso_in_place(&plan, &[]);
    adapted.extend(ckpt_restore::check::adaptations(&plan, &[]));
    CheckReport {
        restorable: reasons.is_empty(),
        reasons,
        left_out: plan.left_out,
        adapted,
    }
}

fn not(reason: String) -> CheckReport {
    CheckReport {
        restorable: false,
        reasons: vec![reason],
        left_out: Vec::new(),
        adapted: Vec::new(),
    }
}

/// The one line (and the reasons under it) `check` and `show` print.
pub fn text(r: &CheckReport) -> String {
    let mut s = String::new();
    if r.restorable {
        s.push_str("restorable here: yes\n");
    } else {
        s.push_str("restorable here: no\n");
        for l in &r.reasons {
            for (i, part) in l.lines().enumerate() {
                s.push_str(if i == 0 { "  - " } else { "    " });
                s.push_str(part);
                s.push('\n');
            }
        }
    }
    if !r.adapted.is_empty() {
        s.push_str(&format!(
            "adapted to this kernel by a restore ({}):\n",
            r.adapted.len()
        ));
        for l in &r.adapted {
            // "+", not "-": these are not reasons (scripts count the "  - " lines).
            s.push_str(&format!("  + {l}\n"));
        }
    }
    if !r.left_out.is_empty() {
        s.push_str(&format!(
            "left out by a restore ({}; captured with --allow-unsupported):\n",
            r.left_out.len()
        ));
        for l in &r.left_out {
            s.push_str(&format!("  - {l}\n"));
        }
    }
    s
}

/// `ckpt-inspect check [--json] [--root DIR] IMAGE`: exit 0 when restorable here, 1 when not.
pub fn run(img: &mut Image, json: bool, root: &Path, out: &mut dyn Write) -> Result<()> {
    let r = check(img, root);
    if json {
        let s = serde_json::to_string_pretty(&r)
            .map_err(|e| Failure::io("cannot write JSON".into(), e.into()))?;
        writeln!(out, "{s}")?;
    } else {
        out.write_all(text(&r).as_bytes())?;
    }
    if r.restorable {
        Ok(())
    } else {
        Err(Failure::Negative("not restorable here".into()))
    }
}
