//! [`Auth`]: who may watch. A server can require a token from its viewers: tokens given on
//! the command line or in a file (one a line, so that revoking one is deleting its line and
//! sending SIGHUP). Tokens are compared in constant time (their SHA-256, with `subtle`), never
//! logged; an address that keeps failing is slowed down, in a table of fixed size.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token is one of the accepted ones.
    Accepted,
    /// No token was given.
    Missing,
    /// A token was given, and it is not accepted.
    Wrong,
}

impl Verdict {
    /// What a refused viewer is told (never which tokens exist).
    pub fn refusal(self) -> &'static str {
        match self {
            Verdict::Accepted => "",
            Verdict::Missing => "authentication required: this server wants a token (--token)",
            Verdict::Wrong => "wrong token",
        }
    }
}

/// A token file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("could not read the token file {path}: {cause}")]
pub struct TokenFileError {
    path: PathBuf,
    cause: std::io::Error,
}

/// The tokens a server accepts, and the penalties of addresses that guessed wrong.
#[derive(Debug)]
pub struct Auth {
    inline: Vec<[u8; 32]>,
    file: Option<PathBuf>,
    from_file: RwLock<Vec<[u8; 32]>>,
    penalties: Penalties,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// The tokens of a file: one a line; blank lines and lines starting with `#` are not tokens.
fn read_tokens(path: &Path) -> Result<Vec<[u8; 32]>, TokenFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|cause| TokenFileError { path: path.to_owned(), cause })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|token| digest(token.as_bytes()))
        .collect())
}

impl Auth {
    /// Accepts `tokens`, and those in `file` if given (read now, and again at each
    /// [`Auth::reload`]).
    pub fn new(tokens: &[String], file: Option<&Path>) -> Result<Auth, TokenFileError> {
        let from_file = match file {
            Some(path) => read_tokens(path)?,
            None => Vec::new(),
        };
        Ok(Auth {
            inline: tokens.iter().map(|t| digest(t.as_bytes())).collect(),
            file: file.map(Path::to_owned),
            from_file: RwLock::new(from_file),
            penalties: Penalties::new(),
        })
    }

    /// Re-reads the token file; returns how many tokens are accepted now. On an error the
    /// tokens stay as they were.
    pub fn reload(&self) -> Result<usize, TokenFileError> {
        if let Some(path) = &self.file {
            let fresh = read_tokens(path)?;
            if let Ok(mut from_file) = self.from_file.write() {
                *from_file = fresh;
            }
        }
        Ok(self.inline.len() + self.from_file.read().map(|t| t.len()).unwrap_or(0))
    }

    /// Checks `token` against every accepted one, in time that does not depend on which (if
    /// any) it matches or how much of it does.
    pub fn check(&self, token: &[u8]) -> Verdict {
        if token.is_empty() {
            return Verdict::Missing;
        }
        let given = digest(token);
        let mut matched = subtle::Choice::from(0);
        for accepted in &self.inline {
            matched |= given.ct_eq(accepted);
        }
        if let Ok(from_file) = self.from_file.read() {
            for accepted in from_file.iter() {
                matched |= given.ct_eq(accepted);
            }
        }
        if bool::from(matched) { Verdict::Accepted } else { Verdict::Wrong }
    }

    /// How much longer `ip` is slowed down for its failures, if it is.
    pub fn penalty(&self, ip: IpAddr) -> Option<Duration> {
        self.penalties.remaining(ip)
    }

    /// Counts a failure of `ip`. A few are forgiven (a mistyped token); after them the address
    /// is turned away for a while, twice as long after each further failure (100 ms up to
    /// 10 s).
    pub fn failed(&self, ip: IpAddr) {
        self.penalties.fail(ip);
    }

    /// `ip` gave a right token: its failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        self.penalties.forget(ip);
    }
}

/// Slots in the penalty table: a fixed size, whatever the number of addresses.
const PENALTY_SLOTS: usize = 4096;
/// Failures an address may make before it is slowed down (mistyped tokens).
const FREE_FAILURES: u32 = 3;
/// The first penalty, doubled after each failure.
const FIRST_PENALTY: Duration = Duration::from_millis(100);
/// The longest penalty.
const MAX_PENALTY: Duration = Duration::from_secs(10);
/// After this long without a failure an address starts over.
const FORGIVE_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
struct Slot {
    tag: u64,
    failures: u32,
    last: Instant,
    until: Instant,
}

/// Penalties by address in a table of fixed size: an address maps to one slot (by a keyed
/// hash, so that an attacker cannot aim at another's), and a new address takes the slot
/// over. A flood of addresses can only evict penalties, never grow memory.
#[derive(Debug)]
struct Penalties {
    hasher: RandomState,
    slots: Mutex<Vec<Option<Slot>>>,
}

impl Penalties {
    fn new() -> Penalties {
        Penalties { hasher: RandomState::new(), slots: Mutex::new(vec![None; PENALTY_SLOTS]) }
    }

    fn locate(&self, ip: IpAddr) -> (usize, u64) {
        let hash = self.hasher.hash_one(ip);
        ((hash as usize) % PENALTY_SLOTS, hash)
    }

    fn remaining(&self, ip: IpAddr) -> Option<Duration> {
        let (index, tag) = self.locate(ip);
        let slots = self.slots.lock().ok()?;
        let slot = slots.get(index).copied().flatten().filter(|s| s.tag == tag)?;
        slot.until.checked_duration_since(Instant::now())
    }

    fn fail(&self, ip: IpAddr) {
        let (index, tag) = self.locate(ip);
        let Ok(mut slots) = self.slots.lock() else { return };
        let Some(entry) = slots.get_mut(index) else { return };
        let now = Instant::now();
        let failures = match entry {
            Some(slot) if slot.tag == tag && now.duration_since(slot.last) < FORGIVE_AFTER => {
                slot.failures.saturating_add(1)
            }
            _ => 1,
        };
        let until = match failures.checked_sub(FREE_FAILURES + 1) {
            None => now,
            Some(doublings) => {
                now + FIRST_PENALTY.saturating_mul(1 << doublings.min(16)).min(MAX_PENALTY)
            }
        };
        *entry = Some(Slot { tag, failures, last: now, until });
    }

    fn forget(&self, ip: IpAddr) {
        let (index, tag) = self.locate(ip);
        let Ok(mut slots) = self.slots.lock() else { return };
        if let Some(entry) = slots.get_mut(index) {
            if entry.is_some_and(|slot| slot.tag == tag) {
                *entry = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_flags_and_a_file_and_a_revocation() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# viewers\nalpha\n\nbeta\n")?;
        let auth = Auth::new(&["inline".into()], Some(&file))?;
        assert_eq!(auth.check(b"inline"), Verdict::Accepted);
        assert_eq!(auth.check(b"beta"), Verdict::Accepted);
        assert_eq!(auth.check(b"gamma"), Verdict::Wrong);
        assert_eq!(auth.check(b""), Verdict::Missing);
        std::fs::write(&file, "alpha\n")?;
        assert_eq!(auth.reload()?, 2);
        assert_eq!(auth.check(b"beta"), Verdict::Wrong, "revoked");
        Ok(())
    }

    #[test]
    fn failures_slow_an_address_down_more_each_time_up_to_a_cap() {
        let auth = Auth::new(&[], None).expect("no file");
        let ip: IpAddr = [10, 0, 0, 7].into();
        assert_eq!(auth.penalty(ip), None);
        for _ in 0..FREE_FAILURES {
            auth.failed(ip);
        }
        assert_eq!(auth.penalty(ip), None, "a few mistakes are forgiven");
        auth.failed(ip);
        let first = auth.penalty(ip).expect("penalised");
        for _ in 0..40 {
            auth.failed(ip);
        }
        let later = auth.penalty(ip).expect("still penalised");
        assert!(first <= FIRST_PENALTY && later > first && later <= MAX_PENALTY);
        assert_eq!(auth.penalty([10, 0, 0, 8].into()), None, "others are not");
        auth.succeeded(ip);
        assert_eq!(auth.penalty(ip), None, "a right token clears the slate");
    }
}
