//! What the CLI prints, as snapshots (times and paths made stable).

use crate::util::{Ganga, examples_dir};

fn stable(g: &Ganga, text: &str) -> String {
    let mut out = text.replace(&g.home().display().to_string(), "<home>");
    out = out.replace(
        &examples_dir().canonicalize().unwrap().display().to_string(),
        "<examples>",
    );
    // Dates, times, host names and process ids vary from run to run.
    let date = regex_lite_date(&out);
    out = date;
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replaces `YYYY-MM-DD HH:MM:SS` with a placeholder (no regex crate needed for one shape).
fn regex_lite_date(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let looks_like_date = i + 19 <= b.len()
            && b[i..i + 19].iter().enumerate().all(|(k, c)| match k {
                4 | 7 => *c == b'-',
                10 => *c == b' ',
                13 | 16 => *c == b':',
                _ => c.is_ascii_digit(),
            });
        if looks_like_date {
            out.push_str("<time>");
            i += 19;
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[test]
fn jobs_show_and_subjobs_print_what_a_user_needs() {
    let g = Ganga::new();
    let file = examples_dir().join("hello-split.toml");
    g.run(&["submit", "--wait", file.to_str().unwrap()]);
    let failing = g.job_file(
        "f.toml",
        "name = \"fails\"\n[application]\nexe = \"/bin/false\"\n",
    );
    g.output(&["submit", "--wait", failing.to_str().unwrap()]);

    insta::assert_snapshot!("jobs", stable(&g, &g.run(&["jobs"])));
    insta::assert_snapshot!(
        "jobs_failed_only",
        stable(&g, &g.run(&["jobs", "--status", "failed"]))
    );
    insta::assert_snapshot!("show_master", steady(&stable(&g, &g.run(&["show", "0"]))));
    insta::assert_snapshot!("show_subjob", steady(&stable(&g, &g.run(&["show", "0.1"]))));
    insta::assert_snapshot!("show_failed", steady(&stable(&g, &g.run(&["show", "1"]))));
    insta::assert_snapshot!("subjobs", steady(&stable(&g, &g.run(&["subjobs", "0"]))));
}

/// Without what varies between runs of the same job: where it ran, its pid, and which
/// statuses a poll happened to see (a quick job may end before any poll sees it running).
fn steady(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("backend id") && !l.starts_with("ran on") && !l.contains("<time>")
        })
        .map(|l| {
            // In the subjobs table, blank the backend id and host columns.
            if l.trim_start().starts_with("0.") {
                let cols: Vec<&str> = l.split_whitespace().collect();
                format!(
                    "{} {} <id> {} <host> {}",
                    cols[0],
                    cols[1],
                    cols[3],
                    cols[5..].join(" ")
                )
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
