//! The test process's own log, captured in memory so that a test can assert on what the
//! servers said about a peer.
//!
//! One global subscriber is installed for the whole test binary (the tasks of a multi-thread
//! runtime run on its worker threads, which a thread-local default would not reach). Tests
//! running side by side share it; each finds its own lines by the peer addresses it used.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use super::PATIENCE;

/// Room reserved up front, so that the buffer never reallocates (and copies) during a test:
/// the memory test then counts the log's growth as exactly the bytes written into it.
const RESERVED: usize = 64 * 1024 * 1024;

/// Everything logged since the binary started.
#[derive(Clone)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

/// Installs the capture (once) and returns it.
pub fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs(Arc::new(Mutex::new(Vec::with_capacity(RESERVED))));
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        // Fails only if something else installed one first; the capture then stays empty
        // and the assertions say so.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

impl Logs {
    /// Bytes logged so far: a mark to search from, so that a test sees only its own lines.
    pub fn len(&self) -> usize {
        self.0.lock().map(|log| log.len()).unwrap_or_default()
    }

    /// The text logged since `mark` (a [`Logs::len`]).
    fn since(&self, mark: usize) -> String {
        let Ok(log) = self.0.lock() else { return String::new() };
        String::from_utf8_lossy(log.get(mark..).unwrap_or_default()).into_owned()
    }

    /// Lines logged since `mark` that contain every one of `needles`.
    pub fn lines_with(&self, mark: usize, needles: &[&str]) -> Vec<String> {
        self.since(mark)
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect()
    }

    /// Waits for `count` lines since `mark` that contain every one of `needles`, and returns
    /// the first.
    pub async fn wait_for_n(
        &self,
        mark: usize,
        count: usize,
        needles: &[&str],
    ) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let lines = self.lines_with(mark, needles);
            if lines.len() >= count {
                return Ok(lines[0].clone());
            }
            if tokio::time::Instant::now() > deadline {
                let nearest = self.lines_with(mark, &needles[..1]);
                anyhow::bail!("no log line with {needles:?}; lines with {:?}:\n{}", needles[0], {
                    nearest.join("\n")
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a line since `mark` containing every one of `needles`, and returns it.
    pub async fn wait_for(&self, mark: usize, needles: &[&str]) -> anyhow::Result<String> {
        self.wait_for_n(mark, 1, needles).await
    }

    /// How many lines since `mark` that contain `needle` name each `peer=` address.
    pub fn peers_in_lines_with(&self, mark: usize, needle: &str) -> HashMap<String, usize> {
        let mut peers = HashMap::new();
        for line in self.since(mark).lines().filter(|line| line.contains(needle)) {
            let Some(at) = line.find("peer=") else { continue };
            let rest = &line[at + "peer=".len()..];
            let end = rest.find(['}', ' ']).unwrap_or(rest.len());
            *peers.entry(rest[..end].to_owned()).or_default() += 1;
        }
        peers
    }
}

/// One `write` per formatted event: the fmt layer writes each line whole.
pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.0.clone())
    }
}
