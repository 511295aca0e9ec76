//! The checks themselves. Each submits jobs of its own, so any one can run alone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ganga_core::{
    Backend, BackendRef, Capabilities, JobRef, OutputsReport, OutputsRequest, PeekFile,
    RemoteStatus, UnitRun,
};

use crate::helpers::{
    Mismatch, Seen, ShellJob, keyed, poll_checked, poll_until, poll_until_final, show_report,
    submit_all, submit_answers,
};
use crate::{Check, ConformanceEnv};

mod expect;
mod robustness;

use expect::{
    expect_collected, expect_exit_codes, expect_file, expect_status, no_answers, normalised,
    panicked,
};

type Outcome = Result<(), Mismatch>;

pub(super) async fn run(check: Check, backend: &dyn Backend, env: &ConformanceEnv) -> Outcome {
    let t = Tester { backend, env };
    match check {
        Check::Describe => t.describe().await,
        Check::EmptyBatches => t.empty_batches().await,
        Check::SubmitBatch => t.submit_batch().await,
        Check::Succeeds => t.succeeds().await,
        Check::Fails => t.fails().await,
        Check::PollBatch => t.poll_batch().await,
        Check::UnknownJob => t.unknown_job().await,
        Check::Outputs => t.outputs().await,
        Check::OutputsIdempotent => t.outputs_idempotent().await,
        Check::Peek => t.peek().await,
        Check::PeekEscape => t.peek_escape().await,
        Check::PerJobErrors => t.per_job_errors().await,
        Check::BadOptions => t.bad_options().await,
        Check::KillEnded => t.kill_ended().await,
        Check::KillRunning => t.kill_running().await,
        Check::Runs => t.runs().await,
        Check::PollAll => t.poll_all().await,
        Check::Find => t.find().await,
        Check::Watch => t.watch().await,
        Check::NoPanics => t.no_panics().await,
    }
}

struct Tester<'a> {
    backend: &'a dyn Backend,
    env: &'a ConformanceEnv,
}

impl Tester<'_> {
    // --- helpers shared by the checks ---

    /// Submits one job and waits until it ended.
    async fn run_one(&self, shell: &ShellJob) -> Result<(BackendRef, Seen), Mismatch> {
        let job = JobRef::job(self.env.next_job());
        let refs = submit_all(self.backend, &[self.env.spec(job, shell)]).await?;
        let mut reports = self.wait(&refs).await?;
        let report = reports
            .pop()
            .ok_or_else(|| Mismatch::new("a report", "none"))?;
        let r = refs
            .into_iter()
            .next()
            .ok_or_else(|| Mismatch::new("a job", "none"))?;
        Ok((r, report))
    }

    async fn wait(&self, refs: &[BackendRef]) -> Result<Vec<Seen>, Mismatch> {
        poll_until_final(
            self.backend,
            refs,
            self.env.timeout(),
            self.env.poll_interval(),
        )
        .await
    }

    /// Collects one job's outputs and checks the answer's shape.
    async fn outputs_of(
        &self,
        job: &BackendRef,
        patterns: &[&str],
    ) -> Result<OutputsReport, Mismatch> {
        let request = OutputsRequest {
            job: job.clone(),
            output_dir: self.output_dir(job),
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
        };
        let mismatch =
            |got: String| Mismatch::new("one outputs report for the job", got).for_job(job.job);
        let answers = self
            .backend
            .outputs(std::slice::from_ref(&request))
            .await
            .map_err(|e| mismatch(format!("the whole call failed: {e}")))?;
        keyed("outputs", &[job.job], answers)?
            .pop()
            .ok_or_else(|| mismatch("no answer".into()))?
            .map_err(|e| mismatch(format!("an error: {e}")))
    }

    fn output_dir(&self, job: &BackendRef) -> PathBuf {
        self.env.workspaces().output_dir(job.job)
    }

    /// An input file with `content`, in a directory of its own.
    fn input_file(&self, name: &str, content: &str) -> Result<PathBuf, Mismatch> {
        let dir = self
            .env
            .root()
            .join("inputs")
            .join(self.env.next_job().to_string());
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(name), content))
            .map_err(|e| Mismatch::new("to write an input file", format!("an error: {e}")))?;
        Ok(dir.join(name))
    }

    // --- the checks ---

    async fn describe(&self) -> Outcome {
        let d = self
            .backend
            .describe()
            .await
            .map_err(|e| Mismatch::new("a description", format!("an error: {e}")))?;
        if d.name.trim().is_empty() {
            return Err(Mismatch::new("a non-empty name", format!("{:?}", d.name)));
        }
        if d.version.trim().is_empty() {
            return Err(Mismatch::new(
                "a non-empty version",
                format!("{:?}", d.version),
            ));
        }
        if d.max_batch == 0 {
            return Err(Mismatch::new("max_batch of at least 1", "0"));
        }
        if d.poll_interval_secs == 0 {
            return Err(Mismatch::new("poll_interval_secs of at least 1", "0"));
        }
        Ok(())
    }

    async fn empty_batches(&self) -> Outcome {
        let b = self.backend;
        no_answers("submit", b.submit(&[]).await)?;
        no_answers("poll", b.poll(&[]).await)?;
        no_answers("poll_all", b.poll_all(&[]).await)?;
        no_answers("kill", b.kill(&[]).await)?;
        no_answers("outputs", b.outputs(&[]).await)
    }

    async fn submit_batch(&self) -> Outcome {
        let id = self.env.next_job();
        let specs: Vec<_> = (0..3)
            .map(|i| {
                let shell = ShellJob::new("echo \"$1\" > out.txt").arg(i.to_string());
                self.env.spec(JobRef::subjob(id, i), &shell)
            })
            .collect();
        let refs = submit_all(self.backend, &specs).await?;
        for report in self.wait(&refs).await? {
            expect_status(&report, RemoteStatus::Succeeded)?;
        }
        Ok(())
    }

    async fn succeeds(&self) -> Outcome {
        let input = self.input_file("greeting.txt", "from the input file\n")?;
        let shell = ShellJob::new(
            "printf '%s %s\\n' \"$GREETING\" \"$1\" > result.txt && cat greeting.txt >> result.txt",
        )
        .arg("alpha")
        .env("GREETING", "hello")
        .input(&input)
        .output("result.txt");
        let (job, seen) = self.run_one(&shell).await?;
        expect_status(&seen, RemoteStatus::Succeeded)?;
        if seen.report.exit_code.is_some_and(|c| c != 0) {
            return Err(Mismatch::new(
                "no exit code, or 0, for a job that succeeded",
                show_report(&seen.report),
            )
            .for_job(job.job));
        }
        let out = self.outputs_of(&job, &["result.txt"]).await?;
        expect_collected(job.job, &out, &["result.txt", "stderr", "stdout"], &[])?;
        expect_file(
            self,
            &job,
            "result.txt",
            "hello alpha\nfrom the input file\n",
            "its argument, its environment variable and its input file",
        )
    }

    async fn fails(&self) -> Outcome {
        let shell = ShellJob::new("echo failing; echo oops >&2; exit 3");
        let (job, seen) = self.run_one(&shell).await?;
        expect_status(&seen, RemoteStatus::Failed)?;
        if seen.report.exit_code != Some(3) {
            return Err(Mismatch::new("exit code 3", show_report(&seen.report)).for_job(job.job));
        }
        let out = self.outputs_of(&job, &["never-written.txt"]).await?;
        expect_collected(job.job, &out, &["stderr", "stdout"], &["never-written.txt"])?;
        expect_file(self, &job, "stdout", "failing\n", "its stdout")?;
        expect_file(self, &job, "stderr", "oops\n", "its stderr")
    }

    /// Three subjobs of a new job that exit with their index as their code, submitted in
    /// one batch and waited for until they ended, with what was seen of them.
    async fn exit_codes_ended(&self) -> Result<(Vec<BackendRef>, Vec<Seen>), Mismatch> {
        let id = self.env.next_job();
        let specs: Vec<_> = (0..3)
            .map(|i| {
                self.env
                    .spec(JobRef::subjob(id, i), &ShellJob::new(format!("exit {i}")))
            })
            .collect();
        let refs = submit_all(self.backend, &specs).await?;
        let seen = self.wait(&refs).await?;
        Ok((refs, seen))
    }

    /// Whether the backend declares this capability (a backend that cannot describe
    /// itself declares none).
    async fn declares(&self, capability: impl Fn(&Capabilities) -> bool) -> bool {
        self.backend
            .describe()
            .await
            .is_ok_and(|d| capability(&d.capabilities))
    }

    async fn poll_batch(&self) -> Outcome {
        let (mut refs, reports) = self.exit_codes_ended().await?;
        expect_exit_codes(&refs, &reports)?;
        // Asked in another order, the answers follow it.
        refs.reverse();
        let reports = poll_checked(self.backend, &refs).await?;
        expect_exit_codes(&refs, &reports)
    }

    async fn unknown_job(&self) -> Outcome {
        let workspaces = self.env.workspaces();
        let empty = JobRef::job(self.env.next_job());
        let absent = JobRef::job(self.env.next_job());
        std::fs::create_dir_all(workspaces.dir(empty))
            .map_err(|e| Mismatch::new("to create an empty workspace", format!("an error: {e}")))?;
        let refs = [
            BackendRef {
                job: empty,
                id: "conformance-never-submitted".into(),
                run: 1,
                workspace: workspaces.dir(empty),
            },
            BackendRef {
                job: absent,
                id: "999999999".into(),
                run: 1,
                workspace: workspaces.dir(absent),
            },
        ];
        for seen in poll_checked(self.backend, &refs).await? {
            let report = &seen.report;
            let fine = match report.status {
                RemoteStatus::Unknown | RemoteStatus::Absent => true,
                RemoteStatus::Failed => {
                    report.reason.as_ref().is_some_and(|r| !r.trim().is_empty())
                }
                _ => false,
            };
            if !fine {
                return Err(Mismatch::new(
                    "Absent, Unknown, or Failed with a reason, for a job never submitted",
                    show_report(report),
                )
                .for_job(seen.job));
            }
        }
        Ok(())
    }

    async fn outputs(&self) -> Outcome {
        let shell = ShellJob::new(
            "echo to-stdout; echo to-stderr >&2; echo a > a.txt; mkdir sub; echo b > sub/b.txt; echo c > c.log",
        );
        let (job, seen) = self.run_one(&shell).await?;
        expect_status(&seen, RemoteStatus::Succeeded)?;
        let out = self
            .outputs_of(&job, &["a.txt", "sub/*.txt", "nothing-*.dat"])
            .await?;
        expect_collected(
            job.job,
            &out,
            &["a.txt", "stderr", "stdout", "sub/b.txt"],
            &["nothing-*.dat"],
        )?;
        expect_file(self, &job, "a.txt", "a\n", "a file a pattern named")?;
        expect_file(
            self,
            &job,
            "sub/b.txt",
            "b\n",
            "a file a pattern matched in a subdirectory",
        )?;
        expect_file(self, &job, "stdout", "to-stdout\n", "its stdout")?;
        expect_file(self, &job, "stderr", "to-stderr\n", "its stderr")?;
        if self.output_dir(&job).join("c.log").exists() {
            return Err(Mismatch::new(
                "only what the patterns match (and stdout, stderr) in the output directory",
                "c.log, which no pattern names, was copied there too",
            )
            .for_job(job.job));
        }
        Ok(())
    }

    async fn outputs_idempotent(&self) -> Outcome {
        let shell = ShellJob::new("echo out; echo a > a.txt");
        let (job, seen) = self.run_one(&shell).await?;
        expect_status(&seen, RemoteStatus::Succeeded)?;
        let patterns = ["a.txt", "nothing-*.dat"];
        let first = self.outputs_of(&job, &patterns).await?;
        let second = self.outputs_of(&job, &patterns).await?;
        if normalised(&first) != normalised(&second) {
            return Err(Mismatch::new(
                format!("the second report like the first, {first:?}"),
                format!("{second:?}"),
            )
            .for_job(job.job));
        }
        expect_collected(
            job.job,
            &second,
            &["a.txt", "stderr", "stdout"],
            &["nothing-*.dat"],
        )?;
        expect_file(
            self,
            &job,
            "a.txt",
            "a\n",
            "a collected file, after the second call",
        )?;
        expect_file(
            self,
            &job,
            "stdout",
            "out\n",
            "its stdout, after the second call",
        )
    }

    async fn peek(&self) -> Outcome {
        let shell = ShellJob::new(
            "printf abcdefghij; printf KLMNOPQRST >&2; printf 0123456789 > notes.txt",
        );
        let (job, seen) = self.run_one(&shell).await?;
        expect_status(&seen, RemoteStatus::Succeeded)?;
        let cases = [
            (PeekFile::Stdout, 1024, "abcdefghij"),
            (PeekFile::Stdout, 4, "ghij"),
            (PeekFile::Stderr, 1024, "KLMNOPQRST"),
            (PeekFile::Path("notes.txt".into()), 3, "789"),
            (PeekFile::Path("./notes.txt".into()), 1024, "0123456789"),
        ];
        for (file, max, want) in cases {
            let expected = format!("peek({file:?}, max_bytes {max}) to give {want:?}");
            match self.backend.peek(&job, &file, max).await {
                Ok(bytes) if bytes == want.as_bytes() => {}
                Ok(bytes) => {
                    return Err(Mismatch::new(
                        expected,
                        format!("{:?}", String::from_utf8_lossy(&bytes)),
                    )
                    .for_job(job.job));
                }
                Err(e) => {
                    return Err(Mismatch::new(expected, format!("an error: {e}")).for_job(job.job));
                }
            }
        }
        Ok(())
    }

    async fn peek_escape(&self) -> Outcome {
        let secret = self.input_file("secret.txt", "SECRET\n")?;
        let (job, _) = self.run_one(&ShellJob::new("echo hi > here.txt")).await?;
        // Enough `..` to reach `/` from any working directory, then down to the secret: a
        // backend that only joins the path to its working directory would read it.
        let from_root = secret
            .strip_prefix("/")
            .unwrap_or(&secret)
            .to_string_lossy()
            .into_owned();
        let up = "../".repeat(64);
        let escapes = [
            ("../secret.txt".to_owned(), "\"../secret.txt\"".to_owned()),
            (
                format!("{up}{from_root}"),
                format!("\"../\" 64 times, then \"{from_root}\""),
            ),
            (
                format!("sub/../{up}{from_root}"),
                format!("\"sub/\", \"../\" 65 times, then \"{from_root}\""),
            ),
            (
                secret.to_string_lossy().into_owned(),
                format!("{:?}", secret.display().to_string()),
            ),
        ];
        for (path, shown) in escapes {
            let file = PeekFile::Path(path);
            if let Ok(bytes) = self.backend.peek(&job, &file, 1024).await {
                let what = if bytes.windows(6).any(|w| w == b"SECRET") {
                    format!(
                        "it read {}, outside the working directory",
                        secret.display()
                    )
                } else {
                    format!("Ok({} bytes)", bytes.len())
                };
                return Err(
                    Mismatch::new(format!("peek at {shown} to be refused"), what).for_job(job.job),
                );
            }
        }
        Ok(())
    }

    async fn per_job_errors(&self) -> Outcome {
        let id = self.env.next_job();
        let missing = self.env.root().join(format!("no-such-input-{id}.txt"));
        let good = ShellJob::new("echo fine");
        let bad = ShellJob::new("echo never").input(&missing);
        let specs = [
            self.env.spec(JobRef::subjob(id, 0), &good),
            self.env.spec(JobRef::subjob(id, 1), &bad),
            self.env.spec(JobRef::subjob(id, 2), &good),
        ];
        let answers = submit_answers(self.backend, &specs).await?;
        let mut accepted = Vec::new();
        for (i, (spec, answer)) in specs.iter().zip(&answers).enumerate() {
            match (i, answer) {
                (1, Err(e)) => {
                    let name = format!("no-such-input-{id}.txt");
                    if !e.contains(&name) {
                        return Err(Mismatch::new(
                            format!(
                                "an error naming the missing input file {}",
                                missing.display()
                            ),
                            format!("{e:?}"),
                        )
                        .for_job(spec.job));
                    }
                }
                (1, Ok(s)) => {
                    return Err(Mismatch::new(
                        format!(
                            "the job refused: its input file {} does not exist",
                            missing.display()
                        ),
                        format!("it was accepted as {:?}", s.id),
                    )
                    .for_job(spec.job));
                }
                (_, Err(e)) => {
                    return Err(Mismatch::new(
                        "the job accepted though another job of its batch is refused",
                        format!("it was refused: {e}"),
                    )
                    .for_job(spec.job));
                }
                (_, Ok(s)) => accepted.push(super::helpers::backend_ref(spec, s)),
            }
        }
        for seen in self.wait(&accepted).await? {
            expect_status(&seen, RemoteStatus::Succeeded)?;
        }
        Ok(())
    }

    async fn bad_options(&self) -> Outcome {
        // No backend knows it: it names this suite.
        let option = "conformance_no_such_option";
        let id = self.env.next_job();
        let specs = [
            self.env
                .spec(JobRef::subjob(id, 0), &ShellJob::new("exit 0")),
            self.env.spec(
                JobRef::subjob(id, 1),
                &ShellJob::new("exit 0").option(option, 1),
            ),
        ];
        let answers = submit_answers(self.backend, &specs).await?;
        match &answers[1] {
            Err(e) if e.contains(option) => {}
            Err(e) => {
                return Err(Mismatch::new(
                    format!("an error naming the unknown option `{option}`"),
                    format!("{e:?}"),
                )
                .for_job(specs[1].job));
            }
            Ok(s) => {
                return Err(Mismatch::new(
                    format!("the job refused: its option `{option}` is not one describe lists"),
                    format!("it was accepted as {:?}", s.id),
                )
                .for_job(specs[1].job));
            }
        }
        let accepted = match &answers[0] {
            Ok(s) => super::helpers::backend_ref(&specs[0], s),
            Err(e) => {
                return Err(Mismatch::new(
                    "the job accepted though another job of its batch has a bad option",
                    format!("it was refused: {e}"),
                )
                .for_job(specs[0].job));
            }
        };
        for seen in self.wait(&[accepted]).await? {
            expect_status(&seen, RemoteStatus::Succeeded)?;
        }
        Ok(())
    }

    async fn kill_ended(&self) -> Outcome {
        let (job, before) = self.run_one(&ShellJob::new("exit 0")).await?;
        expect_status(&before, RemoteStatus::Succeeded)?;
        let answers = self
            .backend
            .kill(std::slice::from_ref(&job))
            .await
            .map_err(|e| {
                Mismatch::new(
                    "one answer for the job (done, or an error of its own)",
                    format!("the whole call failed: {e}"),
                )
                .for_job(job.job)
            })?;
        keyed("kill", &[job.job], answers)?;
        let after = poll_checked(self.backend, std::slice::from_ref(&job)).await?;
        for seen in &after {
            let (now, then) = (&seen.report, &before.report);
            if now.status != then.status || now.exit_code != then.exit_code {
                return Err(Mismatch::new(
                    format!("still {} after kill", show_report(then)),
                    show_report(now),
                )
                .for_job(job.job));
            }
        }
        Ok(())
    }

    async fn kill_running(&self) -> Outcome {
        let job = JobRef::job(self.env.next_job());
        let refs = submit_all(
            self.backend,
            &[self.env.spec(job, &ShellJob::new("sleep 60"))],
        )
        .await?;
        let outcome = self.kill_while_running(&refs).await;
        if outcome.is_err() {
            // Do not leave it running, whatever went wrong.
            let _ = self.backend.kill(&refs).await;
        }
        outcome
    }

    async fn kill_while_running(&self, refs: &[BackendRef]) -> Outcome {
        let (timeout, every) = (self.env.timeout(), self.env.poll_interval());
        poll_until(
            self.backend,
            refs,
            timeout,
            every,
            "to run (sleep 60)",
            |r| r.status == RemoteStatus::Running,
        )
        .await?;
        let answers = self.backend.kill(refs).await.map_err(|e| {
            Mismatch::new("kill to answer done", format!("the whole call failed: {e}"))
        })?;
        let asked: Vec<JobRef> = refs.iter().map(|r| r.job).collect();
        for (job, answer) in asked.iter().zip(keyed("kill", &asked, answers)?) {
            if let Err(e) = answer {
                return Err(
                    Mismatch::new("kill to answer done", format!("an error: {e}")).for_job(*job),
                );
            }
        }
        for seen in self.wait(refs).await? {
            expect_status(&seen, RemoteStatus::Killed)?;
        }
        Ok(())
    }

    async fn runs(&self) -> Outcome {
        // The first run ends at once; the second, in the same workspace, runs long. The
        // first run's records must not make the second look ended.
        let job = JobRef::job(self.env.next_job());
        let workspaces = self.env.workspaces();
        let first = ShellJob::new("exit 0").spec_of_run(job, 1, &workspaces);
        let refs = submit_all(self.backend, &[first]).await?;
        self.wait(&refs).await?;
        let second = ShellJob::new("sleep 60").spec_of_run(job, 2, &workspaces);
        let refs = submit_all(self.backend, &[second]).await?;
        let outcome = poll_until(
            self.backend,
            &refs,
            self.env.timeout(),
            self.env.poll_interval(),
            "of run 2 (sleep 60) to run, whatever run 1 left behind",
            |r| r.status == RemoteStatus::Running,
        )
        .await
        .map(drop);
        let _ = self.backend.kill(&refs).await;
        outcome
    }

    async fn poll_all(&self) -> Outcome {
        let (refs, _) = self.exit_codes_ended().await?;
        let asked: Vec<JobRef> = refs.iter().map(|r| r.job).collect();
        let answers = self.backend.poll_all(&refs).await.map_err(|e| {
            Mismatch::new("poll_all to answer", format!("the whole call failed: {e}"))
        })?;
        let seen = asked
            .iter()
            .zip(keyed("poll_all", &asked, answers)?)
            .map(|(job, a)| {
                a.map(|report| Seen { job: *job, report })
                    .map_err(|e| Mismatch::new("a report", format!("an error: {e}")).for_job(*job))
            })
            .collect::<Result<Vec<_>, _>>()?;
        expect_exit_codes(&refs, &seen)
    }

    async fn find(&self) -> Outcome {
        if !self.declares(|c| c.find).await {
            return Ok(());
        }
        let workspaces = self.env.workspaces();
        let job = JobRef::job(self.env.next_job());
        let spec = ShellJob::new("sleep 60").spec(job, &workspaces);
        let refs = submit_all(self.backend, std::slice::from_ref(&spec)).await?;
        let never = JobRef::job(self.env.next_job());
        let first = [
            UnitRun {
                job,
                run: 1,
                workspace: spec.workspace.clone(),
            },
            UnitRun {
                job: never,
                run: 1,
                workspace: workspaces.dir(never),
            },
        ];
        let later = [UnitRun {
            job,
            run: 2,
            workspace: spec.workspace.clone(),
        }];
        let outcome = self.found(&first, &later, &refs[0].id).await;
        let _ = self.backend.kill(&refs).await;
        outcome
    }

    /// `first`: a unit submitted as `id`, and one never submitted; `later`: a later run of
    /// the first, never submitted.
    async fn found(&self, first: &[UnitRun; 2], later: &[UnitRun; 1], id: &str) -> Outcome {
        let answers = self.ask_find(first).await?;
        match &answers[0] {
            Ok(Some(s)) if s.id == id => {}
            other => {
                return Err(Mismatch::new(
                    format!("find to name run 1 by its id {id:?}"),
                    format!("{other:?}"),
                )
                .for_job(first[0].job));
            }
        }
        if !matches!(answers[1], Ok(None)) {
            return Err(Mismatch::new(
                "find to say a job never submitted was not (Ok(None))",
                format!("{:?}", answers[1]),
            )
            .for_job(first[1].job));
        }
        let answers = self.ask_find(later).await?;
        if !matches!(answers[0], Ok(None)) {
            return Err(Mismatch::new(
                "find to say run 2, never submitted, was not (Ok(None)), although run 1 was",
                format!("{:?}", answers[0]),
            )
            .for_job(later[0].job));
        }
        Ok(())
    }

    async fn ask_find(
        &self,
        units: &[UnitRun],
    ) -> Result<Vec<ganga_core::PerJob<Option<ganga_core::Submitted>>>, Mismatch> {
        let asked: Vec<JobRef> = units.iter().map(|u| u.job).collect();
        let answers =
            self.backend.find(units).await.map_err(|e| {
                Mismatch::new("find to answer", format!("the whole call failed: {e}"))
            })?;
        keyed("find", &asked, answers)
    }

    async fn watch(&self) -> Outcome {
        if !self.declares(|c| c.watch).await {
            return Ok(());
        }
        // Start watching before the job exists, then run one that ends soon.
        let _ = self.backend.changes(Duration::ZERO).await;
        let job = JobRef::job(self.env.next_job());
        submit_all(
            self.backend,
            &[self.env.spec(job, &ShellJob::new("sleep 0.3"))],
        )
        .await?;
        let deadline = Instant::now() + self.env.timeout();
        while Instant::now() < deadline {
            let changed = self
                .backend
                .changes(Duration::from_millis(500))
                .await
                .map_err(|e| Mismatch::new("changes to answer", format!("an error: {e}")))?;
            if changed.contains(&job) {
                return Ok(());
            }
        }
        Err(Mismatch::new("changes to name the job once it ended", "it never did").for_job(job))
    }
}
