//! CPU time and resident memory of a process, from `/proc` (Linux) through the `procfs`
//! crate, which knows the formats (a command name in `stat` may hold spaces and parentheses)
//! and the clock tick rate.

use std::time::{Duration, Instant};

use anyhow::Context;
use procfs::process::Process;

/// A process to sample: this one, or another by PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    /// This process.
    This,
    /// Another process.
    Other(u32),
}

impl Pid {
    fn process(self) -> anyhow::Result<Process> {
        match self {
            Pid::This => Process::myself().context("cannot read /proc/self"),
            Pid::Other(pid) => {
                let id = i32::try_from(pid).with_context(|| format!("{pid} is not a PID"))?;
                Process::new(id).with_context(|| format!("cannot read /proc/{pid}"))
            }
        }
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu_time(self) -> anyhow::Result<Duration> {
        let stat = self.process()?.stat().context("cannot read the process's stat")?;
        let ticks = stat.utime + stat.stime;
        Ok(Duration::from_secs_f64(ticks as f64 / procfs::ticks_per_second() as f64))
    }

    /// Resident set size in bytes (`VmRSS`).
    pub fn rss_bytes(self) -> anyhow::Result<u64> {
        let status = self.process()?.status().context("cannot read the process's status")?;
        let kib = status.vmrss.context("the process has no VmRSS (a kernel thread?)")?;
        Ok(kib * 1024)
    }

    /// The most resident memory the process has had so far, in bytes (`VmHWM`).
    pub fn peak_rss_bytes(self) -> anyhow::Result<u64> {
        let status = self.process()?.status().context("cannot read the process's status")?;
        let kib = status.vmhwm.context("the process has no VmHWM (a kernel thread?)")?;
        Ok(kib * 1024)
    }
}

/// CPU use of a process over an interval, as percent of one core.
#[derive(Debug)]
pub struct CpuMeter {
    pid: Pid,
    start: Option<(Instant, Duration)>,
}

impl CpuMeter {
    /// Starts measuring now. A process that cannot be read gives no figure at the end.
    pub fn start(pid: Pid) -> CpuMeter {
        CpuMeter { pid, start: pid.cpu_time().ok().map(|cpu| (Instant::now(), cpu)) }
    }

    /// Percent of one core used since [`CpuMeter::start`] (200 = two cores busy).
    pub fn percent(&self) -> Option<f64> {
        let (t0, cpu0) = self.start?;
        let cpu = self.pid.cpu_time().ok()?.saturating_sub(cpu0);
        Some(cpu.as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process_and_its_parent() -> anyhow::Result<()> {
        assert!(Pid::This.rss_bytes()? > 0);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(Pid::This.cpu_time()? > Duration::ZERO);
        assert!(Pid::Other(std::os::unix::process::parent_id()).rss_bytes()? > 0);
        Ok(())
    }
}
