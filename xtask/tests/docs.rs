//! The repository explains itself: every requirement number cited anywhere (R1...) is defined
//! in docs/requirements.md, and nothing points outside the repository (`shared/`).
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
