//! What `relay-bench` prints: each run's figures, the median of several, the capacity of a
//! sweep and the slow-link results, as readable tables or as one JSON object per line.

use serde::Serialize;

use crate::figures::{self, Figures};

/// Where and how results are printed: stdout, as tables or (`--json`) as JSON lines.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON object per line instead of tables.
    pub json: bool,
}

/// What a capacity sweep found.
#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    /// The largest viewer count at which every viewer held the rate.
    pub capacity_viewers: usize,
    /// The rate every viewer had to hold, fps.
    pub min_fps: f64,
    /// What the relay delivered at that count, Gbit/s.
    pub capacity_gbit_s: f64,
    /// What the trivial writer delivered at the same count, Gbit/s.
    pub ceiling_gbit_s: f64,
    /// The first over the second.
    pub fraction_of_ceiling: f64,
}

impl Output {
    /// One run's figures.
    pub fn figures(self, figures: &Figures) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(figures)?);
        } else {
            println!("{}", figures.table());
        }
        Ok(())
    }

    /// After several runs, the median of every figure, labelled as such (nothing for one run).
    pub fn median(self, runs: &[Figures]) -> anyhow::Result<()> {
        let Some(median) = figures::median(runs).filter(|_| runs.len() >= 2) else {
            return Ok(());
        };
        if self.json {
            println!("{}", serde_json::json!({ "median_of_runs": runs.len(), "median": median }));
        } else {
            println!("median of {} runs:\n{}", runs.len(), median.table());
        }
        Ok(())
    }

    /// The result of a capacity sweep.
    pub fn capacity(self, c: &Capacity) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(c)?);
        } else {
            println!(
                "capacity: {} viewers at >= {} fps = {:.3} Gbit/s = {:.0}% of the ceiling \
                 ({:.3} Gbit/s at the same count)",
                c.capacity_viewers,
                c.min_fps,
                c.capacity_gbit_s,
                c.fraction_of_ceiling * 100.0,
                c.ceiling_gbit_s
            );
        }
        Ok(())
    }
}
