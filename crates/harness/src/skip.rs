//! Skipping a test that cannot run here, visibly, and only where that is allowed.
//!
//! A skipped test still reports "ok" to the test harness, so a skip that nobody sees is a test
//! that silently stopped running. Every skip therefore prints `SKIPPED: why` straight to stderr
//! (past the harness's output capture, which only takes `print!` and `eprint!`), and each
//! kind of skip has a `DRONECAST_REQUIRE_*` variable under which it fails instead. CI sets the
//! variables for everything it can provide (`.ci/run`).

use std::io::Write;

/// Whether `require_var` is set to `1`: the tests it guards must run, not skip.
pub fn required(require_var: &str) -> bool {
    std::env::var_os(require_var).is_some_and(|v| v == "1")
}

/// Skips the calling test with `why`: prints `SKIPPED: <test>: <why>` on stderr and returns
/// `Ok(())`, after which the caller returns early. Where `require_var` is `1`, returns an error
/// instead, which the caller propagates to fail the test.
pub fn skip_or_fail(require_var: &str, why: &str) -> anyhow::Result<()> {
    // The test harness names each test's thread after the test.
    let test = std::thread::current().name().filter(|n| *n != "main").map(str::to_owned);
    let line = skip_line(test.as_deref(), require_var, why, required(require_var))?;
    let _ = writeln!(std::io::stderr(), "{line}");
    Ok(())
}

/// The line a skip prints, or the error a required one fails with.
fn skip_line(
    test: Option<&str>,
    require_var: &str,
    why: &str,
    required: bool,
) -> anyhow::Result<String> {
    let test = test.map_or_else(String::new, |name| format!("{name}: "));
    if required {
        anyhow::bail!("{test}{why}; {require_var}=1 says this must run here, not be skipped");
    }
    Ok(format!("SKIPPED: {test}{why} (set {require_var}=1 to make this a failure)"))
}

#[cfg(test)]
mod tests {
    use super::skip_line;

    #[test]
    fn a_skip_says_so_unless_required_where_it_fails() {
        let line = skip_line(Some("netns::cut"), "DRONECAST_REQUIRE_NETNS", "no root", false);
        assert_eq!(
            line.ok().as_deref(),
            Some(
                "SKIPPED: netns::cut: no root (set DRONECAST_REQUIRE_NETNS=1 to make this a failure)"
            )
        );
        let err = skip_line(None, "DRONECAST_REQUIRE_NETNS", "no root", true).expect_err("fails");
        assert!(err.to_string().starts_with("no root; DRONECAST_REQUIRE_NETNS=1"), "{err}");
    }
}
