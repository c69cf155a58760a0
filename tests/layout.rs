//! The code's map and its rules, checked against the code: ARCHITECTURE.md's walk of one GET
//! names functions that are where it says, in at most six files; the code map names every
//! source file; and the rules it states hold (state changes in one file, `http/` does no I/O,
//! `unsafe` only in `sys/`, no `log::trace!`).

use std::fs;
use std::path::{Path, PathBuf};

/// The repository's root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// ARCHITECTURE.md's text.
fn architecture() -> String {
    fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md exists")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The lines of `text` that are code: not comments (`//`, `//!`, `///`).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
}

/// The rows of the first Markdown table after `heading`, as cells without their backticks.
fn table_after(text: &str, heading: &str, nth: usize) -> Vec<Vec<String>> {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} is there"));
    let mut tables = Vec::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for line in text[start..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        if line.starts_with('|') {
            let cells = line
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().trim_matches('`').to_string())
                .collect();
            rows.push(cells);
        } else if !rows.is_empty() {
            tables.push(std::mem::take(&mut rows));
        }
    }
    if !rows.is_empty() {
        tables.push(rows);
    }
    let table = tables.into_iter().nth(nth).expect("the table is there");
    table.into_iter().skip(2).collect() // the header and its separator
}

/// Whether `file` defines a function called `name`.
fn defines(file: &str, name: &str) -> bool {
    let text = fs::read_to_string(repo().join(file)).unwrap_or_else(|_| panic!("{file} exists"));
    code_lines(&text).any(|line| {
        line.split_once("fn ").is_some_and(|(_, rest)| {
            rest.starts_with(name) && rest[name.len()..].starts_with(['(', '<'])
        })
    })
}

#[test]
fn the_walk_of_one_get_names_functions_where_they_are_in_at_most_six_files() {
    let text = architecture();
    let walk = table_after(&text, "## One GET, top to bottom", 0);
    assert!(walk.len() >= 10, "the walk has its steps");
    let mut files: Vec<&str> = Vec::new();
    for row in &walk {
        let (file, function) = (row[1].as_str(), row[2].as_str());
        assert!(
            defines(file, function),
            "ARCHITECTURE.md: {function} is not in {file}"
        );
        if !files.contains(&file) {
            files.push(file);
        }
    }
    assert!(
        files.len() <= 6,
        "the walk crosses {} files: {files:?}",
        files.len()
    );
    let leaves = table_after(&text, "## One GET, top to bottom", 1);
    assert!(leaves.len() >= 5, "the leaves are listed");
    for row in &leaves {
        let (file, function) = (row[0].as_str(), row[1].as_str());
        assert!(
            defines(file, function),
            "ARCHITECTURE.md: leaf {function} is not in {file}"
        );
    }
}

#[test]
fn the_code_map_names_every_source_file_and_every_path_it_names_exists() {
    let text = architecture();
    let map = table_after(&text, "## Code map", 0);
    let map_text: String = map.iter().map(|row| row.join(" | ")).collect();
    for file in rust_files(&repo().join("src")) {
        let relative = file
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name == "tests.rs" {
            continue; // a module's unit tests
        }
        let named = map_text.contains(&relative)
            || (name != "mod.rs" && map_text.contains(&format!("`{name}`")))
            || (name == "mod.rs" && map_text.contains(&relative.replace("mod.rs", "")));
        assert!(
            named,
            "ARCHITECTURE.md's code map does not mention {relative}"
        );
    }
    for word in text.split('`') {
        let looks_like_path = ["src/", "tests/", "benches/", "examples/", "www/", "docs/"]
            .iter()
            .any(|top| word.starts_with(top))
            && !word.contains(' ');
        if looks_like_path {
            assert!(
                repo().join(word).exists(),
                "ARCHITECTURE.md names {word}, which is not there"
            );
        }
    }
}

#[test]
fn only_connection_mod_rs_changes_a_connections_state() {
    for file in rust_files(&repo().join("src")) {
        if file.ends_with("src/connection/mod.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        for line in code_lines(&text) {
            let changes = line.contains("set_state(") || line.contains("self.state =");
            assert!(!changes, "{}: changes state: {line}", file.display());
        }
    }
}

#[test]
fn http_does_no_io_unsafe_lives_in_sys_and_log_never_traces() {
    for file in rust_files(&repo().join("src/http")) {
        let text = fs::read_to_string(&file).unwrap();
        for line in code_lines(&text) {
            for banned in [
                "std::fs",
                "std::net",
                "crate::config",
                "crate::sys",
                "nix::",
            ] {
                assert!(
                    !line.contains(banned),
                    "{}: {banned} in http/: {line}",
                    file.display()
                );
            }
        }
    }
    for file in rust_files(&repo().join("src")) {
        let text = fs::read_to_string(&file).unwrap();
        let in_sys = file.starts_with(repo().join("src/sys"));
        for line in code_lines(&text) {
            let unsafe_code = ["unsafe {", "unsafe fn", "unsafe impl"]
                .iter()
                .any(|word| line.contains(word));
            assert!(
                in_sys || !unsafe_code,
                "{}: unsafe outside sys/: {line}",
                file.display()
            );
            assert!(
                !line.contains("log::trace!"),
                "{}: log::trace!: {line}",
                file.display()
            );
        }
    }
}

/// The pages that describe the code: the README, `docs/`, the learners' pages in `www/docs/`,
/// CONTRIBUTING.md and ARCHITECTURE.md.
fn pages_about_the_code() -> Vec<PathBuf> {
    let mut pages = vec![
        repo().join("README.md"),
        repo().join("CONTRIBUTING.md"),
        repo().join("ARCHITECTURE.md"),
    ];
    let mut dirs = vec![repo().join("docs"), repo().join("www/docs")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "md" || ext == "html")
            {
                pages.push(path);
            }
        }
    }
    pages
}

#[test]
fn every_source_file_and_function_the_pages_name_exists() {
    let mut files = rust_files(&repo().join("src"));
    files.extend(rust_files(&repo().join("tests")));
    files.extend(rust_files(&repo().join("examples")));
    let all_code: String = files
        .iter()
        .map(|file| fs::read_to_string(file).unwrap())
        .collect();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let module_names: Vec<String> = rust_files(&repo().join("src"))
        .iter()
        .map(
            |file| match file.file_stem().unwrap().to_string_lossy().as_ref() {
                "mod" => file
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                stem => stem.to_string(),
            },
        )
        .collect();
    for page in pages_about_the_code() {
        let text = fs::read_to_string(&page).unwrap();
        let shown = page.strip_prefix(repo()).unwrap().display();
        for (at, _) in text.match_indices("src/") {
            let path: String = text[at..]
                .chars()
                .take_while(|&c| is_ident(c) || c == '/' || c == '.')
                .collect();
            if path.ends_with(".rs") {
                assert!(
                    repo().join(&path).exists(),
                    "{shown} names {path}, not there"
                );
            }
        }
        // `Type::function` (a lowercase last segment): a function of that name must exist.
        for (at, _) in text.match_indices("::") {
            let function: String = text[at + 2..]
                .chars()
                .take_while(|&c| is_ident(c))
                .collect();
            let before: String = text[..at]
                .chars()
                .rev()
                .take_while(|&c| is_ident(c))
                .collect();
            let type_like = before
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_uppercase());
            let module_like = ["site", "route", "http", "request", "head", "sys", "files"]
                .contains(&before.chars().rev().collect::<String>().as_str());
            let lowercase = function
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase());
            let a_module = text[at + 2 + function.len()..].starts_with("::")
                || module_names.contains(&function);
            if (type_like || module_like) && lowercase && !a_module && function.len() > 2 {
                let defined = all_code.contains(&format!("fn {function}("))
                    || all_code.contains(&format!("fn {function}<"));
                let std_item = ["new", "default", "from", "into", "now", "elapsed"]
                    .contains(&function.as_str());
                assert!(
                    defined || std_item,
                    "{shown} names {}::{function}, which no function is",
                    before.chars().rev().collect::<String>()
                );
            }
        }
    }
}

#[test]
fn the_mio_and_tokio_map_names_epollos_own_items() {
    let text = fs::read_to_string(repo().join("docs/moving-on.md")).unwrap();
    let all_code: String = rust_files(&repo().join("src"))
        .iter()
        .map(|file| fs::read_to_string(file).unwrap())
        .collect();
    let rows = table_after(&text, "# Moving on", 0);
    assert!(rows.len() >= 10, "the table is there");
    for row in rows {
        // The first column, as written (table_after took its outer backticks off).
        for span in row[0].split('`').map(str::trim) {
            let name = span.trim_start_matches('(').trim_end_matches(')');
            let identifier = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            if name.is_empty() || !identifier {
                continue;
            }
            let last = name.rsplit("::").next().unwrap();
            assert!(
                all_code.contains(last),
                "docs/moving-on.md names {name}, not in src/"
            );
        }
    }
}

#[test]
fn every_lab_bug_has_its_page_section_and_its_check_in_ci() {
    let page = fs::read_to_string(repo().join("www/docs/labs/bugs.html")).unwrap();
    let ci = fs::read_to_string(repo().join(".ci/run")).unwrap();
    for bug in epollo::lab::LabBug::ALL {
        let name = bug.name();
        assert!(
            page.contains(&format!("id=\"{name}\"")),
            "bugs.html has no section for {name}"
        );
        let checked =
            ci.contains(&format!("\"{name}|")) || ci.contains(&format!("EPOLLO_LAB_BUG={name}"));
        assert!(
            checked,
            ".ci/run does not check that a test catches --lab-bug {name}"
        );
    }
}
