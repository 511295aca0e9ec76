//! A job's files are the user's private data: a fresh home, its store and workspaces, and
//! everything a job writes are kept from other users unless the config says otherwise.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::util::Ganga;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Runs a job writing `out.txt` in a home ganga creates, with `config`; returns the home
/// and the paths to look at: the home, its store and workspace, the job's workspace, its
/// output directory and the collected `out.txt`.
fn run_job_in_fresh_home(g: &Ganga, config: &str) -> Vec<PathBuf> {
    let home = g.path("fresh-home");
    let config_file = g.path("fresh-config.toml");
    std::fs::write(
        &config_file,
        format!("[monitor]\ninterval_secs = 0.2\n{config}"),
    )
    .unwrap();
    let job = g.job_file(
        "private.toml",
        "output_files = [\"out.txt\"]\n[application]\nexe = \"/bin/sh\"\nargs = [\"-c\", \"echo secret > out.txt\"]\n",
    );
    let out = g
        .command(&["submit", "--wait", job.to_str().unwrap()])
        .env("GANGA_HOME", &home)
        .env("GANGA_CONFIG", &config_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ws = home.join("workspace").join("0");
    let collected = ws.join("output").join("out.txt");
    assert_eq!(std::fs::read_to_string(&collected).unwrap(), "secret\n");
    vec![
        home.clone(),
        home.join("store"),
        home.join("workspace"),
        ws.clone(),
        ws.join("output"),
        collected,
    ]
}

#[test]
fn a_fresh_home_and_a_jobs_files_are_private_by_default() {
    let g = Ganga::new();
    for path in run_job_in_fresh_home(&g, "") {
        let m = mode(&path);
        assert_eq!(
            m & 0o077,
            0,
            "{} is {m:o}: readable by others",
            path.display()
        );
    }
}

#[test]
fn the_umask_is_the_configs() {
    let g = Ganga::new();
    let paths = run_job_in_fresh_home(&g, "[home]\numask = \"022\"\n");
    assert_eq!(mode(&paths[0]), 0o755, "the home");
    assert_eq!(mode(&paths[5]), 0o644, "the collected output");

    // A umask that is none is refused with its line.
    std::fs::write(g.home().join("config.toml"), "[home]\numask = \"0988\"\n").unwrap();
    let err = g.fail(&["jobs"]);
    assert!(
        err.contains("config.toml:2:9: home.umask: `0988` is not a umask"),
        "{err}"
    );
}
