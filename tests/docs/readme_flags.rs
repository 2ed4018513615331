//! The README's flag tables: under `### <heading>`, a table with the columns
//! `flag | environment | default | meaning`, one flag per row.
//!
//! - flag: the flag in backticks, with its value's name (`` `--listen ADDR` ``), or a positional
//!   argument's name as `--help` shows it (`` `SERVER` ``);
//! - environment: the variable in backticks, or `—` for none;
//! - default: the value `--help` shows, in backticks (other backticked words may follow, e.g.
//!   another build's default), or words without backticks (`off`, `none`) where there is none.

use crate::help::Flag;

/// The binaries whose `--help` the README documents.
pub const BINARIES: [&str; 3] = ["drone", "cache-server", "client"];

/// Which README heading's table documents which binaries' flags.
const TABLES: [(&str, &[&str]); 4] = [
    ("drone", &["drone"]),
    ("cache-server", &["cache-server"]),
    ("Both servers (drone and cache-server)", &["drone", "cache-server"]),
    ("client", &["client"]),
];

const COLUMNS: [&str; 4] = ["flag", "environment", "default", "meaning"];

/// One row of a README flag table.
#[derive(Debug)]
pub struct Row {
    /// The heading of its table.
    pub table: &'static str,
    /// `--listen`, or a positional argument's name.
    pub name: String,
    /// The environment variable, if the row names one.
    pub env: Option<String>,
    /// Every backticked value in the default column.
    pub defaults: Vec<String>,
}

/// Every row of every flag table in `readme`; an error if a table is missing or malformed.
pub fn parse(readme: &str) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (heading, _) in TABLES {
        let section = section(readme, heading)
            .ok_or_else(|| anyhow::anyhow!("README.md has no `### {heading}` section"))?;
        let mut table = section.lines().skip_while(|l| !l.starts_with('|'));
        let header = cells(table.next().unwrap_or_default());
        anyhow::ensure!(
            header == COLUMNS,
            "README.md `### {heading}`: the flag table's columns must be {COLUMNS:?}, not {header:?}"
        );
        for line in table.skip(1).take_while(|l| l.starts_with('|')) {
            let cells = cells(line);
            let [flag, env, default, _] = cells.as_slice() else {
                anyhow::bail!("README.md `### {heading}`: not four cells: {line}");
            };
            let name = code_spans(flag)
                .into_iter()
                .next()
                .and_then(|span| span.split_whitespace().next().map(str::to_owned));
            let name = name.ok_or_else(|| {
                anyhow::anyhow!("README.md `### {heading}`: no `--flag` in the first cell: {line}")
            })?;
            rows.push(Row {
                table: heading,
                name,
                env: code_spans(env).into_iter().next(),
                defaults: code_spans(default),
            });
        }
    }
    Ok(rows)
}

/// What is wrong between `bin`'s `--help` (`flags`) and the README's rows for it.
pub fn compare(bin: &str, flags: &[Flag], rows: &[Row]) -> Vec<String> {
    let tables: Vec<&str> =
        TABLES.iter().filter(|(_, bins)| bins.contains(&bin)).map(|(h, _)| *h).collect();
    let ours: Vec<&Row> = rows.iter().filter(|r| tables.contains(&r.table)).collect();
    let where_ = tables.iter().map(|t| format!("`### {t}`")).collect::<Vec<_>>().join(" or ");
    let mut problems = Vec::new();
    for flag in flags {
        let rows: Vec<&&Row> = ours.iter().filter(|r| r.name == flag.name).collect();
        let [row] = rows.as_slice() else {
            problems.push(match rows.len() {
                0 => format!(
                    "{bin}: `{bin} --help` has {}, which no README table for {bin} ({where_}) \
                     lists; add a row: | `{} …` | {} | {} | … |",
                    flag.name,
                    flag.name,
                    flag.env.as_deref().map_or("—".to_owned(), |e| format!("`{e}`")),
                    flag.default.as_deref().map_or("off".to_owned(), |d| format!("`{d}`")),
                ),
                n => format!("{bin}: {} is in {n} README rows for {bin}; keep one", flag.name),
            });
            continue;
        };
        if row.env != flag.env {
            problems.push(format!(
                "{bin} {}: `--help` says environment variable {}, the README (`### {}`) says {}",
                flag.name,
                shown(flag.env.as_deref()),
                row.table,
                shown(row.env.as_deref()),
            ));
        }
        let default_ok = match &flag.default {
            Some(default) => row.defaults.contains(default),
            None => row.defaults.is_empty(),
        };
        if !default_ok {
            problems.push(format!(
                "{bin} {}: `--help` says default {}, the README (`### {}`) says {}",
                flag.name,
                shown(flag.default.as_deref()),
                row.table,
                if row.defaults.is_empty() { "none".to_owned() } else { row.defaults.join(", ") },
            ));
        }
    }
    for row in ours {
        if !flags.iter().any(|f| f.name == row.name) {
            problems.push(format!(
                "{bin}: the README (`### {}`) lists {}, which `{bin} --help` does not have",
                row.table, row.name
            ));
        }
    }
    problems
}

fn shown(value: Option<&str>) -> String {
    value.map_or("none".to_owned(), |v| format!("`{v}`"))
}

/// The text under `### heading`, up to the next heading.
fn section<'a>(text: &'a str, heading: &str) -> Option<&'a str> {
    let start = text.find(&format!("\n### {heading}\n"))? + heading.len() + 6;
    let rest = &text[start..];
    Some(&rest[..rest.find("\n#").unwrap_or(rest.len())])
}

/// The cells of a table row, trimmed (no `|` inside cells: the tables do not escape any).
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_owned()).collect()
}

/// The contents of every `code span` in `text`.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "intro\n\n### drone\n\n| flag | environment | default | meaning |\n|---|---|---|---|\n| `--listen ADDR` | `DRONE_LISTEN` | `0.0.0.0:9999` | where |\n| `--gone` | — | off | removed |\n\n### cache-server\n\n| flag | environment | default | meaning |\n|---|---|---|---|\n\n### Both servers (drone and cache-server)\n\n| flag | environment | default | meaning |\n|---|---|---|---|\n| `--max-viewers N` | `DRONECAST_MAX_VIEWERS` | `10000` | most |\n\n### client\n\n| flag | environment | default | meaning |\n|---|---|---|---|\n";

    fn flag(name: &str, env: Option<&str>, default: Option<&str>) -> Flag {
        Flag { name: name.into(), env: env.map(Into::into), default: default.map(Into::into) }
    }

    #[test]
    fn every_drift_is_named_with_the_binary_and_the_flag() -> anyhow::Result<()> {
        let rows = parse(README)?;
        let help = [
            flag("--listen", Some("DRONE_LISTEN"), Some("127.0.0.1:9999")),
            flag("--max-viewers", Some("DRONECAST_VIEWERS"), Some("10000")),
            flag("--fresh", Some("DRONE_FRESH"), Some("1")),
        ];
        let problems = compare("drone", &help, &rows);
        let expect = [
            "drone --listen: `--help` says default `127.0.0.1:9999`",
            "drone --max-viewers: `--help` says environment variable `DRONECAST_VIEWERS`",
            "drone: `drone --help` has --fresh, which no README table for drone",
            "| `--fresh …` | `DRONE_FRESH` | `1` | … |",
            "drone: the README (`### drone`) lists --gone, which `drone --help` does not have",
        ];
        for want in expect {
            assert!(problems.iter().any(|p| p.contains(want)), "no {want:?} in {problems:#?}");
        }
        assert_eq!(problems.len(), 4, "{problems:#?}");
        // The shared table's row counts for the cache-server too.
        let problems = compare("cache-server", &[], &rows);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("--max-viewers"), "{problems:?}");
        Ok(())
    }

    #[test]
    fn a_table_without_the_environment_column_is_refused() {
        let old = README.replacen(
            "| flag | environment | default | meaning |",
            "| flag | default | meaning |",
            1,
        );
        let err = parse(&old).expect_err("old layout");
        assert!(err.to_string().contains("`### drone`"), "{err}");
    }
}
