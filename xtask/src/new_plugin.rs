//! `cargo xtask new-plugin NAME`: a new backend plugin crate, outside this repository,
//! made from `plugins/template` (a small detached backend that is built, linted and
//! tested with the workspace, so the copy starts from code that works).
//!
//! The copy gets a `Cargo.toml` of its own that depends on ganga's crates by path (this
//! checkout) or by git (`--git URL --tag TAG`), the workspace's `Cargo.lock` (so that it
//! builds with the versions ganga was tested with), and every `template` in the sources
//! renamed: the package `ganga-backend-NAME`, the backend `NAME`, the type `NameBackend`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

pub(crate) const USAGE: &str = "\
usage: cargo xtask new-plugin NAME [--dir DIR] [--git URL (--tag TAG | --rev REV)]

  NAME        the backend's name in job files ([backend] type = \"NAME\"): lower-case
              letters, digits and `_`, starting with a letter
  --dir DIR   where to make the crate [default: ./ganga-backend-NAME]; outside this
              repository, and new or empty
  --git URL   depend on ganga's crates from this git repository, at --tag or --rev (the
              release of the ganga you run); without it, by path on this checkout";

/// The files copied from the template, relative to its directory and to the new crate.
const COPIED: &[&str] = &[
    "src/lib.rs",
    "src/process.rs",
    "src/wrapper.sh",
    "tests/conformance.rs",
];

/// Where ganga's crates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Path(PathBuf),
    Git { url: String, pin: String },
}

#[derive(Debug)]
struct Request {
    name: String,
    dir: PathBuf,
    source: Source,
}

pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let request = parse(root, args).map_err(|e| anyhow::anyhow!("{e}\n\n{USAGE}"))?;
    refuse_inside(root, &request.dir)?;
    if std::fs::read_dir(&request.dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} exists and is not empty", request.dir.display());
    }
    let template = root.join("plugins").join("template");
    for file in COPIED {
        let text = std::fs::read_to_string(template.join(file))
            .with_context(|| format!("cannot read the template's {file}"))?;
        write(&request.dir.join(file), &rename(&text, &request.name)?)?;
    }
    let manifest = manifest(root, &request)?;
    write(&request.dir.join("Cargo.toml"), &manifest)?;
    write(&request.dir.join("README.md"), &readme(&request.name))?;
    write(&request.dir.join(".gitignore"), "/target\n")?;
    std::fs::copy(root.join("Cargo.lock"), request.dir.join("Cargo.lock"))
        .context("cannot copy the workspace's Cargo.lock")?;
    eprintln!(
        "made {} (backend `{}`); next:\n  cd {} && cargo test\n  ganga plugins check target/debug/lib{}.so",
        request.dir.display(),
        request.name,
        request.dir.display(),
        crate_name(&request.name)
    );
    Ok(())
}

fn parse(root: &Path, args: &[String]) -> Result<Request, String> {
    let mut name = None;
    let (mut dir, mut git, mut tag, mut rev) = (None, None, None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
            "--git" => git = Some(value("--git")?),
            "--tag" => tag = Some(value("--tag")?),
            "--rev" => rev = Some(value("--rev")?),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if name.is_some() => return Err(format!("one NAME only, not also `{arg}`")),
            _ => name = Some(arg.clone()),
        }
    }
    let name = name.ok_or("no NAME given")?;
    check_name(&name)?;
    let source = match (git, tag, rev) {
        (None, None, None) => Source::Path(root.to_owned()),
        (Some(url), Some(tag), None) => Source::Git {
            url,
            pin: format!("tag = \"{tag}\""),
        },
        (Some(url), None, Some(rev)) => Source::Git {
            url,
            pin: format!("rev = \"{rev}\""),
        },
        (Some(_), None, None) => {
            return Err("--git needs --tag or --rev: the release of the ganga you run".into());
        }
        (None, _, _) => return Err("--tag and --rev go with --git".into()),
        (Some(_), Some(_), Some(_)) => return Err("--tag or --rev, not both".into()),
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(format!("ganga-backend-{}", kebab(&name))));
    let dir = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Request { name, dir, source })
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || name.ends_with('_') || name.contains("__") || name.len() > 40 {
        return Err(format!(
            "`{name}` is not a backend name: lower-case letters, digits and single `_` between them, starting with a letter (e.g. `mysite`, `cern_batch`)"
        ));
    }
    Ok(())
}

/// A plugin crate made inside this workspace would be taken for one of its members.
fn refuse_inside(root: &Path, dir: &Path) -> anyhow::Result<()> {
    let root = root
        .canonicalize()
        .context("cannot resolve the workspace")?;
    let mut existing = dir;
    while !existing.exists() {
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    if existing.canonicalize()?.starts_with(&root) {
        bail!(
            "{} is inside this repository ({}): make the plugin outside it, e.g. --dir ../ganga-backend-NAME (a plugin of the workspace itself starts as a copy of plugins/template)",
            dir.display(),
            root.display()
        );
    }
    Ok(())
}

fn kebab(name: &str) -> String {
    name.replace('_', "-")
}

fn crate_name(name: &str) -> String {
    format!("ganga_backend_{name}")
}

fn camel(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The template's text with every `template` renamed.
fn rename(text: &str, name: &str) -> anyhow::Result<String> {
    let out = text
        .replace(
            "ganga-backend-template",
            &format!("ganga-backend-{}", kebab(name)),
        )
        .replace("ganga_backend_template", &crate_name(name))
        .replace("Template", &camel(name))
        .replace("template", name);
    if !name.contains("template") && out.to_lowercase().contains("template") {
        bail!("a `template` the renaming does not know is left in the template's sources");
    }
    Ok(out)
}

/// The new crate's manifest: ganga's crates from `source`, the other dependencies at the
/// versions the workspace uses.
fn manifest(root: &Path, request: &Request) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(root.join("Cargo.toml")).context("cannot read Cargo.toml")?;
    let workspace: toml::Table = toml::from_str(&text).context("cannot parse Cargo.toml")?;
    let version = |dep: &str| -> anyhow::Result<String> {
        let entry = workspace
            .get("workspace")
            .and_then(|w| w.get("dependencies"))
            .and_then(|d| d.get(dep))
            .with_context(|| format!("the workspace has no dependency `{dep}`"))?;
        entry
            .as_str()
            .or_else(|| entry.get("version").and_then(|v| v.as_str()))
            .map(str::to_owned)
            .with_context(|| format!("the workspace gives no version of `{dep}`"))
    };
    let package = |key: &str| -> anyhow::Result<String> {
        workspace
            .get("workspace")
            .and_then(|w| w.get("package"))
            .and_then(|p| p.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .with_context(|| format!("the workspace's package has no `{key}`"))
    };
    let ganga = |krate: &str| match &request.source {
        Source::Path(root) => format!(
            "{krate} = {{ path = \"{}\" }}",
            root.join("crates").join(krate).display()
        ),
        Source::Git { url, pin } => format!("{krate} = {{ git = \"{url}\", {pin} }}"),
    };
    let from = match &request.source {
        Source::Path(root) => format!("the ganga-rs checkout at {}", root.display()),
        Source::Git { url, pin } => format!("{url} ({pin})"),
    };
    Ok(format!(
        r#"[package]
name = "ganga-backend-{kebab}"
version = "0.1.0"
edition = "{edition}"
rust-version = "{rust_version}"
publish = false

[lib]
# cdylib: lib{crate_name}.so, the library ganga loads (keep its name: ganga finds the
# plugin's declaration from it). rlib: for the tests, which link the backend directly.
crate-type = ["cdylib", "rlib"]

# A workspace of its own, wherever it is put.
[workspace]

# ganga's crates come from {from}:
# build against the ganga-rs of the ganga you run (`ganga --version` says its version,
# plugin ABI and protocol), and keep its Cargo.lock (copied here) so that the other
# crates are the versions ganga was tested with.
[dependencies]
{core}
{sdk}
async-trait = "{async_trait}"
rustix = {{ version = "{rustix}", features = ["process"] }}
tokio = {{ version = "{tokio}", features = ["process", "rt", "time"] }}

[dev-dependencies]
{host}
{support}
tokio = {{ version = "{tokio}", features = ["macros", "rt-multi-thread"] }}
"#,
        kebab = kebab(&request.name),
        crate_name = crate_name(&request.name),
        edition = package("edition")?,
        rust_version = package("rust-version")?,
        core = ganga("ganga-core"),
        sdk = ganga("ganga-plugin-sdk"),
        host = ganga("ganga-plugin-host"),
        support = ganga("ganga-test-support"),
        async_trait = version("async-trait")?,
        rustix = version("rustix")?,
        tokio = version("tokio")?,
    ))
}

fn readme(name: &str) -> String {
    let krate = crate_name(name);
    format!(
        r#"# ganga-backend-{kebab}

A backend plugin for ganga-rs: jobs run detached on
this machine, each under `nice` (the job option, or `[plugin.{name}] nice`, else 10). It
was made with `cargo xtask new-plugin {name}`: change it into your site's backend. ganga-rs's
`docs/plugin-guide.md` explains every call, and "Detached backends" why each step is
as it is.

```sh
cargo test                                   # the conformance suite, linked in and loaded
cargo build --release                        # target/release/lib{krate}.so
ganga plugins check target/release/lib{krate}.so
mkdir -p ~/.config/ganga/plugins && cp target/release/lib{krate}.so ~/.config/ganga/plugins/
ganga plugins                                # listed? if not, it says why
```

A job file then says:

```toml
[application]
exe = "/bin/echo"
args = ["hello"]

[backend]
type = "{name}"
nice = 15
```
"#,
        kebab = kebab(name),
    )
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_packages_crates_and_types() {
        assert_eq!(camel("cern_batch"), "CernBatch");
        assert_eq!(camel("nice10"), "Nice10");
        assert_eq!(kebab("cern_batch"), "cern-batch");
        let text = "ganga-backend-template ganga_backend_template TemplateBackend \"template\"";
        assert_eq!(
            rename(text, "cern_batch").expect("renamed"),
            "ganga-backend-cern-batch ganga_backend_cern_batch CernBatchBackend \"cern_batch\""
        );
        for bad in ["", "Site", "1site", "my-site", "site_", "a__b", "my site"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for good in ["mysite", "cern_batch", "s2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn the_template_renames_whole() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in COPIED {
            let text = std::fs::read_to_string(root.join("plugins/template").join(file))
                .expect("the template is there");
            let out = rename(&text, "mysite").expect("nothing unknown left");
            assert!(!out.contains("template"), "{file}");
        }
    }

    #[test]
    fn git_sources_need_a_pin() {
        let root = Path::new("/checkout");
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let r = parse(
            root,
            &args(&["mysite", "--git", "https://x/g", "--tag", "v0.1.0"]),
        )
        .expect("valid");
        assert_eq!(
            r.source,
            Source::Git {
                url: "https://x/g".into(),
                pin: "tag = \"v0.1.0\"".into()
            }
        );
        assert!(r.dir.ends_with("ganga-backend-mysite"));
        assert!(parse(root, &args(&["mysite", "--git", "https://x/g"])).is_err());
        assert!(parse(root, &args(&["mysite", "--tag", "v1"])).is_err());
        assert_eq!(
            parse(root, &args(&["mysite"])).expect("valid").source,
            Source::Path(root.to_owned())
        );
    }
}
