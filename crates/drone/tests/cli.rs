//! The real `drone` binary, watched by an in-process subscriber.

use std::process::Command;
use std::time::Duration;

use harness::Running;
use relay::{SubscribeOptions, subscribe};

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_test_pattern_and_says_goodbye_on_sigterm() -> anyhow::Result<()> {
    let mut drone = Running::start(Command::new(env!("CARGO_BIN_EXE_drone")).args([
        "--listen",
        "127.0.0.1:0",
        "--source",
        "test",
        "--width",
        "320",
        "--height",
        "240",
    ]))?;
    let addr = drone.wait_for_addr("drone serving", PATIENCE).await?;

    let mut sub = subscribe(&addr.to_string(), &SubscribeOptions::default()).await?;
    assert!(sub.source_hello().agent.starts_with("drone/"), "{:?}", sub.source_hello());
    let mut last = None;
    for _ in 0..10 {
        let frame = sub.next_frame().await?.expect("a frame");
        let h = *frame.header();
        assert_eq!((h.width, h.height), (320, 240));
        assert!(last.is_none_or(|seq| h.seq > seq), "frames out of order");
        assert!(frame.payload().starts_with(&[0xff, 0xd8]), "payload is not a JPEG");
        last = Some(h.seq);
    }

    drone.terminate()?;
    // A clean shutdown ends the stream with a goodbye, not a reset, within a second.
    let ended = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match sub.next_frame().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await?;
    assert!(matches!(ended, Ok(None)), "stream did not end cleanly: {ended:?}");
    let exit = drone.wait_exit(Duration::from_secs(5)).await?;
    assert!(exit.success(), "drone exited with {exit}; log:\n{}", drone.log());
    Ok(())
}
