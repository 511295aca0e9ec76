//! The backend against ganga's backend conformance suite, twice: linked in (fast, and a
//! debugger sees everything), and as the library ganga loads, built by cargo and loaded
//! through ganga's plugin host, so that the plugin boundary is exercised too. Then what
//! only this backend does: `nice`.

use std::path::Path;

use ganga_backend_template::TemplateBackend;
use ganga_core::{Backend as _, BackendRef, JobRef, Options, PeekFile, RemoteStatus, Value};
use ganga_plugin_host::Catalog;
use ganga_plugin_sdk::BackendPlugin as _;
use ganga_plugin_sdk::PluginContext;
use ganga_test_support::built_plugin;
use ganga_test_support::conformance::{
    self, ConformanceEnv, ShellJob, poll_until_final, submit_all,
};

fn context(home: &Path, config: &[(&str, Value)]) -> PluginContext {
    PluginContext {
        home: home.to_owned(),
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<Options>(),
        home_id: "test".into(),
    }
}

fn env() -> ConformanceEnv {
    ConformanceEnv::new().expect("a temporary directory")
}

#[tokio::test(flavor = "multi_thread")]
async fn conforms_when_linked_in() {
    let env = env();
    let backend = TemplateBackend::create(context(env.root(), &[])).expect("the backend starts");
    conformance::run(&backend, &env)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn conforms_as_a_loaded_library() {
    let env = env();
    // Runs `cargo build -p ganga-backend-template` (the test's own profile and target
    // directory) and returns target/<profile>/libganga_backend_template.so.
    let path = built_plugin("ganga-backend-template");
    let mut catalog = Catalog::new();
    let info = catalog
        .load_file(&path)
        .unwrap_or_else(|refusal| panic!("{refusal}"));
    assert_eq!(info.name, "template");
    let backend = catalog
        .backend("template", &context(env.root(), &[]))
        .expect("the backend starts");
    conformance::run(&*backend, &env)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_run_niced_as_the_job_or_the_config_says() {
    let env = env();
    let backend = TemplateBackend::create(context(env.root(), &[("nice", Value::Integer(5))]))
        .expect("the backend starts");
    let ours = String::from_utf8(
        std::process::Command::new("nice")
            .output()
            .expect("nice runs")
            .stdout,
    )
    .expect("a number");
    let ours: i64 = ours.trim().parse().expect("a number");
    let job = |n| {
        env.spec(
            JobRef::job(n),
            &ShellJob::new("nice > niceness.txt").output("niceness.txt"),
        )
    };
    let mut by_option = job(2);
    by_option.options.insert("nice".into(), Value::Integer(12));
    let refs = submit_all(&backend, &[job(1), by_option])
        .await
        .unwrap_or_else(|m| panic!("{m}"));
    for seen in poll_until_final(&backend, &refs, env.timeout(), env.poll_interval())
        .await
        .unwrap_or_else(|m| panic!("{m}"))
    {
        assert_eq!(seen.report.status, RemoteStatus::Succeeded, "{seen:?}");
    }
    for (r, wanted) in refs.iter().zip([5, 12]) {
        let text = backend
            .peek(r, &PeekFile::Path("niceness.txt".into()), 64)
            .await
            .expect("peek");
        let got: i64 = String::from_utf8_lossy(&text)
            .trim()
            .parse()
            .expect("a number");
        assert_eq!(got, (ours + wanted).min(19), "job {}", r.job);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_niceness_fails_its_job_alone() {
    let env = env();
    let backend = TemplateBackend::create(context(env.root(), &[])).expect("the backend starts");
    let specs = [
        env.spec(JobRef::job(1), &ShellJob::new("exit 0").option("nice", 99)),
        env.spec(JobRef::job(2), &ShellJob::new("exit 0")),
    ];
    let answers = backend.submit(&specs).await.expect("the call works");
    let answers = conformance::keyed("submit", &[specs[0].job, specs[1].job], answers)
        .unwrap_or_else(|m| panic!("{m}"));
    let error = answers[0].as_ref().expect_err("nice = 99 is refused");
    assert!(error.contains("`nice` must be 0 to 19, not 99"), "{error}");
    assert!(answers[1].is_ok(), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_on_another_host_is_not_told_from_here() {
    // A home shared between machines: a pid means nothing on another host.
    let env = env();
    let backend = TemplateBackend::create(context(env.root(), &[])).expect("the backend starts");
    let elsewhere = BackendRef {
        job: JobRef::job(1),
        id: "another-host:4242:123456".into(),
        run: 1,
        workspace: env.workspaces().dir(JobRef::job(1)),
    };
    let polled = backend
        .poll(std::slice::from_ref(&elsewhere))
        .await
        .expect("the call works");
    let report = polled[0].1.as_ref().expect("a report");
    assert_eq!(report.status, RemoteStatus::Unknown, "{report:?}");
    assert!(
        report
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("it runs on another-host")),
        "{report:?}"
    );
    let killed = backend.kill(&[elsewhere]).await.expect("the call works");
    let error = killed[0].1.as_ref().expect_err("not killed from here");
    assert!(error.contains("it runs on another-host"), "{error}");
}

#[test]
fn a_bad_setting_stops_the_plugin_naming_it() {
    let env = env();
    for (config, says) in [
        (
            ("nice", Value::from("high")),
            "[plugin.template]: `nice` must be 0 to 19, not \"high\"",
        ),
        (
            ("nicer", Value::Integer(1)),
            "[plugin.template]: unknown setting `nicer`",
        ),
    ] {
        let error = TemplateBackend::create(context(env.root(), &[config]))
            .err()
            .expect("refused");
        assert!(error.contains(says), "{error}");
    }
}
