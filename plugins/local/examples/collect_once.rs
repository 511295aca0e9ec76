//! A helper for the Local backend's tests: collects one unit's outputs with
//! `keep_workdir = false`, in a process of its own that a test can kill half-way.
//!
//! `collect_once HOME WORKSPACE RUN ID OUTPUT_DIR [PATTERN]...` prints the report as JSON.

use std::path::PathBuf;

use ganga_backend_local::LocalBackend;
use ganga_core::{Backend, BackendRef, JobRef, Options, OutputsRequest, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [home, workspace, run, id, output_dir, patterns @ ..] = args.as_slice() else {
        return Err("usage: collect_once HOME WORKSPACE RUN ID OUTPUT_DIR [PATTERN]...".into());
    };
    let options: Options = [("keep_workdir".to_owned(), Value::Bool(false))].into();
    let backend = LocalBackend::new(PathBuf::from(home), &options)?;
    let request = OutputsRequest {
        job: BackendRef {
            job: JobRef::job(1),
            id: id.clone(),
            run: run.parse()?,
            workspace: PathBuf::from(workspace),
        },
        output_dir: PathBuf::from(output_dir),
        patterns: patterns.to_vec(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answers = runtime.block_on(backend.outputs(&[request]))?;
    for (_, answer) in answers {
        println!("{}", serde_json::to_string(&answer?)?);
    }
    Ok(())
}
