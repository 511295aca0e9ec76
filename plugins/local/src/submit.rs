//! Starting a job: its directories, its input files, its wrapper, its launch record.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use ganga_core::{SubmitSpec, Submitted};

use crate::layout::{JobDirs, LAUNCH, WRAPPER, WRAPPER_LOG};
use crate::procs;
use crate::records::{self, Launch};
use ganga_core::check_inside_workdir as check_inside;

/// The wrapper every job runs under (see the crate documentation).
const WRAPPER_SCRIPT: &str = include_str!("wrapper.sh");

/// Runs the program after `env NAME=VALUE...` when its name would be read as one more
/// assignment by env(1): `sh -c 'exec "$0" "$@"' EXE ARGS...`.
const TRAMPOLINE: [&str; 3] = ["/bin/sh", "-c", "exec \"$0\" \"$@\""];

/// What is the same for every job this backend starts.
#[derive(Debug, Clone)]
pub(crate) struct Launcher {
    pub(crate) slots: PathBuf,
    /// 0: no limit.
    pub(crate) max_parallel: u32,
    pub(crate) host: String,
}

impl Launcher {
    /// Starts one job. Errors are complete sentences about this job.
    pub(crate) async fn submit(&self, spec: &SubmitSpec) -> Result<Submitted, String> {
        let job = spec.job;
        check_spec(spec).map_err(|e| format!("job {job}: {e}"))?;
        let dirs = JobDirs::new(&spec.workspace);

        let prepared = {
            let spec = spec.clone();
            let dirs = dirs.clone();
            tokio::task::spawn_blocking(move || prepare(&spec, &dirs))
                .await
                .map_err(|e| format!("job {job}: preparing it failed: {e}"))?
                .map_err(|e| format!("job {job}: {e}"))?
        };

        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.args(self.wrapper_args(spec, &dirs))
            .current_dir(&dirs.control)
            .stdin(Stdio::null())
            .stdout(prepared.log_out)
            .stderr(prepared.log_err)
            .kill_on_drop(false);
        procs::detach(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("job {job}: cannot start /bin/sh: {e}"))?;
        // An unwaited child has not been reaped, so its pid cannot have been reused yet.
        let pid = child.id().and_then(|p| i32::try_from(p).ok());

        let recorded = match pid {
            Some(pgid) => {
                let launch = Launch {
                    pgid,
                    start_ticks: procs::start_ticks(pgid),
                    host: Some(self.host.clone()),
                    submitted: Some(records::now()),
                };
                let path = dirs.control_file(LAUNCH);
                tokio::task::spawn_blocking(move || {
                    records::write_atomic(&path, &launch.to_text())
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))
                })
                .await
                .unwrap_or_else(|e| Err(format!("writing the launch record failed: {e}")))
                .map(|()| pgid)
            }
            None => Err("the wrapper's process id is unknown".to_owned()),
        };
        if let (Err(_), Some(pgid)) = (&recorded, pid) {
            // Without a launch record the job could not be followed: stop it.
            let _ = procs::signal_group(pgid, libc::SIGKILL);
        }
        // The wrapper is our child until it ends: wait for it in the background so that
        // it does not stay a zombie in a long-running monitor. If this process ends
        // first, the wrapper is re-parented and goes on.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });

        let pgid = recorded.map_err(|e| format!("job {job}: {e}"))?;
        tracing::debug!("local backend: job {job} started as process group {pgid}");
        Ok(Submitted {
            id: pgid.to_string(),
            actual_ce: Some(self.host.clone()),
        })
    }

    /// `wrapper.sh CONTROL WORK SLOTS MAX N_ENV [NAME=VALUE]... EXE [ARG]...`
    fn wrapper_args(&self, spec: &SubmitSpec, dirs: &JobDirs) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            dirs.control_file(WRAPPER).into(),
            dirs.control.clone().into(),
            dirs.work.clone().into(),
            self.slots.clone().into(),
            self.max_parallel.to_string().into(),
            spec.env.len().to_string().into(),
        ];
        args.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}").into()));
        if !spec.env.is_empty() && spec.exe.contains('=') {
            args.extend(TRAMPOLINE.iter().map(OsString::from));
        }
        args.push(spec.exe.clone().into());
        args.extend(spec.args.iter().map(OsString::from));
        args
    }
}

/// Refuses what cannot be passed to a process, before anything is written.
fn check_spec(spec: &SubmitSpec) -> Result<(), String> {
    if !spec.workspace.is_absolute() {
        return Err(format!(
            "the workspace {} is not an absolute path",
            spec.workspace.display()
        ));
    }
    if spec.exe.is_empty() {
        return Err("no executable given".to_owned());
    }
    // The wrapper and env(1) would take a leading `-` for an option.
    if spec.exe.starts_with('-') {
        return Err(format!("the executable `{}` starts with `-`", spec.exe));
    }
    if spec.exe.contains('\0') {
        return Err("the executable contains a NUL character".to_owned());
    }
    if let Some(i) = spec.args.iter().position(|a| a.contains('\0')) {
        return Err(format!("argument {} contains a NUL character", i + 1));
    }
    for (name, value) in &spec.env {
        if name.is_empty() || name.contains(['=', '\0']) || name.starts_with('-') {
            return Err(format!(
                "`{}` cannot be the name of an environment variable",
                name.escape_debug()
            ));
        }
        if value.contains('\0') {
            return Err(format!(
                "the value of environment variable {name} contains a NUL character"
            ));
        }
    }
    for pattern in &spec.output_patterns {
        check_inside(pattern)
            .and_then(|()| {
                glob::Pattern::new(pattern)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("output pattern `{pattern}` is not usable: {e}"))?;
    }
    Ok(())
}

/// The wrapper's log, opened twice (stdout and stderr of the wrapper itself).
struct Prepared {
    log_out: File,
    log_err: File,
}

/// Makes fresh directories (a resubmitted job starts clean), copies the input files and
/// writes the wrapper.
fn prepare(spec: &SubmitSpec, dirs: &JobDirs) -> Result<Prepared, String> {
    let io_err =
        |what: &str, path: &Path, e: io::Error| format!("cannot {what} {}: {e}", path.display());
    for dir in [&dirs.control, &dirs.work] {
        match fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove the old", dir, e)),
        }
        fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    }

    let mut names = std::collections::HashSet::new();
    for input in &spec.input_files {
        let name = input
            .file_name()
            .ok_or_else(|| format!("input file {} has no file name", input.display()))?;
        if !names.insert(name.to_owned()) {
            return Err(format!(
                "two input files are named {} (the second is {})",
                name.to_string_lossy(),
                input.display()
            ));
        }
        let meta = fs::metadata(input).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("input file {} does not exist", input.display()),
            _ => io_err("read input file", input, e),
        })?;
        let target = dirs.work.join(name);
        if meta.is_dir() {
            crate::collect::copy_tree(input, &target, &mut |_| {})
                .map_err(|e| format!("cannot copy input directory {}: {e}", input.display()))?;
        } else {
            fs::copy(input, &target).map_err(|e| io_err("copy input file", input, e))?;
        }
    }

    let wrapper = dirs.control_file(WRAPPER);
    fs::write(&wrapper, WRAPPER_SCRIPT).map_err(|e| io_err("write", &wrapper, e))?;
    let log_path = dirs.control_file(WRAPPER_LOG);
    let log_out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| io_err("create", &log_path, e))?;
    let log_err = log_out
        .try_clone()
        .map_err(|e| io_err("open", &log_path, e))?;
    Ok(Prepared { log_out, log_err })
}
