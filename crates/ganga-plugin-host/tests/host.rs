//! The plugin boundary, through real libraries: refusals, panics, errors.

#![allow(clippy::unwrap_used)] // a test that cannot set up is a failed test

use std::path::PathBuf;

use ganga_core::{BackendErrorKind, BackendRef, JobRef, Options, Value};
use ganga_plugin_host::{Catalog, HostError, PluginKind};
use ganga_protocol::PluginContext;
use ganga_test_support::built_plugin;

fn context(config: Options) -> PluginContext {
    PluginContext {
        home_id: String::new(),
        home: PathBuf::from("/nonexistent-ganga-home"),
        config,
    }
}

fn a_ref() -> BackendRef {
    BackendRef {
        job: JobRef::subjob(1, 2),
        id: "x".into(),
        workspace: "/tmp".into(),
        run: 1,
    }
}

#[test]
fn plugin_built_for_another_abi_is_refused_by_name_with_both_versions() {
    let path = built_plugin("ganga-testplugin-wrong-abi");
    let mut catalog = Catalog::new();
    let refusal = catalog
        .load_file(&path)
        .expect_err("a plugin for ABI 2 must be refused");
    let msg = refusal.to_string();
    assert_eq!(refusal.plugin.as_deref(), Some("wrong-abi"));
    assert!(msg.contains("plugin `wrong-abi`"), "{msg}");
    assert!(msg.contains("plugin ABI 2"), "{msg}");
    assert!(msg.contains("speaks plugin ABI 1"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert_eq!(catalog.plugins().count(), 0);
    assert_eq!(catalog.refusals().len(), 1);

    // Asking for it then names what was refused and why.
    let err = catalog
        .backend("wrong-abi", &context(Options::new()))
        .err()
        .expect("unknown");
    let text = err.to_string();
    assert!(text.contains("unknown backend `wrong-abi`"), "{text}");
    assert!(text.contains("plugin ABI 2"), "{text}");
}

#[test]
fn a_file_that_is_not_a_plugin_is_refused_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join(format!(
        "{}ganga_backend_broken{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::write(&fake, b"this is not a shared library").unwrap();
    let mut catalog = Catalog::new();
    catalog.scan_dir(dir.path());
    assert_eq!(catalog.plugins().count(), 0);
    let refusal = &catalog.refusals()[0];
    assert_eq!(refusal.path, fake);
    assert_eq!(
        refusal.reason, "it is not an ELF shared library",
        "{refusal}"
    );
}

#[test]
fn a_library_without_a_declaration_is_refused() {
    // The wrong-abi fixture's file, renamed: the declaration symbol follows the file name.
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join(format!(
        "{}ganga_backend_renamed{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(built_plugin("ganga-testplugin-wrong-abi"), &renamed).unwrap();
    let mut catalog = Catalog::new();
    let refusal = catalog
        .load_file(&renamed)
        .expect_err("no declaration under that name");
    assert!(
        refusal
            .reason
            .contains("ganga_plugin_decl_ganga_backend_renamed"),
        "{refusal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_plugin_is_an_error_for_that_call_and_the_program_goes_on() {
    let mut catalog = Catalog::new();
    let info = catalog
        .load_file(&built_plugin("ganga-testplugin-faulty"))
        .expect("loads");
    assert_eq!(info.name, "faulty");
    assert_eq!(info.kind, PluginKind::Backend);
    let backend = catalog
        .backend("faulty", &context(Options::new()))
        .expect("created");

    for _ in 0..3 {
        let err = backend.poll(&[a_ref()]).await.expect_err("poll panics");
        assert_eq!(err.kind, BackendErrorKind::Panicked, "{err}");
        assert!(err.message.contains("poll always panics"), "{err}");

        let err = backend.submit(&[]).await.expect_err("submit panics");
        assert_eq!(err.kind, BackendErrorKind::Panicked, "{err}");

        // An ordinary error crosses as itself.
        let err = backend.kill(&[a_ref()]).await.expect_err("kill fails");
        assert_eq!(err.kind, BackendErrorKind::Failed);
        assert!(err.message.contains("kill always fails"));

        // And the plugin still answers.
        assert_eq!(
            backend.describe().await.expect("describe works").name,
            "faulty"
        );
        let peeked = backend
            .peek(&a_ref(), &ganga_core::PeekFile::Stdout, 10)
            .await
            .unwrap();
        assert_eq!(peeked, b"peeked");
    }
}

#[test]
fn a_plugin_that_panics_or_fails_while_starting_is_reported_not_fatal() {
    let mut catalog = Catalog::new();
    catalog
        .load_file(&built_plugin("ganga-testplugin-faulty"))
        .expect("loads");
    let mut config = Options::new();
    config.insert("on_create".into(), Value::from("panic"));
    let err = catalog
        .backend("faulty", &context(config))
        .err()
        .expect("fails");
    assert!(matches!(err, HostError::CreateFailed { .. }), "{err}");
    assert!(err.to_string().contains("panicked while starting"), "{err}");

    let mut config = Options::new();
    config.insert("on_create".into(), Value::from("fail"));
    let err = catalog
        .backend("faulty", &context(config))
        .err()
        .expect("fails");
    assert!(
        err.to_string().contains("asked to fail while starting"),
        "{err}"
    );

    // After both, it can still be created normally.
    assert!(catalog.backend("faulty", &context(Options::new())).is_ok());
}

#[test]
fn the_first_plugin_of_a_name_wins_and_later_ones_are_listed_as_shadowed() {
    let path = built_plugin("ganga-testplugin-faulty");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(path.file_name().unwrap());
    std::fs::copy(&path, &copy).unwrap();
    let mut catalog = Catalog::new();
    catalog.load_file(&path).unwrap();
    catalog.load_file(&copy).unwrap();
    assert_eq!(catalog.plugins().count(), 1);
    assert_eq!(catalog.shadowed().len(), 1);
    assert_eq!(catalog.shadowed()[0].file.as_deref(), Some(copy.as_path()));
}

/// The first `len` bytes of `from` at `to`, as a half-written build leaves a library.
fn truncated_copy(from: &std::path::Path, to: &std::path::Path, len: u64) {
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

/// Where a build may have stopped writing a library of `size` bytes.
fn cut_lengths(size: u64) -> Vec<u64> {
    [1024, 64 * 1024, 1 << 20, size / 2, size - 4096, size - 1]
        .into_iter()
        .filter(|&n| n < size)
        .collect()
}

fn lib_name(stem: &str) -> String {
    format!(
        "{}ganga_backend_{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

#[test]
fn a_truncated_library_is_refused_by_name_with_the_cause_before_it_is_mapped() {
    let plugin = built_plugin("ganga-testplugin-faulty");
    let size = std::fs::metadata(&plugin).unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    for len in cut_lengths(size) {
        let file = dir.path().join(lib_name(&format!("cut{len}")));
        truncated_copy(&plugin, &file, len);
        let mut catalog = Catalog::new();
        let refusal = catalog
            .load_file(&file)
            .expect_err("a truncated library is refused");
        assert_eq!(refusal.path, file);
        let msg = refusal.to_string();
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert!(msg.contains("truncated"), "{len} bytes: {msg}");
    }
    // Found by scanning, each is refused, and an intact plugin beside them loads.
    let intact = built_plugin("ganga-backend-example");
    std::fs::copy(&intact, dir.path().join(intact.file_name().unwrap())).unwrap();
    let mut catalog = Catalog::new();
    catalog.scan_dir(dir.path());
    assert_eq!(catalog.refusals().len(), cut_lengths(size).len());
    assert_eq!(catalog.names(PluginKind::Backend), ["example"]);
}

#[test]
fn a_library_the_loader_refuses_is_refused_with_the_loaders_reason() {
    // A complete ELF file that is no library: a position-independent executable.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(lib_name("exe"));
    std::fs::copy(std::env::current_exe().unwrap(), &file).unwrap();
    let mut catalog = Catalog::new();
    let refusal = catalog.load_file(&file).expect_err("not loadable");
    let msg = refusal.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(
        msg.contains("cannot dynamically load position-independent executable"),
        "{msg}"
    );
}

#[test]
fn a_directory_or_an_empty_file_named_like_a_plugin_is_refused_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(lib_name("dir"))).unwrap();
    std::fs::write(dir.path().join(lib_name("empty")), b"").unwrap();
    let mut catalog = Catalog::new();
    catalog.scan_dir(dir.path());
    let reasons: Vec<&str> = catalog
        .refusals()
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], "it is not a file");
    assert!(reasons[1].contains("the file is empty"), "{reasons:?}");
}

/// `record` with its array header in the longer, non-minimal form: the same record to
/// every reader, other bytes than ganga-records writes.
fn long_header(record: &[u8]) -> Vec<u8> {
    let (&first, rest) = record.split_first().unwrap();
    assert!((0x80..0x98).contains(&first), "a short array header");
    let mut out = vec![0x98, first - 0x80];
    out.extend_from_slice(rest);
    out
}

#[test]
fn a_job_put_reaches_the_lmdb_library_as_the_records_the_host_sent() {
    use ciborium::Value as C;
    use ganga_core::{Application, BackendConfig, Executable, Job, JobSpec, Splitter, Timestamp};
    use ganga_records::{JobRecord, RecordChanges, restamp_state};

    let home = tempfile::tempdir().unwrap();
    let mut catalog = Catalog::new();
    catalog
        .load_file(&built_plugin("ganga-store-lmdb"))
        .unwrap();
    let store = catalog
        .store(
            "lmdb",
            &PluginContext {
                home_id: String::new(),
                home: home.path().to_owned(),
                config: Options::new(),
            },
        )
        .unwrap();
    let id = store.reserve_ids(1).unwrap();
    let spec = JobSpec {
        auto_resubmit: None,
        name: "encoded once".into(),
        comment: String::new(),
        application: Application::Executable(Executable {
            exe: "/bin/echo".into(),
            args: vec![],
            env: Default::default(),
        }),
        backend: BackendConfig::named("local"),
        input_files: vec![],
        output_files: vec![],
        splitter: Some(Splitter::Args {
            args: (0..20).map(|i| vec![format!("a{i}")]).collect(),
            append: false,
        }),
    };
    let job = Job::new(id, spec, Timestamp(1_700_000_000_000));
    let ours = JobRecord::of(&job);
    // Records this job decodes from that ganga-records would never write: the library
    // keeps them only if it writes what it was sent instead of encoding the job again.
    let sent = JobRecord {
        state: ours.state.clone(),
        spec: long_header(&ours.spec).into(),
        splitter: Some(long_header(ours.splitter.as_deref().unwrap()).into()),
    };
    let put = C::Map(vec![(
        C::Text("put_job".into()),
        C::Array(vec![
            C::Integer(id.into()),
            C::Bytes(sent.state.to_vec()),
            C::Bytes(sent.spec.to_vec()),
            C::Bytes(sent.splitter.as_deref().unwrap().to_vec()),
        ]),
    )]);
    let mut bytes = Vec::new();
    ciborium::into_writer(&C::Array(vec![put]), &mut bytes).unwrap();
    let changes: RecordChanges = ciborium::from_reader(&bytes[..]).unwrap();
    assert_eq!(changes.changes(), [ganga_core::Change::PutJob(job.clone())]);

    let committed = store.commit_records(&changes).unwrap();
    assert_eq!(committed[0].revision, 1);
    let stored = store.job_record(id).unwrap().unwrap();
    let mut state = Vec::new();
    restamp_state(&sent.state, 1, &mut state).unwrap();
    assert_eq!(stored.state.as_slice(), state.as_slice());
    assert_eq!(
        (&stored.spec, &stored.splitter),
        (&sent.spec, &sent.splitter)
    );
    let mut expected = job;
    expected.revision = 1;
    assert_eq!(store.job(id).unwrap(), Some(expected));
}
