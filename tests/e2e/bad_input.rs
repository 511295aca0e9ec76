//! Bad input gets a clear error naming the thing and the cause, and nothing stored is lost.

use std::os::unix::process::ExitStatusExt as _;

use ganga_test_support::built_plugin;

use crate::util::{Ganga, truncated_copy};

/// Submits `toml` as a job file and returns the error, with the temp path made stable.
fn job_file_error(g: &Ganga, toml: &str) -> String {
    let file = g.job_file("bad.toml", toml);
    let err = g.fail(&["submit", file.to_str().unwrap()]);
    err.replace(&file.display().to_string(), "bad.toml")
        .trim()
        .to_owned()
}

#[test]
fn malformed_job_files_are_reported_with_file_line_and_field() {
    let g = Ganga::new();
    let cases = [
        ("wrong type", "name = \"x\"\n[application]\nexe = 3\n"),
        (
            "unknown field",
            "[application]\nexe = \"/bin/true\"\nexecutable = \"/bin/echo\"\n",
        ),
        (
            "missing exe",
            "name = \"x\"\n[application]\nargs = [\"a\"]\n",
        ),
        ("not toml", "name = \"x\n[application]\n"),
        (
            "bad arg",
            "[application]\nexe = \"/bin/echo\"\nargs = [\"a\", [1]]\n",
        ),
        (
            "missing input file",
            "input_files = [\"nope.txt\"]\n[application]\nexe = \"/bin/true\"\n",
        ),
        (
            "bad splitter",
            "[application]\nexe = \"/bin/true\"\n[splitter]\ntype = \"generic\"\n[splitter.attributes]\nname = [\"a\", \"b\"]\ncomment = [\"c\"]\n",
        ),
        (
            "unknown splitter",
            "[application]\nexe = \"/bin/true\"\n[splitter]\ntype = \"dataset\"\n",
        ),
    ];
    let mut report = String::new();
    for (what, toml) in cases {
        let err = job_file_error(&g, toml);
        let err = err.replace(&g.dir.path().display().to_string(), "<tmp>");
        report.push_str(&format!("## {what}\n{err}\n\n"));
    }
    insta::assert_snapshot!(report);
    // Nothing was stored by any of them.
    assert_eq!(g.run(&["jobs"]).trim(), "no jobs");
}

#[test]
fn an_unknown_backend_type_lists_the_loaded_ones() {
    let g = Ganga::new();
    let file = g.job_file(
        "slurmm.toml",
        "[application]\nexe = \"/bin/true\"\n\n[backend]\ntype = \"slurmm\"\n",
    );
    let err = g.fail(&["submit", file.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}:5:8: backend.type:", file.display())),
        "{err}"
    );
    assert!(
        err.contains(
            "unknown backend `slurmm`; loaded backends: batch, dirac, example, local, template"
        ),
        "{err}"
    );
    assert_eq!(g.run(&["jobs"]).trim(), "no jobs");
}

#[test]
fn a_plugin_built_for_another_abi_is_refused_naming_it_and_both_versions() {
    let g = Ganga::new();
    let plugin = built_plugin("ganga-testplugin-wrong-abi");
    let err = g.fail(&["--plugin", plugin.to_str().unwrap(), "plugins"]);
    assert!(
        err.contains("plugin `wrong-abi`")
            && err.contains("was built for plugin ABI 2, and this ganga speaks plugin ABI 1"),
        "{err}"
    );

    // Found by searching, it is refused and listed, and ganga goes on.
    let dir = g.path("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(
        plugin
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replace("testplugin", "backend"),
    );
    std::fs::copy(&plugin, &copy).unwrap();
    let out = g.run(&["--plugin-dir", dir.to_str().unwrap(), "plugins"]);
    assert!(out.contains("local") && out.contains("lmdb"), "{out}");
    // The copy's file name no longer matches its declaration symbol, so it is refused
    // for that; the original name is refused for its ABI (above).
    assert!(
        out.contains(&format!("{} refused", copy.display())),
        "{out}"
    );
}

#[test]
fn a_corrupt_record_makes_that_job_unreadable_and_the_others_still_list() {
    let g = Ganga::new();
    let file = g.job_file(
        "ok.toml",
        "name = \"fine\"\n[application]\nexe = \"/bin/true\"\n",
    );
    for _ in 0..3 {
        g.run(&["submit", "--wait", file.to_str().unwrap()]);
    }
    {
        // Damage job 1's records as a disk fault would, with no ganga running.
        let store = ganga_store_lmdb::LmdbStore::open(&g.home().join("store")).unwrap();
        let key = 1u64.to_be_bytes();
        store
            .raw_put("summaries", &key, b"\xff\x00garbage")
            .unwrap();
        store.raw_put("jobs", &key, b"\xa1\x61").unwrap();
    }
    let out = g.output(&["jobs"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("fine") && stdout.lines().count() == 4,
        "{stdout}"
    );
    assert!(stdout.contains("unreadable"), "{stdout}");
    assert!(stderr.contains("warning: job 1 is unreadable"), "{stderr}");

    let err = g.fail(&["show", "1"]);
    assert!(err.contains("job 1: record unreadable"), "{err}");
    // The others are intact.
    assert_eq!(g.status("0"), "completed");
    assert_eq!(g.status("2"), "completed");
    let listed = g.json(&["jobs", "--json"]);
    assert_eq!(listed[1]["id"], 1);
    assert!(listed[1]["unreadable"].is_string());
}

#[test]
fn a_malformed_config_file_is_reported_with_its_line() {
    let g = Ganga::new();
    std::fs::write(
        g.home().join("config.toml"),
        "[monitor]\ninterval_secs = \"fast\"\n",
    )
    .unwrap();
    let err = g.fail(&["jobs"]);
    assert!(
        err.contains(
            "config.toml:2:17: monitor.interval_secs: invalid type: string \"fast\", expected f64"
        ),
        "{err}"
    );
}

#[test]
fn a_truncated_plugin_is_refused_by_name_and_every_command_goes_on() {
    let g = Ganga::new();
    let plugin = built_plugin("ganga-backend-example");
    let size = std::fs::metadata(&plugin).unwrap().len();
    let dir = g.path("half-built");
    std::fs::create_dir_all(&dir).unwrap();
    let lengths: Vec<u64> = [1024, 64 * 1024, 1 << 20, size / 2, size - 1]
        .into_iter()
        .filter(|&n| n < size)
        .collect();
    let mut files = Vec::new();
    for len in &lengths {
        let file = dir.join(format!("libganga_backend_cut{len}.so"));
        truncated_copy(&plugin, &file, *len);
        // Named with --plugin: a hard error (exit code 1) naming it, not a signal.
        let out = g.output(&["--plugin", file.to_str().unwrap(), "plugins"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), None, "{len} bytes: killed by a signal");
        assert_eq!(out.status.code(), Some(1), "{len} bytes: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: {} refused: the file is truncated",
                file.display()
            )),
            "{len} bytes: {stderr}"
        );
        files.push(file);
    }
    // Found by searching: each is listed as refused, the intact plugins are used, and
    // commands that need them work.
    let out = g.output(&["--plugin-dir", dir.to_str().unwrap(), "plugins"]);
    assert_eq!(out.status.signal(), None);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in &files {
        assert!(
            stdout.contains(&format!(
                "{} refused: the file is truncated",
                file.display()
            )),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("local") && stdout.contains("lmdb"),
        "{stdout}"
    );
    let job = g.job_file("ok.toml", "[application]\nexe = \"/bin/true\"\n");
    let out = g.output(&[
        "--plugin-dir",
        dir.to_str().unwrap(),
        "submit",
        "--wait",
        job.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unknown_store_says_where_plugins_were_looked_for_and_what_was_refused() {
    let g = Ganga::new();
    // A ganga installed alone, with a damaged store library on the plugin path.
    let lonely = g.path("lonely");
    std::fs::create_dir_all(&lonely).unwrap();
    let bin = lonely.join("ganga");
    std::fs::copy(&g.bin, &bin).unwrap();
    let extra = g.path("extra-plugins");
    std::fs::create_dir_all(&extra).unwrap();
    let damaged = extra.join("libganga_store_lmdb.so");
    truncated_copy(&built_plugin("ganga-store-lmdb"), &damaged, 4096);
    let mut tries = 0;
    let out = loop {
        let run = std::process::Command::new(&bin)
            .arg("jobs")
            .env("GANGA_HOME", g.home())
            .env("GANGA_PLUGIN_PATH", &extra)
            .env("XDG_CONFIG_HOME", g.path("xdg-config"))
            .env_remove("GANGA_CONFIG")
            .output();
        match run {
            // A test thread that forks while the copy is open for writing keeps it open
            // in the child until its exec: the copy is "busy" for that moment.
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            run => break run.unwrap(),
        }
    };
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown store `lmdb`; loaded stores: none"),
        "{err}"
    );
    for dir in [
        extra.clone(),
        g.path("xdg-config").join("ganga").join("plugins"),
        lonely.join("plugins"),
        lonely.clone(),
    ] {
        assert!(
            err.contains(&dir.display().to_string()),
            "{dir:?} not named:\n{err}"
        );
    }
    assert!(
        err.contains(&format!(
            "{} refused: the file is truncated",
            damaged.display()
        )),
        "{err}"
    );
}

#[test]
fn a_path_that_is_not_utf8_is_refused_at_the_job_file() {
    use std::os::unix::ffi::OsStrExt as _;
    let g = Ganga::new();
    let dir = g.path("").join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.txt"), "some input\n").unwrap();
    let file = dir.join("job.toml");
    std::fs::write(
        &file,
        "name = \"latin-1\"\ninput_files = [\"data.txt\"]\n[application]\nexe = \"/bin/cat\"\nargs = [\"data.txt\"]\n",
    )
    .unwrap();
    let out = g.command(&["submit"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("job.toml:2:16: input_files[0]:"), "{err}");
    assert!(
        err.contains("data.txt") && err.contains("not valid UTF-8"),
        "{err}"
    );
    assert_eq!(g.run(&["jobs"]).trim(), "no jobs");
    // A home there is refused before anything is made in it.
    let out = g
        .command(&["jobs"])
        .env("GANGA_HOME", dir.join("home"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the ganga home") && err.contains("is not valid UTF-8"),
        "{err}"
    );
    assert!(!dir.join("home").exists());
}

#[test]
fn values_no_backend_could_run_are_refused_at_the_job_file() {
    let g = Ganga::new();
    let app = "[application]\nexe = \"/bin/true\"\n";
    let cases: &[(&str, String, &str)] = &[
        (
            "empty env name",
            format!("{app}env = {{ \"\" = \"x\" }}\n"),
            "bad.toml:3:9: application.env: `` cannot be the name of an environment variable",
        ),
        (
            "env name with =",
            format!("{app}env = {{ \"A=B\" = \"x\" }}\n"),
            "bad.toml:3:9: application.env: `A=B` cannot be the name",
        ),
        (
            "env name with NUL",
            format!("{app}env = {{ \"A\\u0000B\" = \"x\" }}\n"),
            "bad.toml:3:9: application.env: `A\\0B` cannot be the name",
        ),
        (
            "env name starting with -",
            format!("{app}env = {{ OK = \"1\", \"-x\" = \"1\" }}\n"),
            "bad.toml:3:19: application.env: `-x` cannot be the name",
        ),
        (
            "env value with NUL",
            format!("{app}env = {{ A = \"1\\u0000\" }}\n"),
            "bad.toml:3:13: application.env.A: contains a NUL character",
        ),
        (
            "exe starting with -",
            "[application]\nexe = \"-rf\"\n".to_owned(),
            "bad.toml:2:7: application.exe: `-rf` starts with `-`",
        ),
        (
            "arg with NUL",
            format!("{app}args = [\"fine\", \"a\\u0000b\"]\n"),
            "bad.toml:3:17: application.args[1]: contains a NUL character",
        ),
        (
            "invalid glob",
            format!("output_files = [\"ok.txt\", \"[abc\"]\n{app}"),
            "bad.toml:1:27: output_files[1]: `[abc` is not a usable pattern:",
        ),
        (
            "absolute pattern",
            format!("output_files = [\"/etc/passwd\"]\n{app}"),
            "bad.toml:1:17: output_files[0]: `/etc/passwd` is absolute",
        ),
        (
            "pattern with ..",
            format!("output_files = [\"out/../../x\"]\n{app}"),
            "bad.toml:1:17: output_files[0]: `out/../../x` contains `..`",
        ),
        (
            "empty pattern",
            format!("output_files = [\"\"]\n{app}"),
            "bad.toml:1:17: output_files[0]: an empty path",
        ),
        (
            "split exe starting with -",
            format!(
                "{app}[splitter]\ntype = \"generic\"\nattribute = \"application.exe\"\nvalues = [\"/bin/echo\", \"--help\"]\n"
            ),
            "bad.toml:3:1: splitter: subjob 1: application.exe: `--help` starts with `-`",
        ),
        (
            "split arg with NUL",
            format!("{app}[splitter]\ntype = \"args\"\nargs = [[\"a\"], [\"b\\u0000\"]]\n"),
            "bad.toml:3:1: splitter: subjob 1: application.args[0]: contains a NUL character",
        ),
    ];
    for (what, toml, expected) in cases {
        let err = job_file_error(&g, toml);
        assert!(
            err.contains(expected),
            "{what}: expected `{expected}` in:\n{err}"
        );
    }
    // Nothing was stored by any of them.
    assert_eq!(g.run(&["jobs"]).trim(), "no jobs");
}

#[test]
fn a_store_that_cannot_be_written_is_named() {
    use std::os::unix::process::CommandExt as _;
    let g = Ganga::new();
    let file = g.job_file("ok.toml", "[application]\nexe = \"/bin/true\"\n");
    // The store exists, and so do the Local backend's own files (its runner script).
    g.run(&["submit", file.to_str().unwrap()]);
    let mut cmd = g.command(&["submit", file.to_str().unwrap()]);
    // A full disk, as far as ganga can tell: no file may grow (EFBIG, as ENOSPC would be).
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &none) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let store = g.home().join("store");
    assert!(
        err.contains(&format!("the store at {}", store.display())),
        "{err}"
    );
    assert!(err.contains("File too large"), "{err}");
}

#[test]
fn an_unknown_backend_option_is_refused_with_its_line_and_the_known_ones() {
    let g = Ganga::new();
    // The Local backend takes no per-job options.
    let err = job_file_error(
        &g,
        "[application]\nexe = \"/bin/true\"\n\n[backend]\ntype = \"local\"\nqueue = \"short\"\n",
    );
    assert!(
        err.contains(
            "bad.toml:6:1: backend.queue: unknown option of backend `local` (it knows none)"
        ),
        "{err}"
    );
    // The example backend knows `timeout_secs`: a typo of it is refused, naming it.
    let err = job_file_error(
        &g,
        "[application]\nexe = \"/bin/true\"\n[backend]\ntype = \"example\"\ntimeout_secs = 5\ntimout_secs = 5\n",
    );
    assert!(
        err.contains("bad.toml:6:1: backend.timout_secs: unknown option of backend `example` (it knows: timeout_secs)"),
        "{err}"
    );
    // Also when a splitter sets it.
    let err = job_file_error(
        &g,
        "[application]\nexe = \"/bin/true\"\n[splitter]\ntype = \"generic\"\nattribute = \"backend.queue\"\nvalues = [\"a\", \"b\"]\n",
    );
    assert!(
        err.contains("bad.toml:3:1: splitter: backend.queue: unknown option of backend `local`"),
        "{err}"
    );
    assert_eq!(g.run(&["jobs"]).trim(), "no jobs");
    // A known option goes through.
    let ok = g.job_file(
        "ok.toml",
        "[application]\nexe = \"/bin/true\"\n[backend]\ntype = \"example\"\ntimeout_secs = 5\n",
    );
    g.run(&["submit", ok.to_str().unwrap()]);
}
