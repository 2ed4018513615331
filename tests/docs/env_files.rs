//! The packaged environment files (`crates/<server>/debian/<server>.env`, installed as
//! `/etc/dronecast/<server>.env`) against the server's `--help`: every flag's variable is
//! there, commented out, showing the flag's default (or, for a flag without one, an example
//! value); nothing is set (the defaults live in the binary); no variable the server does not
//! know, but `RUST_LOG`.

use crate::help::Flag;

/// Each server and its environment file, from the repository's root.
pub const FILES: [(&str, &str); 2] = [
    ("drone", "crates/drone/debian/drone.env"),
    ("cache-server", "crates/cache-server/debian/cache-server.env"),
];

/// Defaults that differ in the packaged build: the package's drone is built with the camera
/// feature (scripts/package.sh), whose default source is `camera`.
const PACKAGE_DEFAULTS: [(&str, &str, &str); 1] = [("drone", "DRONE_SOURCE", "camera")];

/// Variables every file may list that are no flag.
const EXTRA: [&str; 1] = ["RUST_LOG"];

/// What is wrong between `bin`'s `--help` (`flags`) and its environment file (`text`, at
/// `path`). `packaged`: `flags` come from the packaged binary itself, so no default may differ.
pub fn compare(bin: &str, path: &str, flags: &[Flag], text: &str, packaged: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed: Vec<(&str, &str)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        match line.strip_prefix('#').and_then(assignment) {
            Some(pair) => listed.push(pair),
            None if line.starts_with('#') => {}
            None => {
                problems.push(format!("{path}: `{line}` sets something; keep every line commented"))
            }
        }
    }
    for flag in flags {
        let Some(var) = flag.env.as_deref() else { continue };
        let Some(&(_, value)) = listed.iter().find(|(name, _)| *name == var) else {
            problems.push(format!("{path}: no `#{var}=…` line for {bin} {}", flag.name));
            continue;
        };
        let Some(default) = flag.default.as_deref() else { continue };
        let package_default = !packaged && PACKAGE_DEFAULTS.contains(&(bin, var, value));
        if value != default && !package_default {
            problems.push(format!(
                "{path}: `#{var}={value}`, but `{bin} --help` says the default is `{default}`"
            ));
        }
    }
    for (name, _) in &listed {
        if !EXTRA.contains(name) && !flags.iter().any(|f| f.env.as_deref() == Some(*name)) {
            problems.push(format!("{path}: lists {name}, which `{bin} --help` does not know"));
        }
    }
    problems
}

/// `NAME=value` of a commented-out setting (`NAME` in capitals, digits and `_`).
fn assignment(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once('=')?;
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    ok.then_some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str, env: Option<&str>, default: Option<&str>) -> Flag {
        Flag { name: name.into(), env: env.map(Into::into), default: default.map(Into::into) }
    }

    #[test]
    fn every_drift_is_named() {
        let flags = [
            flag("--listen", Some("DRONE_LISTEN"), Some("0.0.0.0:9999")),
            flag("--source", Some("DRONE_SOURCE"), Some("test")),
            flag("--fps", Some("DRONE_FPS"), Some("30")),
            flag("--meta-from", Some("DRONE_META_FROM"), None),
        ];
        let text = "# comment\n#DRONE_LISTEN=0.0.0.0:1\n#DRONE_SOURCE=camera\n\
                    #DRONE_META_FROM=udp:127.0.0.1:7000\n#DRONE_GONE=1\n#RUST_LOG=info\nX=1\n";
        let problems = compare("drone", "drone.env", &flags, text, false);
        let expect = [
            "`X=1` sets something",
            "`#DRONE_LISTEN=0.0.0.0:1`, but `drone --help` says the default is `0.0.0.0:9999`",
            "no `#DRONE_FPS=…` line for drone --fps",
            "lists DRONE_GONE",
        ];
        for want in expect {
            assert!(problems.iter().any(|p| p.contains(want)), "no {want:?} in {problems:#?}");
        }
        assert_eq!(problems.len(), 4, "{problems:#?}");
        // Against the packaged binary the camera default must be what it says.
        let problems = compare("drone", "drone.env", &flags, text, true);
        assert!(problems.iter().any(|p| p.contains("#DRONE_SOURCE=camera")), "{problems:#?}");
    }
}
