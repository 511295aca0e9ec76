//! Results: the figures of each benchmark (medians over its runs, with the target each is
//! held to) and the table printed at the end.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use super::child::Measured;

/// One benchmark in one linking mode, with every run.
#[derive(Debug, Serialize)]
pub(crate) struct BenchResult {
    pub(crate) benchmark: String,
    pub(crate) linking: String,
    /// The measured command, as run.
    pub(crate) command: String,
    pub(crate) runs: Vec<Run>,
    /// Medians over the runs, and what is derived from them.
    pub(crate) figures: Vec<Figure>,
}

/// One run: the OS's figures for the process, and the driver's own report if it is
/// `ganga-bench`.
#[derive(Debug, Serialize)]
pub(crate) struct Run {
    #[serde(flatten)]
    pub(crate) process: Measured,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) driver: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) disk: Option<serde_json::Value>,
}

impl Run {
    /// A run with the report its process printed.
    pub(crate) fn with_driver(process: Measured, driver: serde_json::Value) -> Run {
        Run {
            process,
            driver: Some(driver),
            disk: None,
        }
    }
}

/// The most a benchmark's process may take, as the workload's targets say.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    pub(crate) wall_secs: Option<f64>,
    /// MB = 10^6 bytes, as the issue states them.
    pub(crate) peak_rss_mb: Option<f64>,
}

/// The medians of the runs' wall time and peak RSS, each held to its limit if it has one.
pub(crate) fn process_figures(runs: &[Run], limits: Limits) -> Vec<Figure> {
    vec![
        Figure::new(
            "wall_secs",
            med(runs, |r| r.process.wall_secs),
            Unit::Secs,
            "",
        )
        .at_most(limits.wall_secs, secs),
        Figure::new(
            "peak_rss_mib",
            med(runs, |r| r.process.peak_rss_mib()),
            Unit::Mib,
            "",
        )
        .at_most(limits.peak_rss_mb.map(mb_to_mib), mib_as_mb),
    ]
}

/// What a benchmark that reads every subjob reports: how many, how long `doing` took,
/// and the rate.
pub(crate) fn reading_figures(subjobs: u64, work: f64, doing: &'static str) -> Vec<Figure> {
    vec![
        Figure::new("subjobs", subjobs as f64, Unit::Count, "subjobs"),
        Figure::new("work_secs", work, Unit::Secs, doing),
        Figure::new(
            "subjobs_read",
            subjobs as f64 / work,
            Unit::PerSec,
            "subjobs",
        ),
    ]
}

fn mb_to_mib(mb: f64) -> f64 {
    mb * 1e6 / 1_048_576.0
}

fn mib_as_mb(mib: f64) -> String {
    format!("{:.0} MB", mib * 1_048_576.0 / 1e6)
}

/// A number in a JSON report, by pointer; NaN if absent.
pub(crate) fn num(v: &serde_json::Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN)
}

pub(crate) fn num_opt(v: &Option<serde_json::Value>, pointer: &str) -> f64 {
    v.as_ref().map_or(f64::NAN, |v| num(v, pointer))
}

/// The median over the runs of a figure of each.
pub(crate) fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    median(runs.iter().map(f).collect())
}

/// Writes every run's figures (`report`) as JSON to `json_path`, then prints `heading`
/// and the table.
pub(crate) fn publish(
    json_path: &Path,
    report: &serde_json::Value,
    heading: &str,
    results: &[BenchResult],
) -> anyhow::Result<()> {
    std::fs::write(json_path, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("\n{heading}");
    println!("{}", table(results));
    eprintln!("\nevery run's figures: {}", json_path.display());
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Unit {
    Secs,
    Mib,
    Bytes,
    PerSec,
    Count,
    /// How many times one thing is another: `1,234×`.
    Ratio,
    Millis,
    Micros,
    /// A plain number, to two decimals.
    Number,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) value: f64,
    pub(crate) unit: Unit,
    /// What the value is, in the table: `408 B per subjob`, `52,513 subjobs/s`.
    #[serde(skip)]
    pub(crate) label: &'static str,
    /// The most the issue allows, in `unit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<f64>,
    /// The target as the issue states it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) met: Option<bool>,
}

impl Figure {
    pub(crate) fn new(name: &str, value: f64, unit: Unit, label: &'static str) -> Figure {
        Figure {
            name: name.to_owned(),
            value,
            unit,
            label,
            target: None,
            target_text: None,
            met: None,
        }
    }

    /// Holds the figure to at most `target` (in its unit), stated as `text`.
    pub(crate) fn at_most(
        mut self,
        target: Option<f64>,
        text: impl FnOnce(f64) -> String,
    ) -> Figure {
        if let Some(t) = target {
            self.met = Some(self.value <= t);
            self.target = Some(t);
            self.target_text = Some(text(t));
        }
        self
    }

    /// The value, and its target with the verdict.
    fn shown(&self) -> String {
        let value = match (self.unit, self.label) {
            (_, "") => show(self.value, self.unit),
            (Unit::PerSec, label) => {
                format!("{} {label}/s", thousands(self.value.round() as u64))
            }
            (unit, label) => format!("{} {label}", show(self.value, unit)),
        };
        match (&self.target_text, self.met) {
            (Some(t), Some(met)) => {
                format!("{value} [≤ {t}: {}]", if met { "met" } else { "MISSED" })
            }
            _ => value,
        }
    }
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// A value in its unit, for people.
pub(crate) fn show(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Secs => secs(value),
        Unit::Mib => format!("{value:.1} MiB"),
        Unit::Bytes => format!("{} B", thousands(value.round() as u64)),
        Unit::PerSec => format!("{}/s", thousands(value.round() as u64)),
        Unit::Count => thousands(value.round() as u64),
        Unit::Ratio => format!("{}×", thousands(value.round() as u64)),
        Unit::Millis => format!("{value:.1} ms"),
        Unit::Micros => format!("{value:.2} µs"),
        Unit::Number => format!("{value:.2}"),
    }
}

pub(crate) fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl BenchResult {
    fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// The "throughput or size" cell: every figure but wall and RSS.
    fn details(&self) -> String {
        self.figures
            .iter()
            .filter(|f| f.name != "wall_secs" && f.name != "peak_rss_mib")
            .map(Figure::shown)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The results as a Markdown table (readable as text, pasteable into the docs).
pub(crate) fn table(results: &[BenchResult]) -> String {
    let header = [
        "benchmark",
        "linking",
        "runs",
        "wall (median)",
        "peak RSS (median)",
        "throughput, size, work time (medians)",
    ];
    let rows: Vec<[String; 6]> = results
        .iter()
        .map(|r| {
            [
                r.benchmark.clone(),
                r.linking.clone(),
                r.runs.len().to_string(),
                r.figure("wall_secs").map(Figure::shown).unwrap_or_default(),
                r.figure("peak_rss_mib")
                    .map(Figure::shown)
                    .unwrap_or_default(),
                r.details(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let mut out = vec![
        line(&header.map(str::to_owned)),
        line(&widths.map(|w| "-".repeat(w))),
    ];
    out.extend(rows.iter().map(|r| line(r)));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_numbers_read_right() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(thousands(1_010_000), "1,010,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(secs(0.0451), "45.1 ms");
        let f = Figure::new("wall_secs", 0.0451, Unit::Secs, "").at_most(Some(0.1), secs);
        assert_eq!(f.shown(), "45.1 ms [≤ 100.0 ms: met]");
        let f = Figure::new("subjobs_written", 52_513.2, Unit::PerSec, "subjobs");
        assert_eq!(f.shown(), "52,513 subjobs/s");
        let f = Figure::new("bytes_per_subjob", 408.4, Unit::Bytes, "per subjob")
            .at_most(Some(64.0), |t| format!("{t} B"));
        assert_eq!(f.shown(), "408 B per subjob [≤ 64 B: MISSED]");
        let f = Figure::new(
            "ratio",
            1234.4,
            Unit::Ratio,
            "smaller than Ganga's gangadir",
        );
        assert_eq!(f.shown(), "1,234× smaller than Ganga's gangadir");
    }
}
