//! The DIRAC backend through the `ganga` CLI, against the real DiracX server that
//! `cargo xtask services start` runs on loopback: the device-flow login as a user types
//! it, then a job submitted, seen at DIRAC, and killed.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use crate::util::{Ganga, wait_for};

/// The server's settings, from the env file the start script writes. Fails (never skips)
/// when it is not running.
fn server() -> std::collections::HashMap<String, String> {
    let path = std::env::var("GANGA_DIRACX_ENV")
        .unwrap_or_else(|_| "/tmp/ganga-diracx/diracx.env".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no DiracX server for this test ({path}: {e}): start it with `cargo xtask services start` or `.ci/diracx.sh start`"
        )
    });
    let env: std::collections::HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let url = &env["DIRACX_URL"];
    let up = Command::new("curl")
        .args(["-sf", "-o", "/dev/null", &format!("{url}/api/health/ready")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        up,
        "the DiracX server at {url} does not answer: start it with `.ci/diracx.sh start`"
    );
    env
}

#[test]
fn login_submit_see_and_kill_on_dirac() {
    let env = server();
    let g = Ganga::new();
    std::fs::write(
        g.home().join("config.toml"),
        format!(
            "[monitor]\nbackground = false\n[monitor.backend.dirac]\ninterval_secs = 0.5\n\
             [plugin.dirac]\nurl = \"{}\"\nvo = \"{}\"\ngroup = \"user\"\n",
            env["DIRACX_URL"], env["DIRACX_VO"]
        ),
    )
    .expect("config");

    // `ganga dirac login` prints where to approve the code, then waits for it.
    let mut login = g
        .command(&["dirac", "login"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ganga starts");
    let stdout = login.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("login printed where to approve the code")
            .expect("a line");
        if let Some(u) = line.split_whitespace().find(|w| w.contains("user_code=")) {
            break u.to_owned();
        }
    };
    // The "browser": the test's identity provider approves at once.
    let approved = Command::new("curl")
        .args(["-sfL", "-o", "/dev/null", &url])
        .status()
        .expect("curl runs");
    assert!(approved.success(), "approving {url} failed");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = login.wait().expect("login ends");
    assert!(status.success(), "login failed: {rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("Logged in") && l.contains("alice")),
        "{rest:?}"
    );
    let tokens = g.home().join("dirac/tokens.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&tokens)
            .expect("tokens kept")
            .permissions(),
    );
    assert_eq!(
        mode & 0o077,
        0,
        "the tokens are readable by others: {mode:o}"
    );
    let who = g.run(&["dirac", "whoami"]);
    assert!(who.contains("alice"), "{who}");

    // A job goes to DIRAC and shows DIRAC's word for its state; a kill reaches it.
    let job = g.job_file(
        "dirac.toml",
        "[application]\nexe = \"/bin/echo\"\nargs = [\"hello\"]\n[backend]\ntype = \"dirac\"\n",
    );
    let id = g.submit(&job, &[]);
    let mut monitor = g.spawn(&["monitor"]);
    wait_for("DIRAC's state of the job", 60, || {
        g.job(id)["run"]["native_state"]
            .as_str()
            .is_some_and(|s| s.starts_with("Received") || s.starts_with("Waiting"))
    });
    assert!(
        g.job(id)["run"]["backend_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "no DIRAC id recorded"
    );
    g.run(&["kill", &id.to_string()]);
    assert_eq!(g.status(&id.to_string()), "killed");
    let _ = Command::new("kill")
        .args(["-INT", &monitor.id().to_string()])
        .status();
    let _ = monitor.wait();
}
