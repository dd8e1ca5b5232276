//! The modules of ckpt-format form layers, each using only what is below it:
//!
//! ```text
//! 0  error, exit (exit codes), output (safe output files), layout (the tables of record kinds and their layouts)
//! 1  input (framing input), model
//! 2  stream (source/sink traits), detect, layout::derive
//! 3  legacy (plan, losses), validate
//! 4  native, crv5, v21                 (the codecs; none uses another)
//! 5  the crate root's functions (open_slice, encoder, sniff ...), chain (pre-copy chains)
//! 6  convert, build, schema
//! ```
//!
//! This test reads the sources and fails on any `crate::` (or top-level
//! `super::`) path that reaches sideways or up, e.g. a codec using `convert`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn layer(module: &str) -> Option<u32> {
    Some(match module {
        "error" | "exit" | "layout" | "output" => 0,
        "input" | "model" => 1,
        "stream" | "detect" | "layout::derive" => 2,
        "legacy" | "validate" => 3,
        "native" | "crv5" | "v21" => 4,
        "chain" => 5,
        "convert" | "build" | "schema" => 6,
        _ => return None,
    })
}

/// Top-level module names that exist in src/.
fn modules(src: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if name != "lib" {
            v.push(name);
        }
    }
    v
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a source file belongs to (`crv5/encode/memory.rs` -> `crv5`,
/// `layout/derive.rs` -> `layout::derive`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.len() == 2 && parts[0] == "layout" && parts[1] == "derive" {
        return "layout::derive".into();
    }
    parts[0].clone()
}

/// Top-level names a line reaches through `crate::`: `crate::a::b` gives `a`,
/// `crate::{a, b::c}` gives `a` and `b`. Also `layout::derive` when named.
fn crate_refs(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name == "layout" && after.starts_with("layout::derive") {
                out.push("layout::derive".into());
            } else if !name.is_empty() {
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

/// Code of a line without its `//` comment (doc links are not uses).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

#[test]
fn each_module_uses_only_what_is_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut bad = Vec::new();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for f in &files {
        if f.file_name().unwrap() == "lib.rs" {
            continue;
        }
        let me = module_of(&src, f);
        let my_layer = layer(&me).unwrap_or_else(|| {
            panic!(
                "{}: module `{me}` has no layer in tests/layers.rs",
                f.display()
            )
        });
        let text = std::fs::read_to_string(f).unwrap();
        let top_level = f.parent().unwrap() == src;
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line);
            let mut refs = crate_refs(code);
            if top_level && code.contains("super::") {
                refs.extend(crate_refs(&code.replace("super::", "crate::")));
            }
            assert!(
                !code.contains("super::super::"),
                "{}:{}: reaches two levels up",
                f.display(),
                n + 1
            );
            for r in refs {
                let their = if mods.contains(&r) || r == "layout::derive" {
                    layer(&r).unwrap_or_else(|| panic!("module `{r}` has no layer"))
                } else {
                    5 // an item of the crate root
                };
                *seen.entry(format!("{me} -> {r}")).or_default() += 1;
                let same_module = r == me || (me == "layout::derive" && r == "layout");
                if !(their < my_layer || same_module) {
                    bad.push(format!(
                        "{}:{}: `{me}` (layer {my_layer}) uses `{r}` (layer {their}): {}",
                        f.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
    // The check saw the uses it is about (it would pass vacuously otherwise).
    for edge in [
        "crv5 -> legacy",
        "v21 -> legacy",
        "convert -> crv5",
        "crv5 -> model",
    ] {
        assert!(seen.contains_key(edge), "no `{edge}` use found: {seen:?}");
    }
}

#[test]
fn no_codec_imports_convert() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for m in [
        "native",
        "crv5",
        "v21",
        "model",
        "legacy.rs",
        "stream.rs",
        "layout",
    ] {
        let p = src.join(m);
        if p.is_dir() {
            rs_files(&p, &mut files);
        } else {
            files.push(p);
        }
    }
    assert!(files.len() >= 15);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line);
            assert!(
                !code.contains("convert::")
                    && !code.contains("convert}")
                    && !code.contains("convert,"),
                "{}:{}: uses convert: {}",
                f.display(),
                n + 1,
                line.trim()
            );
        }
    }
}

#[test]
fn the_checker_sees_a_violation() {
    // The line scanner itself: a codec line using convert is found.
    assert_eq!(crate_refs("use crate::convert::Plan;"), vec!["convert"]);
    assert_eq!(
        crate_refs("use crate::{crv5, v21, EventSink};"),
        vec!["crv5", "v21", "EventSink"]
    );
    assert_eq!(
        crate_refs("use crate::layout::derive::x; crate::model::Y"),
        vec!["layout::derive", "model"]
    );
    assert_eq!(code_of("let x = 1; // crate::convert"), "let x = 1; ");
}

/// Capture and the CRIU source write no extras key and restore and inspect read none of
/// ours: live state lives in typed records (docs/ADDING-AN-OBJECT-KIND.md).
#[test]
fn no_key_of_ours_is_read_or_written_through_extras() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for krate in [
        "ckpt-capture",
        "ckpt-restore",
        "ckpt-inspect",
        "ckpt-sys",
        "ckpt-criu",
    ] {
        let mut files = Vec::new();
        rs_files(&ws.join(krate).join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = code_of(line);
                checked += 1;
                assert!(
                    !code.contains("set_u64(\"") && !code.contains("set_bytes(\""),
                    "{}:{}: writes an extras key of its own: {}",
                    f.display(),
                    n + 1,
                    line.trim()
                );
                for k in ckpt_format::model::records::LEGACY_KEYS {
                    for access in [".u64(", ".bytes(", ".get("] {
                        let pat = format!("{access}\"{k}\")");
                        assert!(
                            !code.contains(&pat),
                            "{}:{}: reads `{k}` from extras: {}",
                            f.display(),
                            n + 1,
                            line.trim()
                        );
                    }
                }
            }
        }
    }
    assert!(checked > 5000, "{checked} lines");
}
