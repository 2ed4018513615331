//! Every numeric flag is checked when the command line is parsed: a value out of range stops
//! the program at once (exit code 2) with clap's message naming the flag and the valid range,
//! instead of starting a server that refuses everyone (`--max-viewers 0`) or panics.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cache_bin, drone_bin};

/// Runs `program` with `args` and returns its exit code and stderr; fails if it is still
/// running after a few seconds (it accepted the value and started serving).
fn refused(program: &std::path::Path, args: &[&str]) -> anyhow::Result<(Option<i32>, String)> {
    let mut child = Command::new(program)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            let out = child.wait_with_output()?;
            return Ok((status.code(), String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("{} {args:?} was accepted: the program started", program.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check(program: &std::path::Path, cases: &[(&str, &str, &str)]) -> anyhow::Result<()> {
    for &(flag, value, range) in cases {
        // `--flag=value`, so that a negative number is a value, not another flag.
        let (code, stderr) = refused(program, &[&format!("{flag}={value}")])?;
        assert_eq!(code, Some(2), "{flag} {value}: exit code; stderr:\n{stderr}");
        assert!(
            stderr.contains(&format!("invalid value '{value}' for '{flag}")),
            "{flag} {value}: stderr names the flag and value:\n{stderr}"
        );
        assert!(
            stderr.contains(range),
            "{flag} {value}: stderr gives the range {range:?}:\n{stderr}"
        );
    }
    Ok(())
}

#[test]
fn server_flags_out_of_range_are_refused_with_the_flag_and_its_range() -> anyhow::Result<()> {
    let shared = [
        ("--max-viewers", "0", "1..=1000000"),
        ("--max-viewers", "18446744073709551615", "1..=1000000"),
        ("--handshake-timeout", "0", "greater than 0"),
        ("--viewer-timeout", "-1", "from 0 to 86400"),
        ("--viewer-timeout", "nan", "from 0 to 86400"),
        ("--notsent-lowat", "99999999999", "0..=16777216"),
    ];
    check(&cache_bin(), &shared)?;
    check(&drone_bin()?, &shared)?;
    check(
        &cache_bin(),
        &[
            ("--redial-max", "0", "greater than 0"),
            ("--max-frame-bytes", "10", "from 1024 to 1073741824"),
            ("--summary-every", "-5", "from 0 to 86400"),
        ],
    )?;
    check(
        &drone_bin()?,
        &[
            ("--fps", "0", "1..=240"),
            ("--quality", "101", "1..=100"),
            ("--width", "100000", "16..=8192"),
            ("--max-frame-bytes", "1", "from 1024 to 1073741824"),
        ],
    )
}
