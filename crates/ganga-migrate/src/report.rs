//! What a migration did (or, for a dry run, would do): counts per registry and status,
//! the ids given, every object that could not be brought over or only in part, and what
//! was left behind by design.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// The outcome of [`crate::migrate`]. Deterministic for a given gangadir and store: it holds
/// no durations or clock readings, so two reports can be compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub gangadir: PathBuf,
    pub dry_run: bool,
    /// The Ganga users whose repositories were read.
    pub users: Vec<String>,
    /// Per registry (`jobs`, `templates`, `box`; prefixed `<user>/` when there are several
    /// users).
    pub registries: BTreeMap<String, RegistryReport>,
    /// Whether Ganga's job ids were kept (a store that had never used them) or new ids given.
    pub ids: IdPolicy,
    /// Objects that got an id other than their Ganga id.
    pub renumbered: Vec<Renumbered>,
    /// Jobs and subjobs that were active in Ganga (submitting, submitted, running,
    /// completing): imported as `failed`, see `docs/migration.md`.
    pub active: Vec<ActiveInGanga>,
    /// Every object that was skipped, imported only in part, or not migrated, with why.
    pub problems: Vec<Problem>,
    /// What was left behind by design, counted: e.g. `subjob timestamp backend_running`.
    pub dropped: BTreeMap<String, u64>,
    pub workspace: WorkspaceReport,
    /// Store transactions made.
    pub commits: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdPolicy {
    /// Nothing was imported (or everything was already there).
    #[default]
    Unchanged,
    /// Ganga's job ids were kept.
    Kept,
    /// The store had used Ganga's ids already: new ids were given (see `renumbered`).
    Renumbered,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistryReport {
    /// Objects found on disk.
    pub found: u64,
    /// Brought into the store by this run (for a dry run: would be).
    pub imported: u64,
    /// Already in the store from an earlier run: left as they are.
    pub already_migrated: u64,
    /// Not imported (see `problems`).
    pub skipped: u64,
    /// Imported objects by the status they have in ganga-rs.
    pub statuses: BTreeMap<String, u64>,
    /// Objects found, by their status in Ganga.
    pub ganga_statuses: BTreeMap<String, u64>,
    pub subjobs_found: u64,
    pub subjobs_imported: u64,
    /// Imported subjobs by status in ganga-rs.
    pub subjob_statuses: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Renumbered {
    pub registry: String,
    pub ganga_id: u64,
    pub id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveInGanga {
    /// `12` or `12.3`, Ganga's numbering.
    pub ganga_ref: String,
    pub ganga_status: String,
    /// The job's id in ganga-rs (`None` in a dry run before ids are given, or if skipped).
    pub id: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The object was not imported.
    Skipped,
    /// Imported, but something in it could not be mapped (the reason says what, and
    /// where it was kept, if anywhere).
    Flagged,
    /// Not a job: nothing in ganga-rs can hold it (box items that are not jobs, other
    /// repository types...).
    NotMigrated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub registry: String,
    /// Ganga's numbering: `12`, `12.3`, or a path for things that are not objects.
    pub object: String,
    pub severity: Severity,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkspaceReport {
    /// How outputs were brought: `copy`, `link` or `none`.
    pub mode: String,
    /// Output directories found in Ganga's workspace (and brought over, unless the mode
    /// is `none`; an empty one is counted but makes no directory here).
    pub dirs: u64,
    pub files_copied: u64,
    pub files_linked: u64,
    /// Files already present with the same size (from an earlier run).
    pub files_present: u64,
    pub bytes: u64,
    /// Units that ran (or were submitted) in Ganga but have no output directory there.
    pub missing_dirs: u64,
}

impl Report {
    pub(crate) fn registry(&mut self, name: &str) -> &mut RegistryReport {
        self.registries.entry(name.to_owned()).or_default()
    }

    pub(crate) fn problem(
        &mut self,
        registry: &str,
        object: impl Into<String>,
        severity: Severity,
        reason: impl Into<String>,
    ) {
        self.problems.push(Problem {
            registry: registry.to_owned(),
            object: object.into(),
            severity,
            reason: reason.into(),
        });
    }

    pub(crate) fn drop_count(&mut self, what: impl Into<String>, n: u64) {
        *self.dropped.entry(what.into()).or_default() += n;
    }

    /// Every problem of one severity.
    pub fn problems_of(&self, severity: Severity) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.severity == severity)
    }

    pub fn imported_jobs(&self) -> u64 {
        self.registries.values().map(|r| r.imported).sum()
    }

    pub fn imported_subjobs(&self) -> u64 {
        self.registries.values().map(|r| r.subjobs_imported).sum()
    }
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        writeln!(
            f,
            "{}migration of {} (user{} {})",
            if self.dry_run { "dry run: " } else { "" },
            self.gangadir.display(),
            if self.users.len() == 1 { "" } else { "s" },
            self.users.join(", ")
        )?;
        for (name, r) in &self.registries {
            writeln!(
                f,
                "{name}: {} found, {verb} {}, already migrated {}, skipped {}",
                r.found, r.imported, r.already_migrated, r.skipped
            )?;
            writeln!(f, "  in Ganga:    {}", counts(&r.ganga_statuses))?;
            writeln!(f, "  in ganga-rs: {}", counts(&r.statuses))?;
            if r.subjobs_found > 0 {
                writeln!(
                    f,
                    "  subjobs: {} found, {verb} {}: {}",
                    r.subjobs_found,
                    r.subjobs_imported,
                    counts(&r.subjob_statuses)
                )?;
            }
        }
        match self.ids {
            IdPolicy::Unchanged => {}
            IdPolicy::Kept => writeln!(f, "ids: Ganga's job ids kept")?,
            IdPolicy::Renumbered => writeln!(
                f,
                "ids: the store already used Ganga's ids; new ids given (below)"
            )?,
        }
        if !self.renumbered.is_empty() {
            let shown: Vec<String> = self
                .renumbered
                .iter()
                .map(|r| format!("{} {} -> {}", r.registry, r.ganga_id, r.id))
                .collect();
            writeln!(f, "new ids ({}): {}", shown.len(), shown.join(", "))?;
        }
        if !self.active.is_empty() {
            writeln!(
                f,
                "active in Ganga, {} as failed ({}): {}",
                verb,
                self.active.len(),
                self.active
                    .iter()
                    .map(|a| format!("{} ({})", a.ganga_ref, a.ganga_status))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        let w = &self.workspace;
        if w.mode == "none" {
            writeln!(
                f,
                "workspace (none): outputs left in Ganga's workspace ({} output directories)",
                w.dirs
            )?;
        } else {
            writeln!(
                f,
                "workspace ({}): {} output directories, {} files copied, {} linked, {} already there, {} bytes; {} missing in Ganga's workspace",
                w.mode,
                w.dirs,
                w.files_copied,
                w.files_linked,
                w.files_present,
                w.bytes,
                w.missing_dirs
            )?;
        }
        for (title, sev) in [
            ("skipped", Severity::Skipped),
            ("imported in part (flagged)", Severity::Flagged),
            ("not migrated", Severity::NotMigrated),
        ] {
            let list: Vec<&Problem> = self.problems_of(sev).collect();
            if list.is_empty() {
                continue;
            }
            writeln!(f, "{title} ({}):", list.len())?;
            for p in list {
                writeln!(f, "  {} {}: {}", p.registry, p.object, p.reason)?;
            }
        }
        if !self.dropped.is_empty() {
            writeln!(f, "left behind by design (see docs/migration.md):")?;
            for (what, n) in &self.dropped {
                writeln!(f, "  {what}: {n}")?;
            }
        }
        Ok(())
    }
}
