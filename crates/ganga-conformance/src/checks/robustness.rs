//! What no input may do to a backend: make it panic, or act on ids it never gave.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use ganga_core::{
    BackendError, BackendErrorKind, BackendRef, JobRef, OutputsRequest, PeekFile, RemoteStatus,
    SubmitSpec,
};

use crate::helpers::{Mismatch, ShellJob};
use crate::panic_message;

use super::{Outcome, Tester, expect_status, panicked};

/// Ids a backend never gave, for calls that only read (`poll`): some look like numbers a
/// backend might take for a process id, none of them can hurt when only read.
const STRANGE_IDS_TO_READ: &[&str] = &[
    "",
    "not a number",
    "-1",
    "0",
    "18446744073709551616",
    "../../../../etc/passwd",
    "nul\0inside",
];

/// Ids for calls that act (`kill`): none reads as a number, so that a backend that takes
/// ids for process ids without checking cannot be led to signal a real process here.
const STRANGE_IDS_TO_ACT: &[&str] = &["", "not a number", "../../../../etc", "nul\0inside"];

impl Tester<'_> {
    pub(super) async fn no_panics(&self) -> Outcome {
        let root = self.env.root();
        let (ran, seen) = self.run_one(&ShellJob::new("echo hi > a.txt")).await?;
        expect_status(&seen, RemoteStatus::Succeeded)?;
        let not_a_dir = root.join("a-file-not-a-workspace");
        std::fs::write(&not_a_dir, "not a workspace\n")
            .map_err(|e| Mismatch::new("to write a file", format!("an error: {e}")))?;
        let workspaces = [
            root.join("no-such-workspace"),
            not_a_dir,
            ran.workspace.clone(),
        ];
        let strange = |ids: &[&str]| -> Vec<BackendRef> {
            ids.iter()
                .map(|id| (*id).to_owned())
                .chain(std::iter::once("x".repeat(4096)))
                .enumerate()
                .map(|(i, id)| BackendRef {
                    job: JobRef::job(self.env.next_job()),
                    id,
                    run: [0, u32::MAX, 7][i % 3],
                    workspace: workspaces[i % workspaces.len()].clone(),
                })
                .collect()
        };
        let to_read = strange(STRANGE_IDS_TO_READ);
        let asked = "units it never gave (ids such as \"\", \"-1\", \"not a number\"; runs 0 and 4294967295; workspaces missing or a file)";
        self.no_panic(&format!("poll of {asked}"), self.backend.poll(&to_read))
            .await?;
        self.no_panic(
            &format!("poll_all of {asked}"),
            self.backend.poll_all(&to_read),
        )
        .await?;
        for r in to_read.iter().take(3) {
            for file in [PeekFile::Stdout, PeekFile::Path("a.txt".into())] {
                self.no_panic(
                    &format!("peek at {file:?} of a unit it never gave (id {:?})", r.id),
                    self.backend.peek(r, &file, 1024),
                )
                .await?;
            }
        }
        let paths = ["", ".", "/", "nul\0inside", "a.txt/x", "../../..", "*"];
        for path in paths {
            for max in [0, u64::MAX] {
                let file = PeekFile::Path(path.into());
                self.no_panic(
                    &format!("peek at {file:?}, max_bytes {max}"),
                    self.backend.peek(&ran, &file, max),
                )
                .await?;
            }
        }
        self.no_panic(
            "peek at stdout with max_bytes 18446744073709551615",
            self.backend.peek(&ran, &PeekFile::Stdout, u64::MAX),
        )
        .await?;
        let patterns = [
            "[",
            "",
            "**",
            "a.txt",
            "/etc/hostname",
            "../*",
            "nul\0inside",
        ];
        let mut requests: Vec<OutputsRequest> = strange(&["not a number"])
            .into_iter()
            .map(|job| OutputsRequest {
                output_dir: root.join("strange-outputs").join(job.job.to_string()),
                job,
                patterns: vec!["*".into()],
            })
            .collect();
        requests.push(OutputsRequest {
            job: ran.clone(),
            output_dir: self.output_dir(&ran),
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
        });
        self.no_panic(
            &format!("outputs with patterns {patterns:?}, and of units it never gave"),
            self.backend.outputs(&requests),
        )
        .await?;
        self.no_panic(
            &format!("kill of {asked}"),
            self.backend.kill(&strange(STRANGE_IDS_TO_ACT)),
        )
        .await?;
        self.strange_submissions().await
    }

    /// Specs no job file can make: the backend must refuse them, or run them and fail.
    async fn strange_submissions(&self) -> Outcome {
        let root = self.env.root();
        let base = ShellJob::new("exit 0");
        let spec = |change: &dyn Fn(&mut SubmitSpec)| {
            let mut spec = self.env.spec(JobRef::job(self.env.next_job()), &base);
            change(&mut spec);
            spec
        };
        let specs = [
            spec(&|s| s.exe = String::new()),
            spec(&|s| s.args.push("nul\0inside".into())),
            spec(&|s| {
                s.env.insert("A=B".into(), "x".into());
                s.env.insert("nul\0inside".into(), "x".into());
            }),
            spec(&|s| s.input_files.push(root.to_path_buf())),
            spec(&|s| s.output_patterns.push("[".into())),
            spec(&|s| s.workspace = root.join("a-file-not-a-workspace")),
            spec(&|s| s.run = 0),
        ];
        let outcome = AssertUnwindSafe(self.backend.submit(&specs))
            .catch_unwind()
            .await;
        let answers = match outcome {
            Err(payload) => {
                return Err(panicked(
                    "submit of specs no job file can make",
                    panic_message(&*payload),
                ));
            }
            Ok(Err(e)) if e.kind == BackendErrorKind::Panicked => {
                return Err(panicked("submit of specs no job file can make", e.message));
            }
            Ok(Err(_)) => return Ok(()),
            Ok(Ok(answers)) => answers,
        };
        // Stop whatever of them was accepted; they are not this check's business.
        let accepted: Vec<BackendRef> = specs
            .iter()
            .filter_map(|spec| {
                let (_, answer) = answers.iter().find(|(job, _)| *job == spec.job)?;
                answer
                    .as_ref()
                    .ok()
                    .map(|s| crate::helpers::backend_ref(spec, s))
            })
            .collect();
        if !accepted.is_empty() {
            self.no_panic(
                "kill of units submitted from specs no job file can make",
                self.backend.kill(&accepted),
            )
            .await?;
        }
        Ok(())
    }

    /// Runs a call, catching a panic where the backend is linked in, and reading one in
    /// its error where it is loaded (the plugin SDK turns a panic into that error).
    async fn no_panic<T>(
        &self,
        call: &str,
        answer: impl Future<Output = Result<T, BackendError>>,
    ) -> Outcome {
        match AssertUnwindSafe(answer).catch_unwind().await {
            Err(payload) => Err(panicked(call, panic_message(&*payload))),
            Ok(Err(e)) if e.kind == BackendErrorKind::Panicked => Err(panicked(call, e.message)),
            Ok(_) => Ok(()),
        }
    }
}
