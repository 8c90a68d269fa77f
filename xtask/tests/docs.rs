//! The repository explains itself: every requirement number cited anywhere (R1...) is defined
//! in docs/requirements.md, nothing points outside the repository (`shared/`), and the source
//! files the docs name exist.
use std::{collections::BTreeSet, path::Path, process::Command};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
}

/// The tracked text files (git's list), with their contents.
fn tracked() -> Vec<(String, String)> {
    let out = Command::new("git")
        .current_dir(root())
        .args(["ls-files", "-z"])
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files");
    String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|p| !p.is_empty() && !p.starts_with("fuzz/corpus/"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(root().join(p)).ok()?;
            Some((p.to_string(), text))
        })
        .collect()
}

/// `R<n>` tokens: an `R` not preceded by a letter, digit or `_`, followed by digits that are
/// not followed by a letter or `_`.
fn requirement_ids(text: &str) -> BTreeSet<u32> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut ids = BTreeSet::new();
    for (i, _) in text.match_indices('R') {
        if i > 0 && word(bytes[i - 1]) {
            continue;
        }
        let digits: String = text[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let end = i + 1 + digits.len();
        if digits.is_empty() || bytes.get(end).is_some_and(|b| word(*b)) {
            continue;
        }
        if let Ok(n) = digits.parse() {
            ids.insert(n);
        }
    }
    ids
}

#[test]
fn every_cited_requirement_is_defined() {
    let defined_in =
        std::fs::read_to_string(root().join("docs/requirements.md")).expect("docs/requirements.md");
    for (path, text) in tracked() {
        if path == "Cargo.lock" {
            continue;
        }
        for id in requirement_ids(&text) {
            assert!(
                defined_in.contains(&format!("| **R{id}** |")),
                "{path} cites R{id}, which docs/requirements.md does not define"
            );
        }
    }
}

#[test]
fn nothing_points_outside_the_repository() {
    for (path, text) in tracked() {
        if path == "xtask/tests/docs.rs" {
            continue;
        }
        assert!(
            !text.contains("shared/"),
            "{path} points at a shared/ path outside the repository"
        );
    }
}

#[test]
fn requirement_ids_are_found_as_words() {
    let ids = requirement_ids("R1, (R24) and R7: not AR3, R2x or R_5");
    assert_eq!(ids, BTreeSet::from([1, 7, 24]));
}

/// Source paths the docs name in backticks (`vc-agent/src/bgp/md5.rs`, `programs/lan_rx.rs`,
/// `config/`), relative to the repository, to one of the crates' `src/` or to the document.
fn named_source_paths(text: &str) -> Vec<&str> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.contains('/') && !t.contains([' ', '<', '*']) && !t.starts_with(['/', '.']))
        .filter(|t| !t.starts_with("target/"))
        .filter(|t| t.ends_with('/') || Path::new(t).extension().is_some_and(|e| e == "rs"))
        .collect()
}

#[test]
fn source_paths_named_in_docs_exist() {
    let bases = [
        "",
        "vc-agent/src/",
        "vc-ebpf/src/",
        "vc-wire/src/",
        "vc-common/src/",
    ];
    for (path, text) in tracked() {
        if !(path.starts_with("docs/") || path == "README.md")
            || Path::new(&path).extension().is_none_or(|e| e != "md")
        {
            continue;
        }
        for named in named_source_paths(&text) {
            assert!(
                bases
                    .iter()
                    .any(|base| root().join(base).join(named).exists())
                    || root().join(&path).with_file_name(named).exists(),
                "{path} names `{named}`, which is not in the repository"
            );
        }
    }
}

#[test]
fn named_source_paths_are_found() {
    let found =
        named_source_paths("see `bgp/md5.rs`, `config/` and `cargo xtask test`, `/etc/vc/`");
    assert_eq!(found, ["bgp/md5.rs", "config/"]);
}
