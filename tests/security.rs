//! Only who may watch, watches: tokens on the dronecast ports and the HTTP port, a token
//! revoked by editing a file and sending SIGHUP, TLS end to end with a pinned self-signed
//! certificate and with a CA, and the ways TLS fails, each with its own message. Real
//! binaries on 127.0.0.1, plus curl for HTTPS.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use common::PATIENCE;
use harness::Running;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, date_time_ymd};

fn bin(name: &str) -> anyhow::Result<PathBuf> {
    harness::sibling_bin(name)
}

/// A CA and a certificate it signs for `localhost` and 127.0.0.1, valid now (or, with
/// `expired`, only in 2020), written to `dir` as `ca.pem`, `cert.pem`, `key.pem`.
fn issue(dir: &Path, expired: bool) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: a leaf named like its issuer looks self-signed to OpenSSL (curl).
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "dronecast test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2020, 6, 1);
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca.pem())?;
    std::fs::write(&paths.1, cert.pem())?;
    std::fs::write(&paths.2, key.serialize_pem())?;
    Ok(paths)
}

/// Starts a binary with `args` and waits for its readiness line; returns it and the address
/// that line names.
async fn start(program: &str, args: &[&str], ready: &str) -> anyhow::Result<(Running, String)> {
    let mut cmd = Command::new(bin(program)?);
    cmd.args(args);
    let running = Running::start(&mut cmd)?;
    let addr = running.wait_for_addr(ready, PATIENCE).await?;
    Ok((running, addr.to_string()))
}

/// A headless client's exit code, stdout and stderr after taking `frames` frames.
fn client(args: &[&str], frames: u32) -> anyhow::Result<(Option<i32>, String, String)> {
    let out = Command::new(bin("client")?)
        .args(args)
        .args(["--headless", "--frames", &frames.to_string(), "--timeout", "20", "--json"])
        .output()?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn assert_refused(args: &[&str], message: &str) -> anyhow::Result<()> {
    let (code, _, stderr) = client(args, 1)?;
    assert_eq!(code, Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?} should fail with {message:?}: {stderr}");
    Ok(())
}

fn assert_watches(args: &[&str]) -> anyhow::Result<()> {
    let (code, stdout, stderr) = client(args, 5)?;
    assert_eq!(code, Some(0), "{args:?}: {stderr}");
    assert!(stdout.contains("\"frames\":5"), "{args:?}: {stdout}");
    Ok(())
}

/// curl's HTTP status for `url` with `extra` arguments.
fn curl(url: &str, extra: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
        .args(extra)
        .arg(url)
        .output()
        .context("curl (apt-get install curl)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_on_every_port_and_a_revoked_token_stops_new_connections() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# ground stations\nalpha\nbeta\n")?;
    let (_drone, drone) = start(
        "drone",
        &[
            "--listen",
            "127.0.0.1:0",
            "--width",
            "320",
            "--height",
            "240",
            "--token",
            "to-the-drone",
        ],
        "drone serving",
    )
    .await?;
    let token_file = tokens.to_string_lossy();
    let upstream = drone.to_string();
    let (cache, addr) = start(
        "cache-server",
        &[
            "--upstream",
            &upstream,
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--summary-every",
            "0",
            "--token-file",
            &token_file,
            "--upstream-token",
            "to-the-drone",
        ],
        "serving viewers",
    )
    .await?;
    let http = cache.wait_for_line("serving HTTP on http://", PATIENCE).await?;
    let http = http
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .context("no HTTP address")?;

    // The drone wants its token: without it, or with another, a viewer is refused.
    assert_refused(&[&drone], "authentication required")?;
    assert_refused(&[&drone, "--token", "alpha"], "wrong token")?;
    assert_watches(&[&drone, "--token", "to-the-drone"])?;
    // The cache-server has its own tokens, from the file; it gave the drone the drone's.
    assert_refused(&[&addr], "authentication required")?;
    assert_refused(&[&addr, "--token", "to-the-drone"], "wrong token")?;
    assert_watches(&[&addr, "--token", "alpha"])?;
    let beta = dir.path().join("beta");
    std::fs::write(&beta, "beta\n")?;
    assert_watches(&[&addr, "--token-file", &beta.to_string_lossy()])?;

    // Over HTTP: 401 with both challenges without a token; Bearer, Basic and ?token= work.
    let snapshot = format!("http://{http}/snapshot.jpg");
    assert_eq!(curl(&snapshot, &[])?, "401");
    assert_eq!(curl(&snapshot, &["-H", "Authorization: Bearer nope"])?, "401");
    assert_eq!(curl(&snapshot, &["-H", "Authorization: Bearer alpha"])?, "200");
    assert_eq!(curl(&snapshot, &["-u", "homeassistant:beta"])?, "200");
    assert_eq!(curl(&format!("{snapshot}?token=alpha"), &[])?, "200");
    let challenge =
        Command::new("curl").args(["-s", "-D", "-", "-o", "/dev/null", &snapshot]).output()?;
    let challenge = String::from_utf8_lossy(&challenge.stdout);
    assert!(
        challenge.to_ascii_lowercase().contains("www-authenticate: basic realm=\"dronecast\""),
        "{challenge}"
    );

    // Revoked: the line deleted, SIGHUP. beta no longer gets in; alpha still does.
    std::fs::write(&tokens, "alpha\n")?;
    cache.signal("HUP")?;
    cache.wait_for_line("tokens reloaded", PATIENCE).await?;
    assert_refused(&[&addr, "--token", "beta"], "wrong token")?;
    assert_eq!(curl(&snapshot, &["-u", "x:beta"])?, "401");
    assert_watches(&[&addr, "--token", "alpha"])?;
    // No token ever reaches a log.
    for secret in ["to-the-drone", "alpha", "beta"] {
        assert!(!cache.log().contains(secret), "{secret} is in the cache-server's log");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_end_to_end_with_a_pinned_self_signed_drone_and_a_ca_signed_relay() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let self_signed = dir.path().join("drone-tls");
    let (drone, drone_addr) = start(
        "drone",
        &[
            "--listen",
            "127.0.0.1:0",
            "--width",
            "320",
            "--height",
            "240",
            "--tls-self-signed",
            &self_signed.to_string_lossy(),
        ],
        "drone serving",
    )
    .await?;
    // Logged before the readiness line.
    let log = drone.log();
    let pin = log.split("--tls-pin ").nth(1).and_then(|rest| rest.split_whitespace().next());
    let pin = pin.context("no fingerprint in the drone's log")?.to_owned();
    let (ca, cert, key) = issue(dir.path(), false)?;
    let upstream = format!("tls://{drone_addr}");
    let (cert, key, ca_path) =
        (cert.to_string_lossy(), key.to_string_lossy(), ca.to_string_lossy());
    let (cache, addr) = start(
        "cache-server",
        &[
            "--upstream",
            &upstream,
            "--upstream-tls-pin",
            &pin,
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--summary-every",
            "0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        "serving viewers",
    )
    .await?;
    let http = cache.wait_for_line("serving HTTP on https://", PATIENCE).await?;
    cache.wait_for_line("upstream connected", PATIENCE).await?;
    let http_port = http
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .context("no port")?;

    // Through both TLS hops: the client trusts the relay's CA.
    let relay = format!("tls://{addr}");
    assert_watches(&[&relay, "--tls-ca", &ca_path])?;
    // And straight from the drone, by its pin.
    assert_watches(&[&format!("tls://{drone_addr}"), "--tls-pin", &pin])?;

    // Each way to fail says what happened.
    let wrong_pin = format!("{}00", &pin[..pin.len() - 2]);
    assert_refused(&[&format!("tls://{drone_addr}"), "--tls-pin", &wrong_pin], "not the pinned")?;
    assert_refused(&[&addr], "this port speaks TLS: connect with tls://")?;
    let (_plain, plain_addr) = start(
        "drone",
        &["--listen", "127.0.0.1:0", "--width", "320", "--height", "240"],
        "drone serving",
    )
    .await?;
    assert_refused(
        &[&format!("tls://{plain_addr}"), "--tls-pin", &pin],
        "does not speak TLS there",
    )?;
    let expired = dir.path().join("expired");
    std::fs::create_dir_all(&expired)?;
    let (old_ca, old_cert, old_key) = issue(&expired, true)?;
    let (_old, old_addr) = start(
        "drone",
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &old_cert.to_string_lossy(),
            "--tls-key",
            &old_key.to_string_lossy(),
        ],
        "drone serving",
    )
    .await?;
    assert_refused(
        &[&format!("tls://{old_addr}"), "--tls-ca", &old_ca.to_string_lossy()],
        "expired",
    )?;

    // curl fetches the HTTPS snapshot, trusting the CA.
    let url = format!("https://localhost:{http_port}/snapshot.jpg");
    assert_eq!(curl(&url, &["--cacert", &ca_path])?, "200");
    assert_ne!(curl(&url, &[])?, "200", "an unknown CA is not trusted");
    Ok(())
}

/// Frames a subscription takes in `how_long`.
async fn count_frames(
    sub: &mut relay::Subscription,
    how_long: std::time::Duration,
) -> anyhow::Result<u64> {
    let until = tokio::time::Instant::now() + how_long;
    let mut n = 0;
    while let Ok(frame) = tokio::time::timeout_at(until, sub.next_frame()).await {
        frame?.context("the stream ended")?;
        n += 1;
    }
    Ok(n)
}

/// A brute-force loop of 10,000 wrong tokens from one address: a few are answered, then the
/// address is turned away unheard, more and more; the viewers already watching never notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_wrong_tokens_are_slowed_and_disturb_no_viewer() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (drone, drone_addr) = start(
        "drone",
        &["--listen", "127.0.0.1:0", "--width", "320", "--height", "240"],
        "drone serving",
    )
    .await?;
    let (cache, addr) = start(
        "cache-server",
        &[
            "--upstream",
            &drone_addr,
            "--listen",
            "127.0.0.1:0",
            "--http",
            "off",
            "--summary-every",
            "0",
            "--token",
            "the-right-one",
        ],
        "serving viewers",
    )
    .await?;
    let options = relay::SubscribeOptions {
        token: bytes::Bytes::from_static(b"the-right-one"),
        ..relay::SubscribeOptions::default()
    };
    let mut watching = Vec::new();
    for _ in 0..2 {
        watching.push(relay::subscribe(&addr, &options).await?);
    }

    let answered = Arc::new(AtomicU64::new(0));
    let unheard = Arc::new(AtomicU64::new(0));
    let attack = {
        let (answered, unheard, addr) = (answered.clone(), unheard.clone(), addr.clone());
        async move {
            let hello = dronecast::framing::Hello {
                token: bytes::Bytes::from_static(b"guess"),
                ..dronecast::framing::Hello::new(dronecast::framing::Role::Viewer, "brute")
            }
            .to_bytes();
            let mut tries = tokio::task::JoinSet::new();
            for i in 0..10_000u32 {
                if tries.len() >= 64 {
                    tries.join_next().await;
                }
                let (answered, unheard, addr, hello) =
                    (answered.clone(), unheard.clone(), addr.clone(), hello.clone());
                tries.spawn(async move {
                    let Ok(mut conn) = tokio::net::TcpStream::connect(&addr).await else { return };
                    let _ = conn.write_all(&hello).await;
                    let mut reply = Vec::new();
                    let _ = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut reply)).await;
                    let counter = if reply.windows(11).any(|w| w == b"wrong token") {
                        &answered
                    } else {
                        &unheard
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
                let _ = i;
            }
            while tries.join_next().await.is_some() {}
        }
    };
    // The viewers keep their full rate while the attack runs.
    let attacking = tokio::spawn(attack);
    while !attacking.is_finished() {
        for sub in &mut watching {
            let n = count_frames(sub, std::time::Duration::from_millis(500)).await?;
            assert!(n >= 11, "a viewer got {n} frames in 0.5 s during the attack");
        }
    }
    attacking.await?;
    let (answered, unheard) = (answered.load(Ordering::Relaxed), unheard.load(Ordering::Relaxed));
    eprintln!("10,000 wrong tokens: {answered} answered, {unheard} turned away unheard");
    assert_eq!(answered + unheard, 10_000);
    // The first burst (64 at once) is checked before any failure counts; then a handful as
    // the penalty doubles.
    assert!(answered <= 100, "{answered} guesses were checked: not slowed");
    let warnings = cache.log().matches("refusing viewer: wrong token").count();
    assert!(warnings <= 100, "{warnings} warnings for the attack");
    drop(drone);
    Ok(())
}

/// Garbage to a TLS port, outside TLS and inside it: each connection is dropped with a line
/// saying what it was, and the viewers watching over TLS carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_outside_and_inside_tls_is_dropped_and_viewers_carry_on() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = issue(dir.path(), false)?;
    let (cert, key) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let (drone, addr) = start(
        "drone",
        &[
            "--listen",
            "127.0.0.1:0",
            "--width",
            "320",
            "--height",
            "240",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        "drone serving",
    )
    .await?;
    let tls = relay::tls::client_config(&relay::tls::Trust::Ca(ca))?;
    let options =
        relay::SubscribeOptions { tls: Some(tls.clone()), ..relay::SubscribeOptions::default() };
    let mut viewer = relay::subscribe(&addr, &options).await?;

    let mut rng = fastrand::Rng::with_seed(12);
    for round in 0..20 {
        let garbage: Vec<u8> = (0..2048).map(|_| rng.u8(..)).collect();
        // Outside TLS: not a TLS handshake at all.
        let mut plain = tokio::net::TcpStream::connect(&addr).await?;
        let _ = plain.write_all(&garbage).await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut sink)).await?;
        // Inside TLS: a proper handshake, then garbage instead of a hello.
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let mut inside = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await?;
        let _ = inside.write_all(&garbage).await;
        let _ = tokio::time::timeout(PATIENCE, inside.read_to_end(&mut sink)).await?;
        let n = count_frames(&mut viewer, std::time::Duration::from_millis(100)).await?;
        assert!(n >= 1, "round {round}: the TLS viewer stalled");
    }
    let log = drone.log();
    assert!(log.matches("a plain peer on the TLS port").count() >= 20, "{log}");
    assert!(log.matches("peer does not speak dronecast").count() >= 20, "{log}");
    Ok(())
}
