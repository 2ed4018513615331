//! Lines the docs quote from the programs (log lines, errors), checked against the code.
//!
//! Each document lists them at its end, in a comment readers do not see:
//!
//! ```text
//! <!-- quoted lines (tests/docs): …
//! - `upstream unavailable; redialling with backoff up to …`
//! -->
//! ```
//!
//! Each item is text one string in the code writes, `…` standing for what varies (a value
//! formatted in, the rest of the line). It must appear in a `.rs` file under `crates/*/src`
//! (string continuations joined, `\"` read as `"`), its pieces in order on one line; and the
//! document must quote it, pieces in order, in one of its code spans or code blocks, so the
//! list cannot drift from the text it stands for.

use std::path::Path;

/// The documents that quote what the programs say.
pub const DOCUMENTS: [&str; 3] = ["README.md", "docs/RELIABILITY.md", "docs/CAMERAS.md"];

const OPEN: &str = "<!-- quoted lines";

/// The items of a document's `<!-- quoted lines` block(s).
pub fn listed(doc: &str) -> Vec<String> {
    let mut items = Vec::new();
    for block in doc.split(OPEN).skip(1) {
        let block = &block[..block.find("-->").unwrap_or(block.len())];
        for line in block.lines() {
            if let Some(item) = line.trim().strip_prefix("- `").and_then(|i| i.strip_suffix('`')) {
                items.push(item.to_owned());
            }
        }
    }
    items
}

/// The source of every crate's library and binaries, one entry per file, string
/// continuations joined.
pub struct Sources(Vec<(String, String)>);

impl Sources {
    /// Reads `crates/*/src/**/*.rs`.
    pub fn under(crates: &Path) -> anyhow::Result<Sources> {
        let mut files = Vec::new();
        for krate in std::fs::read_dir(crates)? {
            let src = krate?.path().join("src");
            if src.is_dir() {
                collect(&src, &mut files)?;
            }
        }
        anyhow::ensure!(!files.is_empty(), "no sources under {}", crates.display());
        Ok(Sources(files))
    }

    /// The first file with a line holding `pieces` in order.
    fn find(&self, pieces: &[&str]) -> Option<&str> {
        let (path, _) =
            self.0.iter().find(|(_, text)| text.lines().any(|l| in_order(l, pieces)))?;
        Some(path)
    }
}

fn collect(dir: &Path, files: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push((path.display().to_string(), normalise(&std::fs::read_to_string(&path)?)));
        }
    }
    Ok(())
}

/// Joins Rust string continuations (`\` at the end of a line eats the newline and the next
/// line's indentation) and reads `\"` as `"`.
fn normalise(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        match line.strip_suffix('\\') {
            Some(head) => {
                out.push_str(head);
                if let Some(next) = lines.peek_mut() {
                    *next = next.trim_start();
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.replace("\\\"", "\"")
}

/// Whether `pieces` occur in `text` in this order, without overlapping.
fn in_order(text: &str, pieces: &[&str]) -> bool {
    let mut rest = text;
    for piece in pieces {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// An item's pieces: the text between its `…`, without the empty ones.
fn pieces(item: &str) -> Vec<&str> {
    item.split('…').filter(|p| !p.trim().is_empty()).collect()
}

/// What the document quotes: its code spans and code blocks, whitespace collapsed (spans
/// and paragraphs wrap across lines).
fn quotes(doc: &str) -> Vec<String> {
    let visible = &doc[..doc.find(OPEN).unwrap_or(doc.len())];
    let mut quotes = Vec::new();
    let mut prose = String::new();
    for (i, part) in visible.split("```").enumerate() {
        if i % 2 == 1 {
            quotes.push(collapse(part));
        } else {
            prose.push_str(part);
            prose.push('\n');
        }
    }
    quotes.extend(prose.split('`').skip(1).step_by(2).map(collapse));
    quotes
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What is wrong with `doc`'s listed `items`.
pub fn check(doc: &str, text: &str, items: &[String], sources: &Sources) -> Vec<String> {
    let quotes = quotes(text);
    let mut problems = Vec::new();
    for item in items {
        let pieces = pieces(item);
        if sources.find(&pieces).is_none() {
            problems.push(format!(
                "{doc} quotes `{item}`, which no string under crates/*/src says (changed \
                 message? update the quotes in {doc} and its `{OPEN}` list)"
            ));
        }
        let collapsed: Vec<String> = pieces.iter().map(|p| collapse(p)).collect();
        let collapsed: Vec<&str> = collapsed.iter().map(String::as_str).collect();
        if !quotes.iter().any(|q| in_order(q, &collapsed)) {
            problems.push(format!(
                "{doc} lists `{item}` as quoted, but quotes it nowhere in its text (remove it \
                 from the `{OPEN}` list, or quote it)"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_are_joined_and_pieces_found_in_order() {
        let source = "        \"a length prefix of {be} bytes, far above the limit of a first \\\n             message; read \\\"little\\\"-endian\"\n";
        let text = normalise(source);
        let item =
            "a length prefix of … bytes, far above the limit of a first message; read \"little\"";
        assert!(text.lines().any(|l| in_order(l, &pieces(item))), "{text}");
        assert!(!text.lines().any(|l| in_order(l, &pieces("bytes … a length prefix of"))));
    }

    #[test]
    fn a_listed_line_must_be_quoted_in_the_text() {
        let doc = "Logs `upstream unavailable; redialling with backoff up to 500ms\nerr=x`.\n\n<!-- quoted lines\n- `upstream unavailable; redialling with backoff up to …`\n- `never quoted`\n-->\n";
        let items = listed(doc);
        assert_eq!(items.len(), 2);
        let sources = Sources(vec![(
            "x.rs".into(),
            "warn!(\"upstream unavailable; redialling with backoff up to {:?}\"); \"never quoted\""
                .into(),
        )]);
        let problems = check("X.md", doc, &items, &sources);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`never quoted`"), "{problems:?}");
        let problems = check("X.md", doc, &["gone from the code".into()], &sources);
        assert!(problems[0].contains("no string under crates/*/src says"), "{problems:?}");
    }
}
