//! The library's modules use only the modules below them in docs/architecture.md's
//! table. Reads every `crate::name` path (and `super::` paths that climb out of a
//! top-level module) in `src/`, outside comments.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The table's modules, top (may use all below) first.
fn layers() -> Vec<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md")).unwrap();
    let start = doc.find("<!-- layers:").expect("docs/architecture.md has the layers table");
    let end = doc.find("<!-- /layers -->").unwrap();
    doc[start..end]
        .lines()
        .filter_map(|l| l.split('|').nth(2))
        .filter_map(|cell| cell.trim().strip_prefix('`')?.strip_suffix('`').map(String::from))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file's code names: `crate::x`, `crate::{x, y::z}`, and
/// `super::…::x` where the supers climb to the crate root and `x` is one of `modules`
/// (the same climb from a `mod tests` inside the file stays in its own module).
fn used_modules(code: &str, depth: usize, modules: &[String]) -> BTreeSet<String> {
    let code: String =
        code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut used = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                used.insert(ident(item.trim()));
            }
        } else {
            used.insert(ident(rest));
        }
    }
    if depth > 0 {
        let climb = "super::".repeat(depth);
        for (i, _) in code.match_indices(&climb) {
            let rest = &code[i + climb.len()..];
            let name = ident(rest);
            if !rest.starts_with("super::") && modules.contains(&name) {
                used.insert(name);
            }
        }
    }
    used.retain(|m| !m.is_empty());
    used
}

#[test]
fn no_module_uses_one_above_it_in_the_architecture_table() {
    let order = layers();
    assert!(order.len() > 20, "the table lists the modules: {order:?}");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    let mut unlisted = BTreeSet::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let top = parts[0].trim_end_matches(".rs").to_string();
        // The binary (main.rs, cli/) is above everything; lib.rs only declares.
        if ["main", "cli", "lib"].contains(&top.as_str()) {
            continue;
        }
        let Some(rank) = order.iter().position(|m| *m == top) else {
            unlisted.insert(top);
            continue;
        };
        // How many `super::` reach the crate root from this file.
        let depth = parts.len() - usize::from(parts.last().unwrap() == "mod.rs");
        for used in used_modules(&std::fs::read_to_string(&file).unwrap(), depth, &order) {
            match order.iter().position(|m| *m == used) {
                Some(r) if r <= rank && used != top => {
                    upward.push(format!("{} uses {used} (above it)", relative.display()))
                }
                None if used != top => {
                    unlisted.insert(used);
                }
                _ => {}
            }
        }
    }
    assert!(unlisted.is_empty(), "modules missing from docs/architecture.md's table: {unlisted:?}");
    assert!(upward.is_empty(), "imports against the layering:\n{}", upward.join("\n"));
}

#[test]
fn a_path_to_a_higher_module_is_caught_in_any_of_its_forms() {
    let code = "use crate::store::x;\nuse crate::{jobs, model::y};\nfn f() { super::super::train::fit(); }\n// crate::web in a comment";
    let modules = ["train", "web"].map(String::from);
    let used = used_modules(code, 2, &modules);
    assert_eq!(used, ["jobs", "model", "store", "train"].map(String::from).into_iter().collect());
}
