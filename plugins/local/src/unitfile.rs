//! The files the wrapper sources: a unit's `queued-<run>` record (program, arguments, the
//! job's environment) and the environment `ganga` had when it submitted (`env/<hash>`). Both are
//! shell text made only of single-quoted words, readable by the owner only, so that
//! environment values never appear on a command line.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::Path;

use ganga_core::SubmitSpec;

/// Runs the program after `env NAME=VALUE...` when its name would be read as one more
/// assignment by env(1): `sh -c 'exec "$0" "$@"' EXE ARGS...`.
const TRAMPOLINE: [&str; 3] = ["/bin/sh", "-c", "exec \"$0\" \"$@\""];

/// `'text'`, with each `'` written as `'\''`: one shell word, whatever the text (which
/// has no NUL: callers refuse those).
pub(crate) fn quote(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 2);
    q.push('\'');
    for c in text.chars() {
        if c == '\'' {
            q.push_str("'\\''");
        } else {
            q.push(c);
        }
    }
    q.push('\'');
    q
}

/// Whether sh can export a variable of this name: letters, digits and `_`, not starting
/// with a digit.
pub(crate) fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The shell text of `queued-<run>` for `spec` (after the record's head). Environment variables whose names sh can export
/// are set by `export` in the wrapper's subshell; the others (`dotted.name`) can only be
/// set by env(1), which has them on its command line for the moment until it starts the
/// program.
pub(crate) fn unit_script(
    spec: &SubmitSpec,
    work: &Path,
    base_env: &Path,
    env_tool: &Path,
) -> String {
    let mut s = format!(
        "# ganga-rs Local backend: run {} of unit {} (format 1), sourced by its wrapper.\n",
        spec.run, spec.job
    );
    let _ = writeln!(s, "ganga_format=1");
    let _ = writeln!(s, "ganga_job={}", quote(&spec.job.to_string()));
    let _ = writeln!(s, "ganga_work={}", quote(&lossless(work.as_os_str())));
    let _ = writeln!(s, "ganga_base={}", quote(&lossless(base_env.as_os_str())));
    s.push_str("ganga_env() {\n");
    let mut odd = Vec::new();
    for (name, value) in &spec.env {
        if is_shell_name(name) {
            let _ = writeln!(s, "command export {}", quote(&format!("{name}={value}")));
        } else {
            odd.push(format!("{name}={value}"));
        }
    }
    s.push_str(":\n}\n");
    let mut argv: Vec<String> = Vec::new();
    if !odd.is_empty() {
        argv.push(lossless(env_tool.as_os_str()));
        argv.extend(odd);
        if spec.exe.contains('=') {
            argv.extend(TRAMPOLINE.iter().map(|s| (*s).to_owned()));
        }
    }
    argv.push(spec.exe.clone());
    argv.extend(spec.args.iter().cloned());
    s.push_str("set --");
    for word in &argv {
        s.push(' ');
        s.push_str(&quote(word));
    }
    s.push('\n');
    s
}

/// The environment `vars` as `export`s, and a name for it that changes with its content.
/// Variables sh cannot export (names like `BASH_FUNC_f%%`, values with NUL) are left out.
pub(crate) fn base_env_script<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    vars: impl IntoIterator<Item = (K, V)>,
) -> (String, String) {
    let sorted: BTreeMap<String, String> = vars
        .into_iter()
        .filter_map(|(k, v)| {
            let k = k.as_ref().to_str()?.to_owned();
            let v = v.as_ref().to_str()?.to_owned();
            (is_shell_name(&k) && !v.contains('\0')).then_some((k, v))
        })
        .collect();
    let mut s = String::from(
        "# ganga-rs Local backend: the environment of the ganga that submitted, sourced by wrappers.\n",
    );
    for (k, v) in &sorted {
        let _ = writeln!(s, "command export {}", quote(&format!("{k}={v}")));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    (format!("{:016x}", h.finish()), s)
}

/// A path as text; paths that are not UTF-8 are refused before this is reached.
fn lossless(path: &OsStr) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn names_sh_can_export() {
        for ok in ["A", "_x", "PATH", "a1_B2"] {
            assert!(is_shell_name(ok), "{ok}");
        }
        for bad in ["", "1A", "dotted.name", "A-B", "ü", "BASH_FUNC_f%%"] {
            assert!(!is_shell_name(bad), "{bad}");
        }
    }

    /// What sh makes of a quoted word: the same text.
    #[test]
    fn quoting_survives_sh() {
        let words = [
            "plain",
            "it's",
            "'",
            "''",
            "$HOME `id` $(id)",
            "line1\nline2\n",
            "back\\slash",
            "",
            "ünï ✓",
            "\"",
        ];
        let script: String = words
            .iter()
            .map(|w| format!("printf '%s\\0' {}\n", quote(w)))
            .collect();
        let out = Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        assert!(out.status.success());
        let got: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        let mut want: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        want.push(b"");
        assert_eq!(got, want);
    }

    #[test]
    fn the_base_environment_is_named_by_its_content() {
        let (a, text) = base_env_script([("B", "2"), ("A", "1"), ("bad.name", "x")]);
        let (b, _) = base_env_script([("A", "1"), ("B", "2")]);
        let (c, _) = base_env_script([("A", "1"), ("B", "3")]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(
            text.contains("command export 'A=1'\ncommand export 'B=2'\n"),
            "{text}"
        );
        assert!(!text.contains("bad.name"));
    }
}
