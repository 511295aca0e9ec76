//! `poll-all`: one poll cycle of a real backend over every active unit it has in a home,
//! as the monitor makes it for a backend that lists everything at once: the units read
//! from the store's index, one `poll_all` call, timed. Every unit must be answered, or
//! the benchmark fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use ganga_core::{BackendRef, Options, UnitCursor, Workspaces};
use ganga_plugin_host::Catalog;
use ganga_protocol::PluginContext;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct Figures {
    pub(crate) units: u64,
    pub(crate) answered: u64,
    pub(crate) describe_secs: f64,
    pub(crate) poll_secs: f64,
    /// Answers by status (`Err`: the backend's error for that unit).
    pub(crate) statuses: BTreeMap<String, u64>,
}

/// The `[plugin.NAME]` table of a ganga config file, as the CLI hands it to the plugin
/// (read as the session reads it).
pub(crate) fn plugin_options(config: &Path, name: &str) -> anyhow::Result<Options> {
    // The file is named, so no home is searched for one.
    let (config, _) = ganga_session::Config::load(Some(config), Path::new("."))?;
    Ok(config.plugin_options(name))
}

pub(crate) fn poll_all(
    store: &Arc<dyn ganga_records::RecordStore>,
    catalog: &Catalog,
    home: &Path,
    backend: &str,
    config: Options,
) -> anyhow::Result<Figures> {
    let home = std::path::absolute(home).unwrap_or_else(|_| home.to_owned());
    let home_id = std::fs::read_to_string(home.join("home-id"))
        .with_context(|| format!("{} has no home-id: submit a job first", home.display()))?
        .trim()
        .to_owned();
    let context = PluginContext {
        home_id,
        home: home.clone(),
        config,
    };
    let instance = catalog.backend(backend, &context)?;
    let workspaces = Workspaces::new(home.join("workspace"));
    let mut refs = Vec::new();
    let mut after: Option<UnitCursor> = None;
    loop {
        let page = store.active_units(after.as_ref(), 16 * 1024)?;
        let Some(last) = page.last() else { break };
        after = Some(UnitCursor::after(last));
        for u in page {
            if u.backend == backend
                && let Some(id) = u.id
            {
                refs.push(BackendRef {
                    job: u.unit,
                    id,
                    run: u.run,
                    workspace: workspaces.dir(u.unit),
                });
            }
        }
    }
    anyhow::ensure!(
        !refs.is_empty(),
        "no active unit of backend `{backend}` in {}",
        home.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a runtime")?;
    let t = Instant::now();
    let description = runtime.block_on(instance.describe())?;
    let describe_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        description.capabilities.poll_all,
        "backend `{backend}` cannot list all its units at once (no poll_all)"
    );
    let t = Instant::now();
    let answers = runtime.block_on(instance.poll_all(&refs))?;
    let poll_secs = t.elapsed().as_secs_f64();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let asked: std::collections::HashSet<_> = refs.iter().map(|r| r.job).collect();
    let mut answered = std::collections::HashSet::new();
    for (unit, answer) in answers {
        if !asked.contains(&unit) {
            continue;
        }
        answered.insert(unit);
        let key = match answer {
            Ok(r) => format!("{:?}", r.status),
            Err(_) => "Err".to_owned(),
        };
        *statuses.entry(key).or_default() += 1;
    }
    anyhow::ensure!(
        answered.len() == refs.len() && !statuses.contains_key("Err"),
        "backend `{backend}` answered for {} of {} units ({statuses:?})",
        answered.len(),
        refs.len()
    );
    Ok(Figures {
        units: refs.len() as u64,
        answered: answered.len() as u64,
        describe_secs,
        poll_secs,
        statuses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganga_core::Value;

    #[test]
    fn a_plugins_options_are_read_from_the_config_as_the_session_reads_them() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            "[plugin.slurm]\nscheduler = \"slurm\"\npoll_interval_secs = 3\n\n[plugin.local]\nmax_parallel = 2\n",
        )?;
        let options = plugin_options(&config, "slurm")?;
        assert_eq!(options.len(), 2);
        assert_eq!(
            options.get("scheduler"),
            Some(&Value::String("slurm".into()))
        );
        assert_eq!(options.get("poll_interval_secs"), Some(&Value::Integer(3)));
        assert!(plugin_options(&config, "dirac")?.is_empty());
        assert!(plugin_options(&dir.path().join("missing.toml"), "slurm").is_err());
        Ok(())
    }
}
