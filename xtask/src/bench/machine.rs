//! What the figures were measured on: the machine, the toolchain, the code, the time.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The machine, toolchain and tree as far as they can be found out; what cannot is `null`.
pub(crate) fn describe(root: &Path, bench_dir: &Path) -> Value {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned());
    let online_cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let usable = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_total_kib = read("/proc/meminfo").and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    });
    let os = read("/etc/os-release").and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
    });
    let dirty: Vec<String> = output(root, "git", &["status", "--porcelain"])
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    json!({
        "cpu_model": cpu_model,
        "cpus_online": online_cpus,
        "cpus_usable": usable,
        "memory_total_mib": mem_total_kib.map(|k| k / 1024),
        "kernel": read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()),
        "os": os,
        "filesystem": output(bench_dir, "stat", &["-f", "-c", "%T", "."]),
        "load_average": load_average(),
        "rustc": output(root, "rustc", &["-V"]),
        "cargo": output(root, "cargo", &["-V"]),
        "git_commit": output(root, "git", &["rev-parse", "HEAD"]),
        "git_describe": output(root, "git", &["log", "-1", "--format=%h %s (%cI)"]),
        "git_uncommitted_changes": dirty,
    })
}

/// The 1, 5 and 15 minute load averages: how busy the shared machine was.
pub(crate) fn load_average() -> Option<String> {
    read("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn output(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Now, as `2026-01-05T09:00:00Z`.
pub(crate) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_458), (2026, 1, 5));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
