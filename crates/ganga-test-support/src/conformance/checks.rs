//! The checks themselves. Each submits jobs of its own, so any one can run alone.

use std::path::{Path, PathBuf};

use ganga_core::{
    Backend, BackendRef, JobRef, OutputsReport, OutputsRequest, PeekFile, PollReport, RemoteStatus,
};

use super::helpers::{
    Mismatch, ShellJob, poll_checked, poll_until, poll_until_final, show_jobs, show_report,
    submit_all, submit_answers,
};
use super::{Check, ConformanceEnv};

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
        Check::KillEnded => t.kill_ended().await,
        Check::KillRunning => t.kill_running().await,
    }
}

struct Tester<'a> {
    backend: &'a dyn Backend,
    env: &'a ConformanceEnv,
}

impl Tester<'_> {
    // --- helpers shared by the checks ---

    /// Submits one job and waits until it ended.
    async fn run_one(&self, shell: &ShellJob) -> Result<(BackendRef, PollReport), Mismatch> {
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

    async fn wait(&self, refs: &[BackendRef]) -> Result<Vec<PollReport>, Mismatch> {
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
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
        };
        let mismatch =
            |got: String| Mismatch::new("one outputs report for the job", got).for_job(job.job);
        let mut answers = self
            .backend
            .outputs(std::slice::from_ref(&request))
            .await
            .map_err(|e| mismatch(format!("the whole call failed: {e}")))?;
        if answers.len() != 1 {
            return Err(mismatch(format!("{} answers", answers.len())));
        }
        let report = answers
            .pop()
            .ok_or_else(|| mismatch("no answer".into()))?
            .map_err(|e| mismatch(format!("an error: {e}")))?;
        if report.job != job.job {
            return Err(mismatch(format!("a report naming job {}", report.job)));
        }
        Ok(report)
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
        let got = |call: &str, n: usize| {
            Mismatch::new(
                format!("{call}(&[]) to answer Ok([])"),
                format!("{n} answers"),
            )
        };
        let failed = |call: &str, e: ganga_core::BackendError| {
            Mismatch::new(
                format!("{call}(&[]) to answer Ok([])"),
                format!("an error: {e}"),
            )
        };
        let n = b.submit(&[]).await.map_err(|e| failed("submit", e))?.len();
        if n != 0 {
            return Err(got("submit", n));
        }
        let n = b.poll(&[]).await.map_err(|e| failed("poll", e))?.len();
        if n != 0 {
            return Err(got("poll", n));
        }
        let n = b.kill(&[]).await.map_err(|e| failed("kill", e))?.len();
        if n != 0 {
            return Err(got("kill", n));
        }
        let n = b
            .outputs(&[])
            .await
            .map_err(|e| failed("outputs", e))?
            .len();
        if n != 0 {
            return Err(got("outputs", n));
        }
        Ok(())
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
        let (job, report) = self.run_one(&shell).await?;
        expect_status(&report, RemoteStatus::Succeeded)?;
        if report.exit_code.is_some_and(|c| c != 0) {
            return Err(Mismatch::new(
                "no exit code, or 0, for a job that succeeded",
                show_report(&report),
            )
            .for_job(job.job));
        }
        let out = self.outputs_of(&job, &["result.txt"]).await?;
        expect_collected(&out, &["result.txt", "stderr", "stdout"], &[])?;
        expect_file(
            &job,
            "result.txt",
            "hello alpha\nfrom the input file\n",
            "its argument, its environment variable and its input file",
        )
    }

    async fn fails(&self) -> Outcome {
        let shell = ShellJob::new("echo failing; echo oops >&2; exit 3");
        let (job, report) = self.run_one(&shell).await?;
        expect_status(&report, RemoteStatus::Failed)?;
        if report.exit_code != Some(3) {
            return Err(Mismatch::new("exit code 3", show_report(&report)).for_job(job.job));
        }
        let out = self.outputs_of(&job, &["never-written.txt"]).await?;
        expect_collected(&out, &["stderr", "stdout"], &["never-written.txt"])?;
        expect_file(&job, "stdout", "failing\n", "its stdout")?;
        expect_file(&job, "stderr", "oops\n", "its stderr")
    }

    async fn poll_batch(&self) -> Outcome {
        let id = self.env.next_job();
        let specs: Vec<_> = (0..3)
            .map(|i| {
                self.env
                    .spec(JobRef::subjob(id, i), &ShellJob::new(format!("exit {i}")))
            })
            .collect();
        let mut refs = submit_all(self.backend, &specs).await?;
        let reports = self.wait(&refs).await?;
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
                workspace: workspaces.dir(empty),
                output_dir: workspaces.output_dir(empty),
            },
            BackendRef {
                job: absent,
                id: "999999999".into(),
                workspace: workspaces.dir(absent),
                output_dir: workspaces.output_dir(absent),
            },
        ];
        for report in poll_checked(self.backend, &refs).await? {
            let fine = match report.status {
                RemoteStatus::Unknown => true,
                RemoteStatus::Failed => {
                    report.reason.as_ref().is_some_and(|r| !r.trim().is_empty())
                }
                _ => false,
            };
            if !fine {
                return Err(Mismatch::new(
                    "Failed with a reason (lost), or Unknown, for a job never submitted",
                    show_report(&report),
                )
                .for_job(report.job));
            }
        }
        Ok(())
    }

    async fn outputs(&self) -> Outcome {
        let shell = ShellJob::new(
            "echo to-stdout; echo to-stderr >&2; echo a > a.txt; mkdir sub; echo b > sub/b.txt; echo c > c.log",
        );
        let (job, report) = self.run_one(&shell).await?;
        expect_status(&report, RemoteStatus::Succeeded)?;
        let out = self
            .outputs_of(&job, &["a.txt", "sub/*.txt", "nothing-*.dat"])
            .await?;
        expect_collected(
            &out,
            &["a.txt", "stderr", "stdout", "sub/b.txt"],
            &["nothing-*.dat"],
        )?;
        expect_file(&job, "a.txt", "a\n", "a file a pattern named")?;
        expect_file(
            &job,
            "sub/b.txt",
            "b\n",
            "a file a pattern matched in a subdirectory",
        )?;
        expect_file(&job, "stdout", "to-stdout\n", "its stdout")?;
        expect_file(&job, "stderr", "to-stderr\n", "its stderr")?;
        if job.output_dir.join("c.log").exists() {
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
        let (job, report) = self.run_one(&shell).await?;
        expect_status(&report, RemoteStatus::Succeeded)?;
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
        expect_collected(&second, &["a.txt", "stderr", "stdout"], &["nothing-*.dat"])?;
        expect_file(
            &job,
            "a.txt",
            "a\n",
            "a collected file, after the second call",
        )?;
        expect_file(&job, "stdout", "out\n", "its stdout, after the second call")
    }

    async fn peek(&self) -> Outcome {
        let shell = ShellJob::new(
            "printf abcdefghij; printf KLMNOPQRST >&2; printf 0123456789 > notes.txt",
        );
        let (job, report) = self.run_one(&shell).await?;
        expect_status(&report, RemoteStatus::Succeeded)?;
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
        for report in self.wait(&accepted).await? {
            expect_status(&report, RemoteStatus::Succeeded)?;
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
        if answers.len() != 1 {
            return Err(Mismatch::new(
                "one answer for the job",
                format!("{} answers", answers.len()),
            )
            .for_job(job.job));
        }
        let after = poll_checked(self.backend, std::slice::from_ref(&job)).await?;
        for report in &after {
            if report.status != before.status || report.exit_code != before.exit_code {
                return Err(Mismatch::new(
                    format!("still {} after kill", show_report(&before)),
                    show_report(report),
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
        match answers.as_slice() {
            [Ok(())] => {}
            [Err(e)] => {
                return Err(
                    Mismatch::new("kill to answer done", format!("an error: {e}"))
                        .for_job(refs[0].job),
                );
            }
            other => {
                return Err(Mismatch::new(
                    format!("one answer ({})", show_jobs(refs.iter().map(|r| r.job))),
                    format!("{} answers", other.len()),
                ));
            }
        }
        for report in self.wait(refs).await? {
            expect_status(&report, RemoteStatus::Killed)?;
        }
        Ok(())
    }
}

fn expect_status(report: &PollReport, want: RemoteStatus) -> Outcome {
    if report.status == want {
        Ok(())
    } else {
        Err(Mismatch::new(format!("{want:?}"), show_report(report)).for_job(report.job))
    }
}

/// Job `.i` exits with code `i`: 0 succeeds, the others fail with their code.
fn expect_exit_codes(refs: &[BackendRef], reports: &[PollReport]) -> Outcome {
    for (r, report) in refs.iter().zip(reports) {
        let code = r
            .job
            .subjob
            .and_then(|i| i32::try_from(i).ok())
            .unwrap_or(0);
        let want = if code == 0 {
            RemoteStatus::Succeeded
        } else {
            RemoteStatus::Failed
        };
        let code_ok = report.exit_code == Some(code) || (code == 0 && report.exit_code.is_none());
        if report.status != want || !code_ok {
            return Err(Mismatch::new(
                format!("{want:?} with exit code {code} (the report for this very job)"),
                show_report(report),
            )
            .for_job(r.job));
        }
    }
    Ok(())
}

/// The report's files and unmatched patterns, in any order.
fn expect_collected(report: &OutputsReport, collected: &[&str], unmatched: &[&str]) -> Outcome {
    let (got_collected, got_unmatched) = normalised(report);
    if got_collected != collected || got_unmatched != unmatched {
        return Err(Mismatch::new(
            format!("collected {collected:?}, unmatched {unmatched:?}"),
            format!("collected {got_collected:?}, unmatched {got_unmatched:?}"),
        )
        .for_job(report.job));
    }
    Ok(())
}

fn normalised(report: &OutputsReport) -> (Vec<String>, Vec<String>) {
    let mut collected = report.collected.clone();
    let mut unmatched = report.unmatched.clone();
    collected.sort();
    unmatched.sort();
    (collected, unmatched)
}

/// A file in the job's output directory, with exactly `content`.
fn expect_file(job: &BackendRef, name: &str, content: &str, what: &str) -> Outcome {
    let path: &Path = &job.output_dir.join(name);
    let expected = format!("{what} in {} as {content:?}", path.display());
    match std::fs::read_to_string(path) {
        Ok(text) if text == content => Ok(()),
        Ok(text) => Err(Mismatch::new(expected, format!("{text:?}")).for_job(job.job)),
        Err(e) => Err(Mismatch::new(expected, format!("no such file ({e})")).for_job(job.job)),
    }
}
