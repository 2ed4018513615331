//! Logging for the binaries: stderr, one line per event, in text or JSON.
//!
//! - On a terminal: tracing's usual text lines, in colour.
//! - Anywhere else (a pipe, a file, the journal): the same lines without any escape code, and
//!   an event whose text holds a line break (an error from a library, say) still makes one
//!   line, the break written as `\n`.
//! - Into the journal (systemd's `JOURNAL_STREAM` names our stderr): no timestamp, since the
//!   journal stamps every line itself, and each line starts with its syslog priority (`<4>` for
//!   a warning), so that `journalctl -p warning` and the journal's colours know the levels.
//! - `--log-format json`: one JSON object per line (`timestamp`, `level`, `message`, the
//!   event's fields, `target`, `span`), for log shippers; JSON has no raw control characters.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written: `Text`, one line of text per event, or `Json`, one JSON object
/// per line.
// The variants have no doc comments of their own: clap would show them as descriptions of the
// possible values, and that turns every binary's `--help` into its long layout.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The logging flag every binary has.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// How log lines on stderr look: `text` (one line per event; colours only on a terminal)
    /// or `json` (one JSON object per line, for log shippers). RUST_LOG sets the level.
    #[arg(
        long,
        env = "DRONECAST_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT",
        value_enum,
        global = true
    )]
    pub log_format: LogFormat,
}

/// The format [`init_logging`] set up, for the last line `main` writes
/// ([`exit_code`](crate::exit_code)).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format logging was set up with (text if it was not).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Logs to stderr in `format`; `RUST_LOG` overrides the default level (`info`). Colours only
/// when stderr is a terminal, so that a journal or a log file gets plain lines.
pub fn init_logging(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let terminal = std::io::stderr().is_terminal();
    match format {
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init();
        }
        LogFormat::Text if terminal => builder.with_ansi(true).init(),
        LogFormat::Text if stderr_is_journal() => {
            let format = tracing_subscriber::fmt::format().with_ansi(false).without_time();
            builder.with_ansi(false).event_format(OneLine { inner: format, priority: true }).init();
        }
        LogFormat::Text => {
            let format = tracing_subscriber::fmt::format().with_ansi(false);
            builder
                .with_ansi(false)
                .event_format(OneLine { inner: format, priority: false })
                .init();
        }
    }
}

/// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM` to its
/// `device:inode`, which a child with another stderr inherits but does not match.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else { return false };
    let ours = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| std::fs::File::from(fd).metadata());
    ours.is_ok_and(|m| dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()))
}

/// An event format that makes sure each event is one line: the inner format's text with any
/// line break written as `\n` (or `\r`), optionally after the event's syslog priority.
struct OneLine<F> {
    inner: F,
    /// Start the line with `<N>`, the syslog priority the journal reads.
    priority: bool,
}

impl<S, N, F> FormatEvent<S, N> for OneLine<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        if self.priority {
            write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        }
        writer.write_str(&one_line(&line))?;
        writer.write_char('\n')
    }
}

/// `text` without its final line break, every other one escaped.
fn one_line(text: &str) -> String {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.replace('\n', "\\n").replace('\r', "\\r")
}

/// The syslog priority of a level: error 3, warning 4, info 6, debug and trace 7.
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_line_whatever_its_text() {
        assert_eq!(one_line("a\nb\r\nc\n"), "a\\nb\\r\\nc");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(Level::ERROR), 3);
        assert_eq!(syslog_priority(Level::WARN), 4);
        assert_eq!(syslog_priority(Level::INFO), 6);
        assert_eq!(syslog_priority(Level::TRACE), 7);
    }

    #[test]
    fn a_test_runner_is_not_the_journal() {
        // cargo test's stderr is a pipe or a terminal, never the journal stream (unless the
        // variable happens to name it, which it cannot outside systemd).
        if std::env::var_os("JOURNAL_STREAM").is_none() {
            assert!(!stderr_is_journal());
        }
    }
}
