//! The README and `docs/*.md` stay short where they must, render on GitHub as written, and
//! lead where they say: the README fits in [`README_MAX_LINES`]; every table row has as many
//! cells as its header, under a delimiter row; every relative link names a file that exists
//! (and, into Markdown, a heading that exists); `docs/design.md` draws the README's state
//! diagram; and no page cites the project's internal issue numbers. No server: these read
//! files.

use std::fs;
use std::path::{Path, PathBuf};

/// The most lines the README may have: it says what epollo is and points into `docs/`.
const README_MAX_LINES: usize = 300;

/// The repository's top folder.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `README.md` and every Markdown file in `docs/`, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let mut paths = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .expect("a docs/ folder")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "no Markdown files in docs/");
    paths.extend(docs);
    paths
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// The lines outside fenced code blocks, numbered from 1.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m && trimmed.trim_end() == m => fence = None,
            (None, None) => lines.push((i + 1, line)),
            _ => {}
        }
    }
    assert!(fence.is_none(), "a code fence is never closed");
    lines
}

/// How many cells GitHub makes of a table row: it splits at every `|` that is not escaped,
/// code spans included (as `config.rs` counts the flag table's rows).
fn cells(row: &str) -> usize {
    row.trim().replace("\\|", "").matches('|').count() - 1
}

#[test]
fn the_readme_is_short() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, over {README_MAX_LINES}: move reference into docs/"
    );
}

#[test]
fn every_table_row_has_as_many_cells_as_its_header() {
    for (path, text) in documents() {
        let name = path.strip_prefix(repo()).unwrap().display().to_string();
        let mut header: Option<usize> = None;
        let mut row_in_table = 0;
        for (number, line) in prose(&text) {
            let line = line.trim();
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            assert!(
                line.ends_with('|'),
                "{name}:{number}: a row ends with '|': {line}"
            );
            let expected = *header.get_or_insert_with(|| {
                row_in_table = 0;
                cells(line)
            });
            row_in_table += 1;
            assert_eq!(cells(line), expected, "{name}:{number}: cells in {line}");
            if row_in_table == 2 {
                let delimiter = line[1..line.len() - 1].split('|').all(|cell| {
                    let cell = cell.trim().trim_start_matches(':').trim_end_matches(':');
                    !cell.is_empty() && cell.chars().all(|c| c == '-')
                });
                assert!(
                    delimiter,
                    "{name}:{number}: no delimiter row under the header"
                );
            }
        }
    }
}

/// A heading's anchor as GitHub makes it: lowercase, spaces to `-`, punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (a repeated one gets `-1`, `-2`, … as on GitHub).
fn anchors(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (_, line) in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while found.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        found.push(anchor);
    }
    found
}

/// The targets of the inline links (`](target)`) on a line, outside code spans.
fn link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut in_code = false;
    let mut at = 0;
    while at < line.len() {
        let rest = &line[at..];
        if rest.starts_with('`') {
            in_code = !in_code;
        } else if !in_code
            && rest.starts_with("](")
            && let Some(end) = rest.find(')')
        {
            targets.push(&rest[2..end]);
            at += end;
            continue;
        }
        at += rest.chars().next().unwrap().len_utf8();
    }
    targets
}

#[test]
fn every_relative_link_leads_to_a_file_and_heading_that_exist() {
    let mut checked = 0;
    for (path, text) in documents() {
        let name = path.strip_prefix(repo()).unwrap().display().to_string();
        let folder = path.parent().unwrap();
        for (number, line) in prose(&text) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let linked = if file.is_empty() {
                    path.clone()
                } else {
                    folder.join(file)
                };
                assert!(
                    linked.exists(),
                    "{name}:{number}: link to {target}, but {} does not exist",
                    linked.display()
                );
                let is_markdown = linked.extension().is_some_and(|ext| ext == "md");
                if !anchor.is_empty() && is_markdown {
                    let headings = anchors(&fs::read_to_string(&linked).unwrap());
                    assert!(
                        headings.iter().any(|a| a == anchor),
                        "{name}:{number}: link to {target}, but no heading has that anchor \
                         (there are: {headings:?})"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0,
        "no relative links found: is the link parser broken?"
    );
}

/// The state diagram in `text`: from its first line to the end of its code block.
fn state_diagram(text: &str) -> &str {
    let start = text.find("accept ──► Idle").expect("a state diagram");
    let diagram = &text[start..];
    &diagram[..diagram.find("```").expect("the diagram's code block ends")]
}

#[test]
fn the_design_notes_draw_the_readmes_state_diagram() {
    // The README's diagram is checked against `State` by the connection's unit tests; the
    // design notes draw it again with the state table, so the two must not drift apart.
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let design = fs::read_to_string(repo().join("docs/design.md")).unwrap();
    assert_eq!(state_diagram(&design), state_diagram(&readme));
}

#[test]
fn no_page_cites_internal_issue_numbers() {
    for (path, text) in documents() {
        let name = path.strip_prefix(repo()).unwrap().display().to_string();
        for (number, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            for word in ["issue ", "item "] {
                for (at, _) in lower.match_indices(word) {
                    let next = lower[at + word.len()..].chars().next();
                    assert!(
                        !next.is_some_and(|c| c.is_ascii_digit()),
                        "{name}:{}: cites an internal number: {line}",
                        number + 1
                    );
                }
            }
        }
    }
}

#[test]
fn the_link_and_cell_parsers_read_what_github_renders() {
    assert_eq!(cells("| a | b |"), 2);
    assert_eq!(cells("| `a\\|b` | c |"), 2);
    assert_eq!(cells("| `a|b` | c |"), 3); // GitHub splits inside code spans too
    assert_eq!(
        link_targets("see [x](docs/a.md#b) and `[y](not/a/link)`, [z](../c)"),
        ["docs/a.md#b", "../c"]
    );
    assert_eq!(
        slug(" Several cores: `--workers N`"),
        "several-cores---workers-n"
    );
    assert_eq!(
        slug(" What if `openat2` is not available?"),
        "what-if-openat2-is-not-available"
    );
    assert_eq!(anchors("# A\n## A\n```\n# B\n```\n"), ["a", "a-1"]);
    assert_eq!(prose("a\n```text\n| x |\n```\nb").len(), 2);
}
