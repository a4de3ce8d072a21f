//! The invariant of the wire module: nothing outside `wire/mod.rs` branches on a
//! [`WireFormat`](routerly_core::wire::WireFormat) variant. A format's rules live in
//! `wire/<format>`, reached through the functions `wire/mod.rs` dispatches; code elsewhere
//! names a format (to construct one, pass one along), never matches on it.
//!
//! The scan reads every crate's `src/` (test modules excepted: they name formats to build
//! fixtures) and fails naming each file and line that matches on a variant: a `match` arm
//! or `|` pattern, an `if let` / `matches!`, or an `==` / `!=` comparison.

use std::fs;
use std::path::{Path, PathBuf};

const VARIANT: &str = "WireFormat::";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Whether `line` (trimmed), followed by `next` (trimmed), branches on a format variant.
fn branches_on_format(line: &str, next: &str) -> bool {
    let Some(at) = line.find(VARIANT) else {
        return false;
    };
    // A variant as (part of) a match arm's pattern: before the arm's `=>`.
    if line[at..].contains("=>") {
        return true;
    }
    if line.starts_with("| WireFormat::") {
        return true;
    }
    // A pattern alone on its line, continued by `| …` on the next.
    let variant_only = line
        .strip_prefix(VARIANT)
        .is_some_and(|rest| rest.chars().all(|c| c.is_alphanumeric() || c == '_'));
    if variant_only && next.starts_with('|') {
        return true;
    }
    [
        "== WireFormat::",
        "!= WireFormat::",
        "if let WireFormat::",
        "matches!(",
    ]
    .iter()
    .any(|needle| line.contains(needle) && (*needle != "matches!(" || line.contains(VARIANT)))
        || line.contains(VARIANT)
            && (line[at..].split_whitespace().nth(1) == Some("==")
                || line[at..].split_whitespace().nth(1) == Some("!="))
}

/// Every line outside `wire/mod.rs` (and outside test modules) that branches on a format.
fn offenders(crates: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for krate in fs::read_dir(crates)
        .expect("the crates directory")
        .flatten()
    {
        rust_files(&krate.path().join("src"), &mut files);
    }
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(crates).unwrap_or(&file);
        if relative == Path::new("routerly-core/src/wire/mod.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).expect("a readable source file");
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (index, line) in lines.iter().enumerate() {
            if *line == "#[cfg(test)]" {
                break;
            }
            let next = lines.get(index + 1).copied().unwrap_or("");
            if branches_on_format(line, next) {
                found.push(format!("{}:{}: {line}", relative.display(), index + 1));
            }
        }
    }
    found
}

#[test]
fn nothing_outside_wire_mod_matches_on_formats() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crates = crates.canonicalize().expect("the crates directory");
    let found = offenders(&crates);
    assert!(
        found.is_empty(),
        "format rules belong in wire/<format>, dispatched from wire/mod.rs; these lines \
         branch on a WireFormat elsewhere:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_sees_each_way_of_branching() {
    for (line, next) in [
        ("WireFormat::OpenAiChat => \"choices\",", ""),
        (
            "WireFormat::OpenAiChat if event.data != \"[DONE]\" => {",
            "",
        ),
        ("WireFormat::OpenAiChat", "| WireFormat::MistralChat"),
        (
            "| WireFormat::OllamaChat => format!(\"data: {data}\\n\\n\"),",
            "",
        ),
        ("if format == WireFormat::AnthropicMessages {", ""),
        ("if format != WireFormat::OpenAiChat || done {", ""),
        ("if let WireFormat::OpenAiChat = format {", ""),
        ("let chat = matches!(format, WireFormat::OpenAiChat);", ""),
        (
            "_ if provider_format == WireFormat::OpenAiResponses => Operation::Responses,",
            "",
        ),
    ] {
        assert!(branches_on_format(line, next), "{line}");
    }
    for line in [
        "ProviderKind::Anthropic => WireFormat::AnthropicMessages,",
        "WireFormat::OpenAiChat,",
        "let format = WireFormat::OpenAiResponses;",
        "const FORMAT: WireFormat = WireFormat::OpenAiChat;",
        "WireFormat::AnthropicMessages",
    ] {
        assert!(!branches_on_format(line, "} else {"), "{line}");
    }
}
