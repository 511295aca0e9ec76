//! A throwaway ganga home, and the real `ganga` binary run against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ganga_test_support::{built_binary, built_plugin};
use serde_json::Value;

/// The plugins the binary finds beside itself; built before any test runs it.
const PLUGINS: &[&str] = &[
    "ganga-backend-local",
    "ganga-store-lmdb",
    "ganga-backend-example",
];

pub(crate) struct Ganga {
    pub(crate) bin: PathBuf,
    pub(crate) dir: tempfile::TempDir,
}

impl Ganga {
    /// A fresh home with a config that polls fast and starts no monitor in the background
    /// (the tests of the background monitor turn it on).
    pub(crate) fn new() -> Ganga {
        for p in PLUGINS {
            built_plugin(p);
        }
        let bin = built_binary("ganga-cli", "ganga");
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        std::fs::write(
            dir.path().join("home").join("config.toml"),
            "[monitor]\ninterval_secs = 0.2\nbackground = false\n",
        )
        .expect("config");
        Ganga { bin, dir }
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A path for test files, outside the home.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("GANGA_HOME", self.home())
            .env_remove("GANGA_CONFIG")
            .env_remove("GANGA_PLUGIN_PATH")
            .env_remove("GANGA_LOG")
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .env("TZ", "UTC")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs ganga and returns its output, whatever the exit code.
    pub(crate) fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("ganga runs")
    }

    /// Runs ganga, which must succeed; returns stdout.
    pub(crate) fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "ganga {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs ganga, which must fail; returns stderr.
    pub(crate) fn fail(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            !out.status.success(),
            "ganga {args:?} should have failed:\nstdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ganga starts")
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("ganga {args:?} printed no JSON ({e}):\n{out}"))
    }

    /// Writes a job file and returns its path.
    pub(crate) fn job_file(&self, name: &str, toml: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, toml).expect("job file");
        path
    }

    /// Submits a job file and returns the new job's id.
    pub(crate) fn submit(&self, file: &Path, extra: &[&str]) -> u64 {
        let mut args = vec!["submit", file.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        let out = self.output(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .split_whitespace()
            .nth(1)
            .and_then(|w| w.trim_end_matches(':').parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no job id in the output of ganga {args:?}:\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    }

    pub(crate) fn job(&self, id: u64) -> Value {
        self.json(&["show", &id.to_string(), "--json"])
    }

    pub(crate) fn status(&self, r: &str) -> String {
        self.json(&["show", r, "--json"])["run"]["status"]
            .as_str()
            .expect("a status")
            .to_owned()
    }

    /// Puts jobs straight into the home's store, as a long-used home has them, without
    /// running anything: `plain` jobs without subjobs, then one job per entry of `split`
    /// with that many subjobs, of which every seventh (index 3, 10, 17, ...) `failed` and
    /// the others `completed`. Returns the ids of the split jobs.
    pub(crate) fn populate(&self, plain: u64, split: &[u32]) -> Vec<u64> {
        use ganga_core::{
            Application, BackendConfig, Change, Executable, Job, JobSpec, Splitter, Status, Store,
            Timestamp,
        };
        let store = ganga_store_lmdb::LmdbStore::open(&self.home().join("store")).unwrap();
        let count = plain + split.len() as u64;
        let first = store.reserve_ids(count).unwrap();
        let now = Timestamp::from_millis(1_767_603_600_000);
        let spec = |id: u64, splitter: Option<Splitter>| JobSpec {
            name: format!("filler-{id}"),
            comment: String::new(),
            application: Application::Executable(Executable {
                exe: "/bin/echo".into(),
                args: vec!["x".into()],
                env: Default::default(),
            }),
            backend: BackendConfig::named("local"),
            input_files: Vec::new(),
            output_files: Vec::new(),
            splitter,
            auto_resubmit: None,
        };
        let mut changes = Vec::new();
        for id in first..first + plain {
            changes.push(Change::PutJob(Job::new(id, spec(id, None), now)));
        }
        let mut ids = Vec::new();
        for (k, &n) in split.iter().enumerate() {
            let id = first + plain + k as u64;
            let args = (0..n).map(|i| vec![format!("a{i}")]).collect();
            let splitter = Splitter::Args { args, append: true };
            let mut job = Job::new(id, spec(id, Some(splitter)), now);
            let mut subjobs = job.split(now).unwrap();
            for sj in &mut subjobs {
                let status = if sj.index % 7 == 3 {
                    Status::Failed
                } else {
                    Status::Completed
                };
                sj.run.status = status;
                sj.run.times.set(status, now);
                sj.run.backend.exit_code = Some(i32::from(status == Status::Failed));
            }
            job.subjobs = subjobs.iter().map(|s| s.run.status).collect();
            job.derive_status(now);
            changes.push(Change::PutJob(job));
            changes.push(Change::PutSubjobs { job: id, subjobs });
            ids.push(id);
        }
        store.commit(&changes).unwrap();
        ids
    }

    pub(crate) fn subjobs(&self, id: u64) -> Vec<Value> {
        match self.json(&["subjobs", &id.to_string(), "--json"]) {
            Value::Array(a) => a,
            other => panic!("subjobs --json gave {other}"),
        }
    }
}

impl Drop for Ganga {
    /// A monitor a test left running (in the background, say) goes with its home.
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.home().join("monitor.lock"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        // Only a ganga of this home: the pid may have been reused since.
        let ours = |pid: u32| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let home = self.home();
                let home = home.to_string_lossy();
                String::from_utf8_lossy(&c).contains(home.as_ref())
            })
        };
        if let Some(pid) = pid
            && alive(pid)
            && ours(pid)
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Waits for `cond`, checking every 50 ms, for at most `secs` seconds.
pub(crate) fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a process is alive (and not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The directory the repository's examples are in.
pub(crate) fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The first `len` bytes of `from` at `to`, as a half-written build leaves a library.
pub(crate) fn truncated_copy(from: &Path, to: &Path, len: u64) {
    use std::io::{Read as _, Write as _};
    let mut bytes = Vec::new();
    std::fs::File::open(from)
        .unwrap()
        .take(len)
        .read_to_end(&mut bytes)
        .unwrap();
    std::fs::File::create(to)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
}
