//! Every message key the code uses exists in every language of the catalogue, so no operator
//! ever reads a bare key or falls back to English silently.

use gongkai::i18n::{Lang, has_key};

/// First segments of the catalogue's keys (`check` of `check.bad_id`), from every locale file,
/// whether it holds one language (`_version: 1`) or all of them (`_version: 2`).
fn key_prefixes() -> Vec<String> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("locales");
    let mut prefixes = Vec::new();
    for entry in std::fs::read_dir(root).expect("locales/") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read locale");
        for line in text.lines().filter(|l| !l.starts_with([' ', '#', '_'])) {
            if let Some((key, _)) = line.split_once(':')
                && let Some((prefix, _)) = key.split_once('.')
            {
                prefixes.push(format!("{prefix}."));
            }
        }
    }
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

/// String literals in `src/` that look like catalogue keys.
fn keys_in_source() -> Vec<String> {
    let prefixes = key_prefixes();
    let mut keys = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            for literal in text.split('"').skip(1).step_by(2) {
                let is_key = prefixes.iter().any(|p| literal.starts_with(p))
                    && literal.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_'
                    })
                    && !literal.ends_with('.');
                if is_key {
                    keys.push(literal.to_owned());
                }
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn every_key_in_the_code_is_in_both_languages() {
    let mut keys = keys_in_source();
    assert!(
        keys.len() > 100,
        "the scan found too few keys ({}): is it still reading src/?",
        keys.len()
    );
    keys.extend(gongkai::cli::catalogue_keys());
    let missing: Vec<String> = keys
        .iter()
        .flat_map(|key| {
            [Lang::En, Lang::Zh]
                .into_iter()
                .filter(|l| !has_key(*l, key))
                .map(move |l| format!("{} {key}", l.code()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "missing from the catalogue:\n{}",
        missing.join("\n")
    );
}

#[test]
fn both_languages_have_the_same_keys() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("locales");
    let keys_of = |name: &str| -> Vec<String> {
        let text = std::fs::read_to_string(root.join(name)).expect("read locale");
        let mut keys: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('_') && l.contains(": "))
            .filter_map(|l| l.split_once(": ").map(|(k, _)| k.to_owned()))
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys_of("en.yml"), keys_of("zh-CN.yml"));
}
