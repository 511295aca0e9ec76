//! The JDL the backend writes, read back by DIRAC's own code: the `ClassAd` parser and
//! the manifest check from the DIRACCommon installed with the test server, then the way
//! DIRAC's JobAgent turns a JDL into parameters and its JobWrapper into a command line and
//! environment, run with `/bin/sh -c` as DIRAC runs it. What the program receives must be
//! exactly what the job file said.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;

/// DIRAC's reading of a JDL, from JobAgent._getJDLParameters and JobWrapper.execute.
const AS_DIRAC_READS_IT: &str = r#"
import json, os, shutil, sys
from urllib.parse import unquote
from DIRACCommon.Core.Utilities.ClassAd.ClassAdLight import ClassAd
from DIRACCommon.Core.Utilities.JDL import loadJDLAsCFG

jdl = sys.stdin.read()
checked = loadJDLAsCFG(jdl)          # what the server's manifest check parses
if not checked["OK"]:
    sys.exit("loadJDLAsCFG: " + checked["Message"])

params = {}
for name, value in ClassAd(jdl).contents.items():      # JobAgent
    if value.strip().startswith("{"):
        raw = value.replace("{", "").replace("}", "").replace('"', "").split()
        params[name] = [v[:-1] if v.endswith(",") else v for v in raw]
    else:
        params[name] = value.replace('"', "").replace("{", '"{').replace("}", '}"')

executable = os.path.expandvars(params["Executable"])   # JobWrapper
if "/" not in executable:
    executable = shutil.which(executable) or executable
executable = os.path.abspath(executable)
command = executable
if params.get("Arguments"):
    command += " " + str(params["Arguments"])
env = {}
variables = params.get("ExecutionEnvironment", [])
if isinstance(variables, str):
    variables = [variables]
for var in variables:
    env[var.split("=")[0]] = unquote(var.split("=")[1])
print(json.dumps({"command": command, "env": env, "outputs": params["OutputSandbox"]}))
"#;

fn venv_python() -> PathBuf {
    let path = std::env::var("GANGA_DIRACX_ENV")
        .unwrap_or_else(|_| "/tmp/ganga-diracx/diracx.env".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}: install and start the test server with `.ci/diracx.sh start`")
    });
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("DIRACX_CI_DIR="))
        .unwrap_or_else(|| panic!("{path} has no DIRACX_CI_DIR: run `.ci/diracx.sh start` again"));
    let python = PathBuf::from(dir).join("venv").join("bin").join("python");
    assert!(
        python.exists(),
        "{} is missing: run `.ci/diracx.sh start`",
        python.display()
    );
    python
}

fn words(ws: &[&str]) -> Vec<String> {
    ws.iter().map(|w| (*w).to_owned()).collect()
}

#[test]
fn command_lines_and_environments_arrive_as_written() {
    let python = venv_python();
    let dir = tempfile::tempdir().expect("tempdir");
    // The "program": prints each argument, then $GREETING and $ODD, NUL-terminated.
    let program = dir.path().join("show-args.sh");
    std::fs::write(
        &program,
        "#!/bin/sh\nfor a; do printf '%s\\0' \"$a\"; done\nprintf '%s\\0' \"$GREETING\" \"$ODD\"\n",
    )
    .expect("written");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let exe = program.display().to_string();
    let env: BTreeMap<String, String> = [
        (
            "GREETING".to_owned(),
            "hi there; \"friends\" = {all} 100%".to_owned(),
        ),
        ("ODD".to_owned(), "x=y,z\nnext line é".to_owned()),
    ]
    .into();
    let patterns = words(&["out/*.txt", "res.root"]);
    let cases = [
        (
            words(&["hello world", "it's", "$HOME", "a\\b", "", "100%", "*"]),
            false,
        ),
        (
            words(&[
                "a;b",
                "say \"hi\"",
                "[x]",
                "{y}",
                "two\nlines\n",
                "é ü",
                "trailing\n\n",
                "",
            ]),
            true,
        ),
        (Vec::new(), false),
        (words(&["a;b"]), true),
        (words(&["[x]"]), true),
        (words(&["{y}"]), true),
        (words(&["say \"hi\""]), true),
        (words(&["two\nlines"]), true),
    ];
    for (args, wrapped) in cases {
        // Whether a command line is wrapped decides nothing below: both ways must work.
        let (jdl, wrapper) =
            ganga_backend_dirac::jdl_of(&exe, &args, &env, &patterns).expect("writable");
        assert_eq!(wrapper.is_some(), wrapped, "wrapped or not: {args:?}");
        let out = Command::new(&python)
            .args(["-c", AS_DIRAC_READS_IT])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(jdl.as_bytes())?;
                child.wait_with_output()
            })
            .expect("python runs");
        assert!(
            out.status.success(),
            "DIRAC's parsers refused\n{jdl}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            read["outputs"],
            serde_json::json!(["std.out", "std.err", "out/*.txt", "res.root"])
        );

        // The job's directory on the worker: the input sandbox holds the wrapper.
        let workdir = tempfile::tempdir().expect("workdir");
        if let Some(script) = wrapper {
            std::fs::write(workdir.path().join("ganga-dirac-run.sh"), script)
                .expect("wrapper written");
        }
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c")
            .arg(read["command"].as_str().expect("a command"))
            .current_dir(workdir.path());
        for (k, v) in read["env"].as_object().expect("env") {
            sh.env(k, v.as_str().expect("text"));
        }
        let ran = sh.output().expect("sh runs");
        assert!(
            ran.status.success(),
            "{}: {}",
            read["command"],
            String::from_utf8_lossy(&ran.stderr)
        );
        let mut got: Vec<String> = ran
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8(w.to_vec()).expect("utf-8"))
            .collect();
        assert_eq!(got.pop().as_deref(), Some(""), "NUL-terminated");
        let odd = got.pop().expect("ODD");
        let greeting = got.pop().expect("GREETING");
        assert_eq!(got, args, "the arguments, for JDL\n{jdl}");
        assert_eq!(greeting, env["GREETING"]);
        assert_eq!(odd, env["ODD"]);
    }
}
