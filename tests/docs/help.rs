//! Reading clap's `--help`: each option and argument with its environment variable and its
//! default, from the `[env: NAME=]` and `[default: VALUE]` notes clap appends.

/// One option (`--listen`) or positional argument (`SERVER`) as `--help` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// `--listen`, or the positional argument's name without brackets (`SERVER`).
    pub name: String,
    /// The environment variable, if any.
    pub env: Option<String>,
    /// The default value, if any.
    pub default: Option<String>,
}

/// Flags every clap program has; the README does not list them.
const UNIVERSAL: [&str; 2] = ["--help", "--version"];

/// The options and arguments of one `--help` text, in order.
pub fn parse(help: &str) -> Vec<Flag> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut section = "";
    for line in help.lines() {
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        let starts = match section {
            "Options" => indent <= 6 && text.starts_with('-'),
            "Arguments" => indent <= 2 && (text.starts_with('[') || text.starts_with('<')),
            _ => continue,
        };
        if starts {
            entries.push((entry_name(section, text), text.to_owned()));
        } else if let Some((_, description)) = entries.last_mut() {
            description.push(' ');
            description.push_str(text);
        }
    }
    entries
        .into_iter()
        .filter(|(name, _)| !UNIVERSAL.contains(&name.as_str()))
        .map(|(name, text)| Flag {
            env: note(&text, "[env: ", '='),
            default: note(&text, "[default: ", ']'),
            name,
        })
        .collect()
}

/// `--listen` of `--listen <LISTEN>  Address…`, `--help` of `-h, --help`, `SERVER` of
/// `[SERVER]  The cache-server…`.
fn entry_name(section: &str, text: &str) -> String {
    let mut words = text.split_whitespace();
    let word = if section == "Options" {
        words.find(|w| w.starts_with("--")).unwrap_or_default()
    } else {
        words.next().unwrap_or_default()
    };
    word.trim_end_matches(',').trim_end_matches("...").trim_matches(['[', ']', '<', '>']).to_owned()
}

/// The text after `open` up to `close`, e.g. the `X` of `[default: X]`.
fn note(text: &str, open: &str, close: char) -> Option<String> {
    let rest = &text[text.find(open)? + open.len()..];
    Some(rest[..rest.find(close)?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_layouts_of_clap_help() {
        let help = "Does things\n\nUsage: x [OPTIONS] [SERVER]\n\nArguments:\n  [SERVER]  Where [env: X_SERVER=] [default: 127.0.0.1:1]\n\nOptions:\n      --listen <LISTEN>  Address [env: X_LISTEN=] [default: 0.0.0.0:9]\n      --json\n          Print JSON\n      --max <N>\n          Most,\n          really [default: 5]\n  -h, --help  Print help\n";
        let flag = |name: &str, env: Option<&str>, default: Option<&str>| Flag {
            name: name.into(),
            env: env.map(Into::into),
            default: default.map(Into::into),
        };
        assert_eq!(
            parse(help),
            [
                flag("SERVER", Some("X_SERVER"), Some("127.0.0.1:1")),
                flag("--listen", Some("X_LISTEN"), Some("0.0.0.0:9")),
                flag("--json", None, None),
                flag("--max", None, Some("5")),
            ]
        );
    }
}
