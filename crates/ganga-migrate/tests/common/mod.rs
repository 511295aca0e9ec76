//! What the migration tests share: fixtures unpacked into temp dirs, the expectation
//! files Ganga itself wrote (see `tests/expected/README.md`), a real LMDB store, and the
//! comparison of what the store holds with what Ganga said.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ganga_core::{Job, JobId, Status, Store, Subjob, Timestamp, Workspaces};
use ganga_migrate::{Options, Report, keys};
use ganga_store_lmdb::LmdbStore;
use serde_json::Value;

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn expected_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(name)
}

/// Unpacks a fixture tarball (rooted at `gangadir/`) into `dir`; returns the gangadir.
/// `keep` chooses which entries to write (all others are read past).
pub fn unpack(tarball: &str, dir: &Path, keep: &dyn Fn(&Path) -> bool) -> PathBuf {
    let file = fs::File::open(data(tarball)).unwrap();
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut archive = tar::Archive::new(gz);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        if keep(&path) {
            entry.unpack_in(dir).unwrap();
        }
    }
    dir.join("gangadir")
}

pub fn unpack_all(tarball: &str, dir: &Path) -> PathBuf {
    unpack(tarball, dir, &|_| true)
}

/// The expectation Ganga wrote for a fixture (`small.json`, `medium.json.gz`...).
pub fn expected(name: &str) -> Value {
    let mut text = String::new();
    let file = fs::File::open(expected_path(name)).unwrap();
    if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap();
    } else {
        std::io::BufReader::new(file)
            .read_to_string(&mut text)
            .unwrap();
    }
    serde_json::from_str(&text).unwrap()
}

/// A ganga-rs home with a real LMDB store.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub store: LmdbStore,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open(&dir.path().join("store")).unwrap();
        Home { dir, store }
    }

    pub fn workspaces(&self) -> Workspaces {
        Workspaces::new(self.dir.path().join("workspace"))
    }

    pub fn migrate(&self, gangadir: &Path, options: &Options) -> Report {
        ganga_migrate::migrate(gangadir, &self.store, &self.workspaces(), options).unwrap()
    }

    pub fn jobs(&self) -> Vec<Job> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let page = self.store.summaries(from, 1000).unwrap();
            let Some(last) = page.last() else { break };
            from = last.id() + 1;
            for e in page {
                out.push(self.store.job(e.id()).unwrap().unwrap());
            }
        }
        out
    }

    pub fn subjobs(&self, job: &Job) -> Vec<Subjob> {
        self.store.subjobs(job.id, 0..job.subjob_count()).unwrap()
    }

    /// The job migrated from Ganga's `registry` object `ganga_id`.
    pub fn by_ganga_id<'a>(jobs: &'a [Job], registry: &str, ganga_id: u64) -> Option<&'a Job> {
        jobs.iter().find(|j| {
            j.metadata.get(keys::REGISTRY).map(String::as_str) == Some(registry)
                && j.metadata.get(keys::ID) == Some(&ganga_id.to_string())
        })
    }
}

pub fn options() -> Options {
    Options::new(NOW)
}

/// The time the tests migrate at.
pub const NOW: Timestamp = Timestamp(1_800_000_000_000);

/// Every file under `dir` with its bytes (and every directory and link), for proving a
/// tree unchanged.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel.join(""), b"<dir>".to_vec());
                walk(root, &p, out);
            } else if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                );
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

// ----- comparing with Ganga's expectation -------------------------------------------------

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Ganga's status as ganga-rs keeps it: active ones become failed.
fn status_of(ganga: &str) -> Status {
    match ganga {
        "submitting" | "submitted" | "running" | "completing" => Status::Failed,
        other => other.parse().unwrap(),
    }
}

fn word(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Object(o) if o.contains_key("File") => Path::new(&s(&o["File"]))
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        other => panic!("not an argument: {other}"),
    }
}

fn exe_of(v: &Value) -> String {
    match v {
        Value::Object(o) if o.contains_key("File") => s(&o["File"]),
        other => s(other),
    }
}

fn backend_id(b: &Value) -> Option<String> {
    match &b["id"] {
        Value::Number(n) if n.as_i64().unwrap_or(0) > 0 => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn exit_code(b: &Value) -> Option<i32> {
    if b["class"] == "Dirac" {
        // DIRAC records no exit code; the migration takes one from a status text.
        for key in ["extraInfo", "statusInfo"] {
            let t = s(&b[key]).to_lowercase();
            if let Some(rest) = t.split("exit code").nth(1) {
                return rest
                    .trim()
                    .split(|c: char| !c.is_ascii_digit() && c != '-')
                    .next()?
                    .parse()
                    .ok();
            }
        }
        return None;
    }
    b["exitcode"].as_i64().map(|c| c as i32)
}

fn optional(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        other => Some(s(other)),
    }
}

/// The output patterns and, per retrieved file in the unit's own output directory, its name.
fn files_of(unit: &Value, suffix: &str) -> (Vec<String>, Vec<String>, BTreeMap<String, String>) {
    let mut patterns = Vec::new();
    let mut outputs = Vec::new();
    let mut lfns = BTreeMap::new();
    for f in unit["outputfiles"].as_array().unwrap() {
        let p = s(&f["namePattern"]);
        if !patterns.contains(&p) {
            patterns.push(p);
        }
        let subs = f["subfiles"].as_array().unwrap();
        let retrieved: Vec<&Value> = if subs.is_empty() {
            let located = optional(&f["lfn"]).is_some()
                || f["locations"].as_array().is_some_and(|l| !l.is_empty());
            if located { vec![f] } else { vec![] }
        } else {
            subs.iter().collect()
        };
        for r in retrieved {
            let name = s(&r["namePattern"]);
            if s(&r["localDir"]).trim_end_matches('/').ends_with(suffix) && !outputs.contains(&name)
            {
                outputs.push(name.clone());
            }
            if let Some(lfn) = optional(&r["lfn"]) {
                lfns.insert(name, lfn);
            }
        }
    }
    outputs.sort();
    (patterns, outputs, lfns)
}

/// Compares one unit (a job, or a subjob with its effective spec) with Ganga's dump of it.
fn compare_unit(
    what: &str,
    exp: &Value,
    spec: &ganga_core::JobSpec,
    run: &ganga_core::RunState,
    master_meta: &BTreeMap<String, String>,
    subjob: Option<u32>,
    job_id: u64,
) {
    let exe = spec.application.executable();
    assert_eq!(spec.name, s(&exp["name"]), "{what}: name");
    assert_eq!(spec.comment, s(&exp["comment"]), "{what}: comment");
    let ganga_status = s(&exp["status"]);
    let status = status_of(&ganga_status);
    if status != Status::Template {
        assert_eq!(run.status, status, "{what}: status (Ganga: {ganga_status})");
    }
    let app = &exp["application"];
    assert_eq!(exe.exe, exe_of(&app["exe"]), "{what}: exe");
    let args: Vec<String> = app["args"].as_array().unwrap().iter().map(word).collect();
    assert_eq!(exe.args, args, "{what}: args");
    let env: BTreeMap<String, String> = app["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), word(v)))
        .collect();
    assert_eq!(exe.env, env, "{what}: env");
    let b = &exp["backend"];
    assert_eq!(
        spec.backend.kind,
        s(&b["class"]).to_lowercase(),
        "{what}: backend"
    );
    assert_eq!(run.backend.id, backend_id(b), "{what}: backend id");
    assert_eq!(run.backend.exit_code, exit_code(b), "{what}: exit code");
    assert_eq!(
        run.backend.actual_ce,
        optional(&b["actualCE"]),
        "{what}: actual CE"
    );
    if !matches!(s(&b["class"]).as_str(), "Local" | "Interactive") {
        assert_eq!(
            run.backend.native_state,
            optional(&b["status"]),
            "{what}: native state"
        );
    }
    assert_eq!(
        u64::from(run.submit_count),
        exp["submit_counter"].as_u64().unwrap(),
        "{what}: submit counter"
    );

    let suffix = match subjob {
        Some(i) => format!("workspace/user/LocalXML/{job_id}/{i}/output"),
        None => format!("workspace/user/LocalXML/{job_id}/output"),
    };
    let (patterns, outputs, lfns) = files_of(exp, &suffix);
    assert_eq!(spec.output_files, patterns, "{what}: output files");
    assert_eq!(run.outputs, outputs, "{what}: outputs");
    for (name, lfn) in lfns {
        let key = match subjob {
            Some(i) => format!("ganga.subjob.{i}.outputfile.{name}.lfn"),
            None => format!("ganga.outputfile.{name}.lfn"),
        };
        assert_eq!(master_meta.get(&key), Some(&lfn), "{what}: LFN of {name}");
    }

    // Timestamps: every one Ganga has is kept, as a status time or (jobs) as metadata.
    let active = matches!(
        ganga_status.as_str(),
        "submitting" | "submitted" | "running" | "completing"
    );
    let mut times: BTreeMap<Status, i64> = BTreeMap::new();
    for (key, ms) in exp["timestamps_ms"].as_object().unwrap() {
        let ms = ms.as_i64().unwrap();
        let mapped = match key.as_str() {
            "final" => match ganga_status.as_str() {
                "completed" | "completed_frozen" => Some(Status::Completed),
                "failed" | "failed_frozen" => Some(Status::Failed),
                "killed" => Some(Status::Killed),
                _ => None,
            },
            k => k
                .parse::<Status>()
                .ok()
                .filter(|s| !active || !s.is_final()),
        };
        match mapped {
            Some(st) => {
                times.insert(st, ms);
            }
            None if subjob.is_none() => assert_eq!(
                master_meta.get(&format!("ganga.time.{key}")),
                Some(&s(&exp["timestamps"][key])),
                "{what}: timestamp {key}"
            ),
            None => {} // a subjob's backend stamps are counted in the report's `dropped`
        }
    }
    if active {
        times.insert(Status::Failed, NOW.as_millis());
    }
    let ours: BTreeMap<Status, i64> = run.times.iter().map(|(s, t)| (s, t.as_millis())).collect();
    assert_eq!(ours, times, "{what}: timestamps");
}

/// Compares every job and subjob in the store with Ganga's dump of `registry`, job by job
/// and subjob by subjob. `same_ids`: the store kept Ganga's ids.
pub fn compare(home: &Home, exp: &Value, registry: &str, same_ids: bool) -> (u64, u64) {
    let jobs = home.jobs();
    let list = exp[registry].as_array().unwrap();
    let (mut n_jobs, mut n_subjobs) = (0, 0);
    for e in list {
        let gid = e["id"].as_u64().unwrap();
        let job = Home::by_ganga_id(&jobs, registry, gid)
            .unwrap_or_else(|| panic!("{registry} {gid} was not migrated"));
        if same_ids && registry == "jobs" {
            assert_eq!(job.id, gid, "job {gid}: id");
        }
        let what = format!("{registry} {gid}");
        if registry == "templates" {
            assert_eq!(job.status(), Status::Template, "{what}");
        }
        compare_unit(&what, e, &job.spec, &job.run, &job.metadata, None, gid);
        if let Some(uuid) = optional(&e["uuid"]) {
            assert_eq!(job.metadata.get(keys::UUID), Some(&uuid), "{what}: uuid");
        }
        let exp_subjobs = e["subjobs"].as_array().unwrap();
        let subjobs = home.subjobs(job);
        assert_eq!(
            subjobs.len(),
            exp_subjobs.len(),
            "{what}: number of subjobs"
        );
        assert_eq!(
            job.subjobs.total(),
            exp_subjobs.len() as u64,
            "{what}: subjob counters"
        );
        for (sj, es) in subjobs.iter().zip(exp_subjobs) {
            assert_eq!(
                u64::from(sj.index),
                es["id"].as_u64().unwrap(),
                "{what}: subjob index"
            );
            let spec = sj.effective_spec(&job.spec);
            let swhat = format!("{what}.{}", sj.index);
            compare_unit(
                &swhat,
                es,
                &spec,
                &sj.run,
                &job.metadata,
                Some(sj.index),
                gid,
            );
            n_subjobs += 1;
        }
        n_jobs += 1;
    }
    (n_jobs, n_subjobs)
}

pub fn id_of(jobs: &[Job], registry: &str, ganga_id: u64) -> JobId {
    Home::by_ganga_id(jobs, registry, ganga_id).unwrap().id
}
