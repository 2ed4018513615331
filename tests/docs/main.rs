//! The docs against the code, so that drift fails `cargo test`:
//! - the README's flag tables against each binary's `--help`: every flag, its environment
//!   variable and its default, both ways (`readme_flags`, `help`);
//! - the packaged environment files (`/etc/dronecast/*.env`) against the servers' `--help`:
//!   every variable listed with its default (`env_files`);
//! - the lines the docs quote from the programs' logs and errors, listed in each document's
//!   `<!-- quoted lines … -->` block, against the strings in the code (`quoted`).
//!
//! The binaries are the ones `cargo test --workspace` builds beside this test (every package
//! with integration tests gets its binaries built). `relay-bench` has no README table and is
//! not checked.

mod env_files;
mod help;
mod quoted;
mod readme_flags;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `bin --help`, with an empty environment: a variable set where the test runs would show up
/// in the help (`[env: X=value]`).
fn help_of(bin: &str) -> anyhow::Result<String> {
    let path: PathBuf = harness::sibling_bin(bin)?;
    let out = Command::new(&path).arg("--help").env_clear().output()?;
    anyhow::ensure!(out.status.success(), "{bin} --help failed: {out:?}");
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn readme_flag_tables_match_every_binarys_help() -> anyhow::Result<()> {
    let readme = std::fs::read_to_string(root().join("README.md"))?;
    let tables = readme_flags::parse(&readme)?;
    let mut problems = Vec::new();
    for bin in readme_flags::BINARIES {
        let flags = help::parse(&help_of(bin)?);
        problems.extend(readme_flags::compare(bin, &flags, &tables));
    }
    anyhow::ensure!(
        problems.is_empty(),
        "README.md and --help disagree (fix the README table or the flag):\n- {}",
        problems.join("\n- ")
    );
    Ok(())
}

#[test]
fn environment_files_list_every_variable_of_the_servers_help() -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (bin, path) in env_files::FILES {
        let text = std::fs::read_to_string(root().join(path))?;
        let flags = help::parse(&help_of(bin)?);
        problems.extend(env_files::compare(bin, path, &flags, &text, false));
    }
    anyhow::ensure!(
        problems.is_empty(),
        "an environment file and --help disagree (fix the file or the flag):\n- {}",
        problems.join("\n- ")
    );
    Ok(())
}

#[test]
fn quoted_lines_are_in_the_code_and_in_their_document() -> anyhow::Result<()> {
    let sources = quoted::Sources::under(&root().join("crates"))?;
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in quoted::DOCUMENTS {
        let text = std::fs::read_to_string(root().join(doc))?;
        let lines = quoted::listed(&text);
        anyhow::ensure!(!lines.is_empty(), "{doc} has no `<!-- quoted lines` block");
        checked += lines.len();
        problems.extend(quoted::check(doc, &text, &lines, &sources));
    }
    anyhow::ensure!(problems.is_empty(), "quoted lines drifted:\n- {}", problems.join("\n- "));
    println!("{checked} quoted lines checked");
    Ok(())
}
