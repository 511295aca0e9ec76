//! A reader that goes away (`ganga jobs | head -1`) ends ganga quietly, with exit code 0
//! (as ripgrep does): no error message, no panic.

use std::io::Read as _;
use std::process::Stdio;

use crate::util::Ganga;

/// The listings a script pipes into `head`, each longer than a pipe holds (64 KiB).
fn listings(big: u64) -> Vec<Vec<String>> {
    [
        vec!["jobs"],
        vec!["jobs", "--json"],
        vec!["subjobs", &big.to_string()],
        vec!["subjobs", &big.to_string(), "--json"],
        vec!["subjobs", "--all", "--status", "failed", "--json"],
        vec!["show", &big.to_string(), "--json"],
        vec!["plugins"],
        vec!["completions", "bash"],
        vec!["man"],
    ]
    .into_iter()
    .map(|a| a.into_iter().map(str::to_owned).collect())
    .collect()
}

fn assert_quiet_end(what: &str, status: std::process::ExitStatus, stderr: &[u8]) {
    let stderr = String::from_utf8_lossy(stderr);
    assert!(
        status.code() == Some(0),
        "ganga {what} ended {status} on a closed pipe:\n{stderr}"
    );
    assert!(
        stderr.is_empty(),
        "ganga {what} said on stderr, on a closed pipe:\n{stderr}"
    );
}

#[test]
fn a_pipe_closed_before_ganga_writes_ends_it_quietly() {
    let g = Ganga::new();
    let big = g.populate(1500, &[2000])[0];
    for args in listings(big) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = g
            .command(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_quiet_end(&args.join(" "), out.status, &out.stderr);
    }
}

#[test]
fn a_reader_that_stops_early_ends_ganga_quietly() {
    let g = Ganga::new();
    let big = g.populate(1500, &[2000])[0];
    for args in listings(big) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = g
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `head -c 10`: read a little, then go away.
        let mut first = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let mut stderr = Vec::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_end(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert_quiet_end(&args.join(" "), status, &stderr);
    }
}
