//! JDL: how a job is described to DIRAC.
//!
//! DIRAC's JDL has no escapes. The parsers that read it (`ClassAd` on the server and in the
//! pilot's JobAgent, `loadJDLAsCFG` when checking the manifest) cut values at `;`, treat `[`
//! as a nested JDL, delete every `"`, turn `{`/`}` into list markers, and split lists on
//! whitespace after deleting the braces, so that list items are told apart only by the
//! ", " between them. So instead of escaping, every value is checked, and:
//!
//! - the command line is sent as it is (`Executable = "echo"; Arguments = "'a b' 'c'"`, each
//!   argument single-quoted for the shell the JobWrapper runs the command in) when the
//!   program name and arguments hold none of the characters above; otherwise the job runs
//!   `/bin/sh ganga-dirac-run.sh x<hex>...`, a small script shipped in its input sandbox
//!   that decodes each word from hexadecimal and `exec`s the program with them;
//! - environment values are percent-encoded: the JobWrapper `unquote`s them, and keeps only
//!   what comes before a second `=`;
//! - names that cannot be carried (an output pattern with a space, a site with a comma)
//!   are refused with a message naming them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::settings::JobOptions;

/// The script that decodes a wrapped command line (see the module doc).
pub(crate) const WRAPPER_NAME: &str = "ganga-dirac-run.sh";
pub(crate) const WRAPPER_SCRIPT: &str = include_str!("wrapper.sh");

/// The names the job's standard output and error get in its sandbox.
pub(crate) const STDOUT: &str = "std.out";
pub(crate) const STDERR: &str = "std.err";

/// How the program and its arguments reach the worker node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// `Executable` and `Arguments` as they are.
    Plain {
        executable: String,
        arguments: String,
    },
    /// `/bin/sh ganga-dirac-run.sh x<hex(program)> x<hex(arg)>...`: needs the wrapper in
    /// the input sandbox.
    Wrapped { arguments: String },
}

impl Command {
    /// `exe` is the program as the job file gives it; `shipped` tells whether it is one of
    /// the job's input files (then it runs from the job's directory, by its file name).
    pub(crate) fn new(exe: &str, args: &[String], shipped: bool) -> Result<Command, String> {
        if exe.is_empty() {
            return Err("the program (application.exe) is empty".to_owned());
        }
        if let Some(bad) = std::iter::once(exe)
            .chain(args.iter().map(String::as_str))
            .find(|w| w.contains('\0'))
        {
            return Err(format!(
                "`{}` holds a NUL character, which no program can be given",
                bad.escape_debug()
            ));
        }
        let program = if shipped {
            // DIRAC's JobWrapper looks a name without `/` up on PATH, else takes it
            // relative to the job's directory, where the input sandbox was unpacked.
            let name = exe.rsplit('/').next().unwrap_or(exe);
            format!("./{name}")
        } else {
            exe.to_owned()
        };
        let plain_program = program
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./+@%:=,-".contains(&b));
        if plain_program && args.iter().all(|a| a.bytes().all(plain_arg_byte)) {
            let arguments = args
                .iter()
                .map(|a| single_quoted(a))
                .collect::<Vec<_>>()
                .join(" ");
            return Ok(Command::Plain {
                executable: program,
                arguments,
            });
        }
        let words: Vec<String> = std::iter::once(program.as_str())
            .chain(args.iter().map(String::as_str))
            .map(|w| format!("x{}", hex::encode(w.as_bytes())))
            .collect();
        Ok(Command::Wrapped {
            arguments: format!("{WRAPPER_NAME} {}", words.join(" ")),
        })
    }

    pub(crate) fn needs_wrapper(&self) -> bool {
        matches!(self, Command::Wrapped { .. })
    }
}

/// A byte that can stand inside a single-quoted shell word in a JDL string.
fn plain_arg_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && !b"\";[]{}".contains(&b)
}

/// `'word'`, with `'` written as `'\''`.
fn single_quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// An environment value as the JobWrapper reads it back (`urllib.parse.unquote`).
pub(crate) fn encode_env_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"_.~/:@+-".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn check_env_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(format!(
            "environment variable name `{}` cannot be passed to a DIRAC job (letters, digits and _ only)",
            name.escape_debug()
        ))
    }
}

/// Why `text` cannot be a JDL string value, if it cannot.
fn scalar_problem(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        return Some("it is empty");
    }
    if text.chars().any(char::is_control) {
        return Some("it holds a line break or control character");
    }
    if text.chars().any(|c| "\";[]{}".contains(c)) {
        return Some("it holds one of \" ; [ ] { }");
    }
    None
}

/// Why `text` cannot be an item of a JDL list, if it cannot.
fn item_problem(text: &str) -> Option<&'static str> {
    scalar_problem(text).or_else(|| {
        if text.chars().any(char::is_whitespace) {
            Some("it holds a space")
        } else if text.contains(',') {
            Some("it holds a comma")
        } else {
            None
        }
    })
}

fn scalar(what: &str, text: &str) -> Result<String, String> {
    match scalar_problem(text) {
        None => Ok(format!("\"{text}\"")),
        Some(why) => Err(format!(
            "{what} `{}` cannot be written in a DIRAC JDL: {why}",
            text.escape_debug()
        )),
    }
}

fn list<S: AsRef<str>>(what: &str, items: &[S]) -> Result<String, String> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        let item = item.as_ref();
        if let Some(why) = item_problem(item) {
            return Err(format!(
                "{what} `{}` cannot be written in a DIRAC JDL: {why}",
                item.escape_debug()
            ));
        }
        parts.push(format!("\"{item}\""));
    }
    // ", " and not ",": the pilot splits lists on whitespace.
    Ok(format!("{{{}}}", parts.join(", ")))
}

/// One job, ready to be written as JDL.
#[derive(Debug, Clone)]
pub(crate) struct JobDescription<'a> {
    pub(crate) name: &'a str,
    pub(crate) command: &'a Command,
    pub(crate) env: &'a BTreeMap<String, String>,
    /// PFNs (`SB:...`) and LFNs (`LFN:...`).
    pub(crate) input_sandbox: &'a [String],
    pub(crate) output_patterns: &'a [String],
    pub(crate) options: &'a JobOptions,
}

/// The JDL text of one job, or why it cannot be written.
pub(crate) fn write(job: &JobDescription<'_>) -> Result<String, String> {
    let mut attrs: Vec<(&str, String)> = Vec::new();
    attrs.push(("JobName", scalar("the job name", job.name)?));
    match job.command {
        Command::Plain {
            executable,
            arguments,
        } => {
            attrs.push(("Executable", scalar("the program", executable)?));
            if !arguments.is_empty() {
                attrs.push(("Arguments", scalar("the arguments", arguments)?));
            }
        }
        Command::Wrapped { arguments } => {
            attrs.push(("Executable", "\"/bin/sh\"".to_owned()));
            attrs.push(("Arguments", scalar("the arguments", arguments)?));
        }
    }
    attrs.push(("StdOutput", format!("\"{STDOUT}\"")));
    attrs.push(("StdError", format!("\"{STDERR}\"")));
    if !job.env.is_empty() {
        let mut items = Vec::with_capacity(job.env.len());
        for (name, value) in job.env {
            check_env_name(name)?;
            items.push(format!("{name}={}", encode_env_value(value)));
        }
        attrs.push((
            "ExecutionEnvironment",
            list("the environment entry", &items)?,
        ));
    }
    if !job.input_sandbox.is_empty() {
        attrs.push((
            "InputSandbox",
            list("the input sandbox entry", job.input_sandbox)?,
        ));
    }
    let mut outputs: Vec<&str> = vec![STDOUT, STDERR];
    for pattern in job.output_patterns {
        ganga_core::check_inside_workdir(pattern).map_err(|e| format!("output pattern {e}"))?;
        if !outputs.contains(&pattern.as_str()) {
            outputs.push(pattern);
        }
    }
    attrs.push(("OutputSandbox", list("the output pattern", &outputs)?));
    let o = job.options;
    if !o.input_data.is_empty() {
        attrs.push(("InputData", list("the input data", &o.input_data)?));
    }
    if !o.sites.is_empty() {
        attrs.push(("Site", list("the site", &o.sites)?));
    }
    if !o.banned_sites.is_empty() {
        attrs.push(("BannedSites", list("the banned site", &o.banned_sites)?));
    }
    if let Some(p) = &o.platform {
        attrs.push(("Platform", scalar("the platform", p)?));
    }
    if !o.tags.is_empty() {
        attrs.push(("Tags", list("the tag", &o.tags)?));
    }
    if let Some(t) = o.cpu_time {
        attrs.push(("CPUTime", t.to_string()));
    }
    if let Some(p) = o.priority {
        attrs.push(("Priority", p.to_string()));
    }
    if let Some(n) = o.processors {
        attrs.push(("NumberOfProcessors", n.to_string()));
    }
    if let Some(g) = &o.job_group {
        attrs.push(("JobGroup", scalar("the job group", g)?));
    }
    let mut text = String::from("[\n");
    for (name, value) in attrs {
        let _ = writeln!(text, "    {name} = {value};");
    }
    text.push(']');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|w| (*w).to_owned()).collect()
    }

    fn describe<'a>(
        command: &'a Command,
        env: &'a BTreeMap<String, String>,
        patterns: &'a [String],
        options: &'a JobOptions,
    ) -> JobDescription<'a> {
        JobDescription {
            name: "ganga:h1:12.3:r1",
            command,
            env,
            input_sandbox: &[],
            output_patterns: patterns,
            options,
        }
    }

    #[test]
    fn plain_command_lines_stay_readable() {
        let c = Command::new(
            "echo",
            &words(&["hello world", "it's", "$HOME", "a\\b"]),
            false,
        )
        .expect("valid");
        assert_eq!(
            c,
            Command::Plain {
                executable: "echo".into(),
                arguments: r"'hello world' 'it'\''s' '$HOME' 'a\b'".into()
            }
        );
        let shipped = Command::new("/home/me/run.sh", &[], true).expect("valid");
        assert_eq!(
            shipped,
            Command::Plain {
                executable: "./run.sh".into(),
                arguments: String::new()
            }
        );
    }

    #[test]
    fn what_the_jdl_cannot_carry_is_wrapped() {
        for arg in ["a;b", "say \"hi\"", "[x]", "{}", "two\nlines", "é"] {
            let c = Command::new("echo", &words(&[arg]), false).expect("valid");
            let Command::Wrapped { arguments } = &c else {
                panic!("{arg:?} should be wrapped: {c:?}")
            };
            assert!(
                arguments.starts_with("ganga-dirac-run.sh x6563686f x"),
                "{arguments}"
            );
            assert!(scalar_problem(arguments).is_none());
        }
        let c = Command::new("my prog", &[], false).expect("valid");
        assert!(c.needs_wrapper());
        assert!(Command::new("echo", &words(&["a\0b"]), false).is_err());
        assert!(Command::new("", &[], false).is_err());
    }

    #[test]
    fn a_job_as_jdl() {
        let c = Command::new("echo", &words(&["hi"]), false).expect("valid");
        let env = BTreeMap::from([("SEED".to_owned(), "1 2=3%".to_owned())]);
        let patterns = words(&["out/*.txt", "std.out"]);
        let options = JobOptions {
            sites: words(&["LCG.CERN.cern", "LCG.RAL.uk"]),
            cpu_time: Some(3600),
            platform: Some("x86_64-el9".into()),
            ..JobOptions::default()
        };
        let mut job = describe(&c, &env, &patterns, &options);
        let inputs = words(&["SB:SandboxSE|/S3/b/vo/user/alice/sha256:ab.tar.bz2"]);
        job.input_sandbox = &inputs;
        let jdl = write(&job).expect("valid");
        assert_eq!(
            jdl,
            r#"[
    JobName = "ganga:h1:12.3:r1";
    Executable = "echo";
    Arguments = "'hi'";
    StdOutput = "std.out";
    StdError = "std.err";
    ExecutionEnvironment = {"SEED=1%202%3D3%25"};
    InputSandbox = {"SB:SandboxSE|/S3/b/vo/user/alice/sha256:ab.tar.bz2"};
    OutputSandbox = {"std.out", "std.err", "out/*.txt"};
    Site = {"LCG.CERN.cern", "LCG.RAL.uk"};
    Platform = "x86_64-el9";
    CPUTime = 3600;
]"#
        );
    }

    #[test]
    fn what_cannot_be_written_is_refused_by_name() {
        let c = Command::new("echo", &[], false).expect("valid");
        let env = BTreeMap::new();
        let options = JobOptions::default();
        for (patterns, needle) in [
            (words(&["my file.txt"]), "`my file.txt`"),
            (words(&["a,b"]), "comma"),
            (words(&["../x"]), ".."),
            (words(&["[ab].txt"]), "[ ]"),
        ] {
            let err = write(&describe(&c, &env, &patterns, &options)).expect_err("refused");
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        let bad_env = BTreeMap::from([("A-B".to_owned(), "x".to_owned())]);
        let err = write(&describe(&c, &bad_env, &[], &options)).expect_err("refused");
        assert!(err.contains("`A-B`"), "{err}");
        let bad_site = JobOptions {
            sites: words(&["A B"]),
            ..JobOptions::default()
        };
        assert!(write(&describe(&c, &env, &[], &bad_site)).is_err());
    }

    /// DIRAC's ClassAd parser, reduced to what decides where values end: a value ends at
    /// the first `;` (or is a nested JDL if a `[` comes first), and `"` are deleted.
    fn classad_values(jdl: &str) -> Option<Vec<(String, String)>> {
        let body = jdl.trim().strip_prefix('[')?.strip_suffix(']')?;
        let mut out = Vec::new();
        let mut rest = body;
        while let Some(eq) = rest.find('=') {
            let name = rest[..eq].trim().to_owned();
            rest = &rest[eq + 1..];
            let semi = rest.find(';')?;
            if rest.find('[').is_some_and(|b| b < semi) {
                return None;
            }
            out.push((name, rest[..semi].trim().to_owned()));
            rest = &rest[semi + 1..];
        }
        Some(out)
    }

    proptest! {
        #[test]
        fn any_command_line_gives_a_jdl_that_parses_back(
            exe in "[ -~]{1,12}",
            args in proptest::collection::vec(any::<String>(), 0..5),
        ) {
            let args: Vec<String> = args.into_iter().filter(|a| !a.contains('\0')).collect();
            let c = Command::new(&exe, &args, false).expect("no NUL");
            let env = BTreeMap::new();
            let options = JobOptions::default();
            let jdl = write(&describe(&c, &env, &[], &options)).expect("always writable");
            let values = classad_values(&jdl).expect("parses");
            let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
            prop_assert!(names.contains(&"Executable"));
            for (_, v) in &values {
                prop_assert!(!v.contains(';'));
            }
        }

        #[test]
        fn any_env_value_encodes_to_list_safe_text(value in any::<String>()) {
            let e = encode_env_value(&value);
            prop_assert_eq!(item_problem(&format!("X={e}")), None);
        }
    }
}
