//! The streams a cache-server relays, kept in step with its configuration: one upstream link
//! per stream, and for a mirror (`HOST:PORT/*`) one link per stream the other relay lists,
//! added and removed as its list changes. Reloading the configuration (SIGHUP) starts what
//! is new and stops what is gone, leaving the rest alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use relay::{Backoff, Hub, Stream, SubscribeError, SubscribeOptions, Target, subscribe};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::spec::{DEFAULT_STREAM, StreamSpec};
use crate::upstream::{self, UpstreamStats};

/// Viewer messages that may wait for an upstream link; more are dropped and counted.
pub const MESSAGE_BACKLOG: usize = 1024;

/// What every link shares: how to dial and redial.
#[derive(Debug, Clone)]
pub(crate) struct Dialing {
    pub subscribe: SubscribeOptions,
    pub backoff: Backoff,
    /// The token upstreams want, unless a stream says otherwise.
    pub token: Option<String>,
    /// How to trust TLS upstreams, unless a stream says otherwise.
    pub trust: relay::tls::Trust,
}

impl Dialing {
    /// How to dial `spec`'s upstream: its token, TLS if it is `tls://`.
    fn options_for(&self, spec: &StreamSpec) -> anyhow::Result<SubscribeOptions> {
        let mut options = self.subscribe.clone();
        if let Some(token) = spec.token.as_ref().or(self.token.as_ref()) {
            options.token = bytes::Bytes::from(token.clone().into_bytes());
        }
        if spec.upstream.tls {
            let trust = spec.trust.as_ref().unwrap_or(&self.trust);
            options.tls = Some(relay::tls::client_config(trust)?);
        }
        if let Some(max) = spec.max_frame_bytes {
            options.max_message_len = max;
        }
        Ok(options)
    }
}

/// A running link (or mirror), stopped when dropped.
struct Running {
    spec: StreamSpec,
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// The stream it feeds (none for a mirror, whose streams are its own business).
    stats: Option<Arc<UpstreamStats>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The links of a cache-server.
pub(crate) struct Streams {
    hub: Arc<Hub>,
    dialing: Dialing,
    running: BTreeMap<String, Running>,
    shutdown: CancellationToken,
    /// Cancelled once the server runs: links wait for it before they dial, so that what
    /// they log follows the server's readiness line.
    go: CancellationToken,
}

impl Streams {
    pub fn new(hub: Arc<Hub>, dialing: Dialing, shutdown: CancellationToken) -> Streams {
        Streams { hub, dialing, running: BTreeMap::new(), shutdown, go: CancellationToken::new() }
    }

    /// Lets the links dial: the server runs.
    pub fn go(&self) {
        self.go.cancel();
    }

    /// The counters of the link feeding stream `key`, if one does.
    pub fn stats(&self, key: &str) -> Option<Arc<UpstreamStats>> {
        self.running.get(key).and_then(|r| r.stats.clone())
    }

    /// Starts what `specs` adds, stops what it no longer has, restarts what changed.
    pub fn apply(&mut self, specs: &[StreamSpec]) {
        let wanted: BTreeMap<String, &StreamSpec> = specs.iter().map(|s| (s.key(), s)).collect();
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(key, running)| wanted.get(*key).is_none_or(|spec| **spec != running.spec))
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            self.stop(&key);
        }
        for (key, spec) in wanted {
            if !self.running.contains_key(&key) {
                self.start(key, spec.clone());
            }
        }
    }

    fn stop(&mut self, key: &str) {
        if let Some(running) = self.running.remove(key) {
            info!(stream = key, "stream no longer configured; stopping it");
            running.stop.cancel();
            if running.stats.is_some() {
                self.hub.remove_stream(key);
            }
        }
    }

    fn start(&mut self, key: String, spec: StreamSpec) {
        let stop = self.shutdown.child_token();
        if spec.is_mirror() {
            let mirror = Mirror {
                hub: self.hub.clone(),
                dialing: self.dialing.clone(),
                target: spec.upstream.clone(),
                spec: spec.clone(),
                go: self.go.clone(),
            };
            let span = info_span!("mirror", addr = %spec.upstream.addr);
            let (go, stopped) = (self.go.clone(), stop.clone());
            let task = tokio::spawn(
                async move {
                    if wait_for(&go, &stopped).await {
                        mirror.run(stopped).await;
                    }
                }
                .instrument(span),
            );
            self.running.insert(key, Running { spec, stop, task, stats: None });
            return;
        }
        let go = self.go.clone();
        match start_link(
            &self.hub,
            &self.dialing,
            &key,
            &spec,
            spec.name.is_none(),
            go,
            stop.clone(),
        ) {
            Ok((stats, task)) => {
                self.running.insert(key, Running { spec, stop, task, stats: Some(stats) });
            }
            Err(err) => warn!(stream = %key, %err, "stream not started"),
        }
    }

    /// Stops every link and waits for them.
    pub async fn stop_all(mut self) {
        let running = std::mem::take(&mut self.running);
        for running in running.values() {
            running.stop.cancel();
        }
        for (_, mut running) in running {
            let _ = (&mut running.task).await;
        }
    }
}

/// Adds stream `name` to the hub and starts the link that feeds it from `spec`'s upstream.
/// Waits until `go` (true) or `stop` (false).
async fn wait_for(go: &CancellationToken, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = go.cancelled() => true,
        _ = stop.cancelled() => false,
    }
}

fn start_link(
    hub: &Arc<Hub>,
    dialing: &Dialing,
    name: &str,
    spec: &StreamSpec,
    alias: bool,
    go: CancellationToken,
    stop: CancellationToken,
) -> anyhow::Result<(Arc<UpstreamStats>, JoinHandle<()>)> {
    let options = dialing.options_for(spec)?;
    let mut backoff = dialing.backoff;
    if let Some(max) = spec.redial_max {
        backoff = Backoff::new(backoff.initial, max);
    }
    let stream = hub.add_stream(Stream::new(name, options.max_message_len))?;
    let inbox = stream.take_messages(MESSAGE_BACKLOG);
    let stats = Arc::new(UpstreamStats::new(stream));
    let link = upstream::Link {
        target: spec.upstream.clone(),
        options,
        backoff,
        stats: stats.clone(),
        inbox,
        alias_in: alias.then(|| hub.clone()),
    };
    // Every line the link logs names the upstream it dials and the stream.
    let span = info_span!("upstream", addr = %spec.upstream, stream = %name);
    let task = tokio::spawn(
        async move {
            if wait_for(&go, &stop).await {
                upstream::run(link, stop).await;
            }
        }
        .instrument(span),
    );
    Ok((stats, task))
}

/// Every stream of another relay, under the same names: a link per stream it lists, kept in
/// step with its list.
struct Mirror {
    hub: Arc<Hub>,
    dialing: Dialing,
    target: Target,
    spec: StreamSpec,
    go: CancellationToken,
}

impl Mirror {
    async fn run(self, stop: CancellationToken) {
        let mut links: BTreeMap<String, (CancellationToken, JoinHandle<()>)> = BTreeMap::new();
        let mut backoff = self.dialing.backoff;
        let mut options = match self.dialing.options_for(&self.spec) {
            Ok(options) => options,
            Err(err) => return warn!(error = %format!("{err:#}"), "mirror not started"),
        };
        options.stream = framing::ALL_STREAMS.to_owned();
        let mut warned = false;
        loop {
            let dialled = tokio::select! {
                _ = stop.cancelled() => break,
                dialled = subscribe(&self.target.addr, &options) => dialled,
            };
            match dialled {
                Ok(sub) if sub.source_hello().features & framing::features::STREAM_LIST == 0 => {
                    // An older server: it serves its default stream to anyone who asks.
                    warn!(
                        "upstream lists no streams (an older server?); mirroring its default stream"
                    );
                    sub.close().await;
                    self.follow(&mut links, &[DEFAULT_STREAM.to_owned()], &stop);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(60)) => continue,
                    }
                }
                Ok(mut sub) => {
                    backoff.reset();
                    warned = false;
                    info!("following the upstream's list of streams");
                    loop {
                        let next = tokio::select! {
                            _ = stop.cancelled() => {
                                sub.close().await;
                                break;
                            }
                            next = sub.next_stream_list() => next,
                        };
                        match next {
                            Ok(Some(names)) => self.follow(&mut links, &names, &stop),
                            Ok(None) => break,
                            Err(err) => {
                                warn!(%err, "lost the upstream's list of streams; redialling");
                                break;
                            }
                        }
                    }
                    if stop.is_cancelled() {
                        break;
                    }
                }
                Err(err) => {
                    if !std::mem::replace(&mut warned, true) {
                        warn!(%err, "upstream unavailable; redialling");
                    }
                    if matches!(err, SubscribeError::Refused { .. }) {
                        warn!(%err, "upstream refuses to list its streams");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = backoff.wait() => {}
            }
        }
        for (name, (link_stop, task)) in links {
            link_stop.cancel();
            let _ = task.await;
            self.hub.remove_stream(&name);
        }
    }

    /// Starts a link for each listed stream not yet followed; stops those no longer listed.
    fn follow(
        &self,
        links: &mut BTreeMap<String, (CancellationToken, JoinHandle<()>)>,
        names: &[String],
        stop: &CancellationToken,
    ) {
        let gone: Vec<String> = links.keys().filter(|n| !names.contains(n)).cloned().collect();
        for name in gone {
            if let Some((link_stop, _)) = links.remove(&name) {
                info!(stream = %name, "upstream no longer lists the stream; stopping it");
                link_stop.cancel();
                self.hub.remove_stream(&name);
            }
        }
        for name in names {
            if links.contains_key(name) || !relay::hub::valid_stream_name(name) {
                continue;
            }
            let spec = StreamSpec {
                name: Some(name.clone()),
                upstream: Target { stream: name.clone(), ..self.target.clone() },
                ..self.spec.clone()
            };
            let link_stop = stop.child_token();
            let go = self.go.clone();
            match start_link(&self.hub, &self.dialing, name, &spec, false, go, link_stop.clone()) {
                Ok((_, task)) => {
                    info!(stream = %name, "mirroring a stream the upstream lists");
                    links.insert(name.clone(), (link_stop, task));
                }
                Err(err) => warn!(stream = %name, %err, "listed stream not mirrored"),
            }
        }
    }
}
