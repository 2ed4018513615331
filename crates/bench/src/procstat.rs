//! CPU time and resident memory of a process, from `/proc` (Linux).

use std::time::Instant;

/// Clock ticks per second of the times in `/proc/PID/stat` (USER_HZ, 100 on every Linux
/// architecture dronecast runs on).
const TICKS_PER_SEC: f64 = 100.0;

/// A process to sample: a PID, or `self`.
#[derive(Debug, Clone, Copy)]
pub enum Pid {
    /// This process.
    This,
    /// Another process.
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::This => "/proc/self".into(),
            Pid::Other(pid) => format!("/proc/{pid}"),
        }
    }

    /// Total CPU time (user + system) in seconds so far.
    pub fn cpu_seconds(self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("{}/stat", self.dir())).ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut fields = rest.split_whitespace();
        let utime: f64 = fields.nth(11)?.parse().ok()?;
        let stime: f64 = fields.next()?.parse().ok()?;
        Some((utime + stime) / TICKS_PER_SEC)
    }

    /// Resident set size in MiB.
    pub fn rss_mb(self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("{}/status", self.dir())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }
}

/// CPU use of a process over an interval, as percent of one core.
#[derive(Debug)]
pub struct CpuMeter {
    pid: Pid,
    start: Option<(Instant, f64)>,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start(pid: Pid) -> CpuMeter {
        CpuMeter { pid, start: pid.cpu_seconds().map(|s| (Instant::now(), s)) }
    }

    /// Percent of one core used since [`CpuMeter::start`].
    pub fn percent(&self) -> Option<f64> {
        let (t0, s0) = self.start?;
        let s1 = self.pid.cpu_seconds()?;
        Some((s1 - s0) / t0.elapsed().as_secs_f64() * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        assert!(Pid::This.cpu_seconds().is_some());
        assert!(Pid::This.rss_mb().is_some_and(|mb| mb > 0.0));
    }
}
