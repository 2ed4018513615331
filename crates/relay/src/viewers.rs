//! [`ViewerTable`]: who watches a stream, over which protocol, and how it is going for each.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

/// How a viewer is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The dronecast protocol (`docs/PROTOCOL.md`).
    Tcp,
    /// MJPEG over HTTP (`multipart/x-mixed-replace`).
    Http,
}

impl Protocol {
    /// `"tcp"` or `"http"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
        }
    }
}

/// What a viewer said about itself when it joined.
#[derive(Debug, Clone)]
pub struct ViewerIdentity {
    /// Its address.
    pub peer: SocketAddr,
    /// How it is connected.
    pub protocol: Protocol,
    /// The program (a hello's agent, an HTTP User-Agent), escaped for printing.
    pub agent: String,
    /// The viewer's name for itself (a hello's name); empty when it gave none.
    pub name: String,
}

/// One viewer's entry: its identity and counters, updated by its task as it goes.
#[derive(Debug)]
pub struct ViewerEntry {
    id: u64,
    identity: ViewerIdentity,
    since: SystemTime,
    joined: Instant,
    frames_sent: AtomicU64,
    frames_skipped: AtomicU64,
    bytes_sent: AtomicU64,
    frame_age_us: AtomicU64,
    /// The stream's publish count (of the layer picked from) when this viewer last picked a
    /// frame; 0 before the first.
    last_pick: AtomicU64,
    /// The quality layer it is sent (0: the full picture).
    layer: AtomicUsize,
    layer_switches: AtomicU64,
    messages_sent: AtomicU64,
    messages_dropped: AtomicU64,
}

impl ViewerEntry {
    /// Counts a frame of `layer` handed to this viewer: `published` is the layer's publish
    /// count when it was picked (frames published in between were skipped). Returns how many
    /// frames it skipped; none across a change of layer.
    pub(crate) fn picked(&self, layer: usize, published: u64) -> u64 {
        if self.layer.swap(layer, Ordering::Relaxed) != layer {
            self.last_pick.store(published, Ordering::Relaxed);
            return 0;
        }
        let before = self.last_pick.swap(published, Ordering::Relaxed);
        let skipped = if before == 0 { 0 } else { published.saturating_sub(before + 1) };
        if skipped > 0 {
            self.frames_skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        skipped
    }

    /// Counts a frame written whole.
    pub(crate) fn sent(&self, bytes: usize, capture_us: u64) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        let age = crate::clock::now_us().saturating_sub(capture_us);
        self.frame_age_us.store(age, Ordering::Relaxed);
    }

    /// Counts a change of layer made for this viewer (down or up).
    pub(crate) fn switched_layer(&self) {
        self.layer_switches.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames written to this viewer so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent.load(Ordering::Relaxed)
    }

    /// Counts a message from this viewer handed to the source (`taken`) or dropped.
    pub(crate) fn message(&self, taken: bool) {
        let counter = if taken { &self.messages_sent } else { &self.messages_dropped };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The viewer's identity.
    pub fn identity(&self) -> &ViewerIdentity {
        &self.identity
    }

    /// Frames skipped so far, when the stream has published `published` of this viewer's
    /// layer: those counted at its picks, and those going by it now — every frame published
    /// since its last pick but the newest, which it may still take. A viewer stuck on one
    /// write skips every frame meanwhile, and says so before its next pick (which may never
    /// come).
    fn frames_skipped(&self, published: u64) -> u64 {
        let counted = self.frames_skipped.load(Ordering::Relaxed);
        let last = self.last_pick.load(Ordering::Relaxed);
        let going_by = if last == 0 { 0 } else { published.saturating_sub(last + 1) };
        counted + going_by
    }
}

/// A viewer as `/state` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ViewerSnapshot {
    /// Unique within this process.
    pub id: u64,
    /// `tcp` or `http`.
    pub protocol: Protocol,
    /// Its address.
    pub peer: String,
    /// The program it says it is.
    pub agent: String,
    /// The name it gave itself.
    pub name: String,
    /// When it joined, seconds since the Unix epoch.
    pub since_unix_s: f64,
    /// Seconds connected.
    pub connected_s: f64,
    /// Frames written to it.
    pub frames_sent: u64,
    /// Frames it skipped (its socket was busy while newer ones came).
    pub frames_skipped: u64,
    /// Bytes written to it.
    pub bytes_sent: u64,
    /// Age of the last frame written to it when the write completed, ms.
    pub frame_age_ms: f64,
    /// Messages it sent that were handed to the source.
    pub messages_sent: u64,
    /// Messages it sent that were dropped (over its rate, or the source's inbox full).
    pub messages_dropped: u64,
    /// The quality layer it is sent (0: the full picture).
    pub layer: usize,
    /// Times its layer was changed for it.
    pub layer_switches: u64,
}

/// The viewers of one stream.
#[derive(Debug)]
pub struct ViewerTable {
    entries: Mutex<BTreeMap<u64, Arc<ViewerEntry>>>,
    count: watch::Sender<usize>,
}

impl Default for ViewerTable {
    fn default() -> Self {
        ViewerTable { entries: Mutex::new(BTreeMap::new()), count: watch::Sender::new(0) }
    }
}

/// Ids shared by every table, so that a viewer's id is unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ViewerTable {
    /// Adds a viewer; it stays in the table until the returned guard is dropped.
    pub fn join(self: &Arc<Self>, identity: ViewerIdentity) -> ViewerGuard {
        let entry = Arc::new(ViewerEntry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            identity,
            since: SystemTime::now(),
            joined: Instant::now(),
            frames_sent: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            frame_age_us: AtomicU64::new(0),
            last_pick: AtomicU64::new(0),
            layer: AtomicUsize::new(0),
            layer_switches: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            messages_dropped: AtomicU64::new(0),
        });
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(entry.id, entry.clone());
        }
        self.count.send_modify(|n| *n += 1);
        ViewerGuard { table: self.clone(), entry }
    }

    /// Viewers connected now.
    pub fn count(&self) -> usize {
        *self.count.borrow()
    }

    /// Viewers connected now over `protocol`.
    pub fn count_of(&self, protocol: Protocol) -> usize {
        let Ok(entries) = self.entries.lock() else { return 0 };
        entries.values().filter(|e| e.identity.protocol == protocol).count()
    }

    /// A receiver that sees the count change, for work that should run only while somebody
    /// watches.
    pub fn watch_count(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }

    /// Every viewer, oldest first, when the stream has published `published(layer)` frames
    /// of each layer.
    pub fn snapshot(&self, published: impl Fn(usize) -> u64) -> Vec<ViewerSnapshot> {
        let entries: Vec<Arc<ViewerEntry>> = match self.entries.lock() {
            Ok(entries) => entries.values().cloned().collect(),
            Err(_) => return Vec::new(),
        };
        let now = SystemTime::now();
        entries
            .iter()
            .map(|e| (e, e.layer.load(Ordering::Relaxed)))
            .map(|(e, layer)| ViewerSnapshot {
                id: e.id,
                protocol: e.identity.protocol,
                peer: e.identity.peer.to_string(),
                agent: e.identity.agent.clone(),
                name: e.identity.name.clone(),
                since_unix_s: e.since.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64(),
                connected_s: now.duration_since(e.since).unwrap_or_default().as_secs_f64(),
                frames_sent: e.frames_sent.load(Ordering::Relaxed),
                frames_skipped: e.frames_skipped(published(layer)),
                bytes_sent: e.bytes_sent.load(Ordering::Relaxed),
                frame_age_ms: e.frame_age_us.load(Ordering::Relaxed) as f64 / 1000.0,
                messages_sent: e.messages_sent.load(Ordering::Relaxed),
                messages_dropped: e.messages_dropped.load(Ordering::Relaxed),
                layer,
                layer_switches: e.layer_switches.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// A viewer's place in a [`ViewerTable`]; leaving the table when dropped.
#[derive(Debug)]
pub struct ViewerGuard {
    table: Arc<ViewerTable>,
    entry: Arc<ViewerEntry>,
}

impl ViewerGuard {
    /// The viewer's entry, to count what it is sent.
    pub fn entry(&self) -> &ViewerEntry {
        &self.entry
    }

    /// The entry, shared (with the viewer's [`crate::delivery::Delivery`]).
    pub fn shared_entry(&self) -> Arc<ViewerEntry> {
        self.entry.clone()
    }

    /// How long it has been connected.
    pub fn connected_for(&self) -> std::time::Duration {
        self.entry.joined.elapsed()
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        if let Ok(mut entries) = self.table.entries.lock() {
            entries.remove(&self.entry.id);
        }
        self.table.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(protocol: Protocol) -> ViewerIdentity {
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        ViewerIdentity { peer, protocol, agent: "t".into(), name: String::new() }
    }

    #[test]
    fn viewers_join_count_and_leave() {
        let table = Arc::new(ViewerTable::default());
        let a = table.join(identity(Protocol::Tcp));
        let b = table.join(identity(Protocol::Http));
        assert_eq!((table.count(), table.count_of(Protocol::Http)), (2, 1));
        drop(a);
        assert_eq!(table.count(), 1);
        assert_eq!(table.snapshot(|_| 0)[0].protocol, Protocol::Http);
        drop(b);
        assert_eq!(table.count(), 0);
    }

    #[test]
    fn skipped_frames_are_the_gap_in_the_publish_count() {
        let table = Arc::new(ViewerTable::default());
        let v = table.join(identity(Protocol::Tcp));
        assert_eq!(v.entry().picked(0, 7), 0, "the first frame skips nothing");
        assert_eq!(v.entry().picked(0, 8), 0);
        assert_eq!(v.entry().picked(0, 12), 3);
        assert_eq!(table.snapshot(|_| 12)[0].frames_skipped, 3);
        assert_eq!(v.entry().picked(1, 40), 0, "another layer's count is not a gap");
        assert_eq!(v.entry().picked(1, 42), 1);
    }

    #[test]
    fn a_viewer_stuck_on_a_write_is_skipping_every_frame_meanwhile() {
        let table = Arc::new(ViewerTable::default());
        let v = table.join(identity(Protocol::Http));
        assert_eq!(table.snapshot(|_| 5)[0].frames_skipped, 0, "nothing picked yet");
        v.entry().picked(0, 5);
        assert_eq!(table.snapshot(|_| 6)[0].frames_skipped, 0, "it may still take frame 6");
        assert_eq!(table.snapshot(|_| 9)[0].frames_skipped, 3, "6, 7 and 8 went by");
        assert_eq!(v.entry().picked(0, 9), 3, "counted once, at the pick");
        assert_eq!(table.snapshot(|_| 9)[0].frames_skipped, 3);
    }
}
