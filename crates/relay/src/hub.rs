//! [`Hub`]: what every server port of one process shares — its streams, the viewer places
//! and the counters of who was refused or dropped, and why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::ServerConfig;
use crate::stream::Stream;

/// Why a stream could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddStreamError {
    /// The name is taken.
    #[error("there is already a stream named '{0}'")]
    Exists(String),
    /// The name cannot be used.
    #[error("'{0}' is not a usable stream name (letters, digits, '-', '_' and '.', up to 64)")]
    BadName(String),
    /// The hub serves as many streams as it may.
    #[error("already {0} streams, the most this server may serve (--max-streams)")]
    TooMany(usize),
}

/// A stream name: 1 to 64 of ASCII letters, digits, `-`, `_` and `.`, not starting with a
/// dot. Names appear in URL paths and metric labels, so they are kept plain.
pub fn valid_stream_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Counts by reason; the reasons are a fixed set of words, so the table stays small.
#[derive(Debug, Default)]
pub struct ReasonCounts(Mutex<BTreeMap<&'static str, u64>>);

impl ReasonCounts {
    /// Counts one more for `reason`.
    pub fn add(&self, reason: &'static str) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(reason).or_default() += 1;
        }
    }

    /// Every reason with its count.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        match self.0.lock() {
            Ok(counts) => counts.iter().map(|(k, v)| (*k, *v)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The count for `reason`.
    pub fn get(&self, reason: &str) -> u64 {
        self.0.lock().ok().and_then(|c| c.get(reason).copied()).unwrap_or(0)
    }
}

/// The streams a process serves and the limits all its ports share.
#[derive(Debug)]
pub struct Hub {
    config: Arc<ServerConfig>,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Other names a stream answers to (a drone's own name for the stream a cache-server
    /// relays from it as `default`).
    aliases: RwLock<BTreeMap<String, String>>,
    default_stream: RwLock<Option<String>>,
    /// Bumped whenever the set of streams changes, for viewers that follow the list.
    changes: tokio::sync::watch::Sender<u64>,
    slots: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    started: Instant,
    /// Viewers refused, by reason (`full`, `unknown_stream` …).
    pub refused: ReasonCounts,
    /// Viewers dropped while watching or in their handshake, by reason (`stalled` …).
    pub dropped: ReasonCounts,
}

impl Hub {
    /// A hub with no streams yet.
    pub fn new(config: ServerConfig) -> Arc<Hub> {
        Arc::new(Hub {
            slots: Arc::new(Semaphore::new(config.max_viewers)),
            handshakes: Arc::new(Semaphore::new(config.max_handshakes)),
            config: Arc::new(config),
            streams: RwLock::new(BTreeMap::new()),
            aliases: RwLock::new(BTreeMap::new()),
            default_stream: RwLock::new(None),
            changes: tokio::sync::watch::Sender::new(0),
            started: Instant::now(),
            refused: ReasonCounts::default(),
            dropped: ReasonCounts::default(),
        })
    }

    /// A hub serving one stream named `name`, which is also the default.
    pub fn single(config: ServerConfig, stream: Stream) -> (Arc<Hub>, Arc<Stream>) {
        let hub = Hub::new(config);
        let stream = Arc::new(stream);
        if let Ok(mut streams) = hub.streams.write() {
            streams.insert(stream.name().to_owned(), stream.clone());
        }
        if let Ok(mut default) = hub.default_stream.write() {
            *default = Some(stream.name().to_owned());
        }
        (hub, stream)
    }

    /// Adds a stream; the first one added is the default.
    pub fn add_stream(&self, stream: Stream) -> Result<Arc<Stream>, AddStreamError> {
        let name = stream.name().to_owned();
        if !valid_stream_name(&name) {
            return Err(AddStreamError::BadName(name));
        }
        let Ok(mut streams) = self.streams.write() else {
            return Err(AddStreamError::Exists(name));
        };
        if streams.contains_key(&name) {
            return Err(AddStreamError::Exists(name));
        }
        if streams.len() >= self.config.max_streams {
            return Err(AddStreamError::TooMany(self.config.max_streams));
        }
        let stream = Arc::new(stream);
        streams.insert(name.clone(), stream.clone());
        drop(streams);
        if let Ok(mut default) = self.default_stream.write() {
            default.get_or_insert(name);
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(stream)
    }

    /// Removes a stream (and any alias of it). Its viewers are told the stream ended once
    /// its source lets go of it. Returns it, if there was one.
    pub fn remove_stream(&self, name: &str) -> Option<Arc<Stream>> {
        let removed = self.streams.write().ok()?.remove(name);
        if removed.is_some() {
            if let Ok(mut aliases) = self.aliases.write() {
                aliases.retain(|_, target| target != name);
            }
            if let Ok(mut default) = self.default_stream.write() {
                if default.as_deref() == Some(name) {
                    *default = self.streams.read().ok().and_then(|s| s.keys().next().cloned());
                }
            }
            self.changes.send_modify(|n| *n += 1);
        }
        removed
    }

    /// Lets viewers ask for stream `target` as `alias` too; no-op when `alias` is already a
    /// stream's name or not a usable name.
    pub fn set_alias(&self, alias: &str, target: &str) {
        let taken = self.streams.read().is_ok_and(|s| s.contains_key(alias));
        if taken || !valid_stream_name(alias) {
            return;
        }
        if let Ok(mut aliases) = self.aliases.write() {
            if aliases.get(alias).map(String::as_str) != Some(target) {
                aliases.insert(alias.to_owned(), target.to_owned());
                drop(aliases);
                self.changes.send_modify(|n| *n += 1);
            }
        }
    }

    /// A receiver that sees the set of streams change.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The stream named `name` (or so aliased); the default stream for an empty name.
    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        let streams = self.streams.read().ok()?;
        if name.is_empty() {
            let default = self.default_stream.read().ok()?;
            return streams.get(default.as_deref()?).cloned();
        }
        if let Some(stream) = streams.get(name) {
            return Some(stream.clone());
        }
        let aliases = self.aliases.read().ok()?;
        streams.get(aliases.get(name)?).cloned()
    }

    /// Every alias, with the stream it names.
    pub fn aliases(&self) -> Vec<(String, String)> {
        self.aliases
            .read()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// The default stream, if there is one.
    pub fn default_stream(&self) -> Option<Arc<Stream>> {
        self.stream("")
    }

    /// Every stream, by name.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.read().map(|s| s.values().cloned().collect()).unwrap_or_default()
    }

    /// Every stream's name, for viewers that follow the list.
    pub fn stream_names(&self) -> Vec<String> {
        self.streams.read().map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    /// What a viewer may ask for, for a refusal that lists it: every stream's name, then
    /// each alias with the stream it stands for (`cam1 (= default)`).
    pub fn names_for_people(&self) -> String {
        let mut names = self.stream_names();
        names.extend(self.aliases().into_iter().map(|(a, target)| format!("{a} (= {target})")));
        if names.is_empty() { "no streams".to_owned() } else { names.join(", ") }
    }

    /// How viewers are served.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Viewer places, shared by every port and protocol.
    pub(crate) fn slots(&self) -> &Arc<Semaphore> {
        &self.slots
    }

    /// Places for connections that have not yet said what they want.
    pub(crate) fn handshakes(&self) -> &Arc<Semaphore> {
        &self.handshakes
    }

    /// Viewers connected now, over every stream and protocol.
    pub fn viewers(&self) -> usize {
        self.streams().iter().map(|s| s.viewers().count()).sum()
    }

    /// Seconds since the hub was made.
    pub fn uptime_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_plain() {
        for good in ["default", "front-door", "cam_2", "a.b", "X"] {
            assert!(valid_stream_name(good), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "ünï", "*", &"x".repeat(65)] {
            assert!(!valid_stream_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_first_stream_is_the_default_and_names_are_unique() {
        let hub = Hub::new(ServerConfig::default());
        hub.add_stream(Stream::with_default_limit("front")).expect("added");
        hub.add_stream(Stream::with_default_limit("back")).expect("added");
        assert!(hub.add_stream(Stream::with_default_limit("back")).is_err());
        assert_eq!(hub.stream("").map(|s| s.name().to_owned()).as_deref(), Some("front"));
        assert_eq!(hub.stream_names(), ["back", "front"]);
        assert!(hub.stream("side").is_none());
    }
}
