//! A store damaged outside LMDB (a failing disk, a bad copy): truncated at several sizes,
//! and one byte changed at offsets across the whole data file. Each case is opened and
//! read through the `Store` trait in a child process (a case could crash it: LMDB reads
//! its own pages unchecked), and each answer is compared with the undamaged store's.
//! A case must be detected (an error, or the damage reported: an unreadable entry, a
//! problem found by `check`) or harmless (every answer equal); a silently different
//! answer fails the test. The counts are printed.
//!
//! `GANGA_DAMAGE_STEP=N` changes the distance between changed bytes (default: about 600
//! cases over the file).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ganga_core::{
    Application, BackendConfig, Change, Executable, Job, JobId, JobRef, JobSpec, RunUpdate,
    Splitter, Status, Store, Timestamp, UnitChange, UnitCursor, UnitUpdate,
};
use ganga_store_lmdb::LmdbStore;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const T0: i64 = 1_700_000_000_000;
const CASES_VAR: &str = "GANGA_DAMAGE_CASES";
const PRISTINE_VAR: &str = "GANGA_DAMAGE_PRISTINE";
const MASKS: [u8; 5] = [0xff, 0x01, 0x80, 0x10, 0x5a];

fn at(secs: i64) -> Timestamp {
    Timestamp::from_millis(T0 + secs * 1000)
}

fn spec(name: &str, backend: &str, outputs: &[&str]) -> JobSpec {
    JobSpec {
        auto_resubmit: None,
        name: name.to_owned(),
        comment: format!("the job {name}"),
        application: Application::Executable(Executable {
            exe: "/bin/echo".to_owned(),
            args: vec!["hello".to_owned()],
            env: BTreeMap::new(),
        }),
        backend: BackendConfig::named(backend),
        input_files: Vec::new(),
        output_files: outputs.iter().map(|s| (*s).to_owned()).collect(),
        splitter: None,
    }
}

/// A store as one that has been used: masters with subjobs running and ended, plain jobs
/// in several statuses, updates (so the file holds freed pages with older copies), a
/// removal. Returns how many ids it reserved.
fn make_store(dir: &Path) -> Result<JobId, Box<dyn std::error::Error>> {
    let store = LmdbStore::open(dir)?;
    for m in 0..3u32 {
        let id = store.reserve_ids(1)?;
        let mut s = spec(
            &format!("master-{m}"),
            if m == 1 { "slurm" } else { "local" },
            &["hello-*.txt"],
        );
        s.splitter = Some(Splitter::Args {
            args: (0..120)
                .map(|k| vec![format!("arg{k}"), format!("r{}", k * 7919 % 1000)])
                .collect(),
            append: true,
        });
        let mut job = Job::new(id, s, at(0));
        let mut subjobs = job.split(at(1))?;
        job.begin_submit(&mut subjobs, at(2))?;
        for sj in &mut subjobs {
            job.set_subjob_status(sj, Status::Submitted, at(3))?;
            sj.run.backend.id = Some(format!("{}", 5000 + sj.index));
        }
        store.commit(&[
            Change::PutJob(job.clone()),
            Change::PutSubjobs { job: id, subjobs },
        ])?;
        // Some of them run and end.
        let updates: Vec<UnitUpdate> = (0..120u32)
            .step_by(3)
            .map(|i| UnitUpdate {
                unit: JobRef::subjob(id, i),
                seen: Status::Submitted,
                run: 1,
                change: UnitChange {
                    native_state: Some("RUNNING".to_owned()),
                    ..UnitChange::to(Status::Running, at(10))
                },
            })
            .collect();
        store.update_units(&updates)?;
        let ended: Vec<UnitUpdate> = (0..120u32)
            .step_by(6)
            .map(|i| UnitUpdate {
                unit: JobRef::subjob(id, i),
                seen: Status::Running,
                run: 1,
                change: UnitChange {
                    exit_code: Some(0),
                    outputs: Some(vec!["hello-1.txt".to_owned()]),
                    ..UnitChange::to(Status::Completed, at(20))
                },
            })
            .collect();
        store.update_units(&ended)?;
    }
    for p in 0..40u64 {
        let id = store.reserve_ids(1)?;
        let mut job = Job::new(
            id,
            spec(&format!("plain-{p}"), "local", &["out.txt"]),
            at(30),
        );
        if p % 3 != 0 {
            job.run.status = Status::Submitted;
            job.run.submit_count = 1;
            job.run.times.set(Status::Submitted, at(31));
            job.run.backend.id = Some(format!("{}", 9000 + p));
        }
        store.commit(&[Change::PutJob(job.clone())])?;
        if p % 4 == 1 {
            job.revision += 1;
            job.run.status = Status::Running;
            job.run.times.set(Status::Running, at(32));
            store.commit(&[Change::PutRun(RunUpdate::of(&job))])?;
        }
    }
    // One removed.
    let victim = store.job(5)?.ok_or("no job 5")?;
    store.commit(&[Change::RemoveJob {
        job: 5,
        revision: victim.revision,
    }])?;
    let next = store.reserve_ids(0)?;
    Ok(next)
}

/// Every answer the store gives through the trait, as text: `name = Ok(...)` or
/// `name = Err(...)`.
fn answers(dir: &Path, ids: JobId) -> Vec<(String, Result<String, String>)> {
    let mut out = Vec::new();
    let store = match LmdbStore::open(dir) {
        Ok(store) => store,
        Err(e) => {
            out.push(("open".to_owned(), Err(e.to_string())));
            return out;
        }
    };
    fn text<T: std::fmt::Debug>(r: Result<T, ganga_core::StoreError>) -> Result<String, String> {
        r.map(|v| format!("{v:?}")).map_err(|e| e.to_string())
    }
    out.push(("summaries".to_owned(), text(store.summaries(0, u32::MAX))));
    out.push(("active".to_owned(), text(store.active())));
    let mut units = Vec::new();
    let mut cursor: Option<UnitCursor> = None;
    let paged = loop {
        match store.active_units(cursor.as_ref(), 50) {
            Ok(page) if page.is_empty() => break Ok(units),
            Ok(page) => {
                cursor = page.last().map(UnitCursor::after);
                units.extend(page);
            }
            Err(e) => break Err(e),
        }
    };
    out.push(("active_units".to_owned(), text(paged)));
    for id in 0..ids {
        out.push((format!("job {id}"), text(store.job(id))));
        out.push((format!("subjobs {id}"), text(store.subjobs(id, 0..1000))));
    }
    out.push(("check".to_owned(), text(store.check())));
    out
}

/// Whether an answer reports damage itself.
fn reports_damage(name: &str, answer: &Result<String, String>) -> bool {
    match answer {
        Err(_) => true,
        Ok(text) if name == "summaries" => text.contains("Unreadable"),
        Ok(text) if name == "check" => !text.contains("problems: []"),
        Ok(_) => false,
    }
}

#[derive(Debug, Default)]
struct Counts {
    harmless: u32,
    detected: u32,
    silent: Vec<String>,
    crashed: Vec<String>,
}

/// Runs in a child: each case of the file named by `GANGA_DAMAGE_CASES` (`offset mask`,
/// or `truncate length`) on a copy of the pristine store, printing `start <case>` and
/// then `verdict <case> <harmless|detected|silent: call>`.
#[test]
#[ignore = "run as a child process by damaged_stores_are_detected_or_harmless"]
fn damage_child() -> TestResult {
    let cases = std::fs::read_to_string(std::env::var(CASES_VAR)?)?;
    let pristine = PathBuf::from(std::env::var(PRISTINE_VAR)?);
    let ids: JobId = std::fs::read_to_string(pristine.join("ids"))?
        .trim()
        .parse()?;
    let expected: Vec<(String, Result<String, String>)> =
        serde_json::from_str(&std::fs::read_to_string(pristine.join("answers.json"))?)?;
    let original = std::fs::read(pristine.join("store/data.mdb"))?;
    let stdout = std::io::stdout();
    for case in cases.lines() {
        let mut out = stdout.lock();
        writeln!(out, "\n@@start {case}")?;
        out.flush()?;
        drop(out);
        let dir = tempfile::tempdir()?;
        let mut bytes = original.clone();
        let mut words = case.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("flip"), Some(offset), Some(mask)) => {
                let offset: usize = offset.parse()?;
                bytes[offset] ^= mask.parse::<u8>()?;
            }
            (Some("truncate"), Some(len), None) => bytes.truncate(len.parse()?),
            _ => return Err(format!("bad case {case:?}").into()),
        }
        std::fs::write(dir.path().join("data.mdb"), &bytes)?;
        std::fs::copy(
            pristine.join("store/ganga-store"),
            dir.path().join("ganga-store"),
        )?;
        let got = answers(dir.path(), ids);
        let mut verdict = "harmless".to_owned();
        for (name, answer) in &got {
            // A call the undamaged store answered otherwise (or never: only the damaged
            // store's open failed).
            let want = expected.iter().find(|(n, _)| n == name).map(|(_, w)| w);
            if want == Some(answer) {
                continue;
            }
            let want = want
                .cloned()
                .unwrap_or_else(|| Ok("(not asked)".to_owned()));
            let want = &want;
            if reports_damage(name, answer) {
                verdict = "detected".to_owned();
            } else {
                verdict = format!("silent: {name}: {}", first_difference(want, answer));
                break;
            }
        }
        let mut out = stdout.lock();
        writeln!(out, "@@verdict {case} {verdict}")?;
        out.flush()?;
    }
    Ok(())
}

fn first_difference(want: &Result<String, String>, got: &Result<String, String>) -> String {
    let (w, g) = match (want, got) {
        (Ok(w), Ok(g)) | (Err(w), Err(g)) => (w, g),
        _ => return format!("{want:?} became {got:?}"),
    };
    let at = w.bytes().zip(g.bytes()).take_while(|(a, b)| a == b).count();
    let from = at.saturating_sub(40);
    format!(
        "…{}… became …{}…",
        w.get(from..(at + 40).min(w.len())).unwrap_or(""),
        g.get(from..(at + 40).min(g.len())).unwrap_or("")
    )
}

#[test]
fn damaged_stores_are_detected_or_harmless() -> TestResult {
    let pristine = tempfile::tempdir()?;
    // To look into a case: `GANGA_DAMAGE_KEEP=DIR` keeps the undamaged store and its
    // answers there, for running `damage_child` by hand (`GANGA_DAMAGE_CASES`,
    // `GANGA_DAMAGE_PRISTINE=DIR`).
    let kept = std::env::var_os("GANGA_DAMAGE_KEEP").map(PathBuf::from);
    let pristine_dir = kept.clone().unwrap_or_else(|| pristine.path().to_owned());
    let pristine_dir = pristine_dir.as_path();
    let store_dir = pristine_dir.join("store");
    let ids = make_store(&store_dir)?;
    let expected = answers(&store_dir, ids);
    assert!(
        expected.iter().all(|(name, a)| !reports_damage(name, a)),
        "the undamaged store reports damage: {expected:#?}"
    );
    std::fs::write(pristine_dir.join("ids"), ids.to_string())?;
    std::fs::write(
        pristine_dir.join("answers.json"),
        serde_json::to_string(&expected)?,
    )?;
    let len = std::fs::metadata(store_dir.join("data.mdb"))?.len() as usize;
    let step: usize = match std::env::var("GANGA_DAMAGE_STEP") {
        Ok(s) => s.parse()?,
        Err(_) => (len / 600).max(1) | 1,
    };
    let mut cases: Vec<String> = [
        0,
        1,
        100,
        4095,
        4096,
        8191,
        8192,
        len / 3,
        len / 2,
        len - 4096,
        len - 1,
    ]
    .iter()
    .map(|l| format!("truncate {l}"))
    .collect();
    for (k, offset) in (0..len).step_by(step).enumerate() {
        cases.push(format!("flip {offset} {}", MASKS[k % MASKS.len()]));
    }

    let mut counts = Counts::default();
    let mut todo: &[String] = &cases;
    let exe = std::env::current_exe()?;
    while !todo.is_empty() {
        let file = pristine_dir.join("cases");
        std::fs::write(&file, todo.join("\n"))?;
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "damage_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CASES_VAR, &file)
            .env(PRISTINE_VAR, pristine_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut started: Option<String> = None;
        let mut done = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(case) = line.split_once("@@start ").map(|(_, c)| c) {
                started = Some(case.to_owned());
            } else if let Some(rest) = line.split_once("@@verdict ").map(|(_, r)| r) {
                let case = started.take().ok_or("a verdict without a case")?;
                let verdict = rest
                    .strip_prefix(&case)
                    .ok_or("a verdict of another case")?
                    .trim();
                match verdict {
                    "harmless" => counts.harmless += 1,
                    "detected" => counts.detected += 1,
                    other => counts.silent.push(format!("{case}: {other}")),
                }
                done += 1;
            }
        }
        let status = child.wait()?;
        match started {
            // The child died in the middle of a case.
            Some(case) => {
                counts.crashed.push(format!("{case}: {status}"));
                done += 1;
            }
            None if !status.success() => {
                return Err(format!("the child failed outside any case: {status}").into());
            }
            None => {}
        }
        todo = &todo[done.min(todo.len())..];
    }
    eprintln!(
        "damage matrix over a data file of {len} bytes ({} cases: {} truncations, one byte \
         changed every {step} bytes): {} harmless, {} detected, {} silently different, {} \
         crashed",
        cases.len(),
        11,
        counts.harmless,
        counts.detected,
        counts.silent.len(),
        counts.crashed.len()
    );
    for c in &counts.crashed {
        eprintln!("  crashed: {c}");
    }
    assert!(
        counts.silent.is_empty(),
        "cases answered differently without a word:\n{}",
        counts.silent.join("\n")
    );
    Ok(())
}
